//! Reads over the aggregate rows.

use chrono::{DateTime, Utc};
use hcp_domain::{BucketWidth, GradeCounts, Scope};

use crate::reach::unit_reach_condition;
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

/// Per-id grade counts of one scope over `[from, to)`, for rankings.
#[derive(Debug, Clone)]
pub struct RankingQuery {
    /// Scope kind (not `all`).
    pub scope: Scope,
    /// Which bucket rows to sum.
    pub width: BucketWidth,
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
    /// Ids with fewer ratings are left out.
    pub min_ratings: i64,
}

impl Store {
    /// Every id of the scope with at least `min_ratings` ratings in the range, with its counts.
    pub async fn scope_counts(&self, q: &RankingQuery) -> Result<Vec<(String, GradeCounts)>, Error> {
        let rows: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT scope_id, SUM(n1)::int8, SUM(n2)::int8, SUM(n3)::int8, SUM(n4)::int8, SUM(n5)::int8
               FROM rating_aggregates
              WHERE scope = $1 AND width = $2 AND bucket_start >= $3 AND bucket_start < $4
              GROUP BY scope_id
             HAVING SUM(n1 + n2 + n3 + n4 + n5) >= $5",
        )
        .bind(q.scope.as_str())
        .bind(q.width.as_str())
        .bind(q.from)
        .bind(q.to)
        .bind(q.min_ratings.max(1))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, a, b, c, d, e)| (id, GradeCounts([a, b, c, d, e]))).collect())
    }

    /// Display names of directory ids of a scope (empty for scopes without a directory table).
    pub async fn directory_names(
        &self,
        scope: Scope,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, Error> {
        let (table, key) = match scope {
            Scope::Department => ("departments", "id"),
            Scope::Window => ("windows", "id"),
            Scope::Staff => ("staff", "id"),
            Scope::Hall => ("halls", "id"),
            Scope::ServiceItem => ("service_items", "code"),
            Scope::Region => ("regions", "code"),
            _ => return Ok(Default::default()),
        };
        let rows: Vec<(String, String)> =
            sqlx::query_as(&format!("SELECT {key}, name FROM {table} WHERE {key} = ANY($1)"))
                .bind(ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Which of `ids` (units of `scope`) lie within `reach`: a handler's department covers the
    /// department, its staff, its service items and the windows serving it; a supervisor's region
    /// covers every unit whose region is that one or below it. Scopes without a place (all,
    /// platform, tag class, channel, stage) and halls for a department are outside any reach
    /// but [`Reach::All`].
    pub async fn within_reach(
        &self,
        scope: Scope,
        ids: &[String],
        reach: &hcp_domain::Reach,
    ) -> Result<std::collections::HashSet<String>, Error> {
        use hcp_domain::Reach;
        let units = match scope {
            Scope::Department => "SELECT id, region_code AS reg, ARRAY[id] AS depts FROM departments",
            Scope::Staff => {
                "SELECT s.id, d.region_code AS reg, ARRAY[s.department_id] AS depts \
                 FROM staff s JOIN departments d ON d.id = s.department_id"
            }
            Scope::ServiceItem => {
                "SELECT i.code AS id, d.region_code AS reg, ARRAY[i.department_id] AS depts \
                 FROM service_items i JOIN departments d ON d.id = i.department_id"
            }
            Scope::Window => {
                "SELECT w.id, h.region_code AS reg, w.department_ids AS depts FROM windows w JOIN halls h ON h.id = w.hall_id"
            }
            Scope::Hall => "SELECT id, region_code AS reg, ARRAY[]::text[] AS depts FROM halls",
            Scope::Region => "SELECT code AS id, code AS reg, ARRAY[]::text[] AS depts FROM regions",
            _ => return Ok(match reach {
                Reach::All => ids.iter().cloned().collect(),
                _ => Default::default(),
            }),
        };
        let Some((condition, arg)) = unit_reach_condition(reach, 2) else {
            return Ok(ids.iter().cloned().collect());
        };
        let rows: Vec<(String,)> =
            sqlx::query_as(&format!("SELECT u.id FROM ({units}) u WHERE u.id = ANY($1) AND {condition}"))
                .bind(ids)
                .bind(arg)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}

impl Store {
    /// Every department in the directory with its grade counts over `[from, to)` (day buckets;
    /// zero when it had no ratings), ordered by id: the public disclosure's rows.
    pub async fn department_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, String, GradeCounts)>, Error> {
        let rows: Vec<(String, String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT d.id, d.name, COALESCE(SUM(a.n1), 0)::int8, COALESCE(SUM(a.n2), 0)::int8,
                    COALESCE(SUM(a.n3), 0)::int8, COALESCE(SUM(a.n4), 0)::int8, COALESCE(SUM(a.n5), 0)::int8
               FROM departments d
               LEFT JOIN rating_aggregates a
                      ON a.scope = $1 AND a.scope_id = d.id AND a.width = $2
                     AND a.bucket_start >= $3 AND a.bucket_start < $4
              GROUP BY d.id, d.name
              ORDER BY d.id",
        )
        .bind(Scope::Department.as_str())
        .bind(BucketWidth::Day.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, name, a, b, c, d, e)| (id, name, GradeCounts([a, b, c, d, e]))).collect())
    }
}

impl Store {
    /// The directory's regions as a tree (code → parent).
    pub async fn region_tree(&self) -> Result<hcp_domain::region::RegionTree, Error> {
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT code, parent_code FROM regions").fetch_all(&self.pool).await?;
        Ok(hcp_domain::region::RegionTree::new(rows))
    }
}
