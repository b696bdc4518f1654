//! The aggregator's directory snapshot: loaded once, checked once per batch (one indexed read of
//! the directory version), reloaded only when the directory changed. Attributing a rating is
//! then a handful of in-memory lookups: no database round-trip per rating.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hcp_domain::workorder::{assignment, OrderDeadlines};
use hcp_domain::{attribute, Directory};
use hcp_store::{AttributedUnits, Batch, DeadlineContext, NewOrder, Store};
use tokio::runtime::Handle;
use uuid::Uuid;

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

/// What a batch is attributed and its work orders are planned against: the directory, the
/// calendar and the deadline policies (their writes all bump the one directory version).
pub(crate) struct Snapshot {
    pub(crate) dir: Directory,
    pub(crate) deadlines: DeadlineContext,
}

/// The current snapshot and how to refresh it.
pub(crate) struct SnapshotCache {
    store: Store,
    current: Option<Arc<Snapshot>>,
    stats: Arc<AggregatorStats>,
}

impl SnapshotCache {
    pub(crate) fn new(store: Store, stats: Arc<AggregatorStats>) -> Self {
        SnapshotCache { store, current: None, stats }
    }

    /// The snapshot, reloaded first if the directory version moved since it was read.
    pub(crate) fn fresh(&mut self, handle: &Handle) -> Result<Arc<Snapshot>, sqlx::Error> {
        self.stats.directory_checks.fetch_add(1, Ordering::Relaxed);
        let version = handle.block_on(self.store.directory_version())?;
        match &self.current {
            Some(snap) if snap.dir.version == version => Ok(snap.clone()),
            _ => {
                let started = Instant::now();
                let (dir, deadlines) = handle.block_on(async {
                    Ok::<_, sqlx::Error>((self.store.load_directory().await?, self.store.deadline_context().await?))
                })?;
                self.stats.directory_loads.fetch_add(1, Ordering::Relaxed);
                metrics::DIRECTORY_LOADS.inc();
                metrics::DIRECTORY_VERSION.set(dir.version);
                metrics::DIRECTORY_LOAD_SECONDS.observe(started.elapsed().as_secs_f64());
                tracing::info!(version = dir.version, sizes = ?dir.sizes(), ms = started.elapsed().as_millis() as u64, "directory snapshot loaded");
                let snap = Arc::new(Snapshot { dir, deadlines });
                self.current = Some(snap.clone());
                Ok(snap)
            }
        }
    }
}

/// Attributes every rating of `batch` against the snapshot and plans the work order of each bad
/// one (pure, in memory; only orders of newly stored ratings open).
pub(crate) fn attribute_batch(batch: &mut Batch, snap: &Snapshot, stats: &AggregatorStats) {
    batch.orders.clear();
    for r in &mut batch.ratings {
        r.attribution = attribute(&snap.dir, &r.event, r.event.rated_at);
        let Some(assignment) = assignment(r.event.grade, &r.attribution) else { continue };
        let region_path = assignment.region_code.as_deref().map(|c| snap.dir.region_path(c)).unwrap_or_default();
        let policy = snap.deadlines.policies.for_region(&region_path);
        let opened_at = r.event.received_at;
        let Some(deadlines) = OrderDeadlines::compute(&snap.deadlines.calendar, &policy, opened_at) else {
            tracing::error!(rating_id = %r.event.rating_id, "deadline out of the supported date range; no order opened");
            continue;
        };
        if deadlines.provisional() {
            for year in deadlines.missing_years() {
                metrics::PROVISIONAL_DEADLINES.with_label_values(&[&year.to_string()]).inc();
            }
        }
        batch.orders.push(NewOrder {
            order_id: Uuid::now_v7(),
            rating_id: r.event.rating_id,
            grade: r.event.grade,
            opened_at,
            assignment,
            region_path,
            deadlines,
            attributed: AttributedUnits {
                hall_id: r.attribution.hall_id.clone(),
                window_id: r.attribution.window_id.clone(),
                staff_id: r.attribution.staff_id.clone(),
            },
        });
    }
    stats.attributed.fetch_add(batch.ratings.len() as u64, Ordering::Relaxed);
}
