//! The public disclosure (`/public`, `GET /api/v1/public/satisfaction`): no login, every
//! department of the directory, the last full month and the current one (Beijing months), counts
//! equal to what was rated in each month, nothing personal.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Datelike, Utc};
use hcp_tests::TestApp;
use serde_json::{json, Value};

const CITY: &str = include_str!("fixtures/attribution-city.json");

/// The Beijing month (`YYYY-MM`) of an instant.
fn month_of(t: chrono::DateTime<Utc>) -> String {
    let b = t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    format!("{:04}-{:02}", b.year(), b.month())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_page_shows_each_departments_months_without_login() {
    let mut app = TestApp::start().await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.start_aggregator();

    // Ratings spread over the last 28 days: each lands in the current or the previous month
    // (no month is shorter than 28 days). Items I-A and I-B belong to D-A and D-B.
    let now = Utc::now();
    let grades = [5, 4, 3, 2, 1, 5, 5, 4, 1, 3, 5, 2];
    let mut expected: BTreeMap<(String, String), [i64; 5]> = BTreeMap::new();
    for (i, grade) in grades.iter().enumerate() {
        let (item, dept) = if i % 3 == 0 { ("I-B", "D-B") } else { ("I-A", "D-A") };
        let at = now - chrono::Duration::hours(1 + (i as i64 * 57) % (28 * 24 - 1));
        let mut body = json!({"channel": "window_evaluator", "stage": "acceptance",
            "service_record_no": format!("PUB-{i}"), "hall_id": "H1", "window_id": "W1", "staff_id": "S1",
            "service_item_code": item, "grade": grade, "rated_at": at.to_rfc3339()});
        if *grade <= 2 {
            body["tags"] = json!(["rude"]);
        }
        let r = app.post_rating(&body).await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        expected.entry((month_of(at), dept.to_owned())).or_default()[*grade as usize - 1] += 1;
    }
    app.wait_caught_up(Duration::from_secs(60)).await;

    let r = app.client.get(format!("{}/api/v1/public/satisfaction", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=60");
    let body: Value = r.json().await.unwrap();
    let months = body["months"].as_array().unwrap();
    let current = month_of(now);
    assert_eq!(months.len(), 2);
    assert_eq!(months[1]["month"], current);
    assert_eq!(months[1]["complete"], false);
    assert_eq!(months[0]["complete"], true);
    for m in months {
        let month = m["month"].as_str().unwrap();
        let depts = m["departments"].as_array().unwrap();
        // Every department of the directory, rated or not.
        let mut ids: Vec<&str> = depts.iter().map(|d| d["department_id"].as_str().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, ["D-A", "D-B", "D-HL", "D-HL2", "D-ZW"], "{month}");
        for d in depts {
            let id = d["department_id"].as_str().unwrap();
            let c = expected.get(&(month.to_owned(), id.to_owned())).copied().unwrap_or_default();
            let total: i64 = c.iter().sum();
            let good = c[2] + c[3] + c[4];
            assert_eq!(d["total"], total, "{month} {id}");
            assert_eq!(d["good"], good, "{month} {id}");
            assert_eq!(d["bad"], c[0] + c[1], "{month} {id}");
            if total == 0 {
                assert!(d["satisfaction_rate"].is_null());
            } else {
                assert!((d["satisfaction_rate"].as_f64().unwrap() - good as f64 / total as f64).abs() < 1e-9);
            }
        }
        // Rated departments first, by 好评率.
        let rates: Vec<f64> = depts.iter().map(|d| d["satisfaction_rate"].as_f64().unwrap_or(-1.0)).collect();
        assert!(rates.windows(2).all(|w| w[0] >= w[1]), "{month}: {rates:?}");
    }

    // The page: zh-CN, every department by name, the numbers, no staff member and no rater.
    let r = app.client.get(format!("{}/public", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<html lang="zh-CN">"#));
    assert!(html.contains("政务服务“好差评”结果公开"));
    for name in ["测试市甲局", "测试市乙局", "测试市政务服务数据管理局"] {
        assert_eq!(html.matches(name).count(), 2, "{name} once per month");
    }
    assert!(!html.contains("陈一"), "no staff names on the public page");
    let cur = &months[1]["departments"].as_array().unwrap().iter().find(|d| d["department_id"] == "D-A").unwrap();
    if cur["total"].as_i64().unwrap() > 0 {
        let row = format!(
            "<td>测试市甲局</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{:.1}%</td>",
            cur["total"],
            cur["good"],
            cur["bad"],
            cur["satisfaction_rate"].as_f64().unwrap() * 100.0
        );
        assert!(html.contains(&row), "{row}");
    }
}
