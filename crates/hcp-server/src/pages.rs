//! Small server-rendered pages: the index, the browsable API reference and the problem types.

use axum::response::{Html, IntoResponse, Response};
use hcp_http::{ApiError, ApiPath, PROBLEM_TYPES};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t}</title>\
         <style>{css}</style></head><body><main>{body}</main></body></html>",
        t = escape(title),
        css = include_str!("../assets/page.css"),
    ))
}

/// `/`: where to look.
pub async fn index() -> Html<String> {
    page(
        "hcp 政务服务好差评",
        "<h1>hcp 政务服务“好差评”</h1><p>评价实时汇入、实时统计。</p><ul>\
         <li><a href=\"/docs\">接口文档 API reference</a></li>\
         <li><a href=\"/api/v1/stats/summary\">今日满意度汇总 Today's summary (JSON)</a></li>\
         <li><a href=\"/api/v1/stats/ranking?scope=window\">今日窗口排名 Window ranking (JSON)</a> · <a href=\"/api/v1/stats/ranking?scope=department\">部门排名</a></li>\
         <li><a href=\"/api/v1/directory/departments\">部门目录 Directory</a> · <a href=\"/api/v1/attribution/flagged\">待归属评价 Flagged ratings</a></li>\
         <li><a href=\"/problems\">错误类型 Problem types</a></li>\
         <li><a href=\"/metrics\">Prometheus 指标</a> · <a href=\"/healthz\">healthz</a> · <a href=\"/readyz\">readyz</a></li></ul>",
    )
}

/// `/docs`: the OpenAPI document rendered as a browsable reference (no external assets).
pub async fn docs() -> Html<String> {
    page("hcp 接口文档 API", include_str!("../assets/docs.html"))
}

/// `/problems`: every problem type.
pub async fn problems() -> Html<String> {
    let rows: String = PROBLEM_TYPES
        .iter()
        .map(|p| {
            format!(
                "<tr><td><a href=\"/problems/{s}\"><code>/problems/{s}</code></a></td><td>{st}</td><td>{zh}<br><small>{en}</small></td></tr>",
                s = p.slug,
                st = p.status,
                zh = escape(p.title_zh),
                en = escape(p.title)
            )
        })
        .collect();
    page(
        "错误类型 Problem types",
        &format!("<h1>错误类型 Problem types</h1><p>所有错误均以 RFC 9457 <code>application/problem+json</code> 返回。</p><table><tr><th>type</th><th>HTTP</th><th>说明</th></tr>{rows}</table>"),
    )
}

/// `/problems/{slug}`: one problem type.
pub async fn problem(ApiPath(slug): ApiPath<String>) -> Response {
    match PROBLEM_TYPES.iter().find(|p| p.slug == slug) {
        Some(p) => page(
            p.title_zh,
            &format!(
                "<h1>{zh}</h1><p><small>{en} · HTTP {st} · <code>/problems/{s}</code></small></p><p>{help}</p><p><a href=\"/problems\">全部错误类型</a></p>",
                zh = escape(p.title_zh),
                en = escape(p.title),
                st = p.status,
                s = p.slug,
                help = escape(p.help_zh)
            ),
        )
        .into_response(),
        None => ApiError::NotFound.into_response(),
    }
}
