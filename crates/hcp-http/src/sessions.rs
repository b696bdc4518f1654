//! The `sessions` component: operator login, logout and "who am I" (`/api/v1/auth/*`), beside
//! the [`Caller`] extractor and [`SessionKey`] that check the sessions it issues.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use hcp_domain::Role;
use hcp_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::auth::{clear_session_cookie, hash_password, session_cookie, session_expiry, token_of, verify_password};
use crate::client::ClientAddr;
use crate::registry::SessionRegistry;
use crate::{metrics, Access, ApiError, ApiJson, Caller, Claims, Component, Problem, Routes, SessionKey, ANY_ACCOUNT};

/// What the session endpoints share.
#[derive(Clone)]
pub struct SessionsState {
    /// The accounts.
    pub store: Store,
    /// Signs the sessions issued.
    pub session_key: SessionKey,
    /// The server-side sessions (the access layer's, so a logout counts at once).
    pub sessions: SessionRegistry,
    /// Whether the public URL is https (the cookie is then `Secure`).
    pub secure_cookie: bool,
    /// Password checks running at once; the rest wait (each takes ~20 ms of a core and 19 MiB).
    pub hashing: Arc<Semaphore>,
}

impl SessionsState {
    /// The state with at most one password check per core at a time.
    pub fn new(store: Store, session_key: SessionKey, sessions: SessionRegistry, secure_cookie: bool) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SessionsState { store, session_key, sessions, secure_cookie, hashing: Arc::new(Semaphore::new(cores)) }
    }
}

/// The `sessions` component: login, logout and the caller's account (no background task).
pub fn component(state: SessionsState) -> Component {
    let routes = Routes::new()
        .post("/api/v1/auth/login", Access::Public, login)
        .post("/api/v1/auth/logout", Access::Public, logout)
        .get("/api/v1/auth/me", Access::operators(ANY_ACCOUNT), me)
        .with_state(state);
    Component::new("sessions", routes)
}

/// How far back failed logins count.
pub const FAILURE_WINDOW_MINUTES: i64 = 15;
/// Failed logins of one account name (within the window) before each further attempt waits.
pub const FREE_FAILURES_PER_ACCOUNT: i64 = 5;
/// Failed logins from one address (within the window) before each further attempt waits.
pub const FREE_FAILURES_PER_ADDRESS: i64 = 20;
/// The first wait; it doubles with every further failure, up to the window.
const FIRST_WAIT_SECS: i64 = 60;

/// Seconds to wait before the next attempt, after `failures` failures the last at `last`, when
/// `free` are allowed: none below `free`, then 60 s doubling per failure, at most the window.
pub fn login_wait(failures: i64, free: i64, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<u64> {
    let last = last?;
    if failures < free {
        return None;
    }
    let doublings = u32::try_from(failures - free).unwrap_or(u32::MAX).min(10);
    let wait = (FIRST_WAIT_SECS << doublings).min(FAILURE_WINDOW_MINUTES * 60);
    let left = (last + Duration::seconds(wait) - now).num_seconds();
    (left > 0).then_some(left as u64)
}

/// A hash of no one's password, checked when the account does not exist or cannot log in, so
/// every refusal costs the same work (the time of an answer tells nothing about the account).
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&uuid::Uuid::new_v4().to_string()))
}

/// Credentials.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Account name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
}

/// A session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Bearer token (also set as the `hcp_session` cookie).
    pub token: String,
    /// Who logged in.
    pub account: Claims,
}

/// Log in: checks the password (argon2, on the blocking pool, a few at a time) and returns a
/// session token, also set as an HttpOnly cookie, and records the server-side session. A wrong
/// name or password is the same 401 after the same work (no account enumeration). Every failure
/// is recorded (`login_failures`); after 5 failures of one name or 20 from one address within
/// 15 minutes each further attempt waits (429 with `Retry-After`, 60 s doubling per failure).
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "sessions",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong name or password, or account disabled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins for this name or from this address (rate-limited, Retry-After)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    State(state): State<SessionsState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let (Some(username), Some(password)) = (req.username.filter(|u| !u.is_empty()), req.password) else {
        return Err(ApiError::field("username", "required", "请输入账号和密码", "username and password are required"));
    };
    let address = addr.to_string();
    let now = Utc::now();
    let since = now - Duration::minutes(FAILURE_WINDOW_MINUTES);
    let [(by_name, name_last), (by_addr, addr_last)] = state.store.login_failures(&username, &address, since).await?;
    let wait = login_wait(by_name, FREE_FAILURES_PER_ACCOUNT, name_last, now).max(login_wait(
        by_addr,
        FREE_FAILURES_PER_ADDRESS,
        addr_last,
        now,
    ));
    if let Some(secs) = wait {
        refuse(&state, &username, &address, "throttled").await?;
        return Err(ApiError::RateLimited(secs));
    }
    let account = state.store.account(&username).await?;
    let hash = account.as_ref().map_or_else(|| decoy_hash().to_owned(), |a| a.password_hash.clone());
    let matches = {
        let _permit = state.hashing.acquire().await.map_err(|_| ApiError::Internal("hashing closed".into()))?;
        tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| ApiError::Internal(format!("password check: {e}")))?
    };
    let role = account.as_ref().and_then(|a| Role::parse(&a.role));
    let account = match (account, matches, role) {
        (None, _, _) => Err("unknown_account"),
        (Some(_), false, _) => Err("wrong_password"),
        (Some(a), true, Some(role)) if !a.disabled => Ok((a, role)),
        (Some(_), true, _) => Err("disabled"),
    };
    let (account, role) = match account {
        Ok(ok) => ok,
        Err(reason) => {
            refuse(&state, &username, &address, reason).await?;
            return Err(ApiError::Unauthenticated);
        }
    };
    let sid = uuid::Uuid::new_v4();
    let claims = Claims {
        sub: account.username,
        name: account.display_name,
        role,
        department_id: account.department_id,
        region_code: account.region_code,
        staff_id: account.staff_id,
        exp: session_expiry(now),
        sid,
    };
    let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
    state.store.open_session(sid, &claims.sub, expires_at).await?;
    let token = state.session_key.issue(&claims);
    metrics::LOGINS.with_label_values(&["ok"]).inc();
    tracing::info!(username = %claims.sub, role = role.as_str(), "logged in");
    let cookie = session_cookie(&token, state.secure_cookie);
    Ok(([(header::SET_COOKIE, cookie)], Json(LoginResponse { token, account: claims })).into_response())
}

/// Records and counts a refused login.
async fn refuse(state: &SessionsState, username: &str, address: &str, reason: &'static str) -> Result<(), ApiError> {
    metrics::LOGINS.with_label_values(&[if reason == "throttled" { "throttled" } else { "refused" }]).inc();
    tracing::info!(username = %username, reason, "login refused");
    state.store.record_login_failure(username, address, reason).await?;
    Ok(())
}

/// Log out: ends the caller's session on the server (the token stops working at once) and
/// clears the cookie. Without a valid session it only clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "sessions", responses(
    (status = 204, description = "Session ended, cookie cleared"),
    (status = 403, description = "Cookie-authenticated from another site (cross-site-request)", body = Problem, content_type = "application/problem+json"),
))]
pub async fn logout(State(state): State<SessionsState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(claims) = token_of(&headers).and_then(|t| state.session_key.verify(t, Utc::now())) {
        state.sessions.end(claims.sid).await?;
        tracing::info!(username = %claims.sub, "logged out");
    }
    let cookie = clear_session_cookie(state.secure_cookie);
    Ok((axum::http::StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "sessions",
    responses(
        (status = 200, description = "The session's account", body = Claims),
        (status = 401, description = "No valid session", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(caller: Caller) -> Json<Claims> {
    Json(caller.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_free_ones_wait_longer_each_time() {
        let now = Utc::now();
        let at = |secs_ago: i64| Some(now - Duration::seconds(secs_ago));
        assert_eq!(login_wait(4, 5, at(0), now), None);
        assert_eq!(login_wait(5, 5, None, now), None);
        assert_eq!(login_wait(5, 5, at(0), now), Some(60));
        assert_eq!(login_wait(5, 5, at(59), now), Some(1));
        assert_eq!(login_wait(5, 5, at(60), now), None);
        assert_eq!(login_wait(6, 5, at(0), now), Some(120));
        assert_eq!(login_wait(8, 5, at(0), now), Some(480));
        assert_eq!(login_wait(9, 5, at(0), now), Some(900), "at most the window");
        assert_eq!(login_wait(500, 5, at(0), now), Some(900));
    }
}
