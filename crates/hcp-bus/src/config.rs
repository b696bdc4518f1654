//! librdkafka settings for each role.

use std::time::Duration;

use rdkafka::ClientConfig;

/// Connection settings shared by every Kafka client of a process.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// How long a produce may wait for the broker's acknowledgement before ingest answers 503.
    pub produce_timeout: Duration,
    /// `linger.ms`: how long the producer waits to fill a batch.
    pub linger: Duration,
    /// `compression.type`.
    pub compression: String,
    /// librdkafka `debug` contexts (e.g. `cgrp,fetch`), logged at debug level; `None` in normal runs.
    pub debug: Option<String>,
}

impl KafkaConfig {
    /// Settings with the defaults used by `hcp serve`.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            produce_timeout: Duration::from_secs(5),
            linger: Duration::from_millis(2),
            compression: "none".into(),
            debug: None,
        }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            // Fail fast when a broker vanishes instead of trying for minutes.
            .set("socket.connection.setup.timeout.ms", "3000")
            .set("reconnect.backoff.max.ms", "1000")
            // Idle connections closed by the broker are routine, not errors.
            .set("log.connection.close", "false")
            .set("log_level", "4");
        if let Some(contexts) = &self.debug {
            c.set("debug", contexts).set("log_level", "7");
        }
        c
    }

    /// Producer settings: `acks=all`, idempotent, bounded delivery time. A message that cannot be
    /// acknowledged within `produce_timeout` fails, so ingest never answers 2xx for it.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", self.produce_timeout.as_millis().to_string())
            .set("request.timeout.ms", self.produce_timeout.as_millis().min(30_000).to_string())
            .set("linger.ms", self.linger.as_millis().to_string())
            .set("compression.type", &self.compression)
            .set("queue.buffering.max.messages", "1000000")
            .set("batch.num.messages", "10000");
        c
    }

    /// Consumer settings for a group whose positions live outside Kafka: no auto-commit, no
    /// automatic offset store, start from the earliest record when nothing is stored.
    pub fn consumer(&self, group_id: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            // Also the rebalance timeout of the classic group protocol: in a rebalance the
            // coordinator waits this long for every live member to re-join, and an aggregator
            // busy with a batch (PostgreSQL down) would hold up the whole group for librdkafka's
            // default 5 minutes. A member that does not poll for this long leaves the group and
            // re-joins at its next poll.
            .set("max.poll.interval.ms", "30000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "50")
            .set("fetch.min.bytes", "1")
            // Records fetched ahead of the consumer, at most (librdkafka's default is 64 MiB, plus
            // a 50 MiB fetch in flight): 8 MiB is some 18 000 ratings, more than three of the
            // aggregator's largest batches, and an aggregator catching up with a backlog stays
            // within its memory budget. With the defaults its peak RSS grew with the backlog (173 MiB
            // over 50 000 records, 272 MiB over 300 000); with 16 MiB 218 MiB over 600 000, with
            // 8 MiB 197 MiB, at the same throughput (docs/benchmarks.md).
            .set("queued.max.messages.kbytes", "8192")
            .set("fetch.max.bytes", "8388608")
            .set("enable.partition.eof", "false");
        c
    }
}
