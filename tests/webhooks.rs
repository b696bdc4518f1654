//! Signed outbound webhooks: an admin adds an endpoint, work-order transitions are delivered
//! as Standard Webhooks messages whose signature the receiver here verifies on its own (HMAC-SHA256
//! over `id.timestamp.body`), a failed delivery (HTTP 500) is retried under the same
//! `webhook-id`, and the delivery log shows the attempts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hcp_tests::{wait_until, TestApp};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

const CITY: &str = include_str!("fixtures/attribution-city.json");

/// One request the receiver got: (webhook-id, webhook-timestamp, webhook-signature, body).
type Received = (String, String, String, String);

/// A receiver that fails the first attempt of every message with 500 and accepts the rest.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                let mut seen = seen.lock().unwrap();
                let first = !seen.iter().any(|r| r.0 == h("webhook-id"));
                seen.push((h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), body));
                if first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// The Standard Webhooks signature, computed here independently of hcp.
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let key = B64.decode(secret.strip_prefix("whsec_").expect("whsec_ prefix")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_order_events_are_signed_delivered_and_retried() {
    // The receiver here is on loopback: allowed for this deployment only.
    let mut app = TestApp::start_with(|c| {
        c.webhook_retry_base = Duration::from_millis(300);
        c.webhook_allow_private = true;
    })
    .await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.import_calendar_for_test().await;
    app.start_aggregator();
    let (url, got) = receiver().await;

    // Adding an endpoint: admin only, a real URL, known event types; the secret is shown once.
    let handler = app.account("wh-handler", "handler", Some("D-ZW"), None).await;
    let body = json!({"url": url, "event_types": ["workorder.*"], "description": "督办系统"});
    let (s, _) = app.call(Method::POST, "/api/v1/webhooks", &handler, Some(body.clone())).await;
    assert_eq!(s, 403);
    for (bad, field) in [
        (json!({"url": "ftp://x/y", "event_types": ["workorder.*"]}), "url"),
        (json!({"url": url, "event_types": ["rating.*"]}), "event_types"),
        (json!({"url": url, "event_types": []}), "event_types"),
    ] {
        let (s, p) = app.call(Method::POST, "/api/v1/webhooks", &app.admin, Some(bad)).await;
        assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some(field)), "{p}");
    }
    let (s, created) = app.call(Method::POST, "/api/v1/webhooks", &app.admin, Some(body)).await;
    assert_eq!(s, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let hook = created["webhook"]["webhook_id"].as_str().unwrap().to_owned();
    let (_, list) = app.call(Method::GET, "/api/v1/webhooks", &app.admin, None).await;
    assert_eq!(list[0]["webhook_id"], hook.as_str());
    assert!(!list.to_string().contains(&secret), "the secret is never listed");

    // A bad rating opens a work order; its handler claims it: two events, each failed once.
    let r = app
        .post_rating(&json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "WH-1",
            "hall_id": "H1", "window_id": "W2", "staff_id": "S1", "service_item_code": "I-A", "grade": 1, "tags": ["rude"]}))
        .await;
    assert_eq!(r.status(), 202);
    let rating_id = r.json::<Value>().await.unwrap()["rating_id"].as_str().unwrap().to_owned();
    let store = app.store.clone();
    wait_until(Duration::from_secs(30), "the work order", || {
        let store = store.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM work_orders").fetch_one(store.pool()).await.unwrap() == 1
        }
    })
    .await;
    let order: uuid::Uuid =
        sqlx::query_scalar("SELECT order_id FROM work_orders").fetch_one(app.store.pool()).await.unwrap();
    let order = order.to_string();
    let (s, _) = app.call(Method::POST, &format!("/api/v1/work-orders/{order}/claim"), &handler, None).await;
    assert_eq!(s, 200);
    wait_until(Duration::from_secs(30), "both events delivered after one failure each", || async {
        got.lock().unwrap().len() == 4
    })
    .await;

    // What the receiver got: each message twice (the 500, then the retry) under one id.
    let received = got.lock().unwrap().clone();
    let mut by_id: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for r in &received {
        assert_eq!(r.2, expected_signature(&secret, &r.0, &r.1, &r.3), "signature of {}", r.0);
        let ts: i64 = r.1.parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 60, "a fresh timestamp");
        by_id.entry(r.0.clone()).or_default().push(r);
    }
    assert_eq!(by_id.len(), 2);
    let types: Vec<String> = by_id
        .values()
        .map(|attempts| {
            assert_eq!(attempts.len(), 2, "one failure, one retry");
            assert_eq!(attempts[0].3, attempts[1].3, "the retry carries the same body");
            let m: Value = serde_json::from_str(&attempts[0].3).unwrap();
            assert_eq!(m["data"]["order_id"], order.as_str());
            assert_eq!(m["data"]["rating_id"], rating_id.as_str());
            assert_eq!(m["type"], format!("workorder.{}", m["data"]["action"].as_str().unwrap()));
            m["type"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut types = types;
    types.sort();
    assert_eq!(types, ["workorder.claim", "workorder.open"]);

    // The delivery log.
    let (s, log) = app.call(Method::GET, &format!("/api/v1/webhooks/{hook}/deliveries"), &app.admin, None).await;
    assert_eq!(s, 200);
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for d in items {
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64(), d["last_status"].as_i64()),
            (Some("delivered"), Some(2), Some(204)),
            "{d}"
        );
        assert!(by_id.contains_key(d["message_id"].as_str().unwrap()));
    }
    let (s, _) = app.call(Method::GET, "/api/v1/webhooks/wh_none/deliveries", &app.admin, None).await;
    assert_eq!(s, 404);

    // Switched off: listed as disabled, no second switch-off.
    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{hook}"), &app.admin, None).await;
    assert_eq!(s, 204);
    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{hook}"), &app.admin, None).await;
    assert_eq!(s, 404);
    let (_, list) = app.call(Method::GET, "/api/v1/webhooks", &app.admin, None).await;
    assert!(list[0]["disabled_at"].is_string());
}

/// A receiver that counts what reaches it and answers 204.
async fn counting_receiver() -> (u16, Arc<Mutex<usize>>) {
    let got: Arc<Mutex<usize>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap() += 1;
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, got)
}

#[tokio::test]
async fn endpoints_on_internal_addresses_are_refused_when_added_and_when_sent() {
    let app = TestApp::start().await;
    let (port, got) = counting_receiver().await;
    // Added through the API: the host is, or resolves to, an internal address.
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/iam/".to_owned(),
        "http://[::1]:8080/x".to_owned(),
        "http://10.0.0.7/x".to_owned(),
        "http://0x7f000001/x".to_owned(),
        "http://[::ffff:192.168.1.1]/x".to_owned(),
    ] {
        let body = json!({"url": url, "event_types": ["*"]});
        let (s, p) = app.call(Method::POST, "/api/v1/webhooks", &app.admin, Some(body)).await;
        assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("url")), "{url}: {p}");
        assert_eq!(p["errors"][0]["code"], "internal_address", "{url}");
    }
    let (_, list) = app.call(Method::GET, "/api/v1/webhooks", &app.admin, None).await;
    assert_eq!(list.as_array().unwrap().len(), 0);

    // Already stored (an older version, or a name re-pointed after it was added): the sender
    // refuses at connection, by literal and by what the name resolves to, and logs the kind only.
    for (id, url) in
        [("wh_lit", format!("http://127.0.0.1:{port}/hook")), ("wh_name", format!("http://localhost:{port}/hook"))]
    {
        app.store
            .create_webhook(id, &url, &hcp_domain::webhook::secret_from_bytes([7; 32]), &["*".into()], None, "t")
            .await
            .unwrap();
        sqlx::query("INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload) VALUES ($1, $2, 'workorder.open', '{}')")
            .bind(id)
            .bind(format!("msg_{id}"))
            .execute(app.store.pool())
            .await
            .unwrap();
    }
    // The server's own sender (default settings) makes the attempts.
    let store = app.store.clone();
    wait_until(Duration::from_secs(20), "both deliveries attempted", || {
        let store = store.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM webhook_deliveries WHERE attempts > 0")
                .fetch_one(store.pool())
                .await
                .unwrap()
                == 2
        }
    })
    .await;
    let errors: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT webhook_id, last_error FROM webhook_deliveries ORDER BY webhook_id")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    for (id, error) in &errors {
        assert_eq!(error.as_deref(), Some("internal address (loopback)"), "{id}");
    }
    assert_eq!(*got.lock().unwrap(), 0, "nothing reached the internal receiver");
    // (The receiver itself works: the test above delivers to loopback with HCP_WEBHOOK_ALLOW_PRIVATE.)
}
