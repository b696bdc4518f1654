//! The pipeline as separate processes on a three-node Apache Kafka cluster (replication factor 3,
//! `min.insync.replicas=2`), under faults and under a rebalance.
//!
//! - [`kafka_nodes_cluster_aggregators_postgres_and_ingest_killed_under_load`] (issue 21): while
//!   clients post ≥ 100 000 ratings (single and batch POSTs) through two ingest processes, the
//!   broker leading the most partitions is killed twice, the whole cluster once, the aggregator
//!   process twice, PostgreSQL once and one ingest process once (its clients fail over to the
//!   other), each restarted. Every fault is injected while ratings are still being sent: the
//!   clients may run at most one step (a ninth of the ratings) ahead of the next fault, and the
//!   schedule is asserted.
//! - [`a_province_on_one_machine_rebalances_and_counts_exactly`]: two ingests, three aggregators
//!   sharing a 12-partition topic; one aggregator stops mid-load and starts again (the group
//!   rebalances twice).
//!
//! Both reconcile exactly: every rating acknowledged with a 2xx (or a 409 naming the rating that
//! holds its stage) is stored and counted once under the id the client was given, nothing else
//! is, every bad rating has one work order and every stored rating an attributed event.
//!
//! Heavy, so ignored by a plain `cargo test`; `deploy/local/test.sh` runs them one at a time:
//! `cargo test --test faults -- --ignored --nocapture --test-threads 1`. `HCP_FAULTS_RATINGS`
//! (default 100000), `HCP_FAULTS_RATE` (offered ratings per second, default 1500),
//! `HCP_FAULTS_SEED` (default random, printed), `HCP_SCALEOUT_RATINGS` (default 30000) adjust them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use hcp_tests::{free_port, wait_until, ChildProcess, KafkaCluster, PrivatePostgres, TestApp};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const CITY: &str = include_str!("fixtures/attribution-city.json");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The grade of rating `i` (a fixed mix: 40 % bad).
fn grade(i: usize) -> i64 {
    [5, 1, 4, 2, 3][i % 5]
}

fn record(i: usize) -> String {
    format!("F-{i:06}")
}

fn rating(i: usize) -> Value {
    let mut body = json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": record(i),
                          "hall_id": "H1", "window_id": "W2", "staff_id": "S1", "grade": grade(i)});
    if grade(i) <= 2 {
        body["tags"] = json!(["rude"]);
    }
    body
}

/// What one attempt at one rating got.
enum Answer {
    /// 202, or a 409 naming the rating that holds the stage: the rating id acknowledged.
    Acked(String),
    /// No answer (connection refused or cut), 429, 503, or 409 `rating-in-progress`: retry;
    /// says which.
    Retry(&'static str),
}

/// Posts ratings `items` to the ingest at `url` (one: `POST /api/v1/ratings` with an
/// Idempotency-Key, as an evaluator does; more: a batch, as a platform does); an answer per item.
async fn post(client: &reqwest::Client, url: &str, items: &[usize]) -> Vec<Answer> {
    let retry_all = || items.iter().map(|_| Answer::Retry("no answer")).collect();
    let sent = if let [i] = items {
        client
            .post(format!("{url}/api/v1/ratings"))
            .header("Idempotency-Key", record(*i))
            .json(&rating(*i))
            .send()
            .await
    } else {
        let ratings: Vec<Value> = items.iter().map(|i| rating(*i)).collect();
        client.post(format!("{url}/api/v1/ratings/batch")).json(&json!({ "ratings": ratings })).send().await
    };
    let Ok(r) = sent else { return retry_all() };
    let status = r.status().as_u16();
    let Ok(v) = r.json::<Value>().await else { return retry_all() };
    let one = |status: u16, v: &Value| match status {
        202 => Answer::Acked(v["rating_id"].as_str().expect("rating_id").to_owned()),
        409 if v["type"] == "/problems/duplicate-rating" => {
            Answer::Acked(v["existing_rating_id"].as_str().expect("existing_rating_id").to_owned())
        }
        409 if v["type"] == "/problems/rating-in-progress" => Answer::Retry("409 rating-in-progress"),
        429 => Answer::Retry("429"),
        503 if v["type"] == "/problems/broker-unavailable" => Answer::Retry("503 broker-unavailable"),
        503 if v["type"] == "/problems/database-unavailable" => Answer::Retry("503 database-unavailable"),
        503 => Answer::Retry("503 other"),
        s => panic!("{items:?}: unexpected {s}: {v}"),
    };
    if items.len() == 1 {
        return vec![one(status, &v)];
    }
    if status != 200 {
        return items.iter().map(|_| one(status, &v)).collect();
    }
    v["items"]
        .as_array()
        .expect("batch items")
        .iter()
        .map(|item| {
            let s = item["status"].as_u64().expect("item status") as u16;
            if s == 202 {
                one(202, item)
            } else {
                one(s, &item["problem"])
            }
        })
        .collect()
}

/// What the clients saw.
#[derive(Default)]
struct Outcome {
    /// Record number → the rating id the service acknowledged (202, or the 409's holder).
    acked: BTreeMap<String, String>,
    /// Attempts, including retries.
    attempts: usize,
    /// Retries, by what the attempt got (no answer, 429, 503, `rating-in-progress`).
    retried: BTreeMap<&'static str, usize>,
    /// Acknowledgements per ingest (index into the ingest URLs).
    per_ingest: [usize; 2],
    /// When the last acknowledgement arrived.
    last_ack: Option<Instant>,
}

/// Clients posting `total` ratings through two ingests at an offered `rate` per second: one in
/// four posts single ratings, the others batches of 50. Each client has a home ingest and moves
/// to the other one when its ingest does not answer. No record at or past `cap` is sent until
/// the cap moves (the fault schedule keeps the clients from finishing before it is done).
struct Load {
    outcome: Arc<Mutex<Outcome>>,
    acked: Arc<AtomicUsize>,
    cap: Arc<AtomicUsize>,
    started: Instant,
    clients: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(urls: [String; 2], total: usize, rate: f64, cap: usize) -> Load {
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let (acked, cap) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(cap)));
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        let mut tasks = Vec::new();
        for w in 0..16 {
            let (client, urls, next, outcome, acked, cap) =
                (client.clone(), urls.clone(), next.clone(), outcome.clone(), acked.clone(), cap.clone());
            let batch = if w % 4 == 0 { 1 } else { 50 };
            let mut ingest = w % 2;
            tasks.push(tokio::spawn(async move {
                loop {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    if first >= total {
                        break;
                    }
                    tokio::time::sleep_until((started + Duration::from_secs_f64(first as f64 / rate)).into()).await;
                    while first >= cap.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let mut pending: Vec<usize> = (first..(first + batch).min(total)).collect();
                    while !pending.is_empty() {
                        let answers = post(&client, &urls[ingest], &pending).await;
                        let mut retry = Vec::new();
                        {
                            let mut o = outcome.lock().unwrap();
                            o.attempts += pending.len();
                            for (i, answer) in pending.iter().zip(answers) {
                                match answer {
                                    Answer::Acked(id) => {
                                        o.acked.insert(record(*i), id);
                                        o.per_ingest[ingest] += 1;
                                        o.last_ack = Some(Instant::now());
                                        acked.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Answer::Retry(why) => {
                                        *o.retried.entry(why).or_default() += 1;
                                        retry.push(*i);
                                    }
                                }
                            }
                        }
                        if retry.len() == pending.len() {
                            // Nothing got through: the other ingest may answer.
                            ingest = 1 - ingest;
                        }
                        pending = retry;
                        if !pending.is_empty() {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }));
        }
        let clients = tokio::spawn(async move {
            for t in tasks {
                t.await.expect("client task");
            }
        });
        Load { outcome, acked, cap, started, clients }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    async fn finish(self) -> Outcome {
        self.clients.await.expect("clients");
        std::mem::take(&mut *self.outcome.lock().unwrap())
    }
}

/// An ingest process on a fixed address, so it can be killed and started again.
struct Ingest {
    addr: String,
    log: PathBuf,
    process: Option<ChildProcess>,
}

impl Ingest {
    async fn start(app: &TestApp, name: &str) -> Ingest {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::env::temp_dir().join(format!("hcp-{name}-{}.log", app.db_name));
        let mut ingest = Ingest { addr, log, process: None };
        ingest.restart(app).await;
        ingest
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    async fn restart(&mut self, app: &TestApp) {
        self.process = Some(app.spawn_serve("ingest", Some(&self.addr), &self.log));
        let url = format!("{}/healthz", self.url());
        wait_until(Duration::from_secs(60), &format!("ingest {} to answer", self.addr), || {
            let url = url.clone();
            async move { reqwest::get(url).await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
    }
}

/// Every rating acknowledged is stored and counted once under its acknowledged id, nothing else
/// is; one work order per bad rating; an attributed event for every stored rating. Prints the
/// figures, then asserts them.
async fn reconcile(app: &TestApp, outcome: &Outcome, total: usize, since: DateTime<Utc>) {
    let attributed_topic = app.config.topics().rating_attributed;
    let kafka = app.kafka();
    let published_records: i64 = {
        let topic = attributed_topic.clone();
        tokio::task::spawn_blocking(move || hcp_bus::fetch_high_watermarks(&kafka, &topic, Duration::from_secs(10)))
            .await
            .unwrap()
            .unwrap()
            .values()
            .sum()
    };
    let published: BTreeSet<String> = app
        .read_records(attributed_topic, published_records as usize)
        .await
        .into_iter()
        .map(|(key, _)| String::from_utf8(key).unwrap())
        .collect();

    let pool = app.store.pool();
    let stored: Vec<(String, uuid::Uuid, i16)> =
        sqlx::query_as("SELECT service_record_no, rating_id, grade FROM ratings").fetch_all(pool).await.unwrap();
    let stored_records: BTreeSet<&String> = stored.iter().map(|(r, _, _)| r).collect();
    let acked_records: BTreeSet<&String> = outcome.acked.keys().collect();
    let other_id =
        stored.iter().filter(|(r, id, _)| outcome.acked.get(r).is_some_and(|a| *a != id.to_string())).count();
    let bad_acked = outcome.acked.keys().filter(|r| grade(r[2..].parse().unwrap()) <= 2).count();
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM work_orders").fetch_one(pool).await.unwrap();
    let bad_without_order: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ratings r WHERE grade <= 2 AND NOT EXISTS (SELECT 1 FROM work_orders o WHERE o.rating_id = r.rating_id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let to = Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap() + chrono::Duration::hours(1);
    let summary = app
        .summary(&format!(
            "scope=all&from={}&to={}",
            since.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        ))
        .await;
    let counted = summary["total"].as_u64().unwrap() as usize;
    let mut expected_grades = [0u64; 5];
    for r in outcome.acked.keys() {
        expected_grades[grade(r[2..].parse().unwrap()) as usize - 1] += 1;
    }
    let counted_grades: Vec<u64> = (1..=5).map(|g| summary["counts"][g.to_string()].as_u64().unwrap()).collect();
    let unpublished = stored.iter().filter(|(_, id, _)| !published.contains(&id.to_string())).count();

    println!(
        "  sent {} attempts for {total} ratings; acknowledged {} ({} through ingest 1, {} through ingest 2); retried {:?}",
        outcome.attempts,
        outcome.acked.len(),
        outcome.per_ingest[0],
        outcome.per_ingest[1],
        outcome.retried
    );
    println!(
        "  stored {} ratings, counted {counted} (per grade {counted_grades:?}, expected {expected_grades:?}); {orders} work orders for {bad_acked} bad ratings, {bad_without_order} bad without an order; {other_id} acknowledged under another id than stored",
        stored.len()
    );
    println!(
        "  {published_records} attributed events for {} ratings, {unpublished} stored ratings without one",
        published.len()
    );

    assert_eq!(outcome.acked.len(), total, "every rating was acknowledged in the end");
    assert!(outcome.per_ingest.iter().all(|n| *n > 0), "both ingests carried load: {:?}", outcome.per_ingest);
    assert_eq!(stored.len(), total, "stored exactly once each");
    assert_eq!(stored_records, acked_records, "stored = acknowledged, nothing else");
    assert_eq!(other_id, 0, "every acknowledged id is the stored one");
    assert_eq!(counted, total, "the aggregates count each acknowledged rating once");
    assert_eq!(counted_grades, expected_grades.to_vec());
    assert_eq!(orders as usize, bad_acked, "one work order per bad rating");
    assert_eq!(bad_without_order, 0);
    assert_eq!(unpublished, 0, "every stored rating has its attributed event");
    assert_eq!(published.len(), total, "attributed events only for stored ratings");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// SIGKILL of the broker leading the most partitions of the rating topic, restarted.
    BrokerLeader,
    /// SIGKILL of every broker, restarted together.
    Cluster,
    /// SIGKILL of the aggregator process, restarted.
    Aggregator,
    /// SIGKILL of PostgreSQL (postmaster and backends), restarted (recovery from the WAL).
    Postgres,
    /// SIGKILL of one ingest process (its clients fail over to the other), restarted.
    Ingest,
}

/// Every fault the run injects, in a seeded shuffled order.
const FAULTS: [Fault; 7] = [
    Fault::BrokerLeader,
    Fault::BrokerLeader,
    Fault::Cluster,
    Fault::Aggregator,
    Fault::Aggregator,
    Fault::Postgres,
    Fault::Ingest,
];

/// One injected fault, for the printed schedule.
struct Injected {
    fault: Fault,
    what: String,
    /// Seconds since the load started.
    at: f64,
    acked: usize,
    down: Duration,
    back_after: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "heavy (≥ 100 000 ratings, a three-node Kafka cluster, faults): run by deploy/local/test.sh on its own"]
async fn kafka_nodes_cluster_aggregators_postgres_and_ingest_killed_under_load() {
    let total: usize = env_or("HCP_FAULTS_RATINGS", 100_000);
    let rate: f64 = env_or("HCP_FAULTS_RATE", 1_500.0);
    let seed: u64 = env_or("HCP_FAULTS_SEED", rand::random());
    println!(
        "faults: {total} ratings offered at {rate}/s through two ingests, seed {seed} (HCP_FAULTS_SEED={seed} reproduces the schedule)"
    );
    let since = Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap();

    let pg = PrivatePostgres::start();
    let mut cluster = KafkaCluster::three().await;
    let app = TestApp::start_on_cluster(&cluster, &pg.admin_url(), 6).await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.import_calendar_for_test().await;
    let topic = app.topic();
    let agg_log = std::env::temp_dir().join(format!("hcp-faults-aggregator-{}.log", app.db_name));
    let mut aggregator = app.spawn_aggregator_process_logging(&agg_log);
    let mut ingests = [Ingest::start(&app, "faults-ingest-1").await, Ingest::start(&app, "faults-ingest-2").await];
    println!("faults: logs {}, {}, {}", agg_log.display(), ingests[0].log.display(), ingests[1].log.display());

    // Fault k is injected once the clients have `step(k + 1)` acknowledgements; until it is, they
    // send nothing past `step(k + 2)`, so every fault lands while ratings are still being sent.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut schedule = FAULTS.to_vec();
    schedule.shuffle(&mut rng);
    let step = |k: usize| (total * k / (FAULTS.len() + 2)).min(total);
    let load = Load::start([ingests[0].url(), ingests[1].url()], total, rate, step(2));
    let mut injected: Vec<Injected> = Vec::new();
    let mut restarted_by_supervisor = 0;
    for (k, fault) in schedule.iter().copied().enumerate() {
        // Wait for the step, restarting an aggregator that exited by itself (as systemd would).
        while load.acked() < step(k + 1) {
            if aggregator.0.try_wait().unwrap().is_some() {
                restarted_by_supervisor += 1;
                aggregator = app.spawn_aggregator_process_logging(&agg_log);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let down = Duration::from_millis(rng.gen_range(500..3_000));
        let (at, acked) = (load.secs(), load.acked());
        load.cap.store(step(k + 3), Ordering::Relaxed);
        let what = match fault {
            Fault::BrokerLeader => {
                let node = cluster.leader_of_most(&topic).await;
                cluster.kill(node);
                tokio::time::sleep(down).await;
                let restarted = Instant::now();
                cluster.restart(node).await;
                let serving = restarted.elapsed().as_secs_f64();
                cluster.wait_in_sync(Duration::from_secs(180)).await;
                format!(
                    "Kafka node {node} (leading the most partitions of the rating topic) SIGKILLed; serving {serving:.1}s and in sync {:.1}s after its restart",
                    restarted.elapsed().as_secs_f64()
                )
            }
            Fault::Cluster => {
                cluster.kill_all();
                tokio::time::sleep(down).await;
                let restarted = Instant::now();
                cluster.restart_all().await;
                let serving = restarted.elapsed().as_secs_f64();
                cluster.wait_in_sync(Duration::from_secs(180)).await;
                format!(
                    "all three Kafka nodes SIGKILLed; serving {serving:.1}s and in sync {:.1}s after their restart",
                    restarted.elapsed().as_secs_f64()
                )
            }
            Fault::Aggregator => {
                aggregator.kill();
                tokio::time::sleep(down).await;
                aggregator = app.spawn_aggregator_process_logging(&agg_log);
                "the aggregator process SIGKILLed".to_owned()
            }
            Fault::Postgres => {
                pg.kill();
                tokio::time::sleep(down).await;
                pg.resume();
                "PostgreSQL SIGKILLed (postmaster and backends)".to_owned()
            }
            Fault::Ingest => {
                let which = rng.gen_range(0..2);
                ingests[which].kill();
                tokio::time::sleep(down).await;
                ingests[which].restart(&app).await;
                format!("ingest process {} SIGKILLed", which + 1)
            }
        };
        let back_after = load.secs() - at;
        println!(
            "  t={at:6.1}s  acknowledged {acked:6}  {what}; down {:.1}s, back after {back_after:.1}s",
            down.as_secs_f64()
        );
        injected.push(Injected { fault, what, at, acked, down, back_after });
    }
    load.cap.store(total, Ordering::Relaxed);
    let started = load.started;
    let outcome = load.finish().await;
    let load_secs = started.elapsed().as_secs_f64();
    let last_ack = outcome.last_ack.expect("acknowledgements").duration_since(started).as_secs_f64();
    println!("faults: last acknowledgement at t={last_ack:.1}s; waiting for the aggregator to catch up");
    if aggregator.0.try_wait().unwrap().is_some() {
        restarted_by_supervisor += 1;
        aggregator = app.spawn_aggregator_process_logging(&agg_log);
    }
    app.wait_caught_up(Duration::from_secs(600)).await;
    aggregator.kill();

    println!("faults: schedule ({load_secs:.0} s of load, last acknowledgement at t={last_ack:.1}s):");
    for f in &injected {
        println!(
            "  t={:6.1}s  {:?}: {} ({} acknowledged of {total}; down {:.1}s, back after {:.1}s)",
            f.at,
            f.fault,
            f.what,
            f.acked,
            f.down.as_secs_f64(),
            f.back_after
        );
    }
    println!("  the aggregator exited by itself and was restarted {restarted_by_supervisor} times");
    reconcile(&app, &outcome, total, since).await;

    for kind in [Fault::BrokerLeader, Fault::Cluster, Fault::Aggregator, Fault::Postgres, Fault::Ingest] {
        let wanted = FAULTS.iter().filter(|f| **f == kind).count();
        assert_eq!(injected.iter().filter(|f| f.fault == kind).count(), wanted, "{kind:?} injected {wanted} times");
    }
    for f in &injected {
        assert!(
            f.acked < total && f.at < last_ack,
            "{:?} at t={:.1}s landed after the load ({} acknowledged, last at t={last_ack:.1}s)",
            f.fault,
            f.at,
            f.acked
        );
    }
    drop(ingests);
    drop(app);
    drop(cluster);
    drop(pg);
}

/// Lines of `log` saying the process was given partitions (a rebalance it took part in).
fn assignments(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains("partitions assigned")).count()
}

/// Waits until each aggregator in `who` logged an assignment more than `before` says it had.
async fn wait_rebalanced(logs: &[PathBuf], before: &[usize], who: &[usize], what: &str) {
    wait_until(Duration::from_secs(120), what, || async { who.iter().all(|&i| assignments(&logs[i]) > before[i]) })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "heavy (a three-node Kafka cluster, five hcp processes): run by deploy/local/test.sh on its own"]
async fn a_province_on_one_machine_rebalances_and_counts_exactly() {
    let total: usize = env_or("HCP_SCALEOUT_RATINGS", 30_000);
    let rate: f64 = env_or("HCP_FAULTS_RATE", 1_500.0);
    let since = Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap();
    let cluster = KafkaCluster::three().await;
    let admin_url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through deploy/local/test.sh");
    let app = TestApp::start_on_cluster(&cluster, &admin_url, 12).await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.import_calendar_for_test().await;
    let log = |name: &str| std::env::temp_dir().join(format!("hcp-province-{name}-{}.log", app.db_name));
    let agg_logs: Vec<PathBuf> = (1..=3).map(|i| log(&format!("aggregator-{i}"))).collect();
    let mut aggregators: Vec<ChildProcess> = agg_logs.iter().map(|l| app.spawn_aggregator_process_logging(l)).collect();
    let ingests = [Ingest::start(&app, "province-ingest-1").await, Ingest::start(&app, "province-ingest-2").await];
    println!(
        "province: {total} ratings at {rate}/s through 2 ingests, 3 aggregators on a 12-partition topic (logs {})",
        agg_logs[0].parent().unwrap().display()
    );

    // Aggregator 2 stops (SIGTERM: it finishes its batches and leaves the group) once a third is
    // acknowledged, and starts again at two thirds; the load cannot finish before.
    let load = Load::start([ingests[0].url(), ingests[1].url()], total, rate, total / 2);
    wait_until(Duration::from_secs(600), "a third of the ratings acknowledged", || async { load.acked() >= total / 3 })
        .await;
    let before: Vec<usize> = agg_logs.iter().map(|l| assignments(l)).collect();
    let (stop_at, stop_acked) = (load.secs(), load.acked());
    assert!(aggregators[1].terminate().success(), "aggregator 2 stops cleanly");
    load.cap.store(total * 5 / 6, Ordering::Relaxed);
    wait_rebalanced(&agg_logs, &before, &[0, 2], "aggregators 1 and 3 to take over aggregator 2's partitions").await;
    wait_until(Duration::from_secs(600), "two thirds acknowledged", || async { load.acked() >= total * 2 / 3 }).await;
    let before: Vec<usize> = agg_logs.iter().map(|l| assignments(l)).collect();
    let (start_at, start_acked) = (load.secs(), load.acked());
    aggregators[1] = app.spawn_aggregator_process_logging(&agg_logs[1]);
    load.cap.store(total, Ordering::Relaxed);
    wait_rebalanced(&agg_logs, &before, &[0, 1, 2], "all three aggregators to share the partitions again").await;
    let started = load.started;
    let outcome = load.finish().await;
    let last_ack = outcome.last_ack.expect("acknowledgements").duration_since(started).as_secs_f64();
    println!("  t={stop_at:6.1}s  acknowledged {stop_acked:6}  aggregator 2 stopped (SIGTERM); the group rebalanced onto 1 and 3");
    println!("  t={start_at:6.1}s  acknowledged {start_acked:6}  aggregator 2 started again; the group rebalanced onto all three");
    println!("  last acknowledgement at t={last_ack:.1}s");
    assert!(start_acked < total && start_at < last_ack, "both rebalances happened under load");

    app.wait_caught_up(Duration::from_secs(300)).await;
    let assigned: Vec<usize> = agg_logs.iter().map(|l| assignments(l)).collect();
    println!("  assignments seen per aggregator: {assigned:?}");
    for a in &mut aggregators {
        a.kill();
    }
    reconcile(&app, &outcome, total, since).await;
    drop(ingests);
}
