//! Fault injection (issue 7): while clients post ≥ 100 000 ratings, the broker, the aggregator
//! process and PostgreSQL are stopped and restarted at random moments (a seeded schedule,
//! loopback only, private broker and cluster). At the end every rating acknowledged with a 2xx
//! (or a 409 naming the rating that holds its stage) is counted exactly once, nothing else is
//! counted, and every bad rating has exactly one work order.
//!
//! Heavy, so ignored by a plain `cargo test`; `deploy/local/test.sh` runs it on its own:
//! `cargo test --test faults -- --ignored --nocapture`. `HCP_FAULTS_RATINGS` (default 100000),
//! `HCP_FAULTS_SEED` (default random, printed) and `HCP_FAULTS_WORKERS` (default 16) adjust it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DurationRound, Utc};
use hcp_tests::{PrivateBroker, PrivatePostgres, TestApp};
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

/// Posts ratings `items` (one: `POST /api/v1/ratings` with an Idempotency-Key; more: a batch);
/// per item (status, rating id or problem): 202 and 409 carry the acknowledged rating's id,
/// status 0 is a transport error.
async fn post(client: &reqwest::Client, url: &str, items: &[usize]) -> Vec<(u16, String)> {
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
    let Ok(r) = sent else { return vec![(0, String::new()); items.len()] };
    let status = r.status().as_u16();
    let Ok(v) = r.json::<Value>().await else { return vec![(0, String::new()); items.len()] };
    let one = |status: u16, v: &Value| -> (u16, String) {
        match status {
            202 => (202, v["rating_id"].as_str().unwrap().to_owned()),
            409 if v["type"] == "/problems/duplicate-rating" => {
                (409, v["existing_rating_id"].as_str().unwrap().to_owned())
            }
            s => (s, v.to_string()),
        }
    };
    if items.len() == 1 {
        return vec![one(status, &v)];
    }
    if status != 200 {
        return vec![(status, v.to_string()); items.len()];
    }
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let s = item["status"].as_u64().unwrap() as u16;
            if s == 202 {
                (202, item["rating_id"].as_str().unwrap().to_owned())
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
    /// 202 answers.
    accepted: usize,
    /// 409 duplicate-rating answers (an earlier attempt had been stored).
    duplicates: usize,
    /// 503 / 429 answers and connection errors, each retried.
    retried: usize,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Broker,
    Aggregator,
    Postgres,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "heavy (≥ 100 000 ratings with restarts): run by deploy/local/test.sh on its own"]
async fn broker_aggregator_and_postgres_restarts_lose_and_duplicate_nothing() {
    let total: usize = env_or("HCP_FAULTS_RATINGS", 100_000);
    let workers: usize = env_or("HCP_FAULTS_WORKERS", 16);
    let seed: u64 = env_or("HCP_FAULTS_SEED", rand::random());
    println!(
        "faults: {total} ratings, {workers} clients, seed {seed} (HCP_FAULTS_SEED={seed} reproduces the schedule)"
    );
    let started = Instant::now();
    let window_from = Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap();

    let pg = PrivatePostgres::start();
    let mut broker = PrivateBroker::start().await;
    let app = TestApp::start_on_stack(&broker.addr, &pg.admin_url()).await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.import_calendar_for_test().await;
    let agg_log = std::env::temp_dir().join(format!("hcp-faults-aggregator-{}.log", app.db_name));
    let mut aggregator = app.spawn_aggregator_process_logging(&agg_log);
    println!("faults: the aggregator process logs to {}", agg_log.display());

    // The clients: single POSTs (evaluators) and batches of 50 (platforms). Each takes the next
    // record numbers and retries each until it is acknowledged.
    let next = Arc::new(AtomicUsize::new(0));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let done = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, url, next, outcome) = (client.clone(), app.url.clone(), next.clone(), outcome.clone());
        let batch = if w % 4 == 0 { 1 } else { 50 };
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= total {
                    break;
                }
                let mut pending: Vec<usize> = (first..(first + batch).min(total)).collect();
                while !pending.is_empty() {
                    let answers = post(&client, &url, &pending).await;
                    let mut retry = Vec::new();
                    {
                        let mut o = outcome.lock().unwrap();
                        o.attempts += pending.len();
                        for (i, answer) in pending.iter().zip(answers) {
                            let record = record(*i);
                            match answer {
                                (202, id) => {
                                    o.accepted += 1;
                                    o.acked.insert(record, id);
                                }
                                (409, id) => {
                                    o.duplicates += 1;
                                    o.acked.insert(record, id);
                                }
                                (0 | 429 | 503, _) => {
                                    o.retried += 1;
                                    retry.push(*i);
                                }
                                (status, what) => panic!("{record}: unexpected {status}: {what}"),
                            }
                        }
                    }
                    pending = retry;
                    if !pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }));
    }
    let load = {
        let done = done.clone();
        tokio::spawn(async move {
            for t in tasks {
                t.await.expect("client task");
            }
            done.store(true, Ordering::Relaxed);
        })
    };

    // The chaos: every 2–6 s one of the three, round robin in a shuffled order, down for a
    // random 0.5–4 s. The aggregator process is also supervised: should it exit on its own, it
    // is restarted after a second (as systemd would).
    let mut rng = StdRng::seed_from_u64(seed);
    let mut schedule: Vec<Fault> = Vec::new();
    let mut log: Vec<String> = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let acked_now = |o: &Mutex<Outcome>| o.lock().unwrap().acked.len();
    let wait = |d: Duration| tokio::time::sleep(d);
    let all_faults = |c: &BTreeMap<&str, usize>| {
        ["broker killed and restarted", "aggregator process killed and restarted", "PostgreSQL crashed and restarted"]
            .iter()
            .all(|f| c.contains_key(f))
    };
    // Until the load is done and each fault has happened (later ones hit the catching-up aggregator).
    'chaos: while !(done.load(Ordering::Relaxed) && all_faults(&counts)) {
        let pause = Duration::from_millis(rng.gen_range(2_000..6_000));
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if done.load(Ordering::Relaxed) && all_faults(&counts) {
                break 'chaos;
            }
            if aggregator.0.try_wait().unwrap().is_some() {
                *counts.entry("aggregator exited by itself (restarted)").or_default() += 1;
                wait(Duration::from_secs(1)).await;
                aggregator = app.spawn_aggregator_process_logging(&agg_log);
            }
            wait(Duration::from_millis(250)).await;
        }
        if schedule.is_empty() {
            schedule = vec![Fault::Broker, Fault::Aggregator, Fault::Postgres];
            schedule.shuffle(&mut rng);
        }
        let fault = schedule.pop().unwrap();
        let down = Duration::from_millis(rng.gen_range(500..4_000));
        let at = started.elapsed().as_secs_f64();
        let acked = acked_now(&outcome);
        match fault {
            Fault::Broker => {
                broker.stop();
                wait(down).await;
                broker.resume().await;
                *counts.entry("broker killed and restarted").or_default() += 1;
            }
            Fault::Aggregator => {
                aggregator.kill();
                wait(down).await;
                aggregator = app.spawn_aggregator_process_logging(&agg_log);
                *counts.entry("aggregator process killed and restarted").or_default() += 1;
            }
            Fault::Postgres => {
                pg.crash();
                wait(down).await;
                pg.resume();
                *counts.entry("PostgreSQL crashed and restarted").or_default() += 1;
            }
        }
        let line = format!("  t={at:6.1}s  {fault:?} down {:.1}s (acknowledged so far: {acked})", down.as_secs_f64());
        println!("{line}");
        log.push(line);
    }
    load.await.unwrap();
    let load_secs = started.elapsed().as_secs_f64();
    println!("faults: load and faults finished after {load_secs:.0} s; waiting for the aggregator to catch up");
    if aggregator.0.try_wait().unwrap().is_some() {
        aggregator = app.spawn_aggregator_process_logging(&agg_log);
    }
    // A batch's positions are saved only after its rows committed and its events were
    // acknowledged: caught up means stored, counted and published.
    app.wait_caught_up(Duration::from_secs(600)).await;
    let outcome = std::mem::take(&mut *outcome.lock().unwrap());
    aggregator.kill();
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

    // Reconcile.
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
            window_from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        ))
        .await;
    let counted = summary["total"].as_u64().unwrap() as usize;
    let mut expected_grades = [0u64; 5];
    for r in outcome.acked.keys() {
        expected_grades[grade(r[2..].parse().unwrap()) as usize - 1] += 1;
    }
    let counted_grades: Vec<u64> = (1..=5).map(|g| summary["counts"][g.to_string()].as_u64().unwrap()).collect();

    println!("faults injected ({:.0} s of load):", load_secs);
    for line in &log {
        println!("{line}");
    }
    for (what, n) in &counts {
        println!("  {what}: {n}");
    }
    println!(
        "faults: sent {} attempts for {total} ratings; acknowledged {} ({} x 202, {} x 409 naming the stored rating; {} retried after 503/429/connection errors)",
        outcome.attempts,
        outcome.acked.len(),
        outcome.accepted,
        outcome.duplicates,
        outcome.retried
    );
    let unpublished = stored.iter().filter(|(_, id, _)| !published.contains(&id.to_string())).count();
    println!(
        "faults: {published_records} attributed events for {} ratings, {unpublished} stored ratings without one",
        published.len()
    );
    println!(
        "faults: stored {} ratings, counted {counted} (per grade {counted_grades:?}, expected {expected_grades:?}); {orders} work orders for {bad_acked} bad ratings, {bad_without_order} bad without an order; {other_id} acknowledged under another id than stored",
        stored.len()
    );

    for fault in
        ["broker killed and restarted", "aggregator process killed and restarted", "PostgreSQL crashed and restarted"]
    {
        assert!(counts.contains_key(fault), "{fault}: not injected (a longer run is needed): {counts:?}");
    }
    assert_eq!(outcome.acked.len(), total, "every rating was acknowledged in the end");
    assert_eq!(stored.len(), total, "stored exactly once each");
    assert_eq!(stored_records, acked_records, "stored = acknowledged, nothing else");
    assert_eq!(other_id, 0, "every acknowledged id is the stored one");
    assert_eq!(counted, total, "the aggregates count each acknowledged rating once");
    assert_eq!(counted_grades, expected_grades.to_vec());
    assert_eq!(orders as usize, bad_acked, "one work order per bad rating");
    assert_eq!(bad_without_order, 0);
    assert_eq!(unpublished, 0, "every stored rating has its attributed event");
    assert_eq!(published.len(), total, "attributed events only for stored ratings");
    drop(app);
    drop(broker);
    drop(pg);
}
