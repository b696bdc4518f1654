//! One stored rating's record, for supervisors, auditors and the callback role.

use axum::extract::State;
use axum::Json;
use hcp_http::{ApiError, ApiPath, Caller, Problem};
use hcp_store::RatingRecord;
use uuid::Uuid;

use crate::BoardState;

/// A stored rating's record: attribution, whether it counts, an appeal exclusion with its
/// reason, the rater masked.
#[utoipa::path(
    get,
    path = "/api/v1/ratings/{rating_id}",
    tag = "stats",
    params(("rating_id" = String, Path, description = "Rating id")),
    responses(
        (status = 200, description = "The rating", body = RatingRecord),
        (status = 404, description = "Not stored (yet), or outside a supervisor's region", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rating_record(
    State(state): State<BoardState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RatingRecord>, ApiError> {
    state
        .store
        .rating_record_within(&caller.reach()?, Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}
