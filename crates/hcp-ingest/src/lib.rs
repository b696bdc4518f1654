//! # hcp-ingest: ratings in, durably
//!
//! Owns the rating intake endpoint: it validates a submission (rules from `hcp-domain`),
//! assigns the UUIDv7 rating id, publishes the event to `hcp.rating.submitted.v1` and answers
//! `202` **only after the broker acknowledged the record**. Broker trouble is a `503` problem
//! within the produce timeout, never a 2xx.
//!
//! It must not touch PostgreSQL or aggregates: the aggregator owns everything after Kafka.
//! Handlers stay thin; errors are `hcp_http::ApiError`.

mod handlers;
mod metrics;

use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::Router;
use hcp_bus::RatingProducer;

pub use handlers::{__path_submit_rating, Accepted};

/// Largest request body ingest reads. A rating is well under 8 KiB; the limit leaves room for
/// a 1 000-character comment and refuses anything absurd with a 413 problem.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the ingest handlers share.
#[derive(Clone)]
pub struct IngestState {
    /// The durable publisher.
    pub producer: RatingProducer,
}

/// The ingest routes, ready to be merged into the server's router.
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/api/v1/ratings", post(handlers::submit_rating))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
