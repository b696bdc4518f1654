//! Writer tasks: each stores one prepared batch (its rows in one transaction while its
//! attributed events and dead letters are published), then saves its positions once every
//! earlier batch saved its own ([`Turn`]).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hcp_bus::{DeadLetter, RatingProducer, RATING_DLQ_SCHEMA};
use hcp_domain::{RatingAttributed, RATING_ATTRIBUTED_SCHEMA};
use hcp_store::{Batch, Publishable, Store, StoredRating};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backoff::retry;
use crate::directory::AggregatorStats;
use crate::metrics;

/// Where a writer task stands among the others.
pub(crate) struct Turn {
    /// Told whether the batch's rows committed.
    pub(crate) written: oneshot::Sender<bool>,
    /// Whether the previous batch saved its positions (`None`: nothing before it in flight).
    pub(crate) before: Option<oneshot::Receiver<bool>>,
    /// Told whether this batch saved its positions.
    pub(crate) saved: oneshot::Sender<bool>,
}

/// Writes prepared batches, one task per batch; a batch's task is spawned only after the
/// previous one's rows committed.
pub(crate) struct Writer {
    pub(crate) store: Store,
    pub(crate) producer: RatingProducer,
    pub(crate) attributed_topic: String,
    pub(crate) dlq_topic: String,
    pub(crate) stats: Arc<AggregatorStats>,
}

impl Writer {
    /// Stores one batch: commits its rows and, at the same time, publishes the attributed events
    /// of the ratings found new or stored again before the write ([`Publishable`]) and the dead
    /// letters; then, once every earlier batch saved its positions (`turn.before`), saves
    /// its own. Each step is retried while PostgreSQL or the broker fails. Returns false when
    /// shutdown interrupted it: the positions were not saved, so the batch is read again on the
    /// next start, and its ratings stored meanwhile are then published again (never counted
    /// twice). Positions therefore never pass an event that was not published.
    pub(crate) async fn store(
        self: Arc<Self>,
        batch: Arc<Batch>,
        publishable: Publishable,
        turn: Turn,
        shutdown: CancellationToken,
    ) -> bool {
        let Turn { written, before, saved } = turn;
        let done = self.store_in_order(&batch, &publishable, written, before, &shutdown).await;
        let _ = saved.send(done);
        done
    }

    /// [`Writer::store`], short of telling the next batch's task whether the positions were saved.
    async fn store_in_order(
        &self,
        batch: &Batch,
        publishable: &Publishable,
        written: oneshot::Sender<bool>,
        before: Option<oneshot::Receiver<bool>>,
        shutdown: &CancellationToken,
    ) -> bool {
        let started = Instant::now();
        let now = chrono::Utc::now();
        // Once per id: a record the topic holds twice is one rating.
        let mut picked = HashSet::new();
        let first: Vec<&StoredRating> = batch
            .ratings
            .iter()
            .filter(|r| {
                let id = r.event.rating_id;
                (publishable.new.contains(&id) || publishable.again.contains(&id)) && picked.insert(id)
            })
            .collect();
        let rows = async {
            let rows = retry("batch write", shutdown, || async {
                let mut pending = self.store.write_rows(batch, Some(&publishable.new)).await?;
                let new_ids = std::mem::take(&mut pending.new_ids);
                Ok::<_, hcp_store::Error>((pending.commit().await?, new_ids))
            })
            .await;
            let _ = written.send(rows.is_some());
            (rows, started.elapsed())
        };
        let publish = async {
            let published = retry("batch publish", shutdown, || async {
                publish_attributed(&self.producer, &self.attributed_topic, &first, now).await?;
                publish_dead_letters(&self.producer, &self.dlq_topic, batch, now).await
            })
            .await;
            (published, started.elapsed())
        };
        let ((rows, written_after), (published, published_after)) = tokio::join!(rows, publish);
        let (Some((outcome, new_ids)), Some(())) = (rows, published) else { return false };
        // Only a concurrent writer of the same ratings (a partition changing hands mid-batch)
        // makes the write differ: a rating it stored first was published anyway (that writer
        // publishes it too; consumers keep the latest), and one stored new here that was not
        // expected is published now, still before the positions move.
        let late: Vec<&StoredRating> = batch
            .ratings
            .iter()
            .filter(|r| {
                let id = r.event.rating_id;
                new_ids.contains(&id) && !publishable.new.contains(&id) && picked.insert(id)
            })
            .collect();
        let early = publishable.new.iter().filter(|id| !new_ids.contains(id)).count();
        if early > 0 || !late.is_empty() {
            tracing::warn!(early, late = late.len(), "another writer stored ratings of this batch concurrently");
        }
        if !late.is_empty()
            && retry("late publish", shutdown, || {
                publish_attributed(&self.producer, &self.attributed_topic, &late, now)
            })
            .await
            .is_none()
        {
            return false;
        }
        // Positions move in batch order, each only past published events.
        if let Some(before) = before {
            if !before.await.unwrap_or(false) {
                return false;
            }
        }
        let positions_from = started.elapsed();
        let saved = retry("saving positions", shutdown, || {
            self.store.save_positions(&batch.group_id, &batch.topic, &batch.positions)
        })
        .await;
        if saved.is_none() {
            return false;
        }
        self.record(batch, &outcome, new_ids, first.len() + late.len(), started.elapsed());
        tracing::debug!(
            records = batch.ratings.len(),
            write_ms = written_after.as_secs_f64() * 1e3,
            publish_ms = published_after.as_secs_f64() * 1e3,
            positions_wait_ms = (positions_from - written_after.max(published_after)).as_secs_f64() * 1e3,
            positions_ms = (started.elapsed() - positions_from).as_secs_f64() * 1e3,
            inserted = outcome.inserted,
            duplicates = outcome.duplicates,
            flagged = outcome.flagged,
            rows = outcome.aggregate_rows,
            "batch stored"
        );
        true
    }

    /// Counts a stored batch in the metrics.
    fn record(
        &self,
        batch: &Batch,
        o: &hcp_store::BatchOutcome,
        mut new_ids: HashSet<Uuid>,
        published: usize,
        took: Duration,
    ) {
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        metrics::BATCHES.inc();
        metrics::BATCH_SECONDS.observe(took.as_secs_f64());
        metrics::BATCH_RECORDS.observe((batch.ratings.len() + batch.rejected.len()) as f64);
        for (outcome, n) in
            [("inserted", o.inserted), ("duplicate", o.duplicates), ("replaced", o.replaced), ("rejected", o.rejected)]
        {
            metrics::RECORDS.with_label_values(&[outcome]).inc_by(n as u64);
        }
        metrics::PUBLISHED.inc_by(published as u64);
        metrics::ORDERS_OPENED.inc_by(o.orders_opened as u64);
        // Once per id, as above.
        for r in batch.ratings.iter().filter(|r| new_ids.remove(&r.event.rating_id)) {
            for f in &r.integrity_flags {
                metrics::INTEGRITY_FLAGS.with_label_values(&[f.as_str()]).inc();
            }
            let result = if r.attribution.is_flagged() { "flagged" } else { "complete" };
            metrics::ATTRIBUTIONS.with_label_values(&[result]).inc();
            for f in &r.attribution.flags {
                metrics::FLAGS.with_label_values(&[f.as_str()]).inc();
            }
        }
    }
}

/// Publishes the attributed event of each rating (all in flight at once).
async fn publish_attributed(
    producer: &RatingProducer,
    topic: &str,
    ratings: &[&StoredRating],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), hcp_bus::PublishError> {
    let events = ratings.iter().map(|r| {
        let event = RatingAttributed {
            rating: r.event.clone(),
            attribution: r.attribution.clone(),
            attributed_at: now,
            reattributed: false,
        };
        (r.event.rating_id.to_string(), serde_json::to_vec(&event).expect("events always serialize"))
    });
    // Encoded up front (an iterator borrowing the batch cannot be held across the awaits of a
    // spawned task); each body is freed as soon as librdkafka has its copy.
    let events: Vec<(String, Vec<u8>)> = events.collect();
    producer.publish_all(topic, RATING_ATTRIBUTED_SCHEMA, events).await
}

/// Publishes the batch's refused records to the dead-letter topic before its positions move (at
/// least once), so the partition moves on and nothing is lost.
async fn publish_dead_letters(
    producer: &RatingProducer,
    dlq: &str,
    batch: &Batch,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), hcp_bus::PublishError> {
    let letters = batch.rejected.iter().map(|r| {
        let (payload, payload_base64) = match r.payload.as_deref().map(std::str::from_utf8) {
            Some(Ok(text)) => (Some(text.to_owned()), None),
            Some(Err(_)) => {
                use base64::Engine;
                (None, r.payload.as_deref().map(|b| base64::engine::general_purpose::STANDARD.encode(b)))
            }
            None => (None, None),
        };
        let letter = DeadLetter {
            reason: r.reason.clone(),
            source_topic: batch.topic.clone(),
            source_partition: r.partition,
            source_offset: r.offset,
            payload,
            payload_base64,
            rejected_at: now,
        };
        let key = r.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
        (key, serde_json::to_vec(&letter).expect("dead letters serialize"))
    });
    let letters: Vec<(String, Vec<u8>)> = letters.collect();
    producer.publish_all(dlq, RATING_DLQ_SCHEMA, letters).await
}
