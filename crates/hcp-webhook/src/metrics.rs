//! Webhook metrics.

use std::sync::LazyLock;

use prometheus::{register_int_counter_vec, IntCounterVec};

/// `hcp_webhook_attempts_total{result}`: delivery attempts, `delivered`, `retry` or `failed`.
pub static ATTEMPTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_webhook_attempts_total", "Webhook delivery attempts, by result", &["result"])
        .expect("metric registers once")
});
