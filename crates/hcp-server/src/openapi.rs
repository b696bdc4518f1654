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
        hcp_ingest::invitations::qr_svg,
        hcp_ingest::invitations::qr_png,
        hcp_ingest::invitations::view,
        hcp_ingest::invitations::submit,
        hcp_ingest::invitations::correct,
        hcp_ingest::invitations::corrections,
        hcp_directory::credentials::issue,
        hcp_directory::credentials::list,
        hcp_directory::credentials::revoke,
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
pub fn document_for(table: &AccessTable) -> Document {
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
        // The token is needed only where the operator configured one.
        Access::Monitoring => Some(vec![scheme("monitoring_token"), SecurityRequirement::default()]),
        Access::Public | Access::Citizen => None,
    };
}
