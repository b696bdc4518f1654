//! Graceful shutdown, proven on a real process: `hcp serve` (ingest + aggregator) gets SIGTERM
//! while clients are posting ratings. It must exit 0, every request it answered 202 must be in
//! Kafka, the aggregator's stored position must match exactly what it stored (its offsets are
//! kept with its state), and after a restart every accepted rating is counted exactly once and
//! no other.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hcp_tests::{free_port, hcp_bin, wait_until, ChildProcess, TestApp};
use serde_json::{json, Value};

const CITY: &str = include_str!("fixtures/attribution-city.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_in_flight_ratings_and_commits_the_aggregators_position() {
    let mut app = TestApp::start().await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    let port = free_port();
    let mut cmd = Command::new(hcp_bin());
    cmd.args(["serve", "--components", "ingest,aggregator"]).stdout(Stdio::null()).stderr(Stdio::inherit());
    for (k, v) in app.child_env() {
        cmd.env(k, v);
    }
    cmd.env("HCP_HTTP_ADDR", format!("127.0.0.1:{port}")).env("HCP_INGEST_AUTH", "optional");
    let mut child = ChildProcess(cmd.spawn().expect("spawn hcp serve"));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "hcp serve to answer", || {
        let (c, u) = (client.clone(), format!("{base}/readyz"));
        async move { c.get(u).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;

    // Eight clients post until the server stops answering.
    let accepted = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let (sent, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (client, base, accepted, sent, refused, stop) =
            (client.clone(), base.clone(), accepted.clone(), sent.clone(), refused.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": format!("GS-{c}-{i}"),
                                  "window_id": "W2", "staff_id": "S1", "grade": 3 + (i % 3)});
                sent.fetch_add(1, Ordering::Relaxed);
                match client.post(format!("{base}/api/v1/ratings")).json(&body).send().await {
                    Ok(r) if r.status() == 202 => {
                        let v: Value = r.json().await.unwrap();
                        accepted.lock().unwrap().insert(v["rating_id"].as_str().unwrap().to_owned());
                    }
                    Ok(r) => panic!("a rating answered {} before the shutdown", r.status()),
                    Err(_) => {
                        // The listener is closed: the server is shutting down.
                        refused.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }));
    }
    let progress = accepted.clone();
    wait_until(Duration::from_secs(60), "300 accepted ratings", || {
        let n = progress.lock().unwrap().len();
        async move { n >= 300 }
    })
    .await;
    let status = tokio::task::spawn_blocking(move || child.terminate()).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(status.success(), "hcp serve exited with {status} after SIGTERM");
    let accepted: BTreeSet<String> = accepted.lock().unwrap().clone();

    // The stopped aggregator's position covers exactly the ratings it stored.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM ratings").fetch_one(app.store.pool()).await.unwrap();
    let position: i64 =
        app.store.positions(&app.config.aggregator_group, &app.topic()).await.unwrap().iter().map(|(_, o)| o).sum();
    assert_eq!(stored, position, "stored ratings = committed offsets at shutdown");
    assert!(stored > 0, "the aggregator stored ratings before the shutdown");

    // Everything answered 202 is in Kafka; after a restart it is all counted, once.
    app.start_aggregator();
    app.wait_caught_up(Duration::from_secs(60)).await;
    let ids: BTreeSet<String> = sqlx::query_scalar::<_, uuid::Uuid>("SELECT rating_id FROM ratings")
        .fetch_all(app.store.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(ids, accepted, "stored ratings are exactly the accepted ones");
    assert_eq!(app.summary("scope=all").await["total"].as_u64(), Some(accepted.len() as u64));
    println!(
        "graceful shutdown: {} sent, {} accepted, {} refused after the listener closed, {stored} stored before the stop, {} counted after restart",
        sent.load(Ordering::Relaxed),
        accepted.len(),
        refused.load(Ordering::Relaxed),
        ids.len()
    );
}

/// The configuration as an operator meets it: an empty variable counts as unset, a bad one
/// stops the process at once (exit 2) with a message naming the variable (and never printing a
/// key), before it connects to anything.
#[test]
fn an_empty_variable_counts_as_unset_and_a_bad_one_is_named() {
    let run = |name: &str, value: &str| {
        Command::new(hcp_bin())
            .args(["topics", "list", "--prefix", "no-such-prefix."])
            .env(name, value)
            .output()
            .expect("run hcp topics list")
    };
    for name in [
        "HCP_DB_POOL",
        "HCP_PRODUCE_TIMEOUT_MS",
        "HCP_INGEST_AUTH",
        "HCP_THREE_IS_NEUTRAL",
        "HCP_PII_KEY",
        "HCP_SESSION_KEY",
        "HCP_INVITATION_KEY",
    ] {
        let out = run(name, "");
        assert!(out.status.success(), "{name}= : {}", String::from_utf8_lossy(&out.stderr));
        let out = run(name, " not a value ");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}=bad: {stderr}");
        assert!(stderr.contains(&format!("<{name}>")), "{name}=bad names the variable: {stderr}");
        if name.ends_with("_KEY") {
            assert!(!stderr.contains("not a value"), "a key's value is never printed: {stderr}");
        }
    }
}
