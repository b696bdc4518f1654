//! 我的业务: `GET /api/v1/my-business/open-stages`. An online platform (its integration key) asks
//! which of one citizen's service stages are still open for rating — the records it reported with
//! that citizen's platform user id (kept only as a keyed digest) whose stage happened, holds no
//! rating and is within its region's default-rating days. The citizen then rates them on the
//! platform through the normal `POST /api/v1/ratings`. Rules: `hcp_domain::my_business`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use hcp_domain::my_business::{check_user_id, open_until, still_open};
use hcp_domain::{Stage, ValidationErrors};
use hcp_http::{ApiError, ApiQuery, Problem};
use serde::{Deserialize, Serialize};

use crate::gate::PlatformKey;
use crate::IngestState;

/// Query of the open stages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OpenStagesParams {
    /// The citizen's id on this platform, as given with `platform_user_id` in the service-record
    /// events (1–128 characters).
    #[param(min_length = 1, max_length = 128)]
    pub user_id: String,
}

/// A service stage the citizen may still rate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenStage {
    /// 办件编号: rate it with this and `stage` through `POST /api/v1/ratings`.
    pub service_record_no: String,
    /// `acceptance` (受理) or `pickup` (出件).
    pub stage: Stage,
    /// zh-CN name of the stage.
    pub stage_name: &'static str,
    /// When the stage happened.
    pub happened_at: DateTime<Utc>,
    /// Until when the citizen may rate it; then the default 基本满意 applies (null: the region
    /// gives no default).
    pub open_until: Option<DateTime<Utc>>,
    /// 事项编码.
    pub service_item_code: Option<String>,
    /// 事项名称.
    pub service_item_name: Option<String>,
    /// The department's name.
    pub department_name: Option<String>,
    /// The hall's name.
    pub hall_name: Option<String>,
}

/// The stages of one citizen's service records (reported by this platform) still open for rating,
/// newest first.
#[utoipa::path(
    get,
    path = "/api/v1/my-business/open-stages",
    tag = "ingest",
    params(OpenStagesParams),
    security(("channel_key" = [])),
    responses(
        (status = 200, description = "Stages still open for rating", body = [OpenStage]),
        (status = 401, description = "Channel key missing, unknown or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an online platform's integration key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad user id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No HCP_PII_KEY configured", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn open_stages(
    State(state): State<IngestState>,
    PlatformKey(key): PlatformKey,
    ApiQuery(q): ApiQuery<OpenStagesParams>,
) -> Result<Json<Vec<OpenStage>>, ApiError> {
    check_user_id("user_id", &q.user_id).map_err(|e| ApiError::Validation(ValidationErrors(vec![e])))?;
    let cipher = state.pii.as_ref().ok_or(ApiError::PiiKeyMissing)?;
    let store = &state.gate.as_ref().ok_or(ApiError::NotFound)?.store;
    let stages = store.open_stages_of_user(&key.key_id, &cipher.user_digest(&q.user_id)).await?;
    let (policies, tree) = (store.load_policies().await?, store.region_tree().await?);
    let now = Utc::now();
    let mut out = Vec::with_capacity(stages.len());
    for s in stages {
        let path = s.region_code.as_deref().map(|c| tree.path(c)).unwrap_or_default();
        let days = policies.for_region(&path).default_rating_days;
        let Some(stage) = Stage::parse(&s.stage) else { continue };
        if !still_open(s.at, days, now) {
            continue;
        }
        out.push(OpenStage {
            service_record_no: s.record.service_record_no,
            stage,
            stage_name: stage.label_zh(),
            happened_at: s.at,
            open_until: open_until(s.at, days),
            service_item_code: s.record.service_item_code,
            service_item_name: s.item_name,
            department_name: s.department_name,
            hall_name: s.hall_name,
        });
    }
    Ok(Json(out))
}
