//! # hcp-ingest: ratings in, durably
//!
//! Owns the rating intake endpoints (one rating, or a batch of up to 1 000): it authenticates the
//! channel key (the channel and device come from it), validates a submission (rules from
//! `hcp-domain`), seals the rater's identity, claims the (service record, stage) so a second first
//! rating is refused at once, replays `Idempotency-Key` retries, assigns the UUIDv7 rating id,
//! publishes the event to `hcp.rating.submitted.v1` and answers `202` **only after the broker
//! acknowledged the record**. Broker trouble is a `503` problem within the produce timeout, never
//! a 2xx.
//!
//! It also owns the citizen channels: service records reported by the platform, signed single-use
//! invitations (`/r/{token}`, QR code as SVG/PNG, SMS through an [`invitations::SmsGateway`]),
//! the citizen's rating page, and 我的业务 (a platform lists one citizen's stages still open for
//! rating, by the platform's user id kept as a keyed digest).
//!
//! Its PostgreSQL use is the gate's and the invitations' tables only (credentials, kept in memory
//! and dropped as PostgreSQL announces their changes; claims; idempotency keys; through
//! `hcp-store`); it must not write ratings or aggregates: the aggregator owns everything after
//! Kafka. Handlers stay thin; errors are `hcp_http::ApiError`.

pub mod claims;
pub mod defaults;
pub mod gate;
mod handlers;
pub mod invitations;
pub mod keys;
pub mod limits;
mod metrics;
pub mod my_business;

use std::time::Duration;

use hcp_bus::RatingProducer;
use hcp_domain::Role;
use hcp_http::{Access, Component, Routes};

pub use gate::{AuthMode, Gate};
pub use handlers::{
    __path_submit_batch, __path_submit_rating, Accepted, BatchRequest, BatchResult, ItemResult, MAX_BATCH,
};

/// What the ingest handlers share.
#[derive(Clone)]
pub struct IngestState {
    /// The durable publisher.
    pub producer: RatingProducer,
    /// Seals a rater's identity before it leaves the request (`HCP_PII_KEY`); without it an
    /// identity is refused with 503 `pii-key-missing`.
    pub pii: Option<hcp_domain::PiiCipher>,
    /// Credentials, claims and idempotency keys (none: an ingest without a database, as in the
    /// bare benchmark, which then neither authenticates nor refuses duplicates itself).
    pub gate: Option<Gate>,
    /// Service records and invitations (QR code and SMS links, the citizen's page); needs the gate.
    pub invitations: Option<invitations::InvitationConfig>,
    /// Per-key and per-address rate limits.
    pub limits: limits::Limits,
}

/// The `ingest` component: the intake and citizen routes, and (with a database) the
/// `default-ratings` task, run every `default_rating_interval`.
pub fn component(state: IngestState, default_rating_interval: Duration) -> Component {
    let component = Component::new("ingest", routes(state.clone()));
    if state.gate.is_none() {
        return component;
    }
    component.task("default-ratings", move |stop| defaults::run(state, default_rating_interval, stop))
}

/// The ingest routes with their access.
fn routes(state: IngestState) -> Routes {
    Routes::new()
        .post("/api/v1/ratings", Access::Channel, handlers::submit_rating)
        .post("/api/v1/ratings/batch", Access::Channel, handlers::submit_batch)
        .post("/api/v1/service-records/events", Access::Platform, invitations::record_event)
        .get("/api/v1/my-business/open-stages", Access::Platform, my_business::open_stages)
        .post("/api/v1/invitations", Access::Platform, invitations::issue)
        .get("/api/v1/invitations/{invitation_id}/qr.svg", Access::Platform, invitations::qr_svg)
        .get("/api/v1/invitations/{invitation_id}/qr.png", Access::Platform, invitations::qr_png)
        .post(
            "/api/v1/service-records/{service_record_no}/corrections",
            Access::operators(&[Role::Admin]),
            invitations::correct,
        )
        .get(
            "/api/v1/service-records/{service_record_no}/corrections",
            Access::operators(&[Role::Admin, Role::Auditor]),
            invitations::corrections,
        )
        .get("/api/v1/r/{token}", Access::Citizen, invitations::view)
        .post("/api/v1/r/{token}", Access::Citizen, invitations::submit)
        .get("/r/{token}", Access::Public, invitations::page)
        .with_state(state)
}
