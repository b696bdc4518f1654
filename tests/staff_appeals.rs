//! Staff appeals (工作人员申诉, "保障部门与窗口工作人员申诉权力"): a staff account sees exactly its
//! own bad reviews — never who gave them — and appeals one whatever the order's progress; the
//! order's department or region reviews it; upheld, the rating leaves every aggregate and the open
//! order ends; rejected, nothing changes. Nobody else files, nobody outside the reach reviews.

use std::time::Duration;

use hcp_tests::{wait_until, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

fn city() -> Value {
    json!({
        "regions": [{"code": "449900", "name": "测试市"}],
        "departments": [
            {"id": "D-A", "uscc": "11449900MB0000001D", "name": "测试市甲局", "region_code": "449900"},
            {"id": "D-B", "uscc": "11449900MB0000002G", "name": "测试市乙局", "region_code": "449900"}
        ],
        "halls": [{"id": "H-A", "name": "甲大厅", "region_code": "449900"}],
        "windows": [
            {"id": "W-A", "hall_id": "H-A", "name": "甲窗", "role": "both", "department_ids": ["D-A"]},
            {"id": "W-B", "hall_id": "H-A", "name": "乙窗", "role": "both", "department_ids": ["D-B"]}
        ],
        "staff": [{"id": "S-A", "name": "陈甲", "department_id": "D-A"}, {"id": "S-B", "name": "林乙", "department_id": "D-B"}],
        "service_items": [{"code": "I-A", "name": "甲事项", "department_id": "D-A"}, {"code": "I-B", "name": "乙事项", "department_id": "D-B"}],
        "tags": [{"code": "rude", "name": "态度差", "class": "conduct", "negative": true}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_member_appeals_their_own_bad_review_and_an_upheld_appeal_excludes_it() {
    let mut app = TestApp::start().await;
    app.import_directory(&city()).await;
    app.import_calendar_for_test().await;
    app.start_aggregator();
    // S-A: grades 1, 2, 2 and a 5; S-B: a 1. Every bad one carries a phone and a name.
    let ratings = [("A", 1), ("A", 2), ("A", 2), ("A", 5), ("B", 1)];
    for (n, (side, grade)) in ratings.iter().enumerate() {
        let mut body = json!({"channel": "window_evaluator", "stage": "acceptance",
            "service_record_no": format!("SA-{n}"), "window_id": format!("W-{side}"), "staff_id": format!("S-{side}"),
            "service_item_code": format!("I-{side}"), "grade": grade, "comment": format!("评价{n}"),
            "rater": {"user_prop": 1, "name": "张三", "phone": "13800138000"}});
        if *grade <= 2 {
            body["tags"] = json!(["rude"]);
        }
        let r = app.post_rating(&body).await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    }
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "ratings and orders stored", || {
        let store = store.clone();
        async move {
            let orders: i64 =
                sqlx::query_scalar("SELECT count(*) FROM work_orders").fetch_one(store.pool()).await.unwrap();
            store.count_ratings().await.unwrap() == 5 && orders == 4
        }
    })
    .await;

    // Exactly S-A's three bad reviews, newest first, with no trace of the rater.
    let staff_a = app.staff_account("s-a", "S-A", "D-A").await;
    let (s, mine) = app.call(Method::GET, "/api/v1/my/bad-reviews", &staff_a, None).await;
    assert_eq!(s, 200, "{mine}");
    let mine = mine.as_array().unwrap().clone();
    let records: Vec<&str> = mine.iter().map(|r| r["service_record_no"].as_str().unwrap()).collect();
    assert_eq!(records, ["SA-2", "SA-1", "SA-0"]);
    let text = serde_json::to_string(&mine).unwrap();
    for secret in ["张", "13800138000", "138****8000", "\"rater"] {
        assert!(!text.contains(secret), "the rater shows through ({secret}): {text}");
    }
    assert!(mine.iter().all(|r| r["counted"] == true && r["appeal"].is_null() && r["tag_names"] == json!(["态度差"])));

    // Appeal SA-0 (its order still opened, nobody has claimed it): bad input first.
    let rating = |no: &str| {
        mine.iter().find(|r| r["service_record_no"] == no).unwrap()["rating_id"].as_str().unwrap().to_owned()
    };
    let appeal_path = |id: &str| format!("/api/v1/my/bad-reviews/{id}/appeal");
    let (s, p) = app.call(Method::POST, &appeal_path(&rating("SA-0")), &staff_a, Some(json!({"reason": "  "}))).await;
    assert_eq!((s, &p["errors"][0]["field"]), (422, &json!("reason")), "{p}");
    let (s, p) = app
        .call(
            Method::POST,
            &appeal_path(&rating("SA-0")),
            &staff_a,
            Some(json!({"reason": "r", "attachments": ["ok", ""]})),
        )
        .await;
    assert_eq!((s, &p["errors"][0]["field"]), (422, &json!("attachments[1]")), "{p}");
    let body =
        json!({"reason": "评价人办理的是乙窗业务,非本人受理", "attachments": ["录像 W-A 10:02-10:15", "受理单 SA-0"]});
    let (s, filed) = app.call(Method::POST, &appeal_path(&rating("SA-0")), &staff_a, Some(body.clone())).await;
    assert_eq!(s, 201, "{filed}");
    assert_eq!(
        (&filed["status"], &filed["staff_id"], &filed["filed_by"]),
        (&json!("pending"), &json!("S-A"), &json!("s-a"))
    );
    assert_eq!(filed["attachments"], json!(["录像 W-A 10:02-10:15", "受理单 SA-0"]));
    let (s, _) = app.call(Method::POST, &appeal_path(&rating("SA-0")), &staff_a, Some(body.clone())).await;
    assert_eq!(s, 409, "one appeal per review");

    // Another staff member's review, a good one, an unknown id: not theirs (404).
    let staff_b = app.staff_account("s-b", "S-B", "D-B").await;
    let (s, theirs) = app.call(Method::GET, "/api/v1/my/bad-reviews", &staff_b, None).await;
    assert_eq!((s, theirs.as_array().map(Vec::len)), (200, Some(1)));
    let (s, _) = app.call(Method::POST, &appeal_path(&rating("SA-1")), &staff_b, Some(body.clone())).await;
    assert_eq!(s, 404, "S-B appeals S-A's review");
    let good: String = sqlx::query_scalar("SELECT rating_id::text FROM ratings WHERE grade = 5")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    let (s, _) = app.call(Method::POST, &appeal_path(&good), &staff_a, Some(body.clone())).await;
    assert_eq!(s, 404, "a good rating is no bad review");
    let (s, _) = app.call(Method::POST, &appeal_path("not-a-uuid"), &staff_a, Some(body.clone())).await;
    assert_eq!(s, 404);
    // Office roles do not file; staff see no order, statistic or directory.
    let handler_a = app.account("h-a", "handler", Some("D-A"), None).await;
    let (s, _) = app.call(Method::POST, &appeal_path(&rating("SA-1")), &handler_a, Some(body.clone())).await;
    assert_eq!(s, 403);
    for path in [
        "/api/v1/work-orders",
        "/api/v1/stats/summary",
        "/api/v1/board",
        "/api/v1/directory/staff",
        "/api/v1/staff-appeals",
    ] {
        let (s, p) = app.call(Method::GET, path, &staff_a, None).await;
        assert_eq!(s, 403, "{path} as staff: {p}");
    }

    // A second appeal (SA-1) whose order the handler has already taken to verification.
    let order_of = |rating_id: String| {
        let store = app.store.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT order_id::text FROM work_orders WHERE rating_id = $1::uuid")
                .bind(rating_id)
                .fetch_one(store.pool())
                .await
                .unwrap()
        }
    };
    let order_1 = order_of(rating("SA-1")).await;
    for (action, b) in
        [("claim", None), ("contact", None), ("verify", Some(json!({"founded": true, "cause": "conduct"})))]
    {
        let (s, o) = app.call(Method::POST, &format!("/api/v1/work-orders/{order_1}/{action}"), &handler_a, b).await;
        assert_eq!(s, 200, "{action}: {o}");
    }
    let (s, second) = app.call(Method::POST, &appeal_path(&rating("SA-1")), &staff_a, Some(body.clone())).await;
    assert_eq!(s, 201, "an appeal whatever the order's progress: {second}");

    // Reviewers: D-A's handler and the region's supervisor see both; D-B's handler neither.
    let supervisor = app.account("sup", "supervisor", None, Some("449900")).await;
    let handler_b = app.account("h-b", "handler", Some("D-B"), None).await;
    for (who, token, n) in [("h-a", &handler_a, 2), ("sup", &supervisor, 2), ("h-b", &handler_b, 0)] {
        let (s, list) = app.call(Method::GET, "/api/v1/staff-appeals?status=pending", token, None).await;
        assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(n)), "{who}: {list}");
    }
    let appeal_0 = filed["appeal_id"].as_str().unwrap();
    let review = |id: &str, verb: &str| format!("/api/v1/staff-appeals/{id}/{verb}");
    let (s, _) = app.call(Method::POST, &review(appeal_0, "uphold"), &handler_b, Some(json!({"note": "x"}))).await;
    assert_eq!(s, 404, "another department's handler does not see it");
    let (s, _) = app.call(Method::POST, &review(appeal_0, "uphold"), &staff_a, Some(json!({"note": "x"}))).await;
    assert_eq!(s, 403, "nobody reviews their own appeal");
    let (s, p) = app.call(Method::POST, &review(appeal_0, "uphold"), &supervisor, Some(json!({"note": " "}))).await;
    assert_eq!((s, &p["errors"][0]["field"]), (422, &json!("note")));

    // Upheld: the rating leaves every aggregate, the opened order ends, the staff member sees it.
    let before = app.summary("scope=staff&id=S-A").await;
    assert_eq!((before["total"].as_i64(), before["bad_review_count"].as_i64()), (Some(4), Some(3)), "{before}");
    let (s, upheld) = app
        .call(Method::POST, &review(appeal_0, "uphold"), &supervisor, Some(json!({"note": "核实录像,非本人受理"})))
        .await;
    assert_eq!(s, 200, "{upheld}");
    assert_eq!((&upheld["status"], &upheld["reviewed_by"]), (&json!("upheld"), &json!("sup")));
    let (s, _) = app.call(Method::POST, &review(appeal_0, "reject"), &supervisor, Some(json!({"note": "x"}))).await;
    assert_eq!(s, 409, "reviewed once");
    wait_until(Duration::from_secs(30), "the upheld rating to leave the aggregates", || async {
        let after = app.summary("scope=staff&id=S-A").await;
        after["total"] == 3 && after["bad_review_count"] == 2
    })
    .await;
    assert!(app.assert_rollups_match_ratings().await > 0);
    let order_0 = order_of(rating("SA-0")).await;
    let (s, d) = app.call(Method::GET, &format!("/api/v1/work-orders/{order_0}"), &app.admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(d["order"]["state"], "appeal_upheld", "{d}");
    let last = d["log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["action"], &last["from_state"], &last["actor"]),
        (&json!("uphold_appeal"), &json!("opened"), &json!("sup"))
    );
    assert_eq!(d["rating"]["counted"], false);

    // Rejected (by the department's handler): the verified order goes on, the rating counts.
    let appeal_1 = second["appeal_id"].as_str().unwrap();
    let (s, rejected) = app
        .call(Method::POST, &review(appeal_1, "reject"), &handler_a, Some(json!({"note": "录像显示确为本人受理"})))
        .await;
    assert_eq!((s, &rejected["status"]), (200, &json!("rejected")), "{rejected}");
    let (_, d) = app.call(Method::GET, &format!("/api/v1/work-orders/{order_1}"), &app.admin, None).await;
    assert_eq!((&d["order"]["state"], &d["rating"]["counted"]), (&json!("verified"), &json!(true)));

    let (_, mine) = app.call(Method::GET, "/api/v1/my/bad-reviews", &staff_a, None).await;
    let status = |no: &str| {
        let r = mine.as_array().unwrap().iter().find(|r| r["service_record_no"] == no).unwrap();
        (r["appeal"]["status"].clone(), r["counted"].clone())
    };
    assert_eq!(status("SA-0"), (json!("upheld"), json!(false)));
    assert_eq!(status("SA-1"), (json!("rejected"), json!(true)));
    assert_eq!(status("SA-2"), (Value::Null, json!(true)));
    // An excluded review cannot be appealed again, and nothing is left pending.
    let (s, _) = app.call(Method::POST, &appeal_path(&rating("SA-0")), &staff_a, Some(body)).await;
    assert_eq!(s, 409);
    let (_, pending) = app.call(Method::GET, "/api/v1/staff-appeals?status=pending", &app.admin, None).await;
    assert_eq!(pending.as_array().map(Vec::len), Some(0));
}
