//! Standard Webhooks (standardwebhooks.com) signing: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
//! endpoint's secret `whsec_<base64>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret as shown to the endpoint's owner.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret (`whsec_` + base64 of the 32 given random bytes).
pub fn secret_from_bytes(bytes: [u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// The `webhook-signature` header value of a message; `None` for a malformed secret.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = B64.decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret)).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The event type of a work-order transition (`workorder.claim`, `workorder.open`, …).
pub fn workorder_event_type(action: &str) -> String {
    format!("workorder.{action}")
}

/// Whether an endpoint subscribed to `patterns` (`*`, `workorder.*` or exact types) gets
/// `event_type`.
pub fn subscribed(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event_type
            || p.strip_suffix(".*").is_some_and(|prefix| event_type.starts_with(&format!("{prefix}.")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(sign("whsec_not base64!", "m", 1, b"x"), None);
    }

    #[test]
    fn subscriptions() {
        let s = |p: &[&str]| p.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(subscribed(&s(&["*"]), "workorder.claim"));
        assert!(subscribed(&s(&["workorder.*"]), "workorder.claim"));
        assert!(subscribed(&s(&["workorder.claim"]), "workorder.claim"));
        assert!(!subscribed(&s(&["workorder.close"]), "workorder.claim"));
        assert!(!subscribed(&s(&["alert.*"]), "workorder.claim"));
        assert!(!subscribed(&s(&["workorder.*"]), "workorders.x"));
    }
}
