//! The composed server: stage routers, operational endpoints, the aggregator task, and a
//! graceful shutdown that finishes in-flight requests and the aggregator's current batch.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Extension, Json};
use hcp_aggregator::AggregatorConfig;
use hcp_board::BoardState;
use hcp_bus::RatingProducer;
use hcp_directory::DirectoryState;
use hcp_domain::Role;
use hcp_domain::SatisfactionPolicy;
use hcp_http::{time_limit, track_requests, Access, AccessTable, ApiError, RouteRule, Routes, SessionKey};
use hcp_ingest::invitations::{InvitationConfig, OutboxSms};
use hcp_ingest::limits::Limits;
use hcp_ingest::{AuthMode, Gate, IngestState};
use hcp_store::Store;
use hcp_workorder::{BackgroundConfig, WorkOrderState};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::{openapi, pages, Components, Config};

/// A server started with [`spawn`].
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancel to stop it gracefully.
    pub shutdown: CancellationToken,
    join: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops gracefully and waits for the end.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.join.await.context("server task panicked")?
    }
}

/// Starts [`run`] on `listener` in a task.
pub async fn spawn(config: Config, components: Components, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let join = tokio::spawn(async move { run(config, components, listener, token).await });
    Ok(RunningServer { addr, shutdown, join })
}

/// State of the operational endpoints.
#[derive(Clone)]
pub(crate) struct OpsState {
    store: Option<Store>,
    producer: Option<RatingProducer>,
}

/// Serves `components` on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    components: Components,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let needs_db =
        components.ingest || components.aggregator || components.board || components.directory || components.workorders;
    let store = if needs_db {
        Some(
            Store::connect(&config.database_url, config.db_pool)
                .await
                .context("connecting to PostgreSQL (DATABASE_URL)")?,
        )
    } else {
        None
    };
    let producer = RatingProducer::new(&config.kafka(), &config.topics()).context("creating Kafka producer")?;
    let session_key = config.session_key.clone().unwrap_or_else(|| {
        tracing::warn!("HCP_SESSION_KEY is not set: a random session key is used (sessions end with this process)");
        SessionKey::random()
    });
    let policy =
        if config.three_is_neutral { SatisfactionPolicy::ThreeIsNeutral } else { SatisfactionPolicy::ThreeIsGood };

    let mut app = Routes::new()
        .get("/healthz", Access::Public, healthz)
        .get("/readyz", Access::Public, readyz)
        .get("/metrics", Access::Public, metrics)
        .get("/openapi.json", Access::Public, |Extension(table): Extension<std::sync::Arc<AccessTable>>| async move {
            Json(openapi::document_for(&table))
        })
        .get("/docs", Access::Public, pages::docs)
        .get("/problems", Access::Public, pages::problems)
        .get("/problems/{slug}", Access::Public, pages::problem)
        .get("/", Access::Public, pages::index)
        .get("/api/v1/access", Access::operators(&[Role::Admin, Role::Auditor]), access_table)
        .with_state(OpsState { store: store.clone(), producer: Some(producer.clone()) });
    let default_ratings_token = shutdown.child_token();
    let mut default_ratings = None;
    if components.ingest {
        if config.pii.is_none() {
            tracing::warn!("HCP_PII_KEY is not set: ratings carrying a rater identity will be refused (503)");
        }
        let gate = store.clone().map(|store| {
            Gate::new(
                store,
                if config.ingest_auth_required { AuthMode::Required } else { AuthMode::Optional },
                config.produce_timeout * 2 + Duration::from_secs(5),
                Duration::from_secs(u64::from(config.follow_up_days) * 86_400),
            )
        });
        let invitations = gate.as_ref().map(|g| InvitationConfig {
            keys: config.invitation_key.clone().unwrap_or_else(|| {
                tracing::warn!(
                    "HCP_INVITATION_KEY is not set: a random key signs invitation links (they die with this process)"
                );
                hcp_ingest::invitations::InvitationKeys::random()
            }),
            public_url: config.public_url.clone(),
            ttl: Duration::from_secs(u64::from(config.invitation_days) * 86_400),
            sms_on_events: config.sms_on_events,
            sms: std::sync::Arc::new(OutboxSms(g.store.clone())),
        });
        let limits = Limits::new(config.rate_limit_per_key, config.rate_limit_per_ip);
        let ingest = IngestState { producer: producer.clone(), pii: config.pii.clone(), gate, invitations, limits };
        if ingest.gate.is_some() {
            default_ratings = Some(tokio::spawn(run_default_ratings(
                ingest.clone(),
                config.default_rating_interval,
                default_ratings_token.clone(),
            )));
        }
        app = app.merge(hcp_ingest::router(ingest));
    }
    let alerts_token = shutdown.child_token();
    let mut alerts = None;
    let mut board_listener = None;
    if let (true, Some(store)) = (components.board, &store) {
        // Open boards' streams end with `shutdown` itself, so a graceful stop does not wait on them.
        let live = hcp_board::live::Live::new(shutdown.clone());
        board_listener =
            Some(tokio::spawn(hcp_board::live::run_listener(store.clone(), live.clone(), alerts_token.clone())));
        app = app.merge(hcp_board::router(BoardState {
            store: store.clone(),
            policy,
            staff_min_ratings: config.staff_min_ratings,
            live,
        }));
    }
    if let (true, Some(store)) = (components.board, &store) {
        app = app.merge(hcp_alert::router(hcp_alert::AlertState { store: store.clone(), policy }));
        alerts = Some(tokio::spawn(hcp_alert::run_evaluator(
            store.clone(),
            policy,
            config.alert_interval,
            alerts_token.clone(),
        )));
    }
    if let (true, Some(store)) = (components.directory, &store) {
        app = app.merge(hcp_directory::router(DirectoryState {
            store: store.clone(),
            producer: producer.clone(),
            topics: config.topics(),
            pii: config.pii.clone(),
        }));
    }
    let background_token = shutdown.child_token();
    let mut background = None;
    let mut webhook_sender = None;
    if let (true, Some(store)) = (components.workorders, &store) {
        app = app.merge(hcp_workorder::router(WorkOrderState {
            store: store.clone(),
            session_key: session_key.clone(),
            pii: config.pii.clone(),
            public_url: config.public_url.clone(),
        }));
        let bg = BackgroundConfig {
            topic: config.topics().workorder_event,
            relay_interval: config.relay_interval,
            sweep_interval: config.sweep_interval,
        };
        app = app.merge(hcp_webhook::router(hcp_webhook::WebhookState { store: store.clone() }));
        let sender = hcp_webhook::SenderConfig { retry_base: config.webhook_retry_base, ..Default::default() };
        webhook_sender = Some(tokio::spawn(hcp_webhook::run_sender(store.clone(), sender, background_token.clone())));
        background = Some(tokio::spawn(hcp_workorder::run_background(
            store.clone(),
            producer.clone(),
            bg,
            background_token.clone(),
        )));
    }
    let (app, table) = app.enforce(session_key);
    let app = app
        .layer(Extension(table))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            config.request_timeout.max(config.produce_timeout + Duration::from_secs(5)),
            time_limit,
        ))
        // A bug that panics in a handler still answers: 500 problem+json, logged, the process lives.
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked");
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        .layer(middleware::from_fn(track_requests))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        );

    let aggregator_token = shutdown.child_token();
    let aggregator = match (components.aggregator, &store) {
        (true, Some(store)) => {
            let mut cfg = AggregatorConfig::new(config.kafka(), config.topics());
            cfg.group_id = config.aggregator_group.clone();
            cfg.integrity.exclude_flagged = config.exclude_flagged_presses;
            Some(tokio::spawn(hcp_aggregator::run(cfg, store.clone(), aggregator_token.clone())))
        }
        _ => None,
    };

    tracing::info!(addr = %listener.local_addr()?, ?components, "hcp serving");
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    aggregator_token.cancel();
    background_token.cancel();
    default_ratings_token.cancel();
    if let Some(job) = default_ratings {
        let _ = job.await;
    }
    alerts_token.cancel();
    for job in [alerts, board_listener].into_iter().flatten() {
        let _ = job.await;
    }
    if let Some(sender) = webhook_sender {
        if let Err(e) = sender.await {
            tracing::error!(error = %e, "webhook sender task failed");
        }
    }
    if let Some(bg) = background {
        match bg.await {
            Err(e) if e.is_panic() => tracing::error!(error = %e, "work-order background task panicked"),
            _ => {}
        }
    }
    if let Some(agg) = aggregator {
        match agg.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "aggregator ended with an error"),
            Err(e) => tracing::error!(error = %e, "aggregator task failed"),
        }
    }
    let flush = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    if let Ok(Err(e)) = flush {
        tracing::warn!(error = %e, "producer flush at shutdown incomplete");
    }
    tracing::info!("hcp stopped");
    served.context("http server")
}

/// Produces due default ratings every `interval` until `shutdown`.
async fn run_default_ratings(state: IngestState, interval: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = hcp_ingest::defaults::run_once(&state, chrono::Utc::now(), 1000).await {
                    tracing::warn!(error = %e, "default-rating run failed; retried at the next tick");
                }
                state.limits.shrink();
            }
        }
    }
}

/// Every endpoint and who may call it: the table the access layer enforces.
#[utoipa::path(
    get,
    path = "/api/v1/access",
    tag = "ops",
    responses(
        (status = 200, description = "Every route with its method and access rule", body = Vec<Object>),
        (status = 401, description = "Not logged in", body = hcp_http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin or auditor", body = hcp_http::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn access_table(Extension(table): Extension<std::sync::Arc<AccessTable>>) -> Json<Vec<RouteRule>> {
    Json(table.rules().to_vec())
}

#[derive(Serialize)]
pub(crate) struct Health {
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive")))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    checks: std::collections::BTreeMap<&'static str, String>,
}

/// Readiness: the broker and the database answer within 2 s.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, description = "Ready"), (status = 503, description = "A dependency is down")))]
pub(crate) async fn readyz(State(ops): State<OpsState>) -> Response {
    let timeout = Duration::from_secs(2);
    let mut checks = std::collections::BTreeMap::new();
    let mut ready = true;
    if let Some(store) = &ops.store {
        let r = match tokio::time::timeout(timeout, store.ping()).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "error: timed out".to_string(),
        };
        ready &= r == "ok";
        checks.insert("database", r);
    }
    if let Some(producer) = ops.producer.clone() {
        let r = match tokio::task::spawn_blocking(move || producer.check_broker(timeout)).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(e) => format!("error: {e}"),
        };
        ready &= r == "ok";
        checks.insert("broker", r);
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { status: if ready { "ready" } else { "not_ready" }, checks })).into_response()
}

/// Prometheus metrics, all prefixed `hcp_`.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn metrics() -> Response {
    match prometheus::TextEncoder::new().encode_to_string(&prometheus::gather()) {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}
