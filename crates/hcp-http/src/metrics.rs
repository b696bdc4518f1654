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
