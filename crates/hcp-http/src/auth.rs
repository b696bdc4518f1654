//! Who is calling: operator sessions and the [`Caller`] extractor, enforced in one place.
//!
//! A login (checked against an argon2 password hash) yields a session token: the caller's claims
//! (account, role, department or region, expiry) as base64url JSON, a dot, and their HMAC-SHA256
//! under the server's session key. The token travels as `Authorization: Bearer …` or the
//! `hcp_session` cookie (HttpOnly, SameSite=Strict, and Secure when the public URL is https) the
//! login sets. A token names its server-side session (`sid`): the access layer admits it only
//! while that session is live ([`crate::registry`]), so logout and account changes end it.
//! Sessions last [`SESSION_HOURS`].

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hcp_domain::Role;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ApiError;

/// How long a session lasts.
pub const SESSION_HOURS: i64 = 8;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hcp_session";

/// What a session token asserts about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Claims {
    /// Account name.
    pub sub: String,
    /// Shown name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// A handler's department.
    pub department_id: Option<String>,
    /// A supervisor's region.
    pub region_code: Option<String>,
    /// A staff account's staff member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// The server-side session this token belongs to.
    pub sid: uuid::Uuid,
}

/// The HMAC key that signs sessions.
#[derive(Clone)]
pub struct SessionKey(Vec<u8>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A key from base64 (at least 32 bytes).
    pub fn from_base64(b64: &str) -> Result<Self, String> {
        let bytes = STANDARD.decode(b64.trim()).map_err(|e| format!("session key is not base64: {e}"))?;
        if bytes.len() < 32 {
            return Err("session key must be at least 32 bytes".into());
        }
        Ok(SessionKey(bytes))
    }

    /// A random key (sessions then end with the process and do not cross replicas).
    pub fn random() -> Self {
        use rand::RngCore;
        let mut k = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        SessionKey(k)
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(data);
        m
    }

    /// Signs `claims` into a token.
    pub fn issue(&self, claims: &Claims) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let tag = URL_SAFE_NO_PAD.encode(self.mac(body.as_bytes()).finalize().into_bytes());
        format!("{body}.{tag}")
    }

    /// The claims of a genuine, unexpired token.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<Claims> {
        let (body, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(body.as_bytes()).verify_slice(&tag).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (claims.exp > now.timestamp()).then_some(claims)
    }
}

/// The expiry of a session issued at `now`.
pub fn session_expiry(now: DateTime<Utc>) -> i64 {
    (now + Duration::hours(SESSION_HOURS)).timestamp()
}

/// The bearer token of monitoring (`HCP_METRICS_TOKEN`): when set, `/metrics` answers only to it
/// and `/readyz` shows its dependency details only to it. Compared as SHA-256 digests, so the
/// time a comparison takes says nothing about the token.
#[derive(Clone)]
pub struct MonitoringToken([u8; 32]);

impl std::fmt::Debug for MonitoringToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MonitoringToken(..)")
    }
}

impl MonitoringToken {
    /// A token of at least 16 characters.
    pub fn parse(token: &str) -> Result<Self, String> {
        use sha2::Digest;
        let token = token.trim();
        if token.chars().count() < 16 {
            return Err("the metrics token must be at least 16 characters".into());
        }
        Ok(MonitoringToken(Sha256::digest(token.as_bytes()).into()))
    }

    /// Whether the request carries this token as `Authorization: Bearer …`.
    pub fn admits(&self, headers: &axum::http::HeaderMap) -> bool {
        bearer_of(headers).is_some_and(|given| self.matches(given))
    }

    /// Whether `given` is this token (compared in constant time, as digests).
    pub fn matches(&self, given: &str) -> bool {
        use sha2::Digest;
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        digest.iter().zip(self.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// The prefix of every channel key: `hcp_<key id>_<secret>`.
pub const CHANNEL_KEY_PREFIX: &str = "hcp_";

/// A new channel key (device or integration): (key id, the token to hand out once, SHA-256 of
/// its secret — what is stored). The secret is 256 random bits, so a fast hash is enough.
pub fn new_channel_key() -> (String, String, Vec<u8>) {
    use sha2::Digest;
    let id: String = rand::random::<[u8; 8]>().iter().map(|b| format!("{b:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = Sha256::digest(secret.as_bytes()).to_vec();
    (id.clone(), format!("{CHANNEL_KEY_PREFIX}{id}_{secret}"), hash)
}

/// An argon2id hash (PHC string) of `password`.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default parameters").to_string()
}

/// Whether `password` matches the PHC `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// The authenticated caller of a request: a valid session from `Authorization: Bearer` or the
/// `hcp_session` cookie, else `401 /problems/unauthenticated`.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl Caller {
    /// How far the caller sees; an account without its department (handler) or region
    /// (supervisor) is refused with 403.
    pub fn reach(&self) -> Result<hcp_domain::Reach, ApiError> {
        let c = &self.0;
        hcp_domain::Reach::of(c.role, c.department_id.as_deref(), c.region_code.as_deref())
            .ok_or_else(|| ApiError::Forbidden("账号未关联部门或区域 / the account has no department or region".into()))
    }

    /// Refuses with `403 /problems/forbidden` unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.label_zh()).collect();
            Err(ApiError::Forbidden(format!(
                "需要以下角色之一:{}(当前:{})/ requires one of: {}",
                names.join("、"),
                self.0.role.label_zh(),
                roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            )))
        }
    }
}

/// The token of `Authorization: Bearer …`, if the request has that header in that form.
fn bearer_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The session token of a request: `Authorization: Bearer …`, else the `hcp_session` cookie.
pub(crate) fn token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    if headers.get(header::AUTHORIZATION).is_some_and(|v| v.to_str().is_ok()) {
        return bearer_of(headers);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE).and_then(|r| r.strip_prefix('=')))
}

/// The caller the access layer verified for an operator route ([`crate::Access::Operator`]).
/// On any other route there is none, and asking for one is `401` (never a silent pass).
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or(ApiError::Unauthenticated)
    }
}

/// The `Set-Cookie` value of a session; `secure` (an https public URL) keeps it off plain http.
pub fn session_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_HOURS * 3600)
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_session_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// Whether the request is authenticated by the session cookie (no `Authorization` header, an
/// `hcp_session` cookie): the only kind a browser attaches to a request another site makes.
pub(crate) fn by_cookie(headers: &axum::http::HeaderMap) -> bool {
    !headers.contains_key(header::AUTHORIZATION) && token_of(headers).is_some()
}

/// Whether a request comes from a page of this site: its `Origin` (else its `Referer`'s origin)
/// names the host it was sent to, or the public URL's origin. Browsers send `Origin` with every
/// cross-origin request and every same-origin POST, PUT and DELETE, and scripts cannot forge it.
pub(crate) fn same_origin(headers: &axum::http::HeaderMap, public_origin: Option<&str>) -> bool {
    let origin =
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).filter(|o| *o != "null").map(str::to_owned).or_else(
            || {
                let referer = headers.get(header::REFERER)?.to_str().ok()?;
                let (scheme, rest) = referer.split_once("://")?;
                Some(format!("{scheme}://{}", rest.split('/').next()?))
            },
        );
    let Some(origin) = origin else { return false };
    if public_origin.is_some_and(|p| p.eq_ignore_ascii_case(&origin)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// The origin (`scheme://host[:port]`) of a URL, for [`same_origin`].
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next().filter(|h| !h.is_empty())?;
    Some(format!("{}://{}", scheme.to_ascii_lowercase(), host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "li".into(),
            name: "李经办".into(),
            role: Role::Handler,
            department_id: Some("D1".into()),
            region_code: None,
            staff_id: None,
            exp,
            sid: uuid::Uuid::nil(),
        }
    }

    #[test]
    fn tokens_verify_only_when_genuine_and_fresh() {
        let key = SessionKey::random();
        let now = Utc::now();
        let t = key.issue(&claims(session_expiry(now)));
        assert_eq!(key.verify(&t, now).unwrap().sub, "li");
        assert!(key.verify(&t, now + Duration::hours(SESSION_HOURS + 1)).is_none());
        assert!(SessionKey::random().verify(&t, now).is_none());
        // Changing the role in the body breaks the MAC.
        let (_, tag) = t.split_once('.').unwrap();
        let mut forged = claims(session_expiry(now));
        forged.role = Role::Admin;
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert!(key.verify(&format!("{body}.{tag}"), now).is_none());
        assert!(key.verify("garbage", now).is_none());
    }

    #[test]
    fn the_monitoring_token_admits_only_itself() {
        let token = MonitoringToken::parse("scrape-me-0123456789").unwrap();
        let mut headers = axum::http::HeaderMap::new();
        assert!(!token.admits(&headers));
        headers.insert(header::AUTHORIZATION, "Bearer scrape-me-0123456789".parse().unwrap());
        assert!(token.admits(&headers));
        headers.insert(header::AUTHORIZATION, "Bearer scrape-me-012345678".parse().unwrap());
        assert!(!token.admits(&headers));
        headers.insert(header::AUTHORIZATION, "scrape-me-0123456789".parse().unwrap());
        assert!(!token.admits(&headers));
        assert!(MonitoringToken::parse("short").is_err());
        assert_eq!(format!("{token:?}"), "MonitoringToken(..)");
    }

    #[test]
    fn only_requests_from_this_site_count_as_same_origin() {
        let h = |pairs: &[(header::HeaderName, &str)]| {
            let mut m = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(k.clone(), v.parse().unwrap());
            }
            m
        };
        let host = (header::HOST, "hcp.example.gov.cn");
        assert!(same_origin(&h(&[host.clone(), (header::ORIGIN, "https://hcp.example.gov.cn")]), None));
        assert!(!same_origin(&h(&[host.clone(), (header::ORIGIN, "https://evil.example")]), None));
        assert!(!same_origin(&h(&[host.clone(), (header::ORIGIN, "https://hcp.example.gov.cn.evil.example")]), None));
        assert!(!same_origin(&h(&[host.clone(), (header::ORIGIN, "null")]), None));
        assert!(!same_origin(&h(std::slice::from_ref(&host)), None), "neither Origin nor Referer");
        assert!(same_origin(&h(&[host.clone(), (header::REFERER, "https://hcp.example.gov.cn/console?x=1")]), None));
        assert!(!same_origin(&h(&[host.clone(), (header::REFERER, "https://evil.example/hcp.example.gov.cn")]), None));
        // Behind a proxy that rewrites Host, the public URL's origin.
        let inner = (header::HOST, "10.0.0.5:8080");
        let public = origin_of("https://HCP.example.gov.cn/base").unwrap();
        assert_eq!(public, "https://hcp.example.gov.cn");
        assert!(same_origin(&h(&[inner.clone(), (header::ORIGIN, "https://hcp.example.gov.cn")]), Some(&public)));
        assert!(!same_origin(&h(&[inner, (header::ORIGIN, "http://hcp.example.gov.cn")]), Some(&public)));
    }

    #[test]
    fn cookies_are_secure_on_https() {
        assert!(session_cookie("t", true).ends_with("; Secure"));
        assert!(!session_cookie("t", false).contains("Secure"));
        assert!(clear_session_cookie(true).contains("Max-Age=0; Secure"));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(header::COOKIE, "hcp_session=abc".parse().unwrap());
        assert!(by_cookie(&headers));
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(!by_cookie(&headers));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("s3cret-密码");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret-密码", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
