//! Test support for black-box tests of hcp against the real stack.
//!
//! Each [`TestApp`] gets a fresh PostgreSQL database (migrated), its own topic prefix and
//! consumer group on the shared broker, and an in-process server on a random port, so tests run
//! in parallel without seeing each other. The stack comes from `deploy/local/test.sh`:
//! `DATABASE_URL` (any database on the test server), `KAFKA_BROKERS`, `HCP_BIN`.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hcp_bus::KafkaConfig;
use hcp_server::server::{self, RunningServer};
use hcp_server::{ComponentName, Components, Config};
use hcp_store::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The statistics range tests count in (`from=…&to=…`): from the start of the hour before now to
/// four hours later, so ratings made now fall inside whatever the clock does during a test.
pub fn around_now() -> String {
    use chrono::DurationRound;
    let from = chrono::Utc::now().duration_trunc(chrono::Duration::hours(1)).expect("an hour rounds")
        - chrono::Duration::hours(1);
    let to = from + chrono::Duration::hours(4);
    format!("from={}&to={}", from.format("%Y-%m-%dT%H:%M:%SZ"), to.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// Partitions of every test topic.
pub const PARTITIONS: i32 = 3;

/// How long ingest waits for the shared test broker's acknowledgement (see [`TestApp::start`]).
pub const SHARED_BROKER_PRODUCE_TIMEOUT: Duration = Duration::from_secs(15);

fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the integration tests through deploy/local/test.sh"))
}

/// The AES-256-GCM key tests seal rater identities with (`HCP_PII_KEY` format).
pub const TEST_PII_KEY: &str = "t1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
/// The session key of test servers.
pub const TEST_SESSION_KEY: &str = "c2Vzc2lvbi1rZXktZm9yLXRlc3RzLW9ubHktMzItYnl0ZXM=";

/// Polls `cond` every 20 ms until it returns true or `timeout` passes; panics with `what`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A valid online rating of `record` rated (and received) at `at` (a bad one with the comment it
/// needs), as ingest would publish it.
pub fn online_rating_at(record: &str, grade: i64, at: chrono::DateTime<chrono::Utc>) -> hcp_domain::RatingSubmitted {
    hcp_domain::RatingInput {
        channel: Some("app".into()),
        stage: Some("online".into()),
        service_record_no: Some(record.into()),
        grade: Some(grade),
        comment: (grade <= 2).then(|| "办理太慢".into()),
        ..Default::default()
    }
    .validate(uuid::Uuid::now_v7(), at)
    .expect("a valid online rating")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// One isolated hcp deployment for one test.
pub struct TestApp {
    /// Configuration (fresh database, unique topic prefix and group).
    pub config: Config,
    /// The test database.
    pub store: Store,
    /// Ingest + board, in-process.
    pub server: Option<RunningServer>,
    /// Base URL of the server.
    pub url: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// Name of the test database.
    pub db_name: String,
    /// A session of the deployment's administrator (account `t-admin`).
    pub admin: String,
    aggregator: Option<(CancellationToken, tokio::task::JoinHandle<Result<(), hcp_aggregator::AggregatorError>>)>,
}

impl TestApp {
    /// A fresh deployment on the shared broker: database, topics, ingest + board server.
    ///
    /// Several tests load the one shared broker at once (ingest and the aggregator's attributed
    /// events), so ingest may wait up to [`SHARED_BROKER_PRODUCE_TIMEOUT`] for an acknowledgement
    /// here; tests of the timeout itself use [`TestApp::start_on`] with a private broker and the
    /// production default.
    pub async fn start() -> TestApp {
        Self::build(&required_env("KAFKA_BROKERS"), Some(SHARED_BROKER_PRODUCE_TIMEOUT), |_| {}).await
    }

    /// [`TestApp::start`] with the configuration adjusted first (e.g. channel keys required).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::build(&required_env("KAFKA_BROKERS"), Some(SHARED_BROKER_PRODUCE_TIMEOUT), adjust).await
    }

    /// A fresh deployment on the broker at `brokers`, with the production produce timeout.
    pub async fn start_on(brokers: &str) -> TestApp {
        Self::build(brokers, None, |_| {}).await
    }

    /// A fresh deployment on a private `cluster` and the PostgreSQL server of `admin_url` (e.g. a
    /// [`PrivatePostgres`]), with the production produce timeout; its topics have `partitions`
    /// partitions, replicated on up to three nodes.
    pub async fn start_on_cluster(cluster: &KafkaCluster, admin_url: &str, partitions: i32) -> TestApp {
        let replication = cluster.node_ids().len().min(3) as i32;
        Self::build_on(&cluster.addr, admin_url, (partitions, replication), None, |_| {}).await
    }

    async fn build(brokers: &str, produce_timeout: Option<Duration>, adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::build_on(brokers, &required_env("DATABASE_URL"), (PARTITIONS, 1), produce_timeout, adjust).await
    }

    async fn build_on(
        brokers: &str,
        admin_url: &str,
        (partitions, replication): (i32, i32),
        produce_timeout: Option<Duration>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        if std::env::var_os("RUST_LOG").is_some() {
            hcp_server::telemetry::init();
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        let db_name = format!("hcp_t_{}", &id[id.len() - 16..]);
        let store = hcp_store::create_fresh_database(admin_url, &db_name, 8).await.expect("fresh test database");
        let mut config = Config::from_env().expect("config");
        config.database_url = replace_database(admin_url, &db_name);
        config.kafka_brokers = brokers.to_string();
        config.topic_prefix = format!("t{}.", &id[id.len() - 12..]);
        config.aggregator_group = format!("agg-{}", &id[id.len() - 12..]);
        config.db_pool = 8;
        if let Some(t) = produce_timeout {
            config.produce_timeout = t;
        }
        config.pii = Some(hcp_domain::PiiCipher::from_spec(TEST_PII_KEY).expect("test PII key"));
        config.session_key = Some(hcp_http::SessionKey::from_base64(TEST_SESSION_KEY).expect("test session key"));
        // Events relay quickly; sweeps only when a test asks (with its own clock).
        config.relay_interval = Duration::from_millis(100);
        config.sweep_interval = Duration::from_secs(24 * 3600);
        config.default_rating_interval = Duration::from_secs(24 * 3600);
        // Most tests post as an unauthenticated client naming its channel; the channel tests
        // require keys (`start_with`).
        config.ingest_auth_required = false;
        // Every test client is 127.0.0.1: the per-address limit is tested on its own.
        config.rate_limit_per_ip = 10_000;
        adjust(&mut config);
        hcp_bus::create_topics(&config.kafka(), &config.topics().all(), partitions, replication)
            .await
            .expect("create test topics");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = server::spawn(config.clone(), Components::all_but(&[ComponentName::Aggregator]), listener)
            .await
            .expect("server starts");
        let url = server.url();
        let mut app = TestApp {
            config,
            store,
            url,
            server: Some(server),
            client: reqwest::Client::new(),
            db_name,
            admin: String::new(),
            aggregator: None,
        };
        app.admin = app.account("t-admin", "admin", None, None).await;
        app
    }

    /// The Kafka settings of this deployment.
    pub fn kafka(&self) -> KafkaConfig {
        self.config.kafka()
    }

    /// The rating topic.
    pub fn topic(&self) -> String {
        self.config.topics().rating_submitted
    }

    /// Starts the aggregator as a task of this process.
    pub fn start_aggregator(&mut self) {
        self.start_aggregator_with(Default::default());
    }

    /// Starts the aggregator as a task of this process, counting into `stats`.
    pub fn start_aggregator_with(&mut self, stats: std::sync::Arc<hcp_aggregator::AggregatorStats>) {
        self.start_aggregator_configured(|cfg| cfg.stats = stats);
    }

    /// Starts the aggregator as a task of this process with its configuration adjusted.
    pub fn start_aggregator_configured(&mut self, adjust: impl FnOnce(&mut hcp_aggregator::AggregatorConfig)) {
        assert!(self.aggregator.is_none(), "aggregator already running");
        let token = CancellationToken::new();
        let mut cfg = hcp_aggregator::AggregatorConfig::new(self.config.kafka(), self.config.topics());
        cfg.group_id = self.config.aggregator_group.clone();
        adjust(&mut cfg);
        let join = tokio::spawn(hcp_aggregator::run(cfg, self.store.clone(), token.clone()));
        self.aggregator = Some((token, join));
    }

    /// Stops the in-process aggregator gracefully (its current batch is committed first).
    pub async fn stop_aggregator(&mut self) {
        let (token, join) = self.aggregator.take().expect("aggregator running");
        token.cancel();
        join.await.expect("aggregator task").expect("aggregator ran cleanly");
    }

    /// Environment for an `hcp` child process of this deployment.
    pub fn child_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.config.database_url.clone()),
            ("KAFKA_BROKERS", self.config.kafka_brokers.clone()),
            ("HCP_TOPIC_PREFIX", self.config.topic_prefix.clone()),
            ("HCP_AGGREGATOR_GROUP", self.config.aggregator_group.clone()),
            ("HCP_HTTP_ADDR", format!("127.0.0.1:{}", free_port())),
            ("HCP_DB_POOL", "4".into()),
            ("RUST_LOG", "warn,hcp_aggregator=info".into()),
            ("HCP_PII_KEY", TEST_PII_KEY.into()),
            // Test keys are published in this repository: only a development start takes them.
            ("HCP_ENV", "development".into()),
        ]
    }

    /// Runs `hcp <args>` against this deployment; returns (success, trimmed stdout, stderr).
    pub fn run_hcp(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(hcp_bin());
        cmd.args(args);
        for (k, v) in self.child_env() {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run hcp");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout).trim().to_string(), text(&out.stderr))
    }

    /// Starts `hcp serve --components aggregator` as a separate process (to be killed for real).
    pub fn spawn_aggregator_process(&self) -> ChildProcess {
        let mut cmd = Command::new(hcp_bin());
        cmd.args(["serve", "--components", "aggregator"]).stdout(Stdio::null()).stderr(Stdio::inherit());
        for (k, v) in self.child_env() {
            cmd.env(k, v);
        }
        ChildProcess(cmd.spawn().expect("spawn hcp aggregator process"))
    }

    /// [`TestApp::spawn_aggregator_process`] with its output appended to `log`.
    pub fn spawn_aggregator_process_logging(&self, log: &std::path::Path) -> ChildProcess {
        self.spawn_serve("aggregator", None, log)
    }

    /// Starts `hcp serve --components <components>` of this deployment as a separate process
    /// (listening on `addr` when given, a free port otherwise), its output appended to `log`.
    /// Its ingest, if any, accepts ratings without a channel key, as the in-process server does.
    pub fn spawn_serve(&self, components: &str, addr: Option<&str>, log: &std::path::Path) -> ChildProcess {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("process log");
        let mut cmd = Command::new(hcp_bin());
        cmd.args(["serve", "--components", components]).stdout(Stdio::null()).stderr(file);
        for (k, v) in self.child_env() {
            cmd.env(k, v);
        }
        cmd.env("HCP_INGEST_AUTH", "optional");
        if let Some(addr) = addr {
            cmd.env("HCP_HTTP_ADDR", addr);
        }
        ChildProcess(cmd.spawn().unwrap_or_else(|e| panic!("spawn hcp serve --components {components}: {e}")))
    }

    /// Imports the bundled working-day calendar into the test database.
    pub async fn import_calendar_for_test(&self) {
        let text = include_str!("../../deploy/calendar/cn-workdays-2020-2026.json");
        let calendar = hcp_domain::WorkCalendar::from_json(text).expect("bundled calendar");
        self.store.import_calendar(&calendar, &Default::default()).await.expect("calendar imported");
    }

    /// Adds an operator account (argon2-hashed password) and returns a session token for it.
    pub async fn account(&self, username: &str, role: &str, department: Option<&str>, region: Option<&str>) -> String {
        self.account_of(username, role, department, region, None).await
    }

    /// A staff account bound to staff member `staff_id` (of `department`), logged in: its token.
    pub async fn staff_account(&self, username: &str, staff_id: &str, department: &str) -> String {
        self.account_of(username, "staff", Some(department), None, Some(staff_id)).await
    }

    async fn account_of(
        &self,
        username: &str,
        role: &str,
        department: Option<&str>,
        region: Option<&str>,
        staff: Option<&str>,
    ) -> String {
        let password = format!("pw-{username}-123");
        self.store
            .upsert_account(&hcp_store::Account {
                username: username.into(),
                display_name: format!("{username} 测试"),
                role: role.into(),
                department_id: department.map(Into::into),
                region_code: region.map(Into::into),
                staff_id: staff.map(Into::into),
                disabled: false,
                password_hash: hcp_http::auth::hash_password(&password),
            })
            .await
            .expect("account saved");
        let r = self
            .client
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("login sent");
        assert_eq!(r.status(), 200, "login of {username}");
        let body: serde_json::Value = r.json().await.expect("login json");
        body["token"].as_str().expect("token").to_owned()
    }

    /// `method path` with a bearer `token` and an optional JSON body; returns (status, JSON body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request sent");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// POSTs `body` to `path` with the bearer `token`; returns (status, JSON body).
    pub async fn post_json(&self, path: &str, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, token, Some(body.clone())).await
    }

    /// POSTs every body to `/api/v1/ratings` (32 in flight) and asserts each got 202 with a
    /// UUIDv7 rating id; returns the answers.
    pub async fn post_all_accepted(&self, bodies: &[serde_json::Value]) -> Vec<serde_json::Value> {
        use futures::stream::{self, StreamExt};
        let answers: Vec<(u16, serde_json::Value)> = stream::iter(bodies)
            .map(|b| async move {
                let r = self.post_rating(b).await;
                (r.status().as_u16(), r.json().await.unwrap_or(serde_json::Value::Null))
            })
            .buffer_unordered(32)
            .collect()
            .await;
        answers
            .into_iter()
            .map(|(status, body)| {
                assert_eq!(status, 202, "{body}");
                let id: uuid::Uuid = body["rating_id"].as_str().expect("rating_id").parse().expect("a uuid");
                assert_eq!(id.get_version_num(), 7, "{body}");
                body
            })
            .collect()
    }

    /// POSTs `body` to `/api/v1/ratings`.
    pub async fn post_rating(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client.post(format!("{}/api/v1/ratings", self.url)).json(body).send().await.expect("request sent")
    }

    /// Imports a directory document through `POST /api/v1/directory/import`; panics unless
    /// every row was imported.
    pub async fn import_directory(&self, doc: &serde_json::Value) -> serde_json::Value {
        let r = self
            .client
            .post(format!("{}/api/v1/directory/import", self.url))
            .bearer_auth(&self.admin)
            .body(doc.to_string())
            .send()
            .await
            .expect("request sent");
        let status = r.status();
        let body: serde_json::Value = r.json().await.expect("import answer");
        assert_eq!(status, 200, "directory import: {body}");
        body
    }

    /// GETs `path` (e.g. `/api/v1/stats/ranking?…`) as the administrator, asserting 200, and
    /// returns the JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r =
            self.client.get(format!("{}{path}", self.url)).bearer_auth(&self.admin).send().await.expect("request sent");
        let status = r.status();
        let body: serde_json::Value = r.json().await.expect("json body");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// GETs the summary for `query` (e.g. `scope=window&id=W1&from=…`).
    pub async fn summary(&self, query: &str) -> serde_json::Value {
        let r = self
            .client
            .get(format!("{}/api/v1/stats/summary?{query}", self.url))
            .bearer_auth(&self.admin)
            .send()
            .await
            .expect("request sent");
        assert_eq!(r.status(), 200, "summary {query}");
        r.json().await.expect("summary json")
    }

    /// Asserts that the rollups the boards read (`rating_aggregates` day rows, `rating_splits`,
    /// `rating_dimension_aggregates`) hold exactly what the stored ratings say when counted from scratch: every rating neither
    /// replaced by a follow-up nor excluded by an upheld appeal, in the rows of its current
    /// attribution. Returns the number of non-zero split rows compared (so a caller can insist
    /// there were some).
    pub async fn assert_rollups_match_ratings(&self) -> usize {
        type Rows = Vec<(String, String, String, i64, i64, i64, i64, i64)>;
        let day = "date_trunc('day', r.rated_at AT TIME ZONE INTERVAL '08:00') AT TIME ZONE INTERVAL '08:00'";
        let grades = "count(*) FILTER (WHERE r.grade = 1), count(*) FILTER (WHERE r.grade = 2),
                      count(*) FILTER (WHERE r.grade = 3), count(*) FILTER (WHERE r.grade = 4),
                      count(*) FILTER (WHERE r.grade = 5)";
        let fetch = |sql: String| {
            let pool = self.store.pool().clone();
            async move {
                sqlx::query_as::<_, (String, String, String, i64, i64, i64, i64, i64)>(&sql)
                    .fetch_all(&pool)
                    .await
                    .expect(&sql)
            }
        };
        let splits_from_ratings: Rows = fetch(format!(
            "SELECT s.reach || '@' || ({day})::text, d.dim, d.value, {grades}
               FROM ratings r CROSS JOIN LATERAL unnest(r.agg_scopes) AS s(reach)
              CROSS JOIN LATERAL (SELECT 'channel', r.channel UNION ALL SELECT 'stage', r.stage
                                  UNION ALL SELECT 'tag', t FROM unnest(r.tags) t) AS d(dim, value)
              WHERE r.excluded_at IS NULL AND r.superseded_by IS NULL
                AND (s.reach = 'all:all' OR s.reach LIKE 'department:%' OR s.reach LIKE 'region:%')
              GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ))
        .await;
        let splits: Rows = fetch(
            "SELECT reach || '@' || day_start::text, dimension, value, n1, n2, n3, n4, n5 FROM rating_splits
              WHERE n1 <> 0 OR n2 <> 0 OR n3 <> 0 OR n4 <> 0 OR n5 <> 0 ORDER BY 1, 2, 3"
                .into(),
        )
        .await;
        assert_eq!(splits, splits_from_ratings, "rating_splits differ from the ratings counted from scratch");
        let days_from_ratings: Rows = fetch(format!(
            "SELECT split_part(s.key, ':', 1), substr(s.key, strpos(s.key, ':') + 1), ({day})::text, {grades}
               FROM ratings r CROSS JOIN LATERAL unnest(r.agg_scopes) AS s(key)
              WHERE r.excluded_at IS NULL AND r.superseded_by IS NULL
              GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ))
        .await;
        let days: Rows = fetch(
            "SELECT scope, scope_id, bucket_start::text, n1, n2, n3, n4, n5 FROM rating_aggregates
              WHERE width = 'day' AND (n1 <> 0 OR n2 <> 0 OR n3 <> 0 OR n4 <> 0 OR n5 <> 0) ORDER BY 1, 2, 3"
                .into(),
        )
        .await;
        assert_eq!(days, days_from_ratings, "rating_aggregates day rows differ from the ratings counted from scratch");
        // Dimension grades: each counted rating's grade of each dimension, in the rows of
        // `dim_scopes` ('code/scope:id').
        let dim_grade = "(r.dimensions ->> split_part(k.key, '/', 1))::int";
        let dims_from_ratings: Rows = fetch(format!(
            "SELECT substr(k.key, strpos(k.key, '/') + 1), ({day})::text, split_part(k.key, '/', 1),
                    count(*) FILTER (WHERE {dim_grade} = 1), count(*) FILTER (WHERE {dim_grade} = 2),
                    count(*) FILTER (WHERE {dim_grade} = 3), count(*) FILTER (WHERE {dim_grade} = 4),
                    count(*) FILTER (WHERE {dim_grade} = 5)
               FROM ratings r CROSS JOIN LATERAL unnest(r.dim_scopes) AS k(key)
              WHERE r.excluded_at IS NULL AND r.superseded_by IS NULL
              GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ))
        .await;
        let dims: Rows = fetch(
            "SELECT scope || ':' || scope_id, day_start::text, dimension, n1, n2, n3, n4, n5
               FROM rating_dimension_aggregates
              WHERE n1 <> 0 OR n2 <> 0 OR n3 <> 0 OR n4 <> 0 OR n5 <> 0 ORDER BY 1, 2, 3"
                .into(),
        )
        .await;
        assert_eq!(dims, dims_from_ratings, "rating_dimension_aggregates differ from the ratings counted from scratch");
        splits.len()
    }

    /// The counted grades of dimension `code` in the row `scope:id` over every day
    /// (`rating_dimension_aggregates`), as `[n1, …, n5]`.
    pub async fn dimension_counts(&self, scope_key: &str, code: &str) -> [i64; 5] {
        let (scope, id) = scope_key.split_once(':').expect("scope:id");
        let row: (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(n1), 0)::int8, COALESCE(SUM(n2), 0)::int8, COALESCE(SUM(n3), 0)::int8,
                    COALESCE(SUM(n4), 0)::int8, COALESCE(SUM(n5), 0)::int8
               FROM rating_dimension_aggregates WHERE scope = $1 AND scope_id = $2 AND dimension = $3",
        )
        .bind(scope)
        .bind(id)
        .bind(code)
        .fetch_one(self.store.pool())
        .await
        .unwrap();
        [row.0, row.1, row.2, row.3, row.4]
    }

    /// Waits until the aggregator's stored positions reach the topic's end (asking the broker for
    /// the end again while it does not answer, e.g. just after a restart, within `timeout`).
    pub async fn wait_caught_up(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let high: i64 = loop {
            let (kafka, topic) = (self.kafka(), self.topic());
            let asked = tokio::task::spawn_blocking(move || {
                hcp_bus::fetch_high_watermarks(&kafka, &topic, Duration::from_secs(10))
            })
            .await
            .expect("join");
            match asked {
                Ok(marks) => break marks.values().sum(),
                Err(e) if Instant::now() < deadline => eprintln!("the topic's end not known yet: {e}"),
                Err(e) => panic!("the topic's end not known within {timeout:?}: {e}"),
            }
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        let (store, group, topic) = (self.store.clone(), self.config.aggregator_group.clone(), self.topic());
        wait_until(timeout, &format!("aggregator to reach offset sum {high}"), || {
            let (store, group, topic) = (store.clone(), group.clone(), topic.clone());
            async move {
                store.positions(&group, &topic).await.expect("positions").iter().map(|(_, o)| o).sum::<i64>() >= high
            }
        })
        .await;
    }

    /// Every record on the rating topic (key, body), read from the beginning.
    pub async fn read_topic(&self, expected: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.read_records(self.topic(), expected).await
    }

    /// The first `expected` records of `topic` (key, body), read from the beginning (waits up to
    /// 60 s for them).
    pub async fn read_records(&self, topic: String, expected: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.read_records_settled(topic, expected, Duration::ZERO).await
    }

    /// Like [`TestApp::read_records`], then keeps reading for `settle` so that records beyond
    /// `expected` (duplicates) show up in the result.
    pub async fn read_records_settled(
        &self,
        topic: String,
        expected: usize,
        settle: Duration,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let kafka = self.kafka();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer =
                kafka.consumer(&format!("reader-{}", uuid::Uuid::now_v7())).create().expect("consumer");
            let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).expect("topic metadata");
            let mut tpl = TopicPartitionList::new();
            for p in md.topics().iter().flat_map(|t| t.partitions()) {
                tpl.add_partition_offset(&topic, p.id(), Offset::Beginning).expect("tpl");
            }
            consumer.assign(&tpl).expect("assign");
            let mut out = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut settle_until = None;
            loop {
                let now = Instant::now();
                match settle_until {
                    None if out.len() >= expected || now >= deadline => settle_until = Some(now + settle),
                    Some(t) if now >= t => break,
                    _ => {}
                }
                if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                    let m = m.expect("message");
                    out.push((m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec()));
                }
            }
            out
        })
        .await
        .expect("join")
    }
}

/// The `hcp` binary built by test.sh (`HCP_BIN`), or the one beside the test executable.
pub fn hcp_bin() -> PathBuf {
    if let Ok(p) = std::env::var("HCP_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(|d| d.parent()).map(|d| d.join("hcp")).expect("target dir")
}

/// `url` with its database name replaced by `db`.
pub fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((url, None));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct ChildProcess(pub Child);

impl ChildProcess {
    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        self.0.wait().expect("wait for child")
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// `deploy/kafka/kafka.sh`: fetches, configures, formats and runs the Apache Kafka nodes of the
/// local stack and of these tests.
fn kafka_sh() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kafka/kafka.sh"))
}

/// A private Apache Kafka cluster (own ports and data directory; KRaft, every node a combined
/// broker and controller, the settings of `deploy/kafka/`) that a test may kill and restart,
/// node by node or whole. Three nodes replicate every topic three times with
/// `min.insync.replicas=2`, so one node may be down without losing an acknowledged record.
pub struct KafkaCluster {
    /// Bootstrap servers: every node's `127.0.0.1:port`.
    pub addr: String,
    dir: PathBuf,
    nodes: Vec<KafkaNode>,
}

struct KafkaNode {
    /// `node.id` (1-based).
    id: i32,
    port: u16,
    child: Option<Child>,
}

impl KafkaCluster {
    /// One node, as the local stack runs it.
    pub async fn single() -> KafkaCluster {
        Self::start(1).await
    }

    /// Three nodes on loopback: replication factor 3, `min.insync.replicas=2`.
    pub async fn three() -> KafkaCluster {
        Self::start(3).await
    }

    async fn start(count: usize) -> KafkaCluster {
        let dir = std::env::temp_dir().join(format!("hcp-kafka-{}", uuid::Uuid::now_v7().simple()));
        let ports: Vec<(u16, u16)> = (0..count).map(|_| (free_port(), free_port())).collect();
        let spec: Vec<String> = ports.iter().map(|(p, c)| format!("{p}:{c}")).collect();
        let out = Command::new(kafka_sh()).arg("init").arg(&dir).arg(spec.join(",")).output().expect("kafka.sh init");
        assert!(out.status.success(), "kafka.sh init failed: {}", String::from_utf8_lossy(&out.stderr));
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, (port, _))| KafkaNode { id: i as i32 + 1, port: *port, child: None })
            .collect();
        let addr = ports.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let mut cluster = KafkaCluster { addr, dir, nodes };
        cluster.restart_all().await;
        cluster
    }

    /// The node ids, `1..=n`.
    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node(&mut self, id: i32) -> &mut KafkaNode {
        self.nodes.iter_mut().find(|n| n.id == id).unwrap_or_else(|| panic!("no Kafka node {id}"))
    }

    /// Kills node `id` (SIGKILL: no controlled shutdown) and reaps it.
    pub fn kill(&mut self, id: i32) {
        if let Some(mut c) = self.node(id).child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills every node.
    pub fn kill_all(&mut self) {
        for id in self.node_ids() {
            self.kill(id);
        }
    }

    fn spawn(&mut self, id: i32) {
        let dir = self.dir.clone();
        let node = self.node(id);
        assert!(node.child.is_none(), "Kafka node {id} is already running");
        let log = std::fs::File::create(dir.join(format!("node-{id}/logs/stdout.log"))).expect("node stdout log");
        let child = Command::new(kafka_sh())
            .arg("run")
            .arg(&dir)
            .arg(id.to_string())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a Kafka node");
        node.child = Some(child);
    }

    async fn wait_ready(&self, id: i32) {
        let port = self.nodes.iter().find(|n| n.id == id).expect("node").port;
        // The PLAINTEXT port opens only once the broker is unfenced.
        wait_until(Duration::from_secs(120), &format!("Kafka node {id} to accept connections"), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
    }

    /// (Re)starts node `id` on its port and data, and waits until it serves clients.
    pub async fn restart(&mut self, id: i32) {
        self.spawn(id);
        self.wait_ready(id).await;
    }

    /// (Re)starts every stopped node together (a node serves clients only once a controller
    /// quorum formed) and waits until all serve clients.
    pub async fn restart_all(&mut self) {
        let stopped: Vec<i32> = self.nodes.iter().filter(|n| n.child.is_none()).map(|n| n.id).collect();
        for id in &stopped {
            self.spawn(*id);
        }
        for id in stopped {
            self.wait_ready(id).await;
        }
    }

    /// Every partition's (topic, partition, leader, replicas, in-sync replicas), internal
    /// topics included; `None` while the metadata cannot be fetched.
    async fn partitions(&self) -> Option<Vec<(String, i32, i32, usize, usize)>> {
        let addr = self.addr.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer =
                KafkaConfig::new(&addr).consumer("hcp-tests-metadata").create().expect("metadata client");
            let md = consumer.fetch_metadata(None, Duration::from_secs(5)).ok()?;
            Some(
                md.topics()
                    .iter()
                    .flat_map(|t| {
                        t.partitions()
                            .iter()
                            .map(|p| (t.name().to_owned(), p.id(), p.leader(), p.replicas().len(), p.isr().len()))
                    })
                    .collect(),
            )
        })
        .await
        .expect("metadata task")
    }

    /// The node leading the most partitions of `topic` (the lowest id on a tie).
    pub async fn leader_of_most(&self, topic: &str) -> i32 {
        let partitions = self.partitions().await.expect("cluster metadata");
        let mut led: std::collections::BTreeMap<i32, usize> = self.node_ids().into_iter().map(|id| (id, 0)).collect();
        for (_, _, leader, _, _) in partitions.iter().filter(|p| p.0 == topic) {
            if let Some(n) = led.get_mut(leader) {
                *n += 1;
            }
        }
        led.into_iter().max_by_key(|(id, n)| (*n, -id)).map(|(id, _)| id).expect("a node")
    }

    /// Waits until every partition has a leader and all its replicas in sync again (a restarted
    /// node has caught up), so the next fault starts from a whole cluster.
    pub async fn wait_in_sync(&self, timeout: Duration) {
        wait_until(timeout, "every partition to have a leader and all replicas in sync", || async {
            self.partitions().await.is_some_and(|ps| {
                !ps.is_empty() && ps.iter().all(|(_, _, leader, replicas, isr)| *leader >= 0 && isr == replicas)
            })
        })
        .await;
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for TestApp {
    /// Cancels the in-process aggregator and server, so a failing test ends instead of leaving
    /// the aggregator's blocking thread for the runtime to wait on forever.
    fn drop(&mut self) {
        if let Some((token, _)) = &self.aggregator {
            token.cancel();
        }
        if let Some(server) = &self.server {
            server.shutdown.cancel();
        }
    }
}

/// A private PostgreSQL cluster (own data directory and port) that a test may crash and restart
/// without disturbing the shared server. Runs as `postgres` when the tests run as root.
pub struct PrivatePostgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_root: bool,
}

impl PrivatePostgres {
    /// Initialises a cluster (owner `hcp`, trust auth) in a fresh directory and starts it.
    pub fn start() -> PrivatePostgres {
        let bin = std::env::var_os("HCP_PG_BIN").map(PathBuf::from).unwrap_or_else(|| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .expect("PostgreSQL installed under /usr/lib/postgresql (or HCP_PG_BIN)")
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join("pg_ctl").exists())
                .collect();
            found.sort_by_key(|p| p.to_string_lossy().split('/').nth(4).and_then(|v| v.parse::<u32>().ok()));
            found.pop().expect("a PostgreSQL bin directory")
        });
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        let as_root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = PathBuf::from("/var/tmp").join(format!("hcp-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let pg = PrivatePostgres { port: free_port(), dir, bin, as_root };
        if as_root {
            assert!(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&pg.dir).status().unwrap().success());
        }
        let data = pg.dir.join("data");
        let ok = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "hcp", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
            .stdout(Stdio::null())
            .status()
            .expect("initdb");
        assert!(ok.success(), "initdb failed");
        pg.resume();
        pg
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// A URL of the cluster's maintenance database.
    pub fn admin_url(&self) -> String {
        format!("postgres://hcp@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn resume(&self) {
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let ok = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "start", "-o", &opts])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl start");
        if !ok.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            panic!("pg_ctl start failed; its log:\n{log}");
        }
    }

    /// Kills the server: SIGKILL to the postmaster and every backend and helper it started, so
    /// nothing shuts down cleanly and the next start recovers from the WAL.
    pub fn kill(&self) {
        let Ok(pid_file) = std::fs::read_to_string(self.dir.join("data/postmaster.pid")) else { return };
        let Some(postmaster) = pid_file.lines().next().map(str::trim).filter(|p| !p.is_empty()) else { return };
        // Its children first (listed while it lives), then the postmaster itself.
        let children = Command::new("pgrep").args(["-P", postmaster]).output().expect("pgrep");
        let mut pids: Vec<String> =
            String::from_utf8_lossy(&children.stdout).split_whitespace().map(String::from).collect();
        pids.push(postmaster.to_owned());
        // A helper may have exited since it was listed: `kill` then reports it, and kills the rest.
        let _ = Command::new("kill").arg("-KILL").args(&pids).stderr(Stdio::null()).status();
        for pid in &pids {
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while proc_dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`).
    fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
