//! # hcp: the one binary
//!
//! Owns process concerns: configuration from the environment, telemetry, composing the stage
//! crates into one HTTP server plus background aggregator (`hcp serve`, or one component of it),
//! the operational endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`,
//! `/problems`), and the operator commands (migrate, topics, seed, loadgen, bench).
//!
//! It must not hold business rules or SQL: those belong to `hcp-domain` and `hcp-store`. The
//! server is started with [`server::spawn`] so tests run it in-process on a random port.

pub mod bench;
pub mod config;
pub mod demo;
pub mod loadgen;
pub mod openapi;
mod pages;
pub mod server;
pub mod telemetry;

pub use config::{ComponentName, Components, Config};
