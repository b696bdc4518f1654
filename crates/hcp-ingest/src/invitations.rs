//! Service records and rating invitations: the platform reports a record's lifecycle (accepted at
//! window W by staff S, picked up at window P …); an invitation is a signed, expiring, single-use
//! link `/r/{token}` for one (record, stage), shown as a QR code on the evaluator screen or the
//! acceptance receipt, or sent by SMS; the citizen rates on that page and the rating is
//! attributed from the record.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use hcp_domain::sms::{SmsParams, SmsTemplate};
use hcp_domain::{Channel, RaterIdentity, RatingInput, Stage};
use hcp_http::{ApiError, ApiJson, ApiPath, ClientAddr, Problem};
use hcp_store::{Invitation, ServiceRecord, Store};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::gate::PlatformKey;
use crate::{handlers, metrics, IngestState};

/// How invitations are made.
#[derive(Clone)]
pub struct InvitationConfig {
    /// HMAC-SHA256 keys of the tokens.
    pub keys: InvitationKeys,
    /// Base of the links, e.g. `https://hcp.example.gov.cn`.
    pub public_url: String,
    /// How long a link stays valid.
    pub ttl: Duration,
    /// Send an SMS invitation automatically when a record is accepted or picked up (and the
    /// applicant left a phone number).
    pub sms_on_events: bool,
    /// Where SMS go.
    pub sms: Arc<dyn SmsGateway>,
    /// Daily caps on SMS invitations.
    pub sms_caps: SmsCaps,
}

/// Daily caps on SMS invitations (Beijing days): a leaked or buggy platform key cannot flood
/// citizens' phones or the SMS bill.
#[derive(Debug, Clone, Copy)]
pub struct SmsCaps {
    /// Per platform key (`HCP_SMS_PER_KEY_PER_DAY`).
    pub per_key: u32,
    /// Per mobile number, whichever platform sends (`HCP_SMS_PER_NUMBER_PER_DAY`).
    pub per_number: u32,
}

/// Seconds until the next Beijing midnight, when the daily caps start again.
fn until_beijing_midnight(now: DateTime<Utc>) -> (DateTime<Utc>, u64) {
    let bj = now.with_timezone(&hcp_domain::time::beijing());
    let start = bj.date_naive().and_hms_opt(0, 0, 0).expect("midnight exists");
    let start = hcp_domain::time::beijing().from_local_datetime(&start).single().expect("fixed offset").to_utc();
    let next = start + chrono::Duration::days(1);
    (start, (next - now).num_seconds().max(1) as u64)
}

/// Whether `key` may send one more SMS invitation to `phone` today: `Ok(digest)` of the number
/// to record the send under, or `Err(seconds)` until the caps reset.
async fn sms_allowance(
    state: &IngestState,
    key: &hcp_store::Credential,
    phone: &str,
) -> Result<Result<Vec<u8>, u64>, ApiError> {
    let (cfg, store) = config(state)?;
    let cipher = state.pii.as_ref().ok_or(ApiError::PiiKeyMissing)?;
    let digest = cipher.phone_digest(phone);
    let (day_start, wait) = until_beijing_midnight(Utc::now());
    let (by_key, by_number) = store.sms_sent_since(&key.key_id, &digest, day_start).await?;
    let key_full = by_key >= i64::from(cfg.sms_caps.per_key);
    if key_full || by_number >= i64::from(cfg.sms_caps.per_number) {
        metrics::SMS_CAPPED.with_label_values(&[if key_full { "key" } else { "number" }]).inc();
        tracing::warn!(key_id = %key.key_id, by_key, by_number, "SMS invitation over a daily cap: not sent");
        return Ok(Err(wait));
    }
    Ok(Ok(digest))
}

/// Records the send (for the caps) and sends the SMS invitation `inv`.
async fn send_counted(
    state: &IngestState,
    key: &hcp_store::Credential,
    digest: &[u8],
    inv: &Invitation,
) -> Result<(), ApiError> {
    let (cfg, store) = config(state)?;
    store.record_sms_send(&key.key_id, digest).await?;
    send_sms(cfg, inv).await;
    Ok(())
}

/// The applicant's phone of `record`, opened from its seal.
fn applicant_phone(state: &IngestState, record: &ServiceRecord) -> Option<String> {
    let sealed = record.applicant.as_ref()?;
    state.pii.as_ref()?.open(sealed).ok()?.phone
}

/// Where SMS invitations go. The server's implementation is [`OutboxSms`]: the notification
/// outbox, drained by the `sms` component's sender (retries, quiet hours, caps, opt-outs, the
/// vendor gateway). Ingest never talks to a vendor itself, so a slow gateway cannot hold up a
/// platform's request, and no phone number leaves the sealed record here.
pub trait SmsGateway: Send + Sync {
    /// Queues the SMS of `template` with `params` to `recipient` (`record:<no>`: the sender
    /// opens the record's sealed phone at send time); `text` is its rendering for operators.
    fn send<'a>(
        &'a self,
        recipient: &'a str,
        template: SmsTemplate,
        params: &'a SmsParams,
        text: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// The server's gateway: the notification outbox (`kind = rating_sms`) and the sms sender's queue.
pub struct OutboxSms(pub Store);

impl SmsGateway for OutboxSms {
    fn send<'a>(
        &'a self,
        recipient: &'a str,
        template: SmsTemplate,
        params: &'a SmsParams,
        text: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let id = self
                .0
                .queue_sms("rating_sms", recipient, "评价邀请", text, template, params)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(notification = id, recipient, "rating invitation SMS queued");
            Ok(())
        })
    }
}

/// The keys that sign invitation links (`HCP_INVITATION_KEY`): the first signs new links, every
/// one verifies. Rotation: put a new key first and keep the old ones until the links they signed
/// have expired (`HCP_INVITATION_DAYS`), then drop them. Each token names its key's id.
#[derive(Clone)]
pub struct InvitationKeys(Arc<Vec<(String, Vec<u8>)>>);

impl std::fmt::Debug for InvitationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.0.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "InvitationKeys({ids:?})")
    }
}

impl InvitationKeys {
    /// `id:base64[,id:base64…]` (ids of 1–16 letters, digits, `-` or `_`; keys of at least 32
    /// bytes), or one bare base64 key (id `k0`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, b64) = part.split_once(':').unwrap_or(("k0", part));
            if id.is_empty()
                || id.len() > 16
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("invitation key id {id:?} must be 1–16 letters, digits, - or _"));
            }
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("invitation key {id} is not base64: {e}"))?;
            if key.len() < 32 {
                return Err(format!("invitation key {id} must be at least 32 bytes"));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(format!("invitation key id {id} appears twice"));
            }
            keys.push((id.to_owned(), key));
        }
        if keys.is_empty() {
            return Err("no invitation key given".into());
        }
        Ok(InvitationKeys(Arc::new(keys)))
    }

    /// One random key (links then die with the process).
    pub fn random() -> Self {
        InvitationKeys(Arc::new(vec![("r0".into(), rand::random::<[u8; 32]>().to_vec())]))
    }

    /// The id of the key that signs new links.
    pub fn current(&self) -> &str {
        &self.0[0].0
    }

    fn mac(key: &[u8], kid: &str, id: Uuid, exp: i64) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(b"hcp.invitation.v2\0");
        m.update(kid.as_bytes());
        m.update(b"\0");
        m.update(id.as_bytes());
        m.update(&exp.to_be_bytes());
        m
    }

    /// The token of an invitation: `<id>.<expiry>.<key id>.<HMAC>` (base64url), bound to the
    /// invitation (and so to its record and stage) and its expiry.
    pub fn token(&self, id: Uuid, expires_at: DateTime<Utc>) -> String {
        let (kid, key) = &self.0[0];
        let exp = expires_at.timestamp();
        let tag = Self::mac(key, kid, id, exp).finalize().into_bytes();
        format!("{}.{exp}.{kid}.{}", URL_SAFE_NO_PAD.encode(id.as_bytes()), URL_SAFE_NO_PAD.encode(&tag[..16]))
    }

    /// The invitation id of a genuine token (any expiry) signed by one of these keys; `None`
    /// when forged, malformed or signed by a key no longer held.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        let mut parts = token.split('.');
        let (id, exp, kid, tag) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let (_, key) = self.0.iter().find(|(k, _)| k == kid)?;
        let id = Uuid::from_slice(&URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
        let exp: i64 = exp.parse().ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != 16 {
            return None;
        }
        Self::mac(key, kid, id, exp).verify_truncated_left(&tag).ok()?;
        Some(id)
    }
}

fn config(state: &IngestState) -> Result<(&InvitationConfig, &Store), ApiError> {
    match (&state.invitations, &state.gate) {
        (Some(c), Some(g)) => Ok((c, &g.store)),
        _ => Err(ApiError::NotFound),
    }
}

/// A lifecycle event of a service record.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordEvent {
    /// 办件编号.
    pub service_record_no: String,
    /// `accepted` (受理) or `picked_up` (出件).
    pub event: String,
    /// When (default now).
    pub at: Option<DateTime<Utc>>,
    /// 事项编码.
    pub service_item_code: Option<String>,
    /// Department.
    pub department_id: Option<String>,
    /// Hall.
    pub hall_id: Option<String>,
    /// The window that served this stage.
    pub window_id: Option<String>,
    /// The staff member who served it.
    pub staff_id: Option<String>,
    /// The applicant's mobile number for an SMS invitation (sealed at once; never stored in clear).
    pub applicant_phone: Option<String>,
    /// The applicant's user id on this platform (1–128 characters), so 我的业务 can list their
    /// stages still open for rating (`GET /api/v1/my-business/open-stages`); kept only as a keyed
    /// digest, set by the first event that gives it.
    pub platform_user_id: Option<String>,
}

/// What an event did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordEventResult {
    /// The record after the event.
    pub record: ServiceRecord,
    /// The SMS invitation sent for this stage, if any.
    pub sms_invitation: Option<Uuid>,
}

/// Report a service record's lifecycle event (the platform, with its key). With an applicant
/// phone and the SMS policy on, the applicant gets an SMS invitation for that stage.
#[utoipa::path(
    post,
    path = "/api/v1/service-records/events",
    tag = "ingest",
    request_body = RecordEvent,
    security(("channel_key" = [])),
    responses(
        (status = 200, description = "Recorded", body = RecordEventResult),
        (status = 401, description = "Channel key missing, unknown or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an online platform's integration key, or the record is another platform's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An attribution field already set would change (conflict): correct it instead", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn record_event(
    State(state): State<IngestState>,
    PlatformKey(key): PlatformKey,
    ApiJson(ev): ApiJson<RecordEvent>,
) -> Result<Json<RecordEventResult>, ApiError> {
    let (cfg, store) = config(&state)?;
    let no = ev.service_record_no.as_str();
    check_record_no(no)?;
    for (field, value) in [
        ("service_item_code", &ev.service_item_code),
        ("department_id", &ev.department_id),
        ("hall_id", &ev.hall_id),
        ("window_id", &ev.window_id),
        ("staff_id", &ev.staff_id),
    ] {
        if value.as_deref().is_some_and(|v| !is_record_no(v)) {
            return Err(ApiError::field(
                field,
                "invalid",
                format!("{field} 须为 1–64 个字符,不含空白或控制字符"),
                format!("{field} must be 1–64 characters without whitespace or control characters"),
            ));
        }
    }
    let at = ev.at.unwrap_or_else(Utc::now);
    let applicant = ev.applicant_phone.map(|p| seal_phone(&state, "applicant_phone", p)).transpose()?;
    let platform_user = match ev.platform_user_id.as_deref() {
        Some(id) => {
            hcp_domain::my_business::check_user_id("platform_user_id", id)
                .map_err(|e| ApiError::Validation(hcp_domain::ValidationErrors(vec![e])))?;
            Some(state.pii.as_ref().ok_or(ApiError::PiiKeyMissing)?.user_digest(id))
        }
        None => None,
    };
    let mut rec = ServiceRecord {
        service_record_no: no.to_owned(),
        service_item_code: ev.service_item_code,
        department_id: ev.department_id,
        hall_id: ev.hall_id,
        applicant,
        reported_by: Some(key.key_id.clone()),
        platform_user,
        ..Default::default()
    };
    let stage = match ev.event.as_str() {
        "accepted" => {
            (rec.accepted_at, rec.accepted_window_id, rec.accepted_staff_id) = (Some(at), ev.window_id, ev.staff_id);
            Stage::Acceptance
        }
        "picked_up" => {
            (rec.picked_up_at, rec.pickup_window_id, rec.pickup_staff_id) = (Some(at), ev.window_id, ev.staff_id);
            Stage::Pickup
        }
        other => {
            return Err(ApiError::field(
                "event",
                "unknown_value",
                format!("未知的办件事件 “{other}”,可选值:accepted、picked_up"),
                format!("unknown event {other:?}, expected accepted or picked_up"),
            ))
        }
    };
    if let Some(stored) = store.service_record(no).await? {
        check_owner(&stored, &key)?;
        check_attribution_unchanged(&stored, &rec)?;
    }
    let record = store.upsert_service_record(&rec).await?;
    let mut sms_invitation = None;
    if let (true, Some(phone)) = (cfg.sms_on_events, applicant_phone(&state, &record)) {
        // Over a daily cap the event is still recorded; only the SMS is held back.
        if let Ok(digest) = sms_allowance(&state, &key, &phone).await? {
            let inv = create(store, cfg, &record.service_record_no, stage, Channel::Sms).await?;
            send_counted(&state, &key, &digest, &inv).await?;
            sms_invitation = Some(inv.invitation_id);
        }
    }
    Ok(Json(RecordEventResult { record, sms_invitation }))
}

/// Whether `no` can be a 办件编号 (or another id): 1–64 characters, no whitespace or control character.
fn is_record_no(no: &str) -> bool {
    let n = no.chars().count();
    (1..=hcp_domain::rating::MAX_ID_CHARS).contains(&n) && !no.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// [`is_record_no`] as a field error (422 naming `service_record_no`).
fn check_record_no(no: &str) -> Result<(), ApiError> {
    if is_record_no(no) {
        return Ok(());
    }
    Err(ApiError::field(
        "service_record_no",
        "invalid",
        "办件编号须为 1–64 个字符,不含空白或控制字符",
        "service_record_no must be 1–64 characters without whitespace or control characters",
    ))
}

/// Refuses a record another platform reported (403): only its own platform reports its events.
fn check_owner(record: &ServiceRecord, key: &hcp_store::Credential) -> Result<(), ApiError> {
    match &record.reported_by {
        Some(owner) if *owner != key.key_id => Err(ApiError::Forbidden(format!(
            "办件 {} 由另一平台报送,只有该平台可报送其事件 / reported by another platform",
            record.service_record_no
        ))),
        _ => Ok(()),
    }
}

/// Refuses an event that would change an attribution field already set (409 naming it): those
/// change only through an operator's audited correction.
fn check_attribution_unchanged(stored: &ServiceRecord, incoming: &ServiceRecord) -> Result<(), ApiError> {
    for field in hcp_store::ATTRIBUTION_FIELDS {
        if let (Some(was), Some(now)) = (stored.attribution(field), incoming.attribution(field)) {
            if was != now {
                return Err(ApiError::Conflict(format!(
                    "{field} 已为 {was},不能改为 {now};如确属录入错误,请由管理员更正 \
                     (POST /api/v1/service-records/{{no}}/corrections) / {field} is already set"
                )));
            }
        }
    }
    Ok(())
}

fn seal_phone(state: &IngestState, field: &str, phone: String) -> Result<hcp_domain::SealedRater, ApiError> {
    let cipher = state.pii.as_ref().ok_or(ApiError::PiiKeyMissing)?;
    let phone = hcp_domain::pii::normalize_phone(field, &phone)
        .map_err(|e| ApiError::Validation(hcp_domain::ValidationErrors(vec![e])))?;
    Ok(cipher.seal(1, &RaterIdentity { phone: Some(phone), ..Default::default() }, rand::random()))
}

async fn create(
    store: &Store,
    cfg: &InvitationConfig,
    no: &str,
    stage: Stage,
    channel: Channel,
) -> Result<Invitation, ApiError> {
    let expires_at = Utc::now() + chrono::Duration::from_std(cfg.ttl).unwrap_or(chrono::Duration::days(7));
    // Whole seconds: the token signs the Unix time.
    let expires_at = Utc.timestamp_opt(expires_at.timestamp(), 0).single().unwrap_or(expires_at);
    let inv = Invitation {
        invitation_id: Uuid::new_v4(),
        service_record_no: no.to_owned(),
        stage: stage.as_str().to_owned(),
        channel: channel.as_str().to_owned(),
        expires_at,
        used_at: None,
        rating_id: None,
    };
    store.create_invitation(&inv).await?;
    metrics::INVITATIONS.with_label_values(&[channel.as_str()]).inc();
    Ok(inv)
}

fn link(cfg: &InvitationConfig, inv: &Invitation) -> String {
    format!("{}/r/{}", cfg.public_url.trim_end_matches('/'), cfg.keys.token(inv.invitation_id, inv.expires_at))
}

async fn send_sms(cfg: &InvitationConfig, inv: &Invitation) {
    let stage = Stage::parse(&inv.stage).map(|s| s.label_zh()).unwrap_or("办事");
    let text = format!(
        "【政务服务好差评】您的办件 {} 已完成{stage},欢迎评价:{} ({} 天内有效)",
        inv.service_record_no,
        link(cfg, inv),
        cfg.ttl.as_secs() / 86_400
    );
    let params = SmsParams { service: format!("办件 {} {stage}", inv.service_record_no), link: link(cfg, inv) };
    let recipient = format!("record:{}", inv.service_record_no);
    if let Err(e) = cfg.sms.send(&recipient, SmsTemplate::Invitation, &params, &text).await {
        tracing::warn!(error = %e, invitation = %inv.invitation_id, "SMS invitation not queued");
    }
}

/// A request for an invitation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    /// 办件编号 (reported through `/api/v1/service-records/events`).
    pub service_record_no: String,
    /// `acceptance`, `pickup` or `online`.
    pub stage: String,
    /// `qr_code` (evaluator screen, printed receipt) or `sms`.
    pub channel: String,
    /// For `sms`: the mobile number (sealed at once) unless the record has the applicant's.
    pub phone: Option<String>,
}

/// An invitation as issued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedInvitation {
    /// Id.
    pub invitation_id: Uuid,
    /// The link (`/r/{token}`).
    pub url: String,
    /// Valid until.
    pub expires_at: DateTime<Utc>,
    /// The QR code of the link as SVG.
    pub qr_svg: String,
    /// The QR code of the link as PNG.
    pub qr_png: String,
}

/// Make an invitation for one (service record, stage): a signed, expiring, single-use link with
/// its QR code; `sms` also sends it to the applicant.
#[utoipa::path(
    post,
    path = "/api/v1/invitations",
    tag = "ingest",
    request_body = NewInvitation,
    security(("channel_key" = [])),
    responses(
        (status = 201, description = "Issued", body = IssuedInvitation),
        (status = 401, description = "Channel key missing, unknown or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown service record, or another platform's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The key's or the number's daily SMS cap is reached (rate-limited, Retry-After: until Beijing midnight)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn issue(
    State(state): State<IngestState>,
    PlatformKey(key): PlatformKey,
    ApiJson(req): ApiJson<NewInvitation>,
) -> Result<(StatusCode, Json<IssuedInvitation>), ApiError> {
    let (cfg, store) = config(&state)?;
    let stage = Stage::parse(&req.stage).filter(|s| *s != Stage::Hotline).ok_or_else(|| {
        ApiError::field(
            "stage",
            "unknown_value",
            "环节须为 acceptance、pickup 或 online",
            "stage must be acceptance, pickup or online",
        )
    })?;
    let channel =
        Channel::parse(&req.channel).filter(|c| matches!(c, Channel::QrCode | Channel::Sms)).ok_or_else(|| {
            ApiError::field("channel", "unknown_value", "邀请渠道须为 qr_code 或 sms", "channel must be qr_code or sms")
        })?;
    check_record_no(&req.service_record_no)?;
    // Another platform's record is not found: a key learns nothing about records not its own.
    let mut record = store
        .service_record(&req.service_record_no)
        .await?
        .filter(|r| r.reported_by.as_ref().is_none_or(|owner| *owner == key.key_id))
        .ok_or(ApiError::NotFound)?;
    if let Some(phone) = req.phone {
        record.applicant = Some(seal_phone(&state, "phone", phone)?);
        record = store.upsert_service_record(&record).await?;
    }
    if channel == Channel::Sms && record.applicant.is_none() {
        return Err(ApiError::field(
            "phone",
            "required",
            "短信邀请须提供手机号码",
            "an SMS invitation needs a phone number",
        ));
    }
    let sms_digest = match channel {
        Channel::Sms => {
            let phone = applicant_phone(&state, &record).ok_or(ApiError::PiiKeyMissing)?;
            Some(sms_allowance(&state, &key, &phone).await?.map_err(ApiError::RateLimited)?)
        }
        _ => None,
    };
    let inv = create(store, cfg, &record.service_record_no, stage, channel).await?;
    if let Some(digest) = sms_digest {
        send_counted(&state, &key, &digest, &inv).await?;
    }
    let base = format!("/api/v1/invitations/{}", inv.invitation_id);
    Ok((
        StatusCode::CREATED,
        Json(IssuedInvitation {
            invitation_id: inv.invitation_id,
            url: link(cfg, &inv),
            expires_at: inv.expires_at,
            qr_svg: format!("{base}/qr.svg"),
            qr_png: format!("{base}/qr.png"),
        }),
    ))
}

/// The QR code of invitation `id`, for the platform whose record it is (any other: 404).
async fn qr_code_of(state: &IngestState, key: &hcp_store::Credential, id: &str) -> Result<qrcode::QrCode, ApiError> {
    let (cfg, store) = config(state)?;
    let id = Uuid::parse_str(id.trim_end_matches(".svg").trim_end_matches(".png")).map_err(|_| ApiError::NotFound)?;
    let inv = store.invitation(id).await?.ok_or(ApiError::NotFound)?;
    let record = store.service_record(&inv.service_record_no).await?.ok_or(ApiError::NotFound)?;
    if record.reported_by.as_ref().is_some_and(|owner| *owner != key.key_id) {
        return Err(ApiError::NotFound);
    }
    qrcode::QrCode::new(link(cfg, &inv).as_bytes()).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The invitation's QR code as SVG, for the platform that issued it (the code carries the link).
#[utoipa::path(get, path = "/api/v1/invitations/{invitation_id}/qr.svg", tag = "ingest",
    params(("invitation_id" = String, Path, description = "Invitation id")),
    security(("channel_key" = [])),
    responses((status = 200, description = "SVG", content_type = "image/svg+xml"), (status = 401, description = "Channel key missing, unknown or revoked", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Unknown", body = Problem, content_type = "application/problem+json")))]
pub async fn qr_svg(
    State(state): State<IngestState>,
    PlatformKey(key): PlatformKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let code = qr_code_of(&state, &key, &id).await?;
    let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(240, 240).quiet_zone(true).build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// The invitation's QR code as PNG (8 px per module, grayscale), for the issuing platform.
#[utoipa::path(get, path = "/api/v1/invitations/{invitation_id}/qr.png", tag = "ingest",
    params(("invitation_id" = String, Path, description = "Invitation id")),
    security(("channel_key" = [])),
    responses((status = 200, description = "PNG", content_type = "image/png"), (status = 401, description = "Channel key missing, unknown or revoked", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Unknown", body = Problem, content_type = "application/problem+json")))]
pub async fn qr_png(
    State(state): State<IngestState>,
    PlatformKey(key): PlatformKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let code = qr_code_of(&state, &key, &id).await?;
    let png = render_png(&code, 8).map_err(ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// Renders `code` with a 4-module quiet zone, `scale` pixels per module.
fn render_png(code: &qrcode::QrCode, scale: usize) -> Result<Vec<u8>, String> {
    let w = code.width();
    let size = (w + 8) * scale;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; size * size];
    for y in 0..w {
        for x in 0..w {
            if colors[y * w + x] == qrcode::Color::Dark {
                for dy in 0..scale {
                    let row = ((y + 4) * scale + dy) * size;
                    pixels[row + (x + 4) * scale..row + (x + 5) * scale].fill(0);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, size as u32, size as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// What the rating page needs to show.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    /// `open`.
    pub status: &'static str,
    /// 办件编号.
    pub service_record_no: String,
    /// Stage wire name.
    pub stage: String,
    /// Stage in Chinese.
    pub stage_label: String,
    /// Valid until.
    pub expires_at: DateTime<Utc>,
    /// Tags offered for grades 1–2.
    pub bad_tags: Vec<TagView>,
    /// Tags offered for grades 3–5.
    pub good_tags: Vec<TagView>,
    /// Evaluation dimensions the link's channel offers, each optionally graded 1–5 under the
    /// overall grade.
    pub dimensions: Vec<TagView>,
}

/// A tag offered on the page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TagView {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// The invitation behind a token, if it can be used now.
async fn usable(state: &IngestState, token: &str) -> Result<(Invitation, ServiceRecord), ApiError> {
    let (cfg, store) = config(state)?;
    let id = cfg.keys.verify(token).ok_or(ApiError::InvitationInvalid)?;
    let inv = store.invitation(id).await?.ok_or(ApiError::InvitationInvalid)?;
    if inv.used_at.is_some() {
        return Err(ApiError::InvitationUsed);
    }
    if inv.expires_at <= Utc::now() {
        return Err(ApiError::InvitationExpired);
    }
    let record = store.service_record(&inv.service_record_no).await?.ok_or(ApiError::InvitationInvalid)?;
    Ok((inv, record))
}

/// The invitation a citizen opened (no login: the signed token is the credential).
#[utoipa::path(get, path = "/api/v1/r/{token}", tag = "ingest",
    params(("token" = String, Path, description = "The token of the link")),
    responses(
        (status = 200, description = "Open", body = InvitationView),
        (status = 404, description = "Forged or unknown (invitation-invalid)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Used (invitation-used)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired (invitation-expired)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this address", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn view(
    State(state): State<IngestState>,
    ClientAddr(client): ClientAddr,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<InvitationView>, ApiError> {
    state.limits.check_ip(client)?;
    let (inv, _) = usable(&state, &token).await?;
    let (_, store) = config(&state)?;
    let tags = store.tag_catalogue().await?;
    let dimensions = store.dimensions_offered(&inv.channel).await?;
    let pick = |neg: bool| {
        tags.iter().filter(|t| t.2 == neg).map(|t| TagView { code: t.0.clone(), name: t.1.clone() }).collect()
    };
    Ok(Json(InvitationView {
        status: "open",
        stage_label: Stage::parse(&inv.stage).map(|s| s.label_zh()).unwrap_or_default().to_owned(),
        service_record_no: inv.service_record_no,
        stage: inv.stage,
        expires_at: inv.expires_at,
        bad_tags: pick(true),
        good_tags: pick(false),
        dimensions: dimensions.into_iter().map(|(code, name)| TagView { code, name }).collect(),
    }))
}

/// The citizen's rating.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CitizenRating {
    /// 1–5 (5 非常满意 … 1 非常不满意).
    pub grade: Option<i64>,
    /// Tag codes (for 1–2 a tag or text is required).
    pub tags: Option<Vec<String>>,
    /// Optional grades per evaluation dimension the page offers: code → 1–5.
    #[schema(value_type = Option<std::collections::BTreeMap<String, i64>>)]
    pub dimensions: Option<std::collections::BTreeMap<String, i64>>,
    /// Text.
    pub comment: Option<String>,
    /// The rater's identity, optional (sealed at once).
    pub rater: Option<hcp_domain::RaterInput>,
}

/// Submit the rating of an invitation: single use; the channel (qr_code / sms), record and stage
/// come from the invitation, the window and staff member from the record.
#[utoipa::path(post, path = "/api/v1/r/{token}", tag = "ingest",
    params(("token" = String, Path, description = "The token of the link")),
    request_body = CitizenRating,
    responses(
        (status = 202, description = "Durably accepted", body = crate::Accepted),
        (status = 404, description = "Forged or unknown (invitation-invalid)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Used (invitation-used), or this stage was already rated elsewhere (duplicate-rating), or is being rated (rating-in-progress)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired (invitation-expired)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Grade missing, a bad review without a tag or text (validation-failed), or a dimension the link's channel does not offer (dimension-not-offered)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Broker unavailable; nothing was recorded", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn submit(
    State(state): State<IngestState>,
    ClientAddr(client): ClientAddr,
    ApiPath(token): ApiPath<String>,
    ApiJson(body): ApiJson<CitizenRating>,
) -> Result<(StatusCode, Json<crate::Accepted>), ApiError> {
    state.limits.check_ip(client)?;
    let (inv, record) = usable(&state, &token).await?;
    let (_, store) = config(&state)?;
    let stage = Stage::parse(&inv.stage).ok_or(ApiError::InvitationInvalid)?;
    let (window_id, staff_id) = match stage {
        Stage::Acceptance => (record.accepted_window_id.clone(), record.accepted_staff_id.clone()),
        Stage::Pickup => (record.pickup_window_id.clone(), record.pickup_staff_id.clone()),
        _ => (None, None),
    };
    let input = RatingInput {
        channel: Some(inv.channel.clone()),
        stage: Some(inv.stage.clone()),
        service_record_no: Some(record.service_record_no.clone()),
        service_item_code: record.service_item_code.clone(),
        department_id: record.department_id.clone(),
        hall_id: record.hall_id.clone(),
        window_id,
        staff_id,
        grade: body.grade,
        tags: body.tags,
        dimensions: body.dimensions,
        comment: body.comment,
        rater: body.rater,
        ..Default::default()
    };
    // Validate before the invitation is spent: a missing tag is fixed on the page and resent.
    if let Some(gate) = &state.gate {
        crate::gate::check_dimensions(gate, &input).await?;
    }
    if state.pii.is_some() || input.rater.is_none() {
        let probe = |prop: u8, id: &RaterIdentity| state.pii.as_ref().expect("checked").seal(prop, id, [0; 12]);
        input.clone().validate_with(Uuid::nil(), Utc::now(), Some(&probe))?;
    }
    let rating_id = Uuid::now_v7();
    if !store.use_invitation(inv.invitation_id, rating_id).await? {
        return Err(ApiError::InvitationUsed);
    }
    match handlers::accept_one(&state, None, input, rating_id).await {
        Ok(ok) => Ok(ok),
        Err(e) => {
            if let Err(db) = store.unuse_invitation(inv.invitation_id, rating_id).await {
                tracing::warn!(error = %db, "invitation not given back after a failed submission");
            }
            Err(e)
        }
    }
}

/// `/r/{token}`: the citizen's rating page (zh-CN, mobile-first; the page reads its token from the path).
pub async fn page() -> Html<&'static str> {
    Html(include_str!("../assets/rate.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(spec: &str) -> InvitationKeys {
        InvitationKeys::parse(spec).unwrap()
    }

    const OLD: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const NEW: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 bytes

    #[test]
    fn tokens_bind_the_id_and_expiry() {
        let k = keys(OLD);
        let id = Uuid::new_v4();
        let exp = Utc.timestamp_opt(1_900_000_000, 0).unwrap();
        let t = k.token(id, exp);
        assert_eq!(k.verify(&t), Some(id));
        assert_eq!(keys(&format!("k0:{NEW}")).verify(&t), None, "another key under the same id");
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(k.verify(&format!("{}.1900000001.{}.{}", parts[0], parts[2], parts[3])), None, "a later expiry");
        let other = URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes());
        assert_eq!(k.verify(&format!("{other}.{}.{}.{}", parts[1], parts[2], parts[3])), None, "another invitation");
        assert_eq!(k.verify("garbage"), None);
        assert_eq!(k.verify(&format!("{t}.x")), None);
    }

    #[test]
    fn rotation_keeps_old_links_until_their_key_is_dropped() {
        let id = Uuid::new_v4();
        let exp = Utc.timestamp_opt(1_900_000_000, 0).unwrap();
        let before = keys(&format!("k1:{OLD}"));
        let old_link = before.token(id, exp);
        let rotated = keys(&format!("k2:{NEW},k1:{OLD}"));
        assert_eq!(rotated.current(), "k2");
        assert_eq!(rotated.verify(&old_link), Some(id), "links signed before the rotation still open");
        let new_link = rotated.token(id, exp);
        assert!(new_link.contains(".k2."), "{new_link}");
        assert_eq!(before.verify(&new_link), None, "a replica without the new key refuses new links");
        let after = keys(&format!("k2:{NEW}"));
        assert_eq!(after.verify(&new_link), Some(id));
        assert_eq!(after.verify(&old_link), None, "the dropped key's links are refused");
        // A token naming a key id with the MAC of another key is forged.
        let forged = old_link.replace(".k1.", ".k2.");
        assert_eq!(rotated.verify(&forged), None);
    }

    #[test]
    fn key_specs_are_checked() {
        assert_eq!(keys(OLD).current(), "k0");
        assert!(InvitationKeys::parse("").is_err());
        assert!(InvitationKeys::parse("k1:c2hvcnQ=").is_err(), "short key");
        assert!(InvitationKeys::parse(&format!("k1:{OLD},k1:{NEW}")).is_err(), "duplicate id");
        assert!(InvitationKeys::parse(&format!("bad id:{OLD}")).is_err());
        assert!(!format!("{:?}", keys(OLD)).contains(OLD), "Debug hides the key");
    }

    #[test]
    fn qr_png_is_a_png() {
        let code = qrcode::QrCode::new(b"https://hcp.example/r/abc").unwrap();
        let png = render_png(&code, 4).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}

/// An operator's correction of a service record's attribution field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    /// One of `service_item_code`, `department_id`, `hall_id`, `accepted_window_id`,
    /// `accepted_staff_id`, `pickup_window_id`, `pickup_staff_id`.
    pub field: String,
    /// The right value (`null` clears it).
    pub value: Option<String>,
    /// Why (2–500 characters; kept with the change).
    pub reason: String,
}

/// Correct one attribution field of a service record (admin): the only way such a field
/// changes once set. The change, its reason and the value before are recorded; ratings already
/// stored keep the attribution they were given, later ones use the corrected record.
#[utoipa::path(
    post,
    path = "/api/v1/service-records/{service_record_no}/corrections",
    tag = "directory",
    params(("service_record_no" = String, Path, description = "办件编号")),
    request_body = Correction,
    responses(
        (status = 200, description = "Corrected", body = ServiceRecord),
        (status = 404, description = "Unknown service record", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown field, or the reason missing", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn correct(
    State(state): State<IngestState>,
    caller: hcp_http::Caller,
    ApiPath(no): ApiPath<String>,
    ApiJson(c): ApiJson<Correction>,
) -> Result<Json<ServiceRecord>, ApiError> {
    let store = &state.gate.as_ref().ok_or(ApiError::NotFound)?.store;
    if !is_record_no(&no) {
        return Err(ApiError::NotFound);
    }
    let Some(field) = hcp_store::ATTRIBUTION_FIELDS.iter().find(|f| **f == c.field) else {
        return Err(ApiError::field(
            "field",
            "unknown_value",
            format!("只能更正归属字段:{}", hcp_store::ATTRIBUTION_FIELDS.join("、")),
            format!("only attribution fields can be corrected: {}", hcp_store::ATTRIBUTION_FIELDS.join(", ")),
        ));
    };
    let reason = c.reason.trim();
    if !(2..=500).contains(&reason.chars().count()) {
        return Err(ApiError::field("reason", "invalid", "更正须说明原因(2–500 字)", "a reason of 2–500 characters"));
    }
    let value = c.value.as_deref().map(str::trim).filter(|v| !v.is_empty());
    if value.is_some_and(|v| !is_record_no(v)) {
        return Err(ApiError::field(
            "value",
            "invalid",
            "取值须为 1–64 个字符,不含空白或控制字符",
            "value: 1–64 characters without whitespace or control characters",
        ));
    }
    let record =
        store.correct_service_record(&no, field, value, reason, &caller.0.sub).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(record = %no, field, by = %caller.0.sub, "service record corrected");
    Ok(Json(record))
}

/// The corrections of a service record, oldest first (admin, auditor).
#[utoipa::path(
    get,
    path = "/api/v1/service-records/{service_record_no}/corrections",
    tag = "directory",
    params(("service_record_no" = String, Path, description = "办件编号")),
    responses((status = 200, description = "The corrections", body = Vec<hcp_store::RecordCorrection>))
)]
pub async fn corrections(
    State(state): State<IngestState>,
    ApiPath(no): ApiPath<String>,
) -> Result<Json<Vec<hcp_store::RecordCorrection>>, ApiError> {
    let store = &state.gate.as_ref().ok_or(ApiError::NotFound)?.store;
    if !is_record_no(&no) {
        return Err(ApiError::NotFound);
    }
    Ok(Json(store.service_record_corrections(&no).await?))
}
