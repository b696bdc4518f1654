//! Citizen channels: the platform reports a service record's stages, invitations (QR code, SMS)
//! are signed single-use links, the citizen's rating is attributed from the record, and forged,
//! expired and reused links are refused with their own problem types.

use std::time::Duration;

use hcp_tests::{wait_until, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Row;

const CITY: &str = include_str!("fixtures/attribution-city.json");
const PHONE: &str = "13912345678";

/// A deployment with keys required, the test city, a running aggregator, an admin session and
/// the platform's (办件系统) integration key.
async fn platform() -> (TestApp, String, String) {
    let mut app = TestApp::start_with(|c| c.ingest_auth_required = true).await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.start_aggregator();
    let admin = app.account("root", "admin", None, None).await;
    let (s, k) = app
        .call(
            Method::POST,
            "/api/v1/credentials",
            &admin,
            Some(json!({"kind": "integration", "channel": "web", "name": "办件系统"})),
        )
        .await;
    assert_eq!(s, 201);
    let key = k["token"].as_str().unwrap().to_owned();
    (app, admin, key)
}

/// The path part (`/r/…`) of a link.
fn path_of(url: &str) -> String {
    url[url.find("/r/").expect("a /r/ link")..].to_owned()
}

async fn open(app: &TestApp, link: &str) -> (u16, Value) {
    let r = app.client.get(format!("{}/api/v1{}", app.url, link)).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn rate(app: &TestApp, link: &str, body: Value) -> (u16, Value) {
    let r = app.client.post(format!("{}/api/v1{}", app.url, link)).json(&body).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invitations_are_single_use_signed_links_and_ratings_are_attributed_from_the_record() {
    let (mut app, _, key) = platform().await;

    // The platform reports acceptance at W2 by S1 (with the applicant's phone) and pickup at WP.
    let (s, _) = app
        .post_json(
            "/api/v1/service-records/events",
            "hcp_nope_x",
            &json!({"service_record_no": "R-1", "event": "accepted"}),
        )
        .await;
    assert_eq!(s, 401);
    let (s, ev) = app
        .post_json(
            "/api/v1/service-records/events",
            &key,
            &json!({
                "service_record_no": "R-1", "event": "accepted", "service_item_code": "I-A", "hall_id": "H1",
                "window_id": "W2", "staff_id": "S1", "applicant_phone": PHONE
            }),
        )
        .await;
    assert_eq!(s, 200, "{ev}");
    assert!(ev["sms_invitation"].is_string(), "acceptance with a phone sends an SMS invitation");
    assert!(!ev.to_string().contains(PHONE));
    let (s, _) = app
        .post_json(
            "/api/v1/service-records/events",
            &key,
            &json!({
                "service_record_no": "R-1", "event": "picked_up", "window_id": "WP", "staff_id": "S3"
            }),
        )
        .await;
    assert_eq!(s, 200);
    let (s, p) = app
        .post_json("/api/v1/service-records/events", &key, &json!({"service_record_no": "R-1", "event": "lost"}))
        .await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("event")));

    // The SMS waits in the outbox for the record's (sealed) phone, with the link.
    let sms: Vec<_> = app
        .store
        .pending_notifications(100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == "rating_sms")
        .collect();
    assert_eq!(sms.len(), 2, "acceptance, then pickup (the phone is on the record)");
    assert!(sms.iter().all(|n| n.recipient == "record:R-1" && !n.body.contains(PHONE)));
    let sms_acceptance =
        path_of(sms[0].body.split_whitespace().find(|w| w.contains("/r/")).unwrap().split('(').next().unwrap());
    let sms_pickup =
        path_of(sms[1].body.split_whitespace().find(|w| w.contains("/r/")).unwrap().split('(').next().unwrap());

    // A QR invitation for the acceptance stage, with its code as SVG and PNG.
    let (s, inv) = app
        .post_json(
            "/api/v1/invitations",
            &key,
            &json!({"service_record_no": "R-1", "stage": "acceptance", "channel": "qr_code"}),
        )
        .await;
    assert_eq!(s, 201, "{inv}");
    let qr = path_of(inv["url"].as_str().unwrap());
    let qr_svg = format!("{}{}", app.url, inv["qr_svg"].as_str().unwrap());
    assert_eq!(app.client.get(&qr_svg).send().await.unwrap().status(), 401, "the QR code is for the issuing platform");
    let svg = app.client.get(&qr_svg).bearer_auth(&key).send().await.unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let png = app
        .client
        .get(format!("{}{}", app.url, inv["qr_png"].as_str().unwrap()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (s, _) = app
        .post_json(
            "/api/v1/invitations",
            &key,
            &json!({"service_record_no": "NOPE", "stage": "acceptance", "channel": "qr_code"}),
        )
        .await;
    assert_eq!(s, 404);

    // The page's data: open, with tags by grade.
    let (s, view) = open(&app, &qr).await;
    assert_eq!((s, view["stage"].as_str()), (200, Some("acceptance")));
    let bad: Vec<&str> = view["bad_tags"].as_array().unwrap().iter().map(|t| t["code"].as_str().unwrap()).collect();
    assert!(bad.contains(&"rude") && !bad.contains(&"good_attitude"));

    // A bad review without a tag or text is refused and the link stays usable.
    let (s, p) = rate(&app, &qr, json!({"grade": 2})).await;
    assert_eq!((s, p["type"].as_str()), (422, Some("/problems/validation-failed")));
    assert_eq!(open(&app, &qr).await.0, 200);
    let (s, ok) = rate(&app, &qr, json!({"grade": 2, "tags": ["rude"], "comment": "窗口人员态度差"})).await;
    assert_eq!(s, 202, "{ok}");
    let qr_rating = ok["rating_id"].as_str().unwrap().to_owned();

    // Used, forged, expired: three different refusals.
    let (s, p) = rate(&app, &qr, json!({"grade": 5})).await;
    assert_eq!((s, p["type"].as_str()), (409, Some("/problems/invitation-used")));
    assert_eq!(open(&app, &qr).await.0, 409);
    let forged = format!("{}A", &qr[..qr.len() - 1]);
    let forged = if forged == qr { format!("{}B", &qr[..qr.len() - 1]) } else { forged };
    let (s, p) = open(&app, &forged).await;
    assert_eq!((s, p["type"].as_str()), (404, Some("/problems/invitation-invalid")));
    sqlx::query(
        "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE channel = 'sms' AND stage = 'pickup'",
    )
    .execute(app.store.pool())
    .await
    .unwrap();
    let (s, p) = rate(&app, &sms_pickup, json!({"grade": 5})).await;
    assert_eq!((s, p["type"].as_str()), (410, Some("/problems/invitation-expired")));

    // The acceptance stage was rated through the QR code: the SMS link for it is a duplicate now.
    let (s, p) = rate(&app, &sms_acceptance, json!({"grade": 4})).await;
    assert_eq!(
        (s, p["type"].as_str(), p["existing_rating_id"].as_str()),
        (409, Some("/problems/duplicate-rating"), Some(qr_rating.as_str()))
    );
    assert_eq!(open(&app, &sms_acceptance).await.0, 200, "a refused submission does not spend the link");

    // The stored rating: channel qr_code, attributed from the record's acceptance stage.
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "the QR rating stored", || async { store.count_ratings().await.unwrap() == 1 })
        .await;
    let row =
        sqlx::query("SELECT channel, stage, attr_window_id, attr_staff_id, attr_department_id, grade FROM ratings")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(row.get::<String, _>("channel"), "qr_code");
    assert_eq!(row.get::<String, _>("stage"), "acceptance");
    assert_eq!(row.get::<Option<String>, _>("attr_window_id").as_deref(), Some("W2"));
    assert_eq!(row.get::<Option<String>, _>("attr_staff_id").as_deref(), Some("S1"));
    assert_eq!(row.get::<i16, _>("grade"), 2);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM work_orders").fetch_one(app.store.pool()).await.unwrap();
    assert_eq!(orders, 1, "the bad review opened its work order");
    app.stop_aggregator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unrated_stage_gets_the_default_rating_after_the_regions_days_on_a_controllable_clock() {
    let (mut app, admin, key) = platform().await;
    let accepted = chrono::Utc::now() - chrono::Duration::days(8);
    for (no, at) in [("R-D1", accepted), ("R-D2", accepted), ("R-D3", chrono::Utc::now() - chrono::Duration::days(2))] {
        let (s, r) = app
            .post_json(
                "/api/v1/service-records/events",
                &key,
                &json!({
                    "service_record_no": no, "event": "accepted", "at": at, "service_item_code": "I-A", "hall_id": "H1",
                    "window_id": "W2", "staff_id": "S1"
                }),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    // R-D2's acceptance was rated by the citizen in time.
    let (_, inv) = app
        .post_json(
            "/api/v1/invitations",
            &key,
            &json!({"service_record_no": "R-D2", "stage": "acceptance", "channel": "qr_code"}),
        )
        .await;
    assert_eq!(rate(&app, &path_of(inv["url"].as_str().unwrap()), json!({"grade": 5})).await.0, 202);

    let state = hcp_ingest::IngestState {
        producer: hcp_bus::RatingProducer::new(&app.kafka(), &app.config.topics()).unwrap(),
        pii: None,
        gate: Some(hcp_ingest::Gate::new(
            app.store.clone(),
            hcp_ingest::AuthMode::Optional,
            Duration::from_secs(30),
            Duration::from_secs(15 * 86_400),
        )),
        invitations: None,
        limits: hcp_ingest::limits::Limits::new(
            hcp_ingest::limits::KeyLimits { device: 1000, integration: 1000, platform: 1000 },
            1000,
        ),
    };
    let run = |now| {
        let state = state.clone();
        async move { hcp_ingest::defaults::run_once(&state, now, 100).await.unwrap() }
    };
    // Six days after acceptance nothing is due; seven days on, R-D1 (and only it) gets 基本满意.
    assert_eq!(run(accepted + chrono::Duration::days(6)).await.produced, 0);
    let due = accepted + chrono::Duration::days(7) + chrono::Duration::minutes(1);
    let first = run(due).await;
    assert_eq!((first.produced, first.already_rated), (1, 0));
    assert_eq!(run(due).await.produced, 0, "never twice");
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "the default rating stored", || async {
        store.count_ratings().await.unwrap() == 2
    })
    .await;
    let row =
        sqlx::query("SELECT grade, stage, rated_at, attr_window_id FROM ratings WHERE channel = 'system_default'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(row.get::<i16, _>("grade"), 3);
    assert_eq!(row.get::<String, _>("stage"), "acceptance");
    assert_eq!(row.get::<Option<String>, _>("attr_window_id").as_deref(), Some("W2"));
    let rated_at: chrono::DateTime<chrono::Utc> = row.get("rated_at");
    assert_eq!(rated_at.timestamp(), (accepted + chrono::Duration::days(7)).timestamp());

    // A region can turn the default off.
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/workorder-policies/449901",
            &admin,
            Some(json!({"contact_days": 3, "rectify_days": 10, "default_rating": false})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = app
        .post_json(
            "/api/v1/service-records/events",
            &key,
            &json!({
                "service_record_no": "R-D4", "event": "accepted", "at": accepted, "hall_id": "H1", "window_id": "W2"
            }),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(run(due).await.produced, 0);
    app.stop_aggregator().await;
}

/// Issues a key of `kind`/`channel` (and `device`).
async fn key(app: &TestApp, admin: &str, body: Value) -> String {
    let (s, k) = app.call(Method::POST, "/api/v1/credentials", admin, Some(body)).await;
    assert_eq!(s, 201, "{k}");
    k["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_platform_that_reported_a_record_speaks_for_it_and_attribution_changes_only_by_correction() {
    let (app, admin, web) = platform().await;
    let app_key = key(&app, &admin, json!({"kind": "integration", "channel": "app", "name": "掌上办"})).await;
    let tablet = key(
        &app,
        &admin,
        json!({"kind": "device", "channel": "window_evaluator", "device_id": "E-W2", "name": "评价器"}),
    )
    .await;
    let hotline = key(&app, &admin, json!({"kind": "integration", "channel": "hotline", "name": "12345"})).await;
    let accepted = json!({"service_record_no": "OWN-1", "event": "accepted", "department_id": "D-A", "hall_id": "H1",
        "window_id": "W2", "staff_id": "S1", "service_item_code": "I-A"});

    // A hall tablet's or the hotline's key cannot report records, mint links or read QR codes.
    for k in [&tablet, &hotline] {
        let (s, p) = app.post_json("/api/v1/service-records/events", k, &accepted).await;
        assert_eq!((s, p["type"].as_str()), (403, Some("/problems/forbidden")), "{p}");
        let (s, _) = app
            .post_json(
                "/api/v1/invitations",
                k,
                &json!({"service_record_no": "OWN-1", "stage": "acceptance",
                "channel": "sms", "phone": PHONE}),
            )
            .await;
        assert_eq!(s, 403);
    }
    assert!(app.store.service_record("OWN-1").await.unwrap().is_none(), "nothing was recorded");

    // Text PostgreSQL cannot hold (a NUL) is a field error, never a 500.
    let mut nul = accepted.clone();
    nul["window_id"] = json!("W2\u{0}");
    let (s, p) = app.post_json("/api/v1/service-records/events", &web, &nul).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("window_id")), "{p}");

    // The web platform reports it; repeating the same facts is fine, changing them is not.
    let (s, r) = app.post_json("/api/v1/service-records/events", &web, &accepted).await;
    assert_eq!(s, 200, "{r}");
    let (s, _) = app.post_json("/api/v1/service-records/events", &web, &accepted).await;
    assert_eq!(s, 200);
    let mut moved = accepted.clone();
    moved["window_id"] = json!("W1");
    moved["staff_id"] = json!("S2");
    let (s, p) = app.post_json("/api/v1/service-records/events", &web, &moved).await;
    assert_eq!((s, p["type"].as_str()), (409, Some("/problems/conflict")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("accepted_window_id"), "{p}");
    let mut dept = accepted.clone();
    dept["department_id"] = json!("D-B");
    assert_eq!(app.post_json("/api/v1/service-records/events", &web, &dept).await.0, 409);
    // Pickup adds its own fields.
    let pickup = json!({"service_record_no": "OWN-1", "event": "picked_up", "window_id": "WP", "staff_id": "S1"});
    assert_eq!(app.post_json("/api/v1/service-records/events", &web, &pickup).await.0, 200);
    let rec = app.store.service_record("OWN-1").await.unwrap().unwrap();
    assert_eq!(
        (rec.accepted_window_id.as_deref(), rec.accepted_staff_id.as_deref(), rec.department_id.as_deref()),
        (Some("W2"), Some("S1"), Some("D-A"))
    );
    assert_eq!(rec.pickup_window_id.as_deref(), Some("WP"));

    // Another platform neither reports for it, nor invites, nor reads its invitations' QR codes.
    let (s, p) = app.post_json("/api/v1/service-records/events", &app_key, &pickup).await;
    assert_eq!((s, p["type"].as_str()), (403, Some("/problems/forbidden")), "{p}");
    let ask = json!({"service_record_no": "OWN-1", "stage": "acceptance", "channel": "qr_code"});
    let (s, _) = app.post_json("/api/v1/invitations", &app_key, &ask).await;
    assert_eq!(s, 404);
    let (s, inv) = app.post_json("/api/v1/invitations", &web, &ask).await;
    assert_eq!(s, 201, "{inv}");
    let qr = inv["qr_svg"].as_str().unwrap();
    assert_eq!(app.call(Method::GET, qr, &app_key, None).await.0, 404);
    assert_eq!(app.call(Method::GET, qr, &web, None).await.0, 200);

    // The audited correction: admin only, a reason, the value before kept.
    let fix = json!({"field": "accepted_window_id", "value": "W1", "reason": "窗口录入错误,经核对为1号窗"});
    let path = "/api/v1/service-records/OWN-1/corrections";
    let supervisor = app.account("sup", "supervisor", None, Some("449901")).await;
    assert_eq!(app.post_json(path, &supervisor, &fix).await.0, 403);
    let (s, p) = app.post_json(path, &admin, &json!({"field": "applicant", "value": "x", "reason": "试试"})).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("field")));
    let (s, p) =
        app.post_json(path, &admin, &json!({"field": "accepted_window_id", "value": "W1", "reason": " "})).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("reason")));
    assert_eq!(app.post_json("/api/v1/service-records/NOPE/corrections", &admin, &fix).await.0, 404);
    let bad = json!({"field": "hall_id", "value": "H\u{0}1", "reason": "试一下控制字符"});
    let (s, p) = app.post_json(path, &admin, &bad).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("value")), "{p}");
    let (s, rec) = app.post_json(path, &admin, &fix).await;
    assert_eq!((s, rec["accepted_window_id"].as_str()), (200, Some("W1")), "{rec}");
    let (s, log) = app.call(Method::GET, path, &admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            log[0]["field"].as_str(),
            log[0]["old_value"].as_str(),
            log[0]["new_value"].as_str(),
            log[0]["corrected_by"].as_str()
        ),
        (Some("accepted_window_id"), Some("W2"), Some("W1"), Some("root"))
    );
    assert_eq!(log.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sms_invitations_are_capped_per_number_and_per_key_each_day() {
    let app = TestApp::start_with(|c| {
        c.ingest_auth_required = true;
        c.sms_per_number_per_day = 2;
        c.sms_per_key_per_day = 4;
    })
    .await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    let admin = app.account("root", "admin", None, None).await;
    let web = key(&app, &admin, json!({"kind": "integration", "channel": "web", "name": "办件系统"})).await;
    let outbox = |app: &TestApp| {
        let pool = app.store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM notifications WHERE kind = 'rating_sms'")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let sms = |no: &str, phone: &str| json!({"service_record_no": no, "stage": "acceptance", "channel": "sms", "phone": phone});
    for no in ["CAP-1", "CAP-2", "CAP-3", "CAP-4", "CAP-5"] {
        let ev = json!({"service_record_no": no, "event": "accepted", "department_id": "D-A", "hall_id": "H1"});
        assert_eq!(app.post_json("/api/v1/service-records/events", &web, &ev).await.0, 200);
    }
    // One number: two a day, then 429 until Beijing midnight, and nothing queued.
    for no in ["CAP-1", "CAP-2"] {
        let (s, r) = app.post_json("/api/v1/invitations", &web, &sms(no, PHONE)).await;
        assert_eq!(s, 201, "{r}");
    }
    let r = app
        .client
        .post(format!("{}/api/v1/invitations", app.url))
        .bearer_auth(&web)
        .json(&sms("CAP-3", PHONE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
    assert_eq!(outbox(&app).await, 2);
    // QR codes are not SMS: not capped.
    let (s, _) = app
        .post_json(
            "/api/v1/invitations",
            &web,
            &json!({"service_record_no": "CAP-3", "stage": "acceptance", "channel": "qr_code"}),
        )
        .await;
    assert_eq!(s, 201);
    // The key: four a day whatever the numbers.
    for (no, phone) in [("CAP-3", "13700000001"), ("CAP-4", "13700000002")] {
        assert_eq!(app.post_json("/api/v1/invitations", &web, &sms(no, phone)).await.0, 201);
    }
    assert_eq!(app.post_json("/api/v1/invitations", &web, &sms("CAP-5", "13700000003")).await.0, 429);
    // An event with the applicant's phone is still recorded over the cap; its SMS is held back.
    let ev = json!({"service_record_no": "CAP-6", "event": "accepted", "department_id": "D-A", "hall_id": "H1",
        "applicant_phone": "13700000004"});
    let (s, r) = app.post_json("/api/v1/service-records/events", &web, &ev).await;
    assert_eq!((s, r["sms_invitation"].is_null()), (200, true), "{r}");
    assert!(app.store.service_record("CAP-6").await.unwrap().is_some());
    assert_eq!(outbox(&app).await, 4);
}
