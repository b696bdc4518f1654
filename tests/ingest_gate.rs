//! The ingest gate: every channel authenticated by its own key (the channel and device come from
//! the key), revoked and unknown keys refused, one first rating per service record and stage
//! answered with 409 naming the first, Idempotency-Key retries, and batches that an offline
//! terminal can replay without creating duplicates.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hcp_tests::{around_now, wait_until, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Row;

const CITY: &str = include_str!("fixtures/attribution-city.json");

async fn start() -> (TestApp, String) {
    let mut app = TestApp::start_with(|c| c.ingest_auth_required = true).await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.start_aggregator();
    let admin = app.account("root", "admin", None, None).await;
    (app, admin)
}

async fn issue(app: &TestApp, admin: &str, body: Value) -> (String, String) {
    let (s, r) = app.call(Method::POST, "/api/v1/credentials", admin, Some(body.clone())).await;
    assert_eq!(s, 201, "{body}: {r}");
    (r["token"].as_str().unwrap().to_owned(), r["credential"]["key_id"].as_str().unwrap().to_owned())
}

async fn post(app: &TestApp, key: Option<&str>, idem: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
    let mut req = app.client.post(format!("{}{path}", app.url)).json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(i) = idem {
        req = req.header("Idempotency-Key", i);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn stored(app: &TestApp, n: i64) {
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), &format!("{n} ratings stored"), || async {
        store.count_ratings().await.unwrap() == n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_channel_sends_with_its_own_key_and_a_revoked_key_is_refused() {
    let (app, admin) = start().await;
    let (evaluator, evaluator_id) = issue(
        &app,
        &admin,
        json!({"kind": "device", "channel": "window_evaluator", "device_id": "E-W2", "name": "2 号窗评价器"}),
    )
    .await;
    let mut keys = vec![("window_evaluator", evaluator.clone())];
    for channel in ["hotline", "app", "web", "mini_program"] {
        let (k, _) =
            issue(&app, &admin, json!({"kind": "integration", "channel": channel, "name": format!("{channel} 对接")}))
                .await;
        keys.push((channel, k));
    }
    // Wrong pairings are refused when issuing.
    for (bad, field) in [
        (json!({"kind": "integration", "channel": "window_evaluator", "name": "x"}), "kind"),
        (json!({"kind": "device", "channel": "window_evaluator", "device_id": "NOPE", "name": "x"}), "device_id"),
        (json!({"kind": "device", "channel": "window_evaluator", "name": "x"}), "device_id"),
        (json!({"kind": "integration", "channel": "qr_code", "name": "x"}), "kind"),
    ] {
        let (s, p) = app.call(Method::POST, "/api/v1/credentials", &admin, Some(bad)).await;
        assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some(field)));
    }
    let handler = app.account("li", "handler", Some("D-B"), None).await;
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/credentials",
            &handler,
            Some(json!({"kind": "integration", "channel": "app", "name": "x"})),
        )
        .await;
    assert_eq!(s, 403);

    // Each key sends its channel's rating; the body does not name the channel (or the device).
    let bodies = [
        json!({"stage": "acceptance", "service_record_no": "K-1", "service_item_code": "I-A", "grade": 5}),
        json!({"stage": "hotline", "service_record_no": "K-2", "staff_id": "A1", "grade": 4}),
        json!({"stage": "online", "service_record_no": "K-3", "service_item_code": "I-B", "grade": 5}),
        json!({"stage": "online", "service_record_no": "K-4", "service_item_code": "I-B", "grade": 3}),
        json!({"stage": "online", "service_record_no": "K-5", "service_item_code": "I-A", "grade": 4}),
    ];
    for ((channel, key), body) in keys.iter().zip(&bodies) {
        let (s, r) = post(&app, Some(key), None, "/api/v1/ratings", body).await;
        assert_eq!(s, 202, "{channel}: {r}");
    }
    stored(&app, 5).await;
    let rows = sqlx::query(
        "SELECT service_record_no, channel, device_id, attr_window_id, attr_department_id FROM ratings ORDER BY 1",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get("service_record_no"), r.get("channel"))).collect();
    let want: Vec<(String, String)> =
        keys.iter().enumerate().map(|(i, (c, _))| (format!("K-{}", i + 1), c.to_string())).collect();
    assert_eq!(got, want);
    // The evaluator's key carries its device, so the rating lands on that device's window.
    assert_eq!(rows[0].get::<Option<String>, _>("device_id").as_deref(), Some("E-W2"));
    assert_eq!(rows[0].get::<Option<String>, _>("attr_window_id").as_deref(), Some("W2"));
    assert_eq!(rows[2].get::<Option<String>, _>("attr_department_id").as_deref(), Some("D-B"));

    // A body naming another channel or device than the key's is refused.
    let (s, p) = post(
        &app,
        Some(&evaluator),
        None,
        "/api/v1/ratings",
        &json!({"channel": "app", "stage": "online", "service_record_no": "K-9", "grade": 5}),
    )
    .await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("channel")));
    let (s, p) = post(
        &app,
        Some(&evaluator),
        None,
        "/api/v1/ratings",
        &json!({"device_id": "E-W1", "stage": "acceptance", "service_record_no": "K-9", "grade": 5}),
    )
    .await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("device_id")));

    // No key, a forged key, a revoked key: 401 credential-invalid, nothing produced.
    let body = json!({"stage": "acceptance", "service_record_no": "K-10", "grade": 5});
    let (s, p) = post(&app, None, None, "/api/v1/ratings", &body).await;
    assert_eq!((s, p["type"].as_str()), (401, Some("/problems/credential-invalid")));
    let forged = format!("{}x", &evaluator[..evaluator.len() - 1]);
    let (s, _) = post(&app, Some(&forged), None, "/api/v1/ratings", &body).await;
    assert_eq!(s, 401);
    let (s, c) = app.call(Method::POST, &format!("/api/v1/credentials/{evaluator_id}/revoke"), &admin, None).await;
    assert_eq!((s, c["revoked_at"].is_string()), (200, true));
    let (s, p) = post(&app, Some(&evaluator), None, "/api/v1/ratings", &body).await;
    assert_eq!((s, p["type"].as_str()), (401, Some("/problems/credential-invalid")));
    assert!(p["detail"].as_str().unwrap().contains("吊销"));
    let (_, list) = app.call(Method::GET, "/api/v1/credentials", &admin, None).await;
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|c| c.get("secret_sha256").is_none() && c.get("token").is_none()));
    let used = listed.iter().find(|c| c["key_id"] == evaluator_id.as_str()).unwrap();
    assert!(used["last_used_at"].is_string(), "last use recorded: {used}");
    app.wait_caught_up(Duration::from_secs(30)).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_of_an_attempt_cut_off_mid_flight_waits_then_completes_under_its_first_id() {
    let (app, admin) = start().await;
    let (key, _) = issue(&app, &admin, json!({"kind": "integration", "channel": "app", "name": "app"})).await;
    // An ingest claimed the stage and died before producing (or answering): the claim is pending.
    let cut_off = uuid::Uuid::now_v7();
    let claim = ("P-1".to_string(), "online".to_string(), 1i16, cut_off);
    let claimed = app.store.claim_ratings(&[claim], Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed, vec![hcp_store::Claim::Claimed]);

    // The client's retry is told to come back later, with nothing recorded; not a duplicate.
    let body = json!({"stage": "online", "service_record_no": "P-1", "grade": 1, "tags": ["slow_process"]});
    let r = app
        .client
        .post(format!("{}/api/v1/ratings", app.url))
        .bearer_auth(&key)
        .header("Idempotency-Key", "p-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let retry_after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "/problems/rating-in-progress", "{p}");
    assert!(p.get("existing_rating_id").is_none(), "no rating is named: none may ever be stored");
    assert_eq!(retry_after, app.config.produce_timeout.as_secs() * 2 + 5, "Retry-After is the takeover age");
    let (s, b) = post(&app, Some(&key), None, "/api/v1/ratings/batch", &json!({ "ratings": [body.clone()] })).await;
    assert_eq!((s, b["items"][0]["status"].as_u64()), (200, Some(409)));
    assert_eq!(b["items"][0]["problem"]["type"], "/problems/rating-in-progress");

    // Once the claim is older than the takeover age, the retry produces it under the first id.
    sqlx::query("UPDATE rating_claims SET claimed_at = now() - interval '1 hour' WHERE service_record_no = 'P-1'")
        .execute(app.store.pool())
        .await
        .unwrap();
    let (s, a) = post(&app, Some(&key), Some("p-1"), "/api/v1/ratings", &body).await;
    assert_eq!(s, 202, "{a}");
    assert_eq!(a["rating_id"], cut_off.to_string(), "the id of the attempt that was cut off");
    let (s, p) = post(&app, Some(&key), None, "/api/v1/ratings", &body).await;
    assert_eq!((s, p["existing_rating_id"].as_str()), (409, Some(cut_off.to_string().as_str())));
    stored(&app, 1).await;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM work_orders WHERE rating_id = $1")
        .bind(cut_off)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(orders, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_first_rating_is_409_and_idempotent_retries_get_the_first_answer() {
    let (app, admin) = start().await;
    let (key, _) = issue(&app, &admin, json!({"kind": "integration", "channel": "app", "name": "app"})).await;
    let body = json!({"stage": "online", "service_record_no": "D-1", "service_item_code": "I-A", "grade": 2, "tags": ["slow_process"]});
    let (s, first) = post(&app, Some(&key), None, "/api/v1/ratings", &body).await;
    assert_eq!(s, 202);
    let first_id = first["rating_id"].as_str().unwrap().to_owned();
    let (s, p) = post(
        &app,
        Some(&key),
        None,
        "/api/v1/ratings",
        &json!({"stage": "online", "service_record_no": "D-1", "grade": 5}),
    )
    .await;
    assert_eq!((s, p["type"].as_str()), (409, Some("/problems/duplicate-rating")));
    assert_eq!(p["existing_rating_id"].as_str(), Some(first_id.as_str()));
    // The follow-up (追评) is its own slot: accepted once, then 409 too.
    let follow = json!({"stage": "online", "service_record_no": "D-1", "grade": 4, "assess_number": 2});
    assert_eq!(post(&app, Some(&key), None, "/api/v1/ratings", &follow).await.0, 202);
    assert_eq!(post(&app, Some(&key), None, "/api/v1/ratings", &follow).await.0, 409);
    // A follow-up needs a first rating, within the window (15 days by default).
    let orphan = json!({"stage": "online", "service_record_no": "D-9", "grade": 4, "assess_number": 2});
    let (s, p) = post(&app, Some(&key), None, "/api/v1/ratings", &orphan).await;
    assert_eq!((s, p["errors"][0]["code"].as_str()), (422, Some("follow_up_without_first")));
    let first9 = json!({"stage": "online", "service_record_no": "D-9", "grade": 2, "comment": "太慢"});
    assert_eq!(post(&app, Some(&key), None, "/api/v1/ratings", &first9).await.0, 202);
    sqlx::query("UPDATE rating_claims SET claimed_at = now() - interval '16 days' WHERE service_record_no = 'D-9'")
        .execute(app.store.pool())
        .await
        .unwrap();
    let (s, p) = post(&app, Some(&key), None, "/api/v1/ratings", &orphan).await;
    assert_eq!((s, p["errors"][0]["code"].as_str()), (422, Some("follow_up_window")));

    // Idempotency-Key: the same key and body replay the first answer; another body is refused.
    let b2 = json!({"stage": "online", "service_record_no": "D-2", "grade": 5});
    let (s1, a1) = post(&app, Some(&key), Some("retry-1"), "/api/v1/ratings", &b2).await;
    let (s2, a2) = post(&app, Some(&key), Some("retry-1"), "/api/v1/ratings", &b2).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(a1, a2, "the retry gets the same rating id");
    let (s, p) = post(
        &app,
        Some(&key),
        Some("retry-1"),
        "/api/v1/ratings",
        &json!({"stage": "online", "service_record_no": "D-3", "grade": 5}),
    )
    .await;
    assert_eq!((s, p["type"].as_str()), (422, Some("/problems/idempotency-key-reused")));
    stored(&app, 4).await;
    app.wait_caught_up(Duration::from_secs(30)).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 4);
    let s = app.summary(&format!("scope=all&{}", around_now())).await;
    // D-1's follow-up (4) replaced its first (2); D-2 is 5; D-9 is 2.
    assert_eq!((s["total"].as_i64(), s["bad_review_count"].as_i64()), (Some(3), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_a_batch_twice_leaves_the_counts_unchanged() {
    let (app, admin) = start().await;
    let r = app
        .client
        .put(format!("{}/api/v1/directory/devices/T-H1", app.url))
        .bearer_auth(&admin)
        .json(&json!({"id": "T-H1", "kind": "terminal", "hall_id": "H1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (key, _) = issue(
        &app,
        &admin,
        json!({"kind": "device", "channel": "self_service_terminal", "device_id": "T-H1", "name": "自助终端"}),
    )
    .await;
    let now = Utc::now();
    let mut ratings: Vec<Value> = (0..40)
        .map(|i| {
            let at: DateTime<Utc> = now - chrono::Duration::minutes(40 - i);
            json!({"stage": "acceptance", "service_record_no": format!("B-{i:03}"), "service_item_code": "I-A",
                   "grade": 1 + (i % 5), "tags": if i % 5 < 2 { json!(["slow_process"]) } else { json!([]) },
                   "rated_at": at.to_rfc3339()})
        })
        .collect();
    ratings.push(json!({"stage": "acceptance", "service_record_no": "B-BAD", "grade": 9}));
    ratings.push(json!({"stage": "acceptance", "service_record_no": "B-000", "grade": 5}));
    let batch = json!({ "ratings": ratings });
    let (s, r) = post(&app, Some(&key), None, "/api/v1/ratings/batch", &batch).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!((r["accepted"].as_u64(), r["invalid"].as_u64(), r["duplicates"].as_u64()), (Some(40), Some(1), Some(1)));
    assert_eq!(r["items"][40]["status"], 422);
    assert_eq!(r["items"][40]["problem"]["errors"][0]["field"], "grade");
    assert_eq!(r["items"][41]["problem"]["existing_rating_id"], r["items"][0]["rating_id"]);
    stored(&app, 40).await;
    let before = app.summary(&format!("scope=all&{}", around_now())).await;
    let expected: Vec<i64> = (1..=5).map(|g| (0..40).filter(|i| 1 + (i % 5) == g).count() as i64).collect();
    let counts: Vec<i64> = (1..=5).map(|g| before["counts"][g.to_string()].as_i64().unwrap()).collect();
    assert_eq!(counts, expected);

    // The terminal was offline and replays its whole queue: nothing new.
    let (s, r2) = post(&app, Some(&key), None, "/api/v1/ratings/batch", &batch).await;
    assert_eq!((s, r2["accepted"].as_u64(), r2["duplicates"].as_u64()), (200, Some(0), Some(41)));
    for i in 0..40 {
        assert_eq!(r2["items"][i]["problem"]["existing_rating_id"], r["items"][i]["rating_id"]);
    }
    app.wait_caught_up(Duration::from_secs(30)).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 40);
    assert_eq!(app.summary(&format!("scope=all&{}", around_now())).await["counts"], before["counts"]);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM work_orders").fetch_one(app.store.pool()).await.unwrap();
    assert_eq!(orders, expected[0] + expected[1]);
    // Every stored rating has the terminal's channel and device.
    let channels: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT DISTINCT channel, device_id FROM ratings").fetch_all(app.store.pool()).await.unwrap();
    assert_eq!(channels, vec![("self_service_terminal".to_string(), Some("T-H1".to_string()))]);

    let (s, p) = post(&app, Some(&key), None, "/api/v1/ratings/batch", &json!({"ratings": []})).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("ratings")));
}

/// Seven 非常满意 pressed on one evaluator for one staff member within seconds, each stored
/// before the next (records of different service records travel on different partitions, and a
/// press is judged against what is stored when it arrives).
async fn press_seven(app: &TestApp, key: &str) {
    for i in 0..7 {
        let body = json!({"stage": "acceptance", "service_record_no": format!("G-{i}"), "service_item_code": "I-A", "staff_id": "S1", "grade": 5});
        let (s, r) = post(app, Some(key), None, "/api/v1/ratings", &body).await;
        assert_eq!(s, 202, "{r}");
        stored(app, i + 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presses_that_look_gamed_are_flagged_not_dropped_and_excluded_only_by_policy() {
    for exclude in [false, true] {
        let mut app = TestApp::start_with(|c| c.ingest_auth_required = true).await;
        app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
        app.start_aggregator_configured(|cfg| cfg.integrity.exclude_flagged = exclude);
        let admin = app.account("root", "admin", None, None).await;
        let (key, _) = issue(
            &app,
            &admin,
            json!({"kind": "device", "channel": "window_evaluator", "device_id": "E-W2", "name": "2 号窗评价器"}),
        )
        .await;
        press_seven(&app, &key).await;
        stored(&app, 7).await;
        app.wait_caught_up(Duration::from_secs(30)).await;

        // Every press after the first came within 10 s of the one before; the 6th and 7th top
        // grades within 10 minutes are a burst for the device and for the staff member.
        let rows = sqlx::query("SELECT integrity_flags FROM ratings ORDER BY rated_at, rating_id")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
        let flags: Vec<Vec<String>> = rows.iter().map(|r| r.get("integrity_flags")).collect();
        assert!(flags[0].is_empty(), "{flags:?}");
        for f in &flags[1..5] {
            assert_eq!(f, &vec!["device_too_fast".to_string()]);
        }
        for f in &flags[5..] {
            assert_eq!(f, &vec!["device_too_fast".to_string(), "device_burst".to_string(), "staff_burst".to_string()]);
        }
        let sup = app.account("du", "supervisor", None, Some("449900")).await;
        let (s, page) = app.call(Method::GET, "/api/v1/integrity/flagged?flag=staff_burst", &sup, None).await;
        assert_eq!((s, page["total"].as_i64()), (200, Some(2)));
        let handler = app.account("li", "handler", Some("D-A"), None).await;
        assert_eq!(app.call(Method::GET, "/api/v1/integrity/flagged", &handler, None).await.0, 403);
        // Counted by default; left out only under the explicit policy.
        let s = app.summary(&format!("scope=all&{}", around_now())).await;
        assert_eq!(s["total"].as_i64(), Some(if exclude { 1 } else { 7 }), "exclude_flagged = {exclude}");
        app.stop_aggregator().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_and_addresses_over_their_rate_are_refused_with_429() {
    let mut app = TestApp::start_with(|c| {
        c.ingest_auth_required = true;
        c.rate_limit_platform = 2;
        c.rate_limit_per_ip = 2;
    })
    .await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    let admin = app.account("root", "admin", None, None).await;
    let (a, _) = issue(&app, &admin, json!({"kind": "integration", "channel": "app", "name": "a"})).await;
    let (b, _) = issue(&app, &admin, json!({"kind": "integration", "channel": "web", "name": "b"})).await;
    let body = |i: u32| json!({"stage": "online", "service_record_no": format!("L-{i}"), "grade": 5});
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(post(&app, Some(&a), None, "/api/v1/ratings", &body(i)).await.0);
    }
    assert_eq!(statuses, vec![202, 202, 429]);
    let r = app.client.post(format!("{}/api/v1/ratings", app.url)).bearer_auth(&a).json(&body(9)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "/problems/rate-limited");
    assert_eq!(post(&app, Some(&b), None, "/api/v1/ratings", &body(3)).await.0, 202, "another key has its own budget");
    // The citizen's endpoints are limited per address.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses
            .push(app.client.get(format!("{}/api/v1/r/forged.1.x", app.url)).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, vec![404, 404, 429]);
    app.start_aggregator();
    stored(&app, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_has_its_kinds_limit_or_its_own_set_at_issue_and_changed_by_an_admin() {
    let app = TestApp::start_with(|c| {
        c.ingest_auth_required = true;
        (c.rate_limit_device, c.rate_limit_integration, c.rate_limit_platform) = (1, 3, 2);
    })
    .await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    let admin = app.account("root", "admin", None, None).await;
    let mut n = 0;
    // How many of `tries` requests sent at once the key gets through (the rest: 429).
    let mut burst = |key: String, channel: &'static str, stage: &'static str, tries: usize| {
        let app = &app;
        let bodies: Vec<Value> = (0..tries)
            .map(|_| {
                n += 1;
                json!({"channel": channel, "stage": stage, "service_record_no": format!("RL-{n}"), "grade": 5})
            })
            .collect();
        async move {
            let statuses: Vec<u16> = futures::future::join_all(
                bodies.iter().map(|b| async { post(app, Some(&key), None, "/api/v1/ratings", b).await.0 }),
            )
            .await;
            assert!(statuses.iter().all(|s| *s == 202 || *s == 429), "{statuses:?}");
            statuses.iter().filter(|s| **s == 202).count()
        }
    };
    let (web, web_id) = issue(&app, &admin, json!({"kind": "integration", "channel": "web", "name": "网厅"})).await;
    let (hotline, _) = issue(&app, &admin, json!({"kind": "integration", "channel": "hotline", "name": "12345"})).await;
    let (own, own_id) =
        issue(&app, &admin, json!({"kind": "integration", "channel": "app", "name": "省App", "rate_limit": 4})).await;
    let (_, keys) = app.call(Method::GET, "/api/v1/credentials", &admin, None).await;
    let listed = keys.as_array().unwrap().iter().find(|k| k["key_id"] == own_id.as_str()).unwrap().clone();
    assert_eq!(listed["rate_limit"], 4, "{listed}");
    assert_eq!(burst(web.clone(), "web", "online", 4).await, 2, "a platform's default");
    assert_eq!(burst(hotline, "hotline", "hotline", 5).await, 3, "an integration's default");
    assert_eq!(burst(own, "app", "online", 6).await, 4, "its own, set at issue");

    // An admin raises the web platform's key, then gives it back its kind's default.
    let path = format!("/api/v1/credentials/{web_id}/rate-limit");
    let (s, c) = app.call(Method::PUT, &path, &admin, Some(json!({"rate_limit": 5}))).await;
    assert_eq!((s, &c["rate_limit"]), (200, &json!(5)), "{c}");
    assert_eq!(burst(web.clone(), "web", "online", 7).await, 5, "the new limit from the next request");
    let (s, c) = app.call(Method::PUT, &path, &admin, Some(json!({"rate_limit": null}))).await;
    assert_eq!((s, &c["rate_limit"]), (200, &Value::Null));
    assert_eq!(burst(web, "web", "online", 4).await, 2);
    let (s, p) = app.call(Method::PUT, &path, &admin, Some(json!({"rate_limit": 0}))).await;
    assert_eq!((s, &p["errors"][0]["field"]), (422, &json!("rate_limit")), "{p}");
    let too_many = json!({"kind": "integration", "channel": "web", "name": "x", "rate_limit": 100001});
    let (s, p) = app.call(Method::POST, "/api/v1/credentials", &admin, Some(too_many)).await;
    assert_eq!((s, &p["errors"][0]["field"]), (422, &json!("rate_limit")), "{p}");
    let (s, _) =
        app.call(Method::PUT, "/api/v1/credentials/nope/rate-limit", &admin, Some(json!({"rate_limit": 5}))).await;
    assert_eq!(s, 404);
    let handler = app.account("h", "handler", Some("D-A"), None).await;
    let (s, _) = app.call(Method::PUT, &path, &handler, Some(json!({"rate_limit": 50}))).await;
    assert_eq!(s, 403, "only an admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rater_whose_phone_is_the_rated_staff_members_is_flagged() {
    let (app, admin) = start().await;
    let (s, _) =
        app.call(Method::PUT, "/api/v1/directory/staff/S1/phone", &admin, Some(json!({"phone": "13800001111"}))).await;
    assert_eq!(s, 204);
    let (s, _) = app
        .call(Method::PUT, "/api/v1/directory/staff/NOPE/phone", &admin, Some(json!({"phone": "13800002222"})))
        .await;
    assert_eq!(s, 404);
    let (s, p) = app.call(Method::PUT, "/api/v1/directory/staff/S2/phone", &admin, Some(json!({"phone": "12"}))).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("phone")));
    let (s, _) =
        app.call(Method::PUT, "/api/v1/directory/staff/S2/phone", &admin, Some(json!({"phone": "13800002222"}))).await;
    assert_eq!(s, 204);
    let stored_digests: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT phone_digest FROM staff_phones").fetch_all(app.store.pool()).await.unwrap();
    assert!(stored_digests.iter().all(|d| !String::from_utf8_lossy(d).contains("13800001111")));

    let (key, _) =
        issue(&app, &admin, json!({"kind": "device", "channel": "window_evaluator", "device_id": "E-W2", "name": "e"}))
            .await;
    let rating = |no: &str, phone: &str| {
        json!({"stage": "acceptance", "service_record_no": no, "service_item_code": "I-A", "staff_id": "S1", "grade": 5,
               "rater": {"phone": phone}})
    };
    for (no, phone) in [("P-1", "138 0000 1111"), ("P-2", "13800002222"), ("P-3", "13900003333")] {
        let (s, r) = post(&app, Some(&key), None, "/api/v1/ratings", &rating(no, phone)).await;
        assert_eq!(s, 202, "{r}");
        stored(&app, no[2..].parse().unwrap()).await;
    }
    let rows: Vec<(String, Vec<String>)> =
        sqlx::query_as("SELECT service_record_no, integrity_flags FROM ratings ORDER BY service_record_no")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    let flag_of = |no: &str| {
        rows.iter()
            .find(|r| r.0 == no)
            .unwrap()
            .1
            .iter()
            .filter(|f| f.starts_with("rater"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(flag_of("P-1"), vec!["rater_is_rated_staff".to_string()]);
    assert_eq!(flag_of("P-2"), vec!["rater_is_staff".to_string()]);
    assert!(flag_of("P-3").is_empty());
}

/// The aggregator judges a batch against a trimmed history (`Store::recent_presses`: per new
/// press, its device's neighbours and the last few top grades before it). Over a busy, shuffled
/// history of three devices and three staff members, the verdicts must equal those judged
/// against every stored press, for batches before, inside and after the stored presses.
#[tokio::test]
async fn the_trimmed_press_history_gives_the_same_verdicts_as_the_whole_history() {
    use hcp_domain::integrity::{self, IntegrityPolicy, Press};
    let app = TestApp::start().await;
    let policy = IntegrityPolicy::default();
    let t0 = DateTime::parse_from_rfc3339("2026-11-20T02:00:00Z").unwrap().with_timezone(&Utc);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let press = |i: u64, device: u64, staff: u64, grade: u64, secs: i64| Press {
        rating_id: uuid::Uuid::from_u128(0xa000_0000 + i as u128),
        device_id: Some(format!("EVAL-{device}")),
        staff_id: Some(format!("S-{staff}")),
        grade: grade as u8,
        rated_at: t0 + chrono::Duration::seconds(secs),
        rater_staff: vec![],
    };
    // 1 200 stored presses over about 2 hours: gaps of 0–29 s, mostly top grades.
    let mut stored = Vec::new();
    let mut secs = 0i64;
    for i in 0..1200u64 {
        secs += next(30) as i64;
        stored.push(press(i, next(3), next(3), if next(3) == 0 { 1 + next(4) } else { 5 }, secs));
    }
    sqlx::query(
        "INSERT INTO ratings (rating_id, service_record_no, stage, assess_number, channel, grade, rated_at,
                              received_at, source_topic, source_partition, source_offset, device_id, attr_staff_id)
         SELECT id, 'TRIM-' || o, 'acceptance', 1, 'window_evaluator', g, t, t, 'trim', 0, o, d, s
           FROM UNNEST($1::uuid[], $2::int2[], $3::timestamptz[], $4::text[], $5::text[]) WITH ORDINALITY
                AS x(id, g, t, d, s, o)",
    )
    .bind(stored.iter().map(|p| p.rating_id).collect::<Vec<_>>())
    .bind(stored.iter().map(|p| p.grade as i16).collect::<Vec<_>>())
    .bind(stored.iter().map(|p| p.rated_at).collect::<Vec<_>>())
    .bind(stored.iter().map(|p| p.device_id.clone()).collect::<Vec<_>>())
    .bind(stored.iter().map(|p| p.staff_id.clone()).collect::<Vec<_>>())
    .execute(app.store.pool())
    .await
    .unwrap();

    let (mut judged, mut flagged, mut trimmed) = (0usize, 0usize, 0usize);
    for (b, start) in [-120i64, 0, 600, 1800, 3000, 5000, secs - 30, secs + 5].into_iter().enumerate() {
        // A batch of 40 new presses over about 2 minutes, in shuffled order (several partitions).
        let mut new: Vec<Press> = (0..40u64)
            .map(|i| {
                press(
                    10_000 * (b as u64 + 1) + i,
                    next(3),
                    next(3),
                    if next(2) == 0 { 5 } else { 1 + next(5) },
                    start + next(120) as i64,
                )
            })
            .collect();
        for i in (1..new.len()).rev() {
            new.swap(i, next(i as u64 + 1) as usize);
        }
        let history = app.store.recent_presses(&integrity::probes(&policy, &new), &policy).await.unwrap();
        let whole = integrity::check(&policy, &stored, &new);
        assert_eq!(integrity::check(&policy, &history, &new), whole, "batch {b} at {start} s");
        judged += new.len();
        flagged += whole.len();
        trimmed += stored.len() - history.len();
        assert!(
            history.len() < stored.len() / 4,
            "batch {b}: {} of {} stored presses read",
            history.len(),
            stored.len()
        );
    }
    // Out of order: a single new press 3 s before a stored press of its device (which the
    // stored press before it is well away from) is too fast only because of the press after it.
    let mut last_of: std::collections::HashMap<String, i64> = Default::default();
    let mut late_neighbours = 0;
    for (i, s) in stored.iter().enumerate() {
        let device = s.device_id.clone().unwrap();
        let at = (s.rated_at - t0).num_seconds();
        let prev = last_of.insert(device.clone(), at);
        if late_neighbours == 8 || prev.is_none_or(|p| at - p < 20) {
            continue;
        }
        let mut one = press(900_000 + i as u64, 0, 0, 2, at - 3);
        one.device_id = Some(device);
        let history =
            app.store.recent_presses(&integrity::probes(&policy, std::slice::from_ref(&one)), &policy).await.unwrap();
        let whole = integrity::check(&policy, &stored, std::slice::from_ref(&one));
        assert_eq!(whole.get(&one.rating_id), Some(&vec![integrity::IntegrityFlag::DeviceTooFast]));
        assert_eq!(integrity::check(&policy, &history, std::slice::from_ref(&one)), whole, "single press at {at} s");
        late_neighbours += 1;
    }
    assert_eq!(late_neighbours, 8);
    assert_eq!(judged, 320);
    assert!(flagged > 100 && flagged < judged, "a meaningful mix of verdicts: {flagged} of {judged} flagged");
    assert!(trimmed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_are_grouped_and_each_slot_goes_to_exactly_one_rating() {
    use hcp_ingest::claims::ClaimQueue;
    use hcp_store::Claim;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;

    let app = TestApp::start().await;
    let queue = ClaimQueue::start(app.store.clone(), Duration::from_secs(30));
    // 150 slots, each claimed by two ratings at once, in shuffled order.
    let mut keys: Vec<(String, String, i16, uuid::Uuid)> = (0..150)
        .flat_map(|i| (0..2).map(move |_| (format!("G-{i}"), "acceptance".to_string(), 1i16, uuid::Uuid::now_v7())))
        .collect();
    keys.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(7));
    let outcomes = futures::future::join_all(keys.iter().map(|k| queue.claim(vec![k.clone()]))).await;
    let mut holder: HashMap<&str, uuid::Uuid> = HashMap::new();
    for (k, o) in keys.iter().zip(&outcomes) {
        if o.as_ref().unwrap()[..] == [Claim::Claimed] {
            assert!(holder.insert(k.0.as_str(), k.3).is_none(), "{} claimed twice", k.0);
        }
    }
    assert_eq!(holder.len(), 150, "every slot claimed once");
    // The other claim of each slot finds the holder still producing: in progress, not a duplicate.
    for (k, o) in keys.iter().zip(&outcomes) {
        let expected =
            if holder[k.0.as_str()] == k.3 { Claim::Claimed } else { Claim::InProgress(holder[k.0.as_str()]) };
        assert_eq!(o.as_ref().unwrap()[..], [expected], "{}", k.0);
    }
    let stats = queue.stats();
    let (groups, claimed) = (stats.claim_groups.load(Ordering::Relaxed), stats.claimed_keys.load(Ordering::Relaxed));
    assert_eq!(claimed, 300);
    assert!(groups <= 30, "300 concurrent claims went to PostgreSQL as {groups} groups");
    println!("300 concurrent claims: {groups} groups");

    // The holders are accepted together, and only they.
    let accepted = futures::future::join_all(holder.values().map(|id| queue.accept(vec![*id]))).await;
    assert!(accepted.iter().all(Result::is_ok));
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM rating_claims WHERE service_record_no LIKE 'G-%' GROUP BY 1")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(states, vec![("accepted".to_string(), 150)]);
    // Once accepted, a further claim of a slot is a duplicate naming its holder.
    let (slot, id) = holder.iter().next().unwrap();
    let again = queue.claim(vec![(slot.to_string(), "acceptance".into(), 1, uuid::Uuid::now_v7())]).await.unwrap();
    assert_eq!(again, vec![Claim::Existing(*id)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_rates_only_its_own_window_or_hall_and_only_known_tags() {
    let mut app = TestApp::start_with(|c| c.ingest_auth_required = true).await;
    // The city, plus a second hall with its own window and a terminal in the first hall.
    let mut city: Value = serde_json::from_str(CITY).unwrap();
    city["halls"].as_array_mut().unwrap().push(json!({"id": "H2", "name": "第二分中心", "region_code": "449901"}));
    city["windows"].as_array_mut().unwrap().push(
        json!({"id": "W9", "hall_id": "H2", "name": "二中心1号窗", "role": "acceptance", "department_ids": ["D-A"]}),
    );
    city["devices"].as_array_mut().unwrap().push(json!({"id": "T-H1", "kind": "terminal", "hall_id": "H1"}));
    app.import_directory(&city).await;
    app.start_aggregator();
    let admin = app.account("root", "admin", None, None).await;
    let (evaluator, _) = issue(
        &app,
        &admin,
        json!({"kind": "device", "channel": "window_evaluator", "device_id": "E-W2", "name": "2 号窗评价器"}),
    )
    .await;
    let (terminal, terminal_id) = issue(
        &app,
        &admin,
        json!({"kind": "device", "channel": "self_service_terminal", "device_id": "T-H1", "name": "一中心自助终端"}),
    )
    .await;
    let (_, list) = app.call(Method::GET, "/api/v1/credentials", &admin, None).await;
    let listed = list.as_array().unwrap().iter().find(|c| c["key_id"] == terminal_id.as_str()).unwrap().clone();
    assert_eq!((listed["hall_id"].as_str(), listed["window_id"].as_str()), (Some("H1"), None));

    let rating = |no: &str, extra: Value| {
        let mut body = json!({"stage": "acceptance", "service_record_no": no, "service_item_code": "I-A", "grade": 1,
            "comment": "等了很久"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    // The evaluator of window W2 naming another hall's window, or another hall: refused, nothing stored.
    for (body, field, code) in [
        (rating("D-1", json!({"window_id": "W9"})), "window_id", "device_window_mismatch"),
        (rating("D-2", json!({"window_id": "W1"})), "window_id", "device_window_mismatch"),
        (rating("D-3", json!({"hall_id": "H2"})), "hall_id", "device_hall_mismatch"),
        (rating("D-4", json!({"tags": ["rude", "bribe-me"]})), "tags", "unknown_tag"),
    ] {
        let (s, p) = post(&app, Some(&evaluator), None, "/api/v1/ratings", &body).await;
        assert_eq!(s, 422, "{body}: {p}");
        assert_eq!((p["errors"][0]["field"].as_str(), p["errors"][0]["code"].as_str()), (Some(field), Some(code)));
    }
    let (_, p) =
        post(&app, Some(&evaluator), None, "/api/v1/ratings", &rating("D-4", json!({"tags": ["bribe-me"]}))).await;
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("bribe-me"), "the message names the tag: {p}");
    // The same in a batch: only the offending item is refused.
    let batch = json!({"ratings": [rating("D-5", json!({"window_id": "W9"})), rating("D-6", json!({}))]});
    let (s, r) = post(&app, Some(&evaluator), None, "/api/v1/ratings/batch", &batch).await;
    assert_eq!(s, 200, "{r}");
    let statuses: Vec<i64> = r["items"].as_array().unwrap().iter().map(|i| i["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [422, 202]);
    // Its own window (named or left out) and catalogue tags are accepted.
    let (s, r) = post(
        &app,
        Some(&evaluator),
        None,
        "/api/v1/ratings",
        &rating("D-7", json!({"window_id": "W2", "tags": ["rude"]})),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    // A hall terminal names windows of its hall only.
    let body = json!({"stage": "acceptance", "service_record_no": "T-1", "service_item_code": "I-A", "grade": 5, "window_id": "W9"});
    let (s, p) = post(&app, Some(&terminal), None, "/api/v1/ratings", &body).await;
    assert_eq!((s, p["errors"][0]["code"].as_str()), (422, Some("device_window_mismatch")), "{p}");
    let body = json!({"stage": "acceptance", "service_record_no": "T-2", "service_item_code": "I-A", "grade": 5, "window_id": "W1"});
    let (s, r) = post(&app, Some(&terminal), None, "/api/v1/ratings", &body).await;
    assert_eq!(s, 202, "{r}");
    stored(&app, 3).await;
    type Placed = (String, Option<String>, Option<String>, Option<String>);
    let rows: Vec<Placed> = sqlx::query_as(
        "SELECT service_record_no, hall_id, window_id, attr_window_id FROM ratings ORDER BY service_record_no",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    let w = |s: &str| Some(s.to_owned());
    assert_eq!(
        rows,
        [
            ("D-6".to_owned(), w("H1"), w("W2"), w("W2")),
            ("D-7".to_owned(), w("H1"), w("W2"), w("W2")),
            ("T-2".to_owned(), w("H1"), w("W1"), w("W1")),
        ]
    );
}

/// Runs `sql` with `key_id` as `$1`, straight in the database (as another replica or an operator
/// in psql would: this process's own store does not see it happen).
async fn change_elsewhere(app: &TestApp, sql: &str, key_id: &str) {
    sqlx::query(sql).bind(key_id).execute(app.store.pool()).await.unwrap();
}

/// Posts fresh online ratings with `key` until one is answered `status`, for at most `timeout`.
async fn until_answered(app: &TestApp, key: &str, status: u16, timeout: Duration, what: &str) {
    let n = &std::sync::atomic::AtomicU64::new(0);
    wait_until(timeout, what, || async move {
        let record = format!("U-{}-{}", uuid::Uuid::now_v7(), n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let body = json!({"stage": "online", "service_record_no": record, "grade": 5});
        post(app, Some(key), None, "/api/v1/ratings", &body).await.0 == status
    })
    .await;
}

/// Ingest keeps keys in memory; a change made elsewhere (another replica's admin API, an operator
/// in psql) reaches it through PostgreSQL's notification, and a lost listener connection forgets
/// everything kept, so neither a revocation nor a new limit waits for a cache lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_kept_in_memory_is_dropped_when_it_changes_elsewhere_or_the_listener_is_lost() {
    let (app, admin) = start().await;
    let (app_key, app_id) = issue(&app, &admin, json!({"kind": "integration", "channel": "app", "name": "app"})).await;
    let (web_key, web_id) = issue(&app, &admin, json!({"kind": "integration", "channel": "web", "name": "web"})).await;
    let rating = |n: &str| json!({"stage": "online", "service_record_no": n, "grade": 5});
    for (key, n) in [(&app_key, "C-1"), (&app_key, "C-2"), (&web_key, "C-3")] {
        assert_eq!(post(&app, Some(key), None, "/api/v1/ratings", &rating(n)).await.0, 202);
    }

    // Revoked by another process: only the notification can tell this one's cache.
    change_elsewhere(&app, "UPDATE credentials SET revoked_at = now() WHERE key_id = $1", &app_id).await;
    let revoked_at = std::time::Instant::now();
    until_answered(&app, &app_key, 401, Duration::from_secs(2), "the revocation honoured").await;
    assert!(revoked_at.elapsed() < Duration::from_secs(1), "honoured in {:?}", revoked_at.elapsed());

    // A limit set elsewhere holds at once too: one request a second, so of two at once one is 429.
    change_elsewhere(&app, "UPDATE credentials SET rate_limit = 1 WHERE key_id = $1", &web_id).await;
    let (n, app_ref, web) = (&std::sync::atomic::AtomicU64::new(10), &app, &web_key);
    wait_until(Duration::from_secs(2), "the new limit applied", || async move {
        let next = || rating(&format!("C-{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        let first = post(app_ref, Some(web), None, "/api/v1/ratings", &next()).await.0;
        let second = post(app_ref, Some(web), None, "/api/v1/ratings", &next()).await.0;
        first == 429 || second == 429
    })
    .await;
    change_elsewhere(&app, "UPDATE credentials SET rate_limit = NULL WHERE key_id = $1", &web_id).await;
    until_answered(&app, &web_key, 202, Duration::from_secs(3), "the web key accepted (and kept) again").await;

    // The listener's connection is cut, and the key revoked while nobody listens: the lost
    // notification is made up for by forgetting every kept key on reconnection.
    let cut: Vec<i32> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid)::int FROM pg_stat_activity
          WHERE datname = current_database() AND query ILIKE 'LISTEN%hcp_credentials%'",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    assert!(!cut.is_empty(), "the credential listener's connection was found");
    change_elsewhere(&app, "UPDATE credentials SET revoked_at = now() WHERE key_id = $1", &web_id).await;
    until_answered(&app, &web_key, 401, Duration::from_secs(5), "the revocation made while nobody listened honoured")
        .await;
}

/// Behind a transaction-pooling PgBouncer a LISTEN hears nothing, so the listeners may be given
/// a server of their own (`HCP_DATABASE_LISTEN_URL`): the key cache listens there, and a key
/// revoked elsewhere is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_key_cache_listens_where_the_listen_url_says() {
    let app = TestApp::start_with(|c| {
        c.ingest_auth_required = true;
        c.database_listen_url = Some(c.database_url.clone());
    })
    .await;
    let admin = app.account("root", "admin", None, None).await;
    let (key, key_id) = issue(&app, &admin, json!({"kind": "integration", "channel": "app", "name": "app"})).await;
    let rating = json!({"stage": "online", "service_record_no": "L-1", "grade": 5});
    assert_eq!(post(&app, Some(&key), None, "/api/v1/ratings", &rating).await.0, 202);
    let pool = app.store.pool().clone();
    wait_until(Duration::from_secs(10), "the credential listener on its own connection", || {
        let pool = pool.clone();
        async move {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT application_name FROM pg_stat_activity
                  WHERE datname = current_database() AND query ILIKE 'LISTEN%hcp_credentials%'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            names == ["hcp-listen"]
        }
    })
    .await;
    change_elsewhere(&app, "UPDATE credentials SET revoked_at = now() WHERE key_id = $1", &key_id).await;
    let revoked_at = std::time::Instant::now();
    until_answered(&app, &key, 401, Duration::from_secs(2), "the revocation honoured").await;
    assert!(revoked_at.elapsed() < Duration::from_secs(1), "honoured in {:?}", revoked_at.elapsed());
}

/// A claim that waits for a concurrent insert of the same key (committed after the claim's
/// statement took its snapshot) still names that holder: it reads it in a statement of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_racing_a_concurrent_insert_of_its_key_names_the_holder() {
    use hcp_store::Claim;
    let app = TestApp::start().await;
    let first = uuid::Uuid::now_v7();
    let mut tx = app.store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO rating_claims (service_record_no, stage, assess_number, rating_id, state)
         VALUES ('R-1', 'acceptance', 1, $1, 'pending')",
    )
    .bind(first)
    .execute(&mut *tx)
    .await
    .unwrap();
    let store = app.store.clone();
    let second = uuid::Uuid::now_v7();
    let claim = tokio::spawn(async move {
        store.claim_ratings(&[("R-1".into(), "acceptance".into(), 1, second)], Duration::from_secs(30)).await
    });
    // The claim is waiting on the uncommitted row (its insert conflicts with it).
    let pool = app.store.pool().clone();
    wait_until(Duration::from_secs(10), "the claim waiting for the concurrent insert", || {
        let pool = pool.clone();
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%hcp_claim_ratings%'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            waiting == 1
        }
    })
    .await;
    tx.commit().await.unwrap();
    assert_eq!(claim.await.unwrap().unwrap(), vec![Claim::InProgress(first)]);
}
