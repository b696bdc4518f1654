//! # hcp-directory: the directory's administration
//!
//! Owns the admin HTTP API over the directory (regions, departments, halls, windows, devices,
//! staff, service items, tags: paginated lists, get, put, delete), the import of whole files
//! (CSV or JSON; every row checked, all or nothing, a report naming each bad row and line —
//! also behind `hcp directory import` and the demo seed), the window sign-in roster
//! (sign in, sign out, who was on duty), and the operators' view of ratings whose attribution is
//! incomplete, with re-attribution once the directory is fixed; and the working-day calendar's
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

use axum::routing::{get, post, put};
use axum::Router;
use hcp_bus::{RatingProducer, Topics};
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
    /// Checks operator sessions (credential administration is for admins).
    pub session_key: hcp_http::SessionKey,
    /// Digests staff phones (`HCP_PII_KEY`).
    pub pii: Option<hcp_domain::PiiCipher>,
}

impl axum::extract::FromRef<DirectoryState> for hcp_http::SessionKey {
    fn from_ref(s: &DirectoryState) -> hcp_http::SessionKey {
        s.session_key.clone()
    }
}

/// The directory, roster and attribution routes.
pub fn router(state: DirectoryState) -> Router {
    Router::new()
        .route("/api/v1/directory/import", post(handlers::import_file))
        .route("/api/v1/directory/{kind}", get(handlers::list))
        .route(
            "/api/v1/directory/{kind}/{key}",
            get(handlers::get_one).put(handlers::put_one).delete(handlers::delete_one),
        )
        .route("/api/v1/roster/sign-in", post(handlers::sign_in))
        .route("/api/v1/roster/sign-out", post(handlers::sign_out))
        .route("/api/v1/roster/on-duty", get(handlers::on_duty))
        .route("/api/v1/attribution/flagged", get(handlers::flagged))
        .route("/api/v1/attribution/reattribute", post(handlers::reattribute))
        .route("/api/v1/calendar/years", get(calendar::years))
        .route("/api/v1/calendar/years/{year}", put(calendar::put_year))
        .route("/api/v1/calendar/add-working-days", get(calendar::add_working_days))
        .route("/api/v1/credentials", get(credentials::list).post(credentials::issue))
        .route("/api/v1/credentials/{key_id}/revoke", post(credentials::revoke))
        .route("/api/v1/directory/staff/{staff_id}/phone", put(credentials::staff_phone))
        .with_state(state)
}
