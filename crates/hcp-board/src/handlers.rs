//! Statistics handlers.

use std::collections::HashSet;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use hcp_domain::aggregate::ALL_ID;
use hcp_domain::region::RegionLevel;
use hcp_domain::report::VerifiedCounts;
use hcp_domain::Reach;
use hcp_domain::Summary;
use hcp_domain::{time, BucketWidth, Scope};
use hcp_http::{ApiError, ApiQuery, Caller, Problem};
use hcp_store::{AggregateQuery, RankingQuery};
use serde::{Deserialize, Serialize};

use crate::BoardState;

/// Longest range one summary may cover.
const MAX_RANGE_DAYS: i64 = 400;

/// Query of `GET /api/v1/stats/summary`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// `all`, `department`, `hall`, `window`, `staff`, `service_item`, `region`, `platform`,
    /// `tag_class`, `channel` or `stage`. Default: the caller's own reach (`all` for admins and
    /// auditors, a handler's department, a supervisor's region).
    pub scope: Option<String>,
    /// The id within the scope (department / hall / window / staff id, item code, region code,
    /// platform, tag class, channel or stage name); not used with `all`.
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
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Outside the caller's department or region", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn summary(
    State(state): State<BoardState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<SummaryParams>,
) -> Result<Json<StatsSummary>, ApiError> {
    let reach = caller.reach()?;
    // Without a scope: the caller's own — the whole system, their department or their region.
    let (scope_name, default_id) = match (&p.scope, &reach) {
        (Some(s), _) => (s.as_str(), None),
        (None, Reach::All) => ("all", None),
        (None, Reach::Department(d)) => ("department", Some(d.clone())),
        (None, Reach::Region(r)) => ("region", Some(r.clone())),
    };
    let scope = parse_scope(scope_name)?;
    let id = match (scope, p.id.or(default_id)) {
        (Scope::All, _) => ALL_ID.to_string(),
        (_, Some(id)) if !id.is_empty() => id,
        _ => return Err(ApiError::InvalidQuery(format!("scope={scope_name} 需要参数 id"))),
    };
    let (from, to, width) = time_range(p.from, p.to)?;
    if !state.store.within_reach(scope, std::slice::from_ref(&id), &reach).await?.contains(&id) {
        return Err(ApiError::Forbidden(format!(
            "{} {id} 不在您的数据范围内 / outside your department or region",
            scope.as_str()
        )));
    }
    let q = AggregateQuery { scope, scope_id: id.clone(), width, from, to };
    let counts = state.store.aggregate_counts(&q).await?;
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

fn parse_scope(name: &str) -> Result<Scope, ApiError> {
    Scope::parse(name).ok_or_else(|| {
        let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::InvalidQuery(format!("未知的统计范围 scope={name}(可选 {})", all.join("、")))
    })
}

/// The effective range: `from` rounded down and `to` up to the hour (defaults: today so far),
/// summed over day rows when both ends fall on Beijing midnights, else hour rows.
fn time_range(
    from: Option<DateTime<FixedOffset>>,
    to: Option<DateTime<FixedOffset>>,
) -> Result<(DateTime<Utc>, DateTime<Utc>, BucketWidth), ApiError> {
    let now = Utc::now();
    let from = time::hour_start(from.map(|t| t.with_timezone(&Utc)).unwrap_or_else(|| time::day_start(now)));
    let to = time::hour_ceil(to.map(|t| t.with_timezone(&Utc)).unwrap_or(now));
    if to <= from {
        return Err(ApiError::InvalidQuery("结束时间 to 须晚于开始时间 from".into()));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::InvalidQuery(format!("时间范围不能超过 {MAX_RANGE_DAYS} 天")));
    }
    let width =
        if time::is_day_aligned(from) && time::is_day_aligned(to) { BucketWidth::Day } else { BucketWidth::Hour };
    Ok((from, to, width))
}

/// Query of `GET /api/v1/stats/ranking`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RankingParams {
    /// What to rank: `department`, `hall`, `window`, `staff`, `service_item`, `region`,
    /// `platform`, `tag_class`, `channel` or `stage`.
    pub scope: String,
    /// Start (RFC 3339); default the start of today, Beijing time.
    pub from: Option<DateTime<FixedOffset>>,
    /// End, exclusive (RFC 3339); default now.
    pub to: Option<DateTime<FixedOffset>>,
    /// Fewest ratings to be ranked; default 1, and the staff policy minimum for `staff`
    /// (so one angry rating cannot shame a person).
    pub min_ratings: Option<i64>,
    /// `desc` (best first, default) or `asc` (worst first).
    pub order: Option<String>,
    /// Most entries returned (1–1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// With `scope=region`: only the regions directly below this one (e.g. a city's districts).
    pub parent: Option<String>,
    /// With `scope=region`: only regions of this level, by area code (`province`, `city`,
    /// `district`, `street`, `community`).
    pub level: Option<RegionLevel>,
}

/// One ranked unit.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RankingEntry {
    /// Rank (1 is best when `order=desc`); equal rates share a rank.
    pub rank: usize,
    /// Id within the scope.
    pub id: String,
    /// Display name from the directory, when it has one.
    pub name: Option<String>,
    /// Valid ratings.
    pub total: i64,
    /// 差评 count.
    pub bad_review_count: i64,
    /// 好评率.
    pub satisfaction_rate: Option<f64>,
    /// Mean grade.
    pub average_grade: Option<f64>,
    /// How the bad reviews of the orders opened in the range were verified (核实), per cause;
    /// only for units that answer orders (department, hall, window, staff, region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<VerifiedCounts>,
    /// Staff only: the bad reviews a person answers for — founded with a conduct cause (窗口服务),
    /// never process or platform ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accountable_bad_reviews: Option<i64>,
}

/// A ranking of one scope over a time range.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ranking {
    /// The scope ranked.
    pub scope: String,
    /// Effective start.
    pub from: DateTime<Utc>,
    /// Effective end, exclusive.
    pub to: DateTime<Utc>,
    /// Fewest ratings to be ranked.
    pub min_ratings: i64,
    /// `desc` or `asc`.
    pub order: String,
    /// Ranked units, by satisfaction rate, then more ratings first, then id.
    pub entries: Vec<RankingEntry>,
    /// Units with ratings but fewer than `min_ratings`: not ranked.
    pub unranked: usize,
}

/// Ranking of departments, halls, windows, staff, items, regions, … by satisfaction rate.
#[utoipa::path(
    get,
    path = "/api/v1/stats/ranking",
    tag = "stats",
    params(RankingParams),
    responses(
        (status = 200, description = "Ranking", body = Ranking),
        (status = 400, description = "Bad parameters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Outside the caller's department or region", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ranking(
    State(state): State<BoardState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<RankingParams>,
) -> Result<Json<Ranking>, ApiError> {
    let scope = parse_scope(&p.scope)?;
    if scope == Scope::All {
        return Err(ApiError::InvalidQuery("scope=all 只有一个统计对象,无法排名".into()));
    }
    let (from, to, width) = time_range(p.from, p.to)?;
    let default_min = if scope == Scope::Staff { state.staff_min_ratings } else { 1 };
    let min_ratings = p.min_ratings.unwrap_or(default_min);
    if min_ratings < 1 {
        return Err(ApiError::InvalidQuery("min_ratings 须为正整数".into()));
    }
    let ascending = match p.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(o) => return Err(ApiError::InvalidQuery(format!("order={o} 无效(可选 desc、asc)"))),
    };
    let limit = p.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit 须在 1 到 1000 之间".into()));
    }
    let reach = caller.reach()?;
    let only = if p.parent.is_some() || p.level.is_some() {
        if scope != Scope::Region {
            return Err(ApiError::InvalidQuery("parent、level 只能与 scope=region 一起使用".into()));
        }
        let tree = state.store.region_tree().await?;
        let mut ids: Vec<String> = match &p.parent {
            Some(parent) => tree.children(Some(parent)),
            None => tree.0.keys().cloned().collect(),
        };
        if let Some(level) = p.level {
            ids.retain(|c| RegionLevel::of(c) == Some(level));
        }
        Some(ids.into_iter().collect::<HashSet<String>>())
    } else {
        None
    };
    let q = RankingQuery { scope, width, from, to, min_ratings: 1 };
    let (mut entries, unranked) =
        ranked(&state, &reach, &q, only.as_ref(), min_ratings, ascending, limit as usize).await?;
    // How the ranked units' bad reviews were verified: the ranking's own figures (the board,
    // which shares `ranked` and shows none of them, does not pay for the query on every push).
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    if let Some(verified) = state.store.verified_counts(scope, &ids, from, to).await? {
        for e in &mut entries {
            let v = verified.get(&e.id).copied().unwrap_or_default();
            e.verified = Some(v);
            e.accountable_bad_reviews = (scope == Scope::Staff).then_some(v.conduct);
        }
    }
    Ok(Json(Ranking {
        scope: scope.as_str().into(),
        from,
        to,
        min_ratings,
        order: if ascending { "asc" } else { "desc" }.into(),
        entries,
        unranked,
    }))
}

/// The units of `q.scope` within `reach` (and among `only`, when given) with at least `min_ratings` ratings in the range, ranked
/// by 好评率 (ties share a rank; more ratings, then the id, order them), at most `limit`; and how
/// many units had too few ratings to be ranked.
pub(crate) async fn ranked(
    state: &BoardState,
    reach: &Reach,
    q: &RankingQuery,
    only: Option<&HashSet<String>>,
    min_ratings: i64,
    ascending: bool,
    limit: usize,
) -> Result<(Vec<RankingEntry>, usize), ApiError> {
    let scope = q.scope;
    let mut rows = state.store.scope_counts(q).await?;
    if let Some(only) = only {
        rows.retain(|(id, _)| only.contains(id));
    }
    if *reach != Reach::All {
        let ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
        let mine = state.store.within_reach(scope, &ids, reach).await?;
        rows.retain(|(id, _)| mine.contains(id));
    }
    let (ranked, unranked): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, c)| c.total() >= min_ratings);
    let mut scored: Vec<(String, Summary)> = ranked.into_iter().map(|(id, c)| (id, c.summary(state.policy))).collect();
    let rate = |s: &Summary| s.satisfaction_rate.unwrap_or(0.0);
    scored.sort_by(|(a_id, a), (b_id, b)| {
        let by_rate = if ascending { rate(a).total_cmp(&rate(b)) } else { rate(b).total_cmp(&rate(a)) };
        by_rate.then(b.total.cmp(&a.total)).then(a_id.cmp(b_id))
    });
    scored.truncate(limit);
    let ids: Vec<String> = scored.iter().map(|(id, _)| id.clone()).collect();
    let names = state.store.directory_names(scope, &ids).await?;
    let mut entries: Vec<RankingEntry> = Vec::with_capacity(scored.len());
    for (i, (id, s)) in scored.into_iter().enumerate() {
        let rank = match entries.last() {
            Some(prev) if prev.satisfaction_rate == s.satisfaction_rate => prev.rank,
            _ => i + 1,
        };
        entries.push(RankingEntry {
            rank,
            name: names.get(&id).cloned(),
            total: s.total,
            bad_review_count: s.bad,
            satisfaction_rate: s.satisfaction_rate,
            average_grade: s.average_grade,
            verified: None,
            accountable_bad_reviews: None,
            id,
        });
    }
    Ok((entries, unranked.len()))
}
