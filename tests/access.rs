//! The access matrix, generated from the route table the server enforces (`GET /api/v1/access`):
//! every endpoint × every role (and no credentials, a forged session, a channel key), then every
//! scoped endpoint × own / other department or region. A new endpoint gets its row from the table
//! itself; a new scoped endpoint fails here until it has an own/other case.
//!
//! Two regions: 449900 (D-A, D-B, …) and 449800 (D-O). One bad rating for each of D-A and D-O,
//! so each opens one work order; handlers and supervisors of each side must see only theirs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use hcp_tests::{wait_until, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const CITY: &str = include_str!("fixtures/attribution-city.json");
const RATER_PHONE: &str = "13912345678";
const RATER_ID: &str = "11010519491231002X";
const STAFF_PHONE: &str = "13600002222";
/// The SMS gateway's callback token in this deployment.
const SMS_GATEWAY_TOKEN: &str = "sms-gateway-callback-token-for-tests";
const NO_ORDER: &str = "00000000-0000-7000-8000-000000000000";

/// The test city plus a second region with its own department and item.
fn two_region_city() -> Value {
    let mut doc: Value = serde_json::from_str(CITY).unwrap();
    doc["regions"].as_array_mut().unwrap().push(json!({"code": "449800", "name": "他市", "parent_code": "440000"}));
    doc["departments"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "D-O", "uscc": "11449800MB00000018", "name": "他市丙局", "region_code": "449800"}));
    doc["service_items"].as_array_mut().unwrap().push(json!({"code": "I-O", "name": "丙事项", "department_id": "D-O"}));
    doc
}

/// A path of the table with its parameters filled with values that exist nowhere.
fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(match &rest[open + 1..close] {
            "order_id" | "rating_id" | "invitation_id" => NO_ORDER,
            "token" => "forged.1.AAAA",
            "kind" => "departments",
            "key" => "D-NOPE",
            "year" => "1999",
            "region_code" => "000000",
            "slug" => "no-such-problem",
            other => other,
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

/// `method path` with an optional bearer and, for writes, an empty JSON object.
async fn request(app: &TestApp, m: &str, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = app.client.request(method(m), format!("{}{path}", app.url));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if !matches!(m, "GET" | "HEAD" | "OPTIONS" | "DELETE") {
        req = req.json(&json!({}));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    // An admitted event stream (the live board) never ends: its status is the answer.
    if r.headers().get("content-type").is_some_and(|v| v == "text/event-stream") {
        return (status, Value::Null);
    }
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

struct World {
    app: TestApp,
    /// Role name → (own-side session, other-side session); the unscoped roles have one.
    sessions: BTreeMap<&'static str, String>,
    key: String,
    /// A channel key that is not a platform's (the 12345 hotline's integration key).
    other_key: String,
    order_a: String,
    order_o: String,
    rating_a: String,
    rating_o: String,
}

async fn world() -> World {
    let mut app = TestApp::start_with(|c| {
        c.ingest_auth_required = true;
        c.sms_inbound_token = Some(hcp_http::MonitoringToken::parse(SMS_GATEWAY_TOKEN).unwrap());
    })
    .await;
    app.import_directory(&two_region_city()).await;
    app.import_calendar_for_test().await;
    app.start_aggregator();
    let mut sessions = BTreeMap::new();
    sessions.insert("admin", app.admin.clone());
    for (name, role, dept, region) in [
        ("supervisor", "supervisor", None, Some("449900")),
        ("supervisor_other", "supervisor", None, Some("449800")),
        ("handler", "handler", Some("D-A"), None),
        ("handler_other", "handler", Some("D-O"), None),
        ("callback", "callback", None, None),
        ("auditor", "auditor", None, None),
    ] {
        sessions.insert(name, app.account(name, role, dept, region).await);
    }
    // A window staff member: their own bad reviews and appeals only.
    sessions.insert("staff", app.staff_account("staff", "S1", "D-A").await);
    let (s, issued) = app
        .call(
            Method::POST,
            "/api/v1/credentials",
            &app.admin,
            Some(json!({"kind": "integration", "channel": "web", "name": "办事网站"})),
        )
        .await;
    assert_eq!(s, 201, "{issued}");
    let key = issued["token"].as_str().unwrap().to_owned();
    let (s, issued) = app
        .call(
            Method::POST,
            "/api/v1/credentials",
            &app.admin,
            Some(json!({"kind": "integration", "channel": "hotline", "name": "12345 热线"})),
        )
        .await;
    assert_eq!(s, 201, "{issued}");
    let other_key = issued["token"].as_str().unwrap().to_owned();
    // A staff phone: ratings from it are flagged rater_is_staff (one on each side).
    let (st, _) = app
        .call(Method::PUT, "/api/v1/directory/staff/S1/phone", &app.admin, Some(json!({"phone": STAFF_PHONE})))
        .await;
    assert_eq!(st, 204);
    for (no, item) in [("FL-A", "I-A"), ("FL-O", "I-O")] {
        let body = json!({"channel": "web", "stage": "online", "service_record_no": no, "grade": 5,
                          "service_item_code": item, "rater": {"phone": STAFF_PHONE}});
        let r = app.client.post(format!("{}/api/v1/ratings", app.url)).bearer_auth(&key).json(&body).send().await;
        assert_eq!(r.unwrap().status(), 202);
    }
    // A service item the directory does not know: attribution flags the rating and charges the
    // department reported (one on each side).
    for (no, dept) in [("AF-A", "D-A"), ("AF-O", "D-O")] {
        let body = json!({"channel": "web", "stage": "online", "service_record_no": no, "grade": 4,
                          "service_item_code": "I-GONE", "department_id": dept});
        let r = app.client.post(format!("{}/api/v1/ratings", app.url)).bearer_auth(&key).json(&body).send().await;
        assert_eq!(r.unwrap().status(), 202);
    }
    let mut rating_ids = BTreeMap::new();
    for (no, item) in [("AC-A", "I-A"), ("AC-O", "I-O")] {
        let body = json!({"channel": "web", "stage": "online", "service_record_no": no, "grade": 1,
                          "service_item_code": item, "tags": ["slow_process"],
                          "rater": {"name": "王五", "phone": RATER_PHONE, "id_number": RATER_ID}});
        let r = app.client.post(format!("{}/api/v1/ratings", app.url)).bearer_auth(&key).json(&body).send().await;
        let r = r.unwrap();
        assert_eq!(r.status(), 202);
        rating_ids.insert(item, r.json::<Value>().await.unwrap()["rating_id"].as_str().unwrap().to_owned());
    }
    let store = app.store.clone();
    wait_until(Duration::from_secs(30), "two work orders", || {
        let store = store.clone();
        async move {
            let orders: i64 =
                sqlx::query_scalar("SELECT count(*) FROM work_orders").fetch_one(store.pool()).await.unwrap();
            let ratings: i64 =
                sqlx::query_scalar("SELECT count(*) FROM ratings").fetch_one(store.pool()).await.unwrap();
            (orders, ratings) == (2, 6)
        }
    })
    .await;
    let order_of = |dept: &'static str| {
        let store = app.store.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT order_id FROM work_orders WHERE department_id = $1")
                .bind(dept)
                .fetch_one(store.pool())
                .await
                .unwrap()
                .to_string()
        }
    };
    let (order_a, order_o) = (order_of("D-A").await, order_of("D-O").await);
    let (rating_a, rating_o) = (rating_ids["I-A"].clone(), rating_ids["I-O"].clone());
    World { app, sessions, key, other_key, order_a, order_o, rating_a, rating_o }
}

/// Which role a session name stands for.
fn role_of(session: &str) -> &str {
    session.trim_end_matches("_other")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_admits_exactly_its_roles_and_scopes() {
    let w = world().await;
    let app = &w.app;

    // The table: for admins and auditors only.
    assert_eq!(request(app, "GET", "/api/v1/access", None).await.0, 401);
    assert_eq!(request(app, "GET", "/api/v1/access", Some(&w.sessions["handler"])).await.0, 403);
    let (s, table) = request(app, "GET", "/api/v1/access", Some(&w.sessions["auditor"])).await;
    assert_eq!(s, 200);
    let rules = table.as_array().unwrap().clone();
    assert!(rules.len() >= 60, "{} routes", rules.len());

    // Every documented operation has a rule, and every API rule is documented.
    let spec = request(app, "GET", "/openapi.json", None).await.1;
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), p.clone())))
        .collect();
    let ruled: BTreeSet<(String, String)> = rules
        .iter()
        .map(|r| (r["method"].as_str().unwrap().to_owned(), r["path"].as_str().unwrap().to_owned()))
        .collect();
    let undocumented: Vec<_> =
        ruled.iter().filter(|(_, p)| p.starts_with("/api/")).filter(|k| !documented.contains(*k)).collect();
    assert!(undocumented.is_empty(), "routes missing from /openapi.json: {undocumented:?}");
    let unruled: Vec<_> = documented.difference(&ruled).collect();
    assert!(unruled.is_empty(), "documented operations without an access rule: {unruled:?}");
    // …and names the credential its rule asks for, with the shared layers' problems.
    for rule in &rules {
        let (m, p) = (rule["method"].as_str().unwrap(), rule["path"].as_str().unwrap());
        let Some(op) = spec["paths"][p].get(m.to_lowercase()) else { continue };
        let scheme = op["security"][0].as_object().and_then(|s| s.keys().next().cloned());
        let expected = match rule["access"]["kind"].as_str().unwrap() {
            "channel" | "platform" => Some("channel_key"),
            "operator" => Some("session"),
            "sms_gateway" => {
                assert!(op["responses"].get("401").is_some(), "{m} {p}: 401 undocumented");
                Some("sms_gateway_token")
            }
            "monitoring" => {
                // The token, or nothing where none is configured.
                assert_eq!(op["security"][1], json!({}), "{m} {p}: the token is optional");
                assert!(op["responses"].get("401").is_some(), "{m} {p}: 401 undocumented");
                Some("monitoring_token")
            }
            _ => None,
        };
        assert_eq!(scheme.as_deref(), expected, "{m} {p}: documented credential");
        if matches!(expected, Some("channel_key" | "session")) {
            for status in ["401", "403", "503"] {
                assert!(op["responses"].get(status).is_some(), "{m} {p}: {status} undocumented");
            }
        }
    }

    // The table as reviewed: docs/access-matrix.md must equal the live table (HCP_BLESS=1
    // rewrites it), so a new endpoint or a changed rule shows up in review as a changed row.
    let rendered = render_matrix(&rules);
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/access-matrix.md");
    if std::env::var_os("HCP_BLESS").is_some() {
        std::fs::write(doc_path, &rendered).unwrap();
    }
    let reviewed = std::fs::read_to_string(doc_path).unwrap_or_default();
    assert!(
        reviewed == rendered,
        "docs/access-matrix.md differs from the routes the server enforces; review and rerun with HCP_BLESS=1:\n{rendered}"
    );

    let forged_session = format!("{}x", w.sessions["admin"]);
    let mut checked = 0usize;
    for rule in &rules {
        let (m, path) = (rule["method"].as_str().unwrap(), rule["path"].as_str().unwrap());
        let url = fill(path);
        let what = format!("{m} {path}");
        match rule["access"]["kind"].as_str().unwrap() {
            // Monitoring is public unless a metrics token is set (tests/spine.rs sets one).
            "public" | "monitoring" => {
                let (s, _) = request(app, m, &url, None).await;
                assert!(s != 401 && s != 403 && s < 500, "{what} is public but answered {s}");
                checked += 1;
            }
            "citizen" => {
                // A forged link is refused, with or without an operator's session.
                for bearer in [None, Some(w.sessions["admin"].as_str())] {
                    let (s, body) = request(app, m, &url, bearer).await;
                    assert_eq!(s, 404, "{what} with a forged link: {body}");
                    checked += 1;
                }
            }
            "platform" => {
                // Only an online platform's integration key: a hotline key (and so a device's) is 403.
                let (s, body) = request(app, m, &url, None).await;
                assert_eq!((s, body["type"].as_str()), (401, Some("/problems/credential-invalid")), "{what}");
                for (name, session) in &w.sessions {
                    let (s, _) = request(app, m, &url, Some(session)).await;
                    assert_eq!(s, 401, "{what}: an operator session ({name}) is not a platform key");
                }
                let (s, body) = request(app, m, &url, Some(&w.other_key)).await;
                assert_eq!((s, body["type"].as_str()), (403, Some("/problems/forbidden")), "{what}: hotline key");
                let (s, body) = request(app, m, &url, Some(&w.key)).await;
                assert!(s != 401 && s != 403 && s < 500, "{what} with a platform key answered {s}: {body}");
                checked += 3 + w.sessions.len();
            }
            "sms_gateway" => {
                // Only the gateway's shared token: no session or channel key passes.
                for bearer in [None, Some(forged_session.as_str()), Some(w.key.as_str())]
                    .into_iter()
                    .chain(w.sessions.values().map(|s| Some(s.as_str())))
                {
                    let (s, body) = request(app, m, &url, bearer).await;
                    assert_eq!((s, body["type"].as_str()), (401, Some("/problems/unauthenticated")), "{what}");
                    checked += 1;
                }
                let (s, body) = request(app, m, &url, Some(SMS_GATEWAY_TOKEN)).await;
                assert!(s != 401 && s != 403 && s < 500, "{what} with the gateway token answered {s}: {body}");
                checked += 1;
            }
            "channel" => {
                let (s, body) = request(app, m, &url, None).await;
                assert_eq!((s, body["type"].as_str()), (401, Some("/problems/credential-invalid")), "{what}");
                for (name, session) in &w.sessions {
                    let (s, _) = request(app, m, &url, Some(session)).await;
                    assert_eq!(s, 401, "{what}: an operator session ({name}) is not a channel key");
                }
                let (s, body) = request(app, m, &url, Some(&w.key)).await;
                assert!(s != 401 && s != 403 && s < 500, "{what} with a channel key answered {s}: {body}");
                checked += 2 + w.sessions.len();
            }
            "operator" => {
                let admitted: BTreeSet<&str> =
                    rule["access"]["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
                for bearer in [None, Some(forged_session.as_str()), Some(w.key.as_str())] {
                    let (s, body) = request(app, m, &url, bearer).await;
                    assert_eq!((s, body["type"].as_str()), (401, Some("/problems/unauthenticated")), "{what}");
                }
                for (name, session) in &w.sessions {
                    let (s, body) = request(app, m, &url, Some(session)).await;
                    if admitted.contains(role_of(name)) {
                        assert!(s != 401 && s != 403 && s < 500, "{what} admits {name} but answered {s}: {body}");
                    } else {
                        assert_eq!((s, body["type"].as_str()), (403, Some("/problems/forbidden")), "{what} as {name}");
                    }
                }
                checked += 3 + w.sessions.len();
            }
            other => panic!("{what}: unknown access kind {other}"),
        }
        // Every other method passes the same rule or reaches no handler: HEAD is answered by the
        // GET handler, so whoever asks gets what GET gives them (an anonymous HEAD of an operator
        // list once answered 200); OPTIONS is nobody's handler.
        let askers = [None, Some(forged_session.as_str()), Some(w.key.as_str())]
            .into_iter()
            .chain(w.sessions.values().map(|s| Some(s.as_str())));
        for bearer in askers {
            if m == "GET" {
                let get = request(app, "GET", &url, bearer).await.0;
                assert_eq!(request(app, "HEAD", &url, bearer).await.0, get, "HEAD {path} answers as GET does");
                checked += 1;
            }
            let (s, body) = request(app, "OPTIONS", &url, bearer).await;
            assert_eq!((s, body["type"].as_str()), (405, Some("/problems/method-not-allowed")), "OPTIONS {path}");
            checked += 1;
        }
    }

    // Own / other scope: every scoped route must have a case here.
    let scoped: BTreeSet<String> = rules
        .iter()
        .filter(|r| r["access"]["scoped"] == true)
        .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap()))
        .collect();
    let covered = scope_cases(&w).await;
    let missing: Vec<_> = scoped.difference(&covered).collect();
    assert!(missing.is_empty(), "scoped routes without an own/other case: {missing:?}");
    let stale: Vec<_> = covered.difference(&scoped).collect();
    assert!(stale.is_empty(), "own/other cases for routes that are not scoped: {stale:?}");

    identities_stay_hidden(&w).await;
    println!(
        "access matrix: {} routes, {checked} role checks, {} scoped routes x own/other",
        rules.len(),
        scoped.len()
    );
}

/// The access table as a Markdown matrix: one row per endpoint, one column per role.
fn render_matrix(rules: &[Value]) -> String {
    const ROLES: [&str; 6] = ["admin", "supervisor", "handler", "callback", "auditor", "staff"];
    let mut out = String::from(
        "# Access matrix\n\nGenerated from the route table `hcp serve` enforces (`GET /api/v1/access`); \
         `tests/access.rs` fails when this file and the server differ, and then checks every row \
         against the running server. ✓ = allowed; ✓ own = allowed within the caller's department \
         (handler) or region (supervisor); — = 403. Public routes need nothing, citizen routes \
         the signed link in their path, channel routes a device or integration key, platform routes \
         an integration key of an online platform (app, web, mini-program), SMS gateway routes the \
         gateway's shared token (`HCP_SMS_INBOUND_TOKEN`).\n\n\
         | Method | Route | Access | admin | supervisor | handler | callback | auditor | staff |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rules {
        let kind = r["access"]["kind"].as_str().unwrap();
        let cells: Vec<String> = match kind {
            "operator" => {
                let roles: Vec<&str> =
                    r["access"]["roles"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                let scoped = r["access"]["scoped"] == true;
                ROLES
                    .iter()
                    .map(|role| match (roles.contains(role), scoped && matches!(*role, "handler" | "supervisor")) {
                        (true, true) => "✓ own".to_owned(),
                        (true, false) => "✓".to_owned(),
                        (false, _) => "—".to_owned(),
                    })
                    .collect()
            }
            _ => ROLES.iter().map(|_| String::new()).collect(),
        };
        let access = match kind {
            "public" => "public",
            "monitoring" => "metrics token, if set",
            "citizen" => "citizen link",
            "channel" => "channel key",
            "platform" => "platform key",
            "sms_gateway" => "SMS gateway token",
            _ => "session",
        };
        out.push_str(&format!(
            "| {} | `{}` | {access} | {} |\n",
            r["method"].as_str().unwrap(),
            r["path"].as_str().unwrap(),
            cells.join(" | ")
        ));
    }
    out
}

/// Runs the own/other cases; returns the scoped routes they cover (`METHOD path`).
async fn scope_cases(w: &World) -> BTreeSet<String> {
    let app = &w.app;
    let s = &w.sessions;
    let mut covered = BTreeSet::new();
    // Both orders overdue: the sweeper escalates them (before any action changes their state).
    let ctx = app.store.deadline_context().await.unwrap();
    app.store.sweep_work_orders(&ctx, Utc::now() + chrono::Duration::days(60)).await.unwrap();
    let ids = |body: &Value| -> BTreeSet<String> {
        body["items"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
    };

    // Lists: each side sees exactly its own order; the unscoped roles see both.
    for (who, expected) in [
        ("handler", vec![&w.order_a]),
        ("handler_other", vec![&w.order_o]),
        ("supervisor", vec![&w.order_a]),
        ("supervisor_other", vec![&w.order_o]),
        ("auditor", vec![&w.order_a, &w.order_o]),
        ("callback", vec![&w.order_a, &w.order_o]),
    ] {
        let (st, body) = app.call(Method::GET, "/api/v1/work-orders", &s[who], None).await;
        assert_eq!(st, 200);
        assert_eq!(ids(&body), expected.into_iter().cloned().collect(), "{who}'s list");
    }
    covered.insert("GET /api/v1/work-orders".to_owned());

    // One order: in reach 200, out of reach 404 (its existence is not revealed).
    for (who, own, other) in [
        ("handler", &w.order_a, &w.order_o),
        ("handler_other", &w.order_o, &w.order_a),
        ("supervisor", &w.order_a, &w.order_o),
        ("supervisor_other", &w.order_o, &w.order_a),
    ] {
        assert_eq!(app.call(Method::GET, &format!("/api/v1/work-orders/{own}"), &s[who], None).await.0, 200, "{who}");
        assert_eq!(app.call(Method::GET, &format!("/api/v1/work-orders/{other}"), &s[who], None).await.0, 404, "{who}");
    }
    covered.insert("GET /api/v1/work-orders/{order_id}".to_owned());

    // The rater's identity: the callback role reaches every order; nobody else has the route.
    for order in [&w.order_a, &w.order_o] {
        let (st, body) =
            app.call(Method::GET, &format!("/api/v1/work-orders/{order}/rater"), &s["callback"], None).await;
        assert_eq!((st, body["phone"].as_str()), (200, Some(RATER_PHONE)));
    }
    covered.insert("GET /api/v1/work-orders/{order_id}/rater".to_owned());

    // Every action: the acting role of the other side gets 404; its own side is in reach (the
    // state machine may still refuse with 409, never 403/404).
    let actions = [
        ("claim", "handler"),
        ("contact", "handler"),
        ("verify", "handler"),
        ("rectify", "handler"),
        ("reply", "handler"),
        ("appeal", "handler"),
        ("appeal/uphold", "supervisor"),
        ("appeal/reject", "supervisor"),
        ("escalate", "supervisor"),
        ("callback-invitation", "handler"),
    ];
    let body = json!({"note": "核查", "founded": true, "cause": "conduct"});
    for (action, role) in actions {
        let other = format!("{role}_other");
        let (st, p) = app
            .call(
                Method::POST,
                &format!("/api/v1/work-orders/{}/{action}", w.order_a),
                &s[other.as_str()],
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, 404, "{action} by {other} on the other side's order: {p}");
        let (st, p) = app
            .call(Method::POST, &format!("/api/v1/work-orders/{}/{action}", w.order_a), &s[role], Some(body.clone()))
            .await;
        assert!(![401, 403, 404].contains(&st) && st < 500, "{action} by {role} on its own order answered {st}: {p}");
        covered.insert(format!("POST /api/v1/work-orders/{{order_id}}/{action}"));
    }
    // Accountability measures: the other region's supervisor gets 404, the own one reaches the
    // order (which, not founded, answers 409).
    let measure = json!({"kind": "education", "note": "教育"});
    let path = format!("/api/v1/work-orders/{}/accountability", w.order_a);
    let (st, p) = app.call(Method::POST, &path, &s["supervisor_other"], Some(measure.clone())).await;
    assert_eq!(st, 404, "accountability by supervisor_other: {p}");
    let (st, p) = app.call(Method::POST, &path, &s["supervisor"], Some(measure)).await;
    assert!(![401, 403, 404].contains(&st) && st < 500, "accountability by supervisor answered {st}: {p}");
    covered.insert("POST /api/v1/work-orders/{order_id}/accountability".to_owned());
    // The callback agent reaches every order (there is no other side for it).
    let (st, p) = app
        .call(
            Method::POST,
            &format!("/api/v1/work-orders/{}/callback", w.order_o),
            &s["callback"],
            Some(json!({"grade": 5})),
        )
        .await;
    assert!(![401, 403, 404].contains(&st) && st < 500, "callback on D-O's order answered {st}: {p}");
    covered.insert("POST /api/v1/work-orders/{order_id}/callback".to_owned());

    // Notifications: the overdue sweep (above) escalated both orders; each supervisor is told of
    // exactly the escalations in its region, the auditor of all.
    let expected = |region: Option<&'static str>| async move {
        sqlx::query_scalar::<_, uuid::Uuid>(
            "SELECT order_id FROM notifications WHERE order_id IS NOT NULL AND kind <> 'callback_sms'
               AND ($1::text IS NULL OR $1 = ANY(region_path))",
        )
        .bind(region)
        .fetch_all(app.store.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.to_string())
        .collect::<BTreeSet<_>>()
    };
    let notified = |who: &'static str| async move {
        let (st, body) = app.call(Method::GET, "/api/v1/notifications", &s[who], None).await;
        assert_eq!(st, 200);
        body.as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["order_id"].as_str().map(str::to_owned))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(expected(None).await, [w.order_a.clone(), w.order_o.clone()].into(), "both orders escalated");
    assert_eq!(notified("supervisor").await, expected(Some("449900")).await);
    assert_eq!(notified("supervisor").await, [w.order_a.clone()].into());
    assert_eq!(notified("supervisor_other").await, [w.order_o.clone()].into());
    assert_eq!(notified("auditor").await, expected(None).await);
    covered.insert("GET /api/v1/notifications".to_owned());

    // A single rating and the flagged list: a supervisor reads its region's only.
    for (who, own, other) in [("supervisor", &w.rating_a, &w.rating_o), ("supervisor_other", &w.rating_o, &w.rating_a)]
    {
        assert_eq!(app.call(Method::GET, &format!("/api/v1/ratings/{own}"), &s[who], None).await.0, 200, "{who}");
        assert_eq!(app.call(Method::GET, &format!("/api/v1/ratings/{other}"), &s[who], None).await.0, 404, "{who}");
    }
    for who in ["auditor", "callback"] {
        for id in [&w.rating_a, &w.rating_o] {
            assert_eq!(app.call(Method::GET, &format!("/api/v1/ratings/{id}"), &s[who], None).await.0, 200, "{who}");
        }
    }
    covered.insert("GET /api/v1/ratings/{rating_id}".to_owned());
    let flagged = |path: &'static str, who: &'static str| async move {
        let (st, body) = app.call(Method::GET, path, &s[who], None).await;
        assert_eq!(st, 200, "{body}");
        let records: BTreeSet<String> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["service_record_no"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(body["total"].as_u64(), Some(records.len() as u64));
        records
    };
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    for (path, a, o) in [("/api/v1/integrity/flagged", "FL-A", "FL-O"), ("/api/v1/attribution/flagged", "AF-A", "AF-O")]
    {
        assert_eq!(flagged(path, "supervisor").await, set(&[a]), "{path}");
        assert_eq!(flagged(path, "supervisor_other").await, set(&[o]), "{path}");
        assert_eq!(flagged(path, "auditor").await, set(&[a, o]), "{path}");
        assert_eq!(flagged(path, "admin").await, set(&[a, o]), "{path}");
        covered.insert(format!("GET {path}"));
    }

    // Statistics: a handler reads its department (and its units), a supervisor its region.
    let summary = |who: &'static str, q: &'static str| async move {
        app.call(Method::GET, &format!("/api/v1/stats/summary?{q}"), &s[who], None).await
    };
    for (who, q, expected) in [
        ("handler", "scope=department&id=D-A", 200),
        ("handler", "scope=service_item&id=I-A", 200),
        ("handler", "scope=window&id=W2", 200),
        ("handler", "scope=department&id=D-B", 403),
        ("handler", "scope=department&id=D-O", 403),
        ("handler", "scope=hall&id=H1", 403),
        ("handler", "scope=all", 403),
        ("handler", "scope=channel&id=web", 403),
        ("handler_other", "scope=department&id=D-O", 200),
        ("handler_other", "scope=department&id=D-A", 403),
        ("supervisor", "scope=region&id=449900", 200),
        ("supervisor", "scope=region&id=449901", 200),
        ("supervisor", "scope=hall&id=H1", 200),
        ("supervisor", "scope=department&id=D-A", 200),
        ("supervisor", "scope=department&id=D-O", 403),
        ("supervisor", "scope=region&id=440000", 403),
        ("supervisor", "scope=region&id=449800", 403),
        ("supervisor_other", "scope=department&id=D-O", 200),
        ("supervisor_other", "scope=department&id=D-A", 403),
        ("auditor", "scope=all", 200),
        ("auditor", "scope=department&id=D-O", 200),
    ] {
        let (st, body) = summary(who, q).await;
        assert_eq!(st, expected, "{who} {q}: {body}");
        if st == 200 && q.contains("D-A") {
            // FL-A, AF-A and AC-A.
            assert_eq!(body["total"], 3, "{who} {q}");
        }
    }
    covered.insert("GET /api/v1/stats/summary".to_owned());
    let ranked = |who: &'static str| async move {
        let (st, body) = app.call(Method::GET, "/api/v1/stats/ranking?scope=department", &s[who], None).await;
        assert_eq!(st, 200);
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(ranked("handler").await, set(&["D-A"]));
    assert_eq!(ranked("supervisor").await, set(&["D-A"]));
    assert_eq!(ranked("supervisor_other").await, set(&["D-O"]));
    assert_eq!(ranked("auditor").await, set(&["D-A", "D-O"]));
    covered.insert("GET /api/v1/stats/ranking".to_owned());

    // The board (JSON and its event stream) and the monthly report: each caller's own side only.
    let board_departments = |board: &Value| -> BTreeSet<String> {
        let departments = board["rankings"].as_array().unwrap().iter().find(|r| r["scope"] == "department").unwrap();
        departments["entries"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
    };
    let month = hcp_domain::time::Month::of(chrono::Utc::now()).to_string();
    for (who, scope_id, own) in [
        ("handler", "D-A", "D-A"),
        ("handler_other", "D-O", "D-O"),
        ("supervisor", "449900", "D-A"),
        ("supervisor_other", "449800", "D-O"),
    ] {
        let (st, board) = app.call(Method::GET, "/api/v1/board", &s[who], None).await;
        assert_eq!(st, 200, "{who}: {board}");
        assert_eq!(board["scope"]["id"], scope_id, "{who}");
        assert_eq!(board_departments(&board), set(&[own]), "{who}'s board");
        let streamed = first_board_event(app, &s[who]).await;
        assert_eq!(streamed["scope"]["id"], scope_id, "{who}'s stream");
        assert_eq!(board_departments(&streamed), set(&[own]), "{who}'s stream");
        let (st, csv) = text(app, &format!("/api/v1/reports/monthly?month={month}&format=csv"), &s[who]).await;
        assert_eq!(st, 200, "{who}: {csv}");
        let rows: BTreeSet<String> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap().to_owned()).collect();
        assert_eq!(rows, set(&[own]), "{who}'s report");
    }
    let (_, board) = app.call(Method::GET, "/api/v1/board", &s["auditor"], None).await;
    assert_eq!(board_departments(&board), set(&["D-A", "D-O"]), "the auditor's board");
    covered.insert("GET /api/v1/board".to_owned());
    covered.insert("GET /api/v1/board/stream".to_owned());
    covered.insert("GET /api/v1/reports/monthly".to_owned());

    // Staff appeals, one on each side's order: each reviewer lists and reviews its own side's
    // only (another side's is 404), a staff member none.
    let mut appeal_of = BTreeMap::new();
    for (order, rating) in [(&w.order_a, &w.rating_a), (&w.order_o, &w.rating_o)] {
        let id: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO staff_appeals (appeal_id, rating_id, order_id, staff_id, filed_by, filed_at, reason)
             VALUES (gen_random_uuid(), $1::uuid, $2::uuid, 'S1', 'staff', now(), '非本人') RETURNING appeal_id",
        )
        .bind(rating)
        .bind(order)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        appeal_of.insert(order.clone(), id.to_string());
    }
    for (who, own, other) in [
        ("handler", &w.order_a, &w.order_o),
        ("handler_other", &w.order_o, &w.order_a),
        ("supervisor", &w.order_a, &w.order_o),
        ("supervisor_other", &w.order_o, &w.order_a),
    ] {
        let (st, list) = app.call(Method::GET, "/api/v1/staff-appeals", &s[who], None).await;
        let ids: Vec<&str> = list.as_array().unwrap().iter().map(|a| a["appeal_id"].as_str().unwrap()).collect();
        assert_eq!((st, ids), (200, vec![appeal_of[own].as_str()]), "{who}");
        for verb in ["uphold", "reject"] {
            let path = format!("/api/v1/staff-appeals/{}/{verb}", appeal_of[other]);
            let (st, p) = app.call(Method::POST, &path, &s[who], Some(json!({"note": "复核"}))).await;
            assert_eq!(st, 404, "{who} {verb}s the other side's appeal: {p}");
        }
    }
    let (st, list) = app.call(Method::GET, "/api/v1/staff-appeals", &s["auditor"], None).await;
    assert_eq!((st, list.as_array().map(Vec::len)), (200, Some(2)));
    let path = format!("/api/v1/staff-appeals/{}/reject", appeal_of[&w.order_a]);
    let (st, p) = app.call(Method::POST, &path, &s["handler"], Some(json!({"note": "复核不成立"}))).await;
    assert_eq!((st, &p["status"]), (200, &json!("rejected")), "{p}");
    covered.insert("GET /api/v1/staff-appeals".to_owned());
    covered.insert("POST /api/v1/staff-appeals/{appeal_id}/uphold".to_owned());
    covered.insert("POST /api/v1/staff-appeals/{appeal_id}/reject".to_owned());
    covered
}

/// GET `path` as `session`: the status and the body as text.
async fn text(app: &TestApp, path: &str, session: &str) -> (u16, String) {
    let r = app.client.get(format!("{}{path}", app.url)).bearer_auth(session).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The first `snapshot` event of the board stream opened as `session`.
async fn first_board_event(app: &TestApp, session: &str) -> Value {
    let mut r = app.client.get(format!("{}/api/v1/board/stream", app.url)).bearer_auth(session).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut buffer = String::new();
    while !buffer.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await.unwrap().unwrap().unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let data = buffer.lines().find_map(|l| l.strip_prefix("data:")).expect("a data line");
    serde_json::from_str(data.trim_start()).unwrap()
}

/// No role but the callback agent ever receives the rater's phone or ID number in clear.
async fn identities_stay_hidden(w: &World) {
    let app = &w.app;
    for (name, session) in &w.sessions {
        for path in [
            format!("/api/v1/work-orders/{}", w.order_a),
            "/api/v1/work-orders".to_owned(),
            format!("/api/v1/ratings/{}", w.rating_a),
        ] {
            let (st, body) = app.call(Method::GET, &path, session, None).await;
            let text = body.to_string();
            assert!(
                !text.contains(RATER_PHONE) && !text.contains(RATER_ID),
                "{name} read a rater's identity at {path} ({st})"
            );
        }
    }
    // Citizens reach only their own invitation: a genuine link opens its record; the same
    // signature on another invitation's id is refused as forged.
    let (st, _) = app
        .call(
            Method::POST,
            "/api/v1/service-records/events",
            &w.key,
            Some(json!({"service_record_no": "INV-1", "event": "accepted", "hall_id": "H1", "window_id": "W2"})),
        )
        .await;
    assert_eq!(st, 200);
    let mut links = Vec::new();
    for stage in ["acceptance", "acceptance"] {
        let (st, inv) = app
            .call(
                Method::POST,
                "/api/v1/invitations",
                &w.key,
                Some(json!({"service_record_no": "INV-1", "stage": stage, "channel": "qr_code"})),
            )
            .await;
        assert_eq!(st, 201, "{inv}");
        let url = inv["url"].as_str().unwrap();
        links.push(url[url.find("/r/").unwrap() + 3..].to_owned());
    }
    // An SMS invitation: its link sits in the outbox for the SMS gateway, never in what an
    // operator can list.
    let (st, inv) = app
        .call(
            Method::POST,
            "/api/v1/invitations",
            &w.key,
            Some(json!({"service_record_no": "INV-1", "stage": "pickup", "channel": "sms", "phone": "13700001111"})),
        )
        .await;
    assert_eq!(st, 201, "{inv}");
    let sms_link = inv["url"].as_str().unwrap().to_owned();
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE strpos(body, $1) > 0")
        .bind(&sms_link[sms_link.find("/r/").unwrap()..])
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(outbox, 1, "the SMS is queued with its link");
    for (name, session) in &w.sessions {
        let (st, body) = app.call(Method::GET, "/api/v1/notifications", session, None).await;
        let text = body.to_string();
        assert!(!text.contains("/r/") && !text.contains("/callback/"), "{name} listed a citizen's link ({st})");
    }
    let (st, view) = app.call(Method::GET, &format!("/api/v1/r/{}", links[0]), "", None).await;
    assert_eq!((st, view["service_record_no"].as_str()), (200, Some("INV-1")), "{view}");
    let (id_b, _) = links[1].split_once('.').unwrap();
    let (_, sig_a) = links[0].split_once('.').unwrap();
    let (st, body) = app.call(Method::GET, &format!("/api/v1/r/{id_b}.{sig_a}"), "", None).await;
    assert_eq!((st, body["type"].as_str()), (404, Some("/problems/invitation-invalid")), "{body}");
}
