//! Reads for the monthly performance report: per unit, the month's grade counts (aggregates) and
//! how its work orders went. A work order carries its rating's attributed hall, window and staff
//! member (migration 30), so the unit figures never read `ratings` and still count once a
//! month's ratings are archived (`hcp ratings archive`); only the process-review list reads the
//! rating (its tags and text, `LEFT JOIN`), and lacks them for an archived month
//! (docs/retention.md).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hcp_domain::report::{ProcessReviewRow, ReportDimension, ReportLevel, UnitFacts, VerifiedCounts};
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
    v_conduct: i64,
    v_process: i64,
    v_platform: i64,
    v_unfounded: i64,
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
        // `unit`: whose work orders; `judged`: whose service the verification judged (a staff
        // member's conduct is theirs even when the order went to the item's department).
        // A region's orders are those of its region path (the region and the ones below it).
        let (scope, unit, judged, names) = match level {
            ReportLevel::Region => (Scope::Region, "reg.code", "reg.code", "(SELECT code AS id, name FROM regions)"),
            ReportLevel::Department => (Scope::Department, "o.department_id", "o.department_id", "departments"),
            ReportLevel::Hall => (Scope::Hall, "o.attr_hall_id", "o.attr_hall_id", "halls"),
            ReportLevel::Staff => (Scope::Staff, "o.staff_id", "COALESCE(o.staff_id, o.attr_staff_id)", "staff"),
        };
        let regions =
            if level == ReportLevel::Region { "CROSS JOIN LATERAL unnest(o.region_path) AS reg(code)" } else { "" };
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
                  FROM work_orders o {regions}
                 WHERE o.opened_at >= $3 AND o.opened_at < $4 AND {unit} IS NOT NULL
                 GROUP BY 1),
             vc AS (
                SELECT {judged} AS id,
                       count(*) FILTER (WHERE o.founded AND o.cause = 'conduct') AS v_conduct,
                       count(*) FILTER (WHERE o.founded AND o.cause = 'process') AS v_process,
                       count(*) FILTER (WHERE o.founded AND o.cause = 'platform') AS v_platform,
                       count(*) FILTER (WHERE NOT o.founded) AS v_unfounded
                  FROM work_orders o {regions}
                 WHERE o.opened_at >= $3 AND o.opened_at < $4 AND {judged} IS NOT NULL AND o.founded IS NOT NULL
                 GROUP BY 1),
             units AS (SELECT agg.id FROM agg UNION SELECT wo.id FROM wo UNION SELECT vc.id FROM vc)
             SELECT u.id, n.name,
                    COALESCE(agg.n1, 0) AS n1, COALESCE(agg.n2, 0) AS n2, COALESCE(agg.n3, 0) AS n3,
                    COALESCE(agg.n4, 0) AS n4, COALESCE(agg.n5, 0) AS n5,
                    COALESCE(wo.orders, 0) AS orders, COALESCE(wo.on_time, 0) AS on_time,
                    COALESCE(wo.late, 0) AS late, COALESCE(wo.overdue, 0) AS overdue, COALESCE(wo.upheld, 0) AS upheld,
                    COALESCE(vc.v_conduct, 0) AS v_conduct, COALESCE(vc.v_process, 0) AS v_process,
                    COALESCE(vc.v_platform, 0) AS v_platform, COALESCE(vc.v_unfounded, 0) AS v_unfounded
               FROM units u
               LEFT JOIN agg ON agg.id = u.id
               LEFT JOIN wo ON wo.id = u.id
               LEFT JOIN vc ON vc.id = u.id
               LEFT JOIN {names} n ON n.id = u.id
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
        let dims: Vec<(String, String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT scope_id, dimension, SUM(n1)::int8, SUM(n2)::int8, SUM(n3)::int8, SUM(n4)::int8, SUM(n5)::int8
               FROM rating_dimension_aggregates
              WHERE scope = $1 AND day_start >= $2 AND day_start < $3
              GROUP BY scope_id, dimension",
        )
        .bind(scope.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut by_unit: HashMap<String, std::collections::BTreeMap<String, GradeCounts>> = HashMap::new();
        for (id, code, a, b, c, d, e) in dims {
            by_unit.entry(id).or_default().insert(code, GradeCounts([a, b, c, d, e]));
        }
        Ok(rows
            .into_iter()
            .map(|r| UnitFacts {
                dimensions: by_unit.remove(&r.id).unwrap_or_default(),
                name: r.name.unwrap_or_else(|| r.id.clone()),
                id: r.id,
                counts: GradeCounts([r.n1, r.n2, r.n3, r.n4, r.n5]),
                work_orders: r.orders,
                rectified_on_time: r.on_time,
                rectified_late: r.late,
                overdue_open: r.overdue,
                appeals_upheld: r.upheld,
                verified: VerifiedCounts {
                    conduct: r.v_conduct,
                    process: r.v_process,
                    platform: r.v_platform,
                    unfounded: r.v_unfounded,
                },
            })
            .collect())
    }
}

impl Store {
    /// The evaluation dimensions graded in `[from, to)` (every dimension grade counts in the
    /// `all` scope), by code, with their names: the report's dimension columns.
    pub async fn report_dimensions(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ReportDimension>, Error> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT a.dimension, d.name FROM rating_dimension_aggregates a
               LEFT JOIN dimensions d ON d.code = a.dimension
              WHERE a.scope = 'all' AND a.day_start >= $1 AND a.day_start < $2
              GROUP BY a.dimension, d.name
             HAVING SUM(a.n1 + a.n2 + a.n3 + a.n4 + a.n5) > 0
              ORDER BY 1",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(code, name)| ReportDimension { name: name.unwrap_or_else(|| code.clone()), code })
            .collect())
    }

    /// The founded process-cause bad reviews verified in `[from, to)`, per department (for 论证),
    /// oldest verification first, with the 流程论证 measures recorded on each.
    pub async fn process_review_list(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ProcessReviewRow>, Error> {
        let rows: Vec<ReviewRow> = sqlx::query_as(
            "SELECT o.department_id, d.name AS department_name, o.order_no,
                    to_char(o.verified_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS') AS verified_at,
                    COALESCE(i.name, r.service_item_code, '') AS service_item, o.grade,
                    array_to_string(r.tags, ',') AS tags, COALESCE(r.comment, '') AS text,
                    COALESCE((SELECT l.note FROM work_order_log l WHERE l.order_id = o.order_id AND l.action = 'verify'
                               ORDER BY l.event_id DESC LIMIT 1), '') AS verify_note,
                    COALESCE((SELECT string_agg(a.note, ';' ORDER BY a.id) FROM accountability_actions a
                               WHERE a.order_id = o.order_id AND a.kind = 'process_review'), '') AS reviews
               FROM work_orders o
               LEFT JOIN ratings r ON r.rating_id = o.rating_id
               LEFT JOIN departments d ON d.id = o.department_id
               LEFT JOIN service_items i ON i.code = r.service_item_code
              WHERE o.founded AND o.cause = 'process' AND o.department_id IS NOT NULL
                AND o.verified_at >= $1 AND o.verified_at < $2
              ORDER BY o.department_id, o.verified_at, o.order_no",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ProcessReviewRow {
                department_name: r.department_name.unwrap_or_else(|| r.department_id.clone()),
                department_id: r.department_id,
                order_no: r.order_no,
                verified_at: r.verified_at,
                service_item: r.service_item,
                grade: r.grade,
                tags: r.tags,
                text: r.text,
                verify_note: r.verify_note,
                reviews: r.reviews,
            })
            .collect())
    }
}

/// One founded process-cause order as read.
#[derive(sqlx::FromRow)]
struct ReviewRow {
    department_id: String,
    department_name: Option<String>,
    order_no: i64,
    verified_at: String,
    service_item: String,
    grade: i16,
    tags: String,
    text: String,
    verify_note: String,
    reviews: String,
}

impl Store {
    /// Verification outcomes per unit of `scope` among `ids`, over the orders opened in
    /// `[from, to)`: a department's orders, a hall's or window's bad reviews, a staff member's
    /// (their conduct is theirs even when the order went to the item's department), a region's
    /// (with the regions below it). `None` for scopes whose units answer no order (items,
    /// channels, …).
    pub async fn verified_counts(
        &self,
        scope: Scope,
        ids: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<HashMap<String, VerifiedCounts>>, Error> {
        let judged = match scope {
            Scope::Department => "o.department_id",
            Scope::Hall => "o.attr_hall_id",
            Scope::Window => "COALESCE(o.window_id, o.attr_window_id)",
            Scope::Staff => "COALESCE(o.staff_id, o.attr_staff_id)",
            Scope::Region => "reg.code",
            _ => return Ok(None),
        };
        let regions = if scope == Scope::Region { "CROSS JOIN LATERAL unnest(o.region_path) AS reg(code)" } else { "" };
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(&format!(
            "SELECT {judged} AS id,
                    count(*) FILTER (WHERE o.founded AND o.cause = 'conduct'),
                    count(*) FILTER (WHERE o.founded AND o.cause = 'process'),
                    count(*) FILTER (WHERE o.founded AND o.cause = 'platform'),
                    count(*) FILTER (WHERE NOT o.founded)
               FROM work_orders o {regions}
              WHERE o.opened_at >= $1 AND o.opened_at < $2 AND o.founded IS NOT NULL AND {judged} = ANY($3)
              GROUP BY 1"
        ))
        .bind(from)
        .bind(to)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(
            rows.into_iter()
                .map(|(id, conduct, process, platform, unfounded)| {
                    (id, VerifiedCounts { conduct, process, platform, unfounded })
                })
                .collect(),
        ))
    }
}
