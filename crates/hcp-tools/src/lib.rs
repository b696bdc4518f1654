//! # hcp-tools: tooling around hcp
//!
//! Owns what operators and developers run beside the pipeline: the demo city 示范市 and its
//! ratings ([`demo`], behind `hcp seed demo`), the HTTP load generator ([`loadgen`], `hcp
//! loadgen`) and the benchmark that measures hcp against raw Kafka, PostgreSQL COPY and bare
//! axum in one run ([`bench`], `hcp bench`).
//!
//! It must not be needed by a production server: `hcp-server` and the stage crates never depend
//! on it.

pub mod bench;
pub mod demo;
pub mod loadgen;
