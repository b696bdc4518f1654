//! The supervisor board (`/board`): one snapshot of everything a board shows, scoped to the
//! viewer's reach (the whole system, a supervisor's region, a handler's department), served as
//! JSON (`GET /api/v1/board`) and pushed live (`GET /api/v1/board/stream`, Server-Sent Events).

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::Json;
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use hcp_domain::aggregate::ALL_ID;
use hcp_domain::time::{self, Month};
use hcp_domain::{BucketWidth, Channel, GradeCounts, Reach, Scope, Stage};
use hcp_http::{ApiError, ApiQuery, Caller, Problem};
use hcp_store::{AggregateQuery, OrderTimeliness, RankingQuery};
use serde::{Deserialize, Serialize};

use crate::handlers::{ranked, RankingEntry};
use crate::BoardState;

/// The vendored Apache ECharts (npm `echarts`, `dist/echarts.common.min.js`; see `assets/README.md`).
pub const ECHARTS_PATH: &str = "/assets/echarts-6.1.0.common.min.js";
static ECHARTS: &[u8] = include_bytes!("../assets/echarts-6.1.0.common.min.js");

/// Days in the trend line (today included).
pub const TREND_DAYS: i64 = 30;
/// Entries per ranking on the board.
pub const RANKING_ENTRIES: usize = 10;
/// 差评 tags listed.
pub const TOP_TAGS: i64 = 10;

/// Counts of a period with their rates.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Figures {
    /// Ratings counted.
    pub total: i64,
    /// 好评 (under the configured policy).
    pub good: i64,
    /// 差评 (grades 1–2).
    pub bad: i64,
    /// Per grade, 1 (非常不满意) … 5 (非常满意).
    pub counts: [i64; 5],
    /// 好评率 (`null` without ratings).
    pub satisfaction_rate: Option<f64>,
}

/// One hour of today (Beijing).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HourPoint {
    /// 0–23.
    pub hour: u32,
    /// Ratings.
    pub total: i64,
    /// 差评.
    pub bad: i64,
}

/// One day of the trend (Beijing).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayPoint {
    /// The date.
    pub date: NaiveDate,
    /// Ratings.
    pub total: i64,
    /// 差评.
    pub bad: i64,
    /// 好评率.
    pub satisfaction_rate: Option<f64>,
}

/// A channel's or a stage's share of today.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SplitEntry {
    /// Wire name.
    pub id: String,
    /// zh-CN name.
    pub name: String,
    /// Ratings.
    pub total: i64,
    /// 差评.
    pub bad: i64,
    /// 好评率.
    pub satisfaction_rate: Option<f64>,
}

/// One ranking of the month.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoardRanking {
    /// `department`, `hall`, `window` or `staff`.
    pub scope: String,
    /// zh-CN title.
    pub title: String,
    /// Fewest ratings to be ranked.
    pub min_ratings: i64,
    /// Best first, at most ten.
    pub entries: Vec<RankingEntry>,
    /// Units with too few ratings to be ranked.
    pub unranked: usize,
}

/// A 差评 tag and how often it was given this month.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagCount {
    /// Tag code.
    pub tag: String,
    /// Its name (the code when the directory lacks it).
    pub name: String,
    /// 差评 carrying it.
    pub count: i64,
}

/// Work orders of the reach: open now, and how this month's fared.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoardOrders {
    /// Counts (see the store's definitions).
    #[serde(flatten)]
    #[schema(inline)]
    pub counts: OrderTimeliness,
    /// 按时整改率: rectified by the deadline ÷ (rectified or past the deadline), this month's orders.
    pub on_time_rate: Option<f64>,
    /// 回访率: called back ÷ replied, this month's orders.
    pub callback_rate: Option<f64>,
}

/// An open alert within the reach.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoardAlert {
    /// Id.
    pub alert_id: i64,
    /// The rule's name.
    pub rule_name: String,
    /// `satisfaction_below` (`value` is a 好评率) or `bad_at_least` (`value` counts 差评).
    pub kind: String,
    /// The unit's scope.
    pub scope: String,
    /// The unit.
    pub scope_id: String,
    /// Its name.
    pub unit_name: Option<String>,
    /// 好评率 or 差评 count when it fired.
    pub value: f64,
    /// Ratings in the window then.
    pub ratings: i64,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
}

/// Whose board it is.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoardScope {
    /// `all`, `region` or `department`.
    pub kind: String,
    /// The region code or department id.
    pub id: Option<String>,
    /// zh-CN name.
    pub name: String,
}

/// One evaluation dimension's grades within the reach, today and this month.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DimensionEntry {
    /// Dimension code.
    pub code: String,
    /// Its name (the code when the directory lacks it).
    pub name: String,
    /// Today's grades of it.
    pub today: Figures,
    /// This month's grades of it.
    pub this_month: Figures,
}

/// Everything a board shows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoardSnapshot {
    /// Whose.
    pub scope: BoardScope,
    /// When it was read.
    pub generated_at: DateTime<Utc>,
    /// Today (Beijing).
    pub date: NaiveDate,
    /// This month, `YYYY-MM`.
    pub month: String,
    /// Today's figures.
    pub today: Figures,
    /// This month's figures.
    pub this_month: Figures,
    /// Today, hour by hour (24 points).
    pub hourly: Vec<HourPoint>,
    /// The last 30 days, today included.
    pub trend: Vec<DayPoint>,
    /// Today per channel.
    pub channels: Vec<SplitEntry>,
    /// Today per stage (受理 / 出件 …).
    pub stages: Vec<SplitEntry>,
    /// This month's rankings: departments, halls, windows, staff.
    pub rankings: Vec<BoardRanking>,
    /// This month's most frequent 差评 tags.
    pub bad_tags: Vec<TagCount>,
    /// Satisfaction per evaluation dimension graded this month (by code): its counted grades
    /// today and this month, read from the dimension rollup.
    pub dimensions: Vec<DimensionEntry>,
    /// Work orders.
    pub work_orders: BoardOrders,
    /// Open alerts.
    pub alerts: Vec<BoardAlert>,
}

fn figures(c: &GradeCounts, state: &BoardState) -> Figures {
    let s = c.summary(state.policy);
    Figures { total: s.total, good: s.good, bad: s.bad, counts: c.0, satisfaction_rate: s.satisfaction_rate }
}

fn split(rows: &[(String, GradeCounts)], name: impl Fn(&str) -> String, state: &BoardState) -> Vec<SplitEntry> {
    let mut out: Vec<SplitEntry> = rows
        .iter()
        .map(|(id, c)| {
            let s = c.summary(state.policy);
            SplitEntry {
                id: id.clone(),
                name: name(id),
                total: s.total,
                bad: s.bad,
                satisfaction_rate: s.satisfaction_rate,
            }
        })
        .collect();
    out.sort_by(|a, b| b.total.cmp(&a.total).then(a.id.cmp(&b.id)));
    out
}

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// Reads the board of `reach` at `now`.
pub async fn snapshot(state: &BoardState, reach: &Reach, now: DateTime<Utc>) -> Result<BoardSnapshot, ApiError> {
    let store = &state.store;
    let (scope, scope_id) = match reach {
        Reach::All => (Scope::All, ALL_ID.to_string()),
        Reach::Department(d) => (Scope::Department, d.clone()),
        Reach::Region(r) => (Scope::Region, r.clone()),
    };
    let name = match reach {
        Reach::All => "全部".to_string(),
        _ => store
            .directory_names(scope, std::slice::from_ref(&scope_id))
            .await?
            .remove(&scope_id)
            .unwrap_or(scope_id.clone()),
    };
    let day = time::day_start(now);
    let tomorrow = day + Duration::days(1);
    let month = Month::of(now);
    let month_start = month.start();
    let q = |width, from, to| AggregateQuery { scope, scope_id: scope_id.clone(), width, from, to };

    let today = store.aggregate_counts(&q(BucketWidth::Day, day, tomorrow)).await?;
    let this_month = store.aggregate_counts(&q(BucketWidth::Day, month_start, tomorrow)).await?;
    let mut hourly: Vec<HourPoint> = (0..24).map(|hour| HourPoint { hour, total: 0, bad: 0 }).collect();
    for (at, c) in store.aggregate_series(&q(BucketWidth::Hour, day, tomorrow)).await? {
        let hour = at.with_timezone(&time::beijing()).hour() as usize;
        hourly[hour].total += c.total();
        hourly[hour].bad += c.0[0] + c.0[1];
    }
    let trend_start = day - Duration::days(TREND_DAYS - 1);
    let by_day: HashMap<NaiveDate, GradeCounts> = store
        .aggregate_series(&q(BucketWidth::Day, trend_start, tomorrow))
        .await?
        .into_iter()
        .map(|(at, c)| (time::beijing_date(at), c))
        .collect();
    let trend = (0..TREND_DAYS)
        .map(|i| {
            let date = time::beijing_date(trend_start + Duration::days(i));
            let s = by_day.get(&date).copied().unwrap_or_default().summary(state.policy);
            DayPoint { date, total: s.total, bad: s.bad, satisfaction_rate: s.satisfaction_rate }
        })
        .collect();

    let splits = store.splits(reach, day, tomorrow).await?;
    let channels =
        split(&splits.channels, |id| Channel::parse(id).map_or(id.to_string(), |c| c.label_zh().into()), state);
    let stages = split(&splits.stages, |id| Stage::parse(id).map_or(id.to_string(), |s| s.label_zh().into()), state);

    let mut rankings = Vec::new();
    for (scope, title) in [
        (Scope::Department, "部门排名"),
        (Scope::Hall, "大厅排名"),
        (Scope::Window, "窗口排名"),
        (Scope::Staff, "工作人员排名"),
    ] {
        let min_ratings = if scope == Scope::Staff { state.staff_min_ratings } else { 1 };
        let rq = RankingQuery { scope, width: BucketWidth::Day, from: month_start, to: tomorrow, min_ratings: 1 };
        let (entries, unranked) = ranked(state, reach, &rq, None, min_ratings, false, RANKING_ENTRIES).await?;
        rankings.push(BoardRanking {
            scope: scope.as_str().into(),
            title: title.into(),
            min_ratings,
            entries,
            unranked,
        });
    }
    // The regions one level below the board's (the districts of a city, the streets of a
    // district); a department's board has none.
    if !matches!(reach, Reach::Department(_)) {
        let top = match reach {
            Reach::Region(r) => Some(r.as_str()),
            _ => None,
        };
        let below: HashSet<String> = store.region_tree().await?.ranked_below(top).into_iter().collect();
        let rq = RankingQuery {
            scope: Scope::Region,
            width: BucketWidth::Day,
            from: month_start,
            to: tomorrow,
            min_ratings: 1,
        };
        let (entries, unranked) = ranked(state, reach, &rq, Some(&below), 1, false, RANKING_ENTRIES).await?;
        rankings.push(BoardRanking {
            scope: "region".into(),
            title: "下级区域排名".into(),
            min_ratings: 1,
            entries,
            unranked,
        });
    }

    let bad_tags = store
        .bad_tags(reach, month_start, tomorrow, TOP_TAGS)
        .await?
        .into_iter()
        .map(|(tag, name, count)| TagCount { name: name.unwrap_or_else(|| tag.clone()), tag, count })
        .collect();

    let today_dims: HashMap<String, GradeCounts> =
        store.dimension_counts(reach, day, tomorrow).await?.into_iter().map(|(code, _, c)| (code, c)).collect();
    let dimensions = store
        .dimension_counts(reach, month_start, tomorrow)
        .await?
        .into_iter()
        .map(|(code, name, month_counts)| DimensionEntry {
            name: name.unwrap_or_else(|| code.clone()),
            today: figures(&today_dims.get(&code).copied().unwrap_or_default(), state),
            this_month: figures(&month_counts, state),
            code,
        })
        .collect();

    let o: OrderTimeliness = store.order_timeliness(reach, month_start, now).await?;
    let work_orders = BoardOrders {
        on_time_rate: ratio(o.rectified_on_time, o.judged),
        callback_rate: ratio(o.called_back, o.replied),
        counts: o,
    };

    let alerts = open_alerts(state, reach).await?;
    Ok(BoardSnapshot {
        scope: BoardScope { kind: scope.as_str().into(), id: (scope != Scope::All).then(|| scope_id.clone()), name },
        generated_at: now,
        date: time::beijing_date(now),
        month: month.to_string(),
        today: figures(&today, state),
        this_month: figures(&this_month, state),
        hourly,
        trend,
        channels,
        stages,
        rankings,
        bad_tags,
        dimensions,
        work_orders,
        alerts,
    })
}

/// The open alerts on units within `reach`, with the units' names.
pub(crate) async fn open_alerts(state: &BoardState, reach: &Reach) -> Result<Vec<BoardAlert>, ApiError> {
    let open = state.store.list_alerts(true, 500).await?;
    let mut by_scope: HashMap<Scope, Vec<String>> = HashMap::new();
    for a in &open {
        if let Some(scope) = Scope::parse(&a.scope) {
            by_scope.entry(scope).or_default().push(a.scope_id.clone());
        }
    }
    let mut visible: HashMap<Scope, (std::collections::HashSet<String>, HashMap<String, String>)> = HashMap::new();
    for (scope, ids) in by_scope {
        let within = state.store.within_reach(scope, &ids, reach).await?;
        let names = state.store.directory_names(scope, &ids).await?;
        visible.insert(scope, (within, names));
    }
    Ok(open
        .into_iter()
        .filter_map(|a| {
            let (within, names) = visible.get(&Scope::parse(&a.scope)?)?;
            within.contains(&a.scope_id).then(|| BoardAlert {
                alert_id: a.alert_id,
                rule_name: a.rule_name,
                kind: a.kind,
                unit_name: names.get(&a.scope_id).cloned(),
                scope: a.scope,
                scope_id: a.scope_id,
                value: a.value,
                ratings: a.ratings,
                fired_at: a.fired_at,
            })
        })
        .collect())
}

/// Query of the board: a region at any level within the caller's reach.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardParams {
    /// The board of this region (市, 区, 街道 … by area code) instead of the caller's whole reach:
    /// any region for admins and auditors, the supervisor's region or one below it.
    pub region: Option<String>,
}

/// The reach a board shows: the caller's, or a region within it (403 outside it or for a
/// department's account, 404 for a region the directory lacks).
async fn board_reach(state: &BoardState, caller: &Caller, params: &BoardParams) -> Result<Reach, ApiError> {
    let reach = caller.reach()?;
    let Some(code) = params.region.as_deref() else { return Ok(reach) };
    let tree = state.store.region_tree().await?;
    if !tree.0.contains_key(code) {
        return Err(ApiError::NotFound);
    }
    let allowed = match &reach {
        Reach::All => true,
        Reach::Region(mine) => tree.is_within(code, mine),
        Reach::Department(_) => false,
    };
    if allowed {
        Ok(Reach::Region(code.to_owned()))
    } else {
        Err(ApiError::Forbidden(format!(
            "区域 {code} 不在本账号的查看范围内 / region {code} is outside the account's reach"
        )))
    }
}

/// The board of the caller's reach, or of a region within it.
#[utoipa::path(
    get,
    path = "/api/v1/board",
    tag = "stats",
    params(BoardParams),
    responses(
        (status = 200, description = "The board: today, the month, rankings, tags, work orders, alerts", body = BoardSnapshot),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An account without its department or region, or a region outside its reach", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such region in the directory", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn board(
    State(state): State<BoardState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<BoardParams>,
) -> Result<Json<BoardSnapshot>, ApiError> {
    let reach = board_reach(&state, &caller, &params).await?;
    Ok(Json(snapshot(&state, &reach, Utc::now()).await?))
}

/// The board of the caller's reach as Server-Sent Events: a `snapshot` event (the JSON of `GET
/// /api/v1/board`) at once and after every change, keep-alive comments in between. The stream
/// ends when the session does (logout, account changed, expiry).
#[utoipa::path(
    get,
    path = "/api/v1/board/stream",
    tag = "stats",
    params(BoardParams),
    responses(
        (status = 200, description = "`text/event-stream` of `snapshot` events", content_type = "text/event-stream", body = String),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An account without its department or region, or a region outside its reach", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such region in the directory", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn board_stream(
    State(state): State<BoardState>,
    caller: Caller,
    session: hcp_http::LiveSession,
    ApiQuery(params): ApiQuery<BoardParams>,
) -> Result<impl IntoResponse, ApiError> {
    let reach = board_reach(&state, &caller, &params).await?;
    Ok(crate::live::stream(state, reach, session))
}

/// `/board`: the supervisor board page (zh-CN; it logs in and opens the stream itself).
pub async fn page() -> Html<&'static str> {
    Html(include_str!("../assets/board.html"))
}

/// The vendored ECharts, cached for a year (its path names the version).
pub async fn echarts() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        ECHARTS,
    )
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// The compiled ECharts is the file `deploy/local/vendor-echarts.sh` fetched and checked.
    #[test]
    fn vendored_echarts_is_the_recorded_file() {
        let digest: String = Sha256::digest(super::ECHARTS).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, "61f13280aba3161f77fc801bf5f9c786f55f10432153a0683fc5cc0700b013d5");
        assert!(super::ECHARTS_PATH.ends_with("echarts-6.1.0.common.min.js"));
    }
}
