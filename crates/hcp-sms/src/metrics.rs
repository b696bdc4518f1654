//! SMS metrics.

use std::sync::LazyLock;

use prometheus::{register_int_counter_vec, IntCounterVec};

/// `hcp_sms_messages_total{result}`: what the sender did with a due message: `sent`, `retry`,
/// `failed`, `held_quiet_hours`, `held_daily_cap`, `opted_out`, `no_phone`.
pub static MESSAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_sms_messages_total", "SMS messages handled by the sender, by result", &["result"])
        .expect("metric registers once")
});

/// `hcp_sms_receipts_total{status}`: delivery receipts from the gateway, `delivered`,
/// `undelivered` or `unknown` (no message matched).
pub static RECEIPTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_sms_receipts_total", "SMS delivery receipts, by status", &["status"])
        .expect("metric registers once")
});

/// `hcp_sms_opt_outs_total{source}`: numbers added to the opt-out list, `reply` or `admin`.
pub static OPT_OUTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_sms_opt_outs_total", "Numbers added to the SMS opt-out list, by source", &["source"])
        .expect("metric registers once")
});
