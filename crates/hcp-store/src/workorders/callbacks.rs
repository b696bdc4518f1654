//! Callback invitations (回访): the rater's single-use link and their answer.

use chrono::{DateTime, Utc};
use hcp_domain::sms::{SmsParams, SmsTemplate};
use hcp_domain::workorder::Refused;
use hcp_domain::{Action, Grade, OrderState};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::notifications::{queue, NewNotification};
use crate::reach::OrderScope;
use crate::workorders::orders::{act_in, lock_order, log, ActError, ActRequest, Actor, WorkOrder};
use crate::workorders::sweep::DeadlineContext;
use crate::Store;

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

/// Locks a callback invitation that can still be answered and returns its order; else says why not.
pub(crate) async fn open_invitation(
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

impl Store {
    /// Makes a callback invitation for an order in `scope` waiting for its callback (state
    /// `replied`): stores the token's SHA-256 and queues the SMS to the rater (the sender opens
    /// the sealed phone; the outbox holds no phone number) with `link` for its template. Logged
    /// as `callback_invite`.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_callback_invitation(
        &self,
        scope: &OrderScope,
        actor: &Actor,
        order_id: Uuid,
        token_sha256: &[u8],
        expires_at: DateTime<Utc>,
        sms_text: &str,
        link: &str,
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
        let record: String = sqlx::query_scalar("SELECT service_record_no FROM ratings WHERE rating_id = $1")
            .bind(rating_id)
            .fetch_one(&mut *tx)
            .await?;
        let params = SmsParams { service: format!("办件 {record}"), link: link.into() };
        let sms = NewNotification {
            kind: "callback_sms".into(),
            recipient: format!("rater:{rating_id}"),
            subject: "差评回访邀请".into(),
            body: sms_text.into(),
            order_id: Some(order_id),
            sms: Some((SmsTemplate::Callback, params)),
            ..Default::default()
        };
        queue(&mut tx, &sms).await?;
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
            cause: None,
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
}
