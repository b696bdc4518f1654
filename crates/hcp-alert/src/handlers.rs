//! Alert handlers: rules (list, put, delete) and alerts (list).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hcp_domain::alert::{AlertKind, AlertRule};
use hcp_domain::Scope;
use hcp_http::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use hcp_store::Alert;
use serde::Deserialize;

use crate::AlertState;

/// Body of `PUT /api/v1/alert-rules/{rule_id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// Shown in banners and notifications.
    pub name: String,
    /// `department`, `hall`, `window`, `staff` or `service_item`.
    pub scope: String,
    /// `satisfaction_below` or `bad_at_least`.
    pub kind: AlertKind,
    /// A fraction (0.8) or a count (3).
    pub threshold: f64,
    /// Fewest ratings for `satisfaction_below` (default 1).
    pub min_ratings: Option<i64>,
    /// The sliding window in minutes.
    pub window_minutes: i64,
    /// Default true.
    pub enabled: Option<bool>,
}

/// Query of `GET /api/v1/alerts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// Only open alerts (the board's banner).
    pub active: Option<bool>,
    /// At most this many (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// Alerts, newest first (admin, auditor).
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "stats",
    params(AlertParams),
    responses(
        (status = 200, description = "Alerts", body = Vec<Alert>),
        (status = 422, description = "Bad limit", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_alerts(
    State(state): State<AlertState>,
    ApiQuery(q): ApiQuery<AlertParams>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "out_of_range", "limit 须在 1 到 500 之间", "limit must be 1 to 500"));
    }
    Ok(Json(state.store.list_alerts(q.active.unwrap_or(false), limit).await?))
}

/// Alert rules (admin, auditor).
#[utoipa::path(
    get,
    path = "/api/v1/alert-rules",
    tag = "stats",
    responses((status = 200, description = "Rules", body = Vec<AlertRule>))
)]
pub async fn list_rules(State(state): State<AlertState>) -> Result<Json<Vec<AlertRule>>, ApiError> {
    Ok(Json(state.store.alert_rules().await?))
}

/// Add or replace a rule (admin).
#[utoipa::path(
    put,
    path = "/api/v1/alert-rules/{rule_id}",
    tag = "stats",
    params(("rule_id" = String, Path, description = "The rule")),
    request_body = RuleInput,
    responses(
        (status = 200, description = "Stored", body = AlertRule),
        (status = 422, description = "Bad rule", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_rule(
    State(state): State<AlertState>,
    ApiPath(rule_id): ApiPath<String>,
    ApiJson(input): ApiJson<RuleInput>,
) -> Result<Json<AlertRule>, ApiError> {
    let scope = Scope::parse(&input.scope).ok_or_else(|| {
        ApiError::field(
            "scope",
            "invalid",
            "范围须为 department、hall、window、staff 或 service_item",
            "scope must be department, hall, window, staff or service_item",
        )
    })?;
    let rule = AlertRule {
        rule_id,
        name: input.name.trim().to_owned(),
        scope,
        kind: input.kind,
        threshold: input.threshold,
        min_ratings: input.min_ratings.unwrap_or(1),
        window_minutes: input.window_minutes,
        enabled: input.enabled.unwrap_or(true),
    };
    rule.check().map_err(ApiError::Validation)?;
    state.store.upsert_alert_rule(&rule).await?;
    Ok(Json(rule))
}

/// Delete a rule and its alerts (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/alert-rules/{rule_id}",
    tag = "stats",
    params(("rule_id" = String, Path, description = "The rule")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_rule(
    State(state): State<AlertState>,
    ApiPath(rule_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_alert_rule(&rule_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
