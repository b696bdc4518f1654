//! # hcp-bus: the Kafka side of the pipeline
//!
//! Owns the topic names, the event encoding on the wire (JSON body, `hcp-schema` header, key =
//! 办件编号), and the producer / consumer / admin configurations every component uses, so that
//! "acks=all, idempotent" and "no auto-commit" are decided in one place.
//!
//! It must not know about HTTP or SQL, and it never decides what a rating means: that is
//! `hcp-domain`. It speaks only the Kafka protocol (Apache Kafka 4.x here and in production).

mod admin;
mod config;
mod dlq;
mod producer;
mod topics;

pub use admin::{create_topics, delete_topics, fetch_high_watermarks, list_topics};
pub use config::KafkaConfig;
pub use dlq::{commit_through, read_dead_letters, DeadLetterRecord};
pub use producer::{PublishError, RatingProducer, SCHEMA_HEADER};
pub use topics::{retention, topic_settings, Topics};

/// Schema id of [`DeadLetter`].
pub const RATING_DLQ_SCHEMA: &str = "hcp.rating.dlq.v1";

/// A record of the rating topic the aggregator could not take, as kept on `hcp.rating.dlq.v1`
/// (contract `schemas/rating-dlq.v1.json`). The original key is the Kafka key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// Why it was refused.
    pub reason: String,
    /// Where it was read.
    pub source_topic: String,
    /// Its partition there.
    pub source_partition: i32,
    /// Its offset there.
    pub source_offset: i64,
    /// The original body, as text when it is UTF-8.
    pub payload: Option<String>,
    /// The original body, base64, when it is not UTF-8.
    pub payload_base64: Option<String>,
    /// When it was refused.
    pub rejected_at: chrono::DateTime<chrono::Utc>,
}

impl DeadLetter {
    /// The original body.
    pub fn body(&self) -> Vec<u8> {
        use base64::Engine;
        match (&self.payload, &self.payload_base64) {
            (Some(p), _) => p.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}
