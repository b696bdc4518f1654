//! Reads over the aggregate rows.

use chrono::{DateTime, Utc};
use hcp_domain::{BucketWidth, GradeCounts, Scope};

use crate::{Error, Store};

/// Sum of one scope's grade counts over `[from, to)` in buckets of `width`.
#[derive(Debug, Clone)]
pub struct AggregateQuery {
    /// Scope kind.
    pub scope: Scope,
    /// Scope id ([`hcp_domain::aggregate::ALL_ID`] for [`Scope::All`]).
    pub scope_id: String,
    /// Which bucket rows to sum; `from` and `to` must be aligned to it.
    pub width: BucketWidth,
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
}

impl Store {
    /// The grade counts of one scope over a time range.
    pub async fn aggregate_counts(&self, q: &AggregateQuery) -> Result<GradeCounts, Error> {
        let row: (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(n1), 0)::int8, COALESCE(SUM(n2), 0)::int8, COALESCE(SUM(n3), 0)::int8,
                    COALESCE(SUM(n4), 0)::int8, COALESCE(SUM(n5), 0)::int8
               FROM rating_aggregates
              WHERE scope = $1 AND scope_id = $2 AND width = $3
                AND bucket_start >= $4 AND bucket_start < $5",
        )
        .bind(q.scope.as_str())
        .bind(&q.scope_id)
        .bind(q.width.as_str())
        .bind(q.from)
        .bind(q.to)
        .fetch_one(&self.pool)
        .await?;
        Ok(GradeCounts([row.0, row.1, row.2, row.3, row.4]))
    }

    /// Ratings stored, including superseded ones (history).
    pub async fn count_ratings(&self) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT count(*) FROM ratings").fetch_one(&self.pool).await
    }

    /// The stored next offset of every partition of `topic` for `group`.
    pub async fn positions(&self, group: &str, topic: &str) -> Result<Vec<(i32, i64)>, Error> {
        sqlx::query_as(
            "SELECT partition, next_offset FROM consumer_positions WHERE group_id = $1 AND topic = $2 ORDER BY partition",
        )
        .bind(group)
        .bind(topic)
        .fetch_all(&self.pool)
        .await
    }
}
