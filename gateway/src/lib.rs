//! The shop-facing API: submit a quote job (the model streamed to the store, the job to the queue), poll for its
//! result or have it pushed over a WebSocket, read the rules in force, and the platform's health and metrics.
//!
//! `gateway` is the only crate that knows HTTP. It knows nothing of Kafka (it does not link it): it talks to a
//! [`jobs::Submitter`] (in-process or Kafka) through [`JobQueue`].

pub mod auth;
pub mod book;
pub mod error;
mod limits;
mod page;
mod routes;
pub mod session;
mod submit;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use jobs::{Job, JobResult, QueueError, Submitter};
use model_store::ModelStore;
use pricing_rules::Rules;
use tokio::sync::mpsc;

pub use auth::ApiKeys;
pub use book::{JobBook, JobState};
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
    /// Idempotency keys remembered with their first request, per gateway instance (default 100,000). The job
    /// id a key names is the same on every instance whatever this holds.
    pub max_idempotency_keys: usize,
    /// How long an idempotency key names its first request (default 24 hours).
    pub idempotency_ttl: Duration,
    /// The tenants file: keys, segments and limits per tenant. Exclusive with `api_keys`.
    pub tenants: Option<tenants::TenantsSource>,
    /// Where a job's webhook delivery is looked up, for `GET /v1/quotes/{id}` (a notifier in this process).
    pub webhooks: Option<Arc<dyn WebhookLookup>>,
    /// The key quote sessions are signed with (at least 32 bytes, the same on every gateway); none: no sessions.
    pub session_secret: Option<Vec<u8>>,
}

/// What the gateway shows of a job's webhook delivery: the notifier that makes it answers.
#[async_trait::async_trait]
pub trait WebhookLookup: Send + Sync + 'static {
    async fn webhook(&self, job_id: &str) -> Option<jobs::WebhookStatus>;
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("api_keys", &format_args!("{} keys", self.api_keys.len()))
            .field("max_jobs_kept", &self.max_jobs_kept)
            .field("job_deadline", &self.job_deadline)
            .field("max_idempotency_keys", &self.max_idempotency_keys)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("tenants", &self.tenants.as_ref().map(|t| t.current().all().len()))
            .field("webhooks", &self.webhooks.is_some())
            .field("session_secret", &self.session_secret.is_some())
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
            idempotency_ttl: Duration::from_secs(24 * 3600),
            tenants: None,
            webhooks: None,
            session_secret: None,
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
        if self.tenants.is_some() && !self.api_keys.is_empty() {
            return Err(
                "api_keys and tenants: give keys in the tenants file, or --api-key without one, not both".into()
            );
        }
        if self.session_secret.as_ref().is_some_and(|k| k.len() < 32) {
            return Err("session_secret must be at least 32 bytes".into());
        }
        if self.max_jobs_kept == 0 {
            return Err("max_jobs_kept must be above 0".into());
        }
        if self.job_deadline.is_zero() {
            return Err("job_deadline must be above 0".into());
        }
        if self.idempotency_ttl.is_zero() {
            return Err("idempotency_ttl must be above 0".into());
        }
        Ok(())
    }
}

/// The queue as the gateway sees it: an object-safe face of any [`Submitter`].
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync + 'static {
    async fn submit(&self, job: &Job, traceparent: Option<&str>) -> Result<(), QueueError>;
    fn subscribe(&self) -> mpsc::Receiver<JobResult>;
    async fn ready(&self) -> Result<(), QueueError>;
    /// `messaging.system` for spans.
    fn messaging_system(&self) -> &'static str;
    /// Where jobs are sent, for spans.
    fn destination(&self) -> &str;
    /// What a durable queue knows of a job the book has not heard of.
    async fn lookup(&self, job_id: &str) -> Result<Option<JobResult>, QueueError>;
}

#[async_trait::async_trait]
impl<S: Submitter> JobQueue for S {
    async fn submit(&self, job: &Job, traceparent: Option<&str>) -> Result<(), QueueError> {
        Submitter::submit(self, job, traceparent).await
    }
    fn subscribe(&self) -> mpsc::Receiver<JobResult> {
        Submitter::subscribe(self)
    }
    async fn ready(&self) -> Result<(), QueueError> {
        Submitter::ready(self).await
    }
    fn messaging_system(&self) -> &'static str {
        Submitter::messaging_system(self)
    }
    fn destination(&self) -> &str {
        Submitter::destination(self)
    }
    async fn lookup(&self, job_id: &str) -> Result<Option<JobResult>, QueueError> {
        Submitter::lookup(self, job_id).await
    }
}

type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the handlers share.
pub struct AppState {
    config: Config,
    keys: ApiKeys,
    store: ModelStore,
    queue: Arc<dyn JobQueue>,
    rules: Rules,
    book: JobBook,
    idempotency: Mutex<jobs::BoundedMap<submit::IdemKey, submit::IdemEntry>>,
    rate: limits::RateLimiter,
    in_flight: limits::InFlight,
    /// Quotes each session has submitted through this instance.
    session_quotes: Mutex<jobs::BoundedMap<String, u32>>,
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
    pub fn new(config: Config, store: ModelStore, queue: Arc<dyn JobQueue>, rules: Rules) -> Arc<AppState> {
        AppState::build(config, store, queue, rules, None)
    }

    /// The same, with a function that renders Prometheus text for `/metrics` (the binary installs the recorder).
    pub fn with_metrics(
        config: Config,
        store: ModelStore,
        queue: Arc<dyn JobQueue>,
        rules: Rules,
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> Arc<AppState> {
        AppState::build(config, store, queue, rules, Some(Arc::new(render)))
    }

    fn build(
        config: Config,
        store: ModelStore,
        queue: Arc<dyn JobQueue>,
        rules: Rules,
        metrics: Option<Render>,
    ) -> Arc<AppState> {
        let updates = queue.subscribe();
        Arc::new_cyclic(|weak: &std::sync::Weak<AppState>| {
            let feeder = tokio::spawn(follow(updates, weak.clone()));
            AppState {
                keys: ApiKeys::new(&config.api_keys),
                book: JobBook::new(config.max_jobs_kept),
                idempotency: Mutex::new(jobs::BoundedMap::new(config.max_idempotency_keys)),
                rate: limits::RateLimiter::default(),
                in_flight: limits::InFlight::default(),
                session_quotes: Mutex::new(jobs::BoundedMap::new(100_000)),
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

    /// Counts one quote against a session; false when it has made all it may (counted per gateway instance).
    pub(crate) fn take_session_quote(&self, s: &session::Claims) -> bool {
        let mut used = self.session_quotes.lock().unwrap_or_else(|e| e.into_inner());
        let n = used.get(&s.sid).copied().unwrap_or(0);
        if n >= s.quotes {
            return false;
        }
        used.insert(s.sid.clone(), n + 1);
        true
    }

    pub fn book(&self) -> &JobBook {
        &self.book
    }

    /// A job as the book knows it, reading through to a durable queue for one the book has not heard of (one
    /// accepted before this process started, or forgotten by the bounded book).
    pub async fn job(&self, job_id: &str) -> Option<JobState> {
        if let Some(job) = self.book.get(job_id) {
            return Some(job);
        }
        if !jobs::protocol::is_valid_job_id(job_id) {
            return None;
        }
        match self.queue.lookup(job_id).await {
            Ok(Some(r)) => {
                self.book.update(r);
                self.book.get(job_id)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(job.id = %job_id, error = %e, "cannot look a job up in the queue");
                None
            }
        }
    }
}

/// Feeds the job book from the queue's messages until the gateway is dropped. The stream holds back rather than
/// drops when the book is slow, so every final result reaches it.
async fn follow(mut updates: mpsc::Receiver<JobResult>, state: std::sync::Weak<AppState>) {
    while let Some(update) = updates.recv().await {
        match state.upgrade() {
            Some(s) => {
                let finished = update.is_final().then(|| (update.job_id.clone(), update.tenant.clone()));
                s.book.update(update);
                if let Some((id, tenant)) = finished {
                    if let Some(tenant) = tenant.or_else(|| s.book.get(&id).and_then(|j| j.tenant)) {
                        s.in_flight.finish(&tenant, &id);
                    }
                }
            }
            None => return,
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
        .route("/v1/sessions", post(session::create))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key));
    Router::new()
        .merge(api)
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(routes::openapi))
        .route("/", get(page::index))
        .route("/assets/{*path}", get(page::asset))
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .layer(axum::middleware::from_fn(routes::observe))
        .with_state(state)
}

/// A named readiness check for `/readyz`: `Ok` or what is wrong.
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
