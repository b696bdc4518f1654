//! The `sessions` component: operator login, logout and "who am I" (`/api/v1/auth/*`), beside
//! the [`Caller`] extractor and [`SessionKey`] that check the sessions it issues.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use hcp_domain::Role;
use hcp_store::Store;
use serde::{Deserialize, Serialize};

use crate::auth::{clear_session_cookie, session_cookie, session_expiry, verify_password};
use crate::{metrics, Access, ApiError, ApiJson, Caller, Claims, Component, Problem, Routes, SessionKey, ANY_OPERATOR};

/// What the session endpoints share.
#[derive(Clone)]
pub struct SessionsState {
    /// The accounts.
    pub store: Store,
    /// Signs the sessions issued.
    pub session_key: SessionKey,
}

/// The `sessions` component: login, logout and the caller's account (no background task).
pub fn component(state: SessionsState) -> Component {
    let routes = Routes::new()
        .post("/api/v1/auth/login", Access::Public, login)
        .post("/api/v1/auth/logout", Access::Public, logout)
        .get("/api/v1/auth/me", Access::operators(ANY_OPERATOR), me)
        .with_state(state);
    Component::new("sessions", routes)
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

/// Log in: checks the password (argon2) and returns a session token, also set as an HttpOnly
/// cookie. A wrong name or password is the same 401 (no account enumeration).
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "sessions",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong name or password, or account disabled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    State(state): State<SessionsState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let (Some(username), Some(password)) = (req.username.filter(|u| !u.is_empty()), req.password) else {
        return Err(ApiError::field("username", "required", "请输入账号和密码", "username and password are required"));
    };
    let account = state.store.account(&username).await?;
    let ok = account.as_ref().is_some_and(|a| !a.disabled && verify_password(&password, &a.password_hash));
    let role = account.as_ref().and_then(|a| Role::parse(&a.role));
    let (Some(account), true, Some(role)) = (account, ok, role) else {
        metrics::LOGINS.with_label_values(&["refused"]).inc();
        tracing::info!(username = %username, "login refused");
        return Err(ApiError::Unauthenticated);
    };
    let claims = Claims {
        sub: account.username,
        name: account.display_name,
        role,
        department_id: account.department_id,
        region_code: account.region_code,
        exp: session_expiry(Utc::now()),
    };
    let token = state.session_key.issue(&claims);
    metrics::LOGINS.with_label_values(&["ok"]).inc();
    tracing::info!(username = %claims.sub, role = role.as_str(), "logged in");
    Ok(([(header::SET_COOKIE, session_cookie(&token))], Json(LoginResponse { token, account: claims })).into_response())
}

/// Log out: clears the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "sessions", responses((status = 204, description = "Cookie cleared")))]
pub async fn logout() -> Response {
    (axum::http::StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear_session_cookie())]).into_response()
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
