//! Configuration, read from the environment (12-factor) with defaults for a local run.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use hcp_bus::{KafkaConfig, Topics};
use hcp_domain::PiiCipher;
use hcp_http::SessionKey;

/// Everything a process needs to know, from `DATABASE_URL`, `KAFKA_BROKERS`, `HCP_*`.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `KAFKA_BROKERS` (default `127.0.0.1:9092`).
    pub kafka_brokers: String,
    /// `HCP_HTTP_ADDR` (default `127.0.0.1:8080`).
    pub http_addr: SocketAddr,
    /// `HCP_TOPIC_PREFIX` (default empty): namespaces topics on a shared broker.
    pub topic_prefix: String,
    /// `HCP_PRODUCE_TIMEOUT_MS` (default 5000): the longest ingest waits for the broker.
    pub produce_timeout: Duration,
    /// `HCP_REQUEST_TIMEOUT_SECS` (default 30): the longest any request may take (503
    /// `request-timeout` after it); never less than the produce timeout + 5 s.
    pub request_timeout: Duration,
    /// `HCP_AGGREGATOR_GROUP` (default `hcp-aggregator`).
    pub aggregator_group: String,
    /// `HCP_KAFKA_DEBUG` (e.g. `cgrp,fetch`): librdkafka's debug contexts, for diagnosing a broker.
    pub kafka_debug: Option<String>,
    /// `HCP_DB_POOL` (default 16).
    pub db_pool: u32,
    /// `HCP_THREE_IS_NEUTRAL` = `1` counts 基本满意 as neutral instead of good.
    pub three_is_neutral: bool,
    /// `HCP_STAFF_MIN_RATINGS` (default 5): fewest ratings for a staff member to be ranked.
    pub staff_min_ratings: i64,
    /// `HCP_PII_KEY` = `id:base64(32 bytes)[,older…]`: seals raters' identities (AES-256-GCM).
    /// Without it, ratings carrying an identity are refused (503) and nobody can view one.
    pub pii: Option<PiiCipher>,
    /// `HCP_SESSION_KEY` (base64, ≥ 32 bytes): signs operator sessions. Without it a random key
    /// is used: sessions end with the process and do not cross replicas.
    pub session_key: Option<SessionKey>,
    /// `HCP_PUBLIC_URL` (default `http://` + `HCP_HTTP_ADDR`): base of the links sent to raters.
    pub public_url: String,
    /// `HCP_SWEEP_INTERVAL_SECS` (default 60): how often overdue work orders are swept.
    pub sweep_interval: Duration,
    /// `HCP_RELAY_INTERVAL_MS` (default 500): how often work-order events are relayed to Kafka.
    pub relay_interval: Duration,
    /// `HCP_WEBHOOK_RETRY_BASE_MS` (default 10000): the first webhook retry's delay (then 4×
    /// longer each time, at most an hour, 12 attempts).
    pub webhook_retry_base: Duration,
    /// `HCP_ALERT_INTERVAL_SECS` (default 30): how often alert rules are evaluated.
    pub alert_interval: Duration,
    /// `HCP_INGEST_AUTH` = `required` (default) or `optional`: whether every rating needs a
    /// channel key. `optional` (local demos, load tests) still refuses unknown or revoked keys.
    pub ingest_auth_required: bool,
    /// `HCP_INVITATION_KEY`: `id:base64[,id:base64…]` (or one bare base64 key), each ≥ 32 bytes;
    /// the first signs invitation links, all verify (rotation). Without it a random key is used
    /// (links die with the process).
    pub invitation_key: Option<hcp_ingest::invitations::InvitationKeys>,
    /// `HCP_INVITATION_DAYS` (default 7): how long an invitation link stays valid.
    pub invitation_days: u32,
    /// `HCP_SMS_ON_EVENTS` (default `true`): send an SMS invitation when the platform reports an
    /// acceptance or pickup with the applicant's phone.
    pub sms_on_events: bool,
    /// `HCP_DEFAULT_RATING_INTERVAL_SECS` (default 600): how often due default ratings are made.
    pub default_rating_interval: Duration,
    /// `HCP_EXCLUDE_FLAGGED_PRESSES` = `1`: leave ratings with anti-gaming flags out of the
    /// statistics (default: counted and listed for review).
    pub exclude_flagged_presses: bool,
    /// `HCP_RATE_LIMIT_PER_KEY` (default 100): requests a second per channel key.
    pub rate_limit_per_key: u32,
    /// `HCP_RATE_LIMIT_PER_IP` (default 5): requests a second per address on `/api/v1/r/*`.
    pub rate_limit_per_ip: u32,
    /// `HCP_FOLLOW_UP_DAYS` (default 15): a follow-up (追评) is accepted this long after the first.
    pub follow_up_days: u32,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Config {
            database_url: var("DATABASE_URL").unwrap_or_else(|| "postgres://hcp@127.0.0.1:5439/hcp".into()),
            kafka_brokers: var("KAFKA_BROKERS").unwrap_or_else(|| "127.0.0.1:9092".into()),
            http_addr: var("HCP_HTTP_ADDR")
                .unwrap_or_else(|| "127.0.0.1:8080".into())
                .parse()
                .context("HCP_HTTP_ADDR must be host:port")?,
            topic_prefix: var("HCP_TOPIC_PREFIX").unwrap_or_default(),
            produce_timeout: Duration::from_millis(
                var("HCP_PRODUCE_TIMEOUT_MS")
                    .map(|v| v.parse())
                    .transpose()
                    .context("HCP_PRODUCE_TIMEOUT_MS")?
                    .unwrap_or(5000),
            ),
            request_timeout: Duration::from_secs(
                var("HCP_REQUEST_TIMEOUT_SECS")
                    .map(|v| v.parse())
                    .transpose()
                    .context("HCP_REQUEST_TIMEOUT_SECS")?
                    .unwrap_or(30),
            ),
            aggregator_group: var("HCP_AGGREGATOR_GROUP").unwrap_or_else(|| "hcp-aggregator".into()),
            kafka_debug: var("HCP_KAFKA_DEBUG").filter(|v| !v.is_empty()),
            db_pool: var("HCP_DB_POOL").map(|v| v.parse()).transpose().context("HCP_DB_POOL")?.unwrap_or(16),
            three_is_neutral: var("HCP_THREE_IS_NEUTRAL").is_some_and(|v| v == "1" || v == "true"),
            staff_min_ratings: var("HCP_STAFF_MIN_RATINGS")
                .map(|v| v.parse())
                .transpose()
                .context("HCP_STAFF_MIN_RATINGS")?
                .unwrap_or(5),
            pii: var("HCP_PII_KEY")
                .map(|v| PiiCipher::from_spec(&v))
                .transpose()
                .map_err(|e| anyhow::anyhow!("HCP_PII_KEY: {e}"))?,
            session_key: var("HCP_SESSION_KEY")
                .map(|v| SessionKey::from_base64(&v))
                .transpose()
                .map_err(|e| anyhow::anyhow!("HCP_SESSION_KEY: {e}"))?,
            public_url: var("HCP_PUBLIC_URL").unwrap_or_else(|| {
                format!("http://{}", var("HCP_HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into()))
            }),
            sweep_interval: Duration::from_secs(
                var("HCP_SWEEP_INTERVAL_SECS")
                    .map(|v| v.parse())
                    .transpose()
                    .context("HCP_SWEEP_INTERVAL_SECS")?
                    .unwrap_or(60)
                    .max(1),
            ),
            alert_interval: Duration::from_secs(
                var("HCP_ALERT_INTERVAL_SECS")
                    .map(|v| v.parse())
                    .transpose()
                    .context("HCP_ALERT_INTERVAL_SECS")?
                    .unwrap_or(30)
                    .max(1),
            ),
            webhook_retry_base: Duration::from_millis(
                var("HCP_WEBHOOK_RETRY_BASE_MS")
                    .map(|v| v.parse())
                    .transpose()
                    .context("HCP_WEBHOOK_RETRY_BASE_MS")?
                    .unwrap_or(10_000)
                    .max(10),
            ),
            relay_interval: Duration::from_millis(
                var("HCP_RELAY_INTERVAL_MS")
                    .map(|v| v.parse())
                    .transpose()
                    .context("HCP_RELAY_INTERVAL_MS")?
                    .unwrap_or(500)
                    .max(10),
            ),
            invitation_key: var("HCP_INVITATION_KEY")
                .map(|v| {
                    hcp_ingest::invitations::InvitationKeys::parse(&v)
                        .map_err(|e| anyhow::anyhow!("HCP_INVITATION_KEY: {e}"))
                })
                .transpose()?,
            invitation_days: var("HCP_INVITATION_DAYS")
                .map(|v| v.parse())
                .transpose()
                .context("HCP_INVITATION_DAYS")?
                .unwrap_or(7)
                .clamp(1, 90),
            rate_limit_per_key: var("HCP_RATE_LIMIT_PER_KEY")
                .map(|v| v.parse())
                .transpose()
                .context("HCP_RATE_LIMIT_PER_KEY")?
                .unwrap_or(100),
            rate_limit_per_ip: var("HCP_RATE_LIMIT_PER_IP")
                .map(|v| v.parse())
                .transpose()
                .context("HCP_RATE_LIMIT_PER_IP")?
                .unwrap_or(5),
            follow_up_days: var("HCP_FOLLOW_UP_DAYS")
                .map(|v| v.parse())
                .transpose()
                .context("HCP_FOLLOW_UP_DAYS")?
                .unwrap_or(15)
                .clamp(1, 365),
            exclude_flagged_presses: var("HCP_EXCLUDE_FLAGGED_PRESSES").is_some_and(|v| v == "1" || v == "true"),
            sms_on_events: var("HCP_SMS_ON_EVENTS").is_none_or(|v| v != "false" && v != "0"),
            default_rating_interval: Duration::from_secs(
                var("HCP_DEFAULT_RATING_INTERVAL_SECS")
                    .map(|v| v.parse())
                    .transpose()
                    .context("HCP_DEFAULT_RATING_INTERVAL_SECS")?
                    .unwrap_or(600)
                    .max(1),
            ),
            ingest_auth_required: match var("HCP_INGEST_AUTH").as_deref() {
                None | Some("required") => true,
                Some("optional") => false,
                Some(other) => anyhow::bail!("HCP_INGEST_AUTH must be required or optional, got {other:?}"),
            },
        })
    }

    /// The Kafka client settings.
    pub fn kafka(&self) -> KafkaConfig {
        let mut k = KafkaConfig::new(&self.kafka_brokers);
        k.produce_timeout = self.produce_timeout;
        k.debug = self.kafka_debug.clone();
        k
    }

    /// The topic names.
    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }
}

/// Which parts of the pipeline a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Components {
    /// `POST /api/v1/ratings`.
    pub ingest: bool,
    /// The Kafka → PostgreSQL consumer.
    pub aggregator: bool,
    /// `GET /api/v1/stats/*`.
    pub board: bool,
    /// The directory admin API, roster and flagged ratings.
    pub directory: bool,
    /// Work orders: sessions, API, console, callback, sweeper, event relay.
    pub workorders: bool,
}

impl Components {
    /// Everything in one process.
    pub const ALL: Components =
        Components { ingest: true, aggregator: true, board: true, directory: true, workorders: true };

    /// Parses `ingest,aggregator,board,directory,workorders` (any subset).
    pub fn parse(list: &str) -> anyhow::Result<Self> {
        let mut c = Components { ingest: false, aggregator: false, board: false, directory: false, workorders: false };
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "ingest" => c.ingest = true,
                "aggregator" => c.aggregator = true,
                "board" => c.board = true,
                "directory" => c.directory = true,
                "workorders" => c.workorders = true,
                other => anyhow::bail!(
                    "unknown component {other:?} (expected ingest, aggregator, board, directory, workorders)"
                ),
            }
        }
        anyhow::ensure!(c.ingest || c.aggregator || c.board || c.directory || c.workorders, "no component selected");
        Ok(c)
    }
}
