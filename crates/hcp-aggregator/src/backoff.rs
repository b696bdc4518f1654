//! The one retry pace of the aggregator: 100 ms after the first failure, doubling up to 5 s,
//! until it succeeds or shutdown is asked for.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics;

/// The wait before each next attempt.
pub(crate) struct Backoff(Duration);

impl Backoff {
    /// The first wait, 100 ms.
    pub(crate) fn new() -> Self {
        Backoff(Duration::from_millis(100))
    }

    /// The wait before the next attempt; each is twice the previous, at most 5 s.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        wait
    }
}

/// Waits out a retry's backoff on a blocking thread; false when shutdown was asked for.
pub(crate) fn backoff_or_stop(backoff: &mut Backoff, shutdown: &CancellationToken) -> bool {
    if shutdown.is_cancelled() {
        return false;
    }
    std::thread::sleep(backoff.next());
    true
}

/// Runs `attempt` until it succeeds, backing off (doubling up to 5 s) after each failure; `None`
/// when shutdown was asked for after a failure.
pub(crate) async fn retry<T, E, F, Fut>(what: &str, shutdown: &CancellationToken, mut attempt: F) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new();
    loop {
        match attempt().await {
            Ok(v) => return Some(v),
            Err(e) => {
                metrics::BATCH_FAILURES.inc();
                tracing::warn!(error = %e, "{what} failed; retrying");
                if shutdown.is_cancelled() {
                    return None;
                }
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
}
