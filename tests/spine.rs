//! The spine, black-box: ratings over HTTP → Kafka (real broker) → aggregator → PostgreSQL
//! (fresh database) → `GET /api/v1/stats/summary`, with exact counts per scope and grade,
//! through aggregator crashes, redelivery, a stopped broker, a database connection cut
//! mid-request and malformed input.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::stream::{self, StreamExt};
use hcp_bus::RatingProducer;
use hcp_tests::{around_now, wait_until, KafkaCluster, TestApp};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Window → (department, staff on duty).
const WINDOWS: &[(&str, &str, &str)] =
    &[("W1", "D1", "S1"), ("W2", "D1", "S2"), ("W3", "D2", "S3"), ("W4", "D3", "S4"), ("W5", "D3", "S5")];

/// The directory the spine's ratings are attributed against: each window serves its one
/// department at both stages, staff belong to their window's department, H1 is a hotline agent
/// of the hotline centre, and each department owns one service item.
fn spine_directory() -> Value {
    let uscc =
        ["91440300708461136T", "91350100M000100Y43", "11440300MB2C923854", "11440300MB2C800018", "11440300MB2C80002B"];
    let depts: Vec<Value> = ["D1", "D2", "D3", "D9", "D-HL"]
        .iter()
        .zip(uscc)
        .map(|(d, u)| json!({"id": d, "uscc": u, "name": format!("部门{d}"), "region_code": "449900"}))
        .collect();
    let mut windows: Vec<Value> = WINDOWS
        .iter()
        .map(|(w, d, _)| json!({"id": w, "hall_id": "H1", "name": format!("窗口{w}"), "role": "both", "department_ids": [d]}))
        .collect();
    windows.push(json!({"id": "W9", "hall_id": "H1", "name": "窗口W9", "role": "both", "department_ids": ["D9"]}));
    let mut staff: Vec<Value> =
        WINDOWS.iter().map(|(_, d, s)| json!({"id": s, "name": format!("人员{s}"), "department_id": d})).collect();
    staff.push(json!({"id": "H1", "name": "接线员", "department_id": "D-HL"}));
    let items: Vec<Value> = ["D1", "D2", "D3"]
        .iter()
        .map(|d| json!({"code": format!("ITEM-{d}"), "name": "事项", "department_id": d}))
        .collect();
    let devices: Vec<Value> = WINDOWS
        .iter()
        .map(|(w, _, _)| json!({"id": format!("EV-{w}"), "kind": "evaluator", "hall_id": "H1", "window_id": w}))
        .collect();
    json!({
        "regions": [{"code": "449900", "name": "示范市"}],
        "departments": depts,
        "halls": [{"id": "H1", "name": "大厅", "region_code": "449900"}],
        "windows": windows,
        "devices": devices,
        "staff": staff,
        "service_items": items,
    })
}

/// Expected grade counts per (scope, id).
type Expected = HashMap<(String, String), [i64; 5]>;

/// One malformed-body case: name, body, content type, status, problem type, failing field.
type Case = (&'static str, String, &'static str, u16, &'static str, Option<&'static str>);

/// `n` ratings over 3 departments and 5 windows plus online and hotline ratings, and the counts
/// every scope must show, computed here independently of hcp.
fn ratings(n: usize, seed: u64) -> (Vec<Value>, Expected) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut bodies = Vec::with_capacity(n);
    let mut expected = Expected::new();
    for i in 0..n {
        let grade: i64 = rng.gen_range(1..=5);
        let mut scopes = vec![("all".to_string(), "all".to_string())];
        let mut body = match rng.gen_range(0..10) {
            0..=6 => {
                let (w, d, s) = WINDOWS[rng.gen_range(0..WINDOWS.len())];
                let stage = if rng.gen_bool(0.5) { "acceptance" } else { "pickup" };
                scopes.extend(
                    [("department", d), ("window", w), ("staff", s), ("channel", "window_evaluator"), ("stage", stage)]
                        .map(|(a, b)| (a.to_string(), b.to_string())),
                );
                json!({"channel": "window_evaluator", "stage": stage, "department_id": d, "window_id": w, "staff_id": s, "hall_id": "H1", "device_id": format!("EV-{w}")})
            }
            7..=8 => {
                let d = ["D1", "D2", "D3"][rng.gen_range(0..3)];
                scopes.extend(
                    [("department", d), ("channel", "app"), ("stage", "online")]
                        .map(|(a, b)| (a.to_string(), b.to_string())),
                );
                json!({"channel": "app", "stage": "online", "department_id": d, "service_item_code": format!("ITEM-{d}")})
            }
            _ => {
                scopes.extend(
                    [("department", "D2"), ("staff", "H1"), ("channel", "hotline"), ("stage", "hotline")]
                        .map(|(a, b)| (a.to_string(), b.to_string())),
                );
                json!({"channel": "hotline", "stage": "hotline", "department_id": "D2", "staff_id": "H1"})
            }
        };
        body["service_record_no"] = json!(format!("SP-{seed}-{i:05}"));
        body["grade"] = json!(grade);
        if grade <= 2 {
            body["tags"] = json!(["long_wait"]);
        }
        for s in scopes {
            expected.entry(s).or_default()[(grade - 1) as usize] += 1;
        }
        bodies.push(body);
    }
    (bodies, expected)
}

async fn assert_counts(app: &TestApp, expected: &Expected) {
    let range = around_now();
    let mut checked = 0;
    for ((scope, id), counts) in expected {
        let s = app.summary(&format!("scope={scope}&id={id}&{range}")).await;
        let got: Vec<i64> = (1..=5).map(|g| s["counts"][g.to_string()].as_i64().unwrap()).collect();
        assert_eq!(got, counts.to_vec(), "scope {scope} {id}");
        let total: i64 = counts.iter().sum();
        assert_eq!(s["total"], total, "total of {scope} {id}");
        assert_eq!(s["bad_review_count"], counts[0] + counts[1], "bad of {scope} {id}");
        let rate = (counts[2] + counts[3] + counts[4]) as f64 / total as f64;
        assert!((s["satisfaction_rate"].as_f64().unwrap() - rate).abs() < 1e-12, "rate of {scope} {id}");
        checked += 1;
    }
    // all, 3 departments, 5 windows, 6 staff, 3 channels, 4 stages.
    assert_eq!(checked, 22);
}

async fn wait_total(app: &TestApp, total: i64, timeout: Duration) {
    let range = around_now();
    wait_until(timeout, &format!("{total} ratings counted"), || async {
        app.summary(&format!("scope=all&{range}")).await["total"].as_i64() == Some(total)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_ratings_are_counted_exactly_per_scope_and_grade() {
    let mut app = TestApp::start().await;
    app.import_directory(&spine_directory()).await;
    app.start_aggregator();
    let (bodies, expected) = ratings(1000, 1);
    app.post_all_accepted(&bodies).await;
    wait_total(&app, 1000, Duration::from_secs(60)).await;
    assert_counts(&app, &expected).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 1000);

    // Every record on the topic is keyed by its record number and matches the event schema.
    let schema: Value = serde_json::from_str(include_str!("../schemas/rating-submitted.v1.json")).unwrap();
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).unwrap();
    let records = app.read_topic(1000).await;
    assert_eq!(records.len(), 1000);
    for (key, body) in &records {
        let event: Value = serde_json::from_slice(body).unwrap();
        let errors: Vec<String> = validator.iter_errors(&event).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{event}: {errors:?}");
        assert_eq!(event["service_record_no"].as_str().unwrap().as_bytes(), key.as_slice());
    }
    app.stop_aggregator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aggregator_killed_and_restarted_mid_stream_with_redelivery_counts_exactly() {
    let app = TestApp::start().await;
    app.import_directory(&spine_directory()).await;
    let (bodies, expected) = ratings(1000, 2);
    let mut aggregator = app.spawn_aggregator_process();

    let poster = {
        let (url, bodies) = (app.url.clone(), bodies.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let ok = stream::iter(bodies)
                .map(|b| {
                    let (client, url) = (client.clone(), url.clone());
                    async move {
                        client.post(format!("{url}/api/v1/ratings")).json(&b).send().await.unwrap().status().as_u16()
                    }
                })
                .buffer_unordered(8)
                .filter(|s| std::future::ready(*s == 202))
                .count()
                .await;
            assert_eq!(ok, 1000, "every rating accepted");
        })
    };

    // Crash (SIGKILL) once ratings are flowing, restart; stop gracefully (SIGTERM) later, restart.
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "200 ratings stored", || async { store.count_ratings().await.unwrap() >= 200 })
        .await;
    aggregator.kill();
    let at_kill = store.count_ratings().await.unwrap();
    assert!(at_kill < 1000, "the kill must land mid-stream (stored {at_kill})");
    aggregator = app.spawn_aggregator_process();
    // The restarted process must have stored something itself before it is stopped: a SIGTERM
    // that lands before it installed its handler (when the killed one had already stored 600)
    // would end it by the signal's default, which is no graceful stop at all.
    let wanted = (at_kill + 1).max(600);
    wait_until(Duration::from_secs(60), "the restarted aggregator storing ratings", || async {
        store.count_ratings().await.unwrap() >= wanted
    })
    .await;
    assert!(aggregator.terminate().success(), "graceful stop exits 0");
    aggregator = app.spawn_aggregator_process();
    poster.await.unwrap();

    // The broker delivers 100 records a second time.
    let records = app.read_topic(1000).await;
    assert_eq!(records.len(), 1000);
    let producer = RatingProducer::new(&app.kafka(), &app.config.topics()).unwrap();
    for (key, body) in records.iter().take(100) {
        producer.publish_raw(std::str::from_utf8(key).unwrap(), body).await.unwrap();
    }

    app.wait_caught_up(Duration::from_secs(90)).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 1000);
    wait_total(&app, 1000, Duration::from_secs(10)).await;
    assert_counts(&app, &expected).await;
    aggregator.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_stopped_means_503_within_10s_and_nothing_counted() {
    let mut broker = KafkaCluster::single().await;
    let mut app = TestApp::start_on(&broker.addr).await;
    app.import_directory(&spine_directory()).await;
    app.start_aggregator();
    let (bodies, _) = ratings(5, 3);
    app.post_all_accepted(&bodies).await;
    wait_total(&app, 5, Duration::from_secs(60)).await;

    broker.kill(1);
    let (later, _) = ratings(3, 4);
    let started = Instant::now();
    let answers: Vec<(u16, String, Value)> = stream::iter(&later)
        .map(|b| async {
            let r = app.post_rating(b).await;
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            (r.status().as_u16(), ct, r.json::<Value>().await.unwrap())
        })
        .buffer_unordered(3)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "answered in {elapsed:?}");
    for (status, ct, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(ct, "application/problem+json");
        assert_eq!(body["type"], "/problems/broker-unavailable");
    }
    let ready = app.client.get(format!("{}/readyz", app.url)).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    // Back up: the aggregator drains the topic and the refused ratings never appear.
    broker.restart(1).await;
    app.wait_caught_up(Duration::from_secs(90)).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 5);
    assert_eq!(app.summary(&format!("scope=all&{}", around_now())).await["total"], 5);

    // Ingest recovers without a restart: the next rating is accepted and counted.
    let (again, _) = ratings(1, 5);
    wait_until(Duration::from_secs(30), "ingest to accept again", || async {
        app.post_rating(&again[0]).await.status() == 202
    })
    .await;
    wait_total(&app, 6, Duration::from_secs(60)).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 6);
    app.stop_aggregator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_connection_cut_mid_claim_means_503_and_the_retry_is_accepted() {
    let app = TestApp::start().await;
    app.import_directory(&spine_directory()).await;
    let body = json!({"channel": "app", "stage": "online", "department_id": "D1",
        "service_item_code": "ITEM-D1", "service_record_no": "CUT-1", "grade": 4});
    // Another transaction holds the key, so the claim waits on it in PostgreSQL.
    let mut holder = app.store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO rating_claims (service_record_no, stage, assess_number, rating_id, state)
         VALUES ('CUT-1', 'online', 1, $1, 'pending')",
    )
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *holder)
    .await
    .unwrap();
    let posting = {
        let (client, url, body) = (app.client.clone(), app.url.clone(), body.clone());
        tokio::spawn(async move { client.post(format!("{url}/api/v1/ratings")).json(&body).send().await.unwrap() })
    };
    let pool = app.store.pool().clone();
    let waiting = "SELECT pid FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%hcp_claim_ratings%'";
    wait_until(Duration::from_secs(10), "the claim waiting for the held key", || {
        let pool = pool.clone();
        let done = posting.is_finished();
        async move {
            assert!(!done, "answered before its key was free");
            sqlx::query_scalar::<_, i32>(waiting).fetch_optional(&pool).await.unwrap().is_some()
        }
    })
    .await;
    // The server ends the claim's connection, as a restarting or crashing PostgreSQL does
    // (SQLSTATE 57P01): the client is told to retry, not that the server has a bug.
    let pid: i32 = sqlx::query_scalar(waiting).fetch_one(&pool).await.unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(&pool).await.unwrap();
    assert!(ended);
    let r = posting.await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/database-unavailable", "{problem}");

    // The cut claim left nothing behind: once the key is free, the retry is accepted.
    holder.rollback().await.unwrap();
    let r = app.post_rating(&body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM rating_claims WHERE service_record_no = 'CUT-1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(claims, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_problem_json_4xx_and_count_nothing() {
    let mut app = TestApp::start().await;
    app.start_aggregator();
    let valid = json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "M-1", "grade": 5});
    let with = |k: &str, v: Value| {
        let mut b = valid.clone();
        b[k] = v;
        b.to_string()
    };
    let without = |k: &str| {
        let mut b = valid.clone();
        b.as_object_mut().unwrap().remove(k);
        b.to_string()
    };
    let cases: Vec<Case> = vec![
        ("bad JSON", "{\"grade\": 5,".into(), "application/json", 400, "malformed-json", None),
        ("empty body", String::new(), "application/json", 400, "malformed-json", None),
        ("grade 0", with("grade", json!(0)), "application/json", 422, "validation-failed", Some("grade")),
        ("grade 6", with("grade", json!(6)), "application/json", 422, "validation-failed", Some("grade")),
        ("grade as text", with("grade", json!("five")), "application/json", 422, "validation-failed", Some("grade")),
        (
            "missing record number",
            without("service_record_no"),
            "application/json",
            422,
            "validation-failed",
            Some("service_record_no"),
        ),
        (
            "unknown channel",
            with("channel", json!("fax")),
            "application/json",
            422,
            "validation-failed",
            Some("channel"),
        ),
        ("unknown field", with("grad", json!(5)), "application/json", 422, "validation-failed", Some("grad")),
        (
            "1 MB comment",
            with("comment", json!("差".repeat(350_000))),
            "application/json",
            413,
            "payload-too-large",
            None,
        ),
        (
            "bad review without evidence",
            with("grade", json!(1)),
            "application/json",
            422,
            "validation-failed",
            Some("tags"),
        ),
        ("array body", "[1,2]".into(), "application/json", 422, "validation-failed", None),
        ("not JSON content type", valid.to_string(), "text/plain", 415, "unsupported-media-type", None),
    ];
    for (name, body, ct, status, kind, field) in cases {
        let r = app
            .client
            .post(format!("{}/api/v1/ratings", app.url))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{name}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["type"], format!("/problems/{kind}"), "{name}: {p}");
        assert_eq!(p["status"], status, "{name}");
        assert!(p["title"].as_str().is_some_and(|t| t.is_ascii() && !t.is_empty()), "{name}: English title");
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_ascii()), "{name}: Chinese detail {p}");
        if let Some(field) = field {
            assert_eq!(p["errors"][0]["field"], field, "{name}: {p}");
            assert!(p["errors"][0]["message"].as_str().is_some_and(|m| !m.is_ascii()), "{name}");
        }
    }
    // Only the one valid rating is ever counted.
    assert_eq!(app.post_rating(&valid).await.status(), 202);
    app.wait_caught_up(Duration::from_secs(60)).await;
    assert_eq!(app.summary(&format!("scope=all&{}", around_now())).await["total"], 1);
    assert_eq!(app.store.count_ratings().await.unwrap(), 1);
    app.stop_aggregator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_replaces_the_first_grade_and_both_stay_in_history() {
    let mut app = TestApp::start().await;
    app.import_directory(&spine_directory()).await;
    app.start_aggregator();
    let first = json!({"channel": "window_evaluator", "stage": "pickup", "service_record_no": "F-1", "grade": 2,
                       "tags": ["long_wait"], "window_id": "W9", "department_id": "D9",
                       "dimensions": {"service_attitude": 1, "efficiency": 3}});
    assert_eq!(app.post_rating(&first).await.status(), 202);
    wait_total(&app, 1, Duration::from_secs(60)).await;
    assert_eq!(app.dimension_counts("window:W9", "service_attitude").await, [1, 0, 0, 0, 0]);
    let mut follow = first.clone();
    follow["grade"] = json!(4);
    follow["assess_number"] = json!(2);
    follow["dimensions"] = json!({"service_attitude": 4, "competence": 5});
    follow.as_object_mut().unwrap().remove("tags");
    assert_eq!(app.post_rating(&follow).await.status(), 202);
    // Same stage of another record, and the acceptance stage of this one: counted separately.
    let other_stage = json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "F-1", "grade": 5, "window_id": "W9", "department_id": "D9"});
    assert_eq!(app.post_rating(&other_stage).await.status(), 202);
    app.wait_caught_up(Duration::from_secs(60)).await;
    let s = app.summary(&format!("scope=window&id=W9&{}", around_now())).await;
    assert_eq!(s["counts"], json!({"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}), "{s}");
    assert_eq!(s["bad_review_count"], 0);
    assert_eq!(app.store.count_ratings().await.unwrap(), 3, "first, follow-up and the other stage are all kept");
    // The board's split rows moved with it: the first's 差评 tag is gone from them.
    assert!(app.assert_rollups_match_ratings().await > 0);
    let tagged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rating_splits WHERE dimension = 'tag' AND n1 + n2 + n3 + n4 + n5 <> 0",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(tagged, 0);
    // The dimension grades moved with it: the first's are gone, the follow-up's count.
    for (scope, code, counts) in [
        ("window:W9", "service_attitude", [0, 0, 0, 1, 0]),
        ("all:all", "service_attitude", [0, 0, 0, 1, 0]),
        ("window:W9", "efficiency", [0; 5]),
        ("department:D9", "competence", [0, 0, 0, 0, 1]),
    ] {
        assert_eq!(app.dimension_counts(scope, code).await, counts, "{scope} {code}");
    }
    app.stop_aggregator().await;
}

/// With `HCP_METRICS_TOKEN` set, `/metrics` answers only to it, and only it sees `/readyz`'s
/// dependency details; sessions and channel keys are not monitoring tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_token_guards_metrics_and_readiness_details() {
    const TOKEN: &str = "prometheus-scrape-token-0123";
    let app = TestApp::start_with(|c| c.metrics_token = Some(hcp_http::MonitoringToken::parse(TOKEN).unwrap())).await;
    let get = |path: &str, bearer: Option<&str>| {
        let mut req = app.client.get(format!("{}{path}", app.url));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // A process is ready once its producer has reached the broker: under a loaded test run that
    // can take longer than /readyz's 2 s just after the start, so wait for it first.
    wait_until(Duration::from_secs(30), "the server ready", || async { get("/readyz", Some(TOKEN)).await.0 == 200 })
        .await;
    for bearer in [None, Some(app.admin.as_str()), Some("prometheus-scrape-token-012"), Some("wrong")] {
        let (status, body) = get("/metrics", bearer).await;
        assert_eq!(status, 401, "{bearer:?}: {body}");
        assert!(body.contains("/problems/unauthenticated") && !body.contains("hcp_"), "{body}");
        let (status, body) = get("/readyz", bearer).await;
        assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()), (200, json!({"status": "ready"})));
    }
    let (status, body) = get("/metrics", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.lines().any(|l| l.starts_with("hcp_http_requests_total")), "{body}");
    let (status, body) = get("/readyz", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "ready", "checks": {"broker": "ok", "database": "ok"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_endpoints_answer() {
    let app = TestApp::start().await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.url)).send();
    let health: Value = get("/healthz").await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    // Anonymous callers learn ready or not, nothing about the dependencies.
    assert_eq!(ready, json!({"status": "ready"}));
    assert_eq!(
        app.post_rating(&json!({"channel": "web", "stage": "online", "service_record_no": "O-1", "grade": 4}))
            .await
            .status(),
        202
    );
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for name in [
        "hcp_http_requests_total",
        "hcp_http_request_duration_seconds",
        "hcp_ingest_ratings_accepted_total",
        "hcp_ingest_publish_seconds",
    ] {
        assert!(metrics.lines().any(|l| l.starts_with(name)), "{name} missing from /metrics");
    }
    assert!(
        metrics.lines().filter(|l| !l.starts_with('#')).all(|l| l.starts_with("hcp_") || l.starts_with("process_")),
        "only hcp_ metrics"
    );
    let spec: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    for path in ["/api/v1/ratings", "/api/v1/stats/summary", "/healthz", "/readyz", "/metrics"] {
        assert!(spec["paths"][path].is_object(), "{path} not in OpenAPI");
    }
    assert_eq!(
        spec["components"]["schemas"]["RatingInput"]["required"],
        json!(["channel", "stage", "service_record_no", "grade"]),
        "the contract names the required rating fields"
    );
    let docs = get("/docs").await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("接口文档"));
    let missing = get("/nope").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    let wrong_method = get("/api/v1/ratings").await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let bad_scope = app
        .client
        .get(format!("{}/api/v1/stats/summary?scope=planet", app.url))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_scope.status(), 400);
    assert_eq!(bad_scope.json::<Value>().await.unwrap()["type"], "/problems/invalid-query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_on_the_topic_are_stored_and_published_once() {
    let mut app = TestApp::start().await;
    app.start_aggregator();
    let producer = RatingProducer::new(&app.kafka(), &app.config.topics()).unwrap();
    let rating = |record: &str| {
        hcp_domain::RatingInput {
            channel: Some("app".into()),
            stage: Some("online".into()),
            service_record_no: Some(record.into()),
            grade: Some(4),
            ..Default::default()
        }
        .validate(uuid::Uuid::now_v7(), chrono::Utc::now())
        .unwrap()
    };
    // Bypassing ingest's claims: the same rating twice, and another id for the same slot.
    let (a, c, d) = (rating("DUP-1"), rating("DUP-2"), rating("DUP-3"));
    let b = rating("DUP-1");
    for e in [&a, &a, &b, &c] {
        producer.publish(e).await.unwrap();
    }
    app.wait_caught_up(Duration::from_secs(60)).await;
    // Again, once both are stored: a rating already stored and a slot already taken.
    for e in [&a, &b, &d] {
        producer.publish(e).await.unwrap();
    }
    app.wait_caught_up(Duration::from_secs(60)).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 3);
    let records = app.read_records_settled(app.config.topics().rating_attributed, 3, Duration::from_millis(1500)).await;
    let mut keys: Vec<String> = records.iter().map(|(k, _)| String::from_utf8(k.clone()).unwrap()).collect();
    keys.sort();
    let mut expected: Vec<String> = [&a, &c, &d].iter().map(|e| e.rating_id.to_string()).collect();
    expected.sort();
    assert_eq!(keys, expected, "one attributed event per stored rating, none for the duplicates");
    app.stop_aggregator().await;
}

/// The aggregator prepares a batch while the previous one is still being written: which ratings
/// it will find new must count that pending batch as stored (its ids and its slots), whether it
/// has committed yet or not, as well as what is stored and what comes earlier in the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ratings_expected_new_count_the_pending_batch_as_stored() {
    let app = TestApp::start().await;
    let event = |record: &str| online_rating(record, 3);
    let stored = event("EXP-STORED");
    app.store.apply_batch(&unattributed_batch(&[&stored])).await.unwrap();
    let pending = event("EXP-PENDING");
    let pending_batch = unattributed_batch(&[&pending]).ratings;
    let (same_slot_as_pending, fresh) = (event("EXP-PENDING"), event("EXP-FRESH"));
    let fresh_again_other_id = event("EXP-FRESH");
    let next = unattributed_batch(&[&stored, &pending, &same_slot_as_pending, &fresh, &fresh_again_other_id]).ratings;

    let expected = app.store.publishable("store-test", &next, &pending_batch).await.unwrap().new;
    assert_eq!(expected, [fresh.rating_id].into(), "only the rating neither stored, pending nor earlier in the batch");
    // Nothing pending: the pending batch's ratings are new again.
    let expected = app.store.publishable("store-test", &next, &[]).await.unwrap().new;
    assert_eq!(expected, [pending.rating_id, fresh.rating_id].into());
    // The pending batch committed meanwhile: the same answer as while it was pending.
    app.store.apply_batch(&unattributed_batch(&[&pending])).await.unwrap();
    let expected = app.store.publishable("store-test", &next, &pending_batch).await.unwrap().new;
    assert_eq!(expected, [fresh.rating_id].into());
    let expected = app.store.publishable("store-test", &next, &[]).await.unwrap().new;
    assert_eq!(expected, [fresh.rating_id].into());
}

/// The write inserts the ratings expected new without conflict checks; when another writer stored
/// one of them (or took its slot) in between, it falls back to skipping conflicts and stores
/// exactly the ratings not stored before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rating_stored_meanwhile_makes_the_expected_insert_fall_back() {
    let app = TestApp::start().await;
    // Nothing in between: the expected ratings are stored as they are.
    let (d, e) = (online_rating("FB-D", 4), online_rating("FB-E", 5));
    let quiet = unattributed_batch(&[&d, &e]);
    let expected = app.store.publishable("store-test", &quiet.ratings, &[]).await.unwrap().new;
    let pending = app.store.write_rows(&quiet, Some(&expected)).await.unwrap();
    assert_eq!(pending.new_ids, [d.rating_id, e.rating_id].into());
    let outcome = pending.commit().await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (2, 0));

    // Another writer stores `b` and takes `c`'s slot after the look-up.
    let (a, b, c) = (online_rating("FB-A", 1), online_rating("FB-B", 2), online_rating("FB-C", 3));
    let next = unattributed_batch(&[&a, &b, &c]);
    let expected = app.store.publishable("store-test", &next.ratings, &[]).await.unwrap().new;
    assert_eq!(expected, [a.rating_id, b.rating_id, c.rating_id].into());
    let c_elsewhere = online_rating("FB-C", 5);
    app.store.apply_batch(&unattributed_batch(&[&b, &c_elsewhere])).await.unwrap();
    let pending = app.store.write_rows(&next, Some(&expected)).await.unwrap();
    assert_eq!(pending.new_ids, [a.rating_id].into(), "only the rating nobody stored in between");
    let outcome = pending.commit().await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (1, 2));
    assert_eq!(app.store.count_ratings().await.unwrap(), 5);
    let holder: uuid::Uuid = sqlx::query_scalar("SELECT rating_id FROM ratings WHERE service_record_no = 'FB-C'")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(holder, c_elsewhere.rating_id, "the slot stays with the rating stored first");
}

/// A batch whose rows committed but whose positions were not saved (the aggregator stopped
/// before its events were acknowledged) is read again: its ratings are then found stored from
/// these very records and published again, not stored or counted again. The same rating in
/// another record, or another rating in a taken slot, is not published again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ratings_stored_from_the_same_records_are_published_again() {
    let app = TestApp::start().await;
    let (a, b) = (online_rating("AGAIN-A", 5), online_rating("AGAIN-B", 1));
    let first_read = unattributed_batch(&[&a, &b]);
    let rows = app.store.write_rows(&first_read, None).await.unwrap();
    rows.commit().await.unwrap();
    let positions = app.store.load_positions("store-test", "store-test", &[0]).await.unwrap();
    assert!(positions.is_empty(), "rows alone save no position");

    let expected = app.store.publishable("store-test", &first_read.ratings, &[]).await.unwrap();
    assert_eq!(expected.new, HashSet::new());
    assert_eq!(expected.again, [a.rating_id, b.rating_id].into());
    // Read from another topic, or at other offsets (the topic holding `a` twice, a rating in
    // `b`'s slot): stored, but not from these records.
    let elsewhere = app.store.publishable("other-topic", &first_read.ratings, &[]).await.unwrap();
    assert_eq!((elsewhere.new.len(), elsewhere.again.len()), (0, 0));
    let b_slot = online_rating("AGAIN-B", 4);
    let later = unattributed_batch(&[&online_rating("AGAIN-C", 3), &a, &b_slot]);
    let expected = app.store.publishable("store-test", &later.ratings, &[]).await.unwrap();
    assert_eq!(expected.new, [later.ratings[0].event.rating_id].into());
    assert_eq!(expected.again, HashSet::new());

    // Written again, the read stores and counts nothing new.
    let outcome = app.store.write_rows(&first_read, Some(&HashSet::new())).await.unwrap().commit().await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates, outcome.orders_opened), (0, 2, 0));
    assert_eq!(app.store.count_ratings().await.unwrap(), 2);
}

/// What an aggregator stopped between a batch's row commit and its positions leaves behind: the
/// ratings stored and counted, no position, no attributed events. The next aggregator reads the
/// batch again, stores and counts nothing twice, and publishes the events of those ratings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_committed_without_positions_are_published_on_the_next_read() {
    let mut app = TestApp::start().await;
    let producer = RatingProducer::new(&app.kafka(), &app.config.topics()).unwrap();
    let events: Vec<_> = (3..=5).map(|grade| online_rating(&format!("REREAD-{grade}"), grade)).collect();
    let directory = app.store.load_directory().await.unwrap();
    let mut batch =
        hcp_store::Batch { group_id: app.config.aggregator_group.clone(), topic: app.topic(), ..Default::default() };
    for e in &events {
        let (partition, offset) = producer.publish(e).await.unwrap();
        batch.ratings.push(hcp_store::StoredRating {
            event: e.clone(),
            attribution: hcp_domain::attribute(&directory, e, e.rated_at),
            partition,
            offset,
            integrity_flags: Vec::new(),
        });
    }
    app.store.write_rows(&batch, None).await.unwrap().commit().await.unwrap();
    assert_eq!(app.summary(&format!("scope=all&{}", around_now())).await["total"], 3);

    app.start_aggregator();
    app.wait_caught_up(Duration::from_secs(60)).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 3);
    assert_eq!(app.summary(&format!("scope=all&{}", around_now())).await["total"], 3, "counted once");
    let records = app.read_records_settled(app.config.topics().rating_attributed, 3, Duration::from_millis(1500)).await;
    let mut keys: Vec<String> = records.iter().map(|(k, _)| String::from_utf8(k.clone()).unwrap()).collect();
    keys.sort();
    let mut expected: Vec<String> = events.iter().map(|e| e.rating_id.to_string()).collect();
    expected.sort();
    assert_eq!(keys, expected, "each stored rating of the batch read again is published");
    app.stop_aggregator().await;
}

/// A valid online rating of `record` received now (a bad one with the comment it needs).
fn online_rating(record: &str, grade: i64) -> hcp_domain::RatingSubmitted {
    hcp_tests::online_rating_at(record, grade, Utc::now())
}

/// A batch of `events` as the store takes it, read from partition 0 in order, not attributed.
fn unattributed_batch(events: &[&hcp_domain::RatingSubmitted]) -> hcp_store::Batch {
    hcp_store::Batch {
        group_id: "store-test".into(),
        topic: "store-test".into(),
        ratings: events
            .iter()
            .enumerate()
            .map(|(i, e)| hcp_store::StoredRating {
                event: (*e).clone(),
                attribution: Default::default(),
                partition: 0,
                offset: i as i64,
                integrity_flags: Vec::new(),
            })
            .collect(),
        ..Default::default()
    }
}
