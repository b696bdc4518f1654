//! The sender: claims due deliveries, POSTs them signed, records each attempt and schedules the
//! next with exponential backoff.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hcp_store::{DueDelivery, Store};
use tokio_util::sync::CancellationToken;

use crate::{egress, metrics};

/// How the sender paces itself.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// How often it looks for due deliveries.
    pub poll_interval: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// The first retry's delay; each next one is 4× longer, at most [`SenderConfig::max_delay`].
    pub retry_base: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: i32,
    /// Whether endpoints may be on loopback, private or link-local addresses
    /// (`HCP_WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
}

impl Default for SenderConfig {
    /// 1 s polls, 10 s attempts, retries after 10 s, 40 s, 160 s … up to 1 h, 12 attempts
    /// (about 6 hours in all).
    fn default() -> Self {
        SenderConfig {
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            max_attempts: 12,
            allow_private: false,
        }
    }
}

impl SenderConfig {
    /// The delay after the `attempt`-th failed attempt (1-based).
    pub fn delay_after(&self, attempt: i32) -> Duration {
        let factor = 4u32.saturating_pow(attempt.saturating_sub(1).clamp(0, 15) as u32);
        self.retry_base.saturating_mul(factor).min(self.max_delay)
    }
}

/// Sends every delivery due at `now`; returns how many attempts were made.
pub async fn send_due(
    store: &Store,
    client: &reqwest::Client,
    config: &SenderConfig,
    now: DateTime<Utc>,
) -> Result<usize, hcp_store::Error> {
    let due = store.claim_due_deliveries(now, config.timeout * 2, 50).await?;
    let n = due.len();
    // Concurrently: one endpoint's slowness does not hold the others back.
    for r in futures::future::join_all(due.into_iter().map(|d| attempt(store, client, config, d))).await {
        r?;
    }
    Ok(n)
}

/// One attempt at one delivery.
async fn attempt(
    store: &Store,
    client: &reqwest::Client,
    config: &SenderConfig,
    d: DueDelivery,
) -> Result<(), hcp_store::Error> {
    let started = Utc::now();
    let timestamp = started.timestamp();
    let Some(signature) = hcp_domain::webhook::sign(&d.secret, &d.message_id, timestamp, d.payload.as_bytes()) else {
        metrics::ATTEMPTS.with_label_values(&["failed"]).inc();
        return store.record_attempt(d.delivery_id, started, None, Some("malformed secret"), false, None).await;
    };
    if let (false, Err(refused)) = (config.allow_private, egress::check_literal(&d.url)) {
        return failed(store, config, &d, started, None, refused.to_string()).await;
    }
    let result = client
        .post(&d.url)
        .timeout(config.timeout)
        .header("content-type", "application/json")
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    match result {
        Ok(r) if r.status().is_success() => {
            metrics::ATTEMPTS.with_label_values(&["delivered"]).inc();
            store.record_attempt(d.delivery_id, started, Some(r.status().as_u16()), None, true, None).await
        }
        Ok(r) => failed(store, config, &d, started, Some(r.status().as_u16()), format!("HTTP {}", r.status())).await,
        Err(e) => failed(store, config, &d, started, None, egress::failure_category(&e)).await,
    }
}

/// Records a failed attempt (`error` a category, never a library's text) and schedules the next.
async fn failed(
    store: &Store,
    config: &SenderConfig,
    d: &DueDelivery,
    started: DateTime<Utc>,
    status: Option<u16>,
    error: String,
) -> Result<(), hcp_store::Error> {
    let attempt_no = d.attempts + 1;
    let retry_at = (attempt_no < config.max_attempts)
        .then(|| Utc::now() + chrono::Duration::from_std(config.delay_after(attempt_no)).unwrap_or_default());
    metrics::ATTEMPTS.with_label_values(&[if retry_at.is_some() { "retry" } else { "failed" }]).inc();
    tracing::warn!(delivery = d.delivery_id, attempt = attempt_no, %error, "webhook delivery failed");
    store.record_attempt(d.delivery_id, started, status, Some(&error), false, retry_at).await
}

/// Sends due deliveries every `poll_interval` until `shutdown`.
pub async fn run_sender(store: Store, config: SenderConfig, shutdown: CancellationToken) {
    let client = egress::client(config.allow_private);
    let mut tick = tokio::time::interval(config.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = send_due(&store, &client, &config, Utc::now()).await {
                    tracing::warn!(error = %e, "webhook sender: database unavailable; retrying");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_fourfold_up_to_the_cap() {
        let c = SenderConfig::default();
        let secs: Vec<u64> = (1..=6).map(|a| c.delay_after(a).as_secs()).collect();
        assert_eq!(secs, [10, 40, 160, 640, 2560, 3600]);
        assert_eq!(c.delay_after(100).as_secs(), 3600);
    }
}
