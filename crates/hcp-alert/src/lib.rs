//! # hcp-alert: threshold alerts
//!
//! Owns the alert rules (`/api/v1/alert-rules`, admin), their evaluation over sliding windows of
//! stored ratings ([`evaluate_once`], every `HCP_ALERT_INTERVAL_SECS` by [`run_evaluator`]), and
//! the alerts (`GET /api/v1/alerts`): an alert fires when a unit starts to meet a rule and clears
//! when it stops; each transition is stored, queued as a notification to the unit's supervisors
//! and as a webhook message (`alert.fired`, `alert.cleared`), in one transaction.
//!
//! It must not change ratings or aggregates, and takes the time as a parameter so that rules are
//! testable on a controllable clock.

mod evaluate;
mod handlers;

use hcp_domain::{Role, SatisfactionPolicy};
use std::time::Duration;

use hcp_http::{Access, Component, Routes};
use hcp_store::Store;

pub use evaluate::{evaluate_once, run_evaluator, EvaluationOutcome};
pub use handlers::{__path_delete_rule, __path_list_alerts, __path_list_rules, __path_put_rule};

/// What the handlers share.
#[derive(Clone)]
pub struct AlertState {
    /// The database.
    pub store: Store,
    /// Whether 基本满意 counts as good.
    pub policy: SatisfactionPolicy,
}

/// The `alerts` component: the alert routes, and the `evaluator` task that evaluates every rule
/// each `interval`.
pub fn component(state: AlertState, interval: Duration) -> Component {
    let (store, policy) = (state.store.clone(), state.policy);
    Component::new("alerts", routes(state)).task("evaluator", move |stop| run_evaluator(store, policy, interval, stop))
}

/// The alert routes with their access.
fn routes(state: AlertState) -> Routes {
    const READERS: &[Role] = &[Role::Admin, Role::Auditor];
    Routes::new()
        .get("/api/v1/alerts", Access::operators(READERS), handlers::list_alerts)
        .get("/api/v1/alert-rules", Access::operators(READERS), handlers::list_rules)
        .put("/api/v1/alert-rules/{rule_id}", Access::operators(&[Role::Admin]), handlers::put_rule)
        .delete("/api/v1/alert-rules/{rule_id}", Access::operators(&[Role::Admin]), handlers::delete_rule)
        .with_state(state)
}
