//! Work orders themselves: opening them in the batch transaction, the scoped list and detail,
//! actions with their audit line and side effects (reopen, an upheld appeal's exclusion), the
//! audited view of a rater's identity.

use chrono::{DateTime, Utc};
use hcp_domain::accountability::{verified_cause, Cause};
use hcp_domain::workorder::{Assignment, OrderDeadlines, Refused};
use hcp_domain::{Action, Grade, OrderState, Rollup, SealedRater};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::batch::{facts_from_row, upsert_aggregates, FACT_COLUMNS};
use crate::notifications::calendar_alert;
use crate::reach::{scope_condition, OrderScope};
use crate::records::RatingRecord;
use crate::workorders::accountability::{accountability_of, AccountabilityRecord};
use crate::workorders::sweep::DeadlineContext;
use crate::{Error, Store};

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
    /// The rating's attributed hall, window and staff member (whose service the report and the
    /// verification counts judge; the assignment says who handles the order).
    pub attributed: AttributedUnits,
}

/// A bad rating's attributed hall, window and staff member, as its work order keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributedUnits {
    /// The hall.
    pub hall_id: Option<String>,
    /// The window.
    pub window_id: Option<String>,
    /// The staff member.
    pub staff_id: Option<String>,
}

/// The SQL of the deadline that runs in the order's current state (see
/// [`OrderState::running_deadline`]).
pub(crate) const CURRENT_DUE: &str = "CASE WHEN o.state IN ('opened', 'claimed', 'reopened') THEN o.contact_due_at
     WHEN o.state IN ('contacted', 'verified', 'rectified') THEN o.rectify_due_at END";

pub(crate) const ORDER_COLUMNS: &str =
    "o.order_id, o.order_no, o.rating_id, o.state, o.founded, o.basis, o.department_id,
    o.window_id, o.staff_id, o.platform, o.region_code, o.grade, o.opened_at, o.contact_due_at,
    o.rectify_due_at, o.provisional, o.due_status, o.escalated_at, o.contacted_at, o.rectified_at,
    o.replied_at, o.closed_at, o.callback_grade, o.appeal_reason, o.updated_at, o.cause, o.verified_at,
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
    /// What the verification found it to be about: `conduct`, `process`, `platform`, or `none`
    /// (不属实); null until verified.
    pub cause: Option<String>,
    /// When it was (last) verified.
    pub verified_at: Option<DateTime<Utc>>,
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

pub(crate) fn order_from_row(row: &PgRow) -> Result<WorkOrder, Error> {
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
        cause: row.try_get("cause")?,
        verified_at: row.try_get("verified_at")?,
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
    /// Accountability measures recorded on it (教育, 约谈, 问责, 流程论证), oldest first.
    pub accountability: Vec<AccountabilityRecord>,
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
    /// `verify`: the cause found (checked against `founded` by `verified_cause`).
    pub cause: Option<Cause>,
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
                                  rectify_due_at, provisional, attr_hall_id, attr_window_id, attr_staff_id)
         SELECT id, rid, 'opened', basis, dept, win, staff, plat, region,
                string_to_array(path, E'\\x1f'), grade, opened, c_due, r_due, prov, a_hall, a_win, a_staff
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::int2[], $11::timestamptz[], $12::timestamptz[],
                       $13::timestamptz[], $14::bool[], $15::text[], $16::text[], $17::text[])
                AS t(id, rid, basis, dept, win, staff, plat, region, path, grade, opened, c_due, r_due, prov,
                     a_hall, a_win, a_staff)
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
    .bind(col(|o| o.attributed.hall_id.clone()))
    .bind(col(|o| o.attributed.window_id.clone()))
    .bind(col(|o| o.attributed.staff_id.clone()))
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

pub(crate) fn basis_name(a: &Assignment) -> &'static str {
    use hcp_domain::Basis;
    match a.basis {
        Basis::Conduct => "conduct",
        Basis::Process => "process",
        Basis::Platform => "platform",
        Basis::General => "general",
    }
}

/// Locks an order in scope and reads its state and rating.
pub(crate) async fn lock_order(
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
pub(crate) async fn log(
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

pub(crate) async fn act_in(
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
        Action::Verify { .. } => ", cause = $7, verified_at = $4",
        _ => "",
    };
    let cause = match req.action {
        Action::Verify { founded } => Some(
            verified_cause(founded, req.cause)
                .map_err(|e| sqlx::Error::Protocol(format!("unchecked verification cause: {e}")))?
                .as_str(),
        ),
        _ => None,
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
    .bind(cause)
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
pub(crate) async fn reopen(
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
                due_status = 'on_track', escalated_at = NULL, founded = NULL,
                cause = NULL, verified_at = NULL
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
pub(crate) async fn exclude_rating(
    tx: &mut Transaction<'_, Postgres>,
    rating_id: Uuid,
    order_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let row = sqlx::query(&format!(
        "UPDATE ratings SET excluded_at = $2, excluded_reason = $3, excluded_by = $4
          WHERE rating_id = $1 AND excluded_at IS NULL
      RETURNING {FACT_COLUMNS}, superseded_by IS NULL AS counted"
    ))
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

impl Store {
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
        let accountability = accountability_of(&self.pool, order_id).await?;
        Ok(Some(OrderDetail { order, rating, log, accountability }))
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
}
