//! `POST /api/v1/work-orders/{order_id}/accountability`: a supervisor records what was done about
//! a founded bad review (教育, 约谈, 问责 for conduct; 流程论证 for a process or platform cause).
//! Which measure fits which cause is `hcp_domain::accountability`; the record and its audit line
//! are the store's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use hcp_domain::accountability::AccountabilityKind;
use hcp_http::{ApiError, ApiJson, ApiPath, Caller, Problem};
use hcp_store::{AccountabilityError, AccountabilityRecord};
use serde::Deserialize;

use crate::handlers::{actor_of, order_id};
use crate::{metrics, WorkOrderState};

/// The body of a measure.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountabilityBody {
    /// `education` 教育, `interview` 约谈, `accountability` 问责 (a conduct cause) or
    /// `process_review` 流程论证 (a process or platform cause).
    pub kind: AccountabilityKind,
    /// What was done and why (1–2000 characters).
    #[schema(min_length = 1, max_length = 2000)]
    pub note: String,
}

/// Records an accountability measure on a founded order within the caller's reach.
#[utoipa::path(
    post,
    path = "/api/v1/work-orders/{order_id}/accountability",
    tag = "workorders",
    params(("order_id" = String, Path, description = "Order id")),
    request_body = AccountabilityBody,
    responses(
        (status = 201, description = "Recorded", body = AccountabilityRecord),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a supervisor or admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order in the caller's reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order has no founded verification", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No note, or a measure that does not fit the verified cause", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn record(
    State(state): State<WorkOrderState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AccountabilityBody>,
) -> Result<(StatusCode, Json<AccountabilityRecord>), ApiError> {
    let note = body.note.trim();
    if note.is_empty() {
        return Err(ApiError::field("note", "required", "须填写处理说明(note)", "note is required"));
    }
    if note.chars().count() > 2000 {
        return Err(ApiError::field(
            "note",
            "too_long",
            "说明不能超过 2000 字",
            "note must be at most 2000 characters",
        ));
    }
    let scope = caller.reach()?;
    let id = order_id(&id)?;
    let record =
        state.store.record_accountability(&scope, &actor_of(&caller), id, body.kind, note, Utc::now()).await.map_err(
            |e| match e {
                AccountabilityError::NotFound => ApiError::NotFound,
                AccountabilityError::NotFounded { cause } => ApiError::Conflict(format!(
                    "该工单尚未核实属实(cause: {}),无需追责 / the order has no founded verification",
                    cause.as_deref().unwrap_or("null")
                )),
                AccountabilityError::DoesNotFit { kind, cause, fitting } => ApiError::field(
                    "kind",
                    "does_not_fit",
                    format!("核实原因为 {cause},只能记录:{}", fitting.join("、")),
                    format!("a {cause} cause is answered by {} only, not {kind}", fitting.join(", ")),
                ),
                AccountabilityError::Database(e) => e.into(),
            },
        )?;
    metrics::ACCOUNTABILITY.with_label_values(&[body.kind.as_str()]).inc();
    tracing::info!(order_id = %id, kind = body.kind.as_str(), actor = %caller.0.sub, "accountability measure recorded");
    Ok((StatusCode::CREATED, Json(record)))
}
