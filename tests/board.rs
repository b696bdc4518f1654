//! The live board (`GET /api/v1/board`, `GET /api/v1/board/stream`, `/board`): a supervisor's open
//! stream receives the ratings posted through ingest without asking again; every figure equals
//! what the test posted (today, channel and stage split, 差评 tags, work orders, rankings); a
//! handler's board and report cover their department only, an unrelated region's board is
//! empty; nothing without a session.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hcp_tests::TestApp;
use serde_json::{json, Value};

const CITY: &str = include_str!("fixtures/attribution-city.json");

/// The `snapshot` events of an open board stream.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, token: &str) -> Stream {
        let response =
            app.client.get(format!("{}/api/v1/board/stream", app.url)).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream { response, buffer: String::new() }
    }

    /// The next `snapshot` event's data (keep-alive comments skipped).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in event.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if name.as_deref() == Some("snapshot") {
                    return serde_json::from_str(&data).expect("snapshot JSON");
                }
                continue;
            }
            let chunk = self.response.chunk().await.expect("stream readable").expect("stream still open");
            self.buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// Events until `cond` holds (at most `timeout`).
    async fn until(&mut self, timeout: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(timeout, async {
            loop {
                let s = self.next().await;
                if cond(&s) {
                    return s;
                }
            }
        })
        .await
        .expect("the board stream showed the change in time")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_streams_exactly_what_was_rated_within_the_viewers_reach() {
    let mut app = TestApp::start().await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.start_aggregator();
    // Hall H1 (and its windows) lies in 449901 (中心区) under 449900; every department in 449900.
    let supervisor = app.account("sup-zx", "supervisor", None, Some("449901")).await;
    let outsider = app.account("sup-other", "supervisor", None, Some("440000-none")).await;
    let handler = app.account("h-b", "handler", Some("D-B"), None).await;

    let mut stream = Stream::open(&app, &supervisor).await;
    let first = stream.next().await;
    assert_eq!(first["scope"], json!({"kind": "region", "id": "449901", "name": "测试市中心区"}));
    assert_eq!(first["today"]["total"], 0);
    assert_eq!(first["hourly"].as_array().unwrap().len(), 24);
    assert_eq!(first["trend"].as_array().unwrap().len(), 30);

    // 12 ratings: items of D-A and D-B, windows W1 / W2, acceptance at the evaluator and pickup
    // at the terminal; 差评 tagged rude (conduct) or slow_process (process).
    let grades = [5, 5, 4, 3, 2, 1, 5, 4, 1, 5, 2, 3];
    let mut channels: BTreeMap<&str, i64> = BTreeMap::new();
    let mut stages: BTreeMap<&str, i64> = BTreeMap::new();
    let mut tags: BTreeMap<&str, i64> = BTreeMap::new();
    let mut last_accepted = Instant::now();
    for (i, grade) in grades.iter().enumerate() {
        let (channel, stage) =
            if i % 3 == 2 { ("self_service_terminal", "pickup") } else { ("window_evaluator", "acceptance") };
        let item = if i % 2 == 0 { "I-A" } else { "I-B" };
        let window = if i % 4 == 0 { "W2" } else { "W1" };
        let mut body = json!({"channel": channel, "stage": stage, "service_record_no": format!("BOARD-{i}"),
            "hall_id": "H1", "window_id": window, "service_item_code": item, "grade": grade});
        if *grade <= 2 {
            let tag = if i % 2 == 0 { "rude" } else { "slow_process" };
            body["tags"] = json!([tag]);
            *tags.entry(tag).or_default() += 1;
        }
        let r = app.post_rating(&body).await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        last_accepted = Instant::now();
        *channels.entry(channel).or_default() += 1;
        *stages.entry(stage).or_default() += 1;
    }
    let total = grades.len() as i64;
    let bad = grades.iter().filter(|g| **g <= 2).count() as i64;

    // The open stream pushes the new numbers by itself.
    let pushed = stream.until(Duration::from_secs(20), |s| s["today"]["total"] == total).await;
    println!("board stream: {total} ratings visible {} ms after the last 202", last_accepted.elapsed().as_millis());
    assert_eq!(pushed["today"]["bad"], bad);
    assert_eq!(pushed["today"]["good"], total - bad);
    let per_grade: Vec<i64> = (1..=5).map(|g| grades.iter().filter(|x| **x == g).count() as i64).collect();
    assert_eq!(pushed["today"]["counts"], json!(per_grade));
    let split = |key: &str| -> BTreeMap<String, i64> {
        pushed[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].as_str().unwrap().to_owned(), e["total"].as_i64().unwrap()))
            .collect()
    };
    let owned = |m: &BTreeMap<&str, i64>| m.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>();
    assert_eq!(split("channels"), owned(&channels));
    assert_eq!(split("stages"), owned(&stages));
    assert_eq!(pushed["stages"].as_array().unwrap().iter().find(|s| s["id"] == "acceptance").unwrap()["name"], "受理");
    let shown_tags: BTreeMap<String, i64> = pushed["bad_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tag"].as_str().unwrap().to_owned(), t["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(shown_tags, owned(&tags));
    let hourly: i64 = pushed["hourly"].as_array().unwrap().iter().map(|h| h["total"].as_i64().unwrap()).sum();
    assert_eq!(hourly, total);
    assert_eq!(pushed["trend"].as_array().unwrap().last().unwrap()["total"], total);
    assert!(app.assert_rollups_match_ratings().await > 0);

    // Work orders: one per 差评, all open, none judged yet; the region's board counts exactly the
    // orders its supervisor's work-order list shows.
    let (_, all_orders) =
        app.call(reqwest::Method::GET, "/api/v1/work-orders?open=true&limit=500", &app.admin, None).await;
    assert_eq!(all_orders["items"].as_array().unwrap().len() as i64, bad);
    let (_, listed) =
        app.call(reqwest::Method::GET, "/api/v1/work-orders?open=true&limit=500", &supervisor, None).await;
    let in_region = listed["items"].as_array().unwrap().len() as i64;
    assert!(in_region > 0);
    // They were committed with their ratings, so the snapshot that showed the ratings shows them.
    let board = pushed;
    let orders = &board["work_orders"];
    assert_eq!(
        (orders["opened"].as_i64(), orders["overdue"].as_i64(), orders["judged"].as_i64()),
        (Some(in_region), Some(0), Some(0))
    );
    assert!(orders["on_time_rate"].is_null() && orders["callback_rate"].is_null());
    let (_, everything) = app.call(reqwest::Method::GET, "/api/v1/board", &app.admin, None).await;
    assert_eq!(everything["work_orders"]["open"], bad);

    // Rankings equal the ranking API's (same counts, same order) for the supervisor's region.
    for r in board["rankings"].as_array().unwrap() {
        let scope = r["scope"].as_str().unwrap();
        let (status, api) = app
            .call(
                reqwest::Method::GET,
                &format!(
                    "/api/v1/stats/ranking?scope={scope}&limit=10&from={}T00:00:00%2B08:00{}",
                    board["month"].as_str().unwrap().to_owned() + "-01",
                    // The board ranks the regions one level below its own.
                    if scope == "region" { "&parent=449901" } else { "" }
                ),
                &supervisor,
                None,
            )
            .await;
        assert_eq!(status, 200, "{api}");
        let ids =
            |v: &Value| v.as_array().unwrap().iter().map(|e| (e["id"].clone(), e["total"].clone())).collect::<Vec<_>>();
        assert_eq!(ids(&r["entries"]), ids(&api["entries"]), "{scope}");
    }
    let windows = &board["rankings"].as_array().unwrap().iter().find(|r| r["scope"] == "window").unwrap()["entries"];
    assert_eq!(windows.as_array().unwrap().len(), 2, "W1 and W2 are ranked in 449901: {windows}");

    // The handler of D-B sees D-B only: its counts, its orders, its department row.
    let (status, mine) = app.call(reqwest::Method::GET, "/api/v1/board", &handler, None).await;
    assert_eq!(status, 200);
    let d_b = app.summary("scope=department&id=D-B").await;
    assert_eq!(mine["scope"]["id"], "D-B");
    assert_eq!(mine["today"]["total"], d_b["total"]);
    assert_eq!(mine["today"]["total"], (grades.len() / 2) as i64, "every other rating is D-B's item");
    let channel_sum: i64 = mine["channels"].as_array().unwrap().iter().map(|c| c["total"].as_i64().unwrap()).sum();
    assert_eq!(channel_sum, d_b["total"].as_i64().unwrap());
    let depts: Vec<&Value> = mine["rankings"][0]["entries"].as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(depts, [&json!("D-B")]);
    let (_, b_orders) = app.call(reqwest::Method::GET, "/api/v1/work-orders?open=true&limit=500", &handler, None).await;
    assert_eq!(mine["work_orders"]["open"], b_orders["items"].as_array().unwrap().len() as i64);

    // The handler's monthly report has D-B's row only.
    let r = app
        .client
        .get(format!("{}/api/v1/reports/monthly?month={}&format=csv", app.url, mine["month"].as_str().unwrap()))
        .bearer_auth(&handler)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert!(rows[0].starts_with("D-B,"), "{csv}");

    // A supervisor of another region sees none of it.
    let (_, other) = app.call(reqwest::Method::GET, "/api/v1/board", &outsider, None).await;
    assert_eq!(other["today"]["total"], 0);
    assert_eq!(other["work_orders"]["open"], 0);
    assert!(other["rankings"].as_array().unwrap().iter().all(|r| r["entries"].as_array().unwrap().is_empty()));
    assert!(other["channels"].as_array().unwrap().is_empty() && other["bad_tags"].as_array().unwrap().is_empty());

    // No session, no data; the page and ECharts are public and served by hcp.
    for path in ["/api/v1/board", "/api/v1/board/stream"] {
        let r = app.client.get(format!("{}{path}", app.url)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let page = app.client.get(format!("{}/board", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"<html lang="zh-CN">"#) && page.contains(hcp_board::ECHARTS_PATH));
    let js = app.client.get(format!("{}{}", app.url, hcp_board::ECHARTS_PATH)).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(js.text().await.unwrap().contains("Apache"));
}
