//! # hcp-webhook: signed outbound webhooks
//!
//! Owns the webhook endpoints (`/api/v1/webhooks`, admin), the sender that POSTs each enqueued
//! delivery signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) and retries it with exponential backoff until the endpoint answers 2xx
//! or the attempts run out, and the delivery log (`GET /api/v1/webhooks/{id}/deliveries`).
//! Deliveries are enqueued by the store in the transaction that publishes work-order events, so
//! a published event is never lost for an endpoint, and the same `webhook-id` on every attempt
//! lets receivers drop repeats.
//!
//! Endpoints go to public addresses only (checked at registration and at every connection, see
//! [`egress`]) unless the operator allows internal ones; failures are logged as categories.
//!
//! It must not decide what happened (it only carries events) and must not block the pipeline:
//! a slow or failing endpoint delays only its own deliveries.

pub mod egress;
mod handlers;
mod metrics;
mod sender;

use hcp_domain::Role;
use hcp_http::{Access, Component, Routes};
use hcp_store::Store;

pub use handlers::{
    __path_create, __path_deliveries, __path_disable, __path_list, CreatedWebhook, DeliveryPage, NewWebhook,
};
pub use sender::{run_sender, send_due, SenderConfig};

/// What the handlers share.
#[derive(Clone)]
pub struct WebhookState {
    /// The database.
    pub store: Store,
    /// Whether endpoints may be on internal addresses (`HCP_WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
}

/// The `webhooks` component: the webhook routes, and the `sender` task that delivers what the
/// store enqueued.
pub fn component(state: WebhookState, sender: SenderConfig) -> Component {
    let store = state.store.clone();
    Component::new("webhooks", routes(state)).task("sender", move |stop| run_sender(store, sender, stop))
}

/// The webhook routes with their access.
fn routes(state: WebhookState) -> Routes {
    const READERS: &[Role] = &[Role::Admin, Role::Auditor];
    Routes::new()
        .post("/api/v1/webhooks", Access::operators(&[Role::Admin]), handlers::create)
        .get("/api/v1/webhooks", Access::operators(READERS), handlers::list)
        .delete("/api/v1/webhooks/{webhook_id}", Access::operators(&[Role::Admin]), handlers::disable)
        .get("/api/v1/webhooks/{webhook_id}/deliveries", Access::operators(READERS), handlers::deliveries)
        .with_state(state)
}
