//! The working-day calendar through the CLI against a fresh database: `hcp calendar import` and
//! `hcp calendar add-working-days`, which an operator uses to check any deadline by hand.

use hcp_tests::TestApp;
use serde_json::json;

const CALENDAR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/calendar/cn-workdays-2020-2026.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_follow_the_imported_calendar_and_say_when_a_year_is_missing() {
    let app = TestApp::start().await;

    // No calendar yet: Monday–Friday, flagged as provisional.
    let (ok, out, err) = app.run_hcp(&["calendar", "add-working-days", "2025-09-30", "3"]);
    assert!(ok, "{err}");
    assert_eq!(out, "2025-10-03");
    assert!(err.contains("provisional: the calendar needs year 2025"), "{err}");

    let (ok, out, err) = app.run_hcp(&["calendar", "import", CALENDAR]);
    assert!(ok, "{err}");
    assert_eq!(out, "calendar years imported: 2020, 2021, 2022, 2023, 2024, 2025, 2026");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM calendar_years").fetch_one(app.store.pool()).await.unwrap();
    assert_eq!(stored, 7);

    // National Day 2025: 10-01..10-08 off, Saturday 10-11 is a make-up working day.
    let (ok, out, err) = app.run_hcp(&["calendar", "add-working-days", "2025-09-30", "3"]);
    assert!(ok && err.is_empty(), "{err}");
    assert_eq!(out, "2025-10-11");
    // Past the calendar's end: a provisional deadline, no panic, and the missing year named.
    let (ok, out, err) = app.run_hcp(&["calendar", "add-working-days", "2026-12-30", "10"]);
    assert!(ok, "{err}");
    assert_eq!(out, "2027-01-13");
    assert!(err.contains("provisional: the calendar needs year 2027"), "{err}");

    // A bad file is refused whole with its reasons; the stored calendar is unchanged.
    let dir = std::env::temp_dir().join(format!("hcp-cal-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"years": {"2027": {"source": "x", "holidays": ["2027-02-30"], "workdays": ["2027-01-05"]}}}"#,
    )
    .unwrap();
    let (ok, _, err) = app.run_hcp(&["calendar", "import", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("2027-02-30") && err.contains("2027-01-05 is a Tue"), "{err}");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM calendar_years").fetch_one(app.store.pool()).await.unwrap();
    assert_eq!(stored, 7);
    let _ = std::fs::remove_dir_all(dir);

    // Over HTTP: the same computation, then the operator adds the next year when it is published.
    let deadline = app.get_json("/api/v1/calendar/add-working-days?date=2026-12-30&n=10").await;
    assert_eq!(deadline["date"], "2027-01-13");
    assert_eq!((deadline["provisional"].as_bool(), deadline["missing_years"].clone()), (Some(true), json!([2027])));
    let put = |body: serde_json::Value| {
        let (c, admin) = (app.client.clone(), &app.admin);
        let url = format!("{}/api/v1/calendar/years/2027", app.url);
        async move { c.put(url).bearer_auth(admin).json(&body).send().await.unwrap() }
    };
    // A make-up day on a Tuesday is a typo: refused, nothing stored.
    let r = put(json!({"source": "test", "holidays": ["2027-01-01"], "workdays": ["2027-01-05"]})).await;
    assert_eq!(r.status(), 422);
    let problem: serde_json::Value = r.json().await.unwrap();
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("2027-01-05 is a Tue"), "{problem}");
    assert_eq!(
        app.get_json("/api/v1/calendar/years").await["years"],
        json!([2020, 2021, 2022, 2023, 2024, 2025, 2026])
    );
    // A (made-up, test-only) 2027: Jan 1 and Jan 11–12 off, Saturday Jan 9 worked.
    let r = put(
        json!({"source": "test", "holidays": ["2027-01-01", "2027-01-11..2027-01-12"], "workdays": ["2027-01-09"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["years"].as_array().unwrap().len(), 8);
    let deadline = app.get_json("/api/v1/calendar/add-working-days?date=2026-12-30&n=10").await;
    assert_eq!((deadline["date"].as_str(), deadline["provisional"].as_bool()), (Some("2027-01-15"), Some(false)));
    assert_eq!(deadline["due_at"], "2027-01-15T16:00:00Z", "the end of the day, Beijing time");
}
