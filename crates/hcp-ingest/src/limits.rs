//! Rate limits: per channel key (a device cannot press faster than people are served; a platform
//! has its own budget) and per client address on the citizen's invitation endpoints. Over the
//! limit is `429 /problems/rate-limited` with `Retry-After`; nothing is recorded.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hcp_http::ApiError;

use crate::metrics;

/// The limiters (in memory, per process: each replica enforces its share).
#[derive(Clone)]
pub struct Limits {
    per_key: Arc<DefaultKeyedRateLimiter<String>>,
    per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Limits {
    /// `per_key` requests a second per channel key, `per_ip` per address on invitation endpoints
    /// (each with a burst of the same size).
    pub fn new(per_key: u32, per_ip: u32) -> Limits {
        let quota = |n: u32| Quota::per_second(NonZeroU32::new(n.max(1)).expect("at least 1"));
        Limits {
            per_key: Arc::new(RateLimiter::keyed(quota(per_key))),
            per_ip: Arc::new(RateLimiter::keyed(quota(per_ip))),
        }
    }

    fn refuse(wait: governor::NotUntil<governor::clock::QuantaInstant>, what: &'static str) -> ApiError {
        metrics::RATE_LIMITED.with_label_values(&[what]).inc();
        let secs = wait.wait_time_from(DefaultClock::default().now()).as_secs_f64().ceil() as u64;
        ApiError::RateLimited(secs.max(1))
    }

    /// One request with the key `key_id`.
    pub fn check_key(&self, key_id: &str) -> Result<(), ApiError> {
        self.per_key.check_key(&key_id.to_owned()).map_err(|w| Self::refuse(w, "key"))
    }

    /// One request from `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.per_ip.check_key(&ip).map_err(|w| Self::refuse(w, "ip"))
    }

    /// Forgets idle keys (call now and then).
    pub fn shrink(&self) {
        self.per_key.retain_recent();
        self.per_ip.retain_recent();
    }
}
