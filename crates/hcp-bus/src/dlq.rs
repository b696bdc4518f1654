//! Reading the dead-letter topic (for `hcp dlq list` and `hcp dlq replay`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::{fetch_high_watermarks, DeadLetter, KafkaConfig};

/// One record of the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    /// Partition on the dead-letter topic.
    pub partition: i32,
    /// Offset there.
    pub offset: i64,
    /// The original key.
    pub key: String,
    /// The envelope (`None` when the record is not one).
    pub letter: Option<DeadLetter>,
}

/// Reads `topic` up to its current end. With `group`, starts at the group's committed offsets
/// (records a previous `commit_through` covered are skipped); without, from the beginning.
/// Blocking.
pub fn read_dead_letters(
    config: &KafkaConfig,
    topic: &str,
    group: Option<&str>,
    timeout: Duration,
) -> Result<(Vec<DeadLetterRecord>, BaseConsumer), KafkaError> {
    let high = fetch_high_watermarks(config, topic, timeout)?;
    let consumer: BaseConsumer = config.consumer(group.unwrap_or("hcp-dlq-reader")).create()?;
    let mut tpl = TopicPartitionList::new();
    for p in high.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    if group.is_some() {
        let committed = consumer.committed_offsets(tpl.clone(), timeout)?;
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                tpl.set_partition_offset(topic, e.partition(), Offset::Offset(o))?;
            }
        }
    }
    let start: HashMap<i32, i64> = tpl
        .elements()
        .iter()
        .map(|e| (e.partition(), if let Offset::Offset(o) = e.offset() { o } else { 0 }))
        .collect();
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let mut next: HashMap<i32, i64> = start;
    let deadline = Instant::now() + timeout * 3;
    while high.iter().any(|(p, h)| next.get(p).copied().unwrap_or(0) < *h) && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = m?;
        next.insert(m.partition(), m.offset() + 1);
        out.push(DeadLetterRecord {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
            letter: m.payload().and_then(|b| serde_json::from_slice(b).ok()),
        });
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    Ok((out, consumer))
}

/// Commits `records` as handled for the consumer's group (the next `--all` replay skips them).
pub fn commit_through(consumer: &BaseConsumer, topic: &str, records: &[DeadLetterRecord]) -> Result<(), KafkaError> {
    let mut last: HashMap<i32, i64> = HashMap::new();
    for r in records {
        let e = last.entry(r.partition).or_insert(r.offset);
        *e = (*e).max(r.offset);
    }
    if last.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in last {
        tpl.add_partition_offset(topic, p, Offset::Offset(o + 1))?;
    }
    consumer.commit(&tpl, CommitMode::Sync)
}
