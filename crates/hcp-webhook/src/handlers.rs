//! Webhook endpoint handlers: add (the secret is shown once), list, switch off, delivery log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hcp_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, Problem};
use hcp_store::{Delivery, Webhook};
use serde::{Deserialize, Serialize};

use crate::WebhookState;

/// Event types an endpoint may subscribe to (exact, `workorder.*` or `*`).
const KNOWN_PREFIXES: &[&str] = &["workorder.", "alert."];

/// Body of `POST /api/v1/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `https://…` (or `http://` on a trusted network).
    pub url: String,
    /// Types to deliver: `workorder.*` (every work-order transition), exact types such as
    /// `workorder.open` or `workorder.close`, or `*`.
    pub event_types: Vec<String>,
    /// What it is for.
    pub description: Option<String>,
}

/// A new endpoint with its signing secret (shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
    /// The endpoint.
    pub webhook: Webhook,
}

/// The latest deliveries of an endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<Delivery>,
}

/// Query of the delivery log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// At most this many (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

fn invalid(field: &str, zh: &str, en: &str) -> ApiError {
    ApiError::field(field, "invalid", zh, en)
}

/// Add a webhook endpoint (admin).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "workorders",
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Added; the secret is shown once", body = CreatedWebhook),
        (status = 422, description = "Bad URL (`internal_address`: loopback, private, link-local or metadata, unless HCP_WEBHOOK_ALLOW_PRIVATE) or event types", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<WebhookState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let url = req.url.trim();
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid("url", "URL 格式不正确", "url is not a valid URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() || url.len() > 2000 {
        return Err(invalid("url", "URL 须为 http(s)://主机/…", "url must be http(s)://host/…"));
    }
    if !state.allow_private {
        if let Err(refused) = crate::egress::check_url(&parsed).await {
            return Err(ApiError::field(
                "url",
                "internal_address",
                format!(
                    "不能向内部网络地址发送(主机解析为{refused});如确需内网接收,请由运维设置 HCP_WEBHOOK_ALLOW_PRIVATE"
                ),
                format!("the host is an {refused}; set HCP_WEBHOOK_ALLOW_PRIVATE to allow internal receivers"),
            ));
        }
    }
    if req.event_types.is_empty() || req.event_types.len() > 50 {
        return Err(invalid("event_types", "须订阅 1 至 50 个事件类型", "subscribe to 1 to 50 event types"));
    }
    for t in &req.event_types {
        let known = t == "*" || KNOWN_PREFIXES.iter().any(|p| t.starts_with(p) && t.len() > p.len() && t.len() <= 64);
        if !known {
            return Err(ApiError::field(
                "event_types",
                "unknown",
                format!("未知的事件类型 “{t}”(可用 workorder.*、workorder.<动作>、alert.* 或 *)"),
                format!("unknown event type {t:?} (workorder.*, workorder.<action>, alert.* or *)"),
            ));
        }
    }
    if req.description.as_ref().is_some_and(|d| d.chars().count() > 200) {
        return Err(invalid("description", "说明不得超过 200 字", "description is at most 200 characters"));
    }
    let id: String = rand::random::<[u8; 8]>().iter().map(|b| format!("{b:02x}")).collect();
    let secret = hcp_domain::webhook::secret_from_bytes(rand::random());
    let webhook = state
        .store
        .create_webhook(&format!("wh_{id}"), url, &secret, &req.event_types, req.description.as_deref(), &caller.0.sub)
        .await?;
    tracing::info!(webhook = %webhook.webhook_id, by = %caller.0.sub, "webhook endpoint added");
    Ok((StatusCode::CREATED, Json(CreatedWebhook { secret, webhook })))
}

/// Webhook endpoints, newest first (admin, auditor; never the secrets).
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "workorders",
    responses((status = 200, description = "The endpoints", body = Vec<Webhook>))
)]
pub async fn list(State(state): State<WebhookState>) -> Result<Json<Vec<Webhook>>, ApiError> {
    Ok(Json(state.store.list_webhooks().await?))
}

/// Switch an endpoint off: no new deliveries; its log stays (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{webhook_id}",
    tag = "workorders",
    params(("webhook_id" = String, Path, description = "The endpoint")),
    responses(
        (status = 204, description = "Switched off"),
        (status = 404, description = "No such enabled endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn disable(State(state): State<WebhookState>, ApiPath(id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    if state.store.disable_webhook(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// The delivery log of an endpoint: attempts, last status, next attempt (admin, auditor).
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{webhook_id}/deliveries",
    tag = "workorders",
    params(("webhook_id" = String, Path, description = "The endpoint"), DeliveryParams),
    responses(
        (status = 200, description = "Newest first", body = DeliveryPage),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn deliveries(
    State(state): State<WebhookState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "out_of_range", "limit 须在 1 到 500 之间", "limit must be 1 to 500"));
    }
    let items = state.store.webhook_deliveries(&id, limit).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(DeliveryPage { items }))
}
