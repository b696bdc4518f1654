//! Who may call each endpoint: declared with the route, enforced in one layer.
//!
//! Stage crates build their routers with [`Routes`], whose only way to add an endpoint takes its
//! [`Access`]. The server merges them and calls [`Routes::enforce`], which installs one
//! route layer checking every request against its rule before any handler runs: operator routes
//! need a valid session (401) of an allowed role (403); the verified [`Caller`] is handed to the
//! handler, which narrows the data to the caller's [`Reach`](hcp_domain::Reach) when the rule is
//! `scoped`. Channel routes are checked by the ingest gate (their keys live in the database),
//! citizen routes by the token in their path. The table itself is served at `GET /api/v1/access`
//! and drives the access-matrix test, so an endpoint cannot exist without a row.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use chrono::Utc;
use hcp_domain::Role;
use serde::Serialize;

use axum::http::Method;

use crate::auth::{by_cookie, origin_of, same_origin, token_of, Caller, MonitoringToken, SessionKey};
use crate::registry::{LiveSession, SessionRegistry};
use crate::ApiError;

/// Every office role (not a staff member appealing their own reviews).
pub const ANY_OPERATOR: &[Role] = &Role::OFFICE;

/// Every account, a staff member's too (`/api/v1/auth/me`, their own reviews).
pub const ANY_ACCOUNT: &[Role] = &Role::ALL;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Access {
    /// Anyone: health, documentation, pages, login.
    Public,
    /// Monitoring (`/metrics`): anyone when no `HCP_METRICS_TOKEN` is set, else only a request
    /// bearing it (business volumes are not for the public).
    Monitoring,
    /// A citizen holding the signed link in the path (an invitation or a callback token); the
    /// handler checks its signature, expiry and single use.
    Citizen,
    /// A device or integration key (`Authorization: Bearer hcp_…`), checked by the ingest gate.
    Channel,
    /// An integration key of an online platform (app, web, mini-program), checked by the ingest
    /// gate: service records and invitations come only from the systems that handle the cases;
    /// any other key is 403.
    Platform,
    /// An SMS gateway's callback (upstream replies, delivery receipts): the shared
    /// `HCP_SMS_INBOUND_TOKEN` as `Authorization: Bearer …` or, for vendors that only call a
    /// configured URL, as the `token` query parameter; refused (401) while no token is set.
    SmsGateway,
    /// An operator session with one of `roles`; with `scoped` the handler narrows what it
    /// reads or changes to the caller's department or region.
    Operator {
        /// The roles allowed.
        roles: &'static [Role],
        /// Whether the data is narrowed to the caller's reach.
        scoped: bool,
    },
}

impl Access {
    /// Operators with one of `roles`, seeing everything the route offers.
    pub const fn operators(roles: &'static [Role]) -> Access {
        Access::Operator { roles, scoped: false }
    }

    /// Operators with one of `roles`, each within their department or region.
    pub const fn scoped(roles: &'static [Role]) -> Access {
        Access::Operator { roles, scoped: true }
    }

    /// Whether an operator of `role` passes this rule (always false for non-operator rules).
    pub fn admits(&self, role: Role) -> bool {
        matches!(self, Access::Operator { roles, .. } if roles.contains(&role))
    }
}

/// One endpoint and its rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteRule {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// The route as registered, e.g. `/api/v1/work-orders/{order_id}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// Every endpoint's rule, looked up by method and matched route.
#[derive(Debug, Default)]
pub struct AccessTable(Vec<RouteRule>);

impl AccessTable {
    /// The rules, in registration order.
    pub fn rules(&self) -> &[RouteRule] {
        &self.0
    }

    /// The rule of `method path`.
    pub fn find(&self, method: &str, path: &str) -> Option<&RouteRule> {
        self.0.iter().find(|r| r.method == method && r.path == path)
    }
}

/// A router whose every endpoint carries its [`Access`].
pub struct Routes<S = ()> {
    router: Router<S>,
    rules: Vec<RouteRule>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Routes { router: Router::new(), rules: Vec::new() }
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, method: &'static str, path: &'static str, access: Access, endpoint: MethodRouter<S>) -> Self {
        assert!(!self.rules.iter().any(|r| r.method == method && r.path == path), "{method} {path} registered twice");
        self.rules.push(RouteRule { method, path, access });
        self.router = self.router.route(path, endpoint);
        self
    }

    /// `GET path` for callers `access` admits.
    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &'static str, access: Access, handler: H) -> Self {
        self.add("GET", path, access, axum::routing::get(handler))
    }

    /// `POST path` for callers `access` admits.
    pub fn post<H: Handler<T, S>, T: 'static>(self, path: &'static str, access: Access, handler: H) -> Self {
        self.add("POST", path, access, axum::routing::post(handler))
    }

    /// `PUT path` for callers `access` admits.
    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &'static str, access: Access, handler: H) -> Self {
        self.add("PUT", path, access, axum::routing::put(handler))
    }

    /// `DELETE path` for callers `access` admits.
    pub fn delete<H: Handler<T, S>, T: 'static>(self, path: &'static str, access: Access, handler: H) -> Self {
        self.add("DELETE", path, access, axum::routing::delete(handler))
    }

    /// The same routes with their state provided.
    pub fn with_state<S2: Clone + Send + Sync + 'static>(self, state: S) -> Routes<S2> {
        Routes { router: self.router.with_state(state), rules: self.rules }
    }
}

impl Routes<()> {
    /// Both sets of routes (a path registered in both panics, as in axum).
    pub fn merge(mut self, other: Routes<()>) -> Self {
        for r in &other.rules {
            assert!(
                self.rules.iter().all(|s| s.method != r.method || s.path != r.path),
                "{} {} twice",
                r.method,
                r.path
            );
        }
        self.rules.extend(other.rules);
        self.router = self.router.merge(other.router);
        self
    }

    /// The rules declared so far.
    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The router with the one access layer in front of every route, and the table it enforces.
    pub fn enforce(self, config: GuardConfig) -> (Router, Arc<AccessTable>) {
        let table = Arc::new(AccessTable(self.rules));
        let public_origin = config.public_url.as_deref().and_then(origin_of);
        let guard = Guard { table: table.clone(), config, public_origin };
        (self.router.route_layer(axum::middleware::from_fn_with_state(guard, check)), table)
    }
}

/// What the access layer checks callers with.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Verifies session tokens.
    pub key: SessionKey,
    /// Knows which sessions are live.
    pub sessions: SessionRegistry,
    /// `HCP_METRICS_TOKEN`, if set.
    pub monitoring: Option<MonitoringToken>,
    /// `HCP_PUBLIC_URL`, if set: its origin is this site's for the cross-site check.
    pub public_url: Option<String>,
    /// `HCP_SMS_INBOUND_TOKEN`, if set: what SMS gateways' callbacks must present.
    pub sms_gateway: Option<MonitoringToken>,
}

#[derive(Clone)]
struct Guard {
    table: Arc<AccessTable>,
    config: GuardConfig,
    public_origin: Option<String>,
}

/// The layer: finds the request's rule and, for operator routes, verifies the session (genuine,
/// unexpired, still live on the server) and the role, handing the [`Caller`] and its
/// [`LiveSession`] on. HEAD is answered by the GET handler, so it passes the GET rule; any other
/// method the route does not have passes through to 405 (no handler runs). A state-changing
/// request that the session cookie authenticates must come from this site (`Origin`), whatever
/// its route: that cookie is what a forged cross-site request would carry.
async fn check(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let Some(path) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return next.run(req).await;
    };
    let method = if req.method() == Method::HEAD { "GET" } else { req.method().as_str() };
    let Some(rule) = guard.table.find(method, &path) else {
        if guard.table.rules().iter().any(|r| r.path == path) {
            return next.run(req).await;
        }
        tracing::error!(%path, "route without an access rule refused");
        return ApiError::Internal(format!("route {path} has no access rule")).into_response();
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && by_cookie(req.headers()) && !same_origin(req.headers(), guard.public_origin.as_deref()) {
        tracing::warn!(route = %path, "cross-site request with the session cookie refused");
        return ApiError::CrossSiteRequest.into_response();
    }
    if rule.access == Access::Monitoring {
        if guard.config.monitoring.as_ref().is_some_and(|t| !t.admits(req.headers())) {
            return ApiError::Unauthenticated.into_response();
        }
        return next.run(req).await;
    }
    if rule.access == Access::SmsGateway {
        let query_token = req.uri().query().and_then(|q| {
            q.split('&').find_map(|kv| kv.strip_prefix("token=")).map(|t| t.replace("%2B", "+").replace("%2F", "/"))
        });
        let admitted =
            guard.config.sms_gateway.as_ref().is_some_and(|t| {
                t.admits(req.headers()) || query_token.as_deref().is_some_and(|given| t.matches(given))
            });
        if !admitted {
            return ApiError::Unauthenticated.into_response();
        }
        return next.run(req).await;
    }
    if let Access::Operator { roles, .. } = rule.access {
        let claims = token_of(req.headers()).and_then(|t| guard.config.key.verify(t, Utc::now()));
        let Some(claims) = claims else { return ApiError::Unauthenticated.into_response() };
        match guard.config.sessions.is_live(claims.sid).await {
            Ok(true) => {}
            Ok(false) => return ApiError::Unauthenticated.into_response(),
            Err(e) => return e.into_response(),
        }
        let session = LiveSession {
            sid: claims.sid,
            expires_at: chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now),
            registry: guard.config.sessions.clone(),
        };
        let caller = Caller(claims);
        if let Err(e) = caller.require(roles) {
            return e.into_response();
        }
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(session);
    }
    next.run(req).await
}
