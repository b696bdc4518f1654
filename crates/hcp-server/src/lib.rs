//! # hcp-server: what `hcp serve` runs
//!
//! Owns the process concerns of a server: its configuration ([`Config`]: one variable per
//! setting, read by clap), telemetry, composing the selected components (each stage crate's
//! `component()`) into one HTTP server with one access layer and one set of background tasks
//! ([`server::run`], stopped in one order), and the operational endpoints (`/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`, `/docs`, `/problems`).
//!
//! It must not hold business rules or SQL (those belong to `hcp-domain` and `hcp-store`), nor
//! tooling (`hcp-tools`) or command-line commands (the `hcp` binary). The server is started with
//! [`server::spawn`] so tests run it in-process on a random port.

pub mod config;
pub mod openapi;
mod pages;
pub mod server;
pub mod telemetry;

pub use config::{ComponentName, Components, Config};
