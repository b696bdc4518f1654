//! SMS that reaches citizens: invitations queued by ingest are delivered by the `sms` sender
//! through each vendor gateway to a local server that checks the request as the vendor documents
//! it (the signatures recomputed here, independently of hcp); quiet hours hold messages until
//! morning on an injected clock; failures are retried with backoff; a 退订/TD reply puts the
//! number on the opt-out list for good; the per-number daily cap covers every kind of SMS once;
//! and no phone number is ever stored in clear.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hcp_domain::sms::{Backoff, QuietHours};
use hcp_sms::gateway::{self, Gateway, GatewayKind, GatewaySettings};
use hcp_tests::TestApp;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const CITY: &str = include_str!("fixtures/attribution-city.json");
const PHONE: &str = "13912345678";
const TOKEN: &str = "sms-gateway-callback-token-for-tests";
const KEY_ID: &str = "LTAI-test-key-id";
const SECRET: &str = "hcp-test-sms-secret";

/// One request the vendor server got: (path, query, headers, body).
#[derive(Debug, Clone)]
struct Got {
    path: String,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
    body: String,
}

#[derive(Clone, Default)]
struct Vendor {
    got: Arc<Mutex<Vec<Got>>>,
    /// How many requests answer 503 before the server accepts.
    fail_first: Arc<Mutex<usize>>,
}

impl Vendor {
    fn requests(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
    fn record(&self, path: &str, query: Option<String>, headers: HeaderMap, body: String) -> bool {
        let query = query
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (decode(k), decode(v))
            })
            .collect();
        self.got.lock().unwrap().push(Got { path: path.into(), query, headers, body });
        let mut fail = self.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return false;
        }
        true
    }
}

/// Percent-decoding (the server side of Aliyun's query).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A local server speaking the three gateways' APIs.
async fn vendor() -> (String, Vendor) {
    let v = Vendor::default();
    let app = axum::Router::new()
        .route(
            "/aliyun/",
            get(|State(v): State<Vendor>, RawQuery(q): RawQuery, h: HeaderMap| async move {
                if !v.record("/aliyun/", q, h, String::new()) {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                Json(json!({"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "F655A8D5"}))
                    .into_response()
            }),
        )
        .route(
            "/tencent/",
            post(|State(v): State<Vendor>, h: HeaderMap, body: String| async move {
                if !v.record("/tencent/", None, h, body) {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                Json(json!({"Response": {"SendStatusSet": [{"SerialNo": "5000:1045710669157053657849499619",
                    "PhoneNumber": "+8613912345678", "Fee": 1, "SessionContext": "", "Code": "Ok",
                    "Message": "send success", "IsoCode": "CN"}], "RequestId": "a0aabda6"}}))
                .into_response()
            }),
        )
        .route(
            "/http",
            post(|State(v): State<Vendor>, h: HeaderMap, body: String| async move {
                if !v.record("/http", None, h, body) {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                Json(json!({"message_id": "gw-1"})).into_response()
            }),
        )
        .with_state(v.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, v)
}

fn settings(kind: GatewayKind, endpoint: String) -> GatewaySettings {
    GatewaySettings {
        kind,
        endpoint: Some(endpoint),
        key_id: KEY_ID.into(),
        secret: SECRET.into(),
        sign_name: "深圳政务".into(),
        app_id: "1400006666".into(),
        templates: ("SMS_INV".into(), "SMS_CB".into()),
        timeout: Duration::from_secs(5),
    }
}

fn sender(app: &TestApp, per_number: u32) -> hcp_sms::SenderConfig {
    hcp_sms::SenderConfig {
        poll_interval: Duration::from_secs(3600),
        lease: Duration::from_secs(60),
        backoff: Backoff::default(),
        quiet_hours: QuietHours::parse(QuietHours::DEFAULT).unwrap(),
        per_number_per_day: per_number,
        pii: app.config.pii.clone(),
    }
}

/// Today's (Beijing) `hh:mm`, a day from now so every queued message is due.
fn tomorrow_at(h: u32, m: u32) -> DateTime<Utc> {
    let bj = hcp_domain::time::beijing();
    let day = Utc::now().with_timezone(&bj).date_naive() + chrono::Duration::days(1);
    bj.from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap()).unwrap().to_utc()
}

/// A deployment with the test city, an inbound token and a platform key.
async fn deployment() -> (TestApp, String) {
    let app = TestApp::start_with(|c| {
        c.ingest_auth_required = true;
        c.sms_inbound_token = Some(hcp_http::MonitoringToken::parse(TOKEN).unwrap());
    })
    .await;
    app.import_directory(&serde_json::from_str(CITY).unwrap()).await;
    let (s, k) = app
        .call(
            Method::POST,
            "/api/v1/credentials",
            &app.admin,
            Some(json!({"kind": "integration", "channel": "web", "name": "办件系统"})),
        )
        .await;
    assert_eq!(s, 201);
    (app, k["token"].as_str().unwrap().to_owned())
}

/// The platform reports an acceptance with the applicant's phone: ingest queues the invitation.
async fn accepted(app: &TestApp, key: &str, no: &str, phone: &str) {
    let ev = json!({"service_record_no": no, "event": "accepted", "department_id": "D-A", "hall_id": "H1",
        "applicant_phone": phone});
    let (s, r) = app.post_json("/api/v1/service-records/events", key, &ev).await;
    assert_eq!((s, r["sms_invitation"].is_string()), (200, true), "{r}");
}

async fn messages(app: &TestApp) -> Vec<Value> {
    let (s, m) = app.call(Method::GET, "/api/v1/sms/messages", &app.admin, None).await;
    assert_eq!(s, 200, "{m}");
    m.as_array().unwrap().clone()
}

/// Aliyun's RPC signature, written here from the vendor's documentation.
fn aliyun_signature(query: &BTreeMap<String, String>, secret: &str) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    let canonical: Vec<String> =
        query.iter().filter(|(k, _)| *k != "Signature").map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    let sts = format!("GET&{}&{}", enc("/"), enc(&canonical.join("&")));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(sts.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Tencent's TC3-HMAC-SHA256, written here from the vendor's documentation.
fn tencent_authorization(headers: &HeaderMap, body: &str) -> String {
    let h = |n: &str| headers[n].to_str().unwrap().to_owned();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let ts: i64 = h("x-tc-timestamp").parse().unwrap();
    let date = DateTime::from_timestamp(ts, 0).unwrap().format("%Y-%m-%d").to_string();
    let canonical = format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\nx-tc-action:{}\n\ncontent-type;host;x-tc-action\n{}",
        h("content-type"),
        h("host"),
        h("x-tc-action").to_lowercase(),
        hex(&Sha256::digest(body.as_bytes()))
    );
    let sts = format!("TC3-HMAC-SHA256\n{ts}\n{date}/sms/tc3_request\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let mac = |k: &[u8], m: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(k).unwrap();
        mac.update(m.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let k = mac(&mac(&mac(format!("TC3{SECRET}").as_bytes(), &date), "sms"), "tc3_request");
    format!(
        "TC3-HMAC-SHA256 Credential={KEY_ID}/{date}/sms/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature={}",
        hex(&mac(&k, &sts))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_reach_citizens_through_each_gateway_signed_as_the_vendor_documents() {
    let (app, key) = deployment().await;
    let (url, v) = vendor().await;
    let config = sender(&app, 3);
    let noon = tomorrow_at(12, 0);
    let phones = ["13912345678", "13912345679", "13912345670"];
    let gateways: [(GatewayKind, &str); 3] =
        [(GatewayKind::Aliyun, "/aliyun/"), (GatewayKind::Tencent, "/tencent/"), (GatewayKind::Http, "/http")];
    for (i, (kind, path)) in gateways.iter().enumerate() {
        accepted(&app, &key, &format!("SMS-{i}"), phones[i]).await;
        let gw: Box<dyn Gateway> = gateway::build(settings(*kind, format!("{url}{path}")));
        assert_eq!(hcp_sms::send_due(&app.store, gw.as_ref(), &config, noon).await.unwrap(), 1);
    }
    let got = v.requests();
    assert_eq!(got.iter().map(|g| g.path.as_str()).collect::<Vec<_>>(), ["/aliyun/", "/tencent/", "/http"]);
    let ids: Vec<i64> = messages(&app).await.iter().rev().map(|m| m["id"].as_i64().unwrap()).collect();

    // Aliyun SendSms: every documented parameter, signed as documented.
    let a = &got[0].query;
    let expect = [
        ("AccessKeyId", KEY_ID),
        ("Action", "SendSms"),
        ("Format", "JSON"),
        ("PhoneNumbers", phones[0]),
        ("RegionId", "cn-hangzhou"),
        ("SignName", "深圳政务"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("TemplateCode", "SMS_INV"),
        ("Version", "2017-05-25"),
    ];
    for (k, want) in expect {
        assert_eq!(a.get(k).map(String::as_str), Some(want), "Aliyun {k}");
    }
    assert_eq!(a["OutId"], ids[0].to_string());
    assert_eq!(a["Timestamp"], noon.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let params: Value = serde_json::from_str(&a["TemplateParam"]).unwrap();
    assert_eq!(params["service"], "办件 SMS-0 受理");
    assert!(params["link"].as_str().unwrap().contains("/r/"), "{params}");
    assert_eq!(a["Signature"], aliyun_signature(a, SECRET), "Aliyun signature");
    assert_eq!(a.len(), 15, "no parameter beyond the documented ones: {a:?}");

    // Tencent SendSms: headers, body and the TC3 authorization.
    let t = &got[1];
    let h = |n: &str| t.headers[n].to_str().unwrap().to_owned();
    assert_eq!(
        (h("x-tc-action"), h("x-tc-version"), h("x-tc-region")),
        ("SendSms".into(), "2021-01-11".into(), "ap-guangzhou".into())
    );
    assert_eq!(h("x-tc-timestamp"), noon.timestamp().to_string());
    assert_eq!(h("content-type"), "application/json; charset=utf-8");
    assert_eq!(h("authorization"), tencent_authorization(&t.headers, &t.body), "Tencent signature");
    let body: Value = serde_json::from_str(&t.body).unwrap();
    assert_eq!(body["PhoneNumberSet"], json!([format!("+86{}", phones[1])]));
    assert_eq!(
        (body["SmsSdkAppId"].as_str(), body["SignName"].as_str(), body["TemplateId"].as_str()),
        (Some("1400006666"), Some("深圳政务"), Some("SMS_INV"))
    );
    assert_eq!(body["TemplateParamSet"][0], "办件 SMS-1 受理");
    assert_eq!(body["SessionContext"], ids[1].to_string());

    // The generic gateway: bearer secret, the rendered text with the 签名 and the link.
    let g = &got[2];
    assert_eq!(g.headers["authorization"], format!("Bearer {SECRET}").as_str());
    let body: Value = serde_json::from_str(&g.body).unwrap();
    assert_eq!((body["to"].as_str(), body["template"].as_str()), (Some(phones[2]), Some("invitation")));
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("【深圳政务】您办理的办件 SMS-2 受理已完成,欢迎评价:http") && text.contains("/r/"),
        "{text}"
    );

    // Status per message, never the phone; the outbox marks them sent.
    let list = messages(&app).await;
    let states: Vec<(&str, &str, i64)> = list
        .iter()
        .rev()
        .map(|m| (m["gateway"].as_str().unwrap(), m["state"].as_str().unwrap(), m["attempts"].as_i64().unwrap()))
        .collect();
    assert_eq!(states, [("aliyun", "sent", 1), ("tencent", "sent", 1), ("http", "sent", 1)]);
    assert!(phones.iter().all(|p| !Value::Array(list.clone()).to_string().contains(p)));
    assert!(app.store.pending_notifications(100, None).await.unwrap().iter().all(|n| n.kind != "rating_sms"));

    // Delivery receipts: the gateway must present the token; Aliyun's SmsReport, Tencent's format.
    let receipt = json!([{"phone_number": phones[0], "send_time": "2026-01-01 12:00:00", "report_time": "2026-01-01 12:00:05",
        "success": true, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": "900619746936498440^0",
        "out_id": ids[0].to_string()}]);
    let (s, p) = app.call(Method::POST, "/api/v1/sms/receipts", "wrong-token-wrong-token", Some(receipt.clone())).await;
    assert_eq!((s, p["type"].as_str()), (401, Some("/problems/unauthenticated")));
    let pool = app.store.pool().clone();
    let (s, r) = app.call(Method::POST, "/api/v1/sms/receipts", TOKEN, Some(receipt)).await;
    assert_eq!((s, r["code"].as_i64(), r["applied"].as_i64()), (200, Some(0), Some(1)), "{r}");
    let r = app
        .client
        .post(format!("{}/api/v1/sms/receipts?token={TOKEN}", app.url))
        .json(&json!({"message_id": "unknown", "delivered": false, "code": "UNDELIV"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the token as a query parameter");
    let (s, p) = app.call(Method::POST, "/api/v1/sms/receipts", TOKEN, Some(json!([{"biz_id": "x"}]))).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("[0].delivered")), "{p}");
    let list = messages(&app).await;
    let first = list.iter().find(|m| m["id"] == ids[0]).unwrap();
    assert_eq!((first["state"].as_str(), first["delivered_at"].is_string()), (Some("delivered"), true));

    // Nothing stored holds a phone number in clear.
    for table in ["notifications", "sms_messages", "sms_sends"] {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} t WHERE row_to_json(t)::text LIKE '%1391234567%'"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} holds a phone number");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_messages_until_morning_and_failures_are_retried_with_backoff() {
    let (app, key) = deployment().await;
    let (url, v) = vendor().await;
    let gw = gateway::build(settings(GatewayKind::Http, format!("{url}/http")));
    let config = sender(&app, 3);
    accepted(&app, &key, "Q-1", PHONE).await;

    // 23:00 Beijing: held until 08:00 the next morning, nothing sent.
    let night = tomorrow_at(23, 0);
    let morning = night + chrono::Duration::hours(9);
    assert_eq!(hcp_sms::send_due(&app.store, gw.as_ref(), &config, night).await.unwrap(), 1);
    let m = &messages(&app).await[0];
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_i64(), m["last_error"].as_str()),
        (Some("queued"), Some(0), Some("quiet_hours"))
    );
    assert_eq!(m["next_attempt_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), morning);
    assert_eq!(
        hcp_sms::send_due(&app.store, gw.as_ref(), &config, morning - chrono::Duration::minutes(1)).await.unwrap(),
        0
    );
    assert!(v.requests().is_empty(), "no SMS in quiet hours");

    // 08:00: the gateway answers 503, retried a minute later (the first step of the backoff).
    *v.fail_first.lock().unwrap() = 1;
    assert_eq!(hcp_sms::send_due(&app.store, gw.as_ref(), &config, morning).await.unwrap(), 1);
    let m = &messages(&app).await[0];
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_i64(), m["last_error"].as_str()),
        (Some("queued"), Some(1), Some("http_503"))
    );
    let retry = morning + chrono::Duration::minutes(1);
    assert_eq!(m["next_attempt_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), retry);
    assert_eq!(
        hcp_sms::send_due(&app.store, gw.as_ref(), &config, retry - chrono::Duration::seconds(1)).await.unwrap(),
        0
    );
    assert_eq!(hcp_sms::send_due(&app.store, gw.as_ref(), &config, retry).await.unwrap(), 1);
    let m = &messages(&app).await[0];
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_i64(), m["gateway_message_id"].as_str()),
        (Some("sent"), Some(2), Some("gw-1"))
    );
    assert_eq!(v.requests().len(), 2);

    // A permanent refusal (4xx) is failed at once.
    let gw404 = gateway::build(settings(GatewayKind::Http, format!("{url}/nowhere")));
    accepted(&app, &key, "Q-2", "13912340000").await;
    assert_eq!(hcp_sms::send_due(&app.store, gw404.as_ref(), &config, retry).await.unwrap(), 1);
    let (s, failed) = app.call(Method::GET, "/api/v1/sms/messages?state=failed", &app.admin, None).await;
    assert_eq!(s, 200);
    assert_eq!((failed[0]["attempts"].as_i64(), failed[0]["last_error"].as_str()), (Some(1), Some("http_404")));
    let (s, p) = app.call(Method::GET, "/api/v1/sms/messages?state=lost", &app.admin, None).await;
    assert_eq!((s, p["type"].as_str()), (400, Some("/problems/invalid-query")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_that_answers_td_is_never_messaged_again_and_the_daily_cap_covers_every_kind_once() {
    let (app, key) = deployment().await;
    let (url, v) = vendor().await;
    let gw = gateway::build(settings(GatewayKind::Http, format!("{url}/http")));
    let config = sender(&app, 2);
    let noon = tomorrow_at(12, 0);
    let pool = app.store.pool().clone();

    // The citizen answers TD (Aliyun's SmsUp push, with the country code): opted out, digest only.
    let reply = json!([{"phone_number": format!("+86{PHONE}"), "send_time": "2026-01-01 12:00:00", "content": "TD",
        "sign_name": "深圳政务", "dest_code": "1234", "sequence_id": 1}]);
    assert_eq!(app.call(Method::POST, "/api/v1/sms/inbound", "not-the-token-at-all", Some(reply.clone())).await.0, 401);
    let (s, r) = app.call(Method::POST, "/api/v1/sms/inbound", TOKEN, Some(reply)).await;
    assert_eq!((s, r["applied"].as_i64()), (200, Some(1)), "{r}");
    // Tencent's reply format; an ordinary reply changes nothing.
    let (s, r) = app
        .call(
            Method::POST,
            "/api/v1/sms/inbound",
            TOKEN,
            Some(json!({"mobile": "13912349999", "nationcode": "86", "text": "谢谢", "time": 1})),
        )
        .await;
    assert_eq!((s, r["applied"].as_i64()), (200, Some(0)));
    let (s, p) =
        app.call(Method::POST, "/api/v1/sms/inbound", TOKEN, Some(json!([{"mobile": "12", "text": "TD"}]))).await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("[0].phone")), "{p}");
    let (_, list) = app.call(Method::GET, "/api/v1/sms/opt-outs", &app.admin, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["source"], "reply");
    assert!(!list.to_string().contains(PHONE));
    let digest = list[0]["digest"].as_str().unwrap().to_owned();

    // Its invitation is never sent.
    accepted(&app, &key, "T-1", PHONE).await;
    assert_eq!(hcp_sms::send_due(&app.store, gw.as_ref(), &config, noon).await.unwrap(), 1);
    let m = &messages(&app).await[0];
    assert_eq!(
        (m["state"].as_str(), m["last_error"].as_str(), m["attempts"].as_i64()),
        (Some("failed"), Some("opted_out"), Some(0))
    );
    assert!(v.requests().is_empty());

    // The admin API: bad input is a problem, adding twice says so, removing takes the digest.
    let (s, p) = app.call(Method::POST, "/api/v1/sms/opt-outs", &app.admin, Some(json!({"phone": "abc"}))).await;
    assert_eq!(
        (s, p["type"].as_str(), p["errors"][0]["field"].as_str()),
        (422, Some("/problems/validation-failed"), Some("phone"))
    );
    let (s, r) = app.call(Method::POST, "/api/v1/sms/opt-outs", &app.admin, Some(json!({"phone": PHONE}))).await;
    assert_eq!((s, r["existed"].as_bool(), r["digest"].as_str()), (200, Some(true), Some(digest.as_str())));
    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/sms/opt-outs/{digest}"), &app.admin, None).await;
    assert_eq!(s, 204);
    assert_eq!(app.call(Method::DELETE, &format!("/api/v1/sms/opt-outs/{digest}"), &app.admin, None).await.0, 404);

    // The cap (2 a day here): two invitations admitted by ingest are counted once, when queued …
    let other = "13800001111";
    accepted(&app, &key, "C-1", other).await;
    accepted(&app, &key, "C-2", other).await;
    assert_eq!(hcp_sms::send_due(&app.store, gw.as_ref(), &config, noon).await.unwrap(), 2);
    let counted = || {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sms_sends").fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(counted().await, 3, "T-1's, C-1's and C-2's admissions; sending them added nothing");
    // The clock here is tomorrow's: the admissions are moved to that morning, as if made then.
    sqlx::query("UPDATE sms_sends SET sent_at = $1")
        .bind(noon - chrono::Duration::hours(2))
        .execute(&pool)
        .await
        .unwrap();
    // … so a callback SMS to the same number that day is held until the next morning, then sent
    // and counted on that day. (Queued as the work-order callback queues it: `record:` names the
    // same sealed phone as `rater:` would.)
    sqlx::query(
        "WITH n AS (INSERT INTO notifications (kind, recipient, subject, body)
                    VALUES ('callback_sms', 'record:C-1', '差评回访邀请', '…') RETURNING id)
         INSERT INTO sms_messages (notification_id, recipient, template, params)
         SELECT id, 'record:C-1', 'callback', '{\"service\": \"办件 C-1\", \"link\": \"http://x/callback/t\"}' FROM n",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(hcp_sms::send_due(&app.store, gw.as_ref(), &config, noon).await.unwrap(), 1);
    let m = &messages(&app).await[0];
    assert_eq!((m["state"].as_str(), m["last_error"].as_str()), (Some("queued"), Some("daily_cap")));
    let next_morning = tomorrow_at(8, 0) + chrono::Duration::days(1);
    assert_eq!(m["next_attempt_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), next_morning);
    assert_eq!(hcp_sms::send_due(&app.store, gw.as_ref(), &config, next_morning).await.unwrap(), 1);
    let m = &messages(&app).await[0];
    assert_eq!((m["state"].as_str(), m["template"].as_str()), (Some("sent"), Some("callback")));
    assert_eq!(counted().await, 4);
    let last: Value = serde_json::from_str(&v.requests().last().unwrap().body).unwrap();
    assert!(last["text"].as_str().unwrap().contains("http://x/callback/t"));
}
