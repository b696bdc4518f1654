//! Bad-review work orders end to end: ratings through Kafka open exactly one order per bad rating
//! (also on redelivery), handlers act within their department, an upheld appeal takes the rating
//! out of every aggregate exactly, callbacks re-rate and reopen, the sweeper escalates overdue
//! orders once on a controllable clock, and the rater's identity stays sealed and masked.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hcp_bus::RatingProducer;
use hcp_domain::WorkCalendar;
use hcp_tests::{around_now, wait_until, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Row;

const CITY: &str = include_str!("fixtures/attribution-city.json");
const PHONE: &str = "13812341234";
const ID_NUMBER: &str = "11010519491231002X";

/// A rating at window W2 (staff S1 signed in by the evaluator's report). Bad ones are either a
/// conduct complaint (`rude`: the staff member's department D-ZW, window W2, staff S1) or a
/// process complaint about item I-B (`slow_process`: its department D-B).
fn rating(i: usize, grade: i64, with_rater: bool) -> Value {
    let mut b = json!({
        "channel": "window_evaluator", "stage": "acceptance", "service_record_no": format!("WO-{i:04}"),
        "hall_id": "H1", "window_id": "W2", "device_id": "E-W2", "staff_id": "S1", "service_item_code": "I-A",
        "grade": grade, "dimensions": {"service_attitude": grade, "efficiency": 6 - grade},
    });
    if grade <= 2 {
        if i % 2 == 0 {
            b["tags"] = json!(["rude"]);
        } else {
            b["tags"] = json!(["slow_process"]);
            b["service_item_code"] = json!("I-B");
        }
    }
    if with_rater {
        b["rater"] = json!({"name": "张三", "phone": PHONE, "id_number": ID_NUMBER});
    }
    b
}

/// Which department a bad rating's order must go to (independently of hcp).
fn expected_department(i: usize) -> &'static str {
    if i % 2 == 0 {
        "D-ZW"
    } else {
        "D-B"
    }
}

async fn setup(grades: &[i64]) -> (TestApp, BTreeMap<String, usize>) {
    let mut app = TestApp::start().await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.import_calendar_for_test().await;
    app.start_aggregator();
    let mut ids = BTreeMap::new();
    for (i, &g) in grades.iter().enumerate() {
        let r = app.post_rating(&rating(i, g, g <= 2 && i < 2)).await;
        assert_eq!(r.status(), 202, "rating {i}");
        let body: Value = r.json().await.unwrap();
        ids.insert(body["rating_id"].as_str().unwrap().to_owned(), i);
    }
    let bad = grades.iter().filter(|&&g| g <= 2).count() as i64;
    let store = app.store.clone();
    let n = grades.len() as i64;
    wait_until(Duration::from_secs(60), "ratings stored and orders opened", || async {
        store.count_ratings().await.unwrap() == n && order_count(&store).await == bad
    })
    .await;
    (app, ids)
}

async fn order_count(store: &hcp_store::Store) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM work_orders").fetch_one(store.pool()).await.unwrap()
}

async fn orders_of(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let (s, page) = app.call(Method::GET, &format!("/api/v1/work-orders?{query}"), token, None).await;
    assert_eq!(s, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn calendar() -> WorkCalendar {
    WorkCalendar::from_json(include_str!("../deploy/calendar/cn-workdays-2020-2026.json")).unwrap()
}

fn ts(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bad_rating_opens_exactly_one_order_through_kafka_even_when_redelivered() {
    let grades = [5, 1, 4, 2, 3, 5, 2, 4, 1, 5, 3, 2];
    let (app, ids) = setup(&grades).await;
    let bad: BTreeSet<&String> = ids.iter().filter(|(_, &i)| grades[i] <= 2).map(|(id, _)| id).collect();

    // The broker delivers every rating a second time: no second order, no change.
    let records = app.read_topic(grades.len()).await;
    let producer = RatingProducer::new(&app.kafka(), &app.config.topics()).unwrap();
    for (key, body) in &records {
        producer.publish_raw(std::str::from_utf8(key).unwrap(), body).await.unwrap();
    }
    app.wait_caught_up(Duration::from_secs(60)).await;
    let rows = sqlx::query(
        "SELECT o.rating_id::text AS rating_id, o.department_id, o.window_id, o.staff_id, o.basis, o.state,
                o.opened_at, o.contact_due_at, o.rectify_due_at, o.provisional, r.received_at
           FROM work_orders o JOIN ratings r USING (rating_id)",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), bad.len(), "one order per bad rating");
    let with_orders: BTreeSet<String> = rows.iter().map(|r| r.get::<String, _>("rating_id")).collect();
    assert_eq!(with_orders.iter().collect::<BTreeSet<_>>(), bad);

    let cal = calendar();
    for row in &rows {
        let i = ids[&row.get::<String, _>("rating_id")];
        let dept: Option<String> = row.get("department_id");
        assert_eq!(dept.as_deref(), Some(expected_department(i)), "rating {i}");
        if i % 2 == 0 {
            assert_eq!(row.get::<String, _>("basis"), "conduct");
            assert_eq!(row.get::<Option<String>, _>("window_id").as_deref(), Some("W2"));
            assert_eq!(row.get::<Option<String>, _>("staff_id").as_deref(), Some("S1"));
        } else {
            assert_eq!(row.get::<String, _>("basis"), "process");
            assert_eq!(row.get::<Option<String>, _>("staff_id"), None);
        }
        assert_eq!(row.get::<String, _>("state"), "opened");
        // Opened on the rating's receipt; deadlines are the end of the 3rd / 10th working day after.
        let received: DateTime<Utc> = row.get("received_at");
        assert_eq!(row.get::<DateTime<Utc>, _>("opened_at"), received);
        let day = received.with_timezone(&hcp_domain::time::beijing()).date_naive();
        assert_eq!(row.get::<DateTime<Utc>, _>("contact_due_at"), cal.add_working_days(day, 3).unwrap().due_at);
        assert_eq!(row.get::<DateTime<Utc>, _>("rectify_due_at"), cal.add_working_days(day, 10).unwrap().due_at);
        assert!(!row.get::<bool, _>("provisional"));
    }

    // Each opening is published once on hcp.workorder.event.v1, valid against its schema.
    let schema: Value = serde_json::from_str(include_str!("../schemas/workorder-event.v1.json")).unwrap();
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).unwrap();
    let events = app.read_records_settled(app.config.topics().workorder_event, bad.len(), Duration::from_secs(1)).await;
    assert_eq!(events.len(), bad.len());
    for (key, body) in &events {
        let e: Value = serde_json::from_slice(body).unwrap();
        let errors: Vec<String> = validator.iter_errors(&e).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{e}: {errors:?}");
        assert_eq!((e["action"].as_str(), e["to_state"].as_str()), (Some("open"), Some("opened")));
        assert_eq!(e["order_id"].as_str().unwrap().as_bytes(), key.as_slice());
        assert!(bad.contains(&e["rating_id"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_act_in_their_department_and_an_upheld_appeal_lowers_the_bad_count_exactly() {
    let grades = [2, 1, 5, 4, 3, 5, 4, 1, 5, 2];
    let (app, ids) = setup(&grades).await;
    let (range, total) = (around_now(), grades.len() as i64);
    let bad = grades.iter().filter(|&&g| g <= 2).count() as i64;
    let good = grades.iter().filter(|&&g| g >= 3).count() as i64;
    let before = app.summary(&format!("scope=all&{range}")).await;
    assert_eq!((before["total"].as_i64(), before["bad_review_count"].as_i64()), (Some(total), Some(bad)));
    let attitude_before = app.dimension_counts("all:all", "service_attitude").await;
    let efficiency_before = app.dimension_counts("all:all", "efficiency").await;
    assert_eq!(attitude_before.iter().sum::<i64>(), total, "every rating graded the dimension");

    let h_b = app.account("li", "handler", Some("D-B"), None).await;
    let h_zw = app.account("wang", "handler", Some("D-ZW"), None).await;
    let sup = app.account("du", "supervisor", None, Some("449900")).await;
    let cb = app.account("hui", "callback", None, None).await;

    // Each handler sees exactly their department's orders, soonest deadline first.
    let mine_b = orders_of(&app, &h_b, "sort=deadline").await;
    let mine_zw = orders_of(&app, &h_zw, "").await;
    let expect = |d: &str| grades.iter().enumerate().filter(|(i, &g)| g <= 2 && expected_department(*i) == d).count();
    assert_eq!((mine_b.len(), mine_zw.len()), (expect("D-B"), expect("D-ZW")));
    assert!(mine_b.iter().all(|o| o["department_id"] == "D-B"));
    assert!(mine_zw.iter().all(|o| o["department_id"] == "D-ZW"));
    let dues: Vec<DateTime<Utc>> = mine_b.iter().map(|o| ts(&o["due_at"])).collect();
    assert!(dues.windows(2).all(|w| w[0] <= w[1]), "sorted by deadline: {dues:?}");
    let (s, _) = app.call(Method::GET, "/api/v1/work-orders", "forged.token", None).await;
    assert_eq!(s, 401);

    // Appeal path on a D-B order: claim; an illegal step names the state and what it allows.
    let order = mine_b[0]["order_id"].as_str().unwrap().to_owned();
    let rating_id = mine_b[0]["rating_id"].as_str().unwrap().to_owned();
    let path = |a: &str| format!("/api/v1/work-orders/{order}/{a}");
    let (s, _) = app.call(Method::POST, &path("claim"), &h_zw, None).await;
    assert_eq!(s, 404, "another department's order does not exist for this handler");
    let (s, o) = app.call(Method::POST, &path("claim"), &h_b, None).await;
    assert_eq!((s, o["state"].as_str()), (200, Some("claimed")));
    let (s, p) = app.call(Method::POST, &path("reply"), &h_b, None).await;
    assert_eq!(
        (s, p["type"].as_str(), p["state"].as_str()),
        (409, Some("/problems/transition-refused"), Some("claimed"))
    );
    assert_eq!(p["allowed_actions"], json!(["contact", "appeal", "escalate"]));
    let (s, p) = app.call(Method::POST, &path("appeal"), &h_b, Some(json!({}))).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("note")));
    let (s, o) =
        app.call(Method::POST, &path("appeal"), &h_b, Some(json!({"note": "评价内容与本部门办理事项无关"}))).await;
    assert_eq!((s, o["state"].as_str()), (200, Some("appealed")));
    let (s, p) = app.call(Method::POST, &path("appeal/uphold"), &h_b, Some(json!({"note": "x"}))).await;
    assert_eq!((s, p["type"].as_str()), (403, Some("/problems/forbidden")));
    let (s, o) = app.call(Method::POST, &path("appeal/uphold"), &sup, Some(json!({"note": "经复核,申诉成立"}))).await;
    assert_eq!((s, o["state"].as_str()), (200, Some("appeal_upheld")));
    let (s, p) = app.call(Method::POST, &path("claim"), &h_b, None).await;
    assert_eq!((s, p["allowed_actions"].clone()), (409, json!([])));

    // The rating left every aggregate: one bad fewer, the rate exactly good / (total − 1).
    let after = app.summary(&format!("scope=all&{range}")).await;
    assert_eq!((after["total"].as_i64(), after["bad_review_count"].as_i64()), (Some(total - 1), Some(bad - 1)));
    assert_eq!(after["satisfaction_rate"].as_f64(), Some(good as f64 / (total - 1) as f64));
    assert!(after["satisfaction_rate"].as_f64() > before["satisfaction_rate"].as_f64());
    // D-B is counted for its process complaints only (item I-B): one of this grade fewer now.
    let grade = grades[ids[&rating_id]];
    let d_b = grades.iter().enumerate().filter(|(i, &g)| g == grade && expected_department(*i) == "D-B").count();
    let d = app.summary(&format!("scope=department&id=D-B&{range}")).await;
    assert_eq!(d["counts"][grade.to_string()].as_i64(), Some(d_b as i64 - 1));
    // Its dimension grades left their rows exactly as its overall grade did.
    let mut attitude = attitude_before;
    attitude[grade as usize - 1] -= 1;
    let mut efficiency = efficiency_before;
    efficiency[(6 - grade) as usize - 1] -= 1;
    assert_eq!(app.dimension_counts("all:all", "service_attitude").await, attitude);
    assert_eq!(app.dimension_counts("all:all", "efficiency").await, efficiency);
    assert!(app.assert_rollups_match_ratings().await > 0);
    // …and keeps its history, visibly excluded.
    let (s, r) = app.call(Method::GET, &format!("/api/v1/ratings/{rating_id}"), &sup, None).await;
    assert_eq!((s, r["counted"].as_bool(), r["excluded_reason"].as_str()), (200, Some(false), Some("经复核,申诉成立")));
    let (_, detail) = app.call(Method::GET, &format!("/api/v1/work-orders/{order}"), &sup, None).await;
    let steps: Vec<(&str, &str)> = detail["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["action"].as_str().unwrap(), l["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, vec![("open", "system:aggregator"), ("claim", "li"), ("appeal", "li"), ("uphold_appeal", "du")]);

    // Full lifecycle on a conduct order with a rater identity: masked for the handler, full only
    // for the callback role (audited), sealed at rest.
    let zw = mine_zw
        .iter()
        .find(|o| ids[o["rating_id"].as_str().unwrap()] < 2)
        .expect("an order whose rater left an identity");
    let zorder = zw["order_id"].as_str().unwrap().to_owned();
    let zpath = |a: &str| format!("/api/v1/work-orders/{zorder}/{a}");
    let (_, zd) = app.call(Method::GET, &format!("/api/v1/work-orders/{zorder}"), &h_zw, None).await;
    assert_eq!(zd["rating"]["rater"]["phone"], "138****1234");
    assert!(!zd.to_string().contains(PHONE) && !zd.to_string().contains(ID_NUMBER));
    let (s, _) = app.call(Method::GET, &zpath("rater"), &h_zw, None).await;
    assert_eq!(s, 403);
    let (s, full) = app.call(Method::GET, &zpath("rater"), &cb, None).await;
    assert_eq!((s, full["phone"].as_str(), full["id_number"].as_str()), (200, Some(PHONE), Some(ID_NUMBER)));
    let at_rest: String = sqlx::query_scalar("SELECT rater::text FROM ratings WHERE rating_id = $1::uuid")
        .bind(zw["rating_id"].as_str().unwrap())
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert!(!at_rest.contains(PHONE) && !at_rest.contains(ID_NUMBER) && at_rest.contains("138****1234"));

    for (action, body) in [
        ("claim", None),
        ("contact", Some(json!({"note": "已电话联系评价人"}))),
        ("verify", Some(json!({"founded": true, "cause": "conduct", "note": "属实"}))),
        ("rectify", Some(json!({"note": "已对窗口人员批评教育"}))),
        ("reply", None),
    ] {
        let (s, o) = app.call(Method::POST, &zpath(action), &h_zw, body).await;
        assert_eq!(s, 200, "{action}: {o}");
    }
    // Callback by invitation: the link goes to the rater only (the outbox), never to the handler.
    let (s, inv) = app.call(Method::POST, &zpath("callback-invitation"), &h_zw, None).await;
    assert_eq!((s, inv["sent_to"].as_str()), (201, Some("138****1234")));
    assert!(!inv.to_string().contains("/callback/"));
    let sms = app.store.pending_notifications(100, None).await.unwrap();
    let sms = sms.iter().find(|n| n.kind == "callback_sms").expect("callback SMS queued");
    assert_eq!(sms.recipient, format!("rater:{}", zw["rating_id"].as_str().unwrap()));
    let token = sms.body.split("/callback/").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let cb_url = format!("{}/api/v1/callback/{token}", app.url);
    assert_eq!(app.client.get(&cb_url).send().await.unwrap().status(), 200);
    let r = app.client.post(&cb_url).json(&json!({"grade": 2, "comment": "还是不满意"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, zd) = app.call(Method::GET, &format!("/api/v1/work-orders/{zorder}"), &h_zw, None).await;
    assert_eq!((zd["order"]["state"].as_str(), zd["order"]["callback_grade"].as_i64()), (Some("reopened"), Some(2)));
    let r = app.client.post(&cb_url).json(&json!({"grade": 5})).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "/problems/invitation-used");
    let forged = app.client.get(format!("{}/api/v1/callback/{}x", app.url, token)).send().await.unwrap();
    assert_eq!(forged.status(), 404);
    // Had it not been used, past its expiry it would be refused as expired (the clock moved on).
    sqlx::query("UPDATE callback_invitations SET used_at = NULL, expires_at = now() - interval '1 second'")
        .execute(app.store.pool())
        .await
        .unwrap();
    let expired = app.client.post(&cb_url).json(&json!({"grade": 5})).send().await.unwrap();
    assert_eq!(expired.status(), 410);
    let p: Value = expired.json().await.unwrap();
    assert_eq!(p["type"], "/problems/invitation-expired");

    // Reopened: handled again, then the callback agent records a satisfied callback → closed.
    for (action, body) in [
        ("claim", None),
        ("contact", None),
        ("verify", Some(json!({"founded": false}))),
        ("reply", Some(json!({"note": "已解释"}))),
    ] {
        let (s, o) = app.call(Method::POST, &zpath(action), &h_zw, body).await;
        assert_eq!(s, 200, "{action}: {o}");
    }
    let (s, o) = app.call(Method::POST, &zpath("callback"), &h_zw, Some(json!({"satisfied": true}))).await;
    assert_eq!(s, 403, "handlers do not record their own callbacks: {o}");
    let (s, o) = app.call(Method::POST, &zpath("callback"), &cb, Some(json!({"grade": 4}))).await;
    assert_eq!((s, o["state"].as_str(), o["callback_grade"].as_i64()), (200, Some("closed"), Some(4)));
    let (_, zd) = app.call(Method::GET, &format!("/api/v1/work-orders/{zorder}"), &sup, None).await;
    let actions: Vec<&str> = zd["log"].as_array().unwrap().iter().map(|l| l["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        vec![
            "open",
            "view_rater",
            "claim",
            "contact",
            "verify",
            "rectify",
            "reply",
            "callback_invite",
            "callback",
            "claim",
            "contact",
            "verify",
            "reply",
            "callback"
        ]
    );
    assert_eq!(zd["log"][1]["actor"], "hui");

    // Every transition is published, in order per order; the identity view is not.
    let expected_events = bad as usize + 3 + (actions.len() - 2);
    let events =
        app.read_records_settled(app.config.topics().workorder_event, expected_events, Duration::from_secs(1)).await;
    assert_eq!(events.len(), expected_events);
    let of = |id: &str| -> Vec<String> {
        events
            .iter()
            .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap())
            .filter(|e| e["order_id"] == id)
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(of(&order), vec!["open", "claim", "appeal", "uphold_appeal"]);
    let published: Vec<String> = actions.iter().filter(|a| **a != "view_rater").map(|a| a.to_string()).collect();
    assert_eq!(of(&zorder), published);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweeper_marks_near_due_and_overdue_and_escalates_once_on_a_controllable_clock() {
    let (app, _) = setup(&[1]).await;
    let ctx = app.store.deadline_context().await.unwrap();
    let row = sqlx::query("SELECT order_id, contact_due_at, rectify_due_at FROM work_orders")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    let order: uuid::Uuid = row.get("order_id");
    let contact_due: DateTime<Utc> = row.get("contact_due_at");
    let status = || async {
        sqlx::query_scalar::<_, String>("SELECT due_status FROM work_orders").fetch_one(app.store.pool()).await.unwrap()
    };

    let now = Utc::now();
    let out = app.store.sweep_work_orders(&ctx, now).await.unwrap();
    assert_eq!((out.examined, out.near_due, out.overdue, out.escalated), (1, 0, 0, 0));
    assert_eq!(status().await, "on_track");
    // Within the last working day before the contact deadline: near due.
    let out = app.store.sweep_work_orders(&ctx, contact_due - chrono::Duration::hours(2)).await.unwrap();
    assert_eq!((out.near_due, out.overdue, out.changed), (1, 0, 1));
    assert_eq!(status().await, "near_due");
    // Past it: overdue and escalated once, with a notification to the region's supervisors.
    let late = contact_due + chrono::Duration::seconds(1);
    let out = app.store.sweep_work_orders(&ctx, late).await.unwrap();
    assert_eq!((out.overdue, out.escalated), (1, 1));
    let out = app.store.sweep_work_orders(&ctx, late + chrono::Duration::hours(1)).await.unwrap();
    assert_eq!((out.overdue, out.escalated, out.changed), (1, 0, 0));
    assert_eq!(app.store.open_order_counts().await.unwrap(), vec![("overdue".to_string(), 1)]);
    let escalations: Vec<(String, String)> =
        sqlx::query_as("SELECT actor, note FROM work_order_log WHERE order_id = $1 AND action = 'escalate'")
            .bind(order)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(escalations.len(), 1);
    assert_eq!(escalations[0].0, "system:sweeper");
    let sup = app.account("du", "supervisor", None, Some("449900")).await;
    let other = app.account("qu", "supervisor", None, Some("440100")).await;
    let (s, notes) = app.call(Method::GET, "/api/v1/notifications", &sup, None).await;
    assert_eq!(s, 200);
    let kinds: Vec<&str> = notes.as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["escalation"]);
    let (_, none) = app.call(Method::GET, "/api/v1/notifications", &other, None).await;
    assert_eq!(none, json!([]));
    let (_, list) = app.call(Method::GET, "/api/v1/work-orders?due_status=overdue", &sup, None).await;
    assert_eq!(list["total"], 1);
    assert!(list["items"][0]["escalated_at"].is_string());

    // Contacting the rater switches to the rectification deadline: on track again.
    let h = app.account("wang", "handler", Some("D-ZW"), None).await;
    for a in ["claim", "contact"] {
        let (s, _) = app.call(Method::POST, &format!("/api/v1/work-orders/{order}/{a}"), &h, None).await;
        assert_eq!(s, 200);
    }
    let out = app.store.sweep_work_orders(&ctx, late).await.unwrap();
    assert_eq!((out.overdue, out.near_due), (0, 0));
    assert_eq!(status().await, "on_track");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn region_policies_set_deadlines_and_a_year_past_the_calendar_is_provisional_with_an_alert() {
    let mut app = TestApp::start().await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.import_calendar_for_test().await;
    // The calendar lacks this year and later, as when the State Council's notice is not in yet.
    sqlx::query("DELETE FROM calendar_years WHERE year >= extract(year FROM now() AT TIME ZONE 'Asia/Shanghai')")
        .execute(app.store.pool())
        .await
        .unwrap();
    let admin = app.account("root", "admin", None, None).await;
    let h = app.account("wang", "handler", Some("D-ZW"), None).await;
    // District 449901 (hall H1) answers within 5 / 60 working days.
    let (s, p) = app
        .call(
            Method::PUT,
            "/api/v1/workorder-policies/449901",
            &admin,
            Some(json!({"contact_days": 5, "rectify_days": 60})),
        )
        .await;
    assert_eq!((s, p["rectify_days"].as_i64()), (201, Some(60)));
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/workorder-policies/449901",
            &h,
            Some(json!({"contact_days": 5, "rectify_days": 60})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, p) = app
        .call(
            Method::PUT,
            "/api/v1/workorder-policies/449901",
            &admin,
            Some(json!({"contact_days": 9, "rectify_days": 5})),
        )
        .await;
    assert_eq!((s, p["type"].as_str()), (422, Some("/problems/validation-failed")));

    // A malformed identity is refused before anything is produced, naming the field.
    let mut bad_phone = rating(1, 1, true);
    bad_phone["rater"]["phone"] = json!("12345");
    let r = app.post_rating(&bad_phone).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "rater.phone");

    app.start_aggregator();
    let r = app.post_rating(&rating(0, 1, false)).await;
    assert_eq!(r.status(), 202);
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "the order opened", || async { order_count(&store).await == 1 }).await;
    let row = sqlx::query("SELECT opened_at, contact_due_at, rectify_due_at, provisional FROM work_orders")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    // Monday–Friday past the data: the deadline is provisional, and the alert names each year.
    let cal = app.store.load_calendar().await.unwrap();
    let opened: DateTime<Utc> = row.get("opened_at");
    let day = opened.with_timezone(&hcp_domain::time::beijing()).date_naive();
    let contact = cal.add_working_days(day, 5).unwrap();
    let rectify = cal.add_working_days(day, 60).unwrap();
    assert!(contact.provisional && rectify.provisional);
    assert_eq!(contact.date, hcp_domain::WorkCalendar::default().add_working_days(day, 5).unwrap().date);
    assert_eq!(row.get::<DateTime<Utc>, _>("contact_due_at"), contact.due_at);
    assert_eq!(row.get::<DateTime<Utc>, _>("rectify_due_at"), rectify.due_at);
    assert!(row.get::<bool, _>("provisional"));
    let years: Vec<String> = rectify.missing_years.iter().map(|y| format!("calendar needs year {y}")).collect();
    let alerts: Vec<String> = app
        .store
        .pending_notifications(100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == "calendar_needs_year")
        .map(|n| n.subject)
        .collect();
    assert_eq!(alerts, years);
    app.stop_aggregator().await;
}
