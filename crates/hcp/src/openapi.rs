//! The OpenAPI document served at `/openapi.json`.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hcp 政务服务好差评 API",
        description = "Ratings in (ingest), statistics out (board), the directory ratings are attributed against (directory). Errors are RFC 9457 `application/problem+json`; see `/problems`.",
        license(name = "Apache-2.0")
    ),
    paths(
        hcp_ingest::submit_rating,
        hcp_board::summary,
        hcp_board::ranking,
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
        crate::server::healthz,
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
        hcp_domain::Attribution,
    )),
    tags(
        (name = "ingest", description = "评价接收 Rating intake"),
        (name = "stats", description = "统计查询 Statistics"),
        (name = "directory", description = "目录与归属 Directory, roster and attribution"),
        (name = "calendar", description = "工作日历 Working-day calendar"),
        (name = "ops", description = "运维 Operations"),
    )
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
