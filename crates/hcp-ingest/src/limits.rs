//! Rate limits: per channel key, by its kind (a device cannot press faster than people are
//! served; the 12345 hotline or another integration has its own budget; one online platform
//! carries the online ratings of millions of citizens) or the key's own limit, and per client
//! address on the citizen's invitation endpoints. Over the limit is `429 /problems/rate-limited`
//! with `Retry-After`; nothing is recorded. Sizing: docs/channels.md "Rate limits".

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use hcp_http::ApiError;
use hcp_store::Credential;

use crate::gate::is_platform;
use crate::metrics;

/// The default limits per key kind, in requests a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    /// A window evaluator's or a self-service terminal's key.
    pub device: u32,
    /// An integration key that is not an online platform's (the 12345 hotline).
    pub integration: u32,
    /// An online platform's integration key (app, web, mini-program).
    pub platform: u32,
}

impl KeyLimits {
    /// The limit of `c`: its own when set, else its kind's.
    pub fn of(&self, c: &Credential) -> u32 {
        if let Some(own) = c.rate_limit.and_then(|n| u32::try_from(n).ok()) {
            return own.max(1);
        }
        if c.kind == "device" {
            self.device
        } else if is_platform(c) {
            self.platform
        } else {
            self.integration
        }
    }
}

/// One key's limiter with the rate it was made for (a changed rate makes a new one).
struct KeyBucket {
    per_sec: u32,
    limiter: DefaultDirectRateLimiter,
    last_used: Instant,
}

/// The limiters (in memory, per process: each replica enforces its share).
#[derive(Clone)]
pub struct Limits {
    /// The kinds' defaults.
    pub keys: KeyLimits,
    per_key: Arc<Mutex<HashMap<String, KeyBucket>>>,
    per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

/// A quota of `n` a second with a burst of the same size.
fn quota(n: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(n.max(1)).expect("at least 1"))
}

impl Limits {
    /// Keys limited by `keys` (or their own limit), `per_ip` requests a second per address on
    /// invitation endpoints.
    pub fn new(keys: KeyLimits, per_ip: u32) -> Limits {
        Limits { keys, per_key: Arc::default(), per_ip: Arc::new(RateLimiter::keyed(quota(per_ip))) }
    }

    fn refuse(wait: governor::NotUntil<governor::clock::QuantaInstant>, what: &'static str) -> ApiError {
        metrics::RATE_LIMITED.with_label_values(&[what]).inc();
        let secs = wait.wait_time_from(DefaultClock::default().now()).as_secs_f64().ceil() as u64;
        ApiError::RateLimited(secs.max(1))
    }

    /// One request with key `c`, under its limit ([`KeyLimits::of`]).
    pub fn check_key(&self, c: &Credential) -> Result<(), ApiError> {
        let per_sec = self.keys.of(c);
        let mut buckets = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(c.key_id.clone()).or_insert_with(|| KeyBucket {
            per_sec,
            limiter: RateLimiter::direct(quota(per_sec)),
            last_used: Instant::now(),
        });
        if bucket.per_sec != per_sec {
            // An admin changed the key's limit: it holds from this request.
            *bucket = KeyBucket { per_sec, limiter: RateLimiter::direct(quota(per_sec)), last_used: Instant::now() };
        }
        bucket.last_used = Instant::now();
        bucket.limiter.check().map_err(|w| Self::refuse(w, "key"))
    }

    /// One request from `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.per_ip.check_key(&ip).map_err(|w| Self::refuse(w, "ip"))
    }

    /// Forgets idle keys and addresses (call now and then): a key unused for a minute has its
    /// whole burst back anyway, so a fresh limiter is the same.
    pub fn shrink(&self) {
        let idle = Instant::now() - Duration::from_secs(60);
        self.per_key.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, b| b.last_used > idle);
        self.per_ip.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, channel: &str, own: Option<i32>) -> Credential {
        Credential {
            key_id: format!("{kind}-{channel}"),
            kind: kind.into(),
            channel: channel.into(),
            device_id: None,
            hall_id: None,
            window_id: None,
            name: String::new(),
            created_at: chrono::Utc::now(),
            revoked_at: None,
            last_used_at: None,
            rate_limit: own,
            secret_sha256: Vec::new(),
        }
    }

    #[test]
    fn a_key_has_its_kinds_limit_unless_it_has_its_own() {
        let k = KeyLimits { device: 10, integration: 100, platform: 2000 };
        assert_eq!(k.of(&key("device", "window_evaluator", None)), 10);
        assert_eq!(k.of(&key("integration", "hotline", None)), 100);
        for platform in ["app", "web", "mini_program"] {
            assert_eq!(k.of(&key("integration", platform, None)), 2000);
        }
        assert_eq!(k.of(&key("integration", "web", Some(50_000))), 50_000);
        assert_eq!(k.of(&key("device", "window_evaluator", Some(1))), 1);
    }

    #[test]
    fn a_changed_limit_holds_from_the_next_request() {
        let limits = Limits::new(KeyLimits { device: 1, integration: 1, platform: 1 }, 1);
        let mut c = key("device", "window_evaluator", None);
        assert!(limits.check_key(&c).is_ok());
        assert!(matches!(limits.check_key(&c), Err(ApiError::RateLimited(_))), "over 1/s");
        c.rate_limit = Some(3);
        for _ in 0..3 {
            assert!(limits.check_key(&c).is_ok(), "a new bucket of 3");
        }
        assert!(limits.check_key(&c).is_err());
        limits.shrink();
        assert_eq!(limits.per_key.lock().unwrap().len(), 1, "a key used now is kept");
    }
}
