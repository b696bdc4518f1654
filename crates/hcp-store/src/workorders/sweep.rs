//! The overdue sweep: due status of open orders, escalation of overdue ones (an audit line and
//! a notification to the region's supervisors), the open-order counts.

use chrono::{DateTime, Utc};
use hcp_domain::workorder::{due_status, DueStatus, DEFAULT_POLICY_REGION};
use hcp_domain::{OrderState, Policies, WorkCalendar};
use serde::Serialize;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::notifications::{queue, NewNotification};
use crate::workorders::orders::{log, Actor};
use crate::{Error, Store};

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

/// Escalates an overdue order: an `escalate` line by the sweeper and a notification to the
/// supervisors of its region.
pub(crate) async fn escalate(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    order_no: i64,
    state: &str,
    (region, region_path): (Option<String>, &[String]),
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query("UPDATE work_orders SET escalated_at = $2 WHERE order_id = $1")
        .bind(order_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let actor = Actor { name: "system:sweeper".into(), role: "system".into() };
    log(tx, order_id, &actor, "escalate", state, state, Some("逾期未办,自动督办"), Some(now)).await?;
    let notification = NewNotification {
        kind: "escalation".into(),
        recipient: format!("supervisor:{}", region.as_deref().unwrap_or(DEFAULT_POLICY_REGION)),
        subject: format!("差评工单 {order_no} 已逾期 / work order {order_no} is overdue"),
        body: format!("差评工单 {order_no}(状态 {state})已超过办理期限,已自动督办,请跟进。"),
        order_id: Some(order_id),
        region_path: region_path.to_vec(),
        dedupe_key: Some(format!("escalation:{order_id}:{}", now.timestamp())),
        sms: None,
    };
    queue(tx, &notification).await?;
    Ok(())
}

impl Store {
    /// The calendar and the policies, for computing deadlines outside the aggregator.
    pub async fn deadline_context(&self) -> Result<DeadlineContext, Error> {
        Ok(DeadlineContext { calendar: self.load_calendar().await?, policies: self.load_policies().await? })
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
                let region = (row.try_get("region_code")?, path.as_slice());
                escalate(&mut tx, order_id, row.try_get("order_no")?, &state, region, now).await?;
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
}
