//! The audit log as the outbox of `hcp.workorder.event.v1`: events locked for the relay, marked
//! published together with their webhook messages (the webhook wire format is decided here).

use hcp_domain::WorkOrderEvent;
use sqlx::{Postgres, Row, Transaction};

use crate::workorders::orders::CURRENT_DUE;
use crate::{Error, Store};

/// The advisory-lock key of the event relay ("hcp_rel").
pub(crate) const RELAY_LOCK: i64 = 0x0068_6370_5f72_656c;

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

impl Store {
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
}
