//! # hcp-http: HTTP plumbing shared by every API crate
//!
//! Owns the one error enum of the HTTP API ([`ApiError`]) and its mapping to RFC 9457
//! `application/problem+json` with stable `type`s, the JSON and query extractors that turn every
//! client mistake into such a problem (never a 500, never a panic), the request metrics layer,
//! and who is calling: operator sessions, password hashing, the [`Caller`] extractor, and the
//! [`Routes`] builder whose every endpoint declares its [`Access`], enforced by one layer.
//!
//! It must not contain endpoints or business rules: handlers live in the stage crates
//! (`hcp-ingest`, `hcp-board`), rules in `hcp-domain`.

pub mod access;
pub mod auth;
mod extract;
mod metrics;
mod problem;

pub use access::{Access, AccessTable, RouteRule, Routes, ANY_OPERATOR};
pub use auth::{Caller, Claims, SessionKey};
pub use extract::{
    from_value, parse_json, read_limited, shape_error, ApiJson, ApiJsonBytes, ApiPath, ApiQuery, OptionalJson,
    DEFAULT_JSON_LIMIT, DRAIN_LIMIT,
};
pub use metrics::{time_limit, track_requests, HTTP_REQUESTS, HTTP_REQUEST_DURATION, HTTP_TIMEOUTS};
pub use problem::{database_unavailable, ApiError, Problem, ProblemType, PROBLEM_TYPES};
