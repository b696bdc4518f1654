//! Group membership: the consumer context that seeks to the positions kept in PostgreSQL on
//! assignment, lets every batch in flight save its positions before a revoke, and keeps the
//! batches handed to writer tasks in order (at most [`MAX_IN_FLIGHT`]).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hcp_store::{Batch, Position, Publishable, Store};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::metrics;
use crate::preparation::Preparer;
use crate::writer::Turn;

/// The consumer context of one group member: on assignment, seek to the positions stored in
/// PostgreSQL; on revoke, finish the batches in flight first.
pub(crate) struct Membership {
    store: Store,
    handle: Handle,
    group: String,
    topic: String,
    shutdown: CancellationToken,
    /// Partitions revoked since the current batch began: their records are dropped from it,
    /// the new owner reads them again from the stored positions.
    pub(crate) revoked: Mutex<HashSet<i32>>,
    /// The batches handed to writer tasks whose positions are not known to be saved yet, oldest
    /// first (at most [`MAX_IN_FLIGHT`]); only the newest may still be writing its rows.
    in_flight: Mutex<VecDeque<InFlight>>,
    /// Set when a batch in flight ended without saving its positions (shutdown interrupted its
    /// retries, or its task panicked): no later batch may be written.
    pub(crate) writer_failed: AtomicBool,
}

impl ClientContext for Membership {
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

impl ConsumerContext for Membership {
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
                if let Err(e) = consumer.assign(&assignment) {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions: Vec<i32> = tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
                tracing::info!(?partitions, "partitions revoked");
                // The next owner starts from the positions in PostgreSQL: let every batch in
                // flight save its positions first, so it does not read those records again.
                self.finish_in_flight(consumer);
                self.revoked.lock().expect("revoked lock").extend(partitions);
                metrics::ASSIGNED.set(0);
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

impl Membership {
    /// A member of `group` on `topic` with no batch in flight yet.
    pub(crate) fn new(store: Store, handle: Handle, group: String, topic: String, shutdown: CancellationToken) -> Self {
        Membership {
            store,
            handle,
            group,
            topic,
            shutdown,
            revoked: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(VecDeque::new()),
            writer_failed: AtomicBool::new(false),
        }
    }

    /// Waits until every batch in flight has saved its positions, mirroring them to Kafka in
    /// order. Returns false when no further batch may be written ([`Membership::writer_failed`]).
    pub(crate) fn finish_in_flight(&self, consumer: &BaseConsumer<Self>) -> bool {
        while self.settle_oldest(consumer, 0) {}
        !self.writer_failed.load(Ordering::Relaxed)
    }

    /// Settles the oldest batch in flight if more than `keep` are, or if it has finished:
    /// waits for its task and mirrors its positions to Kafka (or records the failure). True
    /// when one was settled.
    pub(crate) fn settle_oldest(&self, consumer: &BaseConsumer<Self>, keep: usize) -> bool {
        let oldest = {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            let due = in_flight.len() > keep || in_flight.front().is_some_and(|f| f.task.is_finished());
            if !due {
                return false;
            }
            match in_flight.pop_front() {
                Some(f) => f,
                None => return false,
            }
        };
        match self.handle.block_on(oldest.task) {
            Ok(true) => commit_to_kafka(consumer, &self.topic, &oldest.batch.positions),
            Ok(false) => self.writer_failed.store(true, Ordering::Relaxed),
            Err(e) => {
                tracing::error!(error = %e, "batch writer task failed");
                self.writer_failed.store(true, Ordering::Relaxed);
            }
        }
        true
    }

    /// Makes way for the next batch: waits until the newest batch's rows are committed (rows
    /// are written in order) and fewer than [`MAX_IN_FLIGHT`] batches are in flight. Returns
    /// false when no further batch may be written.
    pub(crate) fn make_way(&self, consumer: &BaseConsumer<Self>) -> bool {
        let written = self.in_flight.lock().expect("in-flight lock").back_mut().and_then(|f| f.written.take());
        if let Some(written) = written {
            if !self.handle.block_on(written).unwrap_or(false) {
                self.writer_failed.store(true, Ordering::Relaxed);
            }
        }
        while self.settle_oldest(consumer, MAX_IN_FLIGHT - 1) {}
        !self.writer_failed.load(Ordering::Relaxed)
    }

    /// The newest batch in flight, which the next batch's preparation must treat as stored
    /// although its rows may not be committed yet.
    pub(crate) fn pending_batch(&self) -> Option<Arc<Batch>> {
        self.in_flight.lock().expect("in-flight lock").back().map(|f| f.batch.clone())
    }

    /// Hands a prepared batch to a writer task, after the batches in flight.
    pub(crate) fn hand_over(
        &self,
        preparer: &Preparer,
        batch: Batch,
        publishable: Publishable,
        span: tracing::Span,
        shutdown: &CancellationToken,
    ) {
        let batch = Arc::new(batch);
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        let (written_tx, written) = oneshot::channel();
        let (saved_tx, saved) = oneshot::channel();
        let turn =
            Turn { written: written_tx, before: in_flight.back_mut().and_then(|f| f.saved.take()), saved: saved_tx };
        let task = preparer.writer.clone().store(batch.clone(), publishable, turn, shutdown.clone()).instrument(span);
        let task = preparer.handle.spawn(task);
        in_flight.push_back(InFlight { task, batch, written: Some(written), saved: Some(saved) });
    }

    /// Loads the stored positions, retrying while PostgreSQL is away; `None` on shutdown.
    fn load_positions(&self, partitions: &[i32]) -> Option<std::collections::HashMap<i32, i64>> {
        let mut backoff = Backoff::new();
        loop {
            match self.handle.block_on(self.store.load_positions(&self.group, &self.topic, partitions)) {
                Ok(map) => return Some(map),
                Err(e) if self.shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, "positions unavailable during shutdown");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load positions; retrying");
                    std::thread::sleep(backoff.next());
                }
            }
        }
    }
}

/// Most batches handed to writer tasks whose positions are not saved yet. Rows are written one
/// batch at a time, in order, but a batch's positions wait for its events: while the broker is
/// slow to acknowledge them, the next batches' rows are written meanwhile instead of waiting.
const MAX_IN_FLIGHT: usize = 4;

/// A batch handed to its writer task, and what the next batch needs of it meanwhile.
struct InFlight {
    /// The writer task: true once the batch's positions are saved, false when shutdown
    /// interrupted its retries (or an earlier batch's).
    task: tokio::task::JoinHandle<bool>,
    /// The batch: its positions are mirrored to Kafka once saved; the next batch is prepared as
    /// if it were stored.
    batch: Arc<Batch>,
    /// Whether its rows committed; taken by the next batch, which is written only after.
    written: Option<oneshot::Receiver<bool>>,
    /// Whether its positions were saved; taken by the next batch's task, which saves its own only
    /// after.
    saved: Option<oneshot::Receiver<bool>>,
}

/// Mirrors the committed positions to Kafka, for lag tooling only (PostgreSQL is the truth).
fn commit_to_kafka(consumer: &BaseConsumer<Membership>, topic: &str, positions: &[Position]) {
    let mut tpl = TopicPartitionList::new();
    for p in positions {
        let _ = tpl.add_partition_offset(topic, p.partition, Offset::Offset(p.next_offset));
    }
    let result: KafkaResult<()> = consumer.commit(&tpl, CommitMode::Async);
    if let Err(e) = result {
        tracing::debug!(error = %e, "kafka offset commit failed (positions are safe in PostgreSQL)");
    }
}
