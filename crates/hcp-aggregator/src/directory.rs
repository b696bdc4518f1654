//! The aggregator's directory snapshot: loaded once, checked once per batch (one indexed read of
//! the directory version), reloaded only when the directory changed. Attributing a rating is
//! then a handful of in-memory lookups: no database round-trip per rating.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hcp_domain::{attribute, Directory};
use hcp_store::{Batch, Store};
use tokio::runtime::Handle;

use crate::metrics;

/// Counters of one aggregator instance (the Prometheus metrics are process-wide; these let a
/// test or an operator see one instance's work).
#[derive(Debug, Default)]
pub struct AggregatorStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Ratings attributed (each attempt of a retried batch counts again).
    pub attributed: AtomicU64,
    /// Directory version checks: one per batch attempt.
    pub directory_checks: AtomicU64,
    /// Full directory snapshot loads: the first one, then one per observed directory change.
    pub directory_loads: AtomicU64,
}

impl AggregatorStats {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The current snapshot and how to refresh it.
pub(crate) struct SnapshotCache {
    store: Store,
    current: Option<Arc<Directory>>,
    stats: Arc<AggregatorStats>,
}

impl SnapshotCache {
    pub(crate) fn new(store: Store, stats: Arc<AggregatorStats>) -> Self {
        SnapshotCache { store, current: None, stats }
    }

    /// The snapshot, reloaded first if the directory version moved since it was read.
    pub(crate) fn fresh(&mut self, handle: &Handle) -> Result<Arc<Directory>, sqlx::Error> {
        self.stats.directory_checks.fetch_add(1, Ordering::Relaxed);
        let version = handle.block_on(self.store.directory_version())?;
        match &self.current {
            Some(dir) if dir.version == version => Ok(dir.clone()),
            _ => {
                let started = Instant::now();
                let dir = Arc::new(handle.block_on(self.store.load_directory())?);
                self.stats.directory_loads.fetch_add(1, Ordering::Relaxed);
                metrics::DIRECTORY_LOADS.inc();
                metrics::DIRECTORY_VERSION.set(dir.version);
                metrics::DIRECTORY_LOAD_SECONDS.observe(started.elapsed().as_secs_f64());
                tracing::info!(version = dir.version, sizes = ?dir.sizes(), ms = started.elapsed().as_millis() as u64, "directory snapshot loaded");
                self.current = Some(dir.clone());
                Ok(dir)
            }
        }
    }
}

/// Attributes every rating of `batch` against `dir` (pure, in memory).
pub(crate) fn attribute_batch(batch: &mut Batch, dir: &Directory, stats: &AggregatorStats) {
    for r in &mut batch.ratings {
        r.attribution = attribute(dir, &r.event, r.event.rated_at);
    }
    stats.attributed.fetch_add(batch.ratings.len() as u64, Ordering::Relaxed);
}
