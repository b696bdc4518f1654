//! Ingest metrics.

use std::sync::LazyLock;

use prometheus::{register_histogram, register_int_counter_vec, Histogram, IntCounterVec};

/// `hcp_ingest_ratings_accepted_total{channel,stage}`: acknowledged by the broker, answered 202.
pub static ACCEPTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hcp_ingest_ratings_accepted_total",
        "Ratings durably published and accepted",
        &["channel", "stage"]
    )
    .expect("metric registers once")
});

/// `hcp_ingest_ratings_refused_total{reason}`: invalid input or broker unavailable.
pub static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_ingest_ratings_refused_total", "Ratings not accepted, by reason", &["reason"])
        .expect("metric registers once")
});

/// `hcp_ingest_publish_seconds`: time from produce to broker acknowledgement.
pub static PUBLISH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "hcp_ingest_publish_seconds",
        "Time from produce to broker acknowledgement",
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric registers once")
});

/// `hcp_ingest_idempotent_replays_total`: retries answered from the stored first answer.
pub static IDEMPOTENT_REPLAYS: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "hcp_ingest_idempotent_replays_total",
        "Requests answered from the stored answer of their Idempotency-Key"
    )
    .expect("metric registers once")
});

/// `hcp_ingest_batch_items_total{result}`: batch items accepted or refused as duplicates.
pub static BATCH_ITEMS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_ingest_batch_items_total", "Batch items by result", &["result"])
        .expect("metric registers once")
});

/// `hcp_invitations_total{channel}`: rating invitations issued (qr_code, sms).
pub static INVITATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_invitations_total", "Rating invitations issued, by channel", &["channel"])
        .expect("metric registers once")
});

/// `hcp_ingest_rate_limited_total{by}`: requests refused with 429, by `key` or `ip`.
pub static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_ingest_rate_limited_total", "Requests refused by a rate limit", &["by"])
        .expect("metric registers once")
});

/// `hcp_sms_capped_total{by}`: SMS invitations not sent because a daily cap was reached, by
/// `key` or `number`.
pub static SMS_CAPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_sms_capped_total", "SMS invitations held back by a daily cap", &["by"])
        .expect("metric registers once")
});

/// `hcp_ingest_claim_group_keys{kind}`: keys per grouped claim or accept statement (`claim`,
/// `accept`); the count is the number of statement sets sent to PostgreSQL.
pub static CLAIM_GROUP_KEYS: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    prometheus::register_histogram_vec!(
        "hcp_ingest_claim_group_keys",
        "Keys per grouped claim or accept of concurrent single-rating requests",
        &["kind"],
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]
    )
    .expect("metric registers once")
});

/// `hcp_ingest_credential_lookups_total{source}`: channel keys found in memory (`cache`) or read
/// from PostgreSQL (`database`: first use, after a change was announced, or while the change
/// listener is down).
pub static CREDENTIAL_LOOKUPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hcp_ingest_credential_lookups_total",
        "Channel key look-ups, by where the key was found",
        &["source"]
    )
    .expect("metric registers once")
});
