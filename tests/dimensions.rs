//! Evaluation dimensions (评价维度) end to end: the catalogue kept in the directory (defaults
//! from the migration, a row added by import), the ingest gate's catalogue check (a code the
//! catalogue lacks, a dimension the channel does not offer: 422 `dimension-not-offered`), the
//! grades stored with the rating, attributed by their class into the dimension rollup, on the
//! board, in the monthly report and in the national export's `evalDetail`.

use std::time::Duration;

use chrono::Utc;
use hcp_tests::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

const CITY: &str = include_str!("fixtures/attribution-city.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dimension_grades_flow_from_the_gate_into_rollups_board_report_and_export() {
    let mut app = TestApp::start().await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    // The catalogue is directory data: the defaults are there, and a row is added like any other.
    app.import_directory(&json!({"dimensions": [
        {"code": "waiting", "name": "等候时间", "class": "conduct", "channels": ["window_evaluator"]}
    ]}))
    .await;
    let (s, page) = app.call(Method::GET, "/api/v1/directory/dimensions?limit=100", &app.admin, None).await;
    assert_eq!(s, 200, "{page}");
    let codes: Vec<&str> = page["items"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap()).collect();
    for code in ["service_attitude", "efficiency", "competence", "matter", "guide", "platform_experience"] {
        assert!(codes.contains(&code), "default {code} in {codes:?}");
    }
    assert!(codes.contains(&"call_answering") && codes.contains(&"reply_quality") && codes.contains(&"waiting"));
    let (s, bad) = app
        .post_json(
            "/api/v1/directory/import",
            &app.admin,
            &json!({"dimensions": [{"code": "x", "name": "坏", "class": "conduct", "channels": ["fax", "system_default"]}]}),
        )
        .await;
    assert_eq!(s, 422, "{bad}");
    let fields: Vec<&str> =
        bad["rows"][0]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["channels[0]", "channels[1]"], "{bad}");
    app.start_aggregator();

    // The gate: every failing dimension named, with a stable problem type.
    let base = json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "DM-X",
                      "window_id": "W1", "staff_id": "S1", "grade": 5});
    let mut wrong = base.clone();
    wrong["dimensions"] = json!({"platform_experience": 4, "no_such": 3, "service_attitude": 5});
    let r = app.post_rating(&wrong).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "/problems/dimension-not-offered", "{p}");
    let errors: Vec<(&str, &str)> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [("dimensions.no_such", "unknown_dimension"), ("dimensions.platform_experience", "dimension_not_offered")]
    );
    let mut out_of_range = base.clone();
    out_of_range["dimensions"] = json!({"service_attitude": 6});
    let r = app.post_rating(&out_of_range).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(
        (p["type"].as_str(), p["errors"][0]["field"].as_str()),
        (Some("/problems/validation-failed"), Some("dimensions.service_attitude"))
    );

    // Accepted: a window rating, an online one, a hotline one, and one without dimensions.
    let ratings = [
        json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "DM-1", "hall_id": "H1",
               "window_id": "W1", "staff_id": "S1", "service_item_code": "I-A", "grade": 5, "tags": ["good_attitude"],
               "dimensions": {"service_attitude": 5, "efficiency": 4, "waiting": 2}}),
        json!({"channel": "web", "stage": "online", "service_record_no": "DM-2", "service_item_code": "I-B",
               "grade": 4, "dimensions": {"guide": 5, "platform_experience": 2}}),
        json!({"channel": "hotline", "stage": "hotline", "service_record_no": "DM-3", "staff_id": "A1", "grade": 3,
               "dimensions": {"call_answering": 4, "reply_quality": 1}}),
        json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "DM-4", "hall_id": "H1",
               "window_id": "W1", "staff_id": "S1", "service_item_code": "I-A", "grade": 4}),
    ];
    let mut ids = Vec::new();
    for r in &ratings {
        let resp = app.post_rating(r).await;
        assert_eq!(resp.status(), 202);
        ids.push(resp.json::<Value>().await.unwrap()["rating_id"].as_str().unwrap().to_owned());
    }
    app.wait_caught_up(Duration::from_secs(60)).await;

    // Rollups: each dimension where its class points (conduct: whoever served too; process and
    // platform: not the staff member), and exactly what the stored ratings say.
    for (scope, code, counts) in [
        ("all:all", "service_attitude", [0, 0, 0, 0, 1]),
        ("staff:S1", "service_attitude", [0, 0, 0, 0, 1]),
        ("window:W1", "waiting", [0, 1, 0, 0, 0]),
        ("department:D-A", "efficiency", [0, 0, 0, 1, 0]),
        ("region:449900", "efficiency", [0, 0, 0, 1, 0]),
        ("platform:web", "platform_experience", [0, 1, 0, 0, 0]),
        ("department:D-B", "guide", [0, 0, 0, 0, 1]),
        ("service_item:I-B", "guide", [0, 0, 0, 0, 1]),
        ("staff:A1", "call_answering", [0, 0, 0, 1, 0]),
        ("staff:A1", "reply_quality", [0; 5]),
        ("department:D-HL", "reply_quality", [1, 0, 0, 0, 0]),
    ] {
        assert_eq!(app.dimension_counts(scope, code).await, counts, "{scope} {code}");
    }
    app.assert_rollups_match_ratings().await;

    // The rating's record carries its grades.
    let (s, rec) = app.call(Method::GET, &format!("/api/v1/ratings/{}", ids[0]), &app.admin, None).await;
    assert_eq!((s, rec["dimensions"].clone()), (200, json!({"efficiency": 4, "service_attitude": 5, "waiting": 2})));

    // The board: per-dimension satisfaction of the reach, today and this month.
    let (s, board) = app.call(Method::GET, "/api/v1/board", &app.admin, None).await;
    assert_eq!(s, 200);
    let dim = |code: &str| board["dimensions"].as_array().unwrap().iter().find(|d| d["code"] == code).cloned();
    let attitude = dim("service_attitude").expect("graded dimensions are on the board");
    assert_eq!(attitude["name"], "服务态度");
    assert_eq!(
        (attitude["today"]["total"].as_i64(), attitude["this_month"]["satisfaction_rate"].as_f64()),
        (Some(1), Some(1.0))
    );
    let reply = dim("reply_quality").unwrap();
    assert_eq!((reply["this_month"]["total"].as_i64(), reply["this_month"]["bad"].as_i64()), (Some(1), Some(1)));
    assert!(dim("matter").is_none(), "a dimension nobody graded is not listed");

    // The report: two columns per graded dimension; the staff member's own grades.
    let month = (Utc::now() + chrono::Duration::hours(8)).format("%Y-%m").to_string();
    let r = app
        .client
        .get(format!("{}/api/v1/reports/monthly?month={month}&format=csv&level=staff", app.url))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').split("\r\n").collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = |title: &str| header.iter().position(|h| *h == title).unwrap_or_else(|| panic!("{title} in {header:?}"));
    let s1: Vec<&str> = lines.iter().find(|l| l.starts_with("S1,")).expect("S1's row").split(',').collect();
    assert_eq!(s1[col("服务态度评价数 service_attitude.ratings")], "1");
    assert_eq!(s1[col("服务态度好评率 service_attitude.satisfaction_rate")], "1.0000");
    assert_eq!(s1[col("等候时间好评率 waiting.satisfaction_rate")], "0.0000");
    assert_eq!(s1[col("办事指南评价数 guide.ratings")], "0", "a process dimension is not the staff member's");
    let a1: Vec<&str> = lines.iter().find(|l| l.starts_with("A1,")).expect("A1's row").split(',').collect();
    assert_eq!(a1[col("接听服务好评率 call_answering.satisfaction_rate")], "1.0000");

    // The national export: tag codes as before, then `code:grade` in code order.
    let day = (Utc::now() + chrono::Duration::hours(8)).date_naive();
    let r = app
        .client
        .get(format!(
            "{}/api/v1/export/ratings?from={}&to={}&format=jsonl",
            app.url,
            day - chrono::Duration::days(1),
            day
        ))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let detail = |no: &str| -> String {
        let line = text.lines().find(|l| l.contains(&format!("\"projectNo\":\"{no}\""))).expect(no);
        serde_json::from_str::<Value>(line).unwrap()["evalDetail"].as_str().unwrap().to_owned()
    };
    assert_eq!(detail("DM-1"), "good_attitude,efficiency:4,service_attitude:5,waiting:2");
    assert_eq!(detail("DM-2"), "guide:5,platform_experience:2");
    assert_eq!(detail("DM-3"), "call_answering:4,reply_quality:1");
    assert_eq!(detail("DM-4"), "", "a rating without tags or dimensions exports as before");
    app.stop_aggregator().await;
}
