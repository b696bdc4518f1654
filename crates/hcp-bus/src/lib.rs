//! # hcp-bus: the Kafka side of the pipeline
//!
//! Owns the topic names, the event encoding on the wire (JSON body, `hcp-schema` header, key =
//! 办件编号), and the producer / consumer / admin configurations every component uses, so that
//! "acks=all, idempotent" and "no auto-commit" are decided in one place.
//!
//! It must not know about HTTP or SQL, and it never decides what a rating means: that is
//! `hcp-domain`. It speaks only the Kafka protocol, so Apache Kafka and Tansu both work.

mod admin;
mod config;
mod producer;
mod topics;

pub use admin::{create_topics, fetch_high_watermarks};
pub use config::KafkaConfig;
pub use producer::{PublishError, RatingProducer, SCHEMA_HEADER};
pub use topics::Topics;
