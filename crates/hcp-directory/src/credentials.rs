//! Channel credentials: per-device keys for the hall's evaluators and terminals, per-integration
//! keys for the 12345 system and the online platforms. Admins issue (the token is shown once),
//! list and revoke them; only the SHA-256 of a secret is stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hcp_domain::directory::EntityKind;
use hcp_domain::Channel;
use hcp_http::auth::new_channel_key;
use hcp_http::{ApiError, ApiJson, ApiPath, Caller, Problem};
use hcp_store::Credential;
use serde::{Deserialize, Serialize};

use crate::DirectoryState;

/// A key to issue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// `device` (window_evaluator, self_service_terminal) or `integration` (hotline, app, web,
    /// mini_program).
    pub kind: String,
    /// The channel of every rating sent with the key.
    pub channel: String,
    /// A device key's device (a directory device of the matching kind).
    pub device_id: Option<String>,
    /// What it is for, e.g. "市民中心 3 号窗评价器".
    pub name: String,
    /// This key's own limit in requests a second (1–100000); absent: its kind's default
    /// (`HCP_RATE_LIMIT_DEVICE`, `_INTEGRATION`, `_PLATFORM`).
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit: Option<u32>,
}

/// A key's own rate limit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    /// Requests a second (1–100000); `null`: the kind's default again.
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit: Option<u32>,
}

/// Checks a key's own limit: 1–100000 requests a second.
fn check_rate_limit(n: Option<u32>) -> Result<(), ApiError> {
    match n {
        Some(n) if !(1..=100_000).contains(&n) => Err(ApiError::field(
            "rate_limit",
            "out_of_range",
            "速率限制须为每秒 1–100000 次",
            "rate_limit must be 1–100000 requests a second",
        )),
        _ => Ok(()),
    }
}

/// Sets a key's own rate limit, or gives it back its kind's default (admin). Ingest reads the key
/// on every request, so the new limit holds from the next one.
#[utoipa::path(
    put,
    path = "/api/v1/credentials/{key_id}/rate-limit",
    tag = "directory",
    params(("key_id" = String, Path, description = "Key id")),
    request_body = RateLimitBody,
    responses(
        (status = 200, description = "The key with its limit", body = Credential),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Out of range", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_rate_limit(
    State(state): State<DirectoryState>,
    caller: Caller,
    ApiPath(key_id): ApiPath<String>,
    ApiJson(body): ApiJson<RateLimitBody>,
) -> Result<Json<Credential>, ApiError> {
    check_rate_limit(body.rate_limit)?;
    let limit = body.rate_limit.map(|n| n as i32);
    if !state.store.set_credential_rate_limit(&key_id, limit).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(key_id = %key_id, rate_limit = ?limit, by = %caller.0.sub, "channel key rate limit set");
    state.store.credential(&key_id).await?.map(Json).ok_or(ApiError::NotFound)
}

/// An issued key: the token is shown only in this answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedCredential {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The stored credential.
    pub credential: Credential,
}

fn bad(field: &str, zh: String, en: String) -> ApiError {
    ApiError::field(field, "invalid", zh, en)
}

/// Issue a device or integration key (admin).
#[utoipa::path(
    post,
    path = "/api/v1/credentials",
    tag = "directory",
    request_body = NewCredential,
    responses(
        (status = 201, description = "Issued; the token is shown once", body = IssuedCredential),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Kind, channel or device do not fit", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn issue(
    State(state): State<DirectoryState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewCredential>,
) -> Result<(StatusCode, Json<IssuedCredential>), ApiError> {
    let channel = Channel::parse(&req.channel).ok_or_else(|| {
        bad("channel", format!("未知的评价渠道 “{}”", req.channel), format!("unknown channel {}", req.channel))
    })?;
    if channel.credential_kind() != Some(req.kind.as_str()) {
        return Err(bad(
            "kind",
            format!(
                "渠道 {} 的密钥类型应为 {}",
                req.channel,
                channel.credential_kind().unwrap_or("无(由邀请链接或系统产生)")
            ),
            format!("channel {} takes a {:?} key", req.channel, channel.credential_kind()),
        ));
    }
    if req.name.trim().is_empty() || req.name.chars().count() > 100 {
        return Err(bad("name", "名称须为 1–100 个字符".into(), "name must be 1–100 characters".into()));
    }
    match (channel.device_kind(), &req.device_id) {
        (Some(kind), Some(device)) => {
            let row = state.store.get_entity(EntityKind::Devices, device).await?;
            match row.as_ref().and_then(|r| r["kind"].as_str()) {
                Some(k) if k == kind.as_str() => {}
                Some(_) => {
                    return Err(bad(
                        "device_id",
                        format!(
                            "设备 {device} 不是{}",
                            if kind.as_str() == "evaluator" { "窗口评价器" } else { "自助终端" }
                        ),
                        format!("device {device} is not a {}", kind.as_str()),
                    ))
                }
                None => {
                    return Err(bad(
                        "device_id",
                        format!("目录中没有设备 {device}"),
                        format!("no device {device} in the directory"),
                    ))
                }
            }
        }
        (Some(_), None) => {
            return Err(bad("device_id", "设备密钥须指定设备".into(), "a device key needs device_id".into()))
        }
        (None, Some(_)) => {
            return Err(bad("device_id", "对接密钥不绑定设备".into(), "an integration key has no device".into()))
        }
        (None, None) => {}
    }
    check_rate_limit(req.rate_limit)?;
    let (key_id, token, secret_sha256) = new_channel_key();
    let credential = Credential {
        key_id,
        kind: req.kind,
        channel: req.channel,
        device_id: req.device_id,
        hall_id: None,
        window_id: None,
        name: req.name.trim().to_owned(),
        created_at: chrono::Utc::now(),
        revoked_at: None,
        last_used_at: None,
        rate_limit: req.rate_limit.map(|n| n as i32),
        secret_sha256,
    };
    state.store.create_credential(&credential).await?;
    // As stored, with its device's hall and window.
    let credential = state.store.credential(&credential.key_id).await?.unwrap_or(credential);
    tracing::info!(key_id = %credential.key_id, channel = %credential.channel, by = %caller.0.sub, "channel key issued");
    let credential = state.store.credential(&credential.key_id).await?.ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, Json(IssuedCredential { token, credential })))
}

/// Every key, newest first, without secrets (admin, auditor).
#[utoipa::path(
    get,
    path = "/api/v1/credentials",
    tag = "directory",
    responses((status = 200, description = "Keys", body = Vec<Credential>))
)]
pub async fn list(State(state): State<DirectoryState>) -> Result<Json<Vec<Credential>>, ApiError> {
    Ok(Json(state.store.list_credentials().await?))
}

/// Revoke a key (admin): ratings sent with it are refused from now on.
#[utoipa::path(
    post,
    path = "/api/v1/credentials/{key_id}/revoke",
    tag = "directory",
    params(("key_id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "Revoked", body = Credential),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke(
    State(state): State<DirectoryState>,
    caller: Caller,
    ApiPath(key_id): ApiPath<String>,
) -> Result<Json<Credential>, ApiError> {
    if !state.store.revoke_credential(&key_id).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(key_id = %key_id, by = %caller.0.sub, "channel key revoked");
    state.store.credential(&key_id).await?.map(Json).ok_or(ApiError::NotFound)
}

/// A staff member's phone, to notice ratings by the staff themselves.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffPhone {
    /// Mobile or landline; stored only as a keyed digest.
    pub phone: String,
}

/// Register a staff member's phone (admin). Only a keyed digest is stored: a rating whose rater
/// leaves this phone is flagged `rater_is_rated_staff` (or `rater_is_staff`), never dropped.
#[utoipa::path(
    put,
    path = "/api/v1/directory/staff/{staff_id}/phone",
    tag = "directory",
    params(("staff_id" = String, Path, description = "Staff id")),
    request_body = StaffPhone,
    responses(
        (status = 204, description = "Registered"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such staff member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a phone number", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No HCP_PII_KEY configured", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn staff_phone(
    State(state): State<DirectoryState>,
    caller: Caller,
    ApiPath(staff_id): ApiPath<String>,
    ApiJson(body): ApiJson<StaffPhone>,
) -> Result<StatusCode, ApiError> {
    let cipher = state.pii.as_ref().ok_or(ApiError::PiiKeyMissing)?;
    let phone = hcp_domain::pii::normalize_phone("phone", &body.phone)
        .map_err(|e| ApiError::Validation(hcp_domain::ValidationErrors(vec![e])))?;
    if state.store.set_staff_phone(&staff_id, &cipher.phone_digest(&phone)).await? {
        tracing::info!(staff_id = %staff_id, by = %caller.0.sub, "staff phone digest registered");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
