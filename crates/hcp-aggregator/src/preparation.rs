//! Batch preparation on the consumer thread, while earlier batches are written: attribution
//! against the directory snapshot, the anti-gaming checks, and the look-up of which ratings are
//! new, all as if the batch still being written were stored.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use hcp_domain::integrity::{self, IntegrityPolicy, Press};
use hcp_store::{Batch, Publishable, Store};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backoff::{backoff_or_stop, Backoff};
use crate::directory::{attribute_batch, SnapshotCache};
use crate::metrics;
use crate::writer::Writer;

/// What preparing and storing batches needs, kept across group memberships.
pub(crate) struct Preparer {
    pub(crate) store: Store,
    pub(crate) handle: Handle,
    pub(crate) cache: SnapshotCache,
    pub(crate) integrity: IntegrityPolicy,
    pub(crate) writer: Arc<Writer>,
}

/// The presses of a batch as the anti-gaming checks see them.
fn presses_of(batch: &Batch) -> Vec<Press> {
    batch
        .ratings
        .iter()
        .map(|r| Press {
            rating_id: r.event.rating_id,
            // Only a hall device's own presses: an invitation or platform rating names no device.
            device_id: r.event.device_id.clone().filter(|_| r.event.channel.credential_kind() == Some("device")),
            staff_id: r.attribution.staff_id.clone(),
            grade: r.event.grade.value(),
            rated_at: r.event.rated_at,
            rater_staff: r.event.rater.as_ref().map(|x| x.staff_ids.clone()).unwrap_or_default(),
        })
        .collect()
}

/// Flags the batch's presses that look gamed, judged with the stored history of the same devices
/// and staff members that can change a verdict (one query per batch, see
/// [`Store::recent_presses`]) and with the presses of `pending`, the batch still being written.
async fn check_integrity(
    store: &Store,
    policy: &IntegrityPolicy,
    batch: &mut Batch,
    pending: Option<&Batch>,
) -> Result<(), sqlx::Error> {
    batch.exclude_flagged = policy.exclude_flagged;
    let presses = presses_of(batch);
    let mut history = store.recent_presses(&integrity::probes(policy, &presses), policy).await?;
    if let Some(pending) = pending {
        // It may have committed meanwhile: each press once. More history than the probes return
        // cannot change a verdict (they return all that can).
        let stored: HashSet<Uuid> = history.iter().map(|p| p.rating_id).collect();
        history.extend(presses_of(pending).into_iter().filter(|p| !stored.contains(&p.rating_id)));
    }
    let flags = integrity::check(policy, &history, &presses);
    for r in &mut batch.ratings {
        r.integrity_flags = flags.get(&r.event.rating_id).cloned().unwrap_or_default();
    }
    Ok(())
}

impl Preparer {
    /// Attributes the batch in memory (refreshing the snapshot if the directory moved), flags
    /// gamed presses and finds which of its ratings are new (or stored by an earlier read of the
    /// same records, to publish again), all as if `pending` (the batch still being written) were
    /// stored; retries while PostgreSQL fails. `None` when shutdown interrupted the retries
    /// (nothing of the batch was written).
    pub(crate) fn prepare(
        &mut self,
        batch: &mut Batch,
        pending: Option<&Batch>,
        shutdown: &CancellationToken,
    ) -> Option<Publishable> {
        let mut backoff = Backoff::new();
        loop {
            let started = Instant::now();
            let attempt = self.cache.fresh(&self.handle).and_then(|snap| {
                let snapshot_ms = started.elapsed().as_secs_f64() * 1e3;
                attribute_batch(batch, &snap, &self.writer.stats);
                let integrity_started = Instant::now();
                self.handle.block_on(check_integrity(&self.store, &self.integrity, batch, pending))?;
                let integrity_ms = integrity_started.elapsed().as_secs_f64() * 1e3;
                let lookup_started = Instant::now();
                // Known before the write starts, so their events are published while PostgreSQL
                // writes instead of after.
                let pending_ratings = pending.map(|p| p.ratings.as_slice()).unwrap_or_default();
                let publishable =
                    self.handle.block_on(self.store.publishable(&batch.topic, &batch.ratings, pending_ratings))?;
                tracing::debug!(
                    records = batch.ratings.len(),
                    snapshot_ms,
                    integrity_ms,
                    lookup_ms = lookup_started.elapsed().as_secs_f64() * 1e3,
                    prepare_ms = started.elapsed().as_secs_f64() * 1e3,
                    "batch prepared"
                );
                Ok(publishable)
            });
            match attempt {
                Ok(publishable) => return Some(publishable),
                Err(e) => {
                    metrics::BATCH_FAILURES.inc();
                    tracing::warn!(error = %e, "batch preparation failed; retrying");
                    if !backoff_or_stop(&mut backoff, shutdown) {
                        return None;
                    }
                }
            }
        }
    }
}
