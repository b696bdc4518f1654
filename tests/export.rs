//! The national / provincial export (`GET /api/v1/export/ratings`, `hcp export ratings`): the
//! documented field names and formats (docs/export.md), the channel → `pf` mapping, Beijing
//! time, the 12345 hotline under the province's code (`HCP_EXPORT_PF`), CSV and JSON lines carrying
//! the same records, and who may export.

use std::time::Duration;

use chrono::{DurationRound, Utc};
use hcp_tests::TestApp;
use serde_json::{json, Value};

const CITY: &str = include_str!("fixtures/attribution-city.json");

/// The documented columns, in order (docs/export.md).
const FIELDS: [&str; 15] = [
    "projectNo",
    "taskCode",
    "taskName",
    "deptCode",
    "deptName",
    "areaCode",
    "pf",
    "satisfaction",
    "evalDetail",
    "writingEvaluation",
    "assessTime",
    "assessNumber",
    "userProp",
    "userName",
    "proManager",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_names_fields_as_the_national_platform_does() {
    let mut app = TestApp::start().await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    app.start_aggregator();

    // Whole seconds, two hours ago: the expected Beijing time is computed here, independently.
    let at = Utc::now().duration_trunc(chrono::Duration::seconds(1)).unwrap() - chrono::Duration::hours(2);
    let beijing = (at + chrono::Duration::hours(8)).naive_utc().format("%Y-%m-%d %H:%M:%S").to_string();
    let ratings = [
        json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "EX-1", "hall_id": "H1",
               "window_id": "W1", "staff_id": "S1", "service_item_code": "I-A", "grade": 2, "tags": ["rude"],
               "comment": "等了很久,态度\"差\"", "rated_at": at.to_rfc3339()}),
        json!({"channel": "web", "stage": "online", "service_record_no": "EX-2", "service_item_code": "I-B",
               "grade": 5, "rated_at": at.to_rfc3339()}),
        json!({"channel": "qr_code", "stage": "pickup", "service_record_no": "EX-3", "hall_id": "H1",
               "window_id": "WP", "staff_id": "S2", "service_item_code": "I-B", "grade": 4, "rated_at": at.to_rfc3339()}),
        json!({"channel": "hotline", "stage": "hotline", "service_record_no": "EX-4", "staff_id": "A1",
               "grade": 3, "rated_at": at.to_rfc3339()}),
    ];
    for r in &ratings {
        let resp = app.post_rating(r).await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    }
    app.wait_caught_up(Duration::from_secs(60)).await;

    let day = (at + chrono::Duration::hours(8)).date_naive();
    let range = format!("from={}&to={}", day - chrono::Duration::days(1), day + chrono::Duration::days(1));
    let get = |query: String, bearer: Option<String>| {
        let mut req = app.client.get(format!("{}/api/v1/export/ratings?{query}", app.url));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };

    // JSON lines: the hotline, which has no national channel code, under the default province code 2.
    let r = get(format!("{range}&format=jsonl"), Some(app.admin.clone())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by_no = |no: &str| records.iter().find(|r| r["projectNo"] == no).cloned();
    assert_eq!(records.len(), 4, "{text}");
    let hotline = by_no("EX-4").expect("the hotline is in the provincial feed");
    assert_eq!((hotline["pf"].as_u64(), hotline["proManager"].as_str()), (Some(2), Some("接线员甲")), "{hotline}");
    for r in &records {
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut fields = FIELDS.to_vec();
        fields.sort();
        assert_eq!(keys, fields);
        assert_eq!(r["assessTime"], beijing.as_str(), "yyyy-MM-dd HH:mm:ss, Beijing time");
        assert_eq!(r["assessNumber"], 1);
        assert_eq!(r["userProp"], 1);
    }
    assert_eq!(
        by_no("EX-1").unwrap(),
        json!({"projectNo": "EX-1", "taskCode": "I-A", "taskName": "甲事项", "deptCode": "11449900MB0000001D",
               "deptName": "测试市甲局", "areaCode": "449901", "pf": 4, "satisfaction": 2, "evalDetail": "rude",
               "writingEvaluation": "等了很久,态度\"差\"", "assessTime": beijing, "assessNumber": 1, "userProp": 1,
               "userName": "", "proManager": "陈一"})
    );
    let web = by_no("EX-2").unwrap();
    assert_eq!(
        (web["pf"].as_u64(), web["deptCode"].as_str(), web["areaCode"].as_str()),
        (Some(1), Some("11449900MB0000002G"), Some("449900"))
    );
    assert_eq!(by_no("EX-3").unwrap()["pf"], 3);

    // CSV: a byte-order mark, the header in the documented order, the same records.
    let r = get(format!("{range}&format=csv"), Some(app.admin.clone())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = r.text().await.unwrap();
    let csv = csv.strip_prefix('\u{feff}').expect("UTF-8 byte-order mark");
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], FIELDS.join(","));
    assert_eq!(lines.len(), 5);
    assert!(
        lines.contains(
            &format!(
        "EX-1,I-A,甲事项,11449900MB0000001D,测试市甲局,449901,4,2,rude,\"等了很久,态度\"\"差\"\"\",{beijing},1,1,,陈一"
    )
            .as_str()
        ),
        "{csv}"
    );

    // The CLI writes the same JSON lines.
    let out = std::env::temp_dir().join(format!("hcp-export-{}.jsonl", app.db_name));
    let (ok, _, err) = app.run_hcp(&[
        "export",
        "ratings",
        "--from",
        &(day - chrono::Duration::days(1)).to_string(),
        "--to",
        &(day + chrono::Duration::days(1)).to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    // A province that leaves the hotline out says so in configuration.
    let (ok, _, err) = app.run_hcp(&[
        "--export-pf",
        "hotline=none",
        "export",
        "ratings",
        "--from",
        &(day - chrono::Duration::days(1)).to_string(),
        "--to",
        &(day + chrono::Duration::days(1)).to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let without = std::fs::read_to_string(&out).unwrap();
    assert_eq!(without.lines().count(), 3);
    assert!(!without.contains("EX-4"));
    let _ = std::fs::remove_file(out);

    // Who may export, and bad ranges.
    assert_eq!(get(range.clone(), None).await.unwrap().status(), 401);
    let handler = app.account("exp-handler", "handler", Some("D-A"), None).await;
    assert_eq!(get(range.clone(), Some(handler)).await.unwrap().status(), 403);
    let r = get(format!("from={day}&to={}", day - chrono::Duration::days(1)), Some(app.admin.clone())).await.unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "to");
    let r = get("from=2024-01-01&to=2025-01-01".into(), Some(app.admin.clone())).await.unwrap();
    assert_eq!(r.status(), 422);
    let r = get("from=yesterday&to=2026-01-01".into(), Some(app.admin.clone())).await.unwrap();
    assert_eq!(r.status(), 400);
}
