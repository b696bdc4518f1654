//! The anti-gaming review list: ratings the aggregator flagged (`hcp_domain::integrity`), for
//! supervisors to review. Flagging never drops a rating; the list only shows them.

use axum::extract::State;
use axum::Json;
use hcp_http::{page_bounds, ApiError, ApiQuery, Caller, Problem};
use hcp_store::RatingRecord;
use serde::{Deserialize, Serialize};

use crate::DirectoryState;

/// Filters of the anti-gaming review list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IntegrityParams {
    /// Only `device_too_fast`, `device_burst`, `staff_burst`, `rater_is_rated_staff` or `rater_is_staff`.
    pub flag: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Offset.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A page of ratings flagged by the anti-gaming checks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = IntegrityFlaggedPage)]
pub struct FlaggedPage {
    /// Flagged ratings matching.
    pub total: i64,
    /// This page, newest first.
    pub items: Vec<RatingRecord>,
}

/// Ratings with anti-gaming flags, for supervisors to review (flagged ratings are counted unless
/// `HCP_EXCLUDE_FLAGGED_PRESSES` says otherwise).
#[utoipa::path(
    get,
    path = "/api/v1/integrity/flagged",
    tag = "directory",
    params(IntegrityParams),
    responses(
        (status = 200, description = "Flagged ratings", body = FlaggedPage),
        (status = 400, description = "Bad filter", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a supervisor, admin or auditor", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn integrity_flagged(
    State(state): State<DirectoryState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<IntegrityParams>,
) -> Result<Json<FlaggedPage>, ApiError> {
    if let Some(f) = &p.flag {
        const FLAGS: [&str; 5] =
            ["device_too_fast", "device_burst", "staff_burst", "rater_is_rated_staff", "rater_is_staff"];
        if !FLAGS.contains(&f.as_str()) {
            return Err(ApiError::InvalidQuery(format!("flag 取值须为 {}", FLAGS.join("、"))));
        }
    }
    let (limit, offset) = page_bounds(p.limit, p.offset)?;
    let (items, total) = state.store.integrity_flagged(&caller.reach()?, p.flag.as_deref(), limit, offset).await?;
    Ok(Json(FlaggedPage { total, items }))
}
