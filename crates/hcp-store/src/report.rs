//! Reads for the monthly performance report: per unit, the month's grade counts (aggregates) and
//! how its work orders went.

use chrono::{DateTime, Utc};
use hcp_domain::report::{ReportLevel, UnitFacts};
use hcp_domain::{BucketWidth, GradeCounts, Scope};

use crate::{Error, Store};

/// One unit's month: its counted ratings per grade and how its work orders went.
#[derive(sqlx::FromRow)]
struct UnitRow {
    id: String,
    name: Option<String>,
    n1: i64,
    n2: i64,
    n3: i64,
    n4: i64,
    n5: i64,
    orders: i64,
    on_time: i64,
    late: i64,
    overdue: i64,
    upheld: i64,
}

impl Store {
    /// Every unit of `level` with ratings or work orders in `[from, to)`, ordered by id: counted
    /// ratings per grade (day buckets), and of the work orders opened in the range how many were
    /// rectified by their deadline, after it, are still open past it at `now`, or ended with an
    /// upheld appeal.
    pub async fn report_units(
        &self,
        level: ReportLevel,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<UnitFacts>, Error> {
        let (scope, unit, names) = match level {
            ReportLevel::Department => (Scope::Department, "o.department_id", "departments"),
            ReportLevel::Hall => (Scope::Hall, "r.attr_hall_id", "halls"),
            ReportLevel::Staff => (Scope::Staff, "o.staff_id", "staff"),
        };
        let sql = format!(
            "WITH agg AS (
                SELECT scope_id AS id, SUM(n1)::int8 AS n1, SUM(n2)::int8 AS n2, SUM(n3)::int8 AS n3,
                       SUM(n4)::int8 AS n4, SUM(n5)::int8 AS n5
                  FROM rating_aggregates
                 WHERE scope = $1 AND width = $2 AND bucket_start >= $3 AND bucket_start < $4
                 GROUP BY scope_id),
             wo AS (
                SELECT {unit} AS id, count(*) AS orders,
                       count(*) FILTER (WHERE o.rectified_at IS NOT NULL AND o.rectified_at <= o.rectify_due_at) AS on_time,
                       count(*) FILTER (WHERE o.rectified_at > o.rectify_due_at) AS late,
                       count(*) FILTER (WHERE o.rectified_at IS NULL AND o.state NOT IN ('closed', 'appeal_upheld')
                                          AND o.rectify_due_at < $5) AS overdue,
                       count(*) FILTER (WHERE o.state = 'appeal_upheld') AS upheld
                  FROM work_orders o JOIN ratings r ON r.rating_id = o.rating_id
                 WHERE o.opened_at >= $3 AND o.opened_at < $4 AND {unit} IS NOT NULL
                 GROUP BY 1)
             SELECT COALESCE(agg.id, wo.id) AS id, n.name,
                    COALESCE(agg.n1, 0) AS n1, COALESCE(agg.n2, 0) AS n2, COALESCE(agg.n3, 0) AS n3,
                    COALESCE(agg.n4, 0) AS n4, COALESCE(agg.n5, 0) AS n5,
                    COALESCE(wo.orders, 0) AS orders, COALESCE(wo.on_time, 0) AS on_time,
                    COALESCE(wo.late, 0) AS late, COALESCE(wo.overdue, 0) AS overdue, COALESCE(wo.upheld, 0) AS upheld
               FROM agg FULL JOIN wo ON wo.id = agg.id
               LEFT JOIN {names} n ON n.id = COALESCE(agg.id, wo.id)
              ORDER BY 1"
        );
        let rows: Vec<UnitRow> = sqlx::query_as(&sql)
            .bind(scope.as_str())
            .bind(BucketWidth::Day.as_str())
            .bind(from)
            .bind(to)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| UnitFacts {
                name: r.name.unwrap_or_else(|| r.id.clone()),
                id: r.id,
                counts: GradeCounts([r.n1, r.n2, r.n3, r.n4, r.n5]),
                work_orders: r.orders,
                rectified_on_time: r.on_time,
                rectified_late: r.late,
                overdue_open: r.overdue,
                appeals_upheld: r.upheld,
            })
            .collect())
    }
}
