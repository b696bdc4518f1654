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

use axum::routing::post;
use axum::Router;
use hcp_bus::RatingProducer;

pub use handlers::{__path_submit_rating, Accepted};

/// What the ingest handlers share.
#[derive(Clone)]
pub struct IngestState {
    /// The durable publisher.
    pub producer: RatingProducer,
    /// Seals a rater's identity before it leaves the request (`HCP_PII_KEY`); without it an
    /// identity is refused with 503 `pii-key-missing`.
    pub pii: Option<hcp_domain::PiiCipher>,
}

/// The ingest routes, ready to be merged into the server's router.
pub fn router(state: IngestState) -> Router {
    Router::new().route("/api/v1/ratings", post(handlers::submit_rating)).with_state(state)
}
