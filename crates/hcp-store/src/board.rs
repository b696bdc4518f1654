//! The live board's reads: bucket series of one aggregate row, the channel / stage split and the
//! top 差评 tags of a period within a reach, work-order timeliness within a reach, and the
//! `hcp_board` notifications that say a board must re-read.

use chrono::{DateTime, Utc};
use hcp_domain::{GradeCounts, Reach};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;

use crate::reach::scope_condition;
use crate::read::AggregateQuery;
use crate::{Error, Store};

/// The channel of the `NOTIFY` sent when aggregates, work orders or alerts change.
pub const BOARD_CHANNEL: &str = "hcp_board";

/// Grade counts of a period split by channel and by stage (wire names, by name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Splits {
    /// Per channel.
    pub channels: Vec<(String, GradeCounts)>,
    /// Per stage.
    pub stages: Vec<(String, GradeCounts)>,
}

/// Work orders within a reach: open ones now, and how the orders opened since a date fared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderTimeliness {
    /// Open orders (not closed, appeal not upheld).
    pub open: i64,
    /// Open orders past their deadline.
    pub overdue: i64,
    /// Open orders close to their deadline.
    pub near_due: i64,
    /// Orders opened in the period.
    pub opened: i64,
    /// Of those, rectified, or unrectified past the deadline (an upheld appeal is not judged).
    pub judged: i64,
    /// Of those, rectified by the deadline.
    pub rectified_on_time: i64,
    /// Orders of the period with a reply to the rater.
    pub replied: i64,
    /// Of those, called back (回访).
    pub called_back: i64,
}

/// A code, its name in the directory, and five grade counts, as read.
type NamedCounts = (String, Option<String>, i64, i64, i64, i64, i64);

/// The aggregate scope key (`scope:id`, as in `agg_scopes`) a reach covers, `None` for all.
pub fn reach_key(reach: &Reach) -> Option<String> {
    match reach {
        Reach::All => None,
        Reach::Department(d) => Some(format!("department:{d}")),
        Reach::Region(r) => Some(format!("region:{r}")),
    }
}

/// The split rollup's reach key of a reach (`all:all` for everything).
fn reach_scope_key(reach: &Reach) -> String {
    reach_key(reach).unwrap_or_else(|| "all:all".into())
}

impl Store {
    /// The rows of one aggregate over `[from, to)`, a bucket each (only buckets with rows).
    pub async fn aggregate_series(&self, q: &AggregateQuery) -> Result<Vec<(DateTime<Utc>, GradeCounts)>, Error> {
        let rows: Vec<(DateTime<Utc>, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT bucket_start, n1, n2, n3, n4, n5 FROM rating_aggregates
              WHERE scope = $1 AND scope_id = $2 AND width = $3 AND bucket_start >= $4 AND bucket_start < $5
              ORDER BY bucket_start",
        )
        .bind(q.scope.as_str())
        .bind(&q.scope_id)
        .bind(q.width.as_str())
        .bind(q.from)
        .bind(q.to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(t, a, b, c, d, e)| (t, GradeCounts([a, b, c, d, e]))).collect())
    }

    /// Counted ratings (not replaced by a follow-up, not excluded by an appeal) of the Beijing
    /// days in `[from, to)` within `reach`, split by channel and by stage: a read of the split
    /// rollup (`rating_splits`), a row per day and channel or stage.
    pub async fn splits(&self, reach: &Reach, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Splits, Error> {
        let rows: Vec<(String, String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT dimension, value, SUM(n1)::int8, SUM(n2)::int8, SUM(n3)::int8, SUM(n4)::int8, SUM(n5)::int8
               FROM rating_splits
              WHERE reach = $1 AND dimension IN ('channel', 'stage') AND day_start >= $2 AND day_start < $3
              GROUP BY dimension, value
             HAVING SUM(n1 + n2 + n3 + n4 + n5) > 0
              ORDER BY 1, 2",
        )
        .bind(reach_scope_key(reach))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Splits::default();
        for (dimension, value, a, b, c, d, e) in rows {
            let counts = GradeCounts([a, b, c, d, e]);
            match dimension.as_str() {
                "channel" => out.channels.push((value, counts)),
                _ => out.stages.push((value, counts)),
            }
        }
        Ok(out)
    }

    /// The most frequent tags of counted 差评 of the Beijing days in `[from, to)` within
    /// `reach`: `(code, name, count)`, most first (from the split rollup).
    pub async fn bad_tags(
        &self,
        reach: &Reach,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(String, Option<String>, i64)>, Error> {
        sqlx::query_as(
            "SELECT s.value, d.name, SUM(s.n1 + s.n2)::int8 FROM rating_splits s
               LEFT JOIN tags d ON d.code = s.value
              WHERE s.reach = $1 AND s.dimension = 'tag' AND s.day_start >= $2 AND s.day_start < $3
              GROUP BY s.value, d.name
             HAVING SUM(s.n1 + s.n2) > 0
              ORDER BY 3 DESC, 1 LIMIT $4",
        )
        .bind(reach_scope_key(reach))
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Counted dimension grades of the Beijing days in `[from, to)` within `reach`, per
    /// dimension: `(code, name, counts)` by code (from the dimension rollup: the reach is one of
    /// its scopes, `all:all`, `department:…` or `region:…`).
    pub async fn dimension_counts(
        &self,
        reach: &Reach,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, Option<String>, GradeCounts)>, Error> {
        let key = reach_scope_key(reach);
        let (scope, scope_id) = key.split_once(':').unwrap_or(("all", "all"));
        let rows: Vec<NamedCounts> = sqlx::query_as(
            "SELECT a.dimension, d.name, SUM(a.n1)::int8, SUM(a.n2)::int8, SUM(a.n3)::int8, SUM(a.n4)::int8,
                    SUM(a.n5)::int8
               FROM rating_dimension_aggregates a LEFT JOIN dimensions d ON d.code = a.dimension
              WHERE a.scope = $1 AND a.scope_id = $2 AND a.day_start >= $3 AND a.day_start < $4
              GROUP BY a.dimension, d.name
             HAVING SUM(a.n1 + a.n2 + a.n3 + a.n4 + a.n5) > 0
              ORDER BY 1",
        )
        .bind(scope)
        .bind(scope_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(code, name, a, b, c, d, e)| (code, name, GradeCounts([a, b, c, d, e]))).collect())
    }

    /// Work orders within `reach` (a handler's department, a supervisor's region): open ones
    /// at `now` and the fate of those opened since `since` (reads only those two sets, through
    /// the open-order and opened-at indexes, never every order ever opened).
    pub async fn order_timeliness(
        &self,
        reach: &Reach,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<OrderTimeliness, Error> {
        let (scope_sql, scope_arg) = scope_condition(reach, 1);
        let row: (i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(&format!(
            "WITH scoped AS (
                SELECT *, state NOT IN ('closed', 'appeal_upheld') AS is_open FROM work_orders o
                 WHERE (o.state NOT IN ('closed', 'appeal_upheld') OR o.opened_at >= $2) AND {scope_sql})
             SELECT count(*) FILTER (WHERE is_open),
                    count(*) FILTER (WHERE is_open AND due_status = 'overdue'),
                    count(*) FILTER (WHERE is_open AND due_status = 'near_due'),
                    count(*) FILTER (WHERE opened_at >= $2),
                    count(*) FILTER (WHERE opened_at >= $2 AND state <> 'appeal_upheld'
                                       AND (rectified_at IS NOT NULL OR rectify_due_at < $3)),
                    count(*) FILTER (WHERE opened_at >= $2 AND state <> 'appeal_upheld' AND rectified_at <= rectify_due_at),
                    count(*) FILTER (WHERE opened_at >= $2 AND replied_at IS NOT NULL),
                    count(*) FILTER (WHERE opened_at >= $2 AND replied_at IS NOT NULL AND callback_grade IS NOT NULL)
               FROM scoped"
        ))
        .bind(scope_arg)
        .bind(since)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let (open, overdue, near_due, opened, judged, rectified_on_time, replied, called_back) = row;
        Ok(OrderTimeliness { open, overdue, near_due, opened, judged, rectified_on_time, replied, called_back })
    }

    /// A listener on [`BOARD_CHANNEL`] (its own connection, reconnecting on loss).
    pub async fn board_listener(&self) -> Result<PgListener, Error> {
        let mut listener = PgListener::connect_with(self.listen_pool()).await?;
        listener.listen(BOARD_CHANNEL).await?;
        Ok(listener)
    }
}
