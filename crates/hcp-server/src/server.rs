//! The composed server: the selected components' routes behind the one access layer, the
//! operational endpoints, the components' background tasks as one named set, and a graceful
//! shutdown that finishes in-flight requests, then every task (the aggregator's batches).

use std::collections::HashMap;
use std::future::IntoFuture;
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
use hcp_http::{
    time_limit, track_requests, Access, AccessTable, ApiError, Component, GuardConfig, MonitoringToken, RouteRule,
    Routes, SessionKey, SessionRegistry, Task,
};
use hcp_ingest::invitations::{InvitationConfig, OutboxSms};
use hcp_ingest::limits::{KeyLimits, Limits};
use hcp_ingest::{AuthMode, Gate, IngestState};
use hcp_store::Store;
use hcp_workorder::{BackgroundConfig, WorkOrderState};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::{openapi, pages, ComponentName, Components, Config};

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
    store: Store,
    producer: RatingProducer,
    /// Who may see `/readyz`'s details (`HCP_METRICS_TOKEN`); nobody when unset.
    monitoring: Option<MonitoringToken>,
}

/// Serves `components` on `listener` until `shutdown` is cancelled, or until a component's
/// background task ends on its own (a failure: the server then stops and returns it).
///
/// Stop order: the listener stops accepting and open requests finish (board streams end at
/// once); then every task is told to stop and awaited (the aggregator finishes its batches);
/// then the producer flushes what it still holds.
pub async fn run(
    config: Config,
    components: Components,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if components.contains(ComponentName::Sms) {
        config.sms_gateway_settings().map_err(anyhow::Error::msg).context("SMS gateway settings")?;
    }
    let mut store = Store::connect(&config.database_url, config.db_pool)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    if let Some(url) = &config.database_listen_url {
        store = store.with_listen_url(url).context("HCP_DATABASE_LISTEN_URL")?;
    }
    let producer = RatingProducer::new(&config.kafka(), &config.topics()).context("creating Kafka producer")?;
    let session_key = config.session_key.clone().unwrap_or_else(|| {
        tracing::warn!("HCP_SESSION_KEY is not set: a random session key is used (sessions end with this process)");
        SessionKey::random()
    });
    let sessions = SessionRegistry::new(store.clone());
    let shared = Shared {
        config: &config,
        store: &store,
        producer: &producer,
        session_key: &session_key,
        sessions: &sessions,
        shutdown: &shutdown,
    };

    let mut app = ops_routes(OpsState {
        store: store.clone(),
        producer: producer.clone(),
        monitoring: config.metrics_token.clone(),
    });
    let mut tasks = Vec::new();
    for name in components.iter() {
        let component = shared.component(name);
        app = app.merge(component.routes);
        tasks.extend(component.tasks.into_iter().map(|task| (component.name, task)));
    }
    let guard = GuardConfig {
        key: session_key,
        sessions,
        monitoring: config.metrics_token.clone(),
        public_url: config.public_url.clone(),
        sms_gateway: config.sms_inbound_token.clone(),
    };
    let app = with_layers(app, &config, guard);
    tracing::info!(addr = %listener.local_addr()?, ?components, "hcp serving");
    let served = serve(app, tasks, listener, shutdown).await;
    let flush = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    if let Ok(Err(e)) = flush {
        tracing::warn!(error = %e, "producer flush at shutdown incomplete");
    }
    tracing::info!("hcp stopped");
    served
}

/// Serves `app` on `listener` while `tasks` (each with its component's name) run, until
/// `shutdown` is cancelled or a task ends on its own. Then the listener drains, and only then
/// are the tasks told to stop (requests in flight still find them) and awaited. A task that
/// ended on its own is the error returned.
async fn serve(
    app: axum::Router,
    tasks: Vec<(&'static str, Task)>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stop_tasks = CancellationToken::new();
    let mut running = JoinSet::new();
    let mut names = HashMap::new();
    for (component, task) in tasks {
        let name = task.name;
        let handle = running.spawn(task.start(stop_tasks.clone()));
        names.insert(handle.id(), (component, name));
    }
    let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    tokio::pin!(serve);
    let mut failure = None;
    let served = loop {
        tokio::select! {
            served = &mut serve => break served,
            Some(ended) = running.join_next_with_id(), if failure.is_none() => {
                let (component, task, outcome) = task_outcome(&names, ended);
                let reason = outcome.err().unwrap_or_else(|| "ended before shutdown".into());
                tracing::error!(component, task, %reason, "a background task ended; stopping the server");
                failure = Some(anyhow::anyhow!("{component} task {task} ended: {reason}"));
                shutdown.cancel();
            }
        }
    };
    stop_tasks.cancel();
    while let Some(ended) = running.join_next_with_id().await {
        let (component, task, outcome) = task_outcome(&names, ended);
        match outcome {
            Ok(()) => tracing::debug!(component, task, "task stopped"),
            Err(reason) => tracing::error!(component, task, %reason, "task failed while stopping"),
        }
    }
    served.context("http server")?;
    failure.map_or(Ok(()), Err)
}

/// Which component and task ended, and how: `Err` with the reason when it failed or panicked.
fn task_outcome(
    names: &HashMap<tokio::task::Id, (&'static str, &'static str)>,
    ended: Result<(tokio::task::Id, Result<(), String>), tokio::task::JoinError>,
) -> (&'static str, &'static str, Result<(), String>) {
    let (id, outcome) = match ended {
        Ok((id, outcome)) => (id, outcome),
        Err(e) => (e.id(), Err(if e.is_panic() { "panicked".to_string() } else { e.to_string() })),
    };
    let (component, task) = names.get(&id).copied().unwrap_or(("?", "?"));
    (component, task, outcome)
}

/// What every component is built from.
struct Shared<'a> {
    config: &'a Config,
    store: &'a Store,
    producer: &'a RatingProducer,
    session_key: &'a SessionKey,
    /// The server-side sessions, shared by the access layer and the sessions component.
    sessions: &'a SessionRegistry,
    /// The server's own stop: open board streams end with it, so draining does not wait on them.
    shutdown: &'a CancellationToken,
}

impl Shared<'_> {
    /// Component `name`, built by its crate's constructor from the configuration.
    fn component(&self, name: ComponentName) -> Component {
        let Shared { config, store, producer, .. } = *self;
        let store = store.clone();
        match name {
            ComponentName::Sessions => hcp_http::sessions::component(hcp_http::sessions::SessionsState::new(
                store,
                self.session_key.clone(),
                self.sessions.clone(),
                config.public_url().starts_with("https://"),
            )),
            ComponentName::Ingest => hcp_ingest::component(self.ingest_state(), config.default_rating_interval),
            ComponentName::Aggregator => {
                let mut cfg = AggregatorConfig::new(config.kafka(), config.topics());
                cfg.group_id = config.aggregator_group.clone();
                cfg.integrity.exclude_flagged = config.exclude_flagged_presses;
                // The aggregator serves no route (it must not know HTTP): its constructor is `run`.
                let (partitions, statistics) = (store.clone(), store.clone());
                Component::new("aggregator", Routes::new())
                    .task("consumer", move |stop| hcp_aggregator::run(cfg, store, stop))
                    .task("partitions", move |stop| hcp_aggregator::keep_partitions(partitions, stop))
                    .task("statistics", move |stop| hcp_aggregator::keep_statistics(statistics, stop))
            }
            ComponentName::Board => hcp_board::component(BoardState {
                store,
                policy: config.policy(),
                staff_min_ratings: config.staff_min_ratings,
                live: hcp_board::live::Live::new(self.shutdown.clone()),
                export_pf: config.export_pf.clone(),
            }),
            ComponentName::Alerts => {
                hcp_alert::component(hcp_alert::AlertState { store, policy: config.policy() }, config.alert_interval)
            }
            ComponentName::Directory => hcp_directory::component(DirectoryState {
                store,
                producer: producer.clone(),
                topics: config.topics(),
                pii: config.pii.clone(),
            }),
            ComponentName::Workorders => hcp_workorder::component(
                WorkOrderState { store, pii: config.pii.clone(), public_url: config.public_url() },
                producer.clone(),
                BackgroundConfig {
                    topic: config.topics().workorder_event,
                    relay_interval: config.relay_interval,
                    sweep_interval: config.sweep_interval,
                },
            ),
            ComponentName::Webhooks => hcp_webhook::component(
                hcp_webhook::WebhookState { store, allow_private: config.webhook_allow_private },
                hcp_webhook::SenderConfig {
                    retry_base: config.webhook_retry_base,
                    allow_private: config.webhook_allow_private,
                    ..Default::default()
                },
            ),
            ComponentName::Sms => {
                // Checked in `run` before anything starts.
                let settings = config.sms_gateway_settings().ok().flatten();
                let state = hcp_sms::SmsState { store, pii: config.pii.clone() };
                let sender = settings.map(|s| {
                    let gateway: std::sync::Arc<dyn hcp_sms::gateway::Gateway> = hcp_sms::gateway::build(s).into();
                    (gateway, config.sms_sender())
                });
                hcp_sms::component(state, sender)
            }
        }
    }

    /// Ingest's state: the producer, the gate, invitations and limits.
    fn ingest_state(&self) -> IngestState {
        let config = self.config;
        if config.pii.is_none() {
            tracing::warn!("HCP_PII_KEY is not set: ratings carrying a rater identity will be refused (503)");
        }
        let auth = if config.ingest_auth_required { AuthMode::Required } else { AuthMode::Optional };
        let gate = Gate::new(self.store.clone(), auth, config.claim_takeover(), config.follow_up_window());
        let invitations = InvitationConfig {
            keys: config.invitation_key.clone().unwrap_or_else(|| {
                tracing::warn!(
                    "HCP_INVITATION_KEY is not set: a random key signs invitation links (they die with this process)"
                );
                hcp_ingest::invitations::InvitationKeys::random()
            }),
            public_url: config.public_url(),
            ttl: config.invitation_ttl(),
            sms_on_events: config.sms_on_events,
            sms: std::sync::Arc::new(OutboxSms(self.store.clone())),
            sms_caps: hcp_ingest::invitations::SmsCaps {
                per_key: config.sms_per_key_per_day,
                per_number: config.sms_per_number_per_day,
            },
        };
        IngestState {
            producer: self.producer.clone(),
            pii: config.pii.clone(),
            gate: Some(gate),
            invitations: Some(invitations),
            limits: Limits::new(
                KeyLimits {
                    device: config.rate_limit_device,
                    integration: config.rate_limit_integration,
                    platform: config.rate_limit_platform,
                },
                config.rate_limit_per_ip,
            ),
        }
    }
}

/// The operational endpoints every process serves, whatever its components.
fn ops_routes(state: OpsState) -> Routes {
    Routes::new()
        .get("/healthz", Access::Public, healthz)
        .get("/readyz", Access::Public, readyz)
        .get("/metrics", Access::Monitoring, metrics)
        .get("/openapi.json", Access::Public, |Extension(table): Extension<std::sync::Arc<AccessTable>>| async move {
            Json(openapi::document_for(&table))
        })
        .get("/docs", Access::Public, pages::docs)
        .get("/problems", Access::Public, pages::problems)
        .get("/problems/{slug}", Access::Public, pages::problem)
        .get("/", Access::Public, pages::index)
        .get("/api/v1/access", Access::operators(&[Role::Admin, Role::Auditor]), access_table)
        .with_state(state)
}

/// The access layer over every route, then the time limit, panic catching, metrics and tracing.
fn with_layers(routes: Routes, config: &Config, guard: GuardConfig) -> axum::Router {
    let (app, table) = routes.enforce(guard);
    app.layer(Extension(table))
        .layer(Extension(config.trusted_proxies.clone()))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(config.request_limit(), time_limit))
        // A bug that panics in a handler still answers: 500 problem+json, logged, the process lives.
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked");
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        .layer(middleware::from_fn(track_requests))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
}

/// The span of one request: its method and its route *template* (`/r/{token}`), never the URI,
/// whose path and query may carry a citizen's signed link or other secrets.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("(no route)", |p| p.as_str());
    tracing::info_span!("request", method = %request.method(), route = %route, version = ?request.version())
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
    /// Each dependency's state, for the monitoring token's holder only.
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<std::collections::BTreeMap<&'static str, String>>,
}

/// Readiness: the broker and the database answer within 2 s. Anyone learns ready or not; which
/// dependency failed, and why, is logged and shown only to the monitoring token's holder.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, description = "Ready"), (status = 503, description = "A dependency is down")))]
pub(crate) async fn readyz(State(ops): State<OpsState>, headers: axum::http::HeaderMap) -> Response {
    let timeout = Duration::from_secs(2);
    let database = match tokio::time::timeout(timeout, ops.store.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out".to_string(),
    };
    let producer = ops.producer;
    let broker = match tokio::task::spawn_blocking(move || producer.check_broker(timeout)).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(e) => format!("error: {e}"),
    };
    let ready = database == "ok" && broker == "ok";
    if !ready {
        tracing::warn!(%database, %broker, "not ready");
    }
    let details = ops.monitoring.as_ref().is_some_and(|t| t.admits(&headers));
    let checks = details.then(|| std::collections::BTreeMap::from([("database", database), ("broker", broker)]));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A task that runs until stopped, noting that it was.
    fn waits(stopped: Arc<AtomicBool>) -> (&'static str, Task) {
        let component =
            Component::new("steady", Routes::new()).task("waits", move |stop: CancellationToken| async move {
                stop.cancelled().await;
                stopped.store(true, Ordering::SeqCst);
            });
        ("steady", component.tasks.into_iter().next().expect("a task"))
    }

    #[tokio::test]
    async fn a_task_that_ends_on_its_own_stops_the_server_and_every_other_task() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let failing = Component::new("flaky", Routes::new()).task("fails", |_| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err::<(), _>("the database went away")
        });
        let tasks = vec![waits(stopped.clone()), ("flaky", failing.tasks.into_iter().next().unwrap())];
        let shutdown = CancellationToken::new();
        let ended = serve(axum::Router::new(), tasks, listener, shutdown.clone()).await.unwrap_err();
        assert_eq!(ended.to_string(), "flaky task fails ended: the database went away");
        assert!(shutdown.is_cancelled() && stopped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_shutdown_stops_every_task_once_the_listener_has_drained() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(serve(axum::Router::new(), vec![waits(stopped.clone())], listener, shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!stopped.load(Ordering::SeqCst) && !run.is_finished(), "runs until shutdown");
        shutdown.cancel();
        run.await.unwrap().unwrap();
        assert!(stopped.load(Ordering::SeqCst));
    }
}
