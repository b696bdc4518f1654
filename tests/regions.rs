//! Results at every level of the region tree ("纳入……各区政府(含新区管委会)政府绩效考核"): a city
//! with two districts, one with a street; ratings at a hall in the street and at one in the other
//! district. The ranking (`scope=region`, by `parent` or `level`), the board of any region within
//! the caller's reach (`?region=`, with the regions one level below ranked) and the monthly
//! report's 区域 sheet give exactly the counts posted, each region with the ones below it.

use std::time::Duration;

use chrono::{Datelike, Utc};
use hcp_tests::{wait_until, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

fn city() -> Value {
    json!({
        "regions": [
            {"code": "440000", "name": "广东省"},
            {"code": "440300", "name": "测试市", "parent_code": "440000"},
            {"code": "440305", "name": "南区", "parent_code": "440300"},
            {"code": "440306", "name": "北区", "parent_code": "440300"},
            {"code": "440305001000", "name": "南区一街道", "parent_code": "440305"}
        ],
        "departments": [{"id": "D-A", "uscc": "11449900MB0000001D", "name": "测试市甲局", "region_code": "440300"}],
        "halls": [
            {"id": "H-S", "name": "街道便民服务中心", "region_code": "440305001000"},
            {"id": "H-N", "name": "北区政务服务中心", "region_code": "440306"}
        ],
        "windows": [
            {"id": "W-S", "hall_id": "H-S", "name": "街道窗", "role": "both", "department_ids": ["D-A"]},
            {"id": "W-N", "hall_id": "H-N", "name": "北区窗", "role": "both", "department_ids": ["D-A"]}
        ],
        "staff": [{"id": "S-1", "name": "陈一", "department_id": "D-A"}],
        "service_items": [{"code": "I-A", "name": "甲事项", "department_id": "D-A"}],
        "tags": [{"code": "slow", "name": "办理慢", "class": "process", "negative": true}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rankings_boards_and_reports_at_every_level_of_the_region_tree() {
    let mut app = TestApp::start().await;
    app.import_directory(&city()).await;
    app.import_calendar_for_test().await;
    app.start_aggregator();
    // The street's hall: 5, 4, 1; the north district's: 5, 2.
    let posted = [("S", 5), ("S", 4), ("S", 1), ("N", 5), ("N", 2)];
    for (n, (hall, grade)) in posted.iter().enumerate() {
        let mut body = json!({"channel": "window_evaluator", "stage": "acceptance", "service_record_no": format!("RG-{n}"),
            "hall_id": format!("H-{hall}"), "window_id": format!("W-{hall}"), "service_item_code": "I-A", "grade": grade});
        if *grade <= 2 {
            body["tags"] = json!(["slow"]);
        }
        let r = app.post_rating(&body).await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    }
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "ratings stored", || {
        let store = store.clone();
        async move { store.count_ratings().await.unwrap() == 5 }
    })
    .await;

    // Rankings: a city's districts (by parent or by level), a district's streets.
    let ranking = |query: &'static str| {
        let app = &app;
        async move {
            let (s, r) =
                app.call(Method::GET, &format!("/api/v1/stats/ranking?scope=region&{query}"), &app.admin, None).await;
            assert_eq!(s, 200, "{query}: {r}");
            r["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["id"].as_str().unwrap().to_owned(), e["total"].as_i64().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    let districts = vec![("440305".to_owned(), 3), ("440306".to_owned(), 2)];
    assert_eq!(ranking("parent=440300&order=asc").await.len(), 2);
    let mut by_parent = ranking("parent=440300").await;
    by_parent.sort();
    assert_eq!(by_parent, districts);
    let mut by_level = ranking("level=district").await;
    by_level.sort();
    assert_eq!(by_level, districts);
    assert_eq!(ranking("level=street").await, [("440305001000".to_owned(), 3)]);
    assert_eq!(ranking("level=city").await, [("440300".to_owned(), 5)]);
    let (s, p) = app.call(Method::GET, "/api/v1/stats/ranking?scope=hall&parent=440300", &app.admin, None).await;
    assert_eq!(s, 400, "parent goes with scope=region only: {p}");
    let (s, _) = app.call(Method::GET, "/api/v1/stats/ranking?scope=region&level=planet", &app.admin, None).await;
    assert_eq!(s, 400);

    // The admin's board ranks the districts (one province, one city: passed through).
    let (s, board) = app.call(Method::GET, "/api/v1/board", &app.admin, None).await;
    assert_eq!(s, 200);
    let regions = |b: &Value| {
        let r = b["rankings"].as_array().unwrap().iter().find(|r| r["scope"] == "region").cloned();
        r.map(|r| {
            r["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["id"].as_str().unwrap().to_owned(), e["total"].as_i64().unwrap()))
                .collect::<Vec<_>>()
        })
    };
    let mut ranked = regions(&board).unwrap();
    ranked.sort();
    assert_eq!(ranked, districts);

    // The city's supervisor opens the south district's board: its figures, its street ranked.
    let city_sup = app.account("sup-city", "supervisor", None, Some("440300")).await;
    let (s, south) = app.call(Method::GET, "/api/v1/board?region=440305", &city_sup, None).await;
    assert_eq!(s, 200, "{south}");
    assert_eq!(
        (&south["scope"]["kind"], &south["scope"]["id"], &south["scope"]["name"]),
        (&json!("region"), &json!("440305"), &json!("南区"))
    );
    assert_eq!(
        (south["today"]["total"].as_i64(), south["today"]["bad"].as_i64()),
        (Some(3), Some(1)),
        "{}",
        south["today"]
    );
    assert_eq!(regions(&south).unwrap(), [("440305001000".to_owned(), 3)]);
    let (s, street) = app.call(Method::GET, "/api/v1/board?region=440305001000", &city_sup, None).await;
    assert_eq!((s, street["today"]["total"].as_i64()), (200, Some(3)));
    // Outside the reach 403, unknown 404, a department's account has no region boards.
    let north_sup = app.account("sup-north", "supervisor", None, Some("440306")).await;
    let (s, _) = app.call(Method::GET, "/api/v1/board?region=440305", &north_sup, None).await;
    assert_eq!(s, 403);
    let (s, _) = app.call(Method::GET, "/api/v1/board?region=440300", &north_sup, None).await;
    assert_eq!(s, 403, "not upwards either");
    let (s, _) = app.call(Method::GET, "/api/v1/board?region=999999", &app.admin, None).await;
    assert_eq!(s, 404);
    let handler = app.account("h-a", "handler", Some("D-A"), None).await;
    let (s, _) = app.call(Method::GET, "/api/v1/board?region=440305", &handler, None).await;
    assert_eq!(s, 403);
    let (s, mine) = app.call(Method::GET, "/api/v1/board", &handler, None).await;
    assert_eq!((s, regions(&mine)), (200, None), "a department's board ranks no regions");

    // The monthly report's 区域 sheet: every region with the ones below it.
    let now = Utc::now() + chrono::Duration::hours(8);
    let month = format!("{:04}-{:02}", now.year(), now.month());
    let csv = |token: String| {
        let app = &app;
        let month = month.clone();
        async move {
            let r = app
                .client
                .get(format!("{}/api/v1/reports/monthly?month={month}&format=csv&level=region", app.url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let text = r.text().await.unwrap();
            text.trim_start_matches('\u{feff}')
                .trim_end()
                .split("\r\n")
                .skip(1)
                .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        csv(app.admin.clone()).await,
        [
            "440000,广东省,5,3,2,0.6000",
            "440300,测试市,5,3,2,0.6000",
            "440305,南区,3,2,1,0.6667",
            "440305001000,南区一街道,3,2,1,0.6667",
            "440306,北区,2,1,1,0.5000",
        ]
    );
    assert_eq!(csv(north_sup).await, ["440306,北区,2,1,1,0.5000"], "a district's supervisor: its own row");
}
