//! The gate in front of the producer: who is sending (channel credentials), whether this stage of
//! the service record is already rated (claims), and whether this is a retry (Idempotency-Key).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use hcp_domain::RatingInput;
use hcp_http::ApiError;
use hcp_store::{Credential, IdempotentAnswer, Store};

use crate::claims::ClaimQueue;
use crate::keys::KeyCache;
use sha2::{Digest, Sha256};

/// Whether ratings must carry a channel credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every rating needs a device or integration key (production).
    Required,
    /// A key is checked when present; without one the body names the channel (local demos,
    /// load generators). A revoked or unknown key is still refused.
    Optional,
}

/// The database side of ingest.
#[derive(Clone)]
pub struct Gate {
    /// Credentials, claims, idempotency keys.
    pub store: Store,
    /// The claims and accepts of single ratings, grouped across concurrent requests.
    pub claims: ClaimQueue,
    /// Credential policy.
    pub auth: AuthMode,
    /// How old a pending claim must be before another attempt takes it over (a crashed or
    /// timed-out producer's claim): a little more than the produce timeout.
    pub takeover_after: Duration,
    /// A follow-up (追评) is accepted within this long after the first rating.
    pub follow_up_window: Duration,
    /// Windows' halls and tag codes, for checking what devices send.
    pub catalogue: Catalogue,
    /// Channel keys in memory, dropped as PostgreSQL announces their changes.
    pub keys: KeyCache,
}

impl Gate {
    /// The gate over `store`, with its claim queue started on the current runtime.
    pub fn new(store: Store, auth: AuthMode, takeover_after: Duration, follow_up_window: Duration) -> Gate {
        Gate {
            claims: ClaimQueue::start(store.clone(), takeover_after),
            catalogue: Catalogue::new(store.clone()),
            keys: KeyCache::start(store.clone()),
            store,
            auth,
            takeover_after,
            follow_up_window,
        }
    }
}

/// The directory facts ingest checks a device's ratings against (every window's hall, every
/// tag code), read from the database at most every [`Catalogue::TTL`], and at once (at most
/// once a second) when a rating names something not in it: a window or tag imported a moment
/// ago is not refused for long.
#[derive(Clone)]
pub struct Catalogue {
    store: Store,
    cached: Arc<Mutex<Option<Reading>>>,
}

/// A reading and when it was taken.
type Reading = (Instant, Arc<CatalogueData>);

/// One reading of the catalogue.
#[derive(Debug, Default)]
pub struct CatalogueData {
    window_halls: HashMap<String, String>,
    tags: HashSet<String>,
    /// Dimension code → the channels offering it.
    dimensions: HashMap<String, Vec<String>>,
}

impl Catalogue {
    /// How long a reading is used.
    pub const TTL: Duration = Duration::from_secs(30);

    fn new(store: Store) -> Self {
        Catalogue { store, cached: Arc::default() }
    }

    async fn read(&self, fresher_than: Duration) -> Result<Arc<CatalogueData>, ApiError> {
        if let Some((at, data)) = self.cached.lock().expect("catalogue").as_ref() {
            if at.elapsed() < fresher_than {
                return Ok(data.clone());
            }
        }
        let c = self.store.ingest_catalogue().await?;
        let data = Arc::new(CatalogueData {
            window_halls: c.windows.into_iter().collect(),
            tags: c.tags.into_iter().collect(),
            dimensions: c.dimensions.into_iter().collect(),
        });
        *self.cached.lock().expect("catalogue") = Some((Instant::now(), data.clone()));
        Ok(data)
    }

    /// The catalogue; read again when `known` says it lacks something and it is over a second old.
    async fn get(&self, known: impl Fn(&CatalogueData) -> bool) -> Result<Arc<CatalogueData>, ApiError> {
        let data = self.read(Self::TTL).await?;
        if known(&data) {
            return Ok(data);
        }
        self.read(Duration::from_secs(1)).await
    }
}

/// Checks a rating's dimension grades against the catalogue, whoever sends it (a key, a
/// citizen's link, or nobody where keys are optional): each code must be a dimension of the
/// directory (`unknown_dimension`) offered on the rating's channel (`dimension_not_offered`);
/// every failing one is named in one 422 `dimension-not-offered`. Malformed codes and an unknown
/// channel are left to validation, which names them.
pub async fn check_dimensions(gate: &Gate, input: &RatingInput) -> Result<(), ApiError> {
    let Some(dims) = input.dimensions.as_ref().filter(|d| !d.is_empty()) else { return Ok(()) };
    let Some(channel) = input.channel.as_deref().and_then(hcp_domain::Channel::parse) else { return Ok(()) };
    let codes: Vec<&String> = dims.keys().filter(|c| hcp_domain::rating::is_code(c)).collect();
    let catalogue = gate.catalogue.get(|c| codes.iter().all(|code| c.dimensions.contains_key(*code))).await?;
    let mut errors = Vec::new();
    for code in codes {
        match catalogue.dimensions.get(code) {
            None => errors.push(hcp_domain::FieldError::new(
                format!("dimensions.{code}"),
                "unknown_dimension",
                format!("未知的评价维度“{code}”:维度须来自目录中的评价维度表"),
                format!("unknown dimension {code:?}: dimensions must come from the directory's catalogue"),
            )),
            Some(channels) if !channels.iter().any(|c| c == channel.as_str()) => {
                errors.push(hcp_domain::FieldError::new(
                    format!("dimensions.{code}"),
                    "dimension_not_offered",
                    format!("评价渠道{}不提供评价维度“{code}”", channel.label_zh()),
                    format!("channel {} does not offer dimension {code:?}", channel.as_str()),
                ))
            }
            Some(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::DimensionNotOffered(hcp_domain::ValidationErrors(errors)))
    }
}

/// Binds a rating to the key that sent it: [`apply_credential`], then for a device key its hall
/// and window (a window evaluator rates its own window: the body may omit it, another window is
/// 422 `device_window_mismatch`; a hall terminal may name only windows of its hall), and for any
/// key, tag codes from the catalogue only (422 naming the unknown tag, never stored raw).
pub async fn bind(gate: &Gate, cred: &Credential, input: &mut RatingInput) -> Result<(), ApiError> {
    apply_credential(cred, input)?;
    if cred.device_id.is_some() {
        bind_device(gate, cred, input).await?;
    }
    let tags = input.tags.as_deref().unwrap_or_default();
    if !tags.is_empty() {
        let catalogue = gate.catalogue.get(|c| tags.iter().all(|t| c.tags.contains(t))).await?;
        if let Some(unknown) = tags.iter().find(|t| !catalogue.tags.contains(*t)) {
            return Err(ApiError::field(
                "tags",
                "unknown_tag",
                format!("未知的标签代码“{unknown}”:标签须来自目录中的标签表"),
                format!("unknown tag code {unknown:?}: tags must come from the directory's catalogue"),
            ));
        }
    }
    Ok(())
}

/// A device key's hall and window on the rating (see [`bind`]).
async fn bind_device(gate: &Gate, cred: &Credential, input: &mut RatingInput) -> Result<(), ApiError> {
    let Some(hall) = &cred.hall_id else {
        return Err(ApiError::CredentialInvalid(
            "密钥绑定的设备已不在目录中 / the key's device is no longer in the directory".into(),
        ));
    };
    if input.hall_id.as_deref().is_some_and(|h| h != hall) {
        return Err(ApiError::field(
            "hall_id",
            "device_hall_mismatch",
            format!("该设备属于大厅 {hall},不能为其他大厅评价"),
            format!("this device belongs to hall {hall} and cannot rate another hall"),
        ));
    }
    input.hall_id = Some(hall.clone());
    match (&cred.window_id, input.window_id.as_deref()) {
        (Some(own), Some(named)) if named != own => Err(ApiError::field(
            "window_id",
            "device_window_mismatch",
            format!("该评价器属于窗口 {own},不能为窗口 {named} 评价"),
            format!("this evaluator belongs to window {own} and cannot rate window {named}"),
        )),
        (Some(own), _) => {
            input.window_id = Some(own.clone());
            Ok(())
        }
        (None, Some(named)) => {
            let catalogue = gate.catalogue.get(|c| c.window_halls.contains_key(named)).await?;
            if catalogue.window_halls.get(named) == Some(hall) {
                Ok(())
            } else {
                Err(ApiError::field(
                    "window_id",
                    "device_window_mismatch",
                    format!("窗口 {named} 不在该终端所在的大厅 {hall}"),
                    format!("window {named} is not in this terminal's hall {hall}"),
                ))
            }
        }
        (None, None) => Ok(()),
    }
}

/// The answer to a rating whose stage another attempt holds and has not finished producing (a
/// client's earlier request cut off mid-flight, or a concurrent one): retry once that attempt
/// is done or, should it have died, once its claim may be taken over.
pub fn in_progress(gate: &Gate) -> ApiError {
    ApiError::RatingInProgress(gate.takeover_after.as_secs_f64().ceil() as u64)
}

/// For each event: `None`, or why its follow-up is refused (no first rating, or too late).
pub async fn check_follow_ups(
    gate: &Gate,
    events: &[&hcp_domain::RatingSubmitted],
) -> Result<Vec<Option<ApiError>>, ApiError> {
    let follow_ups: Vec<(usize, (String, String))> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.assess_number.value() == 2)
        .map(|(i, e)| (i, (e.service_record_no.clone(), e.stage.as_str().to_owned())))
        .collect();
    let mut out: Vec<Option<ApiError>> = events.iter().map(|_| None).collect();
    if follow_ups.is_empty() {
        return Ok(out);
    }
    let keys: Vec<(String, String)> = follow_ups.iter().map(|(_, k)| k.clone()).collect();
    let firsts = gate.store.first_rating_times(&keys).await?;
    let days = gate.follow_up_window.as_secs() / 86_400;
    let window = chrono::Duration::from_std(gate.follow_up_window).unwrap_or(chrono::Duration::days(15));
    for ((i, _), first) in follow_ups.iter().zip(firsts) {
        let e = events[*i];
        out[*i] = match first {
            None => Some(ApiError::field(
                "assess_number",
                "follow_up_without_first",
                "追评须在首评之后:该办件的这一环节还没有首评",
                "a follow-up needs a first rating of this stage",
            )),
            Some(t) if e.received_at - t > window => Some(ApiError::field(
                "assess_number",
                "follow_up_window",
                format!("追评须在首评后 {days} 天内提交"),
                format!("a follow-up must come within {days} days of the first rating"),
            )),
            Some(_) => None,
        };
    }
    Ok(out)
}

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hcp_http::auth::CHANNEL_KEY_PREFIX as KEY_PREFIX;

use crate::IngestState;

/// The credential presented in `Authorization: Bearer hcp_…`, checked against its stored hash;
/// `None` when none is presented and the mode allows it.
pub async fn authenticate(
    gate: &Gate,
    limits: &crate::limits::Limits,
    headers: &HeaderMap,
) -> Result<Option<Credential>, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return match gate.auth {
            AuthMode::Optional => Ok(None),
            AuthMode::Required => Err(ApiError::CredentialInvalid(
                "缺少渠道密钥(Authorization: Bearer hcp_…)/ a channel key is required".into(),
            )),
        };
    };
    let parsed = token.strip_prefix(KEY_PREFIX).and_then(|rest| rest.split_once('_'));
    let Some((key_id, secret)) = parsed else {
        return Err(ApiError::CredentialInvalid("密钥格式不正确 / malformed key".into()));
    };
    let cred = gate.keys.get(key_id).await?.map(|c| Credential::clone(&c));
    let genuine = cred.as_ref().is_some_and(|c| {
        let h = Sha256::digest(secret.as_bytes());
        // Constant-time enough for a 32-byte comparison of hashes (no early exit).
        h.iter().zip(&c.secret_sha256).fold(c.secret_sha256.len() ^ h.len(), |acc, (a, b)| acc | usize::from(a ^ b))
            == 0
    });
    match cred {
        Some(c) if genuine && c.revoked_at.is_none() => {
            limits.check_key(&c)?;
            let stale = c.last_used_at.is_none_or(|t| t < chrono::Utc::now() - chrono::Duration::minutes(1));
            if stale && gate.keys.should_touch(&c.key_id) {
                let (store, id) = (gate.store.clone(), c.key_id.clone());
                tokio::spawn(async move {
                    if let Err(e) = store.touch_credential(&id).await {
                        tracing::debug!(error = %e, "credential last-use not recorded");
                    }
                });
            }
            Ok(Some(c))
        }
        Some(c) if genuine => Err(ApiError::CredentialInvalid(format!("密钥 {} 已吊销 / key revoked", c.key_id))),
        _ => Err(ApiError::CredentialInvalid("密钥无效 / unknown key".into())),
    }
}

/// The channel key of a request, checked from its headers before the body is read (so a
/// caller without a valid key learns nothing about the body's shape): `None` when none is
/// presented and the ingest mode allows it, or when ingest runs without a database.
pub struct ChannelKey(pub Option<Credential>);

impl FromRequestParts<IngestState> for ChannelKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &IngestState) -> Result<Self, ApiError> {
        match &state.gate {
            Some(g) => authenticate(g, &state.limits, &parts.headers).await.map(ChannelKey),
            None => Ok(ChannelKey(None)),
        }
    }
}

/// An online platform's integration key (app, web, mini-program), presented whatever the
/// ingest mode: service-record events, invitations and their QR codes come only from the
/// systems that handle the cases. A device's or the hotline's key is 403.
pub struct PlatformKey(pub Credential);

/// Whether `c` is an online platform's integration key.
pub fn is_platform(c: &Credential) -> bool {
    c.kind == "integration" && matches!(c.channel.as_str(), "app" | "web" | "mini_program")
}

impl FromRequestParts<IngestState> for PlatformKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &IngestState) -> Result<Self, ApiError> {
        let g = state.gate.as_ref().ok_or(ApiError::NotFound)?;
        match authenticate(g, &state.limits, &parts.headers).await? {
            Some(c) if is_platform(&c) => Ok(PlatformKey(c)),
            Some(c) => {
                tracing::warn!(key_id = %c.key_id, kind = %c.kind, channel = %c.channel, "a non-platform key refused");
                Err(ApiError::Forbidden(
                    "仅政务服务平台(app、web、小程序)的对接密钥可报送办件、发出邀请 / only an online platform's \
                     integration key may report service records or issue invitations"
                        .into(),
                ))
            }
            None => Err(ApiError::CredentialInvalid("需要政务服务平台的对接密钥 / a platform key is required".into())),
        }
    }
}

/// Puts the credential's channel and device on the input: they come from the key, and a body
/// that says otherwise is refused.
pub fn apply_credential(cred: &Credential, input: &mut RatingInput) -> Result<(), ApiError> {
    if input.channel.as_deref().is_some_and(|c| c != cred.channel) {
        return Err(ApiError::field(
            "channel",
            "credential_mismatch",
            format!("评价渠道须与密钥一致({})", cred.channel),
            format!("channel must match the key's channel {}", cred.channel),
        ));
    }
    input.channel = Some(cred.channel.clone());
    if let Some(device) = &cred.device_id {
        if input.device_id.as_deref().is_some_and(|d| d != device) {
            return Err(ApiError::field(
                "device_id",
                "credential_mismatch",
                format!("设备编号须与密钥绑定的设备一致({device})"),
                format!("device_id must match the key's device {device}"),
            ));
        }
        input.device_id = Some(device.clone());
    }
    Ok(())
}

/// The Idempotency-Key header (1–200 visible ASCII characters), if any.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let k = v.to_str().unwrap_or("").trim();
    if k.is_empty() || k.len() > 200 || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::field(
            "Idempotency-Key",
            "invalid",
            "Idempotency-Key 须为 1–200 个可见 ASCII 字符",
            "Idempotency-Key must be 1–200 visible ASCII characters",
        ));
    }
    Ok(Some(k.to_owned()))
}

/// The scope idempotency keys live in: the credential, or anonymous.
pub fn idempotency_scope(cred: Option<&Credential>) -> String {
    cred.map(|c| c.key_id.clone()).unwrap_or_else(|| "-".into())
}

/// A stored answer for this key: the same body replays it, another body is refused.
pub async fn replay(gate: &Gate, scope: &str, key: &str, body: &[u8]) -> Result<Option<IdempotentAnswer>, ApiError> {
    match gate.store.idempotent_answer(scope, key).await? {
        Some(a) if a.body_sha256 == Sha256::digest(body).as_slice() => Ok(Some(a)),
        Some(_) => Err(ApiError::IdempotencyKeyReused),
        None => Ok(None),
    }
}

/// Stores the answer of a request made with an Idempotency-Key (retryable answers are never
/// given here: see [`ApiError::is_retryable`]; a 5xx is not stored either way, so the retry can
/// still succeed).
pub async fn remember(gate: &Gate, scope: &str, key: &str, body: &[u8], status: u16, response: serde_json::Value) {
    if status >= 500 {
        return;
    }
    let answer = IdempotentAnswer { body_sha256: Sha256::digest(body).to_vec(), status, response };
    if let Err(e) = gate.store.save_idempotent_answer(scope, key, &answer).await {
        tracing::warn!(error = %e, "idempotent answer not stored; a retry will be processed again");
    }
}
