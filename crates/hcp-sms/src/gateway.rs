//! The vendor gateways behind [`Gateway`], chosen by `HCP_SMS_GATEWAY`: Aliyun SMS (`SendSms`,
//! RPC signature HMAC-SHA1), Tencent Cloud SMS (`SendSms` 2021-01-11, TC3-HMAC-SHA256) and a
//! generic HTTP JSON gateway (a province's own SMS platform). The signing itself is pure, in
//! [`hcp_domain::sms`]; this module builds and sends the requests and reads the answers.
//!
//! Failures are categories (`http_503`, `timeout`, `aliyun:isv.BUSINESS_LIMIT_CONTROL` …),
//! never a phone number or a vendor's free text.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use hcp_domain::sms::{aliyun, tencent, SmsParams, SmsTemplate};
use serde_json::{json, Value};

/// One SMS to hand to a gateway.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// hcp's id of the message (the vendor's `OutId` / `SessionContext`).
    pub id: i64,
    /// The mobile number, 11 digits (mainland China).
    pub phone: &'a str,
    /// Which template.
    pub template: SmsTemplate,
    /// Its params.
    pub params: &'a SmsParams,
}

/// A send that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// A category for the message's status.
    pub category: String,
    /// Whether trying again later may succeed (network, 5xx, the vendor's flow control).
    pub retry: bool,
}

impl SendError {
    fn retry(category: impl Into<String>) -> Self {
        SendError { category: category.into(), retry: true }
    }
    fn permanent(category: impl Into<String>) -> Self {
        SendError { category: category.into(), retry: false }
    }
}

/// Sends one SMS: the gateway's message id (for receipts) when it returns one.
pub trait Gateway: Send + Sync {
    /// The name stored with each message and matched with receipts (`aliyun`, `tencent`, `http`).
    fn name(&self) -> &'static str;
    /// Sends `sms` at `now` (the time the request is signed with).
    fn send<'a>(
        &'a self,
        sms: &'a Outgoing<'a>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>>;
}

/// Which gateway and how to reach it (`HCP_SMS_*`).
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// `aliyun`, `tencent` or `http`.
    pub kind: GatewayKind,
    /// The API's URL (default: the vendor's public endpoint; tests point it at a local server).
    pub endpoint: Option<String>,
    /// Aliyun AccessKeyId / Tencent SecretId.
    pub key_id: String,
    /// Aliyun AccessKeySecret / Tencent SecretKey / the HTTP gateway's bearer token.
    pub secret: String,
    /// The approved 签名 (SignName).
    pub sign_name: String,
    /// Tencent's SmsSdkAppId.
    pub app_id: String,
    /// The approved template ids: invitation, callback.
    pub templates: (String, String),
    /// How long one request may take.
    pub timeout: Duration,
}

/// The gateway kinds (`HCP_SMS_GATEWAY`; `outbox` means no gateway: messages stay queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayKind {
    /// Aliyun SMS (dysmsapi).
    Aliyun,
    /// Tencent Cloud SMS.
    Tencent,
    /// A generic HTTP JSON gateway.
    Http,
}

/// The gateway these settings describe.
pub fn build(settings: GatewaySettings) -> Box<dyn Gateway> {
    let client =
        reqwest::Client::builder().timeout(settings.timeout).build().unwrap_or_else(|_| reqwest::Client::new());
    match settings.kind {
        GatewayKind::Aliyun => Box::new(Aliyun { client, s: settings }),
        GatewayKind::Tencent => Box::new(Tencent { client, s: settings }),
        GatewayKind::Http => Box::new(Http { client, s: settings }),
    }
}

impl GatewaySettings {
    fn template_id(&self, t: SmsTemplate) -> &str {
        match t {
            SmsTemplate::Invitation => &self.templates.0,
            SmsTemplate::Callback => &self.templates.1,
        }
    }
}

/// The category of a transport failure or a non-2xx answer.
fn transport(e: &reqwest::Error) -> SendError {
    if e.is_timeout() {
        SendError::retry("timeout")
    } else if e.is_connect() {
        SendError::retry("connect")
    } else {
        SendError::retry("transport")
    }
}

fn status_error(status: reqwest::StatusCode) -> SendError {
    let category = format!("http_{}", status.as_u16());
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        SendError::retry(category)
    } else {
        SendError::permanent(category)
    }
}

/// A vendor code kept as a category: letters, digits and `._-` only, at most 64 characters.
fn code(vendor: &str, c: &str) -> String {
    let c: String = c.chars().filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c)).take(64).collect();
    format!("{vendor}:{c}")
}

/// Aliyun SMS: `GET {endpoint}?Action=SendSms&…&Signature=…` (RPC style, version 2017-05-25).
struct Aliyun {
    client: reqwest::Client,
    s: GatewaySettings,
}

/// Aliyun's flow-control and transient codes, worth retrying later.
const ALIYUN_RETRY: &[&str] = &["isv.BUSINESS_LIMIT_CONTROL", "isp.SYSTEM_ERROR", "Throttling", "SignatureNonceUsed"];

impl Gateway for Aliyun {
    fn name(&self) -> &'static str {
        "aliyun"
    }

    fn send<'a>(
        &'a self,
        sms: &'a Outgoing<'a>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let endpoint = self.s.endpoint.as_deref().unwrap_or("https://dysmsapi.aliyuncs.com/");
            let nonce = uuid::Uuid::new_v4().to_string();
            let timestamp = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let params_json = json!({"service": sms.params.service, "link": sms.params.link}).to_string();
            let out_id = sms.id.to_string();
            let params: Vec<(&str, &str)> = vec![
                ("AccessKeyId", &self.s.key_id),
                ("Action", "SendSms"),
                ("Format", "JSON"),
                ("OutId", &out_id),
                ("PhoneNumbers", sms.phone),
                ("RegionId", "cn-hangzhou"),
                ("SignName", &self.s.sign_name),
                ("SignatureMethod", "HMAC-SHA1"),
                ("SignatureNonce", &nonce),
                ("SignatureVersion", "1.0"),
                ("TemplateCode", self.s.template_id(sms.template)),
                ("TemplateParam", &params_json),
                ("Timestamp", &timestamp),
                ("Version", "2017-05-25"),
            ];
            let signature = aliyun::signature(&self.s.secret, &aliyun::string_to_sign("GET", &params));
            let url = format!(
                "{endpoint}?Signature={}&{}",
                aliyun::percent_encode(&signature),
                aliyun::canonical_query(&params)
            );
            let r = self.client.get(url).send().await.map_err(|e| transport(&e))?;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            match body["Code"].as_str() {
                Some("OK") => Ok(body["BizId"].as_str().map(str::to_owned)),
                Some(c) if ALIYUN_RETRY.contains(&c) => Err(SendError::retry(code("aliyun", c))),
                Some(c) => Err(SendError::permanent(code("aliyun", c))),
                None if !status.is_success() => Err(status_error(status)),
                None => Err(SendError::retry("aliyun:unreadable_answer")),
            }
        })
    }
}

/// Tencent Cloud SMS: `POST {endpoint}` with `X-TC-Action: SendSms`, version 2021-01-11, region
/// `ap-guangzhou`, signed TC3-HMAC-SHA256 over the exact JSON body.
struct Tencent {
    client: reqwest::Client,
    s: GatewaySettings,
}

/// Tencent's flow-control and transient codes, worth retrying later.
const TENCENT_RETRY: &[&str] = &["RequestLimitExceeded", "InternalError", "LimitExceeded.PhoneNumberDailyLimit"];

impl Gateway for Tencent {
    fn name(&self) -> &'static str {
        "tencent"
    }

    fn send<'a>(
        &'a self,
        sms: &'a Outgoing<'a>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let endpoint = self.s.endpoint.as_deref().unwrap_or("https://sms.tencentcloudapi.com/");
            let url = reqwest::Url::parse(endpoint).map_err(|_| SendError::permanent("bad_endpoint"))?;
            let host = match (url.host_str(), url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => return Err(SendError::permanent("bad_endpoint")),
            };
            let payload = json!({
                "PhoneNumberSet": [format!("+86{}", sms.phone)],
                "SmsSdkAppId": self.s.app_id,
                "SignName": self.s.sign_name,
                "TemplateId": self.s.template_id(sms.template),
                "TemplateParamSet": [sms.params.service, sms.params.link],
                "SessionContext": sms.id.to_string(),
            })
            .to_string();
            let req = tencent::Request {
                service: "sms",
                host: &host,
                action: "SendSms",
                timestamp: now.timestamp(),
                payload: &payload,
            };
            let r = self
                .client
                .post(url)
                .header("Authorization", tencent::authorization(&self.s.key_id, &self.s.secret, &req))
                .header("Content-Type", tencent::CONTENT_TYPE)
                .header("Host", &host)
                .header("X-TC-Action", "SendSms")
                .header("X-TC-Timestamp", req.timestamp.to_string())
                .header("X-TC-Version", "2021-01-11")
                .header("X-TC-Region", "ap-guangzhou")
                .body(payload.clone())
                .send()
                .await
                .map_err(|e| transport(&e))?;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let resp = &body["Response"];
            if let Some(c) = resp["Error"]["Code"].as_str() {
                let retry = TENCENT_RETRY.iter().any(|r| c.starts_with(r));
                return Err(SendError { category: code("tencent", c), retry });
            }
            let Some(one) = resp["SendStatusSet"].get(0) else {
                return Err(if status.is_success() {
                    SendError::retry("tencent:unreadable_answer")
                } else {
                    status_error(status)
                });
            };
            match one["Code"].as_str() {
                Some("Ok") => Ok(one["SerialNo"].as_str().map(str::to_owned)),
                Some(c) => Err(SendError {
                    category: code("tencent", c),
                    retry: TENCENT_RETRY.iter().any(|r| c.starts_with(r)),
                }),
                None => Err(SendError::retry("tencent:unreadable_answer")),
            }
        })
    }
}

/// A generic HTTP JSON gateway: `POST {endpoint}` with `Authorization: Bearer <secret>` and
/// `{"id", "to", "text", "template", "params"}`; a 2xx answer may name `{"message_id"}`.
struct Http {
    client: reqwest::Client,
    s: GatewaySettings,
}

impl Gateway for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn send<'a>(
        &'a self,
        sms: &'a Outgoing<'a>,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let Some(endpoint) = self.s.endpoint.as_deref() else {
                return Err(SendError::permanent("no_endpoint"));
            };
            let body = json!({
                "id": sms.id.to_string(),
                "to": sms.phone,
                "text": sms.template.render(&self.s.sign_name, sms.params),
                "template": sms.template.as_str(),
                "params": sms.params,
            });
            let r = self
                .client
                .post(endpoint)
                .bearer_auth(&self.s.secret)
                .json(&body)
                .send()
                .await
                .map_err(|e| transport(&e))?;
            if !r.status().is_success() {
                return Err(status_error(r.status()));
            }
            let answer: Value = r.json().await.unwrap_or(Value::Null);
            Ok(answer["message_id"].as_str().map(str::to_owned))
        })
    }
}
