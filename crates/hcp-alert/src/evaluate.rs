//! Evaluation: every enabled rule over its window ending at `now`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hcp_domain::SatisfactionPolicy;
use hcp_store::{Firing, Store};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// What one evaluation changed: `(rule, unit)` pairs.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct EvaluationOutcome {
    /// Alerts that fired.
    pub fired: Vec<(String, String)>,
    /// Alerts that cleared.
    pub cleared: Vec<(String, String)>,
}

/// Evaluates every rule at `now` (a disabled rule fires nothing, so its open alerts clear).
pub async fn evaluate_once(
    store: &Store,
    policy: SatisfactionPolicy,
    now: DateTime<Utc>,
) -> Result<EvaluationOutcome, hcp_store::Error> {
    let mut out = EvaluationOutcome::default();
    for rule in store.alert_rules().await? {
        let mut firing = Vec::new();
        if rule.enabled {
            for (unit, counts) in store.window_counts(rule.scope, now, rule.window_minutes).await? {
                if let Some(value) = rule.firing(&counts, policy) {
                    let region_path = store.unit_regions(rule.scope, &unit).await?;
                    firing.push(Firing { scope_id: unit, value, ratings: counts.total(), region_path });
                }
            }
        }
        let (fired, cleared) = store.apply_alerts(&rule, &firing, now).await?;
        for unit in fired {
            tracing::info!(rule = %rule.rule_id, %unit, "alert fired");
            out.fired.push((rule.rule_id.clone(), unit));
        }
        for unit in cleared {
            tracing::info!(rule = %rule.rule_id, %unit, "alert cleared");
            out.cleared.push((rule.rule_id.clone(), unit));
        }
    }
    Ok(out)
}

/// Evaluates every `interval` until `shutdown`.
pub async fn run_evaluator(store: Store, policy: SatisfactionPolicy, interval: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = evaluate_once(&store, policy, Utc::now()).await {
                    tracing::warn!(error = %e, "alert evaluation failed; retrying at the next tick");
                }
            }
        }
    }
}
