//! The consume → store loop and the rebalance hook that seeks to positions kept in PostgreSQL.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hcp_bus::{DeadLetter, KafkaConfig, RatingProducer, Topics, RATING_DLQ_SCHEMA};
use hcp_domain::integrity::{self, IntegrityPolicy, Press};
use hcp_domain::{RatingAttributed, RatingSubmitted, RATING_ATTRIBUTED_SCHEMA};
use hcp_store::{Batch, Expected, Position, Rejected, Store, StoredRating};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::directory::{attribute_batch, AggregatorStats, SnapshotCache};
use crate::metrics;

/// How the aggregator consumes.
#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    /// Broker connection.
    pub kafka: KafkaConfig,
    /// Topic names.
    pub topics: Topics,
    /// Consumer group; also the key of the positions stored in PostgreSQL.
    pub group_id: String,
    /// Most records in one transaction.
    pub max_batch: usize,
    /// Longest wait to fill a batch once its first record arrived.
    pub max_wait: Duration,
    /// This instance's counters.
    pub stats: Arc<AggregatorStats>,
    /// Anti-gaming thresholds, and whether flagged ratings are left out of the aggregates.
    pub integrity: IntegrityPolicy,
}

impl AggregatorConfig {
    /// Defaults for `hcp serve`.
    pub fn new(kafka: KafkaConfig, topics: Topics) -> Self {
        AggregatorConfig {
            kafka,
            topics,
            group_id: "hcp-aggregator".into(),
            max_batch: 5000,
            max_wait: Duration::from_millis(20),
            stats: Arc::default(),
            integrity: IntegrityPolicy::default(),
        }
    }
}

/// Runs the aggregator until `shutdown` is cancelled. The batch in flight when shutdown is
/// asked for is finished and committed first.
pub async fn run(config: AggregatorConfig, store: Store, shutdown: CancellationToken) -> Result<(), AggregatorError> {
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || consume(config, store, handle, shutdown))
        .await
        .map_err(|e| AggregatorError::Thread(e.to_string()))?
}

/// Why the aggregator could not run.
#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    /// The consumer could not be created or subscribed.
    #[error("kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The consuming thread panicked or was cancelled.
    #[error("aggregator thread failed: {0}")]
    Thread(String),
}

/// The consumer context: on assignment, seek to the positions stored in PostgreSQL.
struct PositionContext {
    store: Store,
    handle: Handle,
    group: String,
    topic: String,
    shutdown: CancellationToken,
    /// Partitions revoked since the current batch began: their records are dropped from it,
    /// the new owner reads them again from the stored positions.
    revoked: Mutex<HashSet<i32>>,
    /// The batches handed to writer tasks whose positions are not known to be saved yet, oldest
    /// first (at most [`MAX_IN_FLIGHT`]); only the newest may still be writing its rows.
    in_flight: Mutex<VecDeque<InFlight>>,
    /// Set when a batch in flight ended without saving its positions (shutdown interrupted its
    /// retries, or its task panicked): no later batch may be written.
    writer_failed: AtomicBool,
}

impl ClientContext for PositionContext {
    /// librdkafka's periodic statistics: the consumer lag of each owned partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        for (partition, p) in &topic.partitions {
            if *partition >= 0 && p.consumer_lag >= 0 {
                metrics::LAG.with_label_values(&[&partition.to_string()]).set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for PositionContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<i32> = tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
                let stored = self.load_positions(&partitions);
                let mut assignment = TopicPartitionList::new();
                for p in &partitions {
                    let offset = match &stored {
                        Some(map) => map.get(p).map(|&o| Offset::Offset(o)).unwrap_or(Offset::Beginning),
                        // PostgreSQL unreachable while shutting down: Kafka's committed offsets
                        // trail PostgreSQL's, so starting there can only re-read, never skip.
                        None => Offset::Stored,
                    };
                    if let Err(e) = assignment.add_partition_offset(&self.topic, *p, offset) {
                        tracing::error!(partition = p, error = %e, "cannot build assignment");
                    }
                }
                tracing::info!(?partitions, ?stored, "partitions assigned");
                metrics::ASSIGNED.set(partitions.len() as i64);
                if let Err(e) = consumer.assign(&assignment) {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions: Vec<i32> = tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
                tracing::info!(?partitions, "partitions revoked");
                // The next owner starts from the positions in PostgreSQL: let every batch in
                // flight save its positions first, so it does not read those records again.
                self.finish_in_flight(consumer);
                self.revoked.lock().expect("revoked lock").extend(partitions);
                metrics::ASSIGNED.set(0);
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(?other, "rebalance error");
                let _ = consumer.unassign();
            }
        }
    }
}

impl PositionContext {
    /// Waits until every batch in flight has saved its positions, mirroring them to Kafka in
    /// order. Returns false when no further batch may be written ([`PositionContext::writer_failed`]).
    fn finish_in_flight(&self, consumer: &BaseConsumer<Self>) -> bool {
        while self.settle_oldest(consumer, 0) {}
        !self.writer_failed.load(Ordering::Relaxed)
    }

    /// Settles the oldest batch in flight if more than `keep` are, or if it has finished:
    /// waits for its task and mirrors its positions to Kafka (or records the failure). True
    /// when one was settled.
    fn settle_oldest(&self, consumer: &BaseConsumer<Self>, keep: usize) -> bool {
        let oldest = {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            let due = in_flight.len() > keep || in_flight.front().is_some_and(|f| f.task.is_finished());
            if !due {
                return false;
            }
            match in_flight.pop_front() {
                Some(f) => f,
                None => return false,
            }
        };
        match self.handle.block_on(oldest.task) {
            Ok(true) => commit_to_kafka(consumer, &self.topic, &oldest.batch.positions),
            Ok(false) => self.writer_failed.store(true, Ordering::Relaxed),
            Err(e) => {
                tracing::error!(error = %e, "batch writer task failed");
                self.writer_failed.store(true, Ordering::Relaxed);
            }
        }
        true
    }

    /// Makes way for the next batch: waits until the newest batch's rows are committed (rows
    /// are written in order) and fewer than [`MAX_IN_FLIGHT`] batches are in flight. Returns
    /// false when no further batch may be written.
    fn make_way(&self, consumer: &BaseConsumer<Self>) -> bool {
        let written = self.in_flight.lock().expect("in-flight lock").back_mut().and_then(|f| f.written.take());
        if let Some(written) = written {
            if !self.handle.block_on(written).unwrap_or(false) {
                self.writer_failed.store(true, Ordering::Relaxed);
            }
        }
        while self.settle_oldest(consumer, MAX_IN_FLIGHT - 1) {}
        !self.writer_failed.load(Ordering::Relaxed)
    }

    /// The newest batch in flight, which the next batch's preparation must treat as stored
    /// although its rows may not be committed yet.
    fn pending_batch(&self) -> Option<Arc<Batch>> {
        self.in_flight.lock().expect("in-flight lock").back().map(|f| f.batch.clone())
    }

    /// Hands a prepared batch to a writer task, after the batches in flight.
    fn hand_over(
        &self,
        work: &Work,
        batch: Batch,
        expected: Expected,
        span: tracing::Span,
        shutdown: &CancellationToken,
    ) {
        let batch = Arc::new(batch);
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        let (written_tx, written) = oneshot::channel();
        let (saved_tx, saved) = oneshot::channel();
        let order =
            Order { written: written_tx, before: in_flight.back_mut().and_then(|f| f.saved.take()), saved: saved_tx };
        let task = work.writer.clone().store(batch.clone(), expected, order, shutdown.clone()).instrument(span);
        let task = work.handle.spawn(task);
        in_flight.push_back(InFlight { task, batch, written: Some(written), saved: Some(saved) });
    }

    /// Loads the stored positions, retrying while PostgreSQL is away; `None` on shutdown.
    fn load_positions(&self, partitions: &[i32]) -> Option<std::collections::HashMap<i32, i64>> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.handle.block_on(self.store.load_positions(&self.group, &self.topic, partitions)) {
                Ok(map) => return Some(map),
                Err(e) if self.shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, "positions unavailable during shutdown");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load positions; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// One record as polled, copied out of the consumer.
struct Polled {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

/// The consumer thread: one group member until shutdown (or until a batch writer failed).
fn consume(
    config: AggregatorConfig,
    store: Store,
    handle: Handle,
    shutdown: CancellationToken,
) -> Result<(), AggregatorError> {
    let writer = Arc::new(Writer {
        store: store.clone(),
        producer: RatingProducer::new(&config.kafka, &config.topics)?,
        attributed_topic: config.topics.rating_attributed.clone(),
        dlq_topic: config.topics.rating_dlq.clone(),
        stats: config.stats.clone(),
    });
    writer.producer.warm_up(&[&writer.attributed_topic, &writer.dlq_topic], Duration::from_secs(5));
    let mut work = Work {
        store: store.clone(),
        handle: handle.clone(),
        cache: SnapshotCache::new(store.clone(), config.stats.clone()),
        integrity: config.integrity,
        writer,
    };
    let topic = config.topics.rating_submitted.clone();
    let context = PositionContext {
        store: work.store.clone(),
        handle: work.handle.clone(),
        group: config.group_id.clone(),
        topic: topic.clone(),
        shutdown: shutdown.clone(),
        revoked: Mutex::new(HashSet::new()),
        in_flight: Mutex::new(VecDeque::new()),
        writer_failed: AtomicBool::new(false),
    };
    let consumer: BaseConsumer<PositionContext> = config
        .kafka
        .consumer(&config.group_id)
        // Feeds the consumer-lag gauge (`PositionContext::stats`).
        .set("statistics.interval.ms", "5000")
        .create_with_context(context)?;
    consumer.subscribe(&[&topic])?;
    tracing::info!(%topic, group = %config.group_id, "aggregator consuming");

    let context = consumer.context();
    while !shutdown.is_cancelled() {
        context.revoked.lock().expect("revoked lock").clear();
        let polled = poll_batch(&consumer, &config);
        // Settle finished batches now (their Kafka mirror); a failure, also one found by a
        // revoke during the poll, stops the loop.
        while context.settle_oldest(&consumer, usize::MAX) {}
        if context.writer_failed.load(Ordering::Relaxed) {
            break;
        }
        if polled.is_empty() {
            continue;
        }
        let revoked = std::mem::take(&mut *context.revoked.lock().expect("revoked lock"));
        let polled: Vec<Polled> = polled.into_iter().filter(|p| !revoked.contains(&p.partition)).collect();
        if polled.is_empty() {
            continue;
        }
        let mut batch = build_batch(&config.group_id, &topic, polled);
        let span = tracing::info_span!(
            "batch",
            records = batch.ratings.len() + batch.rejected.len(),
            partitions = batch.positions.len()
        );
        // Prepared while the previous batch is still being written ...
        let pending = context.pending_batch();
        let Some(expected) = span.in_scope(|| work.prepare(&mut batch, pending.as_deref(), &shutdown)) else {
            break;
        };
        // ... and written only once its rows committed, so rows and positions only move forward.
        if !context.make_way(&consumer) {
            break;
        }
        context.hand_over(&work, batch, expected, span, &shutdown);
    }
    // The batches in flight are finished (positions saved, or abandoned by shutdown) before leaving.
    context.finish_in_flight(&consumer);
    if context.writer_failed.load(Ordering::Relaxed) && !shutdown.is_cancelled() {
        return Err(AggregatorError::Thread("a batch writer task failed".into()));
    }
    consumer.unsubscribe();
    tracing::info!("aggregator stopping");
    Ok(())
}

/// Most batches handed to writer tasks whose positions are not saved yet. Rows are written one
/// batch at a time, in order, but a batch's positions wait for its events: while the broker is
/// slow to acknowledge them, the next batches' rows are written meanwhile instead of waiting.
const MAX_IN_FLIGHT: usize = 4;

/// A batch handed to its writer task, and what the next batch needs of it meanwhile.
struct InFlight {
    /// The writer task: true once the batch's positions are saved, false when shutdown
    /// interrupted its retries (or an earlier batch's).
    task: tokio::task::JoinHandle<bool>,
    /// The batch: its positions are mirrored to Kafka once saved; the next batch is prepared as
    /// if it were stored.
    batch: Arc<Batch>,
    /// Whether its rows committed; taken by the next batch, which is written only after.
    written: Option<oneshot::Receiver<bool>>,
    /// Whether its positions were saved; taken by the next batch's task, which saves its own only
    /// after.
    saved: Option<oneshot::Receiver<bool>>,
}

/// Where a writer task stands among the others.
struct Order {
    /// Told whether the batch's rows committed.
    written: oneshot::Sender<bool>,
    /// Whether the previous batch saved its positions (`None`: nothing before it in flight).
    before: Option<oneshot::Receiver<bool>>,
    /// Told whether this batch saved its positions.
    saved: oneshot::Sender<bool>,
}

/// Polls until `max_batch` records or `max_wait` after the first one; empty after an idle 100 ms.
fn poll_batch(consumer: &BaseConsumer<PositionContext>, config: &AggregatorConfig) -> Vec<Polled> {
    let mut out = Vec::new();
    let mut deadline: Option<Instant> = None;
    while out.len() < config.max_batch {
        let timeout = match deadline {
            None => Duration::from_millis(100),
            Some(d) => d.saturating_duration_since(Instant::now()),
        };
        match consumer.poll(timeout) {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "poll error");
                if deadline.is_none() {
                    break;
                }
            }
            Some(Ok(m)) => {
                out.push(Polled {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                });
                deadline.get_or_insert_with(|| Instant::now() + config.max_wait);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    out
}

/// Decodes records; anything undecodable becomes a [`Rejected`] with its reason.
fn build_batch(group: &str, topic: &str, polled: Vec<Polled>) -> Batch {
    let mut batch = Batch { group_id: group.into(), topic: topic.into(), ..Default::default() };
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for p in polled {
        let n = next.entry(p.partition).or_insert(p.offset + 1);
        *n = (*n).max(p.offset + 1);
        let decoded = match &p.payload {
            None => Err("record has no body".to_string()),
            Some(body) => RatingSubmitted::decode(body),
        };
        match decoded {
            Ok(event) => batch.ratings.push(StoredRating {
                event,
                attribution: Default::default(),
                partition: p.partition,
                offset: p.offset,
                integrity_flags: Vec::new(),
            }),
            Err(reason) => {
                tracing::warn!(partition = p.partition, offset = p.offset, %reason, "record rejected");
                batch.rejected.push(Rejected {
                    partition: p.partition,
                    offset: p.offset,
                    key: p.key,
                    payload: p.payload,
                    reason,
                });
            }
        }
    }
    batch.positions = next.into_iter().map(|(partition, next_offset)| Position { partition, next_offset }).collect();
    batch
}

/// What preparing and storing batches needs, kept across group memberships.
struct Work {
    store: Store,
    handle: Handle,
    cache: SnapshotCache,
    integrity: IntegrityPolicy,
    writer: Arc<Writer>,
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

/// Waits out a retry's backoff (doubling up to 5 s); false when shutdown was asked for.
fn backoff_or_stop(backoff: &mut Duration, shutdown: &CancellationToken) -> bool {
    if shutdown.is_cancelled() {
        return false;
    }
    std::thread::sleep(*backoff);
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
    true
}

impl Work {
    /// Attributes the batch in memory (refreshing the snapshot if the directory moved), flags
    /// gamed presses and finds which of its ratings are new (or stored by an earlier read of the
    /// same records, to publish again), all as if `pending` (the batch still being written) were
    /// stored; retries while PostgreSQL fails. `None` when shutdown interrupted the retries
    /// (nothing of the batch was written).
    fn prepare(
        &mut self,
        batch: &mut Batch,
        pending: Option<&Batch>,
        shutdown: &CancellationToken,
    ) -> Option<Expected> {
        let mut backoff = Duration::from_millis(100);
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
                let expected =
                    self.handle.block_on(self.store.expected(&batch.topic, &batch.ratings, pending_ratings))?;
                tracing::debug!(
                    records = batch.ratings.len(),
                    snapshot_ms,
                    integrity_ms,
                    lookup_ms = lookup_started.elapsed().as_secs_f64() * 1e3,
                    prepare_ms = started.elapsed().as_secs_f64() * 1e3,
                    "batch prepared"
                );
                Ok(expected)
            });
            match attempt {
                Ok(expected) => return Some(expected),
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

/// Writes prepared batches, one task per batch; a batch's task is spawned only after the
/// previous one's rows committed.
struct Writer {
    store: Store,
    producer: RatingProducer,
    attributed_topic: String,
    dlq_topic: String,
    stats: Arc<AggregatorStats>,
}

impl Writer {
    /// Stores one batch: commits its rows and, at the same time, publishes the attributed events
    /// of the ratings expected new or stored again ([`Expected`], see [`Work::prepare`]) and the
    /// dead letters; then, once every earlier batch saved its positions (`order.before`), saves
    /// its own. Each step is retried while PostgreSQL or the broker fails. Returns false when
    /// shutdown interrupted it: the positions were not saved, so the batch is read again on the
    /// next start, and its ratings stored meanwhile are then published again (never counted
    /// twice). Positions therefore never pass an event that was not published.
    async fn store(
        self: Arc<Self>,
        batch: Arc<Batch>,
        expected: Expected,
        order: Order,
        shutdown: CancellationToken,
    ) -> bool {
        let Order { written, before, saved } = order;
        let done = self.store_in_order(&batch, &expected, written, before, &shutdown).await;
        let _ = saved.send(done);
        done
    }

    /// [`Writer::store`], short of telling the next batch's task whether the positions were saved.
    async fn store_in_order(
        &self,
        batch: &Batch,
        expected: &Expected,
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
                (expected.new.contains(&id) || expected.again.contains(&id)) && picked.insert(id)
            })
            .collect();
        let rows = async {
            let rows = retry("batch write", shutdown, || async {
                let mut pending = self.store.begin_rows(batch, Some(&expected.new)).await?;
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
                new_ids.contains(&id) && !expected.new.contains(&id) && picked.insert(id)
            })
            .collect();
        let early = expected.new.iter().filter(|id| !new_ids.contains(id)).count();
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

/// Runs `attempt` until it succeeds, backing off (doubling up to 5 s) after each failure; `None`
/// when shutdown was asked for after a failure.
async fn retry<T, E, F, Fut>(what: &str, shutdown: &CancellationToken, mut attempt: F) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(v) => return Some(v),
            Err(e) => {
                metrics::BATCH_FAILURES.inc();
                tracing::warn!(error = %e, "{what} failed; retrying");
                if shutdown.is_cancelled() {
                    return None;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
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

/// Mirrors the committed positions to Kafka, for lag tooling only (PostgreSQL is the truth).
fn commit_to_kafka(consumer: &BaseConsumer<PositionContext>, topic: &str, positions: &[Position]) {
    let mut tpl = TopicPartitionList::new();
    for p in positions {
        let _ = tpl.add_partition_offset(topic, p.partition, Offset::Offset(p.next_offset));
    }
    let result: KafkaResult<()> = consumer.commit(&tpl, CommitMode::Async);
    if let Err(e) = result {
        tracing::debug!(error = %e, "kafka offset commit failed (positions are safe in PostgreSQL)");
    }
}
