//! Threshold alerts on a controllable clock: ratings are stored with chosen times, the rules
//! are evaluated at chosen instants (`hcp_alert::evaluate_once(now)`), and each alert fires and
//! clears exactly when its window says so — with a notification to the unit's supervisors and a
//! webhook message for each transition.

use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use hcp_domain::SatisfactionPolicy;
use hcp_tests::{wait_until, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const CITY: &str = include_str!("fixtures/attribution-city.json");

fn pair(rule: &str, unit: &str) -> (String, String) {
    (rule.to_owned(), unit.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_clear_at_the_right_moments() {
    let mut app = TestApp::start().await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.import_calendar_for_test().await;
    app.start_aggregator();

    // The two rules of the issue (with a smaller minimum for the window rule).
    let rules = [
        (
            "window-sat",
            json!({"name": "窗口满意度低于80%", "scope": "window", "kind": "satisfaction_below",
                              "threshold": 0.8, "min_ratings": 5, "window_minutes": 60}),
        ),
        (
            "staff-bad",
            json!({"name": "人员一天内3条差评", "scope": "staff", "kind": "bad_at_least",
                             "threshold": 3, "window_minutes": 1440}),
        ),
    ];
    for (id, body) in &rules {
        let (s, r) = app.call(Method::PUT, &format!("/api/v1/alert-rules/{id}"), &app.admin, Some(body.clone())).await;
        assert_eq!(s, 200, "{r}");
    }
    let (s, p) = app
        .call(
            Method::PUT,
            "/api/v1/alert-rules/bad",
            &app.admin,
            Some(json!({"name": "x", "scope": "channel",
            "kind": "bad_at_least", "threshold": 2.5, "window_minutes": 0})),
        )
        .await;
    assert_eq!(s, 422);
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["scope", "threshold", "window_minutes"], "every problem at once");
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/alert-rules/bad",
            &app.admin,
            Some(json!({"name": "x", "scope": "staff",
            "kind": "bad_at_least", "threshold": 2.5, "window_minutes": 0})),
        )
        .await;
    assert_eq!(s, 422);

    // Ratings at window W2 by staff S1, at chosen minutes after t0 (three hours ago).
    let t0 = Utc::now().duration_trunc(chrono::Duration::minutes(1)).unwrap() - chrono::Duration::hours(3);
    let at = |m: i64| t0 + chrono::Duration::minutes(m);
    let ratings = [(0, 5), (1, 1), (2, 2), (3, 5), (4, 3), (30, 1)];
    for (i, (minute, grade)) in ratings.iter().enumerate() {
        let mut body = json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": format!("AL-{i}"),
            "hall_id": "H1", "window_id": "W2", "staff_id": "S1", "service_item_code": "I-A", "grade": grade,
            "rated_at": at(*minute).to_rfc3339()});
        if *grade <= 2 {
            body["tags"] = json!(["rude"]);
        }
        let r = app.post_rating(&body).await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    }
    let store = app.store.clone();
    wait_until(Duration::from_secs(30), "ratings stored", || {
        let store = store.clone();
        async move { store.count_ratings().await.unwrap() == 6 }
    })
    .await;

    let eval = |now: DateTime<Utc>| {
        let store = app.store.clone();
        async move { hcp_alert::evaluate_once(&store, SatisfactionPolicy::ThreeIsGood, now).await.unwrap() }
    };
    // t0+3: four ratings in the window (fewer than five), two bad: nothing.
    let o = eval(at(3) + chrono::Duration::seconds(30)).await;
    assert!(o.fired.is_empty() && o.cleared.is_empty(), "{o:?}");
    // t0+10: five ratings, 3 good (60 % < 80 %): the window alert fires, once.
    let o = eval(at(10)).await;
    assert_eq!((o.fired, o.cleared), (vec![pair("window-sat", "W2")], vec![]));
    let o = eval(at(11)).await;
    assert!(o.fired.is_empty() && o.cleared.is_empty(), "still firing, not again: {o:?}");
    // t0+31: a third bad review for S1 within a day: the staff alert fires.
    let o = eval(at(31)).await;
    assert_eq!((o.fired, o.cleared), (vec![pair("staff-bad", "S1")], vec![]));
    // t0+60m30s: the minute-0 rating left the hour (five left, 2 good of 5 = 40 %): still firing.
    assert_eq!(eval(at(60) + chrono::Duration::seconds(30)).await, Default::default());
    // t0+62: minutes 1 and 2 left too, three ratings are fewer than five: the alert clears.
    let o = eval(at(62)).await;
    assert_eq!((o.fired, o.cleared), (vec![], vec![pair("window-sat", "W2")]));
    // A day after the minute-1 bad review only two are left: the staff alert clears.
    let o = eval(at(1 + 1440) + chrono::Duration::seconds(1)).await;
    assert_eq!((o.fired, o.cleared), (vec![], vec![pair("staff-bad", "S1")]));

    // The alerts as stored: fired and cleared at the evaluation instants.
    let (s, list) = app.call(Method::GET, "/api/v1/alerts", &app.admin, None).await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let find = |rule: &str| list.iter().find(|a| a["rule_id"] == rule).unwrap().clone();
    let ts = |v: &Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    let w = find("window-sat");
    assert_eq!((ts(&w["fired_at"]), ts(&w["cleared_at"])), (at(10), at(62)));
    assert_eq!((w["scope_id"].as_str(), w["ratings"].as_i64()), (Some("W2"), Some(5)));
    assert!((w["value"].as_f64().unwrap() - 0.6).abs() < 1e-9);
    let st = find("staff-bad");
    assert_eq!((ts(&st["fired_at"]), ts(&st["cleared_at"])), (at(31), at(1441) + chrono::Duration::seconds(1)));
    assert_eq!(st["value"].as_f64(), Some(3.0));
    let (_, active) = app.call(Method::GET, "/api/v1/alerts?active=true", &app.admin, None).await;
    assert_eq!(active, json!([]));

    // Each transition queued a notification for the unit's supervisors (region 449900's tree).
    let notes: Vec<(String, Vec<String>)> =
        sqlx::query_as("SELECT kind, region_path FROM notifications WHERE kind LIKE 'alert_%' ORDER BY id")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    let kinds: Vec<&str> = notes.iter().map(|n| n.0.as_str()).collect();
    assert_eq!(kinds, ["alert_fired", "alert_fired", "alert_cleared", "alert_cleared"]);
    assert!(notes.iter().all(|n| n.1.contains(&"449900".to_owned())), "{notes:?}");
    let supervisor = app.account("al-sup", "supervisor", None, Some("449900")).await;
    let (s, seen) = app.call(Method::GET, "/api/v1/notifications", &supervisor, None).await;
    assert_eq!(s, 200);
    let subjects = seen.to_string();
    assert!(
        subjects.contains("预警:窗口满意度低于80% W2") && subjects.contains("预警解除:人员一天内3条差评 S1"),
        "{subjects}"
    );

    // Who may: the rules are the admin's.
    let (s, _) = app.call(Method::PUT, "/api/v1/alert-rules/x", &supervisor, Some(rules[0].1.clone())).await;
    assert_eq!(s, 403);
    let (s, _) = app.call(Method::DELETE, "/api/v1/alert-rules/staff-bad", &app.admin, None).await;
    assert_eq!(s, 204);
    let (s, _) = app.call(Method::DELETE, "/api/v1/alert-rules/staff-bad", &app.admin, None).await;
    assert_eq!(s, 404);
}
