//! The SMS endpoints: messages' status and the opt-out list for operators, and the gateway's
//! callbacks (upstream replies, delivery receipts) in each vendor's documented field names.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use hcp_domain::sms::is_opt_out;
use hcp_domain::ValidationErrors;
use hcp_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, Problem};
use hcp_store::{OptOut, SmsMessage};
use serde::{Deserialize, Serialize};

use crate::{metrics, SmsState};

/// Query of `GET /api/v1/sms/messages`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// Only this status: `queued`, `sent`, `failed`, `delivered`.
    pub state: Option<String>,
    /// At most this many, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Messages to citizens with their status, attempts and last error category — never the phone
/// number (admin, auditor).
#[utoipa::path(
    get,
    path = "/api/v1/sms/messages",
    tag = "sms",
    params(MessageQuery),
    responses((status = 200, description = "Messages, newest first", body = Vec<SmsMessage>))
)]
pub async fn messages(
    State(state): State<SmsState>,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> Result<Json<Vec<SmsMessage>>, ApiError> {
    if let Some(s) = q.state.as_deref() {
        if !matches!(s, "queued" | "sent" | "failed" | "delivered") {
            return Err(ApiError::InvalidQuery("state must be queued, sent, failed or delivered".into()));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit must be 1–1000".into()));
    }
    Ok(Json(state.store.sms_messages(q.state.as_deref(), limit).await?))
}

/// The opt-out list: digests only (admin, auditor).
#[utoipa::path(
    get,
    path = "/api/v1/sms/opt-outs",
    tag = "sms",
    responses((status = 200, description = "Opted-out numbers as keyed digests, newest first", body = Vec<OptOut>))
)]
pub async fn opt_outs(State(state): State<SmsState>) -> Result<Json<Vec<OptOut>>, ApiError> {
    Ok(Json(state.store.sms_opt_outs(10_000).await?))
}

/// Body of `POST /api/v1/sms/opt-outs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOptOut {
    /// The mobile number (kept only as its keyed digest).
    pub phone: String,
}

/// An opt-out added.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AddedOptOut {
    /// The number's keyed digest (hex): what the list shows and `DELETE` takes.
    pub digest: String,
    /// Whether it was on the list already.
    pub existed: bool,
}

/// Adds a number to the opt-out list (a citizen asked by phone or letter; admin).
#[utoipa::path(
    post,
    path = "/api/v1/sms/opt-outs",
    tag = "sms",
    request_body = NewOptOut,
    responses(
        (status = 201, description = "Added", body = AddedOptOut),
        (status = 200, description = "It was on the list already", body = AddedOptOut),
        (status = 422, description = "Not a phone number", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn add_opt_out(
    State(state): State<SmsState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewOptOut>,
) -> Result<(StatusCode, Json<AddedOptOut>), ApiError> {
    let phone = hcp_domain::pii::normalize_phone("phone", &req.phone).map_err(|e| ValidationErrors(vec![e]))?;
    let pii = state.pii.as_ref().ok_or(ApiError::PiiKeyMissing)?;
    let digest = pii.phone_digest(&phone);
    let added = state.store.add_sms_opt_out(&digest, "admin", &caller.0.sub).await?;
    if added {
        metrics::OPT_OUTS.with_label_values(&["admin"]).inc();
        tracing::info!(by = %caller.0.sub, "SMS opt-out added by an operator");
    }
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(AddedOptOut { digest: hex(&digest), existed: !added })))
}

/// Takes a number off the opt-out list, by its digest (the citizen asked to be messaged again; admin).
#[utoipa::path(
    delete,
    path = "/api/v1/sms/opt-outs/{digest}",
    tag = "sms",
    params(("digest" = String, Path, description = "The number's keyed digest (hex), as listed")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "Not on the list", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn remove_opt_out(
    State(state): State<SmsState>,
    caller: Caller,
    ApiPath(digest): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let digest = unhex(&digest).filter(|d| d.len() == 32).ok_or(ApiError::NotFound)?;
    if !state.store.remove_sms_opt_out(&digest).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(by = %caller.0.sub, "SMS opt-out removed by an operator");
    Ok(StatusCode::NO_CONTENT)
}

/// One item or a list (Aliyun and Tencent push lists; a generic gateway may push one).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A list.
    Many(Vec<T>),
    /// One.
    One(T),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(t) => vec![t],
        }
    }
}

/// A citizen's reply: Aliyun `SmsUp` (`phone_number`, `content`), Tencent (`mobile`, `text`)
/// or generic (`phone`, `text`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Reply {
    /// The number that replied.
    #[serde(alias = "phone_number", alias = "mobile")]
    pub phone: String,
    /// What it said.
    #[serde(alias = "content")]
    pub text: String,
}

/// What a gateway is answered (Aliyun reads `code`/`msg`, Tencent `result`/`errmsg`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayAck {
    /// 0: received.
    pub code: i32,
    /// `成功`.
    pub msg: &'static str,
    /// 0: received.
    pub result: i32,
    /// `OK`.
    pub errmsg: &'static str,
    /// Items that changed something (opt-outs added, messages updated).
    pub applied: usize,
}

fn ack(applied: usize) -> Json<GatewayAck> {
    Json(GatewayAck { code: 0, msg: "成功", result: 0, errmsg: "OK", applied })
}

/// The number as the PII module normalizes it, without a `+86` / `86` prefix.
fn national(field: &str, phone: &str) -> Result<String, ApiError> {
    let p = phone.trim();
    let p = p.strip_prefix("+86").or_else(|| p.strip_prefix("0086")).unwrap_or(p);
    let p = if p.len() == 13 { p.strip_prefix("86").unwrap_or(p) } else { p };
    hcp_domain::pii::normalize_phone(field, p).map_err(|e| ValidationErrors(vec![e]).into())
}

/// Citizens' replies pushed by the gateway: 退订 / TD and the like put the number on the
/// opt-out list (digest only); other replies are ignored.
#[utoipa::path(
    post,
    path = "/api/v1/sms/inbound",
    tag = "sms",
    request_body = Vec<Reply>,
    responses(
        (status = 200, description = "Received", body = GatewayAck),
        (status = 422, description = "An item without a phone number or text", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn inbound(
    State(state): State<SmsState>,
    ApiJson(body): ApiJson<OneOrMany<Reply>>,
) -> Result<Json<GatewayAck>, ApiError> {
    let replies = body.into_vec();
    let pii = state.pii.as_ref().ok_or(ApiError::PiiKeyMissing)?;
    let mut numbers = Vec::new();
    for (i, r) in replies.iter().enumerate() {
        let phone = national(&format!("[{i}].phone"), &r.phone)?;
        numbers.push((phone, is_opt_out(&r.text)));
    }
    let mut applied = 0;
    for (phone, opt_out) in numbers {
        if opt_out && state.store.add_sms_opt_out(&pii.phone_digest(&phone), "reply", "sms-gateway").await? {
            metrics::OPT_OUTS.with_label_values(&["reply"]).inc();
            applied += 1;
        }
    }
    tracing::info!(replies = replies.len(), opted_out = applied, "SMS replies received");
    Ok(ack(applied))
}

/// A delivery receipt: Aliyun `SmsReport` (`biz_id`, `success`, `err_code`), Tencent
/// (`sid`, `report_status`, `errmsg`) or generic (`message_id`, `delivered`, `code`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    /// The gateway's message id (as it answered the send).
    #[serde(alias = "biz_id", alias = "sid")]
    pub message_id: String,
    /// Delivered (generic).
    pub delivered: Option<bool>,
    /// Delivered (Aliyun).
    pub success: Option<bool>,
    /// `SUCCESS` or `FAIL` (Tencent).
    pub report_status: Option<String>,
    /// The vendor's status code.
    #[serde(alias = "err_code", alias = "errmsg")]
    pub code: Option<String>,
}

/// Delivery receipts pushed by the gateway: a sent message becomes `delivered`, or `failed`
/// with the vendor's code.
#[utoipa::path(
    post,
    path = "/api/v1/sms/receipts",
    tag = "sms",
    request_body = Vec<Receipt>,
    responses(
        (status = 200, description = "Received", body = GatewayAck),
        (status = 422, description = "An item without a message id or status", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn receipts(
    State(state): State<SmsState>,
    ApiJson(body): ApiJson<OneOrMany<Receipt>>,
) -> Result<Json<GatewayAck>, ApiError> {
    let receipts = body.into_vec();
    let mut decided = Vec::new();
    for (i, r) in receipts.iter().enumerate() {
        let delivered =
            r.delivered.or(r.success).or(r.report_status.as_deref().map(|s| s.eq_ignore_ascii_case("SUCCESS")));
        let Some(delivered) = delivered else {
            return Err(ApiError::field(
                format!("[{i}].delivered"),
                "required",
                "回执须说明是否送达(delivered、success 或 report_status)",
                "a receipt must say whether it was delivered (delivered, success or report_status)",
            ));
        };
        if r.message_id.is_empty() || r.message_id.len() > 128 {
            return Err(ApiError::field(
                format!("[{i}].message_id"),
                "invalid",
                "消息编号缺失或过长",
                "message_id is empty or too long",
            ));
        }
        decided.push((r, delivered));
    }
    let mut applied = 0;
    let code =
        |c: &str| c.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).take(64).collect::<String>();
    for (r, delivered) in decided {
        let c = r.code.as_deref().map(code);
        let hit = state.store.record_sms_receipt(&r.message_id, delivered, c.as_deref(), Utc::now()).await?;
        let status = match (hit, delivered) {
            (false, _) => "unknown",
            (true, true) => "delivered",
            (true, false) => "undelivered",
        };
        metrics::RECEIPTS.with_label_values(&[status]).inc();
        applied += usize::from(hit);
    }
    Ok(ack(applied))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}
