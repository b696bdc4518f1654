//! Statistics handlers.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use hcp_domain::aggregate::ALL_ID;
use hcp_domain::{time, BucketWidth, Scope};
use hcp_http::{ApiError, ApiQuery, Problem};
use hcp_store::AggregateQuery;
use serde::{Deserialize, Serialize};

use crate::BoardState;

/// Longest range one summary may cover.
const MAX_RANGE_DAYS: i64 = 400;

/// Query of `GET /api/v1/stats/summary`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// `all` (default), `department`, `window`, `staff`, `channel` or `stage`.
    pub scope: Option<String>,
    /// The department / window / staff id, channel or stage name; not used with `all`.
    pub id: Option<String>,
    /// Start (RFC 3339); default the start of today, Beijing time. Rounded down to the hour.
    pub from: Option<DateTime<FixedOffset>>,
    /// End, exclusive (RFC 3339); default now. Rounded up to the hour.
    pub to: Option<DateTime<FixedOffset>>,
}

/// Satisfaction figures for one scope and range.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatsSummary {
    /// The scope asked for.
    pub scope: String,
    /// The scope id (`all` for the whole system).
    pub id: String,
    /// Effective start (aligned to the bucket).
    pub from: DateTime<Utc>,
    /// Effective end, exclusive.
    pub to: DateTime<Utc>,
    /// `hour` or `day`: the bucket rows summed.
    pub bucket: String,
    /// Ratings per grade, keys "1" … "5".
    pub counts: std::collections::BTreeMap<String, i64>,
    /// Valid ratings counted.
    pub total: i64,
    /// 好评 under the satisfaction policy.
    pub good: i64,
    /// 差评 count (grades 1–2).
    pub bad_review_count: i64,
    /// 好评率, null without ratings.
    pub satisfaction_rate: Option<f64>,
    /// 差评率, null without ratings.
    pub bad_review_rate: Option<f64>,
    /// Mean grade, null without ratings.
    pub average_grade: Option<f64>,
}

/// Satisfaction summary for a scope and time range.
#[utoipa::path(
    get,
    path = "/api/v1/stats/summary",
    tag = "stats",
    params(SummaryParams),
    responses(
        (status = 200, description = "Summary", body = StatsSummary),
        (status = 400, description = "Bad parameters", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn summary(
    State(state): State<BoardState>,
    ApiQuery(p): ApiQuery<SummaryParams>,
) -> Result<Json<StatsSummary>, ApiError> {
    let scope_name = p.scope.as_deref().unwrap_or("all");
    let scope = Scope::parse(scope_name).ok_or_else(|| {
        ApiError::InvalidQuery(format!(
            "未知的统计范围 scope={scope_name}(可选 all、department、window、staff、channel、stage)"
        ))
    })?;
    let id = match (scope, p.id) {
        (Scope::All, _) => ALL_ID.to_string(),
        (_, Some(id)) if !id.is_empty() => id,
        _ => return Err(ApiError::InvalidQuery(format!("scope={scope_name} 需要参数 id"))),
    };
    let now = Utc::now();
    let from = time::hour_start(p.from.map(|t| t.with_timezone(&Utc)).unwrap_or_else(|| time::day_start(now)));
    let to = time::hour_ceil(p.to.map(|t| t.with_timezone(&Utc)).unwrap_or(now));
    if to <= from {
        return Err(ApiError::InvalidQuery("结束时间 to 须晚于开始时间 from".into()));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::InvalidQuery(format!("时间范围不能超过 {MAX_RANGE_DAYS} 天")));
    }
    let width =
        if time::is_day_aligned(from) && time::is_day_aligned(to) { BucketWidth::Day } else { BucketWidth::Hour };
    let q = AggregateQuery { scope, scope_id: id.clone(), width, from, to };
    let counts = state.store.aggregate_counts(&q).await.map_err(db_error)?;
    let s = counts.summary(state.policy);
    Ok(Json(StatsSummary {
        scope: scope.as_str().into(),
        id,
        from,
        to,
        bucket: width.as_str().into(),
        counts: (1..=5).map(|g| (g.to_string(), counts.0[g - 1])).collect(),
        total: s.total,
        good: s.good,
        bad_review_count: s.bad,
        satisfaction_rate: s.satisfaction_rate,
        bad_review_rate: s.bad_rate,
        average_grade: s.average_grade,
    }))
}

/// Maps a database error: unreachable → 503, anything else → 500.
pub(crate) fn db_error(e: sqlx::Error) -> ApiError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            ApiError::DatabaseUnavailable(e.to_string())
        }
        other => ApiError::Internal(other.to_string()),
    }
}
