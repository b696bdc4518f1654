//! Task `partitions`: keeps the monthly partitions of `ratings` ahead of the clock (migration 26).
//! Run by every aggregator: the store serializes concurrent callers with an advisory lock, and a
//! month already there costs one look-up.

use std::time::Duration;

use hcp_store::{Store, MONTHS_AHEAD};
use tokio_util::sync::CancellationToken;

/// How often the partitions are checked: a month is created about three months before it starts.
const EVERY: Duration = Duration::from_secs(24 * 3600);

/// The pause before another attempt when PostgreSQL did not answer.
const RETRY: Duration = Duration::from_secs(60);

/// Ensures the partitions now and then once a day until `stop`; a failed attempt is logged and
/// retried a minute later (the DEFAULT partition takes every rating meanwhile, so nothing waits on it).
pub async fn keep_partitions(store: Store, stop: CancellationToken) {
    loop {
        let wait = match store.ensure_rating_partitions(chrono::Utc::now(), MONTHS_AHEAD).await {
            Ok(created) => {
                for month in created {
                    tracing::info!(%month, "created the ratings partition of a month");
                }
                EVERY
            }
            Err(error) => {
                tracing::warn!(%error, "could not ensure the monthly ratings partitions; retrying");
                RETRY
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
