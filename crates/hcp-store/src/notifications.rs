//! The notification outbox: what operators, supervisors and raters are told (escalations,
//! calendar gaps, callback SMS, alerts), queued in the transaction that decided it.

use chrono::{DateTime, Utc};
use hcp_domain::sms::{SmsParams, SmsTemplate};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::{Error, Store};

/// A notification to queue.
#[derive(Debug, Default)]
pub(crate) struct NewNotification {
    /// `callback_sms`, `escalation`, `calendar_needs_year`, `sms_invitation`, an alert's kind.
    pub kind: String,
    /// `rater:<rating id>`, `supervisor:<region>`, `role:admin`, `role:supervisor`, a phone digest.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// Text.
    pub body: String,
    /// The work order it is about, if any.
    pub order_id: Option<Uuid>,
    /// The region and its ancestors whose supervisors see it (empty: none in particular).
    pub region_path: Vec<String>,
    /// Queued once per key: a second notification with the same key is dropped.
    pub dedupe_key: Option<String>,
    /// For an SMS to a citizen: its template and params, queued for the sms sender with it.
    pub sms: Option<(SmsTemplate, SmsParams)>,
}

/// Queues `n`, the one way notifications enter the outbox: its id, or `None` when a
/// notification with its dedupe key was queued before. An SMS also enters the sender's queue
/// (`sms_messages`) in the same statement.
pub(crate) async fn queue(conn: &mut PgConnection, n: &NewNotification) -> Result<Option<i64>, Error> {
    let (template, params) = match &n.sms {
        Some((t, p)) => (Some(t.as_str()), Some(sqlx::types::Json(p))),
        None => (None, None),
    };
    sqlx::query_scalar(
        "WITH n AS (
            INSERT INTO notifications (kind, recipient, subject, body, order_id, region_path, dedupe_key)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id),
         s AS (
            INSERT INTO sms_messages (notification_id, recipient, template, params)
            SELECT id, $2, $8, $9 FROM n WHERE $8::text IS NOT NULL)
         SELECT id FROM n",
    )
    .bind(&n.kind)
    .bind(&n.recipient)
    .bind(&n.subject)
    .bind(&n.body)
    .bind(n.order_id)
    .bind(&n.region_path)
    .bind(&n.dedupe_key)
    .bind(template)
    .bind(params)
    .fetch_optional(conn)
    .await
}

/// Files the operator alert "calendar needs year YYYY" once per year.
pub(crate) async fn calendar_alert(tx: &mut Transaction<'_, Postgres>, year: i32) -> Result<(), Error> {
    let alert = NewNotification {
        kind: "calendar_needs_year".into(),
        recipient: "role:admin".into(),
        subject: format!("calendar needs year {year}"),
        body: format!(
            "工作日历缺少 {year} 年数据:涉及该年的工单期限已按周一至周五临时计算(provisional)。\
             请在国务院办公厅发布 {year} 年节假日安排后,用 `hcp calendar import` 或 PUT /api/v1/calendar/years/{year} 补充。"
        ),
        dedupe_key: Some(format!("calendar-needs-year:{year}")),
        ..Default::default()
    };
    queue(tx, &alert).await?;
    Ok(())
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

impl Store {
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
