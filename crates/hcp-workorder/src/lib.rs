//! # hcp-workorder: bad-review work orders (差评工单) after they are opened
//!
//! The aggregator opens an order for every bad rating inside its batch transaction; this crate
//! owns everything after that: the work-order API
//! (list / filter / sort by deadline within the caller's scope, detail with the audit log, one
//! endpoint per action, accountability measures on founded orders, staff appeals of their own bad reviews (`/staff`, 我的差评), the audited view of a rater's full identity), callback invitations and
//! the rater's answer (`/api/v1/callback/{token}`), the deadline policies' admin endpoints, the
//! handler console (`/console`, zh-CN), the overdue sweeper and the relay that publishes the audit
//! log to `hcp.workorder.event.v1`.
//!
//! It must not decide the lifecycle (that is `hcp_domain::workorder`, a pure state machine) nor
//! who may do what (`hcp_domain::Role`); it must not write aggregates except through
//! `hcp-store`'s appeal exclusion, and never shows a rater's identity unmasked except to the
//! callback role, with each such view in the audit log.

pub mod accountability;
mod background;
pub mod callback;
mod console;
mod handlers;
mod metrics;
pub mod staff;

use hcp_bus::RatingProducer;
use hcp_domain::PiiCipher;
use hcp_domain::Role;
use hcp_http::{Access, Component, Routes};
use hcp_store::Store;

pub use background::{run_background, sweep_once, BackgroundConfig};
pub use callback::{CallbackAnswer, CallbackInvitation};
pub use handlers::*;

/// What the work-order handlers share.
#[derive(Clone)]
pub struct WorkOrderState {
    /// The database.
    pub store: Store,
    /// Opens sealed rater identities for the callback role (`HCP_PII_KEY`).
    pub pii: Option<PiiCipher>,
    /// The public base URL of callback links, e.g. `https://hcp.example.gov.cn`.
    pub public_url: String,
}

/// Anyone signed in.
const OPERATORS: &[Role] = hcp_http::ANY_OPERATOR;
/// Roles that read work orders (each within its reach).
const ORDER_READERS: &[Role] = OPERATORS;
/// Roles that send a rater the callback link.
const CALLBACK_INVITERS: &[Role] = &[Role::Admin, Role::Handler, Role::Callback];
/// Roles that record accountability measures (教育, 约谈, 问责, 流程论证) within their reach.
const SUPERVISING: &[Role] = &[Role::Admin, Role::Supervisor];
/// Roles that review staff appeals (复核): the order's department, its region, an admin.
const APPEAL_REVIEWERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Handler];
/// Roles that list staff appeals (each within its reach).
const APPEAL_READERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Handler, Role::Auditor];
/// Roles that read notifications (a supervisor its region's).
const OVERSEERS: &[Role] = &[Role::Admin, Role::Auditor, Role::Supervisor];

/// The `workorders` component: work orders, callback invitations, policies, notifications and
/// the console, and the `relay-and-sweep` task (the audit log to Kafka through `producer`, the
/// overdue sweep).
pub fn component(state: WorkOrderState, producer: RatingProducer, background: BackgroundConfig) -> Component {
    let store = state.store.clone();
    Component::new("workorders", routes(state))
        .task("relay-and-sweep", move |stop| run_background(store, producer, background, stop))
}

/// The routes with their access: work orders, callback invitations, policies, the console.
fn routes(state: WorkOrderState) -> Routes {
    let admin = Access::operators(&[Role::Admin]);
    let mut r = Routes::new()
        .get("/api/v1/work-orders", Access::scoped(ORDER_READERS), handlers::list)
        .post("/api/v1/work-orders/sweep", admin, handlers::sweep)
        .get("/api/v1/work-orders/{order_id}", Access::scoped(ORDER_READERS), handlers::detail)
        .post("/api/v1/work-orders/{order_id}/accountability", Access::scoped(SUPERVISING), accountability::record)
        .get("/api/v1/work-orders/{order_id}/rater", Access::scoped(&[Role::Callback]), handlers::rater)
        .post("/api/v1/work-orders/{order_id}/callback-invitation", Access::scoped(CALLBACK_INVITERS), callback::invite)
        .get("/api/v1/callback/{token}", Access::Citizen, callback::status)
        .post("/api/v1/callback/{token}", Access::Citizen, callback::answer)
        .get("/callback/{token}", Access::Public, console::callback_page)
        .get("/api/v1/workorder-policies", Access::operators(OPERATORS), handlers::policies)
        .put("/api/v1/workorder-policies/{region_code}", admin, handlers::put_policy)
        .delete("/api/v1/workorder-policies/{region_code}", admin, handlers::delete_policy)
        .get("/api/v1/notifications", Access::scoped(OVERSEERS), handlers::notifications)
        .get("/console", Access::Public, console::page)
        .get("/api/v1/my/bad-reviews", Access::operators(&[Role::Staff]), staff::own_reviews)
        .post("/api/v1/my/bad-reviews/{rating_id}/appeal", Access::operators(&[Role::Staff]), staff::file)
        .get("/api/v1/staff-appeals", Access::scoped(APPEAL_READERS), staff::list)
        .post("/api/v1/staff-appeals/{appeal_id}/uphold", Access::scoped(APPEAL_REVIEWERS), staff::uphold)
        .post("/api/v1/staff-appeals/{appeal_id}/reject", Access::scoped(APPEAL_REVIEWERS), staff::reject)
        .get("/staff", Access::Public, console::staff_page);
    for (path, _, roles) in handlers::ACTION_ROUTES {
        r = r.post(path, Access::scoped(roles), handlers::act);
    }
    r.with_state(state)
}
