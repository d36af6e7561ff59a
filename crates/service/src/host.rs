//! The facade every service offers, and the host that serves one or several
//! of them on one listener.
//!
//! A service is built from its configuration by its own `build`, then handed
//! to a [`Host`] as a [`Service`]: the host registers its metrics under the
//! service's name, spawns its background tasks under its supervisor, wraps
//! its routes with the request metrics, and adds what every process has once:
//! `/healthz`, `/readyz` (every service's readiness and every background task),
//! `/metrics`, the JSON 404, request ids, tracing and the request deadline.
//! `bloginfer blog` hosts one service; `bloginfer up` hosts three.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, HttpMetrics, Tracked};
use crate::serve::{ServeConfig, Server};
use crate::tasks::Supervisor;
use crate::BoxFuture;

/// Whether a service can take traffic, and what it wants operators to see.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Whether the service takes traffic; `/readyz` answers 503 while any is not.
    pub ready: bool,
    /// Details shown in `/readyz` (the model version, why not ready, ...).
    pub detail: Map<String, Value>,
}

impl Readiness {
    /// Ready for traffic, with no details.
    pub fn ready() -> Self {
        Self {
            ready: true,
            detail: Map::new(),
        }
    }

    /// Not ready, because of `reason`.
    pub fn not_ready(reason: impl Into<String>) -> Self {
        let mut detail = Map::new();
        detail.insert("reason".into(), Value::String(reason.into()));
        Self {
            ready: false,
            detail,
        }
    }

    /// Adds `key` to the details `/readyz` shows.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }
}

/// The shape of every service facade (blog, inference, aggregator,
/// orchestrator). Building it is the service's own business (`build(config)`);
/// everything a host needs afterwards is here.
pub trait Service: Send + Sync + 'static {
    /// A short name: the `service` label of its metrics, the prefix of its
    /// own metric families, the key of its readiness.
    fn name(&self) -> &'static str;

    /// Its routes, without probes or a fallback.
    fn routes(&self) -> Router;

    /// Registers its own metrics (the request metrics are the host's).
    fn register_metrics(&self, registry: &mut Registry);

    /// Whether it can take traffic now.
    fn ready(&self) -> BoxFuture<'_, Readiness>;

    /// Starts its background loops under `tasks`; each loop watches the token
    /// it is given.
    fn spawn_background(&self, tasks: &Supervisor);
}

/// One or several services on one listener.
pub struct Host {
    services: Vec<Arc<dyn Service>>,
    registry: Registry,
    http: HttpMetrics,
    tasks: Supervisor,
    config: ServeConfig,
}

struct Probes {
    services: Vec<Arc<dyn Service>>,
    tasks: Supervisor,
    registry: Arc<Registry>,
}

impl Host {
    /// An empty host that shuts down when `shutdown` is cancelled: the server
    /// drains, then the background tasks stop.
    pub fn new(config: ServeConfig, shutdown: CancellationToken) -> Self {
        let mut registry = Registry::with_prefix("bloginfer");
        let http = HttpMetrics::register(&mut registry);
        metrics::register_build_info(&mut registry);
        Self {
            services: Vec::new(),
            registry,
            http,
            tasks: Supervisor::new(shutdown),
            config,
        }
    }

    /// Adds `service`: its metrics under `bloginfer_<name>_`, its background
    /// tasks started now (needs a Tokio runtime).
    pub fn mount(&mut self, service: Arc<dyn Service>) -> &mut Self {
        service.register_metrics(self.registry.sub_registry_with_prefix(service.name()));
        service.spawn_background(&self.tasks);
        self.services.push(service);
        self
    }

    /// The supervisor of the hosted services' tasks.
    pub fn tasks(&self) -> &Supervisor {
        &self.tasks
    }

    /// The token that shuts the host down.
    pub fn token(&self) -> &CancellationToken {
        self.tasks.shutdown_token()
    }

    /// The router of everything mounted, with a JSON 404 for anything else.
    pub fn into_router(self) -> (Router, HostHandle) {
        self.into_router_with(Router::new().fallback(crate::error::not_found))
    }

    /// The router of everything mounted, with `fallback`'s routes and fallback
    /// added last (the all-in-one process serves the web app there).
    pub fn into_router_with(self, fallback: Router) -> (Router, HostHandle) {
        let mut router = Router::new();
        for service in &self.services {
            let tracked = Tracked {
                metrics: self.http.clone(),
                service: service.name(),
            };
            router = router.merge(service.routes().layer(axum::middleware::from_fn_with_state(
                tracked,
                metrics::track,
            )));
        }
        let probes = Arc::new(Probes {
            services: self.services,
            tasks: self.tasks.clone(),
            registry: Arc::new(self.registry),
        });
        let router = router
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz).with_state(probes.clone()))
            .route("/metrics", get(metrics_page).with_state(probes))
            .merge(fallback);
        let handle = HostHandle {
            tasks: self.tasks,
            config: self.config,
        };
        (router, handle)
    }

    /// Serves everything mounted on `listener` until the token is cancelled
    /// (Ctrl-C and SIGTERM cancel it), then drains requests and stops the
    /// background tasks.
    pub async fn run(self, listener: TcpListener) -> std::io::Result<()> {
        crate::shutdown::cancel_on_signal(self.token());
        let (router, handle) = self.into_router();
        handle.serve(listener, router).await
    }
}

/// What is left of a [`Host`] once its router is built: the tasks and the
/// limits, to serve the router and shut down.
pub struct HostHandle {
    tasks: Supervisor,
    config: ServeConfig,
}

impl HostHandle {
    /// Starts serving `router` on `listener` in the background, every request
    /// inside the host's stack (request id, span, deadline, error logging).
    pub fn start(&self, listener: TcpListener, router: Router) -> std::io::Result<Server> {
        Server::start(
            listener,
            crate::trace::wrap(router, self.config.request_timeout),
            self.config.clone(),
            self.tasks.shutdown_token().clone(),
        )
    }

    /// Serves `router` until the token is cancelled, then stops the tasks.
    pub async fn serve(self, listener: TcpListener, router: Router) -> std::io::Result<()> {
        let server = self.start(listener, router)?;
        server.stopped().await;
        self.shutdown().await;
        Ok(())
    }

    /// Stops the background tasks, waiting at most the drain timeout.
    pub async fn shutdown(&self) {
        self.tasks
            .shutdown(self.config.drain_timeout.max(Duration::from_secs(1)))
            .await;
    }

    /// The supervisor of the mounted services' background tasks, to spawn
    /// more or read their states.
    pub fn tasks(&self) -> &Supervisor {
        &self.tasks
    }
}

/// How long one service's readiness check may take before it counts as not ready.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(probes): State<Arc<Probes>>) -> Response {
    // In turn: a host has at most a few services, each check one quick query.
    let mut checks = Vec::with_capacity(probes.services.len());
    for service in &probes.services {
        let readiness = tokio::time::timeout(READINESS_TIMEOUT, service.ready())
            .await
            .unwrap_or_else(|_| Readiness::not_ready("the readiness check timed out"));
        checks.push((service.name(), readiness));
    }
    let tasks = probes.tasks.report();
    let tasks_ok = probes.tasks.healthy();
    let mut ready = tasks_ok;
    let mut services = Map::new();
    for (name, readiness) in checks {
        ready &= readiness.ready;
        let mut detail = readiness.detail;
        detail.insert("ready".into(), Value::Bool(readiness.ready));
        services.insert(name.to_string(), Value::Object(detail));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"ready": ready, "services": services, "tasks": tasks});
    (status, Json(body)).into_response()
}

async fn metrics_page(State(probes): State<Arc<Probes>>) -> Response {
    metrics::page(&probes.registry)
}
