//! Configuration: one `clap` argument per setting, each read from its environment variable
//! (12-factor) with the default a local run needs. `hcp --help` (and `hcp serve --help`) lists
//! every variable with its default, grouped by the component that reads it; README's table is
//! kept equal to that list by a test. Values derived from settings are methods, not fields.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::{BoolishValueParser, TypedValueParser};
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser};
use hcp_bus::{KafkaConfig, Topics};
use hcp_domain::export::PfMap;
use hcp_domain::sms::QuietHours;
use hcp_domain::{PiiCipher, SatisfactionPolicy};
use hcp_http::{MonitoringToken, SessionKey, TrustedProxies};
use hcp_ingest::invitations::InvitationKeys;

/// The `--help` heading of the settings every component shares.
const SHARED: &str = "Shared settings";

/// Everything a process needs to know, from `DATABASE_URL`, `KAFKA_BROKERS` and `HCP_*`.
///
/// Every setting is also a global command-line option (`--http-addr …`), which wins over its
/// variable. An empty variable counts as unset (see [`Config::from_env`]).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// `production` refuses to serve with a missing key, a key published in the repository or a
    /// demo account; `development` (set by deploy/local/run.sh and test.sh) allows them.
    #[arg(long = "env", global = true, env = "HCP_ENV", default_value = "production", value_enum,
          help_heading = SHARED)]
    pub env: Env,
    /// PostgreSQL connection URL.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = "postgres://hcp@127.0.0.1:5439/hcp",
          hide_env_values = true, help_heading = SHARED)]
    pub database_url: String,
    /// PostgreSQL connections per process.
    #[arg(long, global = true, env = "HCP_DB_POOL", default_value_t = 16, help_heading = SHARED)]
    pub db_pool: u32,
    /// PostgreSQL for the sessions that LISTEN (ingest's key cache, the board's live updates; one
    /// connection each): the primary directly where DATABASE_URL goes through a transaction-pooling
    /// PgBouncer, which delivers no notification. Default: DATABASE_URL.
    #[arg(long, global = true, env = "HCP_DATABASE_LISTEN_URL", hide_env_values = true, help_heading = SHARED)]
    pub database_listen_url: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long, global = true, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092", help_heading = SHARED)]
    pub kafka_brokers: String,
    /// Namespaces topics on a shared broker (tests, tenants).
    #[arg(long, global = true, env = "HCP_TOPIC_PREFIX", default_value = "", help_heading = SHARED)]
    pub topic_prefix: String,
    /// librdkafka debug contexts (e.g. `cgrp,fetch`), for diagnosing a broker.
    #[arg(long, global = true, env = "HCP_KAFKA_DEBUG", help_heading = SHARED)]
    pub kafka_debug: Option<String>,
    /// Listen address of the HTTP server.
    #[arg(long, global = true, env = "HCP_HTTP_ADDR", default_value = "127.0.0.1:8080", help_heading = SHARED)]
    pub http_addr: SocketAddr,
    /// Base of the links sent to raters (invitations, callbacks); default `http://` + the listen address.
    #[arg(long, global = true, env = "HCP_PUBLIC_URL", help_heading = SHARED)]
    pub public_url: Option<String>,
    /// Milliseconds ingest (and every producer) waits for the broker's acknowledgement before a 503.
    #[arg(long = "produce-timeout-ms", global = true, env = "HCP_PRODUCE_TIMEOUT_MS", default_value = "5000",
          value_parser = millis(1), help_heading = SHARED)]
    pub produce_timeout: Duration,
    /// Seconds any request may take before a 503 `request-timeout` (never below the produce timeout + 5 s).
    #[arg(long = "request-timeout-secs", global = true, env = "HCP_REQUEST_TIMEOUT_SECS", default_value = "30",
          value_parser = secs(0), help_heading = SHARED)]
    pub request_timeout: Duration,
    /// `id:base64(32 bytes)[,older-id:key…]`: seals raters' identities (AES-256-GCM; the first seals,
    /// all open). Without it a rating carrying an identity is refused (503) and nobody can view one.
    #[arg(long, global = true, env = "HCP_PII_KEY", hide_env_values = true,
          value_parser = Secret(PiiCipher::from_spec), help_heading = SHARED)]
    pub pii: Option<PiiCipher>,
    /// base64 (≥ 32 bytes) key that signs operator sessions. Without it a random key is used:
    /// sessions end with the process and do not cross replicas.
    #[arg(long, global = true, env = "HCP_SESSION_KEY", hide_env_values = true,
          value_parser = Secret(SessionKey::from_base64), help_heading = SHARED)]
    pub session_key: Option<SessionKey>,
    /// Bearer token (≥ 16 characters) Prometheus sends for `/metrics`; `/readyz` shows its
    /// dependency details only to it. Without it `/metrics` is public (keep it off the internet).
    #[arg(long, global = true, env = "HCP_METRICS_TOKEN", hide_env_values = true,
          value_parser = Secret(MonitoringToken::parse), help_heading = SHARED)]
    pub metrics_token: Option<MonitoringToken>,
    /// Addresses or networks (`10.0.0.0/8,127.0.0.1`) of the proxies in front of hcp: only a request
    /// from one of them may name its client in `X-Forwarded-For` / `Forwarded` (per-address limits).
    #[arg(long, global = true, env = "HCP_TRUSTED_PROXIES", default_value = "",
          value_parser = TrustedProxies::parse, help_heading = SHARED)]
    pub trusted_proxies: TrustedProxies,
    /// Count 基本满意 (grade 3) as neutral instead of good.
    #[arg(long, global = true, env = "HCP_THREE_IS_NEUTRAL", default_value = "false", action = ArgAction::Set,
          value_parser = BoolishValueParser::new(), help_heading = SHARED)]
    pub three_is_neutral: bool,

    /// `required`: every rating needs a channel key; `optional` (local demos, load tests) still
    /// refuses unknown or revoked keys.
    #[arg(long = "ingest-auth", global = true, env = "HCP_INGEST_AUTH", default_value = "required",
          action = ArgAction::Set, value_parser = required_or_optional,
          help_heading = "Component ingest")]
    pub ingest_auth_required: bool,
    /// Requests a second per device key (a window evaluator, a terminal: people are served far
    /// slower; an offline queue is sent as batches). A key's own limit overrides it (429 beyond).
    #[arg(long, global = true, env = "HCP_RATE_LIMIT_DEVICE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100_000), help_heading = "Component ingest")]
    pub rate_limit_device: u32,
    /// Requests a second per integration key that is not an online platform's (the 12345
    /// hotline's system). A key's own limit overrides it.
    #[arg(long, global = true, env = "HCP_RATE_LIMIT_INTEGRATION", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000), help_heading = "Component ingest")]
    pub rate_limit_integration: u32,
    /// Requests a second per online platform's key (app, web, mini-program: one key carries a
    /// province's online ratings, service-record events and 我的业务 lists). A key's own limit
    /// overrides it.
    #[arg(long, global = true, env = "HCP_RATE_LIMIT_PLATFORM", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=100_000), help_heading = "Component ingest")]
    pub rate_limit_platform: u32,
    /// Requests a second per address on the citizen's `/api/v1/r/*`.
    #[arg(long, global = true, env = "HCP_RATE_LIMIT_PER_IP", default_value_t = 5, help_heading = "Component ingest")]
    pub rate_limit_per_ip: u32,
    /// Days after the first rating that a follow-up (追评) is accepted (1–365).
    #[arg(long, global = true, env = "HCP_FOLLOW_UP_DAYS", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=365), help_heading = "Component ingest")]
    pub follow_up_days: u32,
    /// `id:base64[,id:base64…]` (or one bare base64 key), each ≥ 32 bytes: the first signs
    /// invitation links, all verify (rotation). Without it a random key is used (links die with the process).
    #[arg(long, global = true, env = "HCP_INVITATION_KEY", hide_env_values = true,
          value_parser = Secret(InvitationKeys::parse), help_heading = "Component ingest")]
    pub invitation_key: Option<InvitationKeys>,
    /// Days an invitation link stays valid (1–90).
    #[arg(long, global = true, env = "HCP_INVITATION_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..=90), help_heading = "Component ingest")]
    pub invitation_days: u32,
    /// Send an SMS invitation when the platform reports an acceptance or pickup with the applicant's phone.
    #[arg(long, global = true, env = "HCP_SMS_ON_EVENTS", default_value = "true", action = ArgAction::Set,
          value_parser = BoolishValueParser::new(), help_heading = "Component ingest")]
    pub sms_on_events: bool,
    /// SMS invitations one platform key may send per Beijing day (beyond: 429, or no SMS for an event).
    #[arg(
        long,
        global = true,
        env = "HCP_SMS_PER_KEY_PER_DAY",
        default_value_t = 50_000,
        help_heading = "Component ingest"
    )]
    pub sms_per_key_per_day: u32,
    /// SMS invitations one mobile number may receive per Beijing day, from every platform together.
    #[arg(
        long,
        global = true,
        env = "HCP_SMS_PER_NUMBER_PER_DAY",
        default_value_t = 3,
        help_heading = "Component ingest"
    )]
    pub sms_per_number_per_day: u32,
    /// Seconds between runs that give unrated stages past their region's days the default 基本满意.
    #[arg(long = "default-rating-interval-secs", global = true, env = "HCP_DEFAULT_RATING_INTERVAL_SECS",
          default_value = "600", value_parser = secs(1), help_heading = "Component ingest")]
    pub default_rating_interval: Duration,

    /// Consumer group (and key of the stored positions).
    #[arg(
        long,
        global = true,
        env = "HCP_AGGREGATOR_GROUP",
        default_value = "hcp-aggregator",
        help_heading = "Component aggregator"
    )]
    pub aggregator_group: String,
    /// Leave ratings with anti-gaming flags out of the statistics (default: counted and listed for review).
    #[arg(long, global = true, env = "HCP_EXCLUDE_FLAGGED_PRESSES", default_value = "false", action = ArgAction::Set,
          value_parser = BoolishValueParser::new(), help_heading = "Component aggregator")]
    pub exclude_flagged_presses: bool,

    /// Fewest ratings for a staff member to be ranked.
    #[arg(long, global = true, env = "HCP_STAFF_MIN_RATINGS", default_value_t = 5, help_heading = "Component board")]
    pub staff_min_ratings: i64,

    /// Channel codes (`pf`) of the provincial export beyond the national table: `channel=code`
    /// (1–7) or `channel=none`, comma-separated. The 12345 hotline has no national code.
    #[arg(long, global = true, env = "HCP_EXPORT_PF", default_value = PfMap::DEFAULT,
          value_parser = PfMap::parse, help_heading = "Component board")]
    pub export_pf: PfMap,

    /// Seconds between evaluations of the alert rules.
    #[arg(long = "alert-interval-secs", global = true, env = "HCP_ALERT_INTERVAL_SECS", default_value = "30",
          value_parser = secs(1), help_heading = "Component alerts")]
    pub alert_interval: Duration,

    /// Seconds between sweeps of overdue work orders.
    #[arg(long = "sweep-interval-secs", global = true, env = "HCP_SWEEP_INTERVAL_SECS", default_value = "60",
          value_parser = secs(1), help_heading = "Component workorders")]
    pub sweep_interval: Duration,
    /// Milliseconds between relays of work-order events to Kafka.
    #[arg(long = "relay-interval-ms", global = true, env = "HCP_RELAY_INTERVAL_MS", default_value = "500",
          value_parser = millis(10), help_heading = "Component workorders")]
    pub relay_interval: Duration,

    /// Milliseconds before the first webhook retry (then 4× longer each time, at most an hour, 12 attempts).
    #[arg(long = "webhook-retry-base-ms", global = true, env = "HCP_WEBHOOK_RETRY_BASE_MS", default_value = "10000",
          value_parser = millis(10), help_heading = "Component webhooks")]
    pub webhook_retry_base: Duration,
    /// Allow webhook endpoints on loopback, private, link-local and metadata addresses (receivers
    /// inside the deployment's own network). Off: such URLs are refused when added and when sent.
    #[arg(long, global = true, env = "HCP_WEBHOOK_ALLOW_PRIVATE", default_value = "false", action = ArgAction::Set,
          value_parser = BoolishValueParser::new(), help_heading = "Component webhooks")]
    pub webhook_allow_private: bool,

    /// Where SMS go: `outbox` (queued in the notification outbox for another system; nothing is
    /// sent), `aliyun` (Aliyun SMS), `tencent` (Tencent Cloud SMS) or `http` (a generic JSON gateway).
    #[arg(
        long = "sms-gateway",
        global = true,
        env = "HCP_SMS_GATEWAY",
        default_value = "outbox",
        value_enum,
        help_heading = "Component sms"
    )]
    pub sms_gateway: SmsGatewayName,
    /// The gateway's API URL; default the vendor's public endpoint (`http` needs one).
    #[arg(long, global = true, env = "HCP_SMS_ENDPOINT", help_heading = "Component sms")]
    pub sms_endpoint: Option<String>,
    /// Aliyun AccessKeyId / Tencent SecretId.
    #[arg(long, global = true, env = "HCP_SMS_ACCESS_KEY_ID", help_heading = "Component sms")]
    pub sms_access_key_id: Option<String>,
    /// Aliyun AccessKeySecret / Tencent SecretKey / the `http` gateway's bearer token (secret).
    #[arg(long, global = true, env = "HCP_SMS_ACCESS_KEY_SECRET", hide_env_values = true,
          value_parser = Secret(non_empty), help_heading = "Component sms")]
    pub sms_access_key_secret: Option<String>,
    /// The approved SMS signature (签名) the vendor adds as 【…】.
    #[arg(
        long,
        global = true,
        env = "HCP_SMS_SIGN_NAME",
        default_value = "政务服务好差评",
        help_heading = "Component sms"
    )]
    pub sms_sign_name: String,
    /// Tencent's SmsSdkAppId.
    #[arg(long, global = true, env = "HCP_SMS_APP_ID", help_heading = "Component sms")]
    pub sms_app_id: Option<String>,
    /// The approved template id of rating invitations (params `service`, `link`).
    #[arg(long, global = true, env = "HCP_SMS_TEMPLATE_INVITATION", help_heading = "Component sms")]
    pub sms_template_invitation: Option<String>,
    /// The approved template id of callback (回访) links (params `service`, `link`).
    #[arg(long, global = true, env = "HCP_SMS_TEMPLATE_CALLBACK", help_heading = "Component sms")]
    pub sms_template_callback: Option<String>,
    /// Beijing hours without SMS (`HH:MM-HH:MM`, or `none`): messages due then wait until the end.
    #[arg(long, global = true, env = "HCP_SMS_QUIET_HOURS", default_value = QuietHours::DEFAULT,
          value_parser = QuietHours::parse, help_heading = "Component sms")]
    pub sms_quiet_hours: QuietHours,
    /// Milliseconds before an SMS is retried (then 4× longer each time, at most an hour, 8 attempts).
    #[arg(long = "sms-retry-base-ms", global = true, env = "HCP_SMS_RETRY_BASE_MS", default_value = "60000",
          value_parser = millis(10), help_heading = "Component sms")]
    pub sms_retry_base: Duration,
    /// Token (≥ 16 characters) the gateway presents on `/api/v1/sms/inbound` and `/receipts`
    /// (Bearer or `?token=`). Unset: both refuse every call (401).
    #[arg(long, global = true, env = "HCP_SMS_INBOUND_TOKEN", hide_env_values = true,
          value_parser = Secret(MonitoringToken::parse), help_heading = "Component sms")]
    pub sms_inbound_token: Option<MonitoringToken>,
}

/// A secret that must not be empty.
fn non_empty(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() {
        return Err("empty".into());
    }
    Ok(v.to_owned())
}

/// `HCP_SMS_GATEWAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmsGatewayName {
    /// Queue only (the notification outbox); no sender runs.
    Outbox,
    /// Aliyun SMS.
    Aliyun,
    /// Tencent Cloud SMS.
    Tencent,
    /// A generic HTTP JSON gateway.
    Http,
}

/// `HCP_INGEST_AUTH`: `required` is true.
fn required_or_optional(value: &str) -> Result<bool, String> {
    match value {
        "required" => Ok(true),
        "optional" => Ok(false),
        _ => Err("`required` or `optional`".into()),
    }
}

/// Parses a number of milliseconds into a [`Duration`] of at least `min` ms.
fn millis(min: u64) -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64).map(move |v| Duration::from_millis(v.max(min)))
}

/// Parses a number of seconds into a [`Duration`] of at least `min` s.
fn secs(min: u64) -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64).map(move |v| Duration::from_secs(v.max(min)))
}

/// Parses a key with the function it holds; a value that function refuses is never echoed
/// (clap's own message would print it, and a malformed key is still mostly a key).
#[derive(Clone)]
struct Secret<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Secret<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let name =
            arg.map(|a| a.get_env().map_or_else(|| a.get_id().to_string(), |e| e.to_string_lossy().into_owned()));
        let refuse = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for <{}> (not shown): {why}\n", name.as_deref().unwrap_or("key")),
            )
            .with_cmd(cmd)
        };
        (self.0)(value.to_str().ok_or_else(|| refuse("not UTF-8".into()))?).map_err(refuse)
    }
}

/// A command that holds only [`Config`], for reading it outside the CLI (tests, tools).
#[derive(Parser)]
#[command(name = "hcp", no_binary_name = true)]
struct ConfigOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// Reads the environment (and nothing from the command line).
    pub fn from_env() -> anyhow::Result<Self> {
        load_secret_files()?;
        let matches = command_line(ConfigOnly::command()).try_get_matches_from(std::iter::empty::<String>())?;
        Ok(ConfigOnly::from_arg_matches(&matches)?.config)
    }

    /// The Kafka client settings.
    pub fn kafka(&self) -> KafkaConfig {
        let mut k = KafkaConfig::new(&self.kafka_brokers);
        k.produce_timeout = self.produce_timeout;
        k.debug = self.kafka_debug.clone().filter(|d| !d.is_empty());
        k
    }

    /// The topic names.
    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }

    /// Base of the links sent to raters.
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.http_addr))
    }

    /// Whether grade 3 counts as good or neutral.
    pub fn policy(&self) -> SatisfactionPolicy {
        if self.three_is_neutral {
            SatisfactionPolicy::ThreeIsNeutral
        } else {
            SatisfactionPolicy::ThreeIsGood
        }
    }

    /// The longest any request may take: `HCP_REQUEST_TIMEOUT_SECS`, but never less than a
    /// produce's wait plus 5 s (a rating's 503 comes from the producer, not from this limit).
    pub fn request_limit(&self) -> Duration {
        self.request_timeout.max(self.produce_timeout + Duration::from_secs(5))
    }

    /// How long a stage's claim stays pending before another attempt may take it over: longer
    /// than the claiming request can still be producing (two produce waits and a margin).
    pub fn claim_takeover(&self) -> Duration {
        self.produce_timeout * 2 + Duration::from_secs(5)
    }

    /// How long after the first rating a follow-up is accepted.
    pub fn follow_up_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.follow_up_days) * 86_400)
    }

    /// How long an invitation link stays valid.
    pub fn invitation_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.invitation_days) * 86_400)
    }

    /// How the SMS sender works: the quiet hours, the per-number cap (shared with ingest's
    /// invitations) and the retry schedule from their settings.
    pub fn sms_sender(&self) -> hcp_sms::SenderConfig {
        hcp_sms::SenderConfig {
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            backoff: hcp_domain::sms::Backoff { base: self.sms_retry_base, ..Default::default() },
            quiet_hours: self.sms_quiet_hours,
            per_number_per_day: self.sms_per_number_per_day,
            pii: self.pii.clone(),
        }
    }

    /// The SMS gateway `HCP_SMS_*` describe: `Ok(None)` for `outbox`, else its settings, or
    /// every missing setting at once.
    pub fn sms_gateway_settings(&self) -> Result<Option<hcp_sms::gateway::GatewaySettings>, String> {
        use hcp_sms::gateway::{GatewayKind, GatewaySettings};
        let kind = match self.sms_gateway {
            SmsGatewayName::Outbox => return Ok(None),
            SmsGatewayName::Aliyun => GatewayKind::Aliyun,
            SmsGatewayName::Tencent => GatewayKind::Tencent,
            SmsGatewayName::Http => GatewayKind::Http,
        };
        let mut missing = Vec::new();
        let mut need = |name: &'static str, v: &Option<String>, needed: bool| {
            if needed && v.as_deref().is_none_or(|v| v.trim().is_empty()) {
                missing.push(name);
            }
            v.clone().unwrap_or_default()
        };
        let vendor = kind != GatewayKind::Http;
        let settings = GatewaySettings {
            kind,
            endpoint: Some(need("HCP_SMS_ENDPOINT", &self.sms_endpoint, !vendor)).filter(|e| !e.is_empty()),
            key_id: need("HCP_SMS_ACCESS_KEY_ID", &self.sms_access_key_id, vendor),
            secret: need("HCP_SMS_ACCESS_KEY_SECRET", &self.sms_access_key_secret, true),
            sign_name: self.sms_sign_name.clone(),
            app_id: need("HCP_SMS_APP_ID", &self.sms_app_id, kind == GatewayKind::Tencent),
            templates: (
                need("HCP_SMS_TEMPLATE_INVITATION", &self.sms_template_invitation, vendor),
                need("HCP_SMS_TEMPLATE_CALLBACK", &self.sms_template_callback, vendor),
            ),
            timeout: Duration::from_secs(10),
        };
        if missing.is_empty() {
            Ok(Some(settings))
        } else {
            let name = clap::ValueEnum::to_possible_value(&self.sms_gateway).map(|v| v.get_name().to_owned());
            Err(format!("HCP_SMS_GATEWAY={} needs {}", name.unwrap_or_default(), missing.join(", ")))
        }
    }
}

/// `command` as the process parses it: each setting's value is named by its variable (so an
/// error reads `invalid value 'x' for '--db-pool <HCP_DB_POOL>'`), and a variable that is set but
/// empty counts as unset (its default applies), as deployment tools often write `NAME=` for
/// "not given".
pub fn command_line(mut command: clap::Command) -> clap::Command {
    let settings: Vec<(clap::Id, String, bool)> = command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?;
            let empty = std::env::var_os(env).is_some_and(|v| v.to_string_lossy().trim().is_empty());
            Some((arg.get_id().clone(), env.to_string_lossy().into_owned(), empty))
        })
        .collect();
    for (id, env, empty) in settings {
        command = command.mut_arg(id, |arg| {
            let arg = arg.value_name(env);
            if empty {
                arg.env(None)
            } else {
                arg
            }
        });
    }
    command
}

/// What the process is run as (`HCP_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Env {
    /// Real citizens' data: every key set and private, no demo account.
    Production,
    /// A local run, tests, demos.
    Development,
}

/// The secrets that may also be given as a file (`<NAME>_FILE`, as Docker and Kubernetes
/// secrets are mounted), so they need not sit in the environment of every process listing.
pub const SECRET_VARIABLES: [&str; 6] = [
    "HCP_SESSION_KEY",
    "HCP_INVITATION_KEY",
    "HCP_PII_KEY",
    "HCP_METRICS_TOKEN",
    "HCP_SMS_ACCESS_KEY_SECRET",
    "HCP_SMS_INBOUND_TOKEN",
];

/// Reads each `<NAME>_FILE` of [`SECRET_VARIABLES`] into `<NAME>` when `<NAME>` itself is unset;
/// call before the command line is parsed, while the process has one thread.
pub fn load_secret_files() -> anyhow::Result<()> {
    for name in SECRET_VARIABLES {
        let file_var = format!("{name}_FILE");
        let Some(path) = std::env::var_os(&file_var).filter(|p| !p.is_empty()) else { continue };
        if std::env::var_os(name).is_some_and(|v| !v.is_empty()) {
            anyhow::bail!("both {name} and {file_var} are set: give one");
        }
        let value = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{file_var}: cannot read {}: {e}", std::path::Path::new(&path).display()))?;
        std::env::set_var(name, value.trim());
    }
    Ok(())
}

/// A part of the pipeline `hcp serve` can run, named as its crate and the code map name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum ComponentName {
    /// `hcp-http`'s sessions: operator login, logout and the caller's account.
    Sessions,
    /// `hcp-ingest`: ratings, service records, invitations, the citizen's page; default ratings.
    Ingest,
    /// `hcp-aggregator`: the Kafka → PostgreSQL consumer.
    Aggregator,
    /// `hcp-board`: the board, statistics, rating records, public page, export and reports; the live pushes.
    Board,
    /// `hcp-alert`: alert rules and alerts; their evaluator.
    Alerts,
    /// `hcp-directory`: the directory, roster, attribution, anti-gaming review, calendar and credentials API.
    Directory,
    /// `hcp-workorder`: work orders, callbacks, policies, notifications, the console; event relay and sweep.
    Workorders,
    /// `hcp-webhook`: webhook endpoints and their sender.
    Webhooks,
    /// `hcp-sms`: SMS status, opt-outs and the gateway's callbacks; the SMS sender.
    Sms,
}

impl ComponentName {
    /// Every component, in the order the server composes them.
    pub const ALL: [ComponentName; 9] = [
        ComponentName::Sessions,
        ComponentName::Ingest,
        ComponentName::Aggregator,
        ComponentName::Board,
        ComponentName::Alerts,
        ComponentName::Directory,
        ComponentName::Workorders,
        ComponentName::Webhooks,
        ComponentName::Sms,
    ];
}

/// Which components a process runs (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Components(std::collections::BTreeSet<ComponentName>);

impl Components {
    /// Everything in one process.
    pub fn all() -> Self {
        Components(ComponentName::ALL.into_iter().collect())
    }

    /// Exactly these.
    pub fn only(names: &[ComponentName]) -> Self {
        Components(names.iter().copied().collect())
    }

    /// Everything but these.
    pub fn all_but(names: &[ComponentName]) -> Self {
        Components(ComponentName::ALL.into_iter().filter(|n| !names.contains(n)).collect())
    }

    /// Whether `name` is selected.
    pub fn contains(&self, name: ComponentName) -> bool {
        self.0.contains(&name)
    }

    /// The selected components, in the order the server composes them.
    pub fn iter(&self) -> impl Iterator<Item = ComponentName> + '_ {
        self.0.iter().copied()
    }
}
