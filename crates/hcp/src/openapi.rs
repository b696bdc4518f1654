//! The OpenAPI document served at `/openapi.json`.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hcp 政务服务好差评 API",
        description = "Ratings in (ingest), statistics out (board). Errors are RFC 9457 `application/problem+json`; see `/problems`.",
        license(name = "Apache-2.0")
    ),
    paths(
        hcp_ingest::submit_rating,
        hcp_board::summary,
        crate::server::healthz,
        crate::server::readyz,
        crate::server::metrics,
    ),
    components(schemas(hcp_http::Problem, hcp_domain::Channel, hcp_domain::Stage)),
    tags(
        (name = "ingest", description = "评价接收 Rating intake"),
        (name = "stats", description = "统计查询 Statistics"),
        (name = "ops", description = "运维 Operations"),
    )
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
