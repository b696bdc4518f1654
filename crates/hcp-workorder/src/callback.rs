//! Callback re-rating (回访): the handler sends the rater a single-use, expiring link tied to the
//! work order; the rater's new grade is stored against the order (satisfaction after the fix),
//! and an unsatisfied answer reopens it. The link goes only to the rater by SMS: the handler never
//! sees it, so staff cannot answer for the citizen.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hcp_domain::Grade;
use hcp_http::{ApiError, ApiJson, ApiPath, Caller, Problem};
use hcp_store::{CallbackError, OrderScope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::handlers::{act_error, actor_of, order_id};
use crate::{metrics, WorkOrderState};

/// How long a callback link stays valid.
pub const CALLBACK_DAYS: i64 = 7;

/// A sent invitation (the link itself is only in the SMS).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallbackInvitation {
    /// Valid until.
    pub expires_at: DateTime<Utc>,
    /// Where the SMS goes, masked (none when the rater left no phone: call them instead).
    pub sent_to: Option<String>,
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Sends the rater a callback invitation for an order waiting for its callback (`replied`).
#[utoipa::path(
    post,
    path = "/api/v1/work-orders/{order_id}/callback-invitation",
    tag = "workorders",
    params(("order_id" = String, Path, description = "Order id")),
    responses(
        (status = 201, description = "Queued for SMS", body = CallbackInvitation),
        (status = 403, description = "Role may not", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order in scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is not waiting for a callback", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn invite(
    State(state): State<WorkOrderState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<CallbackInvitation>), ApiError> {
    let scope = caller.reach()?;
    let id = order_id(&id)?;
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let expires_at = Utc::now() + Duration::days(CALLBACK_DAYS);
    let link = format!("{}/callback/{token}", state.public_url.trim_end_matches('/'));
    let sms = format!("【政务服务好差评】您反映的问题已办理,请对处理结果进行评价:{link} ({CALLBACK_DAYS} 天内有效)");
    state
        .store
        .create_callback_invitation(&scope, &actor_of(&caller), id, &token_hash(&token), expires_at, &sms, &link)
        .await
        .map_err(act_error)?;
    let detail = state.store.work_order(&OrderScope::All, id).await?.ok_or(ApiError::NotFound)?;
    metrics::CALLBACK_INVITATIONS.inc();
    Ok((
        StatusCode::CREATED,
        Json(CallbackInvitation { expires_at, sent_to: detail.rating.rater.and_then(|r| r.phone) }),
    ))
}

/// The rater's answer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackAnswer {
    /// 1–5 (5 非常满意 … 1 非常不满意); 3 and above count as satisfied.
    pub grade: Option<i64>,
    /// Optional text.
    pub comment: Option<String>,
}

/// The state of an invitation, as the rater's page needs it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallbackStatus {
    /// `open` (can be answered) or `recorded` (just answered).
    pub status: &'static str,
}

fn callback_error(e: CallbackError) -> ApiError {
    match e {
        CallbackError::Unknown => ApiError::InvitationInvalid,
        CallbackError::Used => ApiError::InvitationUsed,
        CallbackError::Expired => ApiError::InvitationExpired,
        CallbackError::Refused(_) => ApiError::InvitationUsed,
        CallbackError::Database(e) => e.into(),
    }
}

/// Whether a callback link can still be answered (no login: the token is the credential).
#[utoipa::path(
    get,
    path = "/api/v1/callback/{token}",
    tag = "workorders",
    params(("token" = String, Path, description = "The token from the SMS link")),
    responses(
        (status = 200, description = "Open", body = CallbackStatus),
        (status = 404, description = "Forged or unknown", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Used", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn status(
    State(state): State<WorkOrderState>,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<CallbackStatus>, ApiError> {
    state.store.callback_status(&token_hash(&token), Utc::now()).await.map_err(callback_error)?;
    Ok(Json(CallbackStatus { status: "open" }))
}

/// The rater answers a callback link: the grade is stored against the order; ≥ 3 closes it
/// (办结), below reopens it with fresh deadlines.
#[utoipa::path(
    post,
    path = "/api/v1/callback/{token}",
    tag = "workorders",
    params(("token" = String, Path, description = "The token from the SMS link")),
    request_body = CallbackAnswer,
    responses(
        (status = 200, description = "Recorded", body = CallbackStatus),
        (status = 404, description = "Forged or unknown", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Used", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Grade missing or out of range", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn answer(
    State(state): State<WorkOrderState>,
    ApiPath(token): ApiPath<String>,
    ApiJson(body): ApiJson<CallbackAnswer>,
) -> Result<Json<CallbackStatus>, ApiError> {
    // The link first: a forged, used or expired one is refused whatever the body says.
    state.store.callback_status(&token_hash(&token), Utc::now()).await.map_err(callback_error)?;
    let grade = body
        .grade
        .and_then(|g| u8::try_from(g).ok())
        .and_then(Grade::new)
        .ok_or_else(|| ApiError::field("grade", "out_of_range", "请选择 1–5 的评价等级", "grade must be 1..=5"))?;
    let comment = body.comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    if comment.as_ref().is_some_and(|c| c.chars().count() > 1000) {
        return Err(ApiError::field(
            "comment",
            "too_long",
            "评价内容不能超过 1000 字",
            "comment must be at most 1000 characters",
        ));
    }
    let ctx = state.store.deadline_context().await?;
    let order = state
        .store
        .submit_callback(&token_hash(&token), grade, comment.as_deref(), Utc::now(), &ctx)
        .await
        .map_err(callback_error)?;
    metrics::ACTIONS.with_label_values(&["callback"]).inc();
    tracing::info!(order_id = %order.order_id, state = %order.state, "callback answered by the rater");
    Ok(Json(CallbackStatus { status: "recorded" }))
}
