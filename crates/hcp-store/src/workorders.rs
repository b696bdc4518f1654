//! Bad-review work orders: opening inside the aggregator's batch transaction, the audit log
//! (which is also the outbox of `hcp.workorder.event.v1`), actions with their side effects
//! (an upheld appeal's compensating exclusion), the overdue sweep, callback invitations, the
//! notification outbox and the deadline policies.

use chrono::{DateTime, Utc};
use hcp_domain::workorder::{due_status, Assignment, DueStatus, OrderDeadlines, Refused, DEFAULT_POLICY_REGION};
use hcp_domain::{
    Action, DeadlinePolicy, Grade, MaskedRater, OrderState, Policies, Rollup, SealedRater, WorkCalendar, WorkOrderEvent,
};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::batch::{facts_from_row, upsert_aggregates};
use crate::{Error, Store};

/// The advisory-lock key of the event relay ("hcp_rel").
const RELAY_LOCK: i64 = 0x0068_6370_5f72_656c;

/// A work order the aggregator opens for a new bad rating.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The order's id.
    pub order_id: Uuid,
    /// The bad rating.
    pub rating_id: Uuid,
    /// Its grade (1 or 2).
    pub grade: Grade,
    /// When it opens: the rating's receipt, so a recomputation gives the same deadlines.
    pub opened_at: DateTime<Utc>,
    /// Whom it is assigned to.
    pub assignment: Assignment,
    /// The region and its ancestors, nearest first.
    pub region_path: Vec<String>,
    /// Its deadlines under the region's policy.
    pub deadlines: OrderDeadlines,
}

/// The SQL of the deadline that runs in the order's current state (see
/// [`OrderState::running_deadline`]).
const CURRENT_DUE: &str = "CASE WHEN o.state IN ('opened', 'claimed', 'reopened') THEN o.contact_due_at
     WHEN o.state IN ('contacted', 'verified', 'rectified') THEN o.rectify_due_at END";

const ORDER_COLUMNS: &str = "o.order_id, o.order_no, o.rating_id, o.state, o.founded, o.basis, o.department_id,
    o.window_id, o.staff_id, o.platform, o.region_code, o.grade, o.opened_at, o.contact_due_at,
    o.rectify_due_at, o.provisional, o.due_status, o.escalated_at, o.contacted_at, o.rectified_at,
    o.replied_at, o.closed_at, o.callback_grade, o.appeal_reason, o.updated_at,
    (SELECT name FROM departments WHERE id = o.department_id) AS department_name,
    (SELECT name FROM windows WHERE id = o.window_id) AS window_name,
    (SELECT name FROM staff WHERE id = o.staff_id) AS staff_name";

/// A work order as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkOrder {
    /// Id.
    pub order_id: Uuid,
    /// Human-readable number (差评工单号).
    pub order_no: i64,
    /// The bad rating it answers.
    pub rating_id: Uuid,
    /// Lifecycle state (`opened`, `claimed`, … `closed`, `appeal_upheld`).
    pub state: String,
    /// 核实 result: 属实 (true) / 不属实 (false), once verified.
    pub founded: Option<bool>,
    /// Why this unit answers: `conduct`, `process`, `platform` or `general`.
    pub basis: String,
    /// Responsible department (none: unassigned, for supervisors).
    pub department_id: Option<String>,
    /// Its name, from the directory.
    pub department_name: Option<String>,
    /// The window's name.
    pub window_name: Option<String>,
    /// The staff member's name.
    pub staff_name: Option<String>,
    /// Window, for conduct.
    pub window_id: Option<String>,
    /// Staff member, for conduct.
    pub staff_id: Option<String>,
    /// Platform, for platform tags.
    pub platform: Option<String>,
    /// Region.
    pub region_code: Option<String>,
    /// The rating's grade.
    pub grade: i16,
    /// Opened.
    pub opened_at: DateTime<Utc>,
    /// Contact the rater by.
    pub contact_due_at: DateTime<Utc>,
    /// Verify, rectify and reply by.
    pub rectify_due_at: DateTime<Utc>,
    /// The deadline running now (none while an appeal is reviewed, after the reply, or ended).
    pub due_at: Option<DateTime<Utc>>,
    /// A deadline was computed past the calendar's data (Monday–Friday assumed).
    pub provisional: bool,
    /// `on_track`, `near_due` or `overdue`, as of the last sweep.
    pub due_status: String,
    /// 督办: when it was escalated.
    pub escalated_at: Option<DateTime<Utc>>,
    /// When the rater was contacted.
    pub contacted_at: Option<DateTime<Utc>>,
    /// When the cause was rectified.
    pub rectified_at: Option<DateTime<Utc>>,
    /// When the rater was replied to.
    pub replied_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub closed_at: Option<DateTime<Utc>>,
    /// The rater's grade at the callback (satisfaction after the fix).
    pub callback_grade: Option<i16>,
    /// The appeal's reason.
    pub appeal_reason: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Actions the state allows (the caller's role may allow fewer).
    pub allowed_actions: Vec<&'static str>,
}

fn order_from_row(row: &PgRow) -> Result<WorkOrder, Error> {
    let state: String = row.try_get("state")?;
    let founded: Option<bool> = row.try_get("founded")?;
    let parsed = OrderState::parse(&state, founded);
    let contact_due_at: DateTime<Utc> = row.try_get("contact_due_at")?;
    let rectify_due_at: DateTime<Utc> = row.try_get("rectify_due_at")?;
    let due_at = parsed.and_then(|s| s.running_deadline()).map(|k| match k {
        hcp_domain::workorder::DeadlineKind::Contact => contact_due_at,
        hcp_domain::workorder::DeadlineKind::Rectify => rectify_due_at,
    });
    Ok(WorkOrder {
        order_id: row.try_get("order_id")?,
        order_no: row.try_get("order_no")?,
        rating_id: row.try_get("rating_id")?,
        allowed_actions: parsed.map(|s| s.allowed()).unwrap_or_default(),
        state,
        founded,
        basis: row.try_get("basis")?,
        department_id: row.try_get("department_id")?,
        department_name: row.try_get("department_name")?,
        window_name: row.try_get("window_name")?,
        staff_name: row.try_get("staff_name")?,
        window_id: row.try_get("window_id")?,
        staff_id: row.try_get("staff_id")?,
        platform: row.try_get("platform")?,
        region_code: row.try_get("region_code")?,
        grade: row.try_get("grade")?,
        opened_at: row.try_get("opened_at")?,
        contact_due_at,
        rectify_due_at,
        due_at,
        provisional: row.try_get("provisional")?,
        due_status: row.try_get("due_status")?,
        escalated_at: row.try_get("escalated_at")?,
        contacted_at: row.try_get("contacted_at")?,
        rectified_at: row.try_get("rectified_at")?,
        replied_at: row.try_get("replied_at")?,
        closed_at: row.try_get("closed_at")?,
        callback_grade: row.try_get("callback_grade")?,
        appeal_reason: row.try_get("appeal_reason")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One line of an order's audit log.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    /// Sequence number (also the event id on the topic).
    pub event_id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: an account, `system:<part>` or `rater`.
    pub actor: String,
    /// Their role.
    pub actor_role: String,
    /// `open`, an action name, or `view_rater` (a view of the rater's full identity).
    pub action: String,
    /// State before.
    pub from_state: Option<String>,
    /// State after.
    pub to_state: String,
    /// Note.
    pub note: Option<String>,
}

/// The rating behind an order, as a handler sees it (the rater masked).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RatingRecord {
    /// Id.
    pub rating_id: Uuid,
    /// 办件编号.
    pub service_record_no: String,
    /// Stage.
    pub stage: String,
    /// Channel.
    pub channel: String,
    /// Grade 1–5.
    pub grade: i16,
    /// Tags.
    pub tags: Vec<String>,
    /// Their names from the tag catalogue (the code where unknown), in the same order.
    pub tag_names: Vec<String>,
    /// Text.
    pub comment: Option<String>,
    /// When rated.
    pub rated_at: DateTime<Utc>,
    /// 首评 1 / 追评 2.
    pub assess_number: i16,
    /// Attributed department, hall, window, staff.
    pub attr_department_id: Option<String>,
    /// Hall.
    pub attr_hall_id: Option<String>,
    /// Window.
    pub attr_window_id: Option<String>,
    /// Staff member.
    pub attr_staff_id: Option<String>,
    /// The follow-up that replaced it in the statistics.
    pub superseded_by: Option<Uuid>,
    /// Counted in the statistics now (not replaced, not excluded).
    pub counted: bool,
    /// Excluded from every aggregate by an upheld appeal: when.
    pub excluded_at: Option<DateTime<Utc>>,
    /// Why.
    pub excluded_reason: Option<String>,
    /// By which order.
    pub excluded_by: Option<Uuid>,
    /// The rater, masked (`138****1234`); absent when anonymous.
    pub rater: Option<MaskedRater>,
    /// Anti-gaming flags (`device_too_fast`, `device_burst`, `staff_burst`, `rater_is_rated_staff`, `rater_is_staff`).
    pub integrity_flags: Vec<String>,
}

const RATING_RECORD_COLUMNS: &str = "rating_id, service_record_no, stage, channel, grade, tags, comment, rated_at,
    assess_number, attr_department_id, attr_hall_id, attr_window_id, attr_staff_id, superseded_by,
    excluded_at, excluded_reason, excluded_by, rater, integrity_flags,
    ARRAY(SELECT COALESCE(t.name, x.code) FROM unnest(tags) WITH ORDINALITY AS x(code, n)
          LEFT JOIN tags t ON t.code = x.code ORDER BY x.n) AS tag_names";

fn rating_from_row(row: &PgRow) -> Result<RatingRecord, Error> {
    let rater: Option<sqlx::types::Json<SealedRater>> = row.try_get("rater")?;
    let superseded_by: Option<Uuid> = row.try_get("superseded_by")?;
    let excluded_at: Option<DateTime<Utc>> = row.try_get("excluded_at")?;
    Ok(RatingRecord {
        rating_id: row.try_get("rating_id")?,
        service_record_no: row.try_get("service_record_no")?,
        stage: row.try_get("stage")?,
        channel: row.try_get("channel")?,
        grade: row.try_get("grade")?,
        tags: row.try_get("tags")?,
        tag_names: row.try_get("tag_names")?,
        comment: row.try_get("comment")?,
        rated_at: row.try_get("rated_at")?,
        assess_number: row.try_get("assess_number")?,
        attr_department_id: row.try_get("attr_department_id")?,
        attr_hall_id: row.try_get("attr_hall_id")?,
        attr_window_id: row.try_get("attr_window_id")?,
        attr_staff_id: row.try_get("attr_staff_id")?,
        counted: superseded_by.is_none() && excluded_at.is_none(),
        superseded_by,
        excluded_at,
        excluded_reason: row.try_get("excluded_reason")?,
        excluded_by: row.try_get("excluded_by")?,
        rater: rater.map(|r| r.0.masked()),
        integrity_flags: row.try_get("integrity_flags")?,
    })
}

/// An order with its rating and history.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderDetail {
    /// The order.
    pub order: WorkOrder,
    /// The bad rating.
    pub rating: RatingRecord,
    /// Every transition, oldest first.
    pub log: Vec<LogEntry>,
}

/// Which orders a caller may see and act on: the caller's [`Reach`].
pub use hcp_domain::Reach as OrderScope;

/// `(sql condition on alias o, its text parameter)` of a reach; the parameter is `$n`.
fn scope_condition(scope: &OrderScope, n: usize) -> (String, Option<String>) {
    match scope {
        OrderScope::All => ("true".into(), None),
        OrderScope::Department(d) => (format!("o.department_id = ${n}"), Some(d.clone())),
        OrderScope::Region(r) => (format!("${n} = ANY(o.region_path)"), Some(r.clone())),
    }
}

/// `(sql condition on the ratings table, its text parameter $n)`: the rating's attributed
/// department lies within the reach (a region's: that region or one below it).
fn rating_reach_condition(reach: &OrderScope, n: usize) -> (String, Option<String>) {
    match reach {
        // The parameter is bound (as NULL) either way, so the statement always names it.
        OrderScope::All => (format!("${n}::text IS NULL"), None),
        OrderScope::Department(d) => (format!("attr_department_id = ${n}"), Some(d.clone())),
        OrderScope::Region(r) => (
            format!(
                "attr_department_id IN (SELECT d.id FROM departments d WHERE d.region_code IN (
                   WITH RECURSIVE down(code) AS (SELECT ${n}::text UNION ALL
                     SELECT g.code FROM regions g JOIN down ON g.parent_code = down.code)
                   SELECT code FROM down))"
            ),
            Some(r.clone()),
        ),
    }
}

/// A list query.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Only this state.
    pub state: Option<String>,
    /// Only this due status.
    pub due_status: Option<String>,
    /// Only this department (within the scope).
    pub department_id: Option<String>,
    /// Only orders not ended.
    pub open_only: bool,
    /// Sort: `deadline` (running deadline, soonest first; default) or `opened` (newest first).
    pub sort_opened: bool,
    /// Page size.
    pub limit: i64,
    /// Offset.
    pub offset: i64,
}

/// Who acts.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Account name, `system:<part>` or `rater`.
    pub name: String,
    /// Role name.
    pub role: String,
}

/// An action request.
#[derive(Debug, Clone)]
pub struct ActRequest {
    /// The order.
    pub order_id: Uuid,
    /// What.
    pub action: Action,
    /// Free-text note (the appeal's reason for an appeal).
    pub note: Option<String>,
    /// The callback grade, when the rater re-rated.
    pub callback_grade: Option<Grade>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Why an action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// No such order in the caller's scope.
    #[error("no such work order")]
    NotFound,
    /// The state does not allow it.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The calendar and the policies: everything a deadline depends on.
#[derive(Debug, Clone, Default)]
pub struct DeadlineContext {
    /// The working-day calendar.
    pub calendar: WorkCalendar,
    /// Policies by region.
    pub policies: Policies,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SweepOutcome {
    /// Open orders examined.
    pub examined: usize,
    /// Due within the policy's margin now.
    pub near_due: usize,
    /// Past their running deadline now.
    pub overdue: usize,
    /// Escalated by this sweep (overdue for the first time).
    pub escalated: usize,
    /// Orders whose due status changed.
    pub changed: usize,
}

/// A policy row.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRow {
    /// Region code, or `*` for the default.
    pub region_code: String,
    /// The limits.
    #[serde(flatten)]
    pub policy: DeadlinePolicy,
    /// Where it comes from.
    pub source: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What a callback invitation submission found.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// No invitation has this token.
    #[error("unknown invitation")]
    Unknown,
    /// It was used.
    #[error("invitation already used")]
    Used,
    /// It expired.
    #[error("invitation expired")]
    Expired,
    /// The order no longer waits for a callback.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Opens the orders of a batch's new bad ratings: one per rating (`ON CONFLICT DO NOTHING` on the
/// rating), each with an `open` line in the log. A provisional deadline files one operator alert
/// per missing calendar year. Returns how many opened.
pub(crate) async fn open_orders(tx: &mut Transaction<'_, Postgres>, orders: &[&NewOrder]) -> Result<usize, Error> {
    if orders.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&NewOrder) -> Option<String>| orders.iter().map(|o| f(o)).collect::<Vec<_>>();
    let opened: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO work_orders (order_id, rating_id, state, basis, department_id, window_id, staff_id,
                                  platform, region_code, region_path, grade, opened_at, contact_due_at,
                                  rectify_due_at, provisional)
         SELECT id, rid, 'opened', basis, dept, win, staff, plat, region,
                string_to_array(path, E'\\x1f'), grade, opened, c_due, r_due, prov
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::int2[], $11::timestamptz[], $12::timestamptz[],
                       $13::timestamptz[], $14::bool[])
                AS t(id, rid, basis, dept, win, staff, plat, region, path, grade, opened, c_due, r_due, prov)
         ON CONFLICT (rating_id) DO NOTHING
         RETURNING order_id",
    )
    .bind(orders.iter().map(|o| o.order_id).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.rating_id).collect::<Vec<_>>())
    .bind(col(|o| Some(basis_name(&o.assignment).to_owned())))
    .bind(col(|o| o.assignment.department_id.clone()))
    .bind(col(|o| o.assignment.window_id.clone()))
    .bind(col(|o| o.assignment.staff_id.clone()))
    .bind(col(|o| o.assignment.platform.clone()))
    .bind(col(|o| o.assignment.region_code.clone()))
    .bind(col(|o| Some(o.region_path.join("\u{1f}"))))
    .bind(orders.iter().map(|o| i16::from(o.grade.value())).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.opened_at).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.deadlines.contact.due_at).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.deadlines.rectify.due_at).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.deadlines.provisional()).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    if opened.is_empty() {
        return Ok(0);
    }
    sqlx::query(
        "INSERT INTO work_order_log (order_id, at, actor, actor_role, action, from_state, to_state)
         SELECT order_id, opened_at, 'system:aggregator', 'system', 'open', NULL, 'opened'
           FROM work_orders WHERE order_id = ANY($1) ORDER BY order_no",
    )
    .bind(&opened)
    .execute(&mut **tx)
    .await?;
    let mut missing: Vec<i32> = orders.iter().flat_map(|o| o.deadlines.missing_years()).collect();
    missing.sort_unstable();
    missing.dedup();
    for year in missing {
        calendar_alert(tx, year).await?;
    }
    Ok(opened.len())
}

/// Files the operator alert "calendar needs year YYYY" once per year.
async fn calendar_alert(tx: &mut Transaction<'_, Postgres>, year: i32) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO notifications (kind, recipient, subject, body, dedupe_key)
         VALUES ('calendar_needs_year', 'role:admin', $1, $2, $3) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(format!("calendar needs year {year}"))
    .bind(format!(
        "工作日历缺少 {year} 年数据:涉及该年的工单期限已按周一至周五临时计算(provisional)。\
         请在国务院办公厅发布 {year} 年节假日安排后,用 `hcp calendar import` 或 PUT /api/v1/calendar/years/{year} 补充。"
    ))
    .bind(format!("calendar-needs-year:{year}"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn basis_name(a: &Assignment) -> &'static str {
    use hcp_domain::Basis;
    match a.basis {
        Basis::Conduct => "conduct",
        Basis::Process => "process",
        Basis::Platform => "platform",
        Basis::General => "general",
    }
}

impl Store {
    /// The calendar and the policies, for computing deadlines outside the aggregator.
    pub async fn deadline_context(&self) -> Result<DeadlineContext, Error> {
        Ok(DeadlineContext { calendar: self.load_calendar().await?, policies: self.load_policies().await? })
    }

    /// Every deadline policy.
    pub async fn load_policies(&self) -> Result<Policies, Error> {
        Ok(Policies(self.list_policies().await?.into_iter().map(|r| (r.region_code, r.policy)).collect()))
    }

    /// Every policy row, the default first.
    pub async fn list_policies(&self) -> Result<Vec<PolicyRow>, Error> {
        let rows = sqlx::query(
            "SELECT region_code, contact_days, rectify_days, near_due_days, default_rating_days, source, updated_at
               FROM deadline_policies ORDER BY region_code <> '*', region_code",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let days = |c: &str| r.try_get::<i32, _>(c).map(|v| v.max(0) as u32);
                Ok(PolicyRow {
                    region_code: r.try_get("region_code")?,
                    policy: DeadlinePolicy {
                        contact_days: days("contact_days")?,
                        rectify_days: days("rectify_days")?,
                        near_due_days: days("near_due_days")?,
                        default_rating_days: r
                            .try_get::<Option<i32>, _>("default_rating_days")?
                            .map(|v| v.max(1) as u32),
                    },
                    source: r.try_get("source")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Adds or replaces a region's policy (checked by the caller with [`DeadlinePolicy::check`]).
    /// Returns whether it was new. Orders already open keep their deadlines.
    pub async fn put_policy(&self, region: &str, policy: &DeadlinePolicy, source: &str) -> Result<bool, Error> {
        let inserted: bool = sqlx::query_scalar(
            "INSERT INTO deadline_policies (region_code, contact_days, rectify_days, near_due_days, source,
                                            default_rating_days)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (region_code) DO UPDATE SET contact_days = EXCLUDED.contact_days,
                 rectify_days = EXCLUDED.rectify_days, near_due_days = EXCLUDED.near_due_days,
                 default_rating_days = EXCLUDED.default_rating_days,
                 source = EXCLUDED.source, updated_at = now()
             RETURNING xmax = 0",
        )
        .bind(region)
        .bind(policy.contact_days as i32)
        .bind(policy.rectify_days as i32)
        .bind(policy.near_due_days as i32)
        .bind(source)
        .bind(policy.default_rating_days.map(|d| d as i32))
        .fetch_one(&self.pool)
        .await?;
        Ok(inserted)
    }

    /// Removes a region's policy (the default `*` stays). Returns whether one was removed.
    pub async fn delete_policy(&self, region: &str) -> Result<bool, Error> {
        if region == DEFAULT_POLICY_REGION {
            return Ok(false);
        }
        let n = sqlx::query("DELETE FROM deadline_policies WHERE region_code = $1")
            .bind(region)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    /// One page of orders in `scope`, with the total.
    pub async fn list_work_orders(&self, scope: &OrderScope, q: &OrderQuery) -> Result<(Vec<WorkOrder>, i64), Error> {
        let (scope_sql, scope_arg) = scope_condition(scope, 1);
        let filter = format!(
            "{scope_sql} AND ($2::text IS NULL OR o.state = $2) AND ($3::text IS NULL OR o.due_status = $3)
             AND ($4::text IS NULL OR o.department_id = $4)
             AND (NOT $5 OR o.state NOT IN ('closed', 'appeal_upheld'))"
        );
        let order = if q.sort_opened {
            "o.opened_at DESC, o.order_no DESC".to_owned()
        } else {
            format!("({CURRENT_DUE}) ASC NULLS LAST, o.order_no")
        };
        let sql =
            format!("SELECT {ORDER_COLUMNS} FROM work_orders o WHERE {filter} ORDER BY {order} LIMIT $6 OFFSET $7");
        let rows = sqlx::query(&sql)
            .bind(&scope_arg)
            .bind(&q.state)
            .bind(&q.due_status)
            .bind(&q.department_id)
            .bind(q.open_only)
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM work_orders o WHERE {filter}"))
            .bind(&scope_arg)
            .bind(&q.state)
            .bind(&q.due_status)
            .bind(&q.department_id)
            .bind(q.open_only)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(order_from_row).collect::<Result<_, _>>()?, total))
    }

    /// The order in `scope` with its rating and log.
    pub async fn work_order(&self, scope: &OrderScope, order_id: Uuid) -> Result<Option<OrderDetail>, Error> {
        let (scope_sql, scope_arg) = scope_condition(scope, 2);
        let Some(row) =
            sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM work_orders o WHERE o.order_id = $1 AND {scope_sql}"))
                .bind(order_id)
                .bind(&scope_arg)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let order = order_from_row(&row)?;
        let rating = self
            .rating_record(order.rating_id)
            .await?
            .ok_or_else(|| Error::Decode(format!("work order {order_id} refers to a missing rating").into()))?;
        let log = sqlx::query(
            "SELECT event_id, at, actor, actor_role, action, from_state, to_state, note
               FROM work_order_log WHERE order_id = $1 ORDER BY event_id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(LogEntry {
                event_id: r.try_get("event_id")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                actor_role: r.try_get("actor_role")?,
                action: r.try_get("action")?,
                from_state: r.try_get("from_state")?,
                to_state: r.try_get("to_state")?,
                note: r.try_get("note")?,
            })
        })
        .collect::<Result<_, Error>>()?;
        Ok(Some(OrderDetail { order, rating, log }))
    }

    /// A stored rating as its record: attribution, whether it counts, exclusion, masked rater.
    pub async fn rating_record(&self, rating_id: Uuid) -> Result<Option<RatingRecord>, Error> {
        self.rating_record_within(&OrderScope::All, rating_id).await
    }

    /// [`Store::rating_record`] when the rating's attributed department lies within `reach`.
    pub async fn rating_record_within(
        &self,
        reach: &OrderScope,
        rating_id: Uuid,
    ) -> Result<Option<RatingRecord>, Error> {
        let (condition, arg) = rating_reach_condition(reach, 2);
        sqlx::query(&format!("SELECT {RATING_RECORD_COLUMNS} FROM ratings WHERE rating_id = $1 AND {condition}"))
            .bind(rating_id)
            .bind(arg)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rating_from_row)
            .transpose()
    }

    /// One page of ratings with anti-gaming flags (optionally one flag), newest first, with the total.
    pub async fn integrity_flagged(
        &self,
        reach: &OrderScope,
        flag: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<RatingRecord>, i64), Error> {
        let (condition, arg) = rating_reach_condition(reach, 2);
        let filter = format!(
            "cardinality(integrity_flags) > 0 AND ($1::text IS NULL OR $1 = ANY(integrity_flags)) AND {condition}"
        );
        let rows = sqlx::query(&format!(
            "SELECT {RATING_RECORD_COLUMNS} FROM ratings WHERE {filter} ORDER BY rated_at DESC, rating_id LIMIT $3 OFFSET $4"
        ))
        .bind(flag)
        .bind(&arg)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM ratings WHERE {filter}"))
            .bind(flag)
            .bind(&arg)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(rating_from_row).collect::<Result<_, _>>()?, total))
    }

    /// The sealed identity of an order's rater, logging the view (who, when) in the order's
    /// audit log in the same transaction. `None` when the order is not in scope; `Some(None)`
    /// when the rating is anonymous.
    pub async fn view_rater(
        &self,
        scope: &OrderScope,
        order_id: Uuid,
        actor: &Actor,
    ) -> Result<Option<Option<SealedRater>>, Error> {
        let (scope_sql, scope_arg) = scope_condition(scope, 2);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT o.state, r.rater FROM work_orders o JOIN ratings r USING (rating_id)
              WHERE o.order_id = $1 AND {scope_sql}"
        ))
        .bind(order_id)
        .bind(&scope_arg)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get("state")?;
        let rater: Option<sqlx::types::Json<SealedRater>> = row.try_get("rater")?;
        // An audit line, never published as an event (published_at is set at once).
        sqlx::query(
            "INSERT INTO work_order_log (order_id, actor, actor_role, action, from_state, to_state, note, published_at)
             VALUES ($1, $2, $3, 'view_rater', $4, $4, '查看评价人完整身份信息', now())",
        )
        .bind(order_id)
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(&state)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(rater.map(|r| r.0)))
    }

    /// Takes `action` on an order in `scope`: checks the state machine, updates the order, writes
    /// the audit line (the event outbox) and, for an upheld appeal, excludes the rating from
    /// every aggregate it was counted in — all in one transaction. An unsatisfied callback
    /// reopens the order with fresh deadlines from `ctx`.
    pub async fn act_on_work_order(
        &self,
        scope: &OrderScope,
        actor: &Actor,
        req: &ActRequest,
        ctx: &DeadlineContext,
    ) -> Result<WorkOrder, ActError> {
        let mut tx = self.pool.begin().await?;
        let order = act_in(&mut tx, scope, actor, req, ctx).await?;
        tx.commit().await?;
        Ok(order)
    }

    /// Marks due statuses and escalates orders overdue for the first time (state unchanged; an
    /// `escalate` line by `system:sweeper`, a notification to the region's supervisors).
    pub async fn sweep_work_orders(&self, ctx: &DeadlineContext, now: DateTime<Utc>) -> Result<SweepOutcome, Error> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT order_id, order_no, state, founded, contact_due_at, rectify_due_at, due_status,
                    escalated_at IS NOT NULL AS escalated, region_code, region_path
               FROM work_orders WHERE state NOT IN ('closed', 'appeal_upheld') FOR UPDATE",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut out = SweepOutcome { examined: rows.len(), ..Default::default() };
        let (mut ids, mut statuses) = (Vec::new(), Vec::new());
        for row in &rows {
            let state: String = row.try_get("state")?;
            let founded: Option<bool> = row.try_get("founded")?;
            let path: Vec<String> = row.try_get("region_path")?;
            let policy = ctx.policies.for_region(&path);
            let due = OrderState::parse(&state, founded).and_then(|s| s.running_deadline()).map(|k| match k {
                hcp_domain::workorder::DeadlineKind::Contact => row.try_get::<DateTime<Utc>, _>("contact_due_at"),
                hcp_domain::workorder::DeadlineKind::Rectify => row.try_get::<DateTime<Utc>, _>("rectify_due_at"),
            });
            let status = match due {
                Some(due) => due_status(&ctx.calendar, &policy, now, due?),
                None => DueStatus::OnTrack,
            };
            match status {
                DueStatus::NearDue => out.near_due += 1,
                DueStatus::Overdue => out.overdue += 1,
                DueStatus::OnTrack => {}
            }
            let order_id: Uuid = row.try_get("order_id")?;
            if row.try_get::<String, _>("due_status")? != status.as_str() {
                ids.push(order_id);
                statuses.push(status.as_str());
            }
            if status == DueStatus::Overdue && !row.try_get::<bool, _>("escalated")? {
                escalate(&mut tx, order_id, row.try_get("order_no")?, &state, row.try_get("region_code")?, now).await?;
                out.escalated += 1;
            }
        }
        out.changed = ids.len();
        if !ids.is_empty() {
            sqlx::query(
                "UPDATE work_orders o SET due_status = t.s, updated_at = now()
                   FROM UNNEST($1::uuid[], $2::text[]) AS t(id, s) WHERE o.order_id = t.id",
            )
            .bind(&ids)
            .bind(&statuses)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Open orders by due status (for the metrics and boards).
    pub async fn open_order_counts(&self) -> Result<Vec<(String, i64)>, Error> {
        sqlx::query_as(
            "SELECT due_status, count(*) FROM work_orders WHERE state NOT IN ('closed', 'appeal_upheld')
              GROUP BY due_status",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Up to `limit` unpublished events, oldest first, for the one publisher holding the relay's
    /// advisory lock (others get none).
    /// Publish them, then call [`PendingEvents::mark_published`].
    pub async fn pending_workorder_events(&self, limit: i64) -> Result<PendingEvents, Error> {
        let mut tx = self.pool.begin().await?;
        // One publisher at a time across replicas, so each order's events reach the topic in
        // log order; the others find nothing to do until the lock holder commits.
        let leader: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(RELAY_LOCK).fetch_one(&mut *tx).await?;
        if !leader {
            return Ok(PendingEvents { tx, events: Vec::new() });
        }
        let rows = sqlx::query(&format!(
            "SELECT l.event_id, l.order_id, o.order_no, o.rating_id, l.action, l.from_state, l.to_state,
                    l.actor, l.actor_role, l.at, o.department_id, o.region_code, l.note,
                    CASE WHEN l.event_id = (SELECT max(event_id) FROM work_order_log WHERE order_id = o.order_id)
                         THEN {CURRENT_DUE} END AS due_at
               FROM work_order_log l JOIN work_orders o USING (order_id)
              WHERE l.published_at IS NULL ORDER BY l.event_id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let events = rows
            .iter()
            .map(|r| {
                Ok(WorkOrderEvent {
                    event_id: r.try_get("event_id")?,
                    order_id: r.try_get("order_id")?,
                    order_no: r.try_get("order_no")?,
                    rating_id: r.try_get("rating_id")?,
                    action: r.try_get("action")?,
                    from_state: r.try_get("from_state")?,
                    to_state: r.try_get("to_state")?,
                    actor: r.try_get("actor")?,
                    actor_role: r.try_get("actor_role")?,
                    at: r.try_get("at")?,
                    department_id: r.try_get("department_id")?,
                    region_code: r.try_get("region_code")?,
                    due_at: r.try_get("due_at")?,
                    note: r.try_get("note")?,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(PendingEvents { tx, events })
    }

    /// Makes a callback invitation for an order in `scope` waiting for its callback (state
    /// `replied`): stores the token's SHA-256 and queues the SMS to the rater (the sender opens
    /// the sealed phone; the outbox holds no phone number). Logged as `callback_invite`.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_callback_invitation(
        &self,
        scope: &OrderScope,
        actor: &Actor,
        order_id: Uuid,
        token_sha256: &[u8],
        expires_at: DateTime<Utc>,
        sms_text: &str,
    ) -> Result<(), ActError> {
        let mut tx = self.pool.begin().await?;
        let (state, rating_id) = lock_order(&mut tx, scope, order_id).await?;
        if state != OrderState::Replied {
            return Err(ActError::Refused(Refused {
                state: state.name(),
                action: "callback_invite",
                allowed: state.allowed(),
            }));
        }
        sqlx::query("INSERT INTO callback_invitations (token_sha256, order_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_sha256)
            .bind(order_id)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO notifications (kind, recipient, subject, body, order_id)
             VALUES ('callback_sms', $1, '差评回访邀请', $2, $3)",
        )
        .bind(format!("rater:{rating_id}"))
        .bind(sms_text)
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
        log(&mut tx, order_id, actor, "callback_invite", state.name(), state.name(), Some("已发送回访评价邀请"), None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether an invitation can be answered now.
    pub async fn callback_status(&self, token_sha256: &[u8], now: DateTime<Utc>) -> Result<(), CallbackError> {
        let mut tx = self.pool.begin().await?;
        open_invitation(&mut tx, token_sha256, now).await.map(|_| ())
    }

    /// The rater's answer to a callback invitation: single use, before expiry; the grade is stored
    /// against the order and applied as the callback (grade ≥ 3 satisfied → closed; else reopened).
    pub async fn submit_callback(
        &self,
        token_sha256: &[u8],
        grade: Grade,
        comment: Option<&str>,
        now: DateTime<Utc>,
        ctx: &DeadlineContext,
    ) -> Result<WorkOrder, CallbackError> {
        let mut tx = self.pool.begin().await?;
        let order_id = open_invitation(&mut tx, token_sha256, now).await?;
        sqlx::query("UPDATE callback_invitations SET used_at = $2, grade = $3, comment = $4 WHERE token_sha256 = $1")
            .bind(token_sha256)
            .bind(now)
            .bind(i16::from(grade.value()))
            .bind(comment)
            .execute(&mut *tx)
            .await?;
        let req = ActRequest {
            order_id,
            action: Action::Callback { satisfied: grade.value() >= 3 },
            note: Some(format!("评价人回访评价:{}({})", grade.label_zh(), grade.value())),
            callback_grade: Some(grade),
            now,
        };
        let actor = Actor { name: "rater".into(), role: "rater".into() };
        let order = act_in(&mut tx, &OrderScope::All, &actor, &req, ctx).await.map_err(|e| match e {
            ActError::Refused(r) => CallbackError::Refused(r),
            ActError::Database(e) => CallbackError::Database(e),
            ActError::NotFound => CallbackError::Unknown,
        })?;
        tx.commit().await?;
        Ok(order)
    }

    /// Notifications not yet sent, oldest first (the sender's queue; also what tests inspect);
    /// with `region`, only those about orders in that region or below it.
    pub async fn pending_notifications(&self, limit: i64, region: Option<&str>) -> Result<Vec<Notification>, Error> {
        self.notifications(limit, region, true).await
    }

    /// Unsent notifications for operators (escalations, calendar alerts), optionally only those
    /// of a region and below: never the messages to citizens, whose bodies carry their links.
    pub async fn operator_notifications(&self, limit: i64, region: Option<&str>) -> Result<Vec<Notification>, Error> {
        self.notifications(limit, region, false).await
    }

    async fn notifications(
        &self,
        limit: i64,
        region: Option<&str>,
        citizens: bool,
    ) -> Result<Vec<Notification>, Error> {
        let rows = sqlx::query(
            "SELECT id, kind, recipient, subject, body, order_id, created_at FROM notifications
              WHERE sent_at IS NULL AND ($2::text IS NULL OR $2 = ANY(region_path))
                AND ($3 OR NOT (recipient LIKE 'rater:%' OR recipient LIKE 'record:%'))
              ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .bind(region)
        .bind(citizens)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Notification {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    recipient: r.try_get("recipient")?,
                    subject: r.try_get("subject")?,
                    body: r.try_get("body")?,
                    order_id: r.try_get("order_id")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Stamps notifications as sent.
    pub async fn mark_notifications_sent(&self, ids: &[i64]) -> Result<(), Error> {
        sqlx::query("UPDATE notifications SET sent_at = now() WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A queued notification.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    /// Id.
    pub id: i64,
    /// `callback_sms`, `escalation`, `calendar_needs_year`.
    pub kind: String,
    /// `rater:<rating id>`, `supervisor:<region>`, `role:admin`.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// Text.
    pub body: String,
    /// The order, if any.
    pub order_id: Option<Uuid>,
    /// Queued at.
    pub created_at: DateTime<Utc>,
}

/// Events locked for publishing.
pub struct PendingEvents {
    tx: Transaction<'static, Postgres>,
    /// The events, oldest first.
    pub events: Vec<WorkOrderEvent>,
}

impl PendingEvents {
    /// Marks the events published, enqueues them for the subscribed webhook endpoints (as
    /// Standard Webhooks messages `{type, timestamp, data}`, id `msg_wo_<event id>`) and releases
    /// the lock.
    pub async fn mark_published(mut self) -> Result<usize, Error> {
        let ids: Vec<i64> = self.events.iter().map(|e| e.event_id).collect();
        let messages: Vec<(String, String, String)> = self
            .events
            .iter()
            .map(|e| {
                let event_type = hcp_domain::webhook::workorder_event_type(&e.action);
                let body = serde_json::json!({"type": event_type, "timestamp": e.at, "data": e});
                (format!("msg_wo_{}", e.event_id), event_type, body.to_string())
            })
            .collect();
        crate::webhooks::enqueue(&mut self.tx, &messages).await?;
        sqlx::query("UPDATE work_order_log SET published_at = now() WHERE event_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(ids.len())
    }
}

/// Locks a callback invitation that can still be answered and returns its order; else says why not.
async fn open_invitation(
    tx: &mut Transaction<'_, Postgres>,
    token_sha256: &[u8],
    now: DateTime<Utc>,
) -> Result<Uuid, CallbackError> {
    let inv = sqlx::query(
        "SELECT order_id, expires_at, used_at FROM callback_invitations WHERE token_sha256 = $1 FOR UPDATE",
    )
    .bind(token_sha256)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(CallbackError::Unknown)?;
    if inv.try_get::<Option<DateTime<Utc>>, _>("used_at")?.is_some() {
        return Err(CallbackError::Used);
    }
    if inv.try_get::<DateTime<Utc>, _>("expires_at")? <= now {
        return Err(CallbackError::Expired);
    }
    Ok(inv.try_get("order_id")?)
}

/// Locks an order in scope and reads its state and rating.
async fn lock_order(
    tx: &mut Transaction<'_, Postgres>,
    scope: &OrderScope,
    order_id: Uuid,
) -> Result<(OrderState, Uuid), ActError> {
    let (scope_sql, scope_arg) = scope_condition(scope, 2);
    let row = sqlx::query(&format!(
        "SELECT o.state, o.founded, o.rating_id FROM work_orders o WHERE o.order_id = $1 AND {scope_sql} FOR UPDATE"
    ))
    .bind(order_id)
    .bind(&scope_arg)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ActError::NotFound)?;
    let name: String = row.try_get("state")?;
    let state = OrderState::parse(&name, row.try_get("founded")?)
        .ok_or_else(|| sqlx::Error::Decode(format!("work order {order_id} has an unknown state {name}").into()))?;
    Ok((state, row.try_get("rating_id")?))
}

#[allow(clippy::too_many_arguments)]
async fn log(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    actor: &Actor,
    action: &str,
    from: &str,
    to: &str,
    note: Option<&str>,
    at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO work_order_log (order_id, at, actor, actor_role, action, from_state, to_state, note)
         VALUES ($1, COALESCE($2, now()), $3, $4, $5, $6, $7, $8)",
    )
    .bind(order_id)
    .bind(at)
    .bind(&actor.name)
    .bind(&actor.role)
    .bind(action)
    .bind(from)
    .bind(to)
    .bind(note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn act_in(
    tx: &mut Transaction<'_, Postgres>,
    scope: &OrderScope,
    actor: &Actor,
    req: &ActRequest,
    ctx: &DeadlineContext,
) -> Result<WorkOrder, ActError> {
    let (state, rating_id) = lock_order(tx, scope, req.order_id).await?;
    let next = state.apply(req.action)?;
    let now = req.now;
    let founded = match next {
        OrderState::Verified { founded } => Some(founded),
        _ => None,
    };
    // Columns each action stamps; the state and `founded` always follow the machine.
    let stamp = match req.action {
        Action::Contact => ", contacted_at = $4",
        Action::Rectify => ", rectified_at = $4",
        Action::Reply => ", replied_at = $4",
        Action::Escalate => ", escalated_at = COALESCE(escalated_at, $4)",
        Action::Appeal => ", appeal_reason = $5",
        Action::Callback { satisfied: true } | Action::UpholdAppeal => ", closed_at = $4",
        _ => "",
    };
    sqlx::query(&format!(
        "UPDATE work_orders SET state = $2, founded = COALESCE($3, founded){stamp},
                callback_grade = COALESCE($6, callback_grade), updated_at = $4
          WHERE order_id = $1"
    ))
    .bind(req.order_id)
    .bind(next.name())
    .bind(founded)
    .bind(now)
    .bind(&req.note)
    .bind(req.callback_grade.map(|g| i16::from(g.value())))
    .execute(&mut **tx)
    .await?;
    if next == OrderState::Reopened {
        reopen(tx, req.order_id, ctx, now).await?;
    }
    if next == OrderState::AppealUpheld {
        exclude_rating(tx, rating_id, req.order_id, req.note.as_deref().unwrap_or("申诉复核成立"), now).await?;
    }
    log(tx, req.order_id, actor, req.action.name(), state.name(), next.name(), req.note.as_deref(), Some(now)).await?;
    let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM work_orders o WHERE o.order_id = $1"))
        .bind(req.order_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(order_from_row(&row)?)
}

/// A reopened order starts over: fresh deadlines from the reopening day, on track, not escalated.
async fn reopen(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    ctx: &DeadlineContext,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let path: Vec<String> = sqlx::query_scalar("SELECT region_path FROM work_orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&mut **tx)
        .await?;
    let policy = ctx.policies.for_region(&path);
    let Some(d) = OrderDeadlines::compute(&ctx.calendar, &policy, now) else {
        return Err(Error::Protocol("deadline out of the supported date range".into()));
    };
    sqlx::query(
        "UPDATE work_orders SET contact_due_at = $2, rectify_due_at = $3, provisional = $4,
                due_status = 'on_track', escalated_at = NULL, founded = NULL
          WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(d.contact.due_at)
    .bind(d.rectify.due_at)
    .bind(d.provisional())
    .execute(&mut **tx)
    .await?;
    for year in d.missing_years() {
        calendar_alert(tx, year).await?;
    }
    Ok(())
}

/// An upheld appeal: the rating leaves every aggregate row it was counted in (unless a follow-up
/// had already replaced it) and keeps its history with the reason.
async fn exclude_rating(
    tx: &mut Transaction<'_, Postgres>,
    rating_id: Uuid,
    order_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let row = sqlx::query(
        "UPDATE ratings SET excluded_at = $2, excluded_reason = $3, excluded_by = $4
          WHERE rating_id = $1 AND excluded_at IS NULL
      RETURNING grade, rated_at, agg_scopes, tags, superseded_by IS NULL AS counted",
    )
    .bind(rating_id)
    .bind(now)
    .bind(reason)
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = row {
        if row.try_get::<bool, _>("counted")? {
            let mut rollup = Rollup::new();
            rollup.remove(&facts_from_row(&row)?);
            upsert_aggregates(tx, rollup).await?;
        }
    }
    Ok(())
}

/// Escalates an overdue order: an `escalate` line by the sweeper and a notification to the
/// supervisors of its region.
async fn escalate(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    order_no: i64,
    state: &str,
    region: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query("UPDATE work_orders SET escalated_at = $2 WHERE order_id = $1")
        .bind(order_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let actor = Actor { name: "system:sweeper".into(), role: "system".into() };
    log(tx, order_id, &actor, "escalate", state, state, Some("逾期未办,自动督办"), Some(now)).await?;
    sqlx::query(
        "INSERT INTO notifications (kind, recipient, subject, body, order_id, dedupe_key, region_path)
         SELECT 'escalation', $1, $2, $3, $4, $5, region_path FROM work_orders WHERE order_id = $4
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(format!("supervisor:{}", region.as_deref().unwrap_or(DEFAULT_POLICY_REGION)))
    .bind(format!("差评工单 {order_no} 已逾期 / work order {order_no} is overdue"))
    .bind(format!("差评工单 {order_no}(状态 {state})已超过办理期限,已自动督办,请跟进。"))
    .bind(order_id)
    .bind(format!("escalation:{order_id}:{}", now.timestamp()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
