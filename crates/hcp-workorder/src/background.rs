//! The background work of the work-order component: the relay that publishes the audit log to
//! `hcp.workorder.event.v1` (outbox: published only after the transition committed, at least
//! once, in order per order) and the overdue sweeper.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hcp_bus::RatingProducer;
use hcp_domain::workorder::WORKORDER_EVENT_SCHEMA;
use hcp_store::{Store, SweepOutcome};
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Settings of [`run_background`].
#[derive(Debug, Clone)]
pub struct BackgroundConfig {
    /// Topic of the events.
    pub topic: String,
    /// How often the relay looks for unpublished events.
    pub relay_interval: Duration,
    /// How often the sweeper runs.
    pub sweep_interval: Duration,
}

/// One sweep at `now` with the current calendar and policies; updates the open-order gauges and
/// the calendar's last covered year.
pub async fn sweep_once(store: &Store, now: DateTime<Utc>) -> Result<SweepOutcome, sqlx::Error> {
    let ctx = store.deadline_context().await?;
    metrics::CALENDAR_LAST_YEAR.set(ctx.calendar.years().last().copied().unwrap_or(0).into());
    let out = store.sweep_work_orders(&ctx, now).await?;
    metrics::ESCALATIONS.inc_by(out.escalated as u64);
    for status in ["on_track", "near_due", "overdue"] {
        metrics::OPEN.with_label_values(&[status]).set(0);
    }
    for (status, n) in store.open_order_counts().await? {
        metrics::OPEN.with_label_values(&[&status]).set(n);
    }
    if out.escalated > 0 || out.changed > 0 {
        tracing::info!(?out, "work-order sweep");
    }
    Ok(out)
}

/// Publishes pending events until none are left; returns how many.
async fn relay_once(store: &Store, producer: &RatingProducer, topic: &str) -> Result<usize, String> {
    let mut total = 0;
    loop {
        let pending = store.pending_workorder_events(500).await.map_err(|e| e.to_string())?;
        if pending.events.is_empty() {
            return Ok(total);
        }
        // In order: events of one order share a key, so a partition keeps their order.
        for e in &pending.events {
            let body = serde_json::to_vec(e).expect("events always serialize");
            producer
                .publish_to(topic, WORKORDER_EVENT_SCHEMA, &e.order_id.to_string(), &body)
                .await
                .map_err(|e| e.to_string())?;
        }
        let n = pending.mark_published().await.map_err(|e| e.to_string())?;
        metrics::EVENTS_PUBLISHED.inc_by(n as u64);
        total += n;
    }
}

/// Runs the relay and the sweeper until `shutdown`.
pub async fn run_background(
    store: Store,
    producer: RatingProducer,
    config: BackgroundConfig,
    shutdown: CancellationToken,
) {
    let mut relay = tokio::time::interval(config.relay_interval);
    let mut sweep = tokio::time::interval(config.sweep_interval);
    relay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = relay.tick() => {
                if let Err(e) = relay_once(&store, &producer, &config.topic).await {
                    metrics::RELAY_FAILURES.inc();
                    tracing::warn!(error = %e, "work-order event relay failed; retrying");
                }
            }
            _ = sweep.tick() => {
                if let Err(e) = sweep_once(&store, Utc::now()).await {
                    tracing::warn!(error = %e, "work-order sweep failed; retrying at the next tick");
                }
            }
        }
    }
    // Publish what committed before the stop.
    if let Err(e) = relay_once(&store, &producer, &config.topic).await {
        tracing::warn!(error = %e, "final work-order event relay incomplete (published at the next start)");
    }
}
