//! 我的业务 ("内置'我的业务'模块,方便评价人在合适的时间、合适的地点进行评价"): a platform reports
//! service records with its user id for the applicant; it lists exactly that citizen's stages
//! still open for rating — its own records only, unrated, within the region's default-rating
//! days — and the citizen rates one through the normal path, after which it is no longer listed.
//! The user id is stored only as a keyed digest.

use chrono::{Duration, SecondsFormat, Utc};
use hcp_tests::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

const CITY: &str = include_str!("fixtures/attribution-city.json");

async fn key(app: &TestApp, admin: &str, channel: &str) -> String {
    let body = json!({"kind": "integration", "channel": channel, "name": format!("{channel} 平台")});
    let (s, k) = app.call(Method::POST, "/api/v1/credentials", admin, Some(body)).await;
    assert_eq!(s, 201, "{k}");
    k["token"].as_str().unwrap().to_owned()
}

async fn open_stages(app: &TestApp, key: &str, user: &str) -> (u16, Value) {
    app.call(Method::GET, &format!("/api/v1/my-business/open-stages?user_id={user}"), key, None).await
}

fn listed(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["service_record_no"].as_str().unwrap().to_owned(), s["stage"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_lists_a_citizens_stages_still_open_and_rating_one_closes_it() {
    let mut app = TestApp::start_with(|c| c.ingest_auth_required = true).await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.start_aggregator();
    let admin = app.account("root", "admin", None, None).await;
    let (web, other_app) = (key(&app, &admin, "web").await, key(&app, &admin, "app").await);
    let event = |key: &str, no: &str, event: &str, user: &str, at: Option<chrono::DateTime<Utc>>| {
        let mut body = json!({"service_record_no": no, "event": event, "service_item_code": "I-A", "hall_id": "H1",
                              "window_id": "W2", "staff_id": "S1", "platform_user_id": user});
        if let Some(at) = at {
            body["at"] = json!(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        let key = key.to_owned();
        let app = &app;
        async move {
            let (s, r) = app.post_json("/api/v1/service-records/events", &key, &body).await;
            assert_eq!(s, 200, "{body}: {r}");
            assert!(
                !r.to_string().contains(body["platform_user_id"].as_str().unwrap()),
                "the user id is not echoed: {r}"
            );
        }
    };
    // u-1 on the web platform: R-1 accepted then picked up; R-2 accepted 8 days ago (past the
    // default's 7); u-2: R-3; u-1 on the app platform: R-4.
    event(&web, "MB-1", "accepted", "u-1", Some(Utc::now() - Duration::hours(2))).await;
    event(&web, "MB-1", "picked_up", "u-1", Some(Utc::now() - Duration::hours(1))).await;
    event(&web, "MB-2", "accepted", "u-1", Some(Utc::now() - Duration::days(8))).await;
    event(&web, "MB-3", "accepted", "u-2", None).await;
    event(&other_app, "MB-4", "accepted", "u-1", None).await;
    // A later event naming another user does not move the record.
    event(&web, "MB-1", "picked_up", "u-9", Some(Utc::now() - Duration::hours(1))).await;

    let (s, mine) = open_stages(&app, &web, "u-1").await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(listed(&mine), [("MB-1".to_owned(), "pickup".to_owned()), ("MB-1".to_owned(), "acceptance".to_owned())]);
    let first = &mine[0];
    assert_eq!(
        (&first["stage_name"], &first["service_item_name"], &first["hall_name"]),
        (&json!("出件"), &json!("甲事项"), &json!("测试市民中心"))
    );
    let happened = chrono::DateTime::parse_from_rfc3339(first["happened_at"].as_str().unwrap()).unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(first["open_until"].as_str().unwrap()).unwrap();
    assert_eq!(until - happened, Duration::days(7), "open for the region's default-rating days");
    assert_eq!(listed(&open_stages(&app, &web, "u-2").await.1), [("MB-3".to_owned(), "acceptance".to_owned())]);
    assert_eq!(listed(&open_stages(&app, &other_app, "u-1").await.1), [("MB-4".to_owned(), "acceptance".to_owned())]);
    assert!(listed(&open_stages(&app, &web, "u-9").await.1).is_empty(), "the first user id given stays");
    assert!(listed(&open_stages(&app, &web, "nobody").await.1).is_empty());

    // The citizen rates MB-1's acceptance on the platform, the normal way: it leaves the list.
    let body = json!({"channel": "web", "stage": "acceptance", "service_record_no": "MB-1", "grade": 4});
    let (s, r) = app.post_json("/api/v1/ratings", &web, &body).await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(listed(&open_stages(&app, &web, "u-1").await.1), [("MB-1".to_owned(), "pickup".to_owned())]);

    // Bad input and the wrong callers.
    let (s, p) = open_stages(&app, &web, &"x".repeat(129)).await;
    assert_eq!((s, &p["errors"][0]["field"]), (422, &json!("user_id")), "{p}");
    let (s, _) = app.call(Method::GET, "/api/v1/my-business/open-stages?user_id=u-1", "hcp_nope_x", None).await;
    assert_eq!(s, 401);
    let hotline = key(&app, &admin, "hotline").await;
    let (s, _) = open_stages(&app, &hotline, "u-1").await;
    assert_eq!(s, 403, "only an online platform's key");
    let (s, p) = app
        .post_json(
            "/api/v1/service-records/events",
            &web,
            &json!({"service_record_no": "MB-5", "event": "accepted", "platform_user_id": ""}),
        )
        .await;
    assert_eq!((s, &p["errors"][0]["field"]), (422, &json!("platform_user_id")), "{p}");

    // Stored only as a keyed digest.
    let (n, clear): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE octet_length(platform_user) = 32),
                count(*) FILTER (WHERE position(convert_to('u-1', 'UTF8') IN platform_user) > 0)
           FROM service_records",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!((n, clear), (4, 0));
}
