//! The rating producer: one record per rating, acknowledged by the broker before we say yes.

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
/// One idempotent producer (`acks=all`): librdkafka keeps its producer id and sequence numbers
/// across broker restarts, leader changes and timed-out requests (it bumps the epoch itself), and
/// the broker drops the duplicates its retries would otherwise write. Only a *fatal* error (the
/// broker and the producer disagree on the sequence beyond repair, e.g. records it acknowledged
/// were lost by an unclean leader election) leaves the producer unusable: it is then replaced by a
/// fresh one (a new producer id) and the record retried once on it. A record sent twice that way
/// is harmless, as the aggregator counts a rating at most once.
#[derive(Clone)]
pub struct RatingProducer {
    current: Arc<RwLock<Session>>,
    topic: String,
    config: KafkaConfig,
}

/// One producer and its sequence number, so concurrent failures replace it only once.
#[derive(Clone)]
struct Session {
    number: u64,
    producer: FutureProducer<LogContext>,
}

/// Routes librdkafka's error callbacks to `tracing`.
struct LogContext;

impl ClientContext for LogContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka producer");
    }
}

impl Session {
    fn create(config: &KafkaConfig, number: u64) -> Result<Self, KafkaError> {
        Ok(Session { number, producer: config.producer().create_with_context(LogContext)? })
    }

    /// Whether librdkafka declared this producer unusable.
    fn is_fatal(&self) -> bool {
        self.producer.client().fatal_error().is_some()
    }
}

impl RatingProducer {
    /// Creates the producer; connecting is lazy, so this succeeds while the broker is down.
    pub fn new(config: &KafkaConfig, topics: &Topics) -> Result<Self, KafkaError> {
        Ok(RatingProducer {
            current: Arc::new(RwLock::new(Session::create(config, 0)?)),
            topic: topics.rating_submitted.clone(),
            config: config.clone(),
        })
    }

    /// The current producer.
    fn session(&self) -> Session {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the producer of session `failed` after a fatal error (unless another task
    /// already did).
    fn replace(&self, failed: &Session) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.number != failed.number {
            return;
        }
        let cause = failed.producer.client().fatal_error().map(|(_, reason)| reason).unwrap_or_default();
        match Session::create(&self.config, failed.number + 1) {
            Ok(next) => {
                tracing::warn!(cause, session = failed.number + 1, "Kafka producer failed fatally; replaced");
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
            let session = self.session();
            let headers = OwnedHeaders::new().insert(Header { key: SCHEMA_HEADER, value: Some(schema) });
            let record = FutureRecord::to(topic).key(key).payload(body).headers(headers);
            let error = match session.producer.send(record, Timeout::After(self.config.produce_timeout)).await {
                Ok(d) => return Ok((d.partition, d.offset)),
                Err((e, _)) => e,
            };
            if session.is_fatal() {
                self.replace(&session);
                if !retried {
                    retried = true;
                    continue;
                }
            }
            return Err(classify(error));
        }
    }

    /// Publishes many records (`(key, body)`, schema id `schema`) to `topic`, all in flight at
    /// once. Each record is handed to librdkafka (which keeps its own copy) as soon as the
    /// iterator yields it and only its acknowledgement is awaited, so a large batch holds no
    /// second copy of its bodies. Ok once every record is acknowledged; on a failure the first
    /// error is returned after the others settled (and a fatally failed producer replaced): the
    /// caller publishes them all again (a record sent twice is harmless to consumers that keep
    /// the latest per key).
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
        let session = self.session();
        let mut deliveries = Vec::new();
        let mut error = None;
        'records: for (key, body) in records {
            let headers = OwnedHeaders::new().insert(Header { key: SCHEMA_HEADER, value: Some(schema) });
            let mut record = FutureRecord::to(topic).key(key.as_ref()).payload(body.as_ref()).headers(headers);
            let queued_since = Instant::now();
            loop {
                match session.producer.send_result(record) {
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
                if session.is_fatal() {
                    self.replace(&session);
                }
                Err(classify(e))
            }
        }
    }

    /// Asks the broker for the topic's metadata: the readiness probe.
    /// Blocking; call it from a blocking context.
    pub fn check_broker(&self, timeout: Duration) -> Result<(), KafkaError> {
        let md = self.session().producer.client().fetch_metadata(Some(&self.topic), timeout)?;
        match md.topics().first().and_then(|t| t.error()) {
            Some(e) => Err(KafkaError::MetadataFetch(e.into())),
            None => Ok(()),
        }
    }

    /// Fetches the metadata of `topics` now, so the first records to them go out at once instead
    /// of waiting for a leader lookup behind a full batch (the aggregator's first batch publishes
    /// thousands at once). A failure is only logged: records wait for the metadata anyway.
    /// Blocking; call it from a blocking context.
    pub fn warm_up(&self, topics: &[&str], timeout: Duration) {
        let session = self.session();
        for topic in topics {
            if let Err(e) = session.producer.client().fetch_metadata(Some(topic), timeout) {
                tracing::warn!(topic, error = %e, "cannot fetch topic metadata ahead of the first record");
            }
        }
    }

    /// Waits up to `timeout` for queued records to be acknowledged (graceful shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.session().producer.flush(timeout)
    }

    /// The topic this producer writes.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// Whether an error means "try later" ([`PublishError::Unavailable`]) or a refusal.
fn classify(e: KafkaError) -> PublishError {
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
        PublishError::Unavailable(e)
    } else {
        PublishError::Failed(e)
    }
}
