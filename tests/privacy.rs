//! No personal data in logs, metrics or on the wire: a full run of the `hcp` binary (every
//! component, debug logging) handles raters' phones, ID numbers and names, an applicant's phone and
//! a staff member's phone, and none of them appears in its logs, its metrics or the rating topic.

use std::process::{Command, Stdio};
use std::time::Duration;

use hcp_tests::{hcp_bin, wait_until, ChildProcess, TestApp};
use serde_json::{json, Value};

const PHONE: &str = "13712345678";
const APPLICANT: &str = "13698765432";
const STAFF_PHONE: &str = "13511112222";
const ID_NUMBER: &str = "11010519491231002X";
const NAME: &str = "欧阳敏感";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_run_logs_no_phone_id_number_or_name() {
    let app = TestApp::start().await;
    app.import_directory(&serde_json::from_str(include_str!("fixtures/attribution-city.json")).unwrap()).await;
    let log_path = std::env::temp_dir().join(format!("hcp-privacy-{}.log", app.db_name));
    let log = std::fs::File::create(&log_path).unwrap();
    let env = app.child_env();
    let addr = env.iter().find(|(k, _)| *k == "HCP_HTTP_ADDR").unwrap().1.clone();
    let mut cmd = Command::new(hcp_bin());
    cmd.args(["serve"]).stdout(Stdio::null()).stderr(log);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    cmd.env("RUST_LOG", "debug,rdkafka=info,sqlx=warn,hyper=info,h2=info,tower=info")
        .env("HCP_INGEST_AUTH", "optional");
    let mut child = ChildProcess(cmd.spawn().unwrap());
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "hcp serve answers", || async {
        client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    // Operators: an admin and a callback agent (accounts straight in the test database).
    for (user, role) in [("root", "admin"), ("hui", "callback")] {
        app.store
            .upsert_account(&hcp_store::Account {
                username: user.into(),
                display_name: user.into(),
                role: role.into(),
                department_id: None,
                region_code: None,
                staff_id: None,
                disabled: false,
                password_hash: hcp_http::auth::hash_password("pw-12345678"),
            })
            .await
            .unwrap();
    }
    let login = |user: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r: Value = client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"username": user, "password": "pw-12345678"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["token"].as_str().unwrap().to_owned()
        }
    };
    let (admin, callback) = (login("root").await, login("hui").await);

    // A bad review with the rater's identity, a staff phone, an applicant's phone.
    let r = client
        .put(format!("{base}/api/v1/directory/staff/S1/phone"))
        .bearer_auth(&admin)
        .json(&json!({"phone": STAFF_PHONE}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = client
        .post(format!("{base}/api/v1/ratings"))
        .json(&json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "PII-1", "window_id": "W2",
                      "staff_id": "S1", "service_item_code": "I-A", "grade": 1, "tags": ["rude"],
                      "rater": {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .post(format!("{base}/api/v1/ratings"))
        .json(&json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "PII-2", "window_id": "W2",
                      "grade": 5, "rater": {"phone": STAFF_PHONE}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .post(format!("{base}/api/v1/credentials"))
        .bearer_auth(&admin)
        .json(&json!({"kind": "integration", "channel": "web", "name": "办件系统"}))
        .send()
        .await
        .unwrap();
    let key = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let r = client
        .post(format!("{base}/api/v1/service-records/events"))
        .bearer_auth(&key)
        .json(&json!({"service_record_no": "PII-3", "event": "accepted", "hall_id": "H1", "window_id": "W2", "applicant_phone": APPLICANT}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The order opens; the callback agent reads the full identity (the one place it is shown).
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "both ratings stored and the order opened", || async {
        store.count_ratings().await.unwrap() == 2
            && sqlx::query_scalar::<_, i64>("SELECT count(*) FROM work_orders").fetch_one(store.pool()).await.unwrap()
                == 1
    })
    .await;
    let order: uuid::Uuid =
        sqlx::query_scalar("SELECT order_id FROM work_orders").fetch_one(app.store.pool()).await.unwrap();
    let full: Value = client
        .get(format!("{base}/api/v1/work-orders/{order}/rater"))
        .bearer_auth(&callback)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(full["phone"], PHONE);
    let flagged: Vec<Vec<String>> =
        sqlx::query_scalar("SELECT integrity_flags FROM ratings WHERE service_record_no = 'PII-2'")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert!(flagged.iter().any(|f| f.contains(&"rater_is_staff".to_string())), "{flagged:?}");
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    // Let the relay publish, then stop and read what was logged.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(child.terminate().success());
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains("work order action") || logged.contains("rating published"), "debug logs were captured");
    let topic = app.read_records(app.topic(), 2).await;
    let wire: String = topic.iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect();
    for secret in [PHONE, APPLICANT, STAFF_PHONE, ID_NUMBER, NAME, "137 1234 5678"] {
        assert!(!logged.contains(secret), "{secret} in the logs");
        assert!(!metrics.contains(secret), "{secret} in the metrics");
        assert!(!wire.contains(secret), "{secret} on the rating topic");
    }
    let _ = std::fs::remove_file(&log_path);
}
