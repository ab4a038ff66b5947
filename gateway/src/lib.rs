//! The shop-facing API: submit a quote job (the model streamed to the store, the job to the queue), poll for its
//! result or have it pushed over a WebSocket, read the rules in force, and the platform's health and metrics.
//!
//! `gateway` is the only crate that knows HTTP. It knows nothing of Kafka: it talks to a [`worker::Submitter`]
//! (in-process or Kafka) through [`JobQueue`].

pub mod auth;
pub mod book;
pub mod error;
mod routes;
mod submit;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::broadcast;
use worker::{Job, JobResult, ModelStore, QueueError, Submitter};

pub use auth::ApiKeys;
pub use book::{JobBook, JobState, JobStatus};
pub use error::ApiError;
pub use routes::ApiDoc;

/// What a gateway is configured with. Validated once, by [`Config::validate`].
#[derive(Clone)]
pub struct Config {
    /// Largest model accepted, in bytes, enforced while the upload streams (default 256 MB).
    pub max_upload_bytes: u64,
    /// API keys for `Authorization: Bearer`; none means the API is open (right on loopback).
    pub api_keys: Vec<String>,
    /// Jobs kept in memory for polls and WebSockets; the oldest are forgotten first (default 100,000).
    pub max_jobs_kept: usize,
    /// How long a job may wait for a worker before it fails with `deadline_exceeded` (default 15 minutes).
    pub job_deadline: Duration,
    /// Idempotency keys remembered, per gateway instance (default 100,000).
    pub max_idempotency_keys: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("api_keys", &format_args!("{} keys", self.api_keys.len()))
            .field("max_jobs_kept", &self.max_jobs_kept)
            .field("job_deadline", &self.job_deadline)
            .field("max_idempotency_keys", &self.max_idempotency_keys)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_upload_bytes: 256 << 20,
            api_keys: Vec::new(),
            max_jobs_kept: 100_000,
            job_deadline: Duration::from_secs(15 * 60),
            max_idempotency_keys: 100_000,
        }
    }
}

impl Config {
    /// Checks every field; the error names the one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_upload_bytes == 0 {
            return Err("max_upload_bytes must be above 0".into());
        }
        if let Some(k) = self.api_keys.iter().position(|k| k.len() < 16 || k.chars().any(char::is_whitespace)) {
            return Err(format!(
                "api_keys: key {} of {} is too short or has whitespace: keys need at least 16 characters, no spaces",
                k + 1,
                self.api_keys.len()
            ));
        }
        if self.max_jobs_kept == 0 {
            return Err("max_jobs_kept must be above 0".into());
        }
        if self.job_deadline.is_zero() {
            return Err("job_deadline must be above 0".into());
        }
        Ok(())
    }
}

/// The queue as the gateway sees it: an object-safe face of any [`Submitter`].
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync + 'static {
    async fn submit(&self, job: &Job, traceparent: Option<&str>) -> Result<(), QueueError>;
    fn updates(&self) -> broadcast::Receiver<JobResult>;
    async fn ready(&self) -> Result<(), QueueError>;
    /// `messaging.system` for spans.
    fn messaging_system(&self) -> &'static str;
}

#[async_trait::async_trait]
impl<S: Submitter> JobQueue for S {
    async fn submit(&self, job: &Job, traceparent: Option<&str>) -> Result<(), QueueError> {
        Submitter::submit(self, job, traceparent).await
    }
    fn updates(&self) -> broadcast::Receiver<JobResult> {
        Submitter::updates(self)
    }
    async fn ready(&self) -> Result<(), QueueError> {
        Submitter::ready(self).await
    }
    fn messaging_system(&self) -> &'static str {
        Submitter::messaging_system(self)
    }
}

type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the handlers share.
pub struct AppState {
    config: Config,
    keys: ApiKeys,
    store: ModelStore,
    queue: Arc<dyn JobQueue>,
    rules: worker::Rules,
    book: JobBook,
    idempotency: Mutex<submit::Idempotency>,
    started: SystemTime,
    metrics: Option<Render>,
    feeder: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("config", &self.config).field("store", &self.store).finish_non_exhaustive()
    }
}

impl Drop for AppState {
    fn drop(&mut self) {
        self.feeder.abort();
    }
}

impl AppState {
    /// Wires a gateway to a store, a queue and rules, and starts following the queue's updates. Call inside a
    /// tokio runtime.
    pub fn new(config: Config, store: ModelStore, queue: Arc<dyn JobQueue>, rules: worker::Rules) -> Arc<AppState> {
        AppState::build(config, store, queue, rules, None)
    }

    /// The same, with a function that renders Prometheus text for `/metrics` (the binary installs the recorder).
    pub fn with_metrics(
        config: Config,
        store: ModelStore,
        queue: Arc<dyn JobQueue>,
        rules: worker::Rules,
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> Arc<AppState> {
        AppState::build(config, store, queue, rules, Some(Arc::new(render)))
    }

    fn build(
        config: Config,
        store: ModelStore,
        queue: Arc<dyn JobQueue>,
        rules: worker::Rules,
        metrics: Option<Render>,
    ) -> Arc<AppState> {
        let updates = queue.updates();
        Arc::new_cyclic(|weak: &std::sync::Weak<AppState>| {
            let feeder = tokio::spawn(follow(updates, weak.clone()));
            AppState {
                keys: ApiKeys::new(&config.api_keys),
                book: JobBook::new(config.max_jobs_kept),
                idempotency: Mutex::new(submit::Idempotency::new(config.max_idempotency_keys)),
                config,
                store,
                queue,
                rules,
                started: SystemTime::now(),
                metrics,
                feeder,
            }
        })
    }

    pub fn book(&self) -> &JobBook {
        &self.book
    }
}

/// Feeds the job book from the queue's updates until the gateway is dropped.
async fn follow(mut updates: broadcast::Receiver<JobResult>, state: std::sync::Weak<AppState>) {
    loop {
        match updates.recv().await {
            Ok(update) => match state.upgrade() {
                Some(s) => s.book.update(update),
                None => return,
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("assay_gateway_updates_missed_total").increment(n);
                tracing::error!(missed = n, "the gateway fell behind the queue's updates: some polls stay pending");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The HTTP API. `/healthz`, `/readyz`, `/metrics` and `/openapi.json` are open; `/v1` needs a key when keys
/// are configured.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(
            "/v1/quotes",
            // The body limit is enforced while streaming, with a clear 413; axum's own 2 MB default is off.
            post(submit::submit).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/quotes/{id}", get(routes::get_quote))
        .route("/v1/quotes/{id}/events", get(routes::events))
        .route("/v1/rules", get(routes::rules))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key));
    Router::new()
        .merge(api)
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(routes::openapi))
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .layer(axum::middleware::from_fn(routes::observe))
        .with_state(state)
}

/// Registers the help text and unit of every metric the gateway records (call once the recorder is installed).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("assay_http_requests_total", "HTTP requests answered, by route template, method and status");
    describe_histogram!(
        "assay_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route template and method (a submission includes its upload)"
    );
    describe_counter!("assay_gateway_jobs_accepted_total", "Quote jobs accepted and queued");
    describe_histogram!("assay_gateway_upload_bytes", Unit::Bytes, "Size of accepted model uploads");
    describe_gauge!("assay_gateway_websockets_open", "Event WebSockets open now");
    describe_counter!(
        "assay_gateway_updates_missed_total",
        "Job updates the gateway fell too far behind to read (their polls stay pending)"
    );
}

/// A named readiness check for [`ops_router`]: `Ok` or what is wrong.
pub type Probe = Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The platform endpoints of a process without the API (a worker): `/healthz`, `/readyz` (every probe answers
/// within 3 s) and `/metrics`.
pub fn ops_router(render: impl Fn() -> String + Send + Sync + 'static, probes: Vec<(&'static str, Probe)>) -> Router {
    let render: Render = Arc::new(render);
    let probes = Arc::new(probes);
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route(
            "/readyz",
            get(move || {
                let probes = probes.clone();
                async move { routes::readiness(&probes).await }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let render = render.clone();
                async move { routes::prometheus_text(render()) }
            }),
        )
        .fallback(routes::no_route)
        .layer(axum::middleware::from_fn(routes::observe))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in progress finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
