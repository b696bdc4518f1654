//! Request counting and timing, labelled by route template (bounded cardinality).

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

/// `hcp_http_requests_total{method,route,status}`.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_http_requests_total", "HTTP requests answered", &["method", "route", "status"])
        .expect("metric registers once")
});

/// `hcp_http_request_duration_seconds{method,route}`.
pub static HTTP_REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "hcp_http_request_duration_seconds",
        "HTTP request latency",
        &["method", "route"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric registers once")
});

/// Middleware recording [`HTTP_REQUESTS`] and [`HTTP_REQUEST_DURATION`].
pub async fn track_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    HTTP_REQUESTS.with_label_values(&[&method, &route, resp.status().as_str()]).inc();
    HTTP_REQUEST_DURATION.with_label_values(&[&method, &route]).observe(start.elapsed().as_secs_f64());
    resp
}

/// `hcp_http_request_timeouts_total{route}`: requests cut off by [`time_limit`].
pub static HTTP_TIMEOUTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_http_request_timeouts_total", "HTTP requests cut off at the time limit", &["route"])
        .expect("metric registers once")
});

/// Middleware answering `503 /problems/request-timeout` (with `Retry-After`) when a request has
/// not finished within `limit`; the handler's future is dropped. The server sets the limit above
/// the produce timeout, so a rating is never cut off while its acknowledgement can still come.
pub async fn time_limit(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            HTTP_TIMEOUTS.with_label_values(&[&route]).inc();
            tracing::warn!(%route, limit_ms = limit.as_millis() as u64, "request cut off at the time limit");
            axum::response::IntoResponse::into_response(crate::ApiError::RequestTimeout)
        }
    }
}

/// `hcp_logins_total{result}`: console/API logins, `ok` or `refused`.
pub static LOGINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("hcp_logins_total", "Operator logins by result", &["result"])
        .expect("metric registers once")
});

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_slow_request_is_cut_off_with_a_problem_and_a_fast_one_is_not() {
        let app = Router::new()
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
            .route("/fast", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(Duration::from_millis(50), time_limit));
        let slow = app.clone().oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(slow.status(), 503);
        assert_eq!(slow.headers()["content-type"], "application/problem+json");
        assert_eq!(slow.headers()["retry-after"], "5");
        let body = http_body_util::BodyExt::collect(slow.into_body()).await.unwrap().to_bytes();
        let p: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(p["type"], "/problems/request-timeout");
        let fast = app.oneshot(Request::get("/fast").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(fast.status(), 200);
    }
}
