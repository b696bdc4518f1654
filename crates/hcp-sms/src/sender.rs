//! The sender: takes due messages under a lease, opens each recipient's sealed phone number,
//! applies the rules (opt-out, quiet hours, per-number daily cap), hands the message to the
//! gateway and records the outcome, retrying with backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hcp_domain::sms::{Backoff, QuietHours};
use hcp_domain::PiiCipher;
use hcp_store::{DueSms, SmsOutcome, Store};
use tokio_util::sync::CancellationToken;

use crate::gateway::{Gateway, Outgoing};
use crate::metrics;

/// How the sender works.
#[derive(Clone)]
pub struct SenderConfig {
    /// How often it looks for due messages.
    pub poll_interval: Duration,
    /// How long a taken message stays leased to this sender (longer than an attempt).
    pub lease: Duration,
    /// The retry schedule.
    pub backoff: Backoff,
    /// No SMS in these Beijing hours (`HCP_SMS_QUIET_HOURS`).
    pub quiet_hours: QuietHours,
    /// SMS one number may receive per Beijing day, all kinds together (`HCP_SMS_PER_NUMBER_PER_DAY`).
    pub per_number_per_day: u32,
    /// Opens the recipients' sealed phone numbers and digests them (`HCP_PII_KEY`).
    pub pii: Option<PiiCipher>,
}

/// Whether `phone` is a mainland mobile number (a landline cannot receive an SMS).
fn is_mobile(phone: &str) -> bool {
    phone.len() == 11 && phone.starts_with('1') && phone.bytes().all(|b| b.is_ascii_digit())
}

/// Sends every message due at `now` through `gateway`; returns how many were handled. `now`
/// decides quiet hours, the Beijing day of the cap and the retry times (tests pass their own).
pub async fn send_due(
    store: &Store,
    gateway: &dyn Gateway,
    config: &SenderConfig,
    now: DateTime<Utc>,
) -> Result<usize, hcp_store::Error> {
    // Quiet hours hold everything: nothing is taken, so nothing is leased for the night.
    if config.quiet_hours.is_quiet(now) {
        let due = store.claim_due_sms(now, config.lease, 500).await?;
        let until = config.quiet_hours.next_allowed(now);
        for m in &due {
            metrics::MESSAGES.with_label_values(&["held_quiet_hours"]).inc();
            store.record_sms_outcome(m.id, now, &SmsOutcome::Held { until, reason: "quiet_hours" }).await?;
        }
        return Ok(due.len());
    }
    let due = store.claim_due_sms(now, config.lease, 50).await?;
    let n = due.len();
    // One at a time: the daily cap of a number is checked against the sends before it.
    for m in due {
        let outcome = one(store, gateway, config, &m, now).await?;
        store.record_sms_outcome(m.id, now, &outcome).await?;
    }
    Ok(n)
}

/// Decides and makes one attempt.
async fn one(
    store: &Store,
    gateway: &dyn Gateway,
    config: &SenderConfig,
    m: &DueSms,
    now: DateTime<Utc>,
) -> Result<SmsOutcome, hcp_store::Error> {
    let give_up = |error: &str| {
        metrics::MESSAGES.with_label_values(&[error]).inc();
        SmsOutcome::Failed { error: error.into(), retry_at: None, attempted: false }
    };
    let Some(pii) = config.pii.as_ref() else {
        // Without the key nobody can open the number: retried, the operator may set it.
        metrics::MESSAGES.with_label_values(&["retry"]).inc();
        return Ok(SmsOutcome::Failed {
            error: "pii_key_missing".into(),
            retry_at: config.backoff.retry_at(1, now),
            attempted: false,
        });
    };
    let phone = store
        .sms_recipient_identity(&m.recipient)
        .await?
        .and_then(|sealed| pii.open(&sealed).ok())
        .and_then(|identity| identity.phone)
        .filter(|p| is_mobile(p));
    let Some(phone) = phone else { return Ok(give_up("no_phone")) };
    let digest = pii.phone_digest(&phone);
    if store.sms_opted_out(&digest).await? {
        return Ok(give_up("opted_out"));
    }
    // Invitations were counted when ingest admitted them (under the same cap); everything
    // else counts now, when it is sent.
    let counted_at_queue = m.kind == "rating_sms";
    if !counted_at_queue {
        let today = store.sms_sent_to_number_since(&digest, hcp_domain::time::day_start(now)).await?;
        if today >= i64::from(config.per_number_per_day) {
            metrics::MESSAGES.with_label_values(&["held_daily_cap"]).inc();
            let tomorrow = hcp_domain::time::day_start(now) + chrono::Duration::days(1);
            let until = config.quiet_hours.next_allowed(tomorrow);
            return Ok(SmsOutcome::Held { until, reason: "daily_cap" });
        }
    }
    let out = Outgoing { id: m.id, phone: &phone, template: m.template, params: &m.params };
    match gateway.send(&out, now).await {
        Ok(message_id) => {
            metrics::MESSAGES.with_label_values(&["sent"]).inc();
            tracing::info!(message = m.id, gateway = gateway.name(), "SMS sent");
            Ok(SmsOutcome::Sent {
                gateway: gateway.name().into(),
                message_id,
                phone_digest: digest,
                count: !counted_at_queue,
            })
        }
        Err(e) => {
            let attempt = u32::try_from(m.attempts + 1).unwrap_or(u32::MAX);
            let retry_at = if e.retry { config.backoff.retry_at(attempt, now) } else { None };
            metrics::MESSAGES.with_label_values(&[if retry_at.is_some() { "retry" } else { "failed" }]).inc();
            tracing::warn!(message = m.id, attempt, error = %e.category, "SMS not sent");
            Ok(SmsOutcome::Failed { error: e.category, retry_at, attempted: true })
        }
    }
}

/// Sends due messages every `poll_interval` until `shutdown`.
pub async fn run_sender(store: Store, gateway: Arc<dyn Gateway>, config: SenderConfig, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(config.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = send_due(&store, gateway.as_ref(), &config, Utc::now()).await {
                    tracing::warn!(error = %e, "sms sender: database unavailable; retrying");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_mainland_mobile_numbers_get_sms() {
        assert!(super::is_mobile("13800138000"));
        for no in ["0755-12345678", "075512345678", "1380013800", "2380013800a"] {
            assert!(!super::is_mobile(no), "{no}");
        }
    }
}
