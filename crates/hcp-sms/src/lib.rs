//! # hcp-sms: SMS that reaches citizens
//!
//! Owns the delivery of the SMS that the pipeline queues in the notification outbox — rating
//! invitations at acceptance and pickup (深圳 “短信提醒评价”) and callback (回访) links — through
//! the vendor gateway `HCP_SMS_GATEWAY` names (Aliyun, Tencent Cloud or a generic HTTP JSON
//! gateway, [`gateway`]): the `sender` task takes due messages under a lease (replicas never
//! send one twice), opens each recipient's sealed phone number only at send time, honours the
//! opt-out list, quiet hours and the per-number daily cap, retries with backoff and records each
//! message's status. It also owns the SMS endpoints: `/api/v1/sms/messages` (status, never the
//! phone) and `/api/v1/sms/opt-outs` for operators, and the gateway's callbacks
//! `/api/v1/sms/inbound` (退订 / TD replies) and `/api/v1/sms/receipts` (delivery reports).
//!
//! It must not decide who is messaged or what a message says (the stages that queue them do,
//! the templates are `hcp_domain::sms`), store or log a phone number in clear, or send from a
//! request handler (only the sender talks to a vendor).

pub mod gateway;
mod handlers;
mod metrics;
mod sender;

use std::sync::Arc;

use hcp_domain::{PiiCipher, Role};
use hcp_http::{Access, Component, Routes};
use hcp_store::Store;

pub use handlers::{
    __path_add_opt_out, __path_inbound, __path_messages, __path_opt_outs, __path_receipts, __path_remove_opt_out,
    add_opt_out, inbound, messages, opt_outs, receipts, remove_opt_out, AddedOptOut, GatewayAck, NewOptOut, Receipt,
    Reply,
};
pub use sender::{run_sender, send_due, SenderConfig};

/// What the handlers share.
#[derive(Clone)]
pub struct SmsState {
    /// The database.
    pub store: Store,
    /// Digests numbers (`HCP_PII_KEY`).
    pub pii: Option<PiiCipher>,
}

/// The `sms` component: the SMS routes, and the `sender` task when a gateway is configured
/// (with `HCP_SMS_GATEWAY=outbox` messages stay queued for another system to read).
pub fn component(state: SmsState, sender: Option<(Arc<dyn gateway::Gateway>, SenderConfig)>) -> Component {
    let store = state.store.clone();
    let component = Component::new("sms", routes(state));
    match sender {
        Some((gateway, config)) => component.task("sender", move |stop| run_sender(store, gateway, config, stop)),
        None => component,
    }
}

/// The SMS routes with their access.
fn routes(state: SmsState) -> Routes {
    const READERS: &[Role] = &[Role::Admin, Role::Auditor];
    Routes::new()
        .get("/api/v1/sms/messages", Access::operators(READERS), handlers::messages)
        .get("/api/v1/sms/opt-outs", Access::operators(READERS), handlers::opt_outs)
        .post("/api/v1/sms/opt-outs", Access::operators(&[Role::Admin]), handlers::add_opt_out)
        .delete("/api/v1/sms/opt-outs/{digest}", Access::operators(&[Role::Admin]), handlers::remove_opt_out)
        .post("/api/v1/sms/inbound", Access::SmsGateway, handlers::inbound)
        .post("/api/v1/sms/receipts", Access::SmsGateway, handlers::receipts)
        .with_state(state)
}
