//! # hcp-workorder: bad-review work orders (差评工单) after they are opened
//!
//! The aggregator opens an order for every bad rating inside its batch transaction; this crate
//! owns everything after that: operator sessions (`/api/v1/auth/*`), the work-order API
//! (list / filter / sort by deadline within the caller's scope, detail with the audit log, one
//! endpoint per action, the audited view of a rater's full identity), callback invitations and
//! the rater's answer (`/api/v1/callback/{token}`), the deadline policies' admin endpoints, the
//! handler console (`/console`, zh-CN), the overdue sweeper and the relay that publishes the audit
//! log to `hcp.workorder.event.v1`.
//!
//! It must not decide the lifecycle (that is `hcp_domain::workorder`, a pure state machine) nor
//! who may do what (`hcp_domain::Role`); it must not write aggregates except through
//! `hcp-store`'s appeal exclusion, and never shows a rater's identity unmasked except to the
//! callback role, with each such view in the audit log.

pub mod auth;
mod background;
pub mod callback;
mod console;
mod handlers;
mod metrics;

use axum::routing::{get, post, put};
use axum::Router;
use hcp_domain::PiiCipher;
use hcp_http::SessionKey;
use hcp_store::Store;

pub use auth::{LoginRequest, LoginResponse};
pub use background::{run_background, sweep_once, BackgroundConfig};
pub use callback::{CallbackAnswer, CallbackInvitation};
pub use handlers::*;

/// What the work-order handlers share.
#[derive(Clone)]
pub struct WorkOrderState {
    /// The database.
    pub store: Store,
    /// Signs and checks operator sessions.
    pub session_key: SessionKey,
    /// Opens sealed rater identities for the callback role (`HCP_PII_KEY`).
    pub pii: Option<PiiCipher>,
    /// The public base URL of callback links, e.g. `https://hcp.example.gov.cn`.
    pub public_url: String,
}

impl axum::extract::FromRef<WorkOrderState> for SessionKey {
    fn from_ref(s: &WorkOrderState) -> SessionKey {
        s.session_key.clone()
    }
}

/// The routes: sessions, work orders, callback invitations, policies, the console.
pub fn router(state: WorkOrderState) -> Router {
    let mut r = Router::new()
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/work-orders", get(handlers::list))
        .route("/api/v1/work-orders/sweep", post(handlers::sweep))
        .route("/api/v1/work-orders/{order_id}", get(handlers::detail))
        .route("/api/v1/work-orders/{order_id}/rater", get(handlers::rater))
        .route("/api/v1/work-orders/{order_id}/callback-invitation", post(callback::invite))
        .route("/api/v1/callback/{token}", get(callback::status).post(callback::answer))
        .route("/callback/{token}", get(console::callback_page))
        .route("/api/v1/workorder-policies", get(handlers::policies))
        .route("/api/v1/workorder-policies/{region_code}", put(handlers::put_policy).delete(handlers::delete_policy))
        .route("/api/v1/notifications", get(handlers::notifications))
        .route("/api/v1/ratings/{rating_id}", get(handlers::rating_record))
        .route("/api/v1/integrity/flagged", get(handlers::integrity_flagged))
        .route("/console", get(console::page));
    for (path, _) in handlers::ACTION_ROUTES {
        r = r.route(path, post(handlers::act));
    }
    r.with_state(state)
}
