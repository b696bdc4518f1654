//! The aggregator's pipeline on its consumer thread: poll a batch, decode it, prepare it while
//! the previous one is written, hand it to a writer task once the previous one's rows committed.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hcp_bus::{KafkaConfig, RatingProducer, Topics};
use hcp_domain::integrity::IntegrityPolicy;
use hcp_domain::RatingSubmitted;
use hcp_store::{Batch, Position, Rejected, Store, StoredRating};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::directory::{AggregatorStats, SnapshotCache};
use crate::membership::Membership;
use crate::preparation::Preparer;
use crate::writer::Writer;

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
    let mut preparer = Preparer {
        store: store.clone(),
        handle: handle.clone(),
        cache: SnapshotCache::new(store.clone(), config.stats.clone()),
        integrity: config.integrity,
        writer,
    };
    let topic = config.topics.rating_submitted.clone();
    let context = Membership::new(
        preparer.store.clone(),
        preparer.handle.clone(),
        config.group_id.clone(),
        topic.clone(),
        shutdown.clone(),
    );
    let consumer: BaseConsumer<Membership> = config
        .kafka
        .consumer(&config.group_id)
        // Feeds the consumer-lag gauge (`Membership::stats`).
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
        let Some(publishable) = span.in_scope(|| preparer.prepare(&mut batch, pending.as_deref(), &shutdown)) else {
            break;
        };
        // ... and written only once its rows committed, so rows and positions only move forward.
        if !context.make_way(&consumer) {
            break;
        }
        context.hand_over(&preparer, batch, publishable, span, &shutdown);
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

/// Polls until `max_batch` records or `max_wait` after the first one; empty after an idle 100 ms.
fn poll_batch(consumer: &BaseConsumer<Membership>, config: &AggregatorConfig) -> Vec<Polled> {
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
