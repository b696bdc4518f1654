//! Staff appeals (工作人员申诉): a staff account lists its own bad reviews (never who gave them)
//! and appeals them, whatever the order's progress; the order's department (handler), region
//! (supervisor) or an admin reviews (复核). The rules are `hcp_domain::staff_appeal`; the
//! transactions are the store's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use hcp_domain::staff_appeal::{AppealInput, AppealStatus};
use hcp_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, Problem};
use hcp_store::{OwnBadReview, StaffAppeal, StaffAppealError};
use serde::Deserialize;
use uuid::Uuid;

use crate::handlers::actor_of;
use crate::{metrics, WorkOrderState};

/// The staff member a staff account is bound to.
fn own_staff_id(caller: &Caller) -> Result<&str, ApiError> {
    caller
        .0
        .staff_id
        .as_deref()
        .ok_or_else(|| ApiError::Forbidden("账号未关联工作人员 / the account is bound to no staff member".into()))
}

/// A path id: anything but a UUID names nothing (404).
fn uuid_of(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

fn appeal_error(e: StaffAppealError) -> ApiError {
    match e {
        StaffAppealError::NotFound => ApiError::NotFound,
        StaffAppealError::AlreadyAppealed => {
            ApiError::Conflict("该差评已提出过申诉 / this review was appealed before".into())
        }
        StaffAppealError::AlreadyExcluded => {
            ApiError::Conflict("该评价已不计入统计,无需申诉 / the rating no longer counts".into())
        }
        StaffAppealError::AlreadyReviewed(status) => {
            ApiError::Conflict(format!("该申诉已复核({status})/ the appeal was reviewed before ({status})"))
        }
        StaffAppealError::Database(e) => e.into(),
    }
}

/// The staff member's own bad reviews, newest first (at most 500), with their orders and appeals.
#[utoipa::path(
    get,
    path = "/api/v1/my/bad-reviews",
    tag = "workorders",
    responses(
        (status = 200, description = "The caller's bad reviews (the rater is never shown)", body = [OwnBadReview]),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a staff account", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn own_reviews(
    State(state): State<WorkOrderState>,
    caller: Caller,
) -> Result<Json<Vec<OwnBadReview>>, ApiError> {
    Ok(Json(state.store.own_bad_reviews(own_staff_id(&caller)?, 500).await?))
}

/// Appeals one of the caller's own bad reviews (once per review).
#[utoipa::path(
    post,
    path = "/api/v1/my/bad-reviews/{rating_id}/appeal",
    tag = "workorders",
    params(("rating_id" = String, Path, description = "The bad rating")),
    request_body = AppealInput,
    responses(
        (status = 201, description = "Filed, pending review", body = StaffAppeal),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a staff account", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of the caller's bad reviews", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Appealed before, or no longer counted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason, or bad references", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn file(
    State(state): State<WorkOrderState>,
    caller: Caller,
    ApiPath(rating_id): ApiPath<String>,
    ApiJson(body): ApiJson<AppealInput>,
) -> Result<(StatusCode, Json<StaffAppeal>), ApiError> {
    let staff_id = own_staff_id(&caller)?;
    let appeal = body.validate().map_err(ApiError::Validation)?;
    let rating_id = uuid_of(&rating_id)?;
    let filed = state
        .store
        .file_staff_appeal(staff_id, &caller.0.sub, rating_id, &appeal, Utc::now())
        .await
        .map_err(appeal_error)?;
    metrics::STAFF_APPEALS.with_label_values(&["filed"]).inc();
    tracing::info!(appeal_id = %filed.appeal_id, %rating_id, "staff appeal filed");
    Ok((StatusCode::CREATED, Json(filed)))
}

/// Query of `GET /api/v1/staff-appeals`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppealListParams {
    /// Only appeals in this state.
    pub status: Option<AppealStatus>,
}

/// Staff appeals whose orders lie within the caller's reach (a handler's department, a
/// supervisor's region), oldest first (at most 1000).
#[utoipa::path(
    get,
    path = "/api/v1/staff-appeals",
    tag = "workorders",
    params(AppealListParams),
    responses(
        (status = 200, description = "Appeals", body = [StaffAppeal]),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a reviewing role", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<WorkOrderState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AppealListParams>,
) -> Result<Json<Vec<StaffAppeal>>, ApiError> {
    let scope = caller.reach()?;
    Ok(Json(state.store.staff_appeals(&scope, q.status.map(AppealStatus::as_str), 1000).await?))
}

/// The body of a review.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// The decision's reasons (1–2000 characters).
    #[schema(min_length = 1, max_length = 2000)]
    pub note: String,
}

/// 复核 upheld: the rating leaves the statistics and an order still open ends.
#[utoipa::path(
    post,
    path = "/api/v1/staff-appeals/{appeal_id}/uphold",
    tag = "workorders",
    params(("appeal_id" = String, Path, description = "The appeal")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "Reviewed", body = StaffAppeal),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a reviewing role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such appeal in the caller's reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Reviewed before", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No note", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn uphold(
    state: State<WorkOrderState>,
    caller: Caller,
    id: ApiPath<String>,
    body: ApiJson<ReviewBody>,
) -> Result<Json<StaffAppeal>, ApiError> {
    review(state, caller, id, body, true).await
}

/// 复核 rejected: the rating keeps counting.
#[utoipa::path(
    post,
    path = "/api/v1/staff-appeals/{appeal_id}/reject",
    tag = "workorders",
    params(("appeal_id" = String, Path, description = "The appeal")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "Reviewed", body = StaffAppeal),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a reviewing role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such appeal in the caller's reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Reviewed before", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No note", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reject(
    state: State<WorkOrderState>,
    caller: Caller,
    id: ApiPath<String>,
    body: ApiJson<ReviewBody>,
) -> Result<Json<StaffAppeal>, ApiError> {
    review(state, caller, id, body, false).await
}

async fn review(
    State(state): State<WorkOrderState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReviewBody>,
    uphold: bool,
) -> Result<Json<StaffAppeal>, ApiError> {
    let note = body.note.trim();
    if note.is_empty() || note.chars().count() > 2000 {
        return Err(ApiError::field(
            "note",
            "required",
            "须填写 1–2000 字的复核意见(note)",
            "note must be 1–2000 characters",
        ));
    }
    let scope = caller.reach()?;
    let appeal_id = uuid_of(&id)?;
    let reviewed = state
        .store
        .review_staff_appeal(&scope, &actor_of(&caller), appeal_id, uphold, note, Utc::now())
        .await
        .map_err(appeal_error)?;
    metrics::STAFF_APPEALS.with_label_values(&[reviewed.status.as_str()]).inc();
    tracing::info!(%appeal_id, status = %reviewed.status, actor = %caller.0.sub, "staff appeal reviewed");
    Ok(Json(reviewed))
}
