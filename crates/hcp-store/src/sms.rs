//! SMS delivery: the sender's queue (`sms_messages`, one row per citizen's SMS in the
//! notification outbox), leased so replicas never send one twice, each attempt's outcome, the
//! gateways' delivery receipts, the per-number daily count and the opt-out list. Phone numbers
//! appear here only as keyed digests; the sealed identity a recipient names is opened by the
//! caller.

use chrono::{DateTime, Utc};
use hcp_domain::sms::{SmsParams, SmsTemplate};
use hcp_domain::SealedRater;
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::{Error, Store};

/// A message the sender holds the lease of.
#[derive(Debug, Clone)]
pub struct DueSms {
    /// The notification's id (the message's id).
    pub id: i64,
    /// `record:<no>` or `rater:<rating id>`.
    pub recipient: String,
    /// `rating_sms`, `callback_sms`.
    pub kind: String,
    /// Which template.
    pub template: SmsTemplate,
    /// Its params.
    pub params: SmsParams,
    /// Attempts made so far.
    pub attempts: i32,
}

/// What became of one attempt at a message.
#[derive(Debug, Clone)]
pub enum SmsOutcome {
    /// The gateway accepted it (`sent`), under its id for receipts.
    Sent {
        /// The gateway's name.
        gateway: String,
        /// The gateway's message id, if it returned one.
        message_id: Option<String>,
        /// The number's keyed digest.
        phone_digest: Vec<u8>,
        /// Whether this send counts toward the number's daily cap now (messages not counted
        /// when they were queued).
        count: bool,
    },
    /// Not attempted: held until `until` (quiet hours, the number's daily cap); `reason` a category.
    Held {
        /// When it may go.
        until: DateTime<Utc>,
        /// `quiet_hours`, `daily_cap`.
        reason: &'static str,
    },
    /// The attempt failed; tried again at `retry_at`, or failed for good when `None`.
    Failed {
        /// A category, never a phone number or a vendor's free text.
        error: String,
        /// The next attempt.
        retry_at: Option<DateTime<Utc>>,
        /// Whether an attempt reached the gateway (counted in `attempts`).
        attempted: bool,
    },
}

/// A message as operators see it: status, attempts, last error category; never the phone.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmsMessage {
    /// The message (its notification's id).
    pub id: i64,
    /// `rating_sms`, `callback_sms`.
    pub kind: String,
    /// `record:<no>` or `rater:<rating id>`.
    pub recipient: String,
    /// `invitation`, `callback`.
    pub template: String,
    /// `queued`, `sent`, `failed`, `delivered`.
    pub state: String,
    /// Attempts that reached (or tried to reach) the gateway.
    pub attempts: i32,
    /// The next attempt, while queued.
    pub next_attempt_at: DateTime<Utc>,
    /// The last error or hold's category.
    pub last_error: Option<String>,
    /// The gateway that sent it.
    pub gateway: Option<String>,
    /// The gateway's message id.
    pub gateway_message_id: Option<String>,
    /// When the gateway accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the handset received it (where the gateway reports it).
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// An opted-out number: its keyed digest (hex) and where the opt-out came from.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OptOut {
    /// HMAC-SHA256 digest of the number (hex): the only form stored.
    pub digest: String,
    /// `reply` (the citizen answered 退订/TD) or `admin`.
    pub source: String,
    /// `sms-gateway` or the admin's name.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Takes up to `limit` messages due at `now` for `lease` (another sender takes them over after
    /// it, should this one die mid-attempt), oldest first; `FOR UPDATE SKIP LOCKED` keeps
    /// concurrent senders apart.
    pub async fn claim_due_sms(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<DueSms>, Error> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        let rows = sqlx::query(
            "WITH due AS (
                SELECT notification_id FROM sms_messages
                 WHERE state = 'queued' AND next_attempt_at <= $1
                 ORDER BY next_attempt_at, notification_id LIMIT $3 FOR UPDATE SKIP LOCKED)
             UPDATE sms_messages m SET next_attempt_at = $2
               FROM due, notifications n
              WHERE m.notification_id = due.notification_id AND n.id = m.notification_id
             RETURNING m.notification_id, m.recipient, n.kind, m.template, m.params, m.attempts",
        )
        .bind(now)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for r in rows {
            let template: String = r.try_get("template")?;
            let sqlx::types::Json(params) = r.try_get::<sqlx::types::Json<SmsParams>, _>("params")?;
            due.push(DueSms {
                id: r.try_get("notification_id")?,
                recipient: r.try_get("recipient")?,
                kind: r.try_get("kind")?,
                template: SmsTemplate::parse(&template).unwrap_or(SmsTemplate::Invitation),
                params,
                attempts: r.try_get("attempts")?,
            });
        }
        Ok(due)
    }

    /// The sealed identity `recipient` names: `record:<no>` the applicant of a service record,
    /// `rater:<rating id>` a rating's rater. `None` when there is none (or the name is unknown).
    pub async fn sms_recipient_identity(&self, recipient: &str) -> Result<Option<SealedRater>, Error> {
        let sealed: Option<sqlx::types::Json<SealedRater>> = if let Some(no) = recipient.strip_prefix("record:") {
            sqlx::query_scalar("SELECT applicant FROM service_records WHERE service_record_no = $1")
                .bind(no)
                .fetch_optional(&self.pool)
                .await?
                .flatten()
        } else if let Some(id) = recipient.strip_prefix("rater:").and_then(|id| Uuid::parse_str(id).ok()) {
            sqlx::query_scalar("SELECT rater FROM ratings WHERE rating_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .flatten()
        } else {
            None
        };
        Ok(sealed.map(|j| j.0))
    }

    /// SMS the number of `digest` was sent (or admitted) since `since`, all kinds together.
    pub async fn sms_sent_to_number_since(&self, digest: &[u8], since: DateTime<Utc>) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT count(*) FROM sms_sends WHERE phone_digest = $1 AND sent_at >= $2")
            .bind(digest)
            .bind(since)
            .fetch_one(&self.pool)
            .await
    }

    /// Whether the number of `digest` opted out.
    pub async fn sms_opted_out(&self, digest: &[u8]) -> Result<bool, Error> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sms_opt_outs WHERE phone_digest = $1)")
            .bind(digest)
            .fetch_one(&self.pool)
            .await
    }

    /// Records the outcome of an attempt at message `id` made at `at`; a send that `count`s is
    /// added to the number's daily count (`sms_sends`, key `system:<kind>`) in the same transaction.
    pub async fn record_sms_outcome(&self, id: i64, at: DateTime<Utc>, outcome: &SmsOutcome) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        match outcome {
            SmsOutcome::Sent { gateway, message_id, phone_digest, count } => {
                let kind: String = sqlx::query_scalar(
                    "UPDATE sms_messages SET state = 'sent', attempts = attempts + 1, last_attempt_at = $2,
                            sent_at = $2, gateway = $3, gateway_message_id = $4, phone_digest = $5, last_error = NULL
                      WHERE notification_id = $1
                     RETURNING (SELECT kind FROM notifications WHERE id = $1)",
                )
                .bind(id)
                .bind(at)
                .bind(gateway)
                .bind(message_id)
                .bind(phone_digest)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("UPDATE notifications SET sent_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                if *count {
                    sqlx::query("INSERT INTO sms_sends (sent_at, key_id, phone_digest) VALUES ($1, $2, $3)")
                        .bind(at)
                        .bind(format!("system:{kind}"))
                        .bind(phone_digest)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            SmsOutcome::Held { until, reason } => {
                sqlx::query("UPDATE sms_messages SET next_attempt_at = $2, last_error = $3 WHERE notification_id = $1")
                    .bind(id)
                    .bind(until)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
            }
            SmsOutcome::Failed { error, retry_at, attempted } => {
                sqlx::query(
                    "UPDATE sms_messages
                        SET attempts = attempts + $5::int, last_attempt_at = CASE WHEN $5 = 1 THEN $2 ELSE last_attempt_at END,
                            last_error = $3, state = CASE WHEN $4::timestamptz IS NULL THEN 'failed' ELSE 'queued' END,
                            next_attempt_at = COALESCE($4, next_attempt_at)
                      WHERE notification_id = $1",
                )
                .bind(id)
                .bind(at)
                .bind(error)
                .bind(retry_at)
                .bind(i32::from(*attempted))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A gateway's delivery receipt for its message `message_id` (the id the vendor answered
    /// the send with: unique per vendor, and vendors' id forms differ): `delivered`, or failed
    /// with the vendor's `code`. Returns whether a sent message matched.
    pub async fn record_sms_receipt(
        &self,
        message_id: &str,
        delivered: bool,
        code: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let n = sqlx::query(
            "UPDATE sms_messages
                SET state = CASE WHEN $2 THEN 'delivered' ELSE 'failed' END,
                    delivered_at = CASE WHEN $2 THEN $4 END,
                    last_error = CASE WHEN $2 THEN NULL ELSE $3 END
              WHERE gateway_message_id = $1 AND state IN ('sent', 'delivered', 'failed')",
        )
        .bind(message_id)
        .bind(delivered)
        .bind(code.map(|c| format!("receipt:{c}")))
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Messages newest first, optionally of one `state`.
    pub async fn sms_messages(&self, state: Option<&str>, limit: i64) -> Result<Vec<SmsMessage>, Error> {
        sqlx::query_as(
            "SELECT m.notification_id AS id, n.kind, m.recipient, m.template, m.state, m.attempts,
                    m.next_attempt_at, m.last_error, m.gateway, m.gateway_message_id, m.sent_at,
                    m.delivered_at, m.created_at
               FROM sms_messages m JOIN notifications n ON n.id = m.notification_id
              WHERE $1::text IS NULL OR m.state = $1
              ORDER BY m.notification_id DESC LIMIT $2",
        )
        .bind(state)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Adds the number of `digest` to the opt-out list; `false` when it was on it already.
    pub async fn add_sms_opt_out(&self, digest: &[u8], source: &str, by: &str) -> Result<bool, Error> {
        let n = sqlx::query(
            "INSERT INTO sms_opt_outs (phone_digest, source, created_by) VALUES ($1, $2, $3)
             ON CONFLICT (phone_digest) DO NOTHING",
        )
        .bind(digest)
        .bind(source)
        .bind(by)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Takes the number of `digest` off the opt-out list; `false` when it was not on it.
    pub async fn remove_sms_opt_out(&self, digest: &[u8]) -> Result<bool, Error> {
        let n = sqlx::query("DELETE FROM sms_opt_outs WHERE phone_digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// The opt-out list, newest first.
    pub async fn sms_opt_outs(&self, limit: i64) -> Result<Vec<OptOut>, Error> {
        let rows = sqlx::query(
            "SELECT phone_digest, source, created_by, created_at FROM sms_opt_outs ORDER BY created_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OptOut {
                    digest: hex(&r.try_get::<Vec<u8>, _>("phone_digest")?),
                    source: r.try_get("source")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
