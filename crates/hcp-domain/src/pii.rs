//! The rater's identity (docs/domain.md §2, 国办发〔2019〕51号: personal information protected, query
//! access restricted; the rated staff member never sees who rated them).
//!
//! A rater may give a name, a phone number and an ID number (a resident ID for a person, the unified
//! social credit code for a legal person). Ingest validates them ([`RaterInput::check`]) and seals
//! them with AES-256-GCM ([`PiiCipher`]) before the rating reaches Kafka; what travels and is stored
//! is a [`SealedRater`]: the masked forms (`138****1234`) and one ciphertext. Only a holder of the
//! key (the callback role's view, which is audited) opens it. The nonce comes from the caller, so
//! this module stays pure.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::directory::uscc_is_valid;
use crate::FieldError;

/// The rater's identity as a channel posts it (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RaterInput {
    /// 1 person (default), 2 legal person (national `userProp`).
    pub user_prop: Option<i64>,
    /// Name (`userName`).
    pub name: Option<String>,
    /// Mobile (11 digits) or landline (`0755-12345678`).
    #[cfg_attr(feature = "openapi", schema(example = "13812341234"))]
    pub phone: Option<String>,
    /// Resident ID number (18 characters, GB 11643) or, for a legal person, the credit code.
    pub id_number: Option<String>,
}

/// The identity in clear, as sealed and as shown to the callback role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RaterIdentity {
    /// Name.
    pub name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// ID number.
    pub id_number: Option<String>,
}

/// The identity as it travels and is stored: masked forms plus the AES-256-GCM ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SealedRater {
    /// 1 person, 2 legal person.
    pub user_prop: u8,
    /// `张*`.
    pub name_masked: Option<String>,
    /// `138****1234`.
    pub phone_masked: Option<String>,
    /// `110***********123X`.
    pub id_masked: Option<String>,
    /// Staff members whose registered phone is the rater's (anti-gaming; set by ingest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staff_ids: Vec<String>,
    /// Which key sealed it.
    pub key_id: String,
    /// base64 of the 12-byte nonce followed by the ciphertext of the JSON identity.
    pub sealed: String,
}

impl SealedRater {
    /// The masked view every API shows (no ciphertext).
    pub fn masked(&self) -> MaskedRater {
        MaskedRater {
            user_prop: self.user_prop,
            name: self.name_masked.clone(),
            phone: self.phone_masked.clone(),
            id_number: self.id_masked.clone(),
        }
    }
}

/// The rater as API responses show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaskedRater {
    /// 1 person, 2 legal person.
    pub user_prop: u8,
    /// Masked name.
    pub name: Option<String>,
    /// Masked phone, `138****1234`.
    pub phone: Option<String>,
    /// Masked ID number.
    pub id_number: Option<String>,
}

/// Keeps `keep_start` leading and `keep_end` trailing characters and stars the rest.
pub fn mask(s: &str, keep_start: usize, keep_end: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= keep_start + keep_end {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..keep_start].iter().collect();
    out.push_str(&"*".repeat(chars.len() - keep_start - keep_end));
    out.extend(&chars[chars.len() - keep_end..]);
    out
}

/// The check character of an 18-character resident ID number (GB 11643-1999).
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, w) in first17.chars().zip(WEIGHTS) {
        sum += c.to_digit(10)? * w;
    }
    Some(CHECK[(sum % 11) as usize])
}

fn is_resident_id(s: &str) -> bool {
    s.len() == 18 && s.is_ascii() && resident_id_check_char(&s[..17]) == s[17..].chars().next()
}

fn is_phone(s: &str) -> bool {
    // Byte offsets below are only character boundaries in ASCII (found by API fuzzing: a
    // multi-byte character at byte 3 panicked `split_at`).
    if !s.is_ascii() {
        return false;
    }
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if s.len() == 11 && s.starts_with('1') && digits(s) {
        return true;
    }
    // Landline: 0 + 2–3 digit area code, optional '-', 7–8 digits.
    let (area, local) = match s.split_once('-') {
        Some((a, l)) => (a, l),
        None if s.len() >= 10 => s.split_at(if s.len() == 12 { 4 } else { 3 }),
        None => return false,
    };
    area.starts_with('0')
        && (3..=4).contains(&area.len())
        && digits(area)
        && (7..=8).contains(&local.len())
        && digits(local)
}

fn field_err(field: &str, code: &'static str, zh: &str, en: &str) -> FieldError {
    FieldError::new(format!("rater.{field}"), code, zh, en)
}

/// A phone number as stored: spaces removed, then a mobile (11 digits) or a landline with its
/// area code; otherwise the error names `field`.
pub fn normalize_phone(field: &str, phone: &str) -> Result<String, FieldError> {
    let p: String = phone.chars().filter(|c| !c.is_whitespace()).collect();
    if is_phone(&p) {
        Ok(p)
    } else {
        Err(FieldError::new(
            field,
            "invalid",
            "电话号码格式不正确(11 位手机号或带区号的固定电话)",
            "phone must be an 11-digit mobile number or a landline with its area code",
        ))
    }
}

impl RaterInput {
    /// Validates the identity: user_prop 1 or 2; a mobile or landline phone; an ID number that is
    /// a valid resident ID (person) or credit code (legal person); a name of at most 50
    /// characters. Blank fields count as absent.
    pub fn check(self) -> Result<(u8, RaterIdentity), Vec<FieldError>> {
        let mut errors = Vec::new();
        let user_prop = match self.user_prop {
            None | Some(1) => 1,
            Some(2) => 2,
            Some(n) => {
                errors.push(field_err(
                    "user_prop",
                    "out_of_range",
                    &format!("评价人类型须为 1(个人)或 2(法人),收到 {n}"),
                    &format!("user_prop must be 1 (person) or 2 (legal person), got {n}"),
                ));
                1
            }
        };
        let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let (name, id_number) = (clean(self.name), clean(self.id_number));
        // People type numbers with spaces ("138 1234 1234"): those are not part of it.
        let phone = match clean(self.phone).map(|p| normalize_phone("rater.phone", &p)).transpose() {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if let Some(n) = &name {
            if n.chars().count() > 50 || n.chars().any(char::is_control) {
                errors.push(field_err(
                    "name",
                    "invalid",
                    "姓名须为不超过 50 个字符的文字",
                    "name must be text of at most 50 characters",
                ));
            }
        }
        if let Some(id) = &id_number {
            let ok = if user_prop == 2 { uscc_is_valid(id) } else { is_resident_id(&id.to_ascii_uppercase()) };
            if !ok {
                errors.push(field_err(
                    "id_number",
                    "invalid",
                    if user_prop == 2 {
                        "统一社会信用代码无效(校验位不符)"
                    } else {
                        "身份证号码无效(18 位,校验位不符)"
                    },
                    if user_prop == 2 {
                        "id_number is not a valid unified social credit code"
                    } else {
                        "id_number is not a valid 18-character resident ID number"
                    },
                ));
            }
        }
        if errors.is_empty() {
            Ok((user_prop, RaterIdentity { name, phone, id_number: id_number.map(|s| s.to_ascii_uppercase()) }))
        } else {
            Err(errors)
        }
    }
}

/// AES-256-GCM over the rater's identity, with a key id so keys can rotate (old keys open,
/// the current one seals).
#[derive(Clone)]
pub struct PiiCipher {
    key_id: String,
    current: Aes256Gcm,
    older: Vec<(String, Aes256Gcm)>,
    digest_key: [u8; 32],
}

impl std::fmt::Debug for PiiCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiCipher").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Additional authenticated data: binds the ciphertext to its purpose.
const AAD: &[u8] = b"hcp.rater.v1";

impl PiiCipher {
    /// Parses `id:base64key[,id:base64key…]` (the first seals; all open). A key is 32 bytes.
    pub fn from_spec(spec: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        let mut digest_key = None;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, b64) = part.split_once(':').ok_or("each key is id:base64 (32 bytes)")?;
            let bytes = B64.decode(b64.trim()).map_err(|e| format!("key {id}: not base64: {e}"))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| format!("key {id}: must be 32 bytes"))?;
            // Phone digests use a key derived from the first (current) key, never the key itself.
            digest_key.get_or_insert_with(|| {
                let mut h = Sha256::new();
                h.update(b"hcp.phone-digest.v1");
                h.update(&bytes);
                <[u8; 32]>::from(h.finalize())
            });
            keys.push((id.trim().to_owned(), cipher));
        }
        let mut it = keys.into_iter();
        let (key_id, current) = it.next().ok_or("no key given")?;
        Ok(PiiCipher { key_id, current, older: it.collect(), digest_key: digest_key.expect("set with the first key") })
    }

    /// A keyed digest of a phone number (digits only), to match without storing it readable.
    pub fn phone_digest(&self, phone: &str) -> Vec<u8> {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.digest_key).expect("HMAC takes any key length");
        m.update(digits.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// The keyed digest of a platform's user id (我的业务): the phone digests' key in another
    /// domain, so a user id's digest never equals a phone's.
    pub fn user_digest(&self, user_id: &str) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.digest_key).expect("HMAC takes any key length");
        m.update(b"platform-user\x1f");
        m.update(user_id.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// The id of the sealing key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `identity` with a fresh 12-byte `nonce` (never reuse one with the same key).
    pub fn seal(&self, user_prop: u8, identity: &RaterIdentity, nonce: [u8; 12]) -> SealedRater {
        let plain = serde_json::to_vec(identity).expect("an identity always serializes");
        let ct = self
            .current
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: AAD })
            .expect("AES-GCM encryption of a small buffer cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend(ct);
        SealedRater {
            user_prop,
            name_masked: identity.name.as_deref().map(|n| mask(n, 1, 0)),
            phone_masked: identity.phone.as_deref().map(|p| mask(p, 3, 4)),
            id_masked: identity.id_number.as_deref().map(|i| mask(i, 3, 4)),
            staff_ids: Vec::new(),
            key_id: self.key_id.clone(),
            sealed: B64.encode(blob),
        }
    }

    /// Opens a sealed identity (any configured key).
    pub fn open(&self, sealed: &SealedRater) -> Result<RaterIdentity, String> {
        let cipher = if sealed.key_id == self.key_id {
            &self.current
        } else {
            &self
                .older
                .iter()
                .find(|(id, _)| *id == sealed.key_id)
                .ok_or_else(|| format!("unknown key id {}", sealed.key_id))?
                .1
        };
        let blob = B64.decode(&sealed.sealed).map_err(|_| "sealed identity is not base64".to_owned())?;
        if blob.len() < 12 + 16 {
            return Err("sealed identity is too short".into());
        }
        let plain = cipher
            .decrypt(Nonce::from_slice(&blob[..12]), Payload { msg: &blob[12..], aad: AAD })
            .map_err(|_| "sealed identity does not authenticate with this key".to_owned())?;
        serde_json::from_slice(&plain).map_err(|e| format!("sealed identity is not valid JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> PiiCipher {
        PiiCipher::from_spec(&format!("k2:{},k1:{}", B64.encode([7u8; 32]), B64.encode([9u8; 32]))).unwrap()
    }

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(mask("13812341234", 3, 4), "138****1234");
        assert_eq!(mask("张三丰", 1, 0), "张**");
        assert_eq!(mask("110105199001011237", 3, 4), "110***********1237");
        assert_eq!(mask("123", 3, 4), "***");
    }

    #[test]
    fn resident_ids_are_checked() {
        assert_eq!(resident_id_check_char("11010519491231002"), Some('X'));
        let ok = RaterInput { id_number: Some("11010519491231002x".into()), ..Default::default() }.check();
        assert_eq!(ok.unwrap().1.id_number.as_deref(), Some("11010519491231002X"));
        let bad = RaterInput { id_number: Some("110105194912310021".into()), ..Default::default() }.check();
        assert_eq!(bad.unwrap_err()[0].field, "rater.id_number");
    }

    #[test]
    fn phones_are_stored_without_spaces() {
        let ok = RaterInput { phone: Some(" 138 1234 1234 ".into()), ..Default::default() }.check();
        assert_eq!(ok.unwrap().1.phone.as_deref(), Some("13812341234"));
    }

    #[test]
    fn phones_mobile_and_landline() {
        for ok in ["13812341234", "0755-12345678", "010-1234567", "075512345678"] {
            assert!(is_phone(ok), "{ok}");
        }
        // The last two: multi-byte characters where the landline split falls (a panic once).
        let fuzzed = "\u{e1}\u{644e3}*A\u{7d3f5}\u{271b2}\u{d8}>\u{48215}\u{c2}";
        for bad in ["1381234123", "23812341234", "0755-123", "phone", "755-12345678", fuzzed, "01\u{80}234567890"] {
            assert!(!is_phone(bad), "{bad}");
            assert!(normalize_phone("phone", bad).is_err());
        }
    }

    #[test]
    fn seal_then_open_round_trips_and_masks() {
        let c = cipher();
        let id = RaterIdentity {
            name: Some("张三".into()),
            phone: Some("13812341234".into()),
            id_number: Some("11010519491231002X".into()),
        };
        let sealed = c.seal(1, &id, [1; 12]);
        assert_eq!(sealed.phone_masked.as_deref(), Some("138****1234"));
        assert_eq!(sealed.name_masked.as_deref(), Some("张*"));
        assert!(!sealed.sealed.contains("13812341234"));
        assert_eq!(c.open(&sealed).unwrap(), id);
    }

    #[test]
    fn older_keys_open_and_tampering_is_refused() {
        let c = cipher();
        let old = PiiCipher::from_spec(&format!("k1:{}", B64.encode([9u8; 32]))).unwrap();
        let id = RaterIdentity { phone: Some("13812341234".into()), ..Default::default() };
        let sealed = old.seal(1, &id, [3; 12]);
        assert_eq!(c.open(&sealed).unwrap(), id);
        let mut tampered = sealed.clone();
        let mut blob = B64.decode(&tampered.sealed).unwrap();
        blob[14] ^= 1;
        tampered.sealed = B64.encode(blob);
        assert!(c.open(&tampered).is_err());
        let mut unknown = sealed;
        unknown.key_id = "k9".into();
        assert!(c.open(&unknown).is_err());
        assert!(PiiCipher::from_spec("k1:c2hvcnQ=").is_err());
    }

    #[test]
    fn user_digests_are_keyed_and_never_a_phones() {
        let c = cipher();
        assert_eq!(c.user_digest("u-1"), c.user_digest("u-1"));
        assert_ne!(c.user_digest("u-1"), c.user_digest("u-2"));
        assert_ne!(c.user_digest("13812341234"), c.phone_digest("13812341234"));
        let other = PiiCipher::from_spec(&format!("k1:{}", B64.encode([9u8; 32]))).unwrap();
        assert_ne!(c.user_digest("u-1"), other.user_digest("u-1"));
    }

    #[test]
    fn phone_digests_match_formats_and_depend_on_the_key() {
        let c = cipher();
        assert_eq!(c.phone_digest("138 1234 1234"), c.phone_digest("13812341234"));
        assert_ne!(c.phone_digest("13812341234"), c.phone_digest("13812341235"));
        let other = PiiCipher::from_spec(&format!("k1:{}", B64.encode([9u8; 32]))).unwrap();
        assert_ne!(c.phone_digest("13812341234"), other.phone_digest("13812341234"));
    }
}
