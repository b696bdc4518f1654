//! The OpenAPI document served at `/openapi.json`.

use hcp_http::access::{Access, AccessTable};
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hcp 政务服务好差评 API",
        description = "Ratings in (ingest), statistics out (board), the directory ratings are attributed against (directory), bad-review work orders (workorders; log in at /api/v1/auth/login). Errors are RFC 9457 `application/problem+json`; see `/problems`.",
        license(name = "Apache-2.0")
    ),
    paths(
        hcp_ingest::submit_rating,
        hcp_ingest::submit_batch,
        hcp_ingest::invitations::record_event,
        hcp_ingest::invitations::issue,
        hcp_ingest::my_business::open_stages,
        hcp_ingest::invitations::qr_svg,
        hcp_ingest::invitations::qr_png,
        hcp_ingest::invitations::view,
        hcp_ingest::invitations::submit,
        hcp_ingest::invitations::correct,
        hcp_ingest::invitations::corrections,
        hcp_directory::credentials::issue,
        hcp_directory::credentials::list,
        hcp_directory::credentials::revoke,
        hcp_directory::credentials::set_rate_limit,
        hcp_directory::credentials::staff_phone,
        hcp_board::summary,
        hcp_board::ranking,
        hcp_board::board,
        hcp_board::board_stream,
        hcp_board::public::satisfaction,
        hcp_board::export::ratings,
        hcp_board::report::monthly,
        hcp_directory::list,
        hcp_directory::get_one,
        hcp_directory::put_one,
        hcp_directory::delete_one,
        hcp_directory::import_file,
        hcp_directory::sign_in,
        hcp_directory::sign_out,
        hcp_directory::on_duty,
        hcp_directory::flagged,
        hcp_directory::reattribute,
        hcp_directory::calendar::years,
        hcp_directory::calendar::put_year,
        hcp_directory::calendar::add_working_days,
        hcp_http::sessions::login,
        hcp_http::sessions::logout,
        hcp_http::sessions::me,
        hcp_workorder::list,
        hcp_workorder::detail,
        hcp_workorder::docs::claim,
        hcp_workorder::docs::contact,
        hcp_workorder::docs::verify,
        hcp_workorder::docs::rectify,
        hcp_workorder::docs::reply,
        hcp_workorder::docs::callback,
        hcp_workorder::docs::appeal,
        hcp_workorder::docs::uphold_appeal,
        hcp_workorder::docs::reject_appeal,
        hcp_workorder::docs::escalate,
        hcp_workorder::accountability::record,
        hcp_workorder::staff::own_reviews,
        hcp_workorder::staff::file,
        hcp_workorder::staff::list,
        hcp_workorder::staff::uphold,
        hcp_workorder::staff::reject,
        hcp_workorder::rater,
        hcp_workorder::sweep,
        hcp_workorder::callback::invite,
        hcp_workorder::callback::status,
        hcp_workorder::callback::answer,
        hcp_workorder::policies,
        hcp_workorder::put_policy,
        hcp_workorder::delete_policy,
        hcp_workorder::notifications,
        hcp_board::ratings::rating_record,
        hcp_directory::integrity::integrity_flagged,
        hcp_webhook::create,
        hcp_alert::list_alerts,
        hcp_alert::list_rules,
        hcp_alert::put_rule,
        hcp_alert::delete_rule,
        hcp_webhook::list,
        hcp_webhook::disable,
        hcp_webhook::deliveries,
        hcp_sms::messages,
        hcp_sms::opt_outs,
        hcp_sms::add_opt_out,
        hcp_sms::remove_opt_out,
        hcp_sms::inbound,
        hcp_sms::receipts,
        crate::server::healthz,
        crate::server::access_table,
        crate::server::readyz,
        crate::server::metrics,
    ),
    components(schemas(
        hcp_http::Problem,
        hcp_domain::Channel,
        hcp_domain::Stage,
        hcp_domain::directory::Region,
        hcp_domain::directory::Department,
        hcp_domain::directory::Hall,
        hcp_domain::directory::Window,
        hcp_domain::directory::Device,
        hcp_domain::directory::Staff,
        hcp_domain::directory::ServiceItem,
        hcp_domain::directory::RosterEntry,
        hcp_domain::directory::Tag,
        hcp_domain::directory::Dimension,
        hcp_domain::directory::EntityKind,
        hcp_board::export::ExportFormat,
        hcp_domain::Attribution,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "ingest", description = "评价接收 Rating intake"),
        (name = "stats", description = "统计查询 Statistics"),
        (name = "directory", description = "目录与归属 Directory, roster and attribution"),
        (name = "calendar", description = "工作日历 Working-day calendar"),
        (name = "sessions", description = "登录会话 Operator sessions"),
        (name = "workorders", description = "差评工单 Bad-review work orders, callbacks"),
        (name = "sms", description = "短信 SMS to citizens: status, opt-outs, gateway callbacks"),
        (name = "ops", description = "运维 Operations"),
    )
)]
struct ApiDoc;

/// The credentials the document names: channel keys and operator sessions (both Bearer).
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build())
        };
        components.add_security_scheme("channel_key", bearer("Device or integration key `hcp_<id>_<secret>`"));
        components.add_security_scheme("session", bearer("Operator session from POST /api/v1/auth/login"));
        components.add_security_scheme("monitoring_token", bearer("HCP_METRICS_TOKEN, where the operator set one"));
        components.add_security_scheme(
            "sms_gateway_token",
            bearer("HCP_SMS_INBOUND_TOKEN (or the `token` query parameter, for vendors that only call a URL)"),
        );
    }
}

/// The document as written beside the handlers.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as this process serves it, completed from its access table: operations it does
/// not serve are dropped, each operation names its credential, and each lists the problems the
/// shared layers answer whatever its handler does (the access layer: 401/403; the JSON body
/// extractor and the body limit: 400/413/415; query parameters: 400; path parameters: 404; the rate limits: 429; the time
/// limit and unavailable dependencies: 503).
pub fn document_for(table: &AccessTable) -> serde_json::Value {
    let mut doc = serde_json::to_value(served(table)).expect("the document serializes");
    constrain(&mut doc);
    doc
}

/// The derived document with the operations this process serves, completed (see [`document_for`]).
fn served(table: &AccessTable) -> Document {
    let mut doc = document();
    doc.paths.paths.retain(|path, item| {
        for (method, slot) in operations(item) {
            let rule = table.find(method, path);
            match (slot.as_mut(), rule) {
                (Some(op), Some(rule)) => complete(op, rule.access),
                (Some(_), None) => *slot = None,
                (None, _) => {}
            }
        }
        operations(item).iter().any(|(_, op)| op.is_some())
    });
    doc
}

/// The pattern of an id (`service_record_no`, `window_id`, …): no whitespace, no control
/// character (ECMA-262 and Python `re` read it alike), as `hcp_domain::rating` checks.
const ID_PATTERN: &str = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$";

/// Text without control characters (Unicode Cc, as `char::is_control`): a platform's user id.
const TEXT_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$";

/// A phone number as `hcp_domain::pii::normalize_phone` takes it: a mobile (1 + 10 digits) or a
/// landline (0 + area code, optional `-`, 7–8 digits), whitespace allowed anywhere.
const PHONE_PATTERN: &str = "^\\s*(1(\\s*[0-9]){10}|0(\\s*[0-9]){9,11}|0(\\s*[0-9]){2,3}\\s*-(\\s*[0-9]){7,8})\\s*$";

/// The constraints the server enforces on request bodies that the derived schemas do not state
/// (enums kept as strings so every wrong value gets a field-level problem; lengths and ranges
/// checked by hand): each merged into `components.schemas.<schema>.properties.<property>`.
/// Whatever a schema states here the server refuses when broken, and the fuzzing in test.sh
/// checks both directions.
fn body_constraints() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use serde_json::json;
    let channels: Vec<&str> = hcp_domain::Channel::ALL.iter().map(|c| c.as_str()).collect();
    let stages: Vec<&str> = hcp_domain::Stage::ALL.iter().map(|s| s.as_str()).collect();
    let id = json!({"type": ["string", "null"], "minLength": 1, "maxLength": hcp_domain::rating::MAX_ID_CHARS, "pattern": ID_PATTERN});
    let grade = json!({"type": "integer", "minimum": 1, "maximum": 5});
    // Dimension code → grade; which codes exist and which channel offers them is the directory's
    // (422 dimension-not-offered), not the schema's.
    let dimensions = json!({"type": ["object", "null"], "maxProperties": hcp_domain::rating::MAX_DIMENSIONS,
        "propertyNames": {"pattern": format!("^[A-Za-z0-9_.-]{{1,{}}}$", hcp_domain::rating::MAX_TAG_CHARS)},
        "additionalProperties": grade.clone()});
    let mut out = vec![
        ("RatingInput", "channel", json!({"type": "string", "enum": channels})),
        ("RatingInput", "stage", json!({"type": "string", "enum": stages})),
        ("RatingInput", "grade", grade.clone()),
        ("RatingInput", "assess_number", json!({"type": ["integer", "null"], "minimum": 1, "maximum": 2})),
        (
            "RatingInput",
            "tags",
            json!({"type": ["array", "null"], "maxItems": hcp_domain::rating::MAX_TAGS,
            "items": {"type": "string", "pattern": format!("^[A-Za-z0-9_.-]{{1,{}}}$", hcp_domain::rating::MAX_TAG_CHARS)}}),
        ),
        ("RatingInput", "dimensions", dimensions.clone()),
        ("CitizenRating", "dimensions", dimensions),
        ("RaterInput", "user_prop", json!({"type": ["integer", "null"], "minimum": 1, "maximum": 2})),
        ("BatchRequest", "ratings", json!({"minItems": 1, "maxItems": hcp_ingest::MAX_BATCH})),
        ("CitizenRating", "grade", grade.clone()),
        ("CallbackAnswer", "grade", grade),
        ("NewInvitation", "channel", json!({"type": "string", "enum": ["qr_code", "sms"]})),
        (
            "NewInvitation",
            "service_record_no",
            json!({"type": "string", "minLength": 1,
            "maxLength": hcp_domain::rating::MAX_ID_CHARS, "pattern": ID_PATTERN}),
        ),
        ("NewInvitation", "phone", json!({"type": ["string", "null"], "pattern": PHONE_PATTERN})),
        ("RecordEvent", "service_item_code", id.clone()),
        ("RecordEvent", "department_id", id.clone()),
        ("RecordEvent", "hall_id", id.clone()),
        ("RecordEvent", "window_id", id.clone()),
        ("RecordEvent", "staff_id", id.clone()),
        ("RecordEvent", "applicant_phone", json!({"type": ["string", "null"], "pattern": PHONE_PATTERN})),
        (
            "RecordEvent",
            "platform_user_id",
            json!({"type": ["string", "null"], "minLength": 1,
            "maxLength": hcp_domain::my_business::MAX_USER_ID_CHARS, "pattern": TEXT_PATTERN}),
        ),
        ("NewInvitation", "stage", json!({"type": "string", "enum": ["acceptance", "pickup", "online"]})),
        ("RecordEvent", "event", json!({"type": "string", "enum": ["accepted", "picked_up"]})),
        (
            "RecordEvent",
            "service_record_no",
            json!({"type": "string", "minLength": 1,
            "maxLength": hcp_domain::rating::MAX_ID_CHARS, "pattern": ID_PATTERN}),
        ),
        ("LoginRequest", "username", json!({"type": "string", "minLength": 1})),
        ("LoginRequest", "password", json!({"type": "string"})),
        ("Correction", "field", json!({"type": "string", "enum": hcp_store::ATTRIBUTION_FIELDS})),
        ("StaffPhone", "phone", json!({"type": "string", "pattern": PHONE_PATTERN})),
        (
            "RuleInput",
            "scope",
            json!({"type": "string",
            "enum": hcp_domain::alert::ALERT_SCOPES.iter().map(|s| s.as_str()).collect::<Vec<_>>()}),
        ),
        ("RuleInput", "min_ratings", json!({"type": ["integer", "null"], "minimum": 1, "maximum": 100_000})),
        ("RuleInput", "window_minutes", json!({"type": "integer", "minimum": 1, "maximum": 10_080})),
        ("PolicyBody", "contact_days", json!({"type": "integer", "minimum": 1, "maximum": 60})),
        ("PolicyBody", "rectify_days", json!({"type": "integer", "minimum": 1, "maximum": 120})),
        ("PolicyBody", "near_due_days", json!({"type": ["integer", "null"], "minimum": 0, "maximum": 30})),
        ("PolicyBody", "default_rating_days", json!({"type": ["integer", "null"], "minimum": 1, "maximum": 30})),
    ];
    for field in
        ["service_record_no", "service_item_code", "department_id", "hall_id", "window_id", "staff_id", "device_id"]
    {
        let mut c = id.clone();
        if field == "service_record_no" {
            c["type"] = json!("string");
        }
        out.push(("RatingInput", field, c));
    }
    out
}

/// The query and path parameters' constraints the server enforces, by route and name.
fn parameter_constraints() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use hcp_domain::integrity::IntegrityFlag;
    use serde_json::json;
    let names = |v: Vec<&'static str>| json!({"type": "string", "enum": v});
    let attribution: Vec<&str> = hcp_domain::AttributionFlag::ALL.iter().map(|f| f.as_str()).collect();
    let integrity: Vec<&str> = [
        IntegrityFlag::DeviceTooFast,
        IntegrityFlag::DeviceBurst,
        IntegrityFlag::StaffBurst,
        IntegrityFlag::RaterIsRatedStaff,
        IntegrityFlag::RaterIsStaff,
    ]
    .iter()
    .map(|f| f.as_str())
    .collect();
    let scopes: Vec<&str> = hcp_domain::Scope::ALL.iter().map(|s| s.as_str()).collect();
    let kinds: Vec<&str> = hcp_domain::directory::EntityKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut levels: Vec<&str> = hcp_domain::report::ReportLevel::ALL.iter().map(|l| l.as_str()).collect();
    levels.push(hcp_board::report::PROCESS_REVIEW_SHEET);
    vec![
        ("/api/v1/attribution/flagged", "flag", names(attribution)),
        ("/api/v1/integrity/flagged", "flag", names(integrity)),
        ("/api/v1/stats/summary", "scope", names(scopes.clone())),
        ("/api/v1/directory/import", "format", names(vec!["json", "csv"])),
        ("/api/v1/directory/import", "kind", names(kinds)),
        // `all` is one unit: nothing to rank.
        ("/api/v1/stats/ranking", "scope", names(scopes.iter().copied().filter(|s| *s != "all").collect())),
        ("/api/v1/stats/ranking", "order", names(vec!["desc", "asc"])),
        ("/api/v1/stats/ranking", "min_ratings", json!({"type": "integer", "minimum": 1})),
        ("/api/v1/work-orders", "state", names(hcp_workorder::STATES.to_vec())),
        ("/api/v1/work-orders", "due_status", names(vec!["on_track", "near_due", "overdue"])),
        ("/api/v1/work-orders", "sort", names(vec!["deadline", "opened"])),
        (
            "/api/v1/my-business/open-stages",
            "user_id",
            json!({"type": "string", "minLength": 1,
            "maxLength": hcp_domain::my_business::MAX_USER_ID_CHARS, "pattern": TEXT_PATTERN}),
        ),
        ("/api/v1/reports/monthly", "month", json!({"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"})),
        ("/api/v1/reports/monthly", "level", names(levels)),
        ("/api/v1/calendar/add-working-days", "n", json!({"type": "integer", "minimum": 0, "maximum": 3650})),
        ("/api/v1/calendar/years/{year}", "year", json!({"type": "integer", "minimum": 1949, "maximum": 9999})),
    ]
}

/// Properties that must be present (beyond what the derive marks).
const REQUIRED: [(&str, &[&str]); 4] = [
    ("LoginRequest", &["username", "password"]),
    ("CitizenRating", &["grade"]),
    ("CallbackAnswer", &["grade"]),
    ("Correction", &["field", "reason"]),
];

/// Merges [`body_constraints`] and [`REQUIRED`] into `doc`, and states the `Idempotency-Key`
/// header's form (1–200 visible ASCII characters, as `hcp_ingest::gate::idempotency_key` checks).
fn constrain(doc: &mut serde_json::Value) {
    let by_route = parameter_constraints();
    let mut applied = vec![false; by_route.len()];
    for (path, item) in doc["paths"].as_object_mut().expect("paths") {
        for op in item.as_object_mut().expect("a path item").values_mut() {
            let params = op.get_mut("parameters").and_then(|p| p.as_array_mut());
            for param in params.into_iter().flatten() {
                if param["name"] == "Idempotency-Key" {
                    param["schema"] = serde_json::json!({"type": "string", "pattern": "^[!-~]{1,200}$"});
                }
                for (i, (route, name, constraint)) in by_route.iter().enumerate() {
                    if route == path && param["name"] == *name {
                        param["schema"] = constraint.clone();
                        applied[i] = true;
                    }
                }
            }
        }
    }
    // A constraint for a route this process does not serve is fine; one whose route is served
    // without that parameter is a renamed parameter.
    for ((route, name, _), hit) in by_route.iter().zip(applied) {
        assert!(hit || doc["paths"].get(*route).is_none(), "{route} has no parameter {name}");
    }
    let schemas = &mut doc["components"]["schemas"];
    for (schema, property, constraint) in body_constraints() {
        let target = &mut schemas[schema]["properties"][property];
        assert!(target.is_object(), "{schema}.{property} is not in the document");
        for (k, v) in constraint.as_object().expect("an object") {
            target[k] = v.clone();
        }
    }
    for (schema, names) in REQUIRED {
        let required = schemas[schema]["required"].as_array().cloned().unwrap_or_default();
        let mut required: Vec<serde_json::Value> = required;
        for n in names {
            if !required.iter().any(|r| r == n) {
                required.push(serde_json::json!(n));
            }
        }
        schemas[schema]["required"] = serde_json::Value::Array(required);
    }
}

/// The operations of a path item, by upper-case method.
fn operations(item: &mut PathItem) -> [(&'static str, &mut Option<Operation>); 4] {
    [("GET", &mut item.get), ("POST", &mut item.post), ("PUT", &mut item.put), ("DELETE", &mut item.delete)]
}

/// Adds `op`'s credential and the shared layers' problems (keeping what the handler documents).
fn complete(op: &mut Operation, access: Access) {
    let mut add = |status: &str, description: &str| {
        let problem = ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build();
        op.responses.responses.entry(status.to_owned()).or_insert(RefOr::T(problem));
    };
    if op.request_body.is_some() {
        add("400", "请求体格式错误 Malformed request body");
        add("413", "请求体过大 Request body too large");
        add("415", "请求体须为 JSON Unsupported media type");
    }
    let params = op.parameters.clone().unwrap_or_default();
    if params.iter().any(|p| p.parameter_in == ParameterIn::Query) {
        add("400", "查询参数格式错误 Malformed query parameter");
    }
    if params.iter().any(|p| p.parameter_in == ParameterIn::Path) {
        add("404", "路径所指对象不存在 Nothing at this path");
    }
    match access {
        Access::Public => {}
        Access::Monitoring => add("401", "缺少监控令牌(配置了 HCP_METRICS_TOKEN 时)Monitoring token required"),
        Access::Citizen => add("429", "请求过于频繁 Rate limited"),
        Access::Channel | Access::Platform => {
            add("401", "缺少或无效的接入密钥 Missing or invalid channel key");
            add("403", "密钥无权访问 Key not allowed here");
            add("429", "请求过于频繁 Rate limited");
        }
        Access::SmsGateway => add("401", "缺少或错误的短信网关令牌 Missing or wrong SMS gateway token"),
        Access::Operator { .. } => {
            add("401", "未登录 Not logged in");
            add("403", "无权访问 Role not allowed");
        }
    }
    add("503", "服务暂不可用或超时 Unavailable or timed out");
    let scheme = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
    op.security = match access {
        Access::Channel | Access::Platform => Some(vec![scheme("channel_key")]),
        Access::Operator { .. } => Some(vec![scheme("session")]),
        Access::SmsGateway => Some(vec![scheme("sms_gateway_token")]),
        // The token is needed only where the operator configured one.
        Access::Monitoring => Some(vec![scheme("monitoring_token"), SecurityRequirement::default()]),
        Access::Public | Access::Citizen => None,
    };
}
