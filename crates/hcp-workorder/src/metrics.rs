//! Work-order metrics (all `hcp_` prefixed; labels are bounded sets, never personal data).

use std::sync::LazyLock;

use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec,
};

/// `hcp_workorders_open{due_status}`: open orders by due status, as of the last sweep.
pub static OPEN: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "hcp_workorders_open",
        "Open work orders by due status (on_track, near_due, overdue)",
        &["due_status"]
    )
    .expect("metric registers once")
});

/// `hcp_calendar_last_year`: the last year the working-day calendar covers (0: none), as of the
/// last sweep; an alert asks for next year's import before deadlines run past it.
pub static CALENDAR_LAST_YEAR: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "hcp_calendar_last_year",
        "Last year the working-day calendar covers (0: none), as of the last sweep"
    )
    .expect("metric registers once")
});

/// `hcp_workorder_actions_total{action}`: actions taken.
pub static ACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_workorder_actions_total", "Work-order actions taken, by action", &["action"])
        .expect("metric registers once")
});

/// `hcp_workorder_escalations_total`: overdue orders escalated by the sweeper.
pub static ESCALATIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("hcp_workorder_escalations_total", "Overdue work orders escalated by the sweeper")
        .expect("metric registers once")
});

/// `hcp_workorder_events_published_total`: audit-log events relayed to Kafka.
pub static EVENTS_PUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hcp_workorder_events_published_total",
        "Work-order events published to hcp.workorder.event.v1"
    )
    .expect("metric registers once")
});

/// `hcp_workorder_relay_failures_total`: relay rounds that failed (retried).
pub static RELAY_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("hcp_workorder_relay_failures_total", "Work-order event relay rounds that failed")
        .expect("metric registers once")
});

/// `hcp_rater_identity_views_total`: full rater identities shown (each also audited).
pub static RATER_VIEWS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("hcp_rater_identity_views_total", "Full rater identities shown to the callback role")
        .expect("metric registers once")
});

/// `hcp_callback_invitations_total`: callback invitations sent.
pub static CALLBACK_INVITATIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("hcp_callback_invitations_total", "Callback re-rating invitations queued")
        .expect("metric registers once")
});

/// `hcp_accountability_actions_total{kind}`: accountability measures recorded on founded orders.
pub static ACCOUNTABILITY: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hcp_accountability_actions_total",
        "Accountability measures recorded on founded bad reviews (education, interview, accountability, process_review)",
        &["kind"]
    )
    .expect("metric registers once")
});

/// `hcp_staff_appeals_total{outcome}`: staff appeals filed, upheld and rejected.
pub static STAFF_APPEALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hcp_staff_appeals_total",
        "Staff appeals of their own bad reviews: filed, upheld, rejected",
        &["outcome"]
    )
    .expect("metric registers once")
});
