//! The working-day calendar through the CLI against a fresh database: `hcp calendar import` and
//! `hcp calendar add-working-days`, which an operator uses to check any deadline by hand.

use std::process::Command;

use hcp_tests::{hcp_bin, TestApp};

const CALENDAR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/calendar/cn-workdays-2020-2026.json");

fn hcp(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(hcp_bin());
    cmd.args(args);
    for (k, v) in app.child_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hcp");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_follow_the_imported_calendar_and_say_when_a_year_is_missing() {
    let app = TestApp::start().await;

    // No calendar yet: Monday–Friday, flagged as provisional.
    let (ok, out, err) = hcp(&app, &["calendar", "add-working-days", "2025-09-30", "3"]);
    assert!(ok, "{err}");
    assert_eq!(out, "2025-10-03");
    assert!(err.contains("provisional: the calendar needs year 2025"), "{err}");

    let (ok, out, err) = hcp(&app, &["calendar", "import", CALENDAR]);
    assert!(ok, "{err}");
    assert_eq!(out, "calendar years imported: 2020, 2021, 2022, 2023, 2024, 2025, 2026");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM calendar_years").fetch_one(app.store.pool()).await.unwrap();
    assert_eq!(stored, 7);

    // National Day 2025: 10-01..10-08 off, Saturday 10-11 is a make-up working day.
    let (ok, out, err) = hcp(&app, &["calendar", "add-working-days", "2025-09-30", "3"]);
    assert!(ok && err.is_empty(), "{err}");
    assert_eq!(out, "2025-10-11");
    // Past the calendar's end: a provisional deadline, no panic, and the missing year named.
    let (ok, out, err) = hcp(&app, &["calendar", "add-working-days", "2026-12-30", "10"]);
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
    let (ok, _, err) = hcp(&app, &["calendar", "import", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("2027-02-30") && err.contains("2027-01-05 is a Tue"), "{err}");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM calendar_years").fetch_one(app.store.pool()).await.unwrap();
    assert_eq!(stored, 7);
    let _ = std::fs::remove_dir_all(dir);
}
