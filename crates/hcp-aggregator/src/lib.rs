//! # hcp-aggregator: from the rating topic to committed aggregates, exactly once
//!
//! Owns the Kafka consumer group on `hcp.rating.submitted.v1`. Each polled batch is decoded,
//! **attributed** in memory against a directory snapshot (reloaded only when the directory
//! version moves; one version read per batch, never a query per rating), and stored by
//! `hcp-store` in **one PostgreSQL transaction** together with the aggregate deltas and the
//! group's positions; the attributed events go to `hcp.rating.attributed.v1` before the commit.
//! Batches are written one at a time, in order, by a writer task, while the consumer thread
//! prepares the next one (poll, attribution, anti-gaming, new-rating look-up) as if the batch in
//! flight were stored. On partition assignment the consumer seeks to the positions stored in
//! PostgreSQL (Kafka's "offsets outside Kafka" pattern); committing to Kafka afterwards is only
//! for lag tooling. A crash at any point therefore re-reads from the last committed transaction,
//! and the ratings table's uniqueness turns every re-read into a no-op.
//!
//! It must not serve HTTP or decide domain rules; a record it cannot decode is kept as rejected
//! (with the reason) and never stalls the partition.

mod consumer;
mod directory;
mod metrics;

pub use consumer::{run, AggregatorConfig, AggregatorError};
pub use directory::AggregatorStats;
