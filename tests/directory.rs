//! Directory and attribution, black-box: a directory imported with `hcp directory import`,
//! ratings whose attribution is known in advance, exact aggregates per department, hall,
//! window, staff member and region, history kept when the directory changes, flagged ratings
//! re-attributed once the directory is fixed, and import files with bad rows refused whole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use hcp_aggregator::AggregatorStats;
use hcp_tests::TestApp;
use serde_json::{json, Value};

const CITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/attribution-city.json");

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Expected grade counts per (scope, id), computed by the test from the scenario alone.
#[derive(Default)]
struct Expected(BTreeMap<(String, String), [i64; 5]>);

impl Expected {
    fn add(&mut self, scope: &str, id: &str, grade: i64) {
        self.0.entry((scope.into(), id.into())).or_default()[(grade - 1) as usize] += 1;
    }

    fn ids(&self, scope: &str) -> BTreeSet<String> {
        self.0.keys().filter(|(s, _)| s == scope).map(|(_, id)| id.clone()).collect()
    }
}

async fn counts(app: &TestApp, scope: &str, id: &str, range: &str) -> [i64; 5] {
    let s = app.summary(&format!("scope={scope}&id={id}&{range}")).await;
    let mut c = [0; 5];
    for (g, slot) in c.iter_mut().enumerate() {
        *slot = s["counts"][(g + 1).to_string()].as_i64().unwrap();
    }
    c
}

/// Every id the ranking knows for `scope` (min 1 rating).
async fn ranked_ids(app: &TestApp, scope: &str, range: &str) -> BTreeSet<String> {
    let r = app.get_json(&format!("/api/v1/stats/ranking?scope={scope}&min_ratings=1&limit=1000&{range}")).await;
    r["entries"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

async fn assert_scopes(app: &TestApp, expected: &Expected, scopes: &[&str], range: &str) {
    for scope in scopes {
        assert_eq!(ranked_ids(app, scope, range).await, expected.ids(scope), "ids of scope {scope}");
    }
    for ((scope, id), want) in &expected.0 {
        assert_eq!(&counts(app, scope, id, range).await, want, "{scope} {id}");
    }
}

async fn stored_attr_departments(app: &TestApp, record_prefix: &str) -> BTreeMap<String, i64> {
    let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT attr_department_id, count(*) FROM ratings WHERE service_record_no LIKE $1 || '%' GROUP BY 1",
    )
    .bind(record_prefix)
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    rows.into_iter().map(|(d, n)| (d.unwrap_or_default(), n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ratings_land_on_whoever_was_responsible_and_history_survives_directory_changes() {
    let mut app = TestApp::start().await;

    // The directory and the day's roster, imported with the CLI.
    let (ok, out, err) = app.run_hcp(&["directory", "import", CITY]);
    assert!(ok, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["imported"].as_bool(), report["rows"].as_i64()), (Some(true), Some(26)), "{report}");
    let t0 = Utc::now().duration_trunc(chrono::Duration::minutes(1)).unwrap() - chrono::Duration::hours(3);
    let at = |min: i64| t0 + chrono::Duration::minutes(min);
    let end = Utc::now() + chrono::Duration::minutes(30);
    // S1 opens W1, moves to W2 after an hour, S3 takes over W1; S4 runs the pickup window.
    let roster =
        [("W1", "S1", at(0), at(60)), ("W1", "S3", at(60), end), ("W2", "S1", at(60), end), ("WP", "S4", at(0), end)];
    let dir = std::env::temp_dir().join(format!("hcp-roster-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("roster.csv");
    let mut text = String::from("window_id,staff_id,signed_in_at,signed_out_at\n");
    for (w, s, from, to) in roster {
        text.push_str(&format!("{w},{s},{},{}\n", rfc3339(from), rfc3339(to)));
    }
    std::fs::write(&csv, text).unwrap();
    let (ok, out, err) = app.run_hcp(&["directory", "import", csv.to_str().unwrap()]);
    assert!(ok, "{out}{err}");

    let stats = Arc::new(AggregatorStats::default());
    app.start_aggregator_with(stats.clone());

    // Who the roster says was on duty, per (slot, window); W2 in the morning is silent, so
    // the evaluator's own report (S2) decides.
    let slots =
        [(at(30), [("W1", "S1"), ("W2", "S2"), ("WP", "S4")]), (at(120), [("W1", "S3"), ("W2", "S1"), ("WP", "S4")])];
    let tag_sets: [&[&str]; 4] = [&["rude"], &["slow_process"], &["rude", "slow_process"], &["crash"]];
    let mut expected = Expected::default();
    let mut bodies = Vec::new();
    for i in 0..240usize {
        let (time, duty) = slots[i % 2];
        let (window, staff) = duty[(i / 2) % 3];
        let item = if window == "W2" || (i / 6) % 2 == 0 { "I-A" } else { "I-B" };
        let dept = if item == "I-A" { "D-A" } else { "D-B" };
        let grade = ((i / 12) % 5 + 1) as i64;
        let stage = if window == "WP" { "pickup" } else { "acceptance" };
        let mut body = json!({
            "channel": "window_evaluator", "stage": stage, "service_record_no": format!("WIN-{i:04}"),
            "service_item_code": item, "window_id": window, "device_id": format!("E-{window}"), "staff_id": "S2",
            "grade": grade, "rated_at": rfc3339(time),
        });
        let mut counts_for_server = true;
        if grade <= 2 {
            let tags = tag_sets[i % 4];
            body["tags"] = json!(tags);
            // A bad review whose tags all point at the matter or the platform is not held
            // against the window or the person.
            counts_for_server = tags.contains(&"rude");
        }
        for (scope, id) in [
            ("all", "all"),
            ("department", dept),
            ("hall", "H1"),
            ("region", "449901"),
            ("region", "449900"),
            ("region", "440000"),
        ] {
            expected.add(scope, id, grade);
        }
        if counts_for_server {
            expected.add("window", window, grade);
            expected.add("staff", staff, grade);
        }
        bodies.push(body);
    }
    // Hotline: the agent's own centre, or the handling department of a transferred case.
    for i in 0..20 {
        let grade = (i % 5 + 1) as i64;
        let mut body = json!({"channel": "hotline", "stage": "hotline", "service_record_no": format!("HL-{i:04}"),
                              "staff_id": "A1", "grade": grade, "comment": "电话回访"});
        let dept = if i % 2 == 0 { "D-HL" } else { "D-B" };
        if i % 2 == 1 {
            body["department_id"] = json!("D-B");
        }
        for (scope, id) in
            [("all", "all"), ("department", dept), ("staff", "A1"), ("region", "449900"), ("region", "440000")]
        {
            expected.add(scope, id, grade);
        }
        bodies.push(body);
    }
    // Online: the item's department and the platform.
    for i in 0..10 {
        let grade = (i % 5 + 1) as i64;
        bodies.push(json!({"channel": "app", "stage": "online", "service_record_no": format!("ON-{i:04}"),
                           "service_item_code": "I-B", "grade": grade, "comment": "网上办理"}));
        for (scope, id) in [("all", "all"), ("department", "D-B"), ("region", "449900"), ("region", "440000")] {
            expected.add(scope, id, grade);
        }
    }
    // A window the directory does not know yet: kept, flagged, counted where known.
    for i in 0..3 {
        bodies.push(json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": format!("NEW-{i}"),
                           "service_item_code": "I-A", "window_id": "W-NEW", "hall_id": "H1", "staff_id": "S2", "grade": 5}));
        for (scope, id) in [
            ("all", "all"),
            ("department", "D-A"),
            ("hall", "H1"),
            ("region", "449901"),
            ("region", "449900"),
            ("region", "440000"),
        ] {
            expected.add(scope, id, 5);
        }
    }
    app.post_all_accepted(&bodies).await;
    app.wait_caught_up(Duration::from_secs(90)).await;

    let from = t0.duration_trunc(chrono::Duration::hours(1)).unwrap() - chrono::Duration::hours(1);
    let range = format!("from={}&to={}", rfc3339(from), rfc3339(from + chrono::Duration::hours(6)));
    assert_scopes(&app, &expected, &["department", "window", "staff", "hall", "region"], &range).await;
    assert_eq!(counts(&app, "all", "all", &range).await.iter().sum::<i64>(), 273);

    let flagged = app.get_json("/api/v1/attribution/flagged").await;
    assert_eq!(flagged["total"], 3, "{flagged}");
    for item in flagged["items"].as_array().unwrap() {
        assert_eq!(item["flags"], json!(["unknown_window"]));
        assert_eq!(item["reported"]["window_id"], "W-NEW");
    }

    // The hotline agent moves to the second centre: new ratings follow, old ones stay put.
    let moved = app
        .client
        .put(format!("{}/api/v1/directory/staff/A1", app.url))
        .bearer_auth(&app.admin)
        .json(&json!({"name": "接线员甲", "department_id": "D-HL2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    let later: Vec<Value> = (0..5)
        .map(|i| json!({"channel": "hotline", "stage": "hotline", "service_record_no": format!("HL2-{i}"), "staff_id": "A1", "grade": 4}))
        .collect();
    app.post_all_accepted(&later).await;
    app.wait_caught_up(Duration::from_secs(60)).await;
    assert_eq!(counts(&app, "department", "D-HL2", &range).await, [0, 0, 0, 5, 0]);
    assert_eq!(counts(&app, "department", "D-HL", &range).await, expected.0[&("department".into(), "D-HL".into())]);
    assert_eq!(stored_attr_departments(&app, "HL-").await, BTreeMap::from([("D-B".into(), 10), ("D-HL".into(), 10)]));
    assert_eq!(stored_attr_departments(&app, "HL2-").await, BTreeMap::from([("D-HL2".into(), 5)]));

    // The directory learns about W-NEW; re-attribution moves the three flagged ratings onto it.
    let created = app
        .client
        .put(format!("{}/api/v1/directory/windows/W-NEW", app.url))
        .bearer_auth(&app.admin)
        .json(&json!({"hall_id": "H1", "name": "新开窗口", "role": "both", "department_ids": ["D-A"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let r = app
        .client
        .post(format!("{}/api/v1/attribution/reattribute", app.url))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(
        (done["examined"].as_i64(), done["changed"].as_i64(), done["resolved"].as_i64()),
        (Some(3), Some(3), Some(3))
    );
    assert_eq!(counts(&app, "window", "W-NEW", &range).await, [0, 0, 0, 0, 3]);
    let s2 = expected.0[&("staff".into(), "S2".into())];
    assert_eq!(counts(&app, "staff", "S2", &range).await, [s2[0], s2[1], s2[2], s2[3], s2[4] + 3]);
    assert_eq!(counts(&app, "all", "all", &range).await.iter().sum::<i64>(), 278, "nothing counted twice");
    assert_eq!(app.get_json("/api/v1/attribution/flagged").await["total"], 0);
    assert!(app.assert_rollups_match_ratings().await > 0, "the split rows moved with the re-attribution");

    // Attribution read the directory once per batch, never per rating.
    let get = |c: &std::sync::atomic::AtomicU64| AggregatorStats::get(c);
    assert_eq!(get(&stats.directory_checks), get(&stats.batches), "one version check per batch");
    assert!(get(&stats.directory_loads) <= 2, "loads: {}", get(&stats.directory_loads));
    assert!(get(&stats.attributed) >= 278 && get(&stats.batches) < 278, "batches {}", get(&stats.batches));

    // Every attributed event validates, the re-attributions included.
    let schema: Value = serde_json::from_str(include_str!("../schemas/rating-attributed.v1.json")).unwrap();
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).unwrap();
    let records = app.read_records(app.config.topics().rating_attributed, 281).await;
    assert_eq!(records.len(), 281);
    let mut reattributed = 0;
    for (key, body) in &records {
        let event: Value = serde_json::from_slice(body).unwrap();
        let errors: Vec<String> = validator.iter_errors(&event).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{event}: {errors:?}");
        assert_eq!(event["rating"]["rating_id"].as_str().unwrap().as_bytes(), key.as_slice());
        if event["reattributed"] == json!(true) {
            reattributed += 1;
            assert_eq!(event["attribution"]["window_id"], "W-NEW");
        }
    }
    assert_eq!(reattributed, 3);
    app.stop_aggregator().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_with_bad_rows_names_each_row_and_line_and_imports_nothing() {
    let app = TestApp::start().await;
    let (ok, out, err) = app.run_hcp(&["directory", "import", CITY]);
    assert!(ok, "{out}{err}");
    let version: i64 = app.store.directory_version().await.unwrap();

    let dir = std::env::temp_dir().join(format!("hcp-bad-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        [
            "{",
            "  \"departments\": [",
            "    {\"id\": \"D-C\", \"uscc\": \"11449900MB0000006W\", \"name\": \"丙局\", \"region_code\": \"449900\"},",
            "    {\"id\": \"D-D\", \"uscc\": \"11449900MB0000007X\", \"name\": \"丁局\", \"region_code\": \"449900\"}",
            "  ],",
            "  \"staff\": [",
            "    {\"id\": \"S9\", \"name\": \"新人\", \"department_id\": \"D-C\"},",
            "    {\"id\": \"S10\", \"name\": \"另一个\", \"department_id\": \"D-NOPE\"},",
            "    {\"id\": \"S11\", \"name\": 11, \"department_id\": \"D-A\"}",
            "  ],",
            "  \"windows\": [",
            "    {\"id\": \"W9\", \"hall_id\": \"H1\", \"name\": \"九号窗\", \"role\": \"sideways\", \"department_ids\": [\"D-A\"]}",
            "  ]",
            "}",
        ]
        .join("\n"),
    )
    .unwrap();
    let (ok, out, err) = app.run_hcp(&["directory", "import", bad.to_str().unwrap()]);
    assert!(!ok, "a file with bad rows must fail: {out}");
    let file = bad.display().to_string();
    for line in [
        format!("{file}:4: departments[1] D-D uscc:"),
        format!("{file}:8: staff[1] S10 department_id:"),
        format!("{file}:9: staff[2] S11 name:"),
        format!("{file}:12: windows[0] W9 role:"),
    ] {
        assert!(err.contains(&line), "missing {line:?} in:\n{err}");
    }
    assert!(err.contains("nothing was imported"), "{err}");
    let row_lines = err
        .lines()
        .filter(|l| {
            l.strip_prefix(&format!("{file}:")).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    assert_eq!(row_lines, 4, "exactly the four bad rows:\n{err}");
    // Nothing from the file, not even its good rows.
    assert_eq!(app.store.directory_version().await.unwrap(), version);
    let page = app.get_json("/api/v1/directory/departments?limit=100").await;
    assert_eq!(page["total"], 5);
    assert!(!page["items"].as_array().unwrap().iter().any(|d| d["id"] == "D-C"));

    // The same rule over HTTP: a CSV with two bad rows is refused whole with each line named.
    let csv = "id,name,department_id\nS20,好人,D-A\nS21,,D-A\nS22,坏引用,D-X\n";
    let r = app
        .client
        .post(format!("{}/api/v1/directory/import?format=csv&kind=staff", app.url))
        .bearer_auth(&app.admin)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/import-rejected");
    let rows: Vec<(i64, String, String)> = problem["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_i64().unwrap(),
                r["id"].as_str().unwrap().into(),
                r["errors"][0]["field"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(rows, vec![(3, "S21".into(), "name".into()), (4, "S22".into(), "department_id".into())]);
    assert_eq!(app.get_json("/api/v1/directory/staff").await["total"], 5);
    assert_eq!(app.store.directory_version().await.unwrap(), version);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_pages_refuses_bad_writes_and_keeps_the_roster() {
    let app = TestApp::start().await;
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(CITY).unwrap()).unwrap();
    app.import_directory(&doc).await;
    let url = |p: &str| format!("{}{p}", app.url);

    let page = app.get_json("/api/v1/directory/staff?limit=2&offset=1").await;
    assert_eq!((page["total"].as_i64(), page["items"].as_array().unwrap().len()), (Some(5), 2));
    assert_eq!(page["items"][0]["id"], "S1", "ordered by id: A1, S1, S2, …");
    assert_eq!(app.get_json("/api/v1/directory/windows/W1").await["department_ids"], json!(["D-A", "D-B"]));
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(app.client.get(url("/api/v1/directory/windows/W404")).bearer_auth(&app.admin).send().await.unwrap()),
        404
    );
    assert_eq!(
        status(app.client.get(url("/api/v1/directory/planets")).bearer_auth(&app.admin).send().await.unwrap()),
        404
    );

    // Key mismatch, unknown reference, bad check character: 422 naming the field.
    for (path, body, field) in [
        ("/api/v1/directory/staff/S7", json!({"id": "S8", "name": "x", "department_id": "D-A"}), "id"),
        ("/api/v1/directory/staff/S7", json!({"name": "x", "department_id": "D-NOPE"}), "department_id"),
        (
            "/api/v1/directory/departments/D-X",
            json!({"uscc": "11449900MB00000011", "name": "x", "region_code": "449900"}),
            "uscc",
        ),
    ] {
        let r = app.client.put(url(path)).bearer_auth(&app.admin).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 422, "{path} {body}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    // A department still served by a window cannot go; a staff member can.
    let r = app.client.delete(url("/api/v1/directory/departments/D-B")).bearer_auth(&app.admin).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "/problems/conflict");
    assert_eq!(
        status(app.client.delete(url("/api/v1/directory/staff/S3")).bearer_auth(&app.admin).send().await.unwrap()),
        204
    );
    assert_eq!(
        status(app.client.delete(url("/api/v1/directory/staff/S3")).bearer_auth(&app.admin).send().await.unwrap()),
        404
    );

    // Sign-in, a move to another window (which ends the first spell), sign-out, on-duty.
    let t = Utc::now().duration_trunc(chrono::Duration::minutes(1)).unwrap() - chrono::Duration::hours(2);
    let post = |path: &'static str, body: Value| {
        let (c, admin) = (app.client.clone(), app.admin.clone());
        let u = url(path);
        async move { c.post(u).bearer_auth(admin).json(&body).send().await.unwrap() }
    };
    assert_eq!(
        status(post("/api/v1/roster/sign-in", json!({"window_id": "W1", "staff_id": "S1", "at": rfc3339(t)})).await),
        201
    );
    let later = t + chrono::Duration::minutes(30);
    assert_eq!(
        status(
            post("/api/v1/roster/sign-in", json!({"window_id": "W2", "staff_id": "S1", "at": rfc3339(later)})).await
        ),
        201
    );
    let out = t + chrono::Duration::minutes(90);
    assert_eq!(
        status(post("/api/v1/roster/sign-out", json!({"window_id": "W2", "staff_id": "S1", "at": rfc3339(out)})).await),
        200
    );
    assert_eq!(
        status(post("/api/v1/roster/sign-out", json!({"window_id": "W2", "staff_id": "S1", "at": rfc3339(out)})).await),
        409
    );
    assert_eq!(status(post("/api/v1/roster/sign-in", json!({"window_id": "W404", "staff_id": "S1"})).await), 422);
    let app = &app;
    let duty = |w: &'static str, m: i64| async move {
        let at = rfc3339(t + chrono::Duration::minutes(m));
        app.get_json(&format!("/api/v1/roster/on-duty?window_id={w}&at={at}")).await["staff_id"].clone()
    };
    assert_eq!(duty("W1", 10).await, json!("S1"));
    assert_eq!(duty("W1", 40).await, Value::Null, "moved to W2");
    assert_eq!(duty("W2", 40).await, json!("S1"));
    assert_eq!(duty("W2", 100).await, Value::Null, "signed out");
    let roster = app.get_json("/api/v1/directory/roster").await;
    assert_eq!(roster["total"], 2);
}
