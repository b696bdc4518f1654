//! The rating producer: one record per rating, acknowledged by the broker before we say yes.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

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
#[derive(Clone)]
pub struct RatingProducer {
    producer: FutureProducer,
    topic: String,
    config: KafkaConfig,
}

impl RatingProducer {
    /// Creates the producer; connecting is lazy, so this succeeds while the broker is down.
    pub fn new(config: &KafkaConfig, topics: &Topics) -> Result<Self, KafkaError> {
        Ok(RatingProducer {
            producer: config.producer().create()?,
            topic: topics.rating_submitted.clone(),
            config: config.clone(),
        })
    }

    /// Publishes `event`, returning `(partition, offset)` once every in-sync replica has it.
    pub async fn publish(&self, event: &RatingSubmitted) -> Result<(i32, i64), PublishError> {
        let body = serde_json::to_vec(event).expect("events always serialize");
        self.publish_raw(&event.service_record_no, &body).await
    }

    /// Publishes an already encoded event body under `key` (used by replays and benchmarks).
    pub async fn publish_raw(&self, key: &str, body: &[u8]) -> Result<(i32, i64), PublishError> {
        let headers = OwnedHeaders::new().insert(Header { key: SCHEMA_HEADER, value: Some(RATING_SUBMITTED_SCHEMA) });
        let record = FutureRecord::to(&self.topic).key(key).payload(body).headers(headers);
        match self.producer.send(record, Timeout::After(self.config.produce_timeout)).await {
            Ok(d) => Ok((d.partition, d.offset)),
            Err((e, _)) => Err(classify(e)),
        }
    }

    /// Asks the broker for the topic's metadata: the readiness probe.
    /// Blocking; call it from a blocking context.
    pub fn check_broker(&self, timeout: std::time::Duration) -> Result<(), KafkaError> {
        let md = self.producer.client().fetch_metadata(Some(&self.topic), timeout)?;
        match md.topics().first().and_then(|t| t.error()) {
            Some(e) => Err(KafkaError::MetadataFetch(e.into())),
            None => Ok(()),
        }
    }

    /// Waits up to `timeout` for queued records to be acknowledged (graceful shutdown).
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    /// The topic this producer writes.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

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
