//! Logging: `tracing` to stderr, JSON when `HCP_LOG_FORMAT=json`, filtered by `RUST_LOG`.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls are no-ops (tests call it freely).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn,tower_http=info"));
    let json = std::env::var("HCP_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(true);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
