//! The monthly performance report (`GET /api/v1/reports/monthly`, `hcp report monthly`): for a
//! month seeded here — ratings at two halls, work orders rectified on time, late, left overdue and
//! appealed with success, verified with a conduct cause, a process cause and as unfounded, with
//! accountability measures recorded — every cell of the XLSX and the CSV, the 论证 list and the
//! staff ranking's accountability figures equal what the test computes from what it did.

use std::io::Cursor;
use std::time::Duration;

use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use chrono::{Datelike, Utc};
use hcp_tests::{wait_until, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// Two departments, each with its own hall, window, staff member and service item, so every
/// attribution rule gives the same unit: D-A / H-A / S-A and D-B / H-B / S-B.
fn city() -> Value {
    json!({
        "regions": [{"code": "449900", "name": "测试市"}],
        "departments": [
            {"id": "D-A", "uscc": "11449900MB0000001D", "name": "测试市甲局", "region_code": "449900"},
            {"id": "D-B", "uscc": "11449900MB0000002G", "name": "测试市乙局", "region_code": "449900"}
        ],
        "halls": [{"id": "H-A", "name": "甲大厅", "region_code": "449900"}, {"id": "H-B", "name": "乙大厅", "region_code": "449900"}],
        "windows": [
            {"id": "W-A", "hall_id": "H-A", "name": "甲窗", "role": "both", "department_ids": ["D-A"]},
            {"id": "W-B", "hall_id": "H-B", "name": "乙窗", "role": "both", "department_ids": ["D-B"]}
        ],
        "devices": [
            {"id": "E-A", "kind": "evaluator", "hall_id": "H-A", "window_id": "W-A"},
            {"id": "E-B", "kind": "evaluator", "hall_id": "H-B", "window_id": "W-B"}
        ],
        "staff": [{"id": "S-A", "name": "陈甲", "department_id": "D-A"}, {"id": "S-B", "name": "=林乙", "department_id": "D-B"}],
        "service_items": [{"code": "I-A", "name": "甲事项", "department_id": "D-A"}, {"code": "I-B", "name": "乙事项", "department_id": "D-B"}],
        "tags": [{"code": "rude", "name": "态度差", "class": "conduct", "negative": true}]
    })
}

/// A fresh deployment of [`city`] with this year's calendar and a running aggregator, and this
/// month in Beijing (`YYYY-MM`).
async fn start() -> (TestApp, String) {
    let mut app = TestApp::start().await;
    app.import_directory(&city()).await;
    app.import_calendar_for_test().await;
    app.start_aggregator();
    let now = Utc::now() + chrono::Duration::hours(8);
    (app, format!("{:04}-{:02}", now.year(), now.month()))
}

/// Expected row: ratings, good, bad, orders, on time, late, overdue, upheld.
type Expected = (i64, i64, i64, i64, i64, i64, i64, i64);
/// Expected verification outcomes: founded conduct, process, platform; unfounded.
type Verified = [i64; 4];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_report_matches_what_happened() {
    let (app, month) = start().await;

    let a = [5, 5, 4, 3, 2, 1, 1];
    let b = [5, 4, 2];
    let mut n = 0;
    for (side, grades) in [("A", &a[..]), ("B", &b[..])] {
        for g in grades {
            let mut body = json!({"channel": "window_evaluator", "stage": "acceptance",
                "service_record_no": format!("RP-{n}"), "hall_id": format!("H-{side}"), "window_id": format!("W-{side}"),
                "device_id": format!("E-{side}"), "staff_id": format!("S-{side}"), "service_item_code": format!("I-{side}"),
                "grade": g});
            if *g <= 2 {
                body["tags"] = json!(["rude"]);
            }
            n += 1;
            let r = app.post_rating(&body).await;
            assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        }
    }
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "ratings and work orders stored", || {
        let store = store.clone();
        async move {
            let orders: i64 =
                sqlx::query_scalar("SELECT count(*) FROM work_orders").fetch_one(store.pool()).await.unwrap();
            store.count_ratings().await.unwrap() == n && orders == 4
        }
    })
    .await;

    // D-A's three orders: one rectified on time, one rectified after a deadline already past (as
    // if days had gone by), one appealed and upheld. D-B's one: its deadline passed, still open.
    let handler_a = app.account("rp-a", "handler", Some("D-A"), None).await;
    let supervisor = app.account("rp-sup", "supervisor", None, Some("449900")).await;
    let (s, page) = app.call(Method::GET, "/api/v1/work-orders", &app.admin, None).await;
    assert_eq!(s, 200);
    let ids_of = |dept: &str| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["department_id"] == dept)
            .map(|o| o["order_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (orders_a, orders_b) = (ids_of("D-A"), ids_of("D-B"));
    assert_eq!((orders_a.len(), orders_b.len()), (3, 1));
    let past_deadline = |id: String| {
        let store = app.store.clone();
        async move {
            sqlx::query(
                "UPDATE work_orders SET rectify_due_at = now() - interval '1 minute' WHERE order_id = $1::uuid",
            )
            .bind(id)
            .execute(store.pool())
            .await
            .unwrap();
        }
    };
    past_deadline(orders_a[1].clone()).await;
    past_deadline(orders_b[0].clone()).await;
    // A founded verification names its cause, an unfounded one has none.
    let first = format!("/api/v1/work-orders/{}", orders_a[0]);
    for action in ["claim", "contact"] {
        let (s, o) = app.call(Method::POST, &format!("{first}/{action}"), &handler_a, None).await;
        assert_eq!(s, 200, "{action}: {o}");
    }
    for (body, code) in
        [(json!({"founded": true}), "required"), (json!({"founded": false, "cause": "conduct"}), "invalid")]
    {
        let (s, p) = app.call(Method::POST, &format!("{first}/verify"), &handler_a, Some(body.clone())).await;
        assert_eq!(
            (s, &p["errors"][0]["field"], &p["errors"][0]["code"]),
            (422, &json!("cause"), &json!(code)),
            "{body}"
        );
    }
    let (s, p) = app
        .call(Method::POST, &format!("{first}/verify"), &handler_a, Some(json!({"founded": true, "cause": "staff"})))
        .await;
    assert_eq!(s, 422, "an unknown cause: {p}");
    for (i, (order, cause)) in orders_a[..2].iter().zip(["conduct", "process"]).enumerate() {
        let steps = [
            ("claim", None),
            ("contact", Some(json!({"note": "已联系"}))),
            ("verify", Some(json!({"founded": true, "cause": cause, "note": "属实"}))),
            ("rectify", Some(json!({"note": "已整改"}))),
        ];
        for (action, body) in steps.into_iter().skip(if i == 0 { 2 } else { 0 }) {
            let (s, o) =
                app.call(Method::POST, &format!("/api/v1/work-orders/{order}/{action}"), &handler_a, body).await;
            assert_eq!(s, 200, "{action}: {o}");
        }
    }
    let appeal = format!("/api/v1/work-orders/{}", orders_a[2]);
    let (s, _) = app.call(Method::POST, &format!("{appeal}/claim"), &handler_a, None).await;
    assert_eq!(s, 200);
    let (s, _) =
        app.call(Method::POST, &format!("{appeal}/appeal"), &handler_a, Some(json!({"note": "非本部门"}))).await;
    assert_eq!(s, 200);
    let (s, _) =
        app.call(Method::POST, &format!("{appeal}/appeal/uphold"), &supervisor, Some(json!({"note": "成立"}))).await;
    assert_eq!(s, 200);
    // D-B's order is verified unfounded (不属实) and stays open past its deadline.
    let handler_b = app.account("rp-b", "handler", Some("D-B"), None).await;
    for (action, body) in
        [("claim", None), ("contact", None), ("verify", Some(json!({"founded": false, "note": "不属实"})))]
    {
        let (s, o) =
            app.call(Method::POST, &format!("/api/v1/work-orders/{}/{action}", orders_b[0]), &handler_b, body).await;
        assert_eq!(s, 200, "{action}: {o}");
    }

    // Accountability measures: a person's for conduct, 论证 for process; none on an unfounded
    // order; supervisors within their region only.
    let measure = |order: &str, kind: &str, note: &str| {
        (format!("/api/v1/work-orders/{order}/accountability"), Some(json!({"kind": kind, "note": note})))
    };
    let (path, body) = measure(&orders_a[0], "education", "已约见窗口负责人进行教育");
    let (s, m) = app.call(Method::POST, &path, &supervisor, body).await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(
        (&m["kind"], &m["cause"], &m["staff_id"], &m["department_id"], &m["actor"]),
        (&json!("education"), &json!("conduct"), &json!("S-A"), &json!("D-A"), &json!("rp-sup"))
    );
    let (path, body) = measure(&orders_a[0], "process_review", "流程论证");
    let (s, p) = app.call(Method::POST, &path, &supervisor, body).await;
    assert_eq!(
        (s, &p["errors"][0]["field"], &p["errors"][0]["code"]),
        (422, &json!("kind"), &json!("does_not_fit")),
        "{p}"
    );
    let (path, body) = measure(&orders_a[1], "process_review", "材料清单已提交论证");
    let (s, m) = app.call(Method::POST, &path, &supervisor, body).await;
    assert_eq!((s, &m["cause"], &m["staff_id"]), (201, &json!("process"), &Value::Null), "{m}");
    let (path, body) = measure(&orders_b[0], "education", "教育");
    let (s, p) = app.call(Method::POST, &path, &supervisor, body).await;
    assert_eq!(s, 409, "an unfounded order answers for nothing: {p}");
    let (path, body) = measure(&orders_a[0], "education", "教育");
    let (s, _) = app.call(Method::POST, &path, &handler_a, body.clone()).await;
    assert_eq!(s, 403, "a handler records no measure");
    let elsewhere = app.account("rp-sup2", "supervisor", None, Some("440300")).await;
    let (s, _) = app.call(Method::POST, &path, &elsewhere, body.clone()).await;
    assert_eq!(s, 404, "another region's supervisor does not see the order");
    let (path, body) = measure(&orders_a[0], "interview", " ");
    let (s, _) = app.call(Method::POST, &path, &supervisor, body).await;
    assert_eq!(s, 422, "a measure needs its note");
    let (s, d) = app.call(Method::GET, &first, &app.admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(d["accountability"].as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!((&d["order"]["cause"], &d["order"]["founded"]), (&json!("conduct"), &json!(true)));
    let log = d["log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["action"], "accountability:education");
    let unpublished: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM work_order_log WHERE action LIKE 'accountability:%' AND published_at IS NOT NULL",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(unpublished, 2, "measures are audited, stamped as never to be published");

    // The upheld rating (a grade 1 of D-A) leaves the aggregates.
    wait_until(Duration::from_secs(30), "the upheld rating to leave the aggregates", || async {
        app.summary("scope=department&id=D-A").await["total"] == 6
    })
    .await;
    // And from the board's split rows, exactly as from the aggregates.
    assert!(app.assert_rollups_match_ratings().await > 0);

    // What happened, per unit (D-A / H-A / S-A alike, D-B / H-B / S-B alike). S-B's name reads as
    // a spreadsheet formula: the workbook keeps it as text, the CSV defuses it.
    let side_a: (Expected, Verified) = ((6, 4, 2, 3, 1, 1, 0, 1), [1, 1, 0, 0]);
    let side_b: (Expected, Verified) = ((3, 2, 1, 1, 0, 0, 1, 0), [0, 0, 0, 1]);
    let expected = [
        ("部门", [("D-A", "测试市甲局", side_a), ("D-B", "测试市乙局", side_b)]),
        ("大厅", [("H-A", "甲大厅", side_a), ("H-B", "乙大厅", side_b)]),
        ("工作人员", [("S-A", "陈甲", side_a), ("S-B", "=林乙", side_b)]),
    ];

    // XLSX: a sheet per level.
    let r = report(&app, &app.admin, &format!("month={month}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let bytes = r.bytes().await.unwrap().to_vec();
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    for (title, rows) in &expected {
        let sheet = book.worksheet_range(&format!("{title}{month}")).unwrap();
        let cells: Vec<Vec<Data>> = sheet.rows().map(|r| r.to_vec()).collect();
        assert_eq!(cells.len(), 3, "{title}: header and two units");
        assert_eq!(cells[0][0], Data::String("编号 id".into()));
        for (i, (id, name, (e, v))) in rows.iter().enumerate() {
            let row = &cells[i + 1];
            let num = |c: usize| match &row[c] {
                Data::Float(f) => *f,
                other => panic!("{title} {id} column {c}: {other:?}"),
            };
            assert_eq!((&row[0], &row[1]), (&Data::String((*id).into()), &Data::String((*name).into())));
            let (ratings, good, bad, orders, on_time, late, overdue, upheld) = *e;
            assert_eq!(
                [num(2), num(3), num(4), num(6), num(7), num(8), num(9), num(11)],
                [ratings, good, bad, orders, on_time, late, overdue, upheld].map(|x| x as f64),
                "{title} {id}"
            );
            assert_eq!([num(12), num(13), num(14), num(15)], v.map(|x| x as f64), "{title} {id} 核实");
            assert!((num(5) - good as f64 / ratings as f64).abs() < 1e-9, "{title} {id} 好评率");
            let due = on_time + late + overdue;
            assert!((num(10) - on_time as f64 / due as f64).abs() < 1e-9, "{title} {id} 按时整改率");
        }
    }

    // CSV, one level: the same numbers.
    let r = report(&app, &app.admin, &format!("month={month}&format=csv&level=staff")).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1], "S-A,陈甲,6,4,2,0.6667,3,1,1,0,0.5000,1,1,1,0,0");
    // A name that reads as a formula is defused (in the workbook it is a string cell with a quote prefix).
    assert_eq!(lines[2], "S-B,'=林乙,3,2,1,0.6667,1,0,0,1,0.0000,0,0,0,0,1");

    // The 论证 list: D-A's one founded process-cause bad review, with its review so far.
    let sheet = book.worksheet_range(&format!("待论证差评{month}")).unwrap();
    let cells: Vec<Vec<Data>> = sheet.rows().map(|r| r.to_vec()).collect();
    assert_eq!(cells.len(), 2, "header and one order: {cells:?}");
    let order_no_1 = page["items"].as_array().unwrap().iter().find(|o| o["order_id"] == orders_a[1].as_str()).unwrap()
        ["order_no"]
        .as_i64()
        .unwrap();
    assert_eq!(
        [&cells[1][0], &cells[1][1], &cells[1][2], &cells[1][4], &cells[1][6], &cells[1][8], &cells[1][9]],
        [
            &Data::String("D-A".into()),
            &Data::String("测试市甲局".into()),
            &Data::Float(order_no_1 as f64),
            &Data::String("甲事项".into()),
            &Data::String("rude".into()),
            &Data::String("属实".into()),
            &Data::String("材料清单已提交论证".into()),
        ]
    );
    let r = report(&app, &handler_b, &format!("month={month}&format=csv&level=process_review")).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(
        text.trim_start_matches('\u{feff}').trim_end().split("\r\n").count(),
        1,
        "D-B's handler sees no D-A row: {text}"
    );

    // The staff ranking: bad reviews verified per cause; accountability counts conduct only.
    let (s, ranking) = app.call(Method::GET, "/api/v1/stats/ranking?scope=staff&min_ratings=1", &app.admin, None).await;
    assert_eq!(s, 200, "{ranking}");
    let entry = |id: &str| ranking["entries"].as_array().unwrap().iter().find(|e| e["id"] == id).unwrap().clone();
    assert_eq!(entry("S-A")["verified"], json!({"conduct": 1, "process": 1, "platform": 0, "unfounded": 0}));
    assert_eq!(entry("S-A")["accountable_bad_reviews"], 1);
    assert_eq!(entry("S-B")["verified"], json!({"conduct": 0, "process": 0, "platform": 0, "unfounded": 1}));
    assert_eq!(entry("S-B")["accountable_bad_reviews"], 0);
    let (s, ranking) = app.call(Method::GET, "/api/v1/stats/ranking?scope=service_item", &app.admin, None).await;
    assert_eq!(s, 200);
    assert!(ranking["entries"][0].get("verified").is_none(), "items answer no order: {ranking}");

    // The CLI writes the same workbook contents.
    let out = std::env::temp_dir().join(format!("hcp-report-{}.csv", app.db_name));
    let (ok, _, err) = app.run_hcp(&[
        "report",
        "monthly",
        "--month",
        &month,
        "--format",
        "csv",
        "--level",
        "department",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let cli = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(cli.contains("\r\nD-A,测试市甲局,6,4,2,0.6667,3,1,1,0,0.5000,1,1,1,0,0\r\n"), "{cli}");

    // Who may: a handler gets their department's rows only (the same figures), the callback
    // agent none; and bad input.
    let r = report(&app, &handler_a, &format!("month={month}&format=csv&level=department")).await;
    assert_eq!(r.status(), 200);
    let own = r.text().await.unwrap();
    let rows: Vec<&str> = own.trim_end().split("\r\n").skip(1).collect();
    assert_eq!(rows, ["D-A,测试市甲局,6,4,2,0.6667,3,1,1,0,0.5000,1,1,1,0,0"], "{own}");
    let callback = app.account("cb", "callback", None, None).await;
    let (s, _) = app.call(Method::GET, &format!("/api/v1/reports/monthly?month={month}"), &callback, None).await;
    assert_eq!(s, 403);
    for (query, field) in [
        ("month=2026-13", "month"),
        ("month=2999-01", "month"),
        (&*format!("month={month}&format=pdf"), "format"),
        (&*format!("month={month}&format=csv&level=window"), "level"),
    ] {
        let (s, p) = app.call(Method::GET, &format!("/api/v1/reports/monthly?{query}"), &app.admin, None).await;
        assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some(field)), "{query}: {p}");
    }
}

/// `GET /api/v1/reports/monthly?{query}` with `token`.
async fn report(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    let url = format!("{}/api/v1/reports/monthly?{query}", app.url);
    app.client.get(url).bearer_auth(token).send().await.expect("request sent")
}

/// The row of `hall` in this month's hall-level report CSV: (ratings, work orders), or `None`
/// (no rating or order of the month was ever counted there).
async fn hall_row(app: &TestApp, month: &str, hall: &str) -> Option<(i64, i64)> {
    let r = report(app, &app.admin, &format!("month={month}&format=csv&level=hall")).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    text.split("\r\n").find(|l| l.starts_with(&format!("{hall},"))).map(|l| {
        let cells: Vec<&str> = l.split(',').collect();
        (cells[2].parse().unwrap(), cells[6].parse().unwrap())
    })
}

/// A bad review at a window the directory does not know yet is counted at the hall it reported;
/// once the window is added (to the other hall) and the review re-attributed, its work order is
/// judged with it: the report counts the order at the new hall and no longer at the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_attributed_bad_review_takes_its_work_order_to_its_new_hall() {
    let (mut app, month) = start().await;
    let body = json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": "RP-NEW",
        "hall_id": "H-A", "window_id": "W-C", "staff_id": "S-B", "service_item_code": "I-B", "grade": 1,
        "tags": ["rude"]});
    let r = app.post_rating(&body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "the work order opened", || {
        let store = store.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM work_orders").fetch_one(store.pool()).await.unwrap() == 1
        }
    })
    .await;
    // The order judges what the rating was attributed to.
    let units =
        "SELECT o.attr_hall_id, o.attr_window_id, o.attr_staff_id, r.attr_hall_id, r.attr_window_id, r.attr_staff_id
                   FROM work_orders o JOIN ratings r ON r.rating_id = o.rating_id";
    type Units = (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
    let before: Units = sqlx::query_as(units).fetch_one(app.store.pool()).await.unwrap();
    assert_eq!((&before.0, &before.1, &before.2), (&before.3, &before.4, &before.5));
    assert_eq!(before.0.as_deref(), Some("H-A"));
    assert_eq!(hall_row(&app, &month, "H-A").await, Some((1, 1)));
    assert_eq!(hall_row(&app, &month, "H-B").await, None);

    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/directory/windows/W-C",
            &app.admin,
            Some(json!({"hall_id": "H-B", "name": "丙窗", "role": "both", "department_ids": ["D-B"]})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, done) = app.call(Method::POST, "/api/v1/attribution/reattribute", &app.admin, None).await;
    assert_eq!((s, done["changed"].as_i64()), (200, Some(1)), "{done}");
    let after: Units = sqlx::query_as(units).fetch_one(app.store.pool()).await.unwrap();
    assert_eq!((&after.0, &after.1, &after.2), (&after.3, &after.4, &after.5));
    assert_eq!((after.0.as_deref(), after.1.as_deref()), (Some("H-B"), Some("W-C")));
    assert_eq!(hall_row(&app, &month, "H-B").await, Some((1, 1)));
    // H-A keeps its (now empty) row: a rating was counted there this month, then moved.
    assert_eq!(hall_row(&app, &month, "H-A").await, Some((0, 0)));
    app.stop_aggregator().await;
}
