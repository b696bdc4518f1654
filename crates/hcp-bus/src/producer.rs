//! The rating producer: one record per rating, acknowledged by the broker before we say yes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::{AsyncRuntime, Timeout, TokioRuntime};
use rdkafka::ClientContext;

use hcp_domain::{RatingSubmitted, RATING_SUBMITTED_SCHEMA};

use crate::{KafkaConfig, Topics};

/// Kafka header naming the schema of the record body.
pub const SCHEMA_HEADER: &str = "hcp-schema";

/// Why a rating was not durably published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker did not acknowledge in time or cannot be reached: retry later.
    #[error("broker unavailable: {0}")]
    Unavailable(KafkaError),
    /// The broker refused the record for another reason.
    #[error("publish failed: {0}")]
    Failed(KafkaError),
}

/// Publishes [`RatingSubmitted`] events to `hcp.rating.submitted.v1`.
///
/// An idempotent producer session (one producer id and its sequence numbers) must not outlive
/// what the broker remembers of it. A session is therefore replaced by a fresh one (a new producer
/// id) after any failed produce, and before the next produce once librdkafka reported that every
/// broker connection was lost. A broker-side rejection is retried once on the fresh session; a
/// record sent twice this way is harmless, as the aggregator counts a rating at most once.
#[derive(Clone)]
pub struct RatingProducer {
    current: Arc<RwLock<Generation>>,
    topic: String,
    config: KafkaConfig,
}

/// One producer session and its sequence number, so concurrent failures replace it only once.
#[derive(Clone)]
struct Generation {
    number: u64,
    producer: FutureProducer<SessionContext>,
    /// Set when librdkafka reports that every broker connection was lost.
    stale: Arc<AtomicBool>,
    /// When the session was created; a stale session is replaced at most once a second.
    created: Instant,
}

/// Marks its session stale when the connection to the brokers is lost, so that an idempotent
/// session never spans a broker outage: a restarted broker may have lost the session's
/// per-partition sequence state (Tansu 0.6 then fails every produce until it is restarted).
struct SessionContext {
    stale: Arc<AtomicBool>,
}

impl ClientContext for SessionContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
        ) {
            self.stale.store(true, Ordering::Relaxed);
        }
        tracing::warn!(%error, reason, "kafka producer");
    }
}

impl Generation {
    fn create(config: &KafkaConfig, number: u64) -> Result<Self, KafkaError> {
        let stale = Arc::new(AtomicBool::new(false));
        let producer = config.producer().create_with_context(SessionContext { stale: stale.clone() })?;
        Ok(Generation { number, producer, stale, created: Instant::now() })
    }
}

impl RatingProducer {
    /// Creates the producer; connecting is lazy, so this succeeds while the broker is down.
    pub fn new(config: &KafkaConfig, topics: &Topics) -> Result<Self, KafkaError> {
        Ok(RatingProducer {
            current: Arc::new(RwLock::new(Generation::create(config, 0)?)),
            topic: topics.rating_submitted.clone(),
            config: config.clone(),
        })
    }

    /// The current session, replaced first when it saw the brokers go away.
    fn generation(&self) -> Generation {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        // While the brokers stay away every new session goes stale at once too: pace the churn.
        if current.stale.load(Ordering::Relaxed) && current.created.elapsed() >= Duration::from_secs(1) {
            self.replace(current.number, "broker connections were lost");
            return self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        }
        current
    }

    /// Replaces the session of generation `failed` (unless another task already did).
    fn replace(&self, failed: u64, cause: &str) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.number != failed {
            return;
        }
        match Generation::create(&self.config, failed + 1) {
            Ok(next) => {
                tracing::info!(cause, generation = failed + 1, "new Kafka producer session");
                *current = next;
            }
            Err(e) => tracing::error!(error = %e, "cannot create a new Kafka producer"),
        }
    }

    /// Publishes `event`, returning `(partition, offset)` once every in-sync replica has it.
    pub async fn publish(&self, event: &RatingSubmitted) -> Result<(i32, i64), PublishError> {
        let body = serde_json::to_vec(event).expect("events always serialize");
        self.publish_raw(&event.service_record_no, &body).await
    }

    /// Publishes an already encoded event body under `key` (used by replays and benchmarks).
    pub async fn publish_raw(&self, key: &str, body: &[u8]) -> Result<(i32, i64), PublishError> {
        let topic = self.topic.clone();
        self.publish_to(&topic, RATING_SUBMITTED_SCHEMA, key, body).await
    }

    /// Publishes `body` (schema id `schema`) to another topic of the deployment, with the same
    /// acknowledgement and session rules.
    pub async fn publish_to(
        &self,
        topic: &str,
        schema: &str,
        key: &str,
        body: &[u8],
    ) -> Result<(i32, i64), PublishError> {
        let mut retried = false;
        loop {
            let generation = self.generation();
            let headers = OwnedHeaders::new().insert(Header { key: SCHEMA_HEADER, value: Some(schema) });
            let record = FutureRecord::to(topic).key(key).payload(body).headers(headers);
            let error = match generation.producer.send(record, Timeout::After(self.config.produce_timeout)).await {
                Ok(d) => return Ok((d.partition, d.offset)),
                Err((e, _)) => e,
            };
            // Any failure retires the session. A broker-side rejection is retried once at once on
            // the new session; a timeout is not (the answer must stay within the produce timeout).
            self.replace(generation.number, &error.to_string());
            let rejected =
                generation.producer.client().fatal_error().is_some() || matches!(classify_ref(&error), Kind::Failed);
            if rejected && !retried {
                retried = true;
                continue;
            }
            return Err(classify(error));
        }
    }

    /// Publishes many records (`(key, body)`, schema id `schema`) to `topic`, all in flight at
    /// once, with the session rules of [`RatingProducer::publish_to`]. Each record is handed to
    /// librdkafka (which keeps its own copy) as soon as the iterator yields it and only its
    /// acknowledgement is awaited, so a large batch holds no second copy of its bodies. Ok once
    /// every record is acknowledged; on a failure the session is replaced and the first error
    /// returned after the others settled: the caller publishes them all again (a record sent
    /// twice is harmless to consumers that keep the latest per key).
    pub async fn publish_all<K, B>(
        &self,
        topic: &str,
        schema: &str,
        records: impl IntoIterator<Item = (K, B)>,
    ) -> Result<(), PublishError>
    where
        K: AsRef<str>,
        B: AsRef<[u8]>,
    {
        let generation = self.generation();
        let mut deliveries = Vec::new();
        let mut error = None;
        'records: for (key, body) in records {
            let headers = OwnedHeaders::new().insert(Header { key: SCHEMA_HEADER, value: Some(schema) });
            let mut record = FutureRecord::to(topic).key(key.as_ref()).payload(body.as_ref()).headers(headers);
            let queued_since = Instant::now();
            loop {
                match generation.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    // librdkafka's queue is full: wait for acknowledgements to make room.
                    Err((e, back))
                        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
                            && queued_since.elapsed() < self.config.produce_timeout =>
                    {
                        record = back;
                        <TokioRuntime as AsyncRuntime>::delay_for(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => {
                        error = Some(e);
                        break 'records;
                    }
                }
            }
        }
        // All are in flight already: awaiting them in order takes as long as the slowest.
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    error.get_or_insert(e);
                }
                Err(_) => {
                    error.get_or_insert(KafkaError::Canceled);
                }
            }
        }
        match error {
            None => Ok(()),
            Some(e) => {
                self.replace(generation.number, &e.to_string());
                Err(classify(e))
            }
        }
    }

    /// Asks the broker for the topic's metadata: the readiness probe.
    /// Blocking; call it from a blocking context.
    pub fn check_broker(&self, timeout: Duration) -> Result<(), KafkaError> {
        let md = self.generation().producer.client().fetch_metadata(Some(&self.topic), timeout)?;
        match md.topics().first().and_then(|t| t.error()) {
            Some(e) => Err(KafkaError::MetadataFetch(e.into())),
            None => Ok(()),
        }
    }

    /// Fetches the metadata of `topics` now, so the first records to them go out at once instead
    /// of waiting for a leader lookup behind a full batch (measured on Tansu: the first 5 000
    /// records to a topic took twice as long as the next ones without it). A failure is only
    /// logged: records wait for the metadata anyway. Blocking; call it from a blocking context.
    pub fn warm_up(&self, topics: &[&str], timeout: Duration) {
        let generation = self.generation();
        for topic in topics {
            if let Err(e) = generation.producer.client().fetch_metadata(Some(topic), timeout) {
                tracing::warn!(topic, error = %e, "cannot fetch topic metadata ahead of the first record");
            }
        }
    }

    /// Waits up to `timeout` for queued records to be acknowledged (graceful shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.generation().producer.flush(timeout)
    }

    /// The topic this producer writes.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// Whether an error means "try later" or "this session is refused".
enum Kind {
    Unavailable,
    Failed,
}

fn classify(e: KafkaError) -> PublishError {
    match classify_ref(&e) {
        Kind::Unavailable => PublishError::Unavailable(e),
        Kind::Failed => PublishError::Failed(e),
    }
}

fn classify_ref(e: &KafkaError) -> Kind {
    let unavailable = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::QueueFull
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NotEnoughReplicas
                | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::UnknownTopicOrPartition
        )
    );
    if unavailable {
        Kind::Unavailable
    } else {
        Kind::Failed
    }
}
