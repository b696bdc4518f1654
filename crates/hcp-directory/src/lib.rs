//! # hcp-directory: the directory's administration
//!
//! Owns the admin HTTP API over the directory (regions, departments, halls, windows, devices,
//! staff, service items, tags: paginated lists, get, put, delete), the import of whole files
//! (CSV or JSON; every row checked, all or nothing, a report naming each bad row and line —
//! also behind `hcp directory import` and the demo seed), the window sign-in roster
//! (sign in, sign out, who was on duty), and the operators' view of ratings whose attribution is
//! incomplete, with re-attribution once the directory is fixed, and the ratings the anti-gaming
//! checks flagged (`/api/v1/integrity/flagged`); and the working-day calendar's
//! admin endpoints (covered years, add a year, compute a deadline); and the channel credentials
//! (device and integration keys: issue, list, revoke).
//!
//! It must not attribute ratings itself (that is `hcp_domain::attribute`, run by the aggregator
//! and by re-attribution) and must not write aggregates except through `hcp-store`'s
//! compensating re-attribution transaction.

pub mod calendar;
pub mod credentials;
mod handlers;
pub mod import;
pub mod integrity;

use hcp_bus::{RatingProducer, Topics};
use hcp_domain::Role;
use hcp_http::{Access, Component, Routes};
use hcp_store::Store;

pub use handlers::*;

/// What the directory handlers share.
#[derive(Clone)]
pub struct DirectoryState {
    /// The database.
    pub store: Store,
    /// Publishes re-attributed ratings.
    pub producer: RatingProducer,
    /// Topic names.
    pub topics: Topics,
    /// Digests staff phones (`HCP_PII_KEY`).
    pub pii: Option<hcp_domain::PiiCipher>,
}

/// Roles that read the directory, the roster and flagged attributions.
const READERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Auditor];

/// The `directory` component: the directory, roster, attribution, anti-gaming review, calendar
/// and credential routes (no background task).
pub fn component(state: DirectoryState) -> Component {
    Component::new("directory", routes(state))
}

/// The directory, roster, attribution, anti-gaming review, calendar and credential routes with
/// their access.
fn routes(state: DirectoryState) -> Routes {
    let admin = Access::operators(&[Role::Admin]);
    let readers = Access::operators(READERS);
    let operators = Access::operators(hcp_http::ANY_OPERATOR);
    Routes::new()
        .post("/api/v1/directory/import", admin, handlers::import_file)
        .get("/api/v1/directory/{kind}", readers, handlers::list)
        .get("/api/v1/directory/{kind}/{key}", readers, handlers::get_one)
        .put("/api/v1/directory/{kind}/{key}", admin, handlers::put_one)
        .delete("/api/v1/directory/{kind}/{key}", admin, handlers::delete_one)
        .post("/api/v1/roster/sign-in", admin, handlers::sign_in)
        .post("/api/v1/roster/sign-out", admin, handlers::sign_out)
        .get("/api/v1/roster/on-duty", readers, handlers::on_duty)
        // Ratings the directory could not attribute fully: a supervisor sees its region's.
        .get("/api/v1/attribution/flagged", Access::scoped(READERS), handlers::flagged)
        .post("/api/v1/attribution/reattribute", admin, handlers::reattribute)
        // Anti-gaming flags: likewise.
        .get("/api/v1/integrity/flagged", Access::scoped(READERS), integrity::integrity_flagged)
        .get("/api/v1/calendar/years", operators, calendar::years)
        .put("/api/v1/calendar/years/{year}", admin, calendar::put_year)
        .get("/api/v1/calendar/add-working-days", operators, calendar::add_working_days)
        .get("/api/v1/credentials", Access::operators(&[Role::Admin, Role::Auditor]), credentials::list)
        .post("/api/v1/credentials", admin, credentials::issue)
        .post("/api/v1/credentials/{key_id}/revoke", admin, credentials::revoke)
        .put("/api/v1/credentials/{key_id}/rate-limit", admin, credentials::set_rate_limit)
        .put("/api/v1/directory/staff/{staff_id}/phone", admin, credentials::staff_phone)
        .with_state(state)
}
