//! Outbound webhook endpoints and their delivery log. Deliveries are enqueued in the same
//! transaction that marks work-order events published ([`crate::PendingEvents::mark_published`]),
//! so every published event reaches every subscribed endpoint exactly once in the log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, Transaction};

use crate::{Error, Store};

/// An endpoint as listed (never with its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// Id, `wh_…`.
    pub webhook_id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Subscribed types (`workorder.*`, `workorder.close`, `*`).
    pub event_types: Vec<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was switched off (no new deliveries).
    pub disabled_at: Option<DateTime<Utc>>,
}

/// One delivery in the log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// Log id.
    pub delivery_id: i64,
    /// The `webhook-id` header: the same on every attempt.
    pub message_id: String,
    /// `workorder.claim`, …
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (attempts exhausted).
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: DateTime<Utc>,
    /// Last attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The endpoint's last HTTP status.
    pub last_status: Option<i32>,
    /// The last transport error or non-2xx reason.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    /// Log id.
    pub delivery_id: i64,
    /// Endpoint URL.
    pub url: String,
    /// Its signing secret.
    pub secret: String,
    /// `webhook-id`.
    pub message_id: String,
    /// The body.
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i32,
}

impl Store {
    /// Adds an endpoint.
    pub async fn create_webhook(
        &self,
        id: &str,
        url: &str,
        secret: &str,
        event_types: &[String],
        description: Option<&str>,
        created_by: &str,
    ) -> Result<Webhook, Error> {
        sqlx::query_as(
            "INSERT INTO webhooks (webhook_id, url, secret, event_types, description, created_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING webhook_id, url, event_types, description, created_by, created_at, disabled_at",
        )
        .bind(id)
        .bind(url)
        .bind(secret)
        .bind(event_types)
        .bind(description)
        .bind(created_by)
        .fetch_one(&self.pool)
        .await
    }

    /// Every endpoint, newest first.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, Error> {
        sqlx::query_as(
            "SELECT webhook_id, url, event_types, description, created_by, created_at, disabled_at
               FROM webhooks ORDER BY created_at DESC",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Switches an endpoint off (its log stays); false when there is no such enabled endpoint.
    pub async fn disable_webhook(&self, id: &str) -> Result<bool, Error> {
        let r = sqlx::query("UPDATE webhooks SET disabled_at = now() WHERE webhook_id = $1 AND disabled_at IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The latest `limit` deliveries of an endpoint; `None` when it does not exist.
    pub async fn webhook_deliveries(&self, id: &str, limit: i64) -> Result<Option<Vec<Delivery>>, Error> {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhooks WHERE webhook_id = $1)")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        if !exists {
            return Ok(None);
        }
        let rows = sqlx::query_as(
            "SELECT delivery_id, message_id, event_type, state, attempts, next_attempt_at, last_attempt_at,
                    last_status, last_error, delivered_at
               FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY delivery_id DESC LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(rows))
    }

    /// Claims up to `limit` due deliveries for `lease` (another sender takes them over after
    /// it, should this one die mid-attempt), oldest first.
    pub async fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, Error> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        sqlx::query_as(
            "WITH due AS (
                SELECT delivery_id FROM webhook_deliveries
                 WHERE state = 'pending' AND next_attempt_at <= $1
                 ORDER BY next_attempt_at, delivery_id LIMIT $3 FOR UPDATE SKIP LOCKED)
             UPDATE webhook_deliveries d SET next_attempt_at = $2
               FROM due, webhooks w
              WHERE d.delivery_id = due.delivery_id AND w.webhook_id = d.webhook_id
             RETURNING d.delivery_id, w.url, w.secret, d.message_id, d.payload, d.attempts",
        )
        .bind(now)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Records an attempt: delivered, to be retried at `retry_at`, or failed for good
    /// (`retry_at` `None` and not delivered).
    pub async fn record_attempt(
        &self,
        delivery_id: i64,
        at: DateTime<Utc>,
        status: Option<u16>,
        error: Option<&str>,
        delivered: bool,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        let state = if delivered {
            "delivered"
        } else if retry_at.is_some() {
            "pending"
        } else {
            "failed"
        };
        sqlx::query(
            "UPDATE webhook_deliveries
                SET attempts = attempts + 1, last_attempt_at = $2, last_status = $3, last_error = $4, state = $5,
                    next_attempt_at = COALESCE($6, next_attempt_at),
                    delivered_at = CASE WHEN $5 = 'delivered' THEN $2 END
              WHERE delivery_id = $1",
        )
        .bind(delivery_id)
        .bind(at)
        .bind(status.map(i32::from))
        .bind(error)
        .bind(state)
        .bind(retry_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Enqueues one delivery per (message, enabled endpoint subscribed to its type), once.
pub(crate) async fn enqueue(
    tx: &mut Transaction<'static, Postgres>,
    messages: &[(String, String, String)],
) -> Result<(), Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let endpoints: Vec<(String, Vec<String>)> =
        sqlx::query_as("SELECT webhook_id, event_types FROM webhooks WHERE disabled_at IS NULL")
            .fetch_all(&mut **tx)
            .await?;
    let (mut hooks, mut ids, mut types, mut bodies) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (hook, patterns) in &endpoints {
        for (id, event_type, body) in messages {
            if hcp_domain::webhook::subscribed(patterns, event_type) {
                hooks.push(hook.clone());
                ids.push(id.clone());
                types.push(event_type.clone());
                bodies.push(body.clone());
            }
        }
    }
    if hooks.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (webhook_id, message_id) DO NOTHING",
    )
    .bind(&hooks)
    .bind(&ids)
    .bind(&types)
    .bind(&bodies)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
