//! Topic administration and watermark queries.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::topics::topic_settings;
use crate::KafkaConfig;

/// Creates `topics` with `partitions` partitions each (replication factor `replication`) and
/// hcp's topic settings ([`topic_settings`]); topics that already exist are left as they are.
/// Returns the names created now.
pub async fn create_topics(
    config: &KafkaConfig,
    topics: &[&str],
    partitions: i32,
    replication: i32,
) -> Result<Vec<String>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.producer().create()?;
    let settings: Vec<Vec<(&str, String)>> = topics.iter().map(|t| topic_settings(t, replication)).collect();
    let new: Vec<NewTopic> = topics
        .iter()
        .zip(&settings)
        .map(|(t, settings)| {
            settings
                .iter()
                .fold(NewTopic::new(t, partitions, TopicReplication::Fixed(replication)), |n, (k, v)| n.set(k, v))
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut created = Vec::new();
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::error!(%name, ?code, "create topic failed");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(created)
}

/// The high watermark (next offset to be written) of every partition of `topic`.
/// Blocking; call it from a blocking context.
pub fn fetch_high_watermarks(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<HashMap<i32, i64>, KafkaError> {
    let consumer: BaseConsumer = config.consumer("hcp-watermarks").create()?;
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut out = HashMap::new();
    for t in md.topics() {
        if let Some(e) = t.error() {
            return Err(KafkaError::MetadataFetch(e.into()));
        }
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            out.insert(p.id(), high);
        }
    }
    Ok(out)
}

/// The names of the topics on the cluster whose name starts with `prefix` (internal topics
/// excluded), sorted. Blocking; call it from a blocking context.
pub fn list_topics(config: &KafkaConfig, prefix: &str, timeout: Duration) -> Result<Vec<String>, KafkaError> {
    let consumer: BaseConsumer = config.consumer("hcp-topics").create()?;
    let md = consumer.fetch_metadata(None, timeout)?;
    let mut names: Vec<String> = md
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| n.starts_with(prefix) && !n.starts_with("__"))
        .collect();
    names.sort();
    Ok(names)
}

/// Deletes `topics` (and every record in them); topics that do not exist are skipped. Returns
/// the names deleted now.
pub async fn delete_topics(config: &KafkaConfig, topics: &[&str]) -> Result<Vec<String>, KafkaError> {
    if topics.is_empty() {
        return Ok(vec![]);
    }
    let admin: AdminClient<DefaultClientContext> = config.producer().create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut deleted = Vec::new();
    for result in admin.delete_topics(topics, &opts).await? {
        match result {
            Ok(name) => deleted.push(name),
            Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => {
                tracing::error!(%name, ?code, "delete topic failed");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(deleted)
}
