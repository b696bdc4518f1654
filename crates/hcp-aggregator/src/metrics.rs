//! Aggregator metrics.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
};

/// `hcp_attribution_ratings_total{result}`: new ratings stored, `complete` or `flagged`.
pub static ATTRIBUTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hcp_attribution_ratings_total",
        "New ratings stored, by attribution result (complete or flagged)",
        &["result"]
    )
    .expect("metric registers once")
});

/// `hcp_attribution_flags_total{flag}`: flags raised on new ratings (a bounded set of reasons).
pub static FLAGS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_attribution_flags_total", "Attribution flags on new ratings, by reason", &["flag"])
        .expect("metric registers once")
});

/// `hcp_directory_snapshot_loads_total`: full directory loads (start, then one per change).
pub static DIRECTORY_LOADS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("hcp_directory_snapshot_loads_total", "Directory snapshots loaded by the aggregator")
        .expect("metric registers once")
});

/// `hcp_directory_snapshot_version`: the directory version the aggregator attributes against.
pub static DIRECTORY_VERSION: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("hcp_directory_snapshot_version", "Directory version of the aggregator's snapshot")
        .expect("metric registers once")
});

/// `hcp_directory_snapshot_load_seconds`: time to load a snapshot.
pub static DIRECTORY_LOAD_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "hcp_directory_snapshot_load_seconds",
        "Time to load the directory snapshot",
        vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]
    )
    .expect("metric registers once")
});

/// `hcp_aggregator_tables_analyzed_total`: tables the task `statistics` analysed because they grew
/// faster than autovacuum visits them.
pub static TABLES_ANALYZED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hcp_aggregator_tables_analyzed_total",
        "Tables analysed by the aggregator because they grew faster than autovacuum visits them"
    )
    .expect("metric registers once")
});

/// `hcp_aggregator_published_total`: attributed events published.
pub static PUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("hcp_aggregator_published_total", "Attributed rating events published")
        .expect("metric registers once")
});
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

/// `hcp_aggregator_records_total{outcome}`: inserted, duplicate, replaced, rejected.
pub static RECORDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_aggregator_records_total", "Records consumed, by outcome", &["outcome"])
        .expect("metric registers once")
});

/// `hcp_aggregator_batches_total`: stored batches (rows committed, events acknowledged, positions saved).
pub static BATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hcp_aggregator_batches_total",
        "Batches stored: rows committed, events published, positions saved"
    )
    .expect("metric registers once")
});

/// `hcp_aggregator_batch_failures_total`: batch steps (preparation, write, publish, positions) that
/// failed and were retried.
pub static BATCH_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hcp_aggregator_batch_failures_total",
        "Batch steps (preparation, write, publish, positions) that failed and were retried"
    )
    .expect("metric registers once")
});

/// `hcp_aggregator_batch_seconds`: time to store one batch.
pub static BATCH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "hcp_aggregator_batch_seconds",
        "Time to store one batch in PostgreSQL",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
    )
    .expect("metric registers once")
});

/// `hcp_aggregator_batch_records`: records per batch.
pub static BATCH_RECORDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "hcp_aggregator_batch_records",
        "Records per batch",
        vec![1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0]
    )
    .expect("metric registers once")
});

/// `hcp_aggregator_assigned_partitions`: partitions this process owns.
pub static ASSIGNED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("hcp_aggregator_assigned_partitions", "Partitions assigned to this process")
        .expect("metric registers once")
});

/// `hcp_aggregator_consumer_lag{partition}`: records on the rating topic not yet committed, per
/// owned partition (librdkafka's statistics, every few seconds; -1 entries are skipped).
pub static LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "hcp_aggregator_consumer_lag",
        "Records behind the end of the rating topic, per owned partition",
        &["partition"]
    )
    .expect("metric registers once")
});

/// `hcp_workorders_opened_total`: bad-review work orders opened (one per new bad rating).
pub static ORDERS_OPENED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("hcp_workorders_opened_total", "Work orders opened for new bad ratings")
        .expect("metric registers once")
});

/// `hcp_workorder_provisional_deadlines_total{year}`: order deadlines planned past the calendar's
/// data (Monday–Friday assumed) — the calendar needs that year. Counted per planning attempt.
pub static PROVISIONAL_DEADLINES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hcp_workorder_provisional_deadlines_total",
        "Work-order deadlines planned past the calendar's data, by missing year",
        &["year"]
    )
    .expect("metric registers once")
});

/// `hcp_integrity_flags_total{flag}`: anti-gaming flags on new ratings (flagged, not dropped).
pub static INTEGRITY_FLAGS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_integrity_flags_total", "Anti-gaming flags on new ratings, by reason", &["flag"])
        .expect("metric registers once")
});
