//! # hcp-aggregator: from the rating topic to committed aggregates, exactly once
//!
//! Owns the Kafka consumer group on `hcp.rating.submitted.v1`. Each polled batch is decoded,
//! **attributed** in memory against a directory snapshot (reloaded only when the directory
//! version moves; one version read per batch, never a query per rating), and its rows are stored
//! by `hcp-store` in **one PostgreSQL transaction** together with the aggregate deltas, while its
//! attributed events go to `hcp.rating.attributed.v1`; the group's positions are saved in
//! PostgreSQL only once those events are acknowledged. Rows are written one batch at a time, in
//! order, by writer tasks, while the consumer thread prepares the next batch (poll, attribution,
//! anti-gaming, new-rating look-up) as if the batch being written were stored. On partition
//! assignment the consumer seeks to the positions stored in PostgreSQL (Kafka's "offsets outside
//! Kafka" pattern); committing to Kafka afterwards is only for lag tooling. A crash at any point
//! therefore re-reads from the last saved positions: the ratings' uniqueness (`rating_keys`) turns every
//! re-read into a no-op for the counts, and ratings found stored from the very same records are
//! published again. Its task `partitions` creates the monthly partitions of `ratings` ahead
//! ([`keep_partitions`]); its task `statistics` analyses the tables it fills once they have grown,
//! ahead of autovacuum ([`keep_statistics`]).
//!
//! It must not serve HTTP or decide domain rules; a record it cannot decode is kept as rejected
//! (with the reason) and never stalls the partition.

mod backoff;
mod directory;
mod membership;
mod metrics;
mod partitions;
mod pipeline;
mod preparation;
mod statistics;
mod writer;

pub use directory::AggregatorStats;
pub use partitions::keep_partitions;
pub use pipeline::{run, AggregatorConfig, AggregatorError};
pub use statistics::keep_statistics;
