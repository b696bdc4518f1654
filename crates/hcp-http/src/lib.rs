//! # hcp-http: HTTP plumbing shared by every API crate
//!
//! Owns the one error enum of the HTTP API ([`ApiError`]) and its mapping to RFC 9457
//! `application/problem+json` with stable `type`s, the JSON and query extractors that turn every
//! client mistake into such a problem (never a 500, never a panic), the request metrics layer,
//! and who is calling: operator sessions (issued by the `sessions` component, [`sessions`],
//! revocable on the server through [`registry`]), login failure limits, password hashing, the
//! client's address behind trusted proxies ([`client`]), the [`Caller`] extractor, and the
//! [`Routes`] builder whose every endpoint declares its [`Access`], enforced by one layer, and
//! the [`Component`] every stage crate hands the server (its routes and named background tasks).
//!
//! It must not contain endpoints other than the sessions' own (`/api/v1/auth/*`), nor business
//! rules: handlers live in the stage crates (`hcp-ingest`, `hcp-board`), rules in `hcp-domain`.

pub mod access;
pub mod auth;
pub mod client;
pub mod component;
mod extract;
mod metrics;
mod problem;
pub mod registry;
pub mod sessions;

pub use access::{Access, AccessTable, GuardConfig, RouteRule, Routes, ANY_ACCOUNT, ANY_OPERATOR};
pub use auth::{Caller, Claims, MonitoringToken, SessionKey};
pub use client::{ClientAddr, TrustedProxies};
pub use component::{Component, Task, TaskEnd};
pub use extract::{
    from_value, page_bounds, parse_json, read_limited, shape_error, ApiJson, ApiJsonBytes, ApiPath, ApiQuery,
    OptionalJson, DEFAULT_JSON_LIMIT, DRAIN_LIMIT,
};
pub use metrics::{time_limit, track_requests, HTTP_REQUESTS, HTTP_REQUEST_DURATION, HTTP_TIMEOUTS, LOGINS};
pub use problem::{database_unavailable, ApiError, Problem, ProblemType, PROBLEM_TYPES};
pub use registry::{LiveSession, SessionRegistry};
