//! The consume → store loop and the rebalance hook that seeks to positions kept in PostgreSQL.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use hcp_bus::{DeadLetter, KafkaConfig, RatingProducer, Topics, RATING_DLQ_SCHEMA};
use hcp_domain::integrity::{self, IntegrityPolicy, Press};
use hcp_domain::{RatingAttributed, RatingSubmitted, RATING_ATTRIBUTED_SCHEMA};
use hcp_store::{Batch, Position, Rejected, Store, StoredRating};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::runtime::Handle;
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
    /// Partitions currently assigned.
    assigned: AtomicUsize,
    /// The batch being written while the next one is polled and prepared.
    in_flight: Mutex<Option<InFlight>>,
    /// Set when a batch in flight ended without committing (shutdown interrupted its retries, or
    /// its task panicked): no later batch may be written, or its positions would skip it.
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
                self.assigned.store(partitions.len(), Ordering::Relaxed);
                if let Err(e) = consumer.assign(&assignment) {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions: Vec<i32> = tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
                tracing::info!(?partitions, "partitions revoked");
                // The next owner starts from the positions in PostgreSQL: let the batch being
                // written commit first, so it does not read those records again.
                self.finish_in_flight(consumer);
                self.revoked.lock().expect("revoked lock").extend(partitions);
                metrics::ASSIGNED.set(0);
                self.assigned.store(0, Ordering::Relaxed);
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
    /// Waits until the batch in flight (if any) is committed and mirrors its positions to Kafka.
    /// Returns false when no further batch may be written ([`PositionContext::writer_failed`]).
    fn finish_in_flight(&self, consumer: &BaseConsumer<Self>) -> bool {
        let in_flight = self.in_flight.lock().expect("in-flight lock").take();
        if let Some(f) = in_flight {
            match self.handle.block_on(f.task) {
                Ok(true) => commit_to_kafka(consumer, &self.topic, &f.batch.positions),
                Ok(false) => self.writer_failed.store(true, Ordering::Relaxed),
                Err(e) => {
                    tracing::error!(error = %e, "batch writer task failed");
                    self.writer_failed.store(true, Ordering::Relaxed);
                }
            }
        }
        !self.writer_failed.load(Ordering::Relaxed)
    }

    /// The batch in flight, which the next batch's preparation must treat as stored although it
    /// may not be committed yet.
    fn pending_batch(&self) -> Option<Arc<Batch>> {
        self.in_flight.lock().expect("in-flight lock").as_ref().map(|f| f.batch.clone())
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

/// How long a consumer may hold no partition before it re-joins the group with a fresh
/// member (doubling up to [`MAX_IDLE_REJOIN`] while it keeps getting none).
const IDLE_REJOIN: Duration = Duration::from_secs(15);
/// Upper bound of the re-join interval of an instance that never gets a partition.
const MAX_IDLE_REJOIN: Duration = Duration::from_secs(300);

fn consume(
    config: AggregatorConfig,
    store: Store,
    handle: Handle,
    shutdown: CancellationToken,
) -> Result<(), AggregatorError> {
    let mut idle_limit = IDLE_REJOIN;
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
    while !shutdown.is_cancelled() {
        match consume_as_member(&config, &mut work, &shutdown, idle_limit)? {
            Membership::Stopped => break,
            Membership::WorkedThenIdle => idle_limit = IDLE_REJOIN,
            Membership::NeverAssigned => idle_limit = (idle_limit * 2).min(MAX_IDLE_REJOIN),
        }
    }
    Ok(())
}

/// How one group membership ended.
enum Membership {
    /// Shutdown was asked for.
    Stopped,
    /// It held partitions, then held none for too long.
    WorkedThenIdle,
    /// It never got a partition.
    NeverAssigned,
}

/// Consumes as one group member until shutdown, or until it has held no partition for
/// `idle_limit`: a coordinator that lost track of a rebalance (seen with Tansu 0.6 after a member
/// was killed) is then asked again by a fresh member instead of leaving the topic unread.
fn consume_as_member(
    config: &AggregatorConfig,
    work: &mut Work,
    shutdown: &CancellationToken,
    idle_limit: Duration,
) -> Result<Membership, AggregatorError> {
    let topic = config.topics.rating_submitted.clone();
    let context = PositionContext {
        store: work.store.clone(),
        handle: work.handle.clone(),
        group: config.group_id.clone(),
        topic: topic.clone(),
        shutdown: shutdown.clone(),
        revoked: Mutex::new(HashSet::new()),
        assigned: AtomicUsize::new(0),
        in_flight: Mutex::new(None),
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
    let mut idle_since = Instant::now();
    let mut ever_assigned = false;

    let context = consumer.context();
    let mut stopped = false;
    while !shutdown.is_cancelled() {
        if context.assigned.load(Ordering::Relaxed) > 0 {
            idle_since = Instant::now();
            ever_assigned = true;
        } else if idle_since.elapsed() > idle_limit {
            tracing::warn!(idle_secs = idle_limit.as_secs(), "no partitions assigned; re-joining as a new member");
            break;
        }
        context.revoked.lock().expect("revoked lock").clear();
        let polled = poll_batch(&consumer, config);
        // Reap a finished batch now (its Kafka mirror); a failure, also one found by a revoke
        // during the poll, stops the loop.
        let finished = context.in_flight.lock().expect("in-flight lock").as_ref().is_some_and(|f| f.task.is_finished());
        if (finished && !context.finish_in_flight(&consumer)) || context.writer_failed.load(Ordering::Relaxed) {
            stopped = true;
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
        let Some(expected) = span.in_scope(|| work.prepare(&mut batch, pending.as_deref(), shutdown)) else {
            stopped = true;
            break;
        };
        // ... and written only once that one committed, so positions only move forward.
        if !context.finish_in_flight(&consumer) {
            stopped = true;
            break;
        }
        let batch = Arc::new(batch);
        let task =
            work.handle.spawn(work.writer.clone().store(batch.clone(), expected, shutdown.clone()).instrument(span));
        *context.in_flight.lock().expect("in-flight lock") = Some(InFlight { task, batch });
    }
    // The batch in flight is finished (committed, or abandoned by shutdown) before leaving.
    context.finish_in_flight(&consumer);
    if context.writer_failed.load(Ordering::Relaxed) && !shutdown.is_cancelled() {
        return Err(AggregatorError::Thread("a batch writer task failed".into()));
    }
    consumer.unsubscribe();
    if stopped || shutdown.is_cancelled() {
        tracing::info!("aggregator stopping");
        return Ok(Membership::Stopped);
    }
    Ok(if ever_assigned { Membership::WorkedThenIdle } else { Membership::NeverAssigned })
}

/// A batch handed to its writer task, and what the next batch needs of it meanwhile.
struct InFlight {
    /// The writer task: true once committed, false when shutdown interrupted its retries.
    task: tokio::task::JoinHandle<bool>,
    /// The batch: its positions are mirrored to Kafka once committed; the next batch is
    /// prepared as if it were stored.
    batch: Arc<Batch>,
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

/// Why one attempt at a batch failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("publishing attributed events: {0}")]
    Publish(#[from] hcp_bus::PublishError),
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
    /// gamed presses and finds which of its ratings are new, all as if `pending` (the batch still
    /// being written) were stored; retries while PostgreSQL fails. Returns the ids of the new
    /// ratings, or `None` when shutdown interrupted the retries (nothing of the batch was written).
    fn prepare(
        &mut self,
        batch: &mut Batch,
        pending: Option<&Batch>,
        shutdown: &CancellationToken,
    ) -> Option<HashSet<Uuid>> {
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
                let expected = self.handle.block_on(self.store.expected_new_ids(&batch.ratings, pending_ratings))?;
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
/// previous one committed.
struct Writer {
    store: Store,
    producer: RatingProducer,
    attributed_topic: String,
    dlq_topic: String,
    stats: Arc<AggregatorStats>,
}

impl Writer {
    /// Stores the batch, retrying while PostgreSQL or the broker fails. Returns false when
    /// shutdown interrupted the retries (nothing of the batch was committed; it is read again
    /// on the next start).
    async fn store(self: Arc<Self>, batch: Arc<Batch>, expected: HashSet<Uuid>, shutdown: CancellationToken) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match self.attempt(&batch, &expected).await {
                Ok(o) => {
                    self.stats.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    metrics::BATCHES.inc();
                    metrics::BATCH_SECONDS.observe(started.elapsed().as_secs_f64());
                    metrics::BATCH_RECORDS.observe((batch.ratings.len() + batch.rejected.len()) as f64);
                    for (outcome, n) in [
                        ("inserted", o.inserted),
                        ("duplicate", o.duplicates),
                        ("replaced", o.replaced),
                        ("rejected", o.rejected),
                    ] {
                        metrics::RECORDS.with_label_values(&[outcome]).inc_by(n as u64);
                    }
                    tracing::debug!(
                        inserted = o.inserted,
                        duplicates = o.duplicates,
                        flagged = o.flagged,
                        rows = o.aggregate_rows,
                        "batch committed"
                    );
                    return true;
                }
                Err(e) => {
                    metrics::BATCH_FAILURES.inc();
                    tracing::warn!(error = %e, "batch failed; retrying");
                    if shutdown.is_cancelled() {
                        return false;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One attempt: write the transaction and, at the same time, publish the attributed events
    /// of the ratings expected new (`expected_ids`, see [`Work::prepare`]) and the dead letters;
    /// commit only once both are done. A crash after publishing and before the commit publishes
    /// them again on the re-read (consumers keep the latest per rating id); a commit never
    /// happens without the publish.
    async fn attempt(
        &self,
        batch: &Batch,
        expected_ids: &HashSet<Uuid>,
    ) -> Result<hcp_store::BatchOutcome, AttemptError> {
        let started = Instant::now();
        let (store, producer, topic, dlq) = (&self.store, &self.producer, &self.attributed_topic, &self.dlq_topic);
        let now = chrono::Utc::now();
        // Once per id: a record the topic holds twice is one rating.
        let mut picked = HashSet::new();
        let expected: Vec<&StoredRating> = batch
            .ratings
            .iter()
            .filter(|r| expected_ids.contains(&r.event.rating_id) && picked.insert(r.event.rating_id))
            .collect();
        let write = async {
            let pending = store.begin_batch(batch, Some(expected_ids)).await;
            (pending, started.elapsed())
        };
        let publish = async {
            publish_attributed(producer, topic, &expected, now).await?;
            publish_dead_letters(producer, dlq, batch, now).await?;
            Ok::<_, hcp_bus::PublishError>(started.elapsed())
        };
        let ((pending, written), published) = tokio::join!(write, publish);
        let (mut pending, published) = (pending?, published?);
        // Only a concurrent writer of the same ratings (a partition changing hands mid-batch)
        // makes the write differ: a rating it stored first was published anyway (that writer
        // publishes it too; consumers keep the latest), and one stored new here that was not
        // expected is published now, still before the commit.
        let late: Vec<&StoredRating> = batch
            .ratings
            .iter()
            .filter(|r| {
                let id = r.event.rating_id;
                pending.new_ids.contains(&id) && !expected_ids.contains(&id) && picked.insert(id)
            })
            .collect();
        let early = expected_ids.iter().filter(|id| !pending.new_ids.contains(id)).count();
        if early > 0 || !late.is_empty() {
            tracing::warn!(early, late = late.len(), "another writer stored ratings of this batch concurrently");
        }
        publish_attributed(producer, topic, &late, now).await?;
        let mut new_ids = std::mem::take(&mut pending.new_ids);
        let before_commit = started.elapsed();
        let outcome = pending.commit().await?;
        tracing::debug!(
            records = batch.ratings.len(),
            write_ms = written.as_secs_f64() * 1e3,
            publish_ms = published.as_secs_f64() * 1e3,
            commit_ms = (started.elapsed() - before_commit).as_secs_f64() * 1e3,
            "batch timings"
        );
        // Once per id (`remove`), as above.
        let new = batch.ratings.iter().filter(|r| new_ids.remove(&r.event.rating_id));
        metrics::PUBLISHED.inc_by((expected.len() + late.len()) as u64);
        metrics::ORDERS_OPENED.inc_by(outcome.orders_opened as u64);
        for r in new {
            for f in &r.integrity_flags {
                metrics::INTEGRITY_FLAGS.with_label_values(&[f.as_str()]).inc();
            }
            let result = if r.attribution.is_flagged() { "flagged" } else { "complete" };
            metrics::ATTRIBUTIONS.with_label_values(&[result]).inc();
            for f in &r.attribution.flags {
                metrics::FLAGS.with_label_values(&[f.as_str()]).inc();
            }
        }
        Ok(outcome)
    }
}

/// Publishes the attributed event of each rating (all in flight at once).
async fn publish_attributed(
    producer: &RatingProducer,
    topic: &str,
    ratings: &[&StoredRating],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), hcp_bus::PublishError> {
    let sends = ratings.iter().map(|r| {
        let event = RatingAttributed {
            rating: r.event.clone(),
            attribution: r.attribution.clone(),
            attributed_at: now,
            reattributed: false,
        };
        let body = serde_json::to_vec(&event).expect("events always serialize");
        let key = r.event.rating_id.to_string();
        async move { producer.publish_to(topic, RATING_ATTRIBUTED_SCHEMA, &key, &body).await }
    });
    join_all(sends).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

/// Publishes the batch's refused records to the dead-letter topic, before the batch commits (at
/// least once), so the partition moves on and nothing is lost.
async fn publish_dead_letters(
    producer: &RatingProducer,
    dlq: &str,
    batch: &Batch,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), hcp_bus::PublishError> {
    let dead = batch.rejected.iter().map(|r| {
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
        let body = serde_json::to_vec(&letter).expect("dead letters serialize");
        let key = r.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
        async move { producer.publish_to(dlq, RATING_DLQ_SCHEMA, &key, &body).await }
    });
    join_all(dead).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(())
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
