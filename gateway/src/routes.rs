//! Everything but the submission: a job's status (polled or pushed over a WebSocket), the rules in force,
//! health, readiness, metrics, the API description, and the request metrics every route records.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Serialize;
use tokio::sync::watch;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::auth::TenantOf;
use crate::book::JobState;
use crate::error::{ApiError, ErrorDetail, ErrorResponse};
use crate::AppState;

pub use jobs::QuoteView;

/// The view of a job as the book holds it: the queue's latest message, with what the gateway knows besides.
pub(crate) fn view(s: &JobState) -> QuoteView {
    let r = s.result.as_deref();
    QuoteView {
        job_id: s.job_id.clone(),
        submitted_at_ms: s.submitted_at_ms.or(r.and_then(|r| r.submitted_at_ms)),
        worker: r.map(|r| r.worker.clone()).filter(|w| !w.is_empty()),
        trace_id: r.and_then(|r| r.trace_id.clone()).or_else(|| jobs::trace::trace_id(s.traceparent.as_deref())),
        webhook: None,
        outcome: s.outcome().clone(),
    }
}

fn unknown_job(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no job \"{id}\": it was never submitted, or it is older than the jobs this gateway keeps"
    ))
}

/// A job's status, and its result once it has one.
#[utoipa::path(
    get,
    path = "/v1/quotes/{id}",
    tag = "quotes",
    params(("id" = String, Path, description = "The job id from the submission")),
    responses(
        (status = 200, description = "The job", body = QuoteView),
        (status = 401, description = "Missing or wrong API key", body = ErrorResponse),
        (status = 429, description = "The tenant is over its requests per minute (rate_limited); Retry-After says when to retry", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds until a request is allowed"))),
        (status = 404, description = "Unknown job", body = ErrorResponse),
    ),
    security(("api_key" = []), ())
)]
pub async fn get_quote(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<TenantOf>,
    Path(id): Path<String>,
) -> Result<Json<QuoteView>, ApiError> {
    // Another tenant's job answers exactly like an unknown one.
    let job = state.job(&id).await.filter(|j| j.visible_to(tenant.id())).ok_or_else(|| unknown_job(&id))?;
    delivered(&job, "poll");
    let mut view = view(&job);
    if let Some(w) = &state.config.webhooks {
        view.webhook = w.webhook(&id).await;
    }
    Ok(Json(view))
}

/// Marks the delivery of a final result in the quote's own trace: a span whose parent is the job's send span,
/// linked to the request (or socket) that carried it.
fn delivered(job: &JobState, channel: &'static str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !job.status().is_final() {
        return;
    }
    let Some(parent) = job.traceparent.as_deref() else { return };
    let carrier = tracing::Span::current();
    let span = tracing::info_span!(
        parent: None,
        "deliver",
        otel.name = "deliver quote",
        assay.job_id = %job.job_id,
        assay.delivery = channel,
    );
    let _ = span.set_parent(jobs::trace::context(Some(parent)));
    if let Some(link) = jobs::trace::of_span(&carrier).as_deref().and_then(jobs::trace::parse) {
        span.add_link(link);
    }
}

/// A WebSocket that sends the job as JSON (the same object as the poll) now and at every status change, then
/// closes normally after the final result. Intermediate states may be merged when they follow fast; the final
/// one is always sent. Browsers, which cannot set headers on a WebSocket, may pass the key as `access_token`.
#[utoipa::path(
    get,
    path = "/v1/quotes/{id}/events",
    tag = "quotes",
    params(
        ("id" = String, Path, description = "The job id from the submission"),
        ("access_token" = Option<String>, Query, description = "The API key, for clients that cannot send headers"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; messages are QuoteView objects"),
        (status = 401, description = "Missing or wrong API key", body = ErrorResponse),
        (status = 429, description = "The tenant is over its requests per minute (rate_limited); Retry-After says when to retry", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds until a request is allowed"))),
        (status = 404, description = "Unknown job", body = ErrorResponse),
        (status = 426, description = "Not a WebSocket request", body = ErrorResponse),
    ),
    security(("api_key" = []), ())
)]
pub async fn events(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<TenantOf>,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    state.job(&id).await.filter(|j| j.visible_to(tenant.id())).ok_or_else(|| unknown_job(&id))?;
    let rx = state.book.watch(&id).ok_or_else(|| unknown_job(&id))?;
    let ws = ws.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            format!("this endpoint speaks WebSocket ({}); poll /v1/quotes/{id} for plain HTTP", e.body_text()),
        )
    })?;
    Ok(ws.on_upgrade(move |socket| push(socket, rx)))
}

const PING_EVERY: Duration = Duration::from_secs(30);

async fn push(mut socket: WebSocket, mut rx: watch::Receiver<JobState>) {
    metrics::gauge!(jobs::metric::GATEWAY_WEBSOCKETS_OPEN).increment(1.0);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    'send: loop {
        let state = rx.borrow_and_update().clone();
        let Ok(text) = serde_json::to_string(&view(&state)) else { break };
        delivered(&state, "websocket");
        if socket.send(Message::Text(text.into())).await.is_err() {
            break;
        }
        if state.status().is_final() {
            let frame = CloseFrame { code: 1000, reason: "final result sent".into() };
            let _ = socket.send(Message::Close(Some(frame))).await;
            // Wait briefly for the client's close reply, as the protocol asks.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(Ok(m)) = socket.recv().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            break;
        }
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        let frame = CloseFrame { code: 1001, reason: "the gateway no longer tracks this job; poll it".into() };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        break 'send;
                    }
                    continue 'send;
                }
                incoming = socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break 'send,
                    Some(Ok(_)) => {}
                },
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break 'send;
                    }
                }
            }
        }
    }
    metrics::gauge!(jobs::metric::GATEWAY_WEBSOCKETS_OPEN).decrement(1.0);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlloyView {
    pub id: String,
    pub label: String,
    pub metal: String,
    /// Parts per one of pure metal, e.g. "0.750".
    pub fineness: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentView {
    pub id: String,
    pub label: String,
    /// The lowest price a quote in this segment can have, in the rules' currency.
    pub minimum_price: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoneView {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadView {
    /// Why the last edit of the rules directory was refused; the previous rules stay in force.
    pub last_error: Option<String>,
    pub reloads: u64,
    pub failures: u64,
}

/// What a shop needs to build its order form.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesView {
    /// SHA-256 of the rules files; every quote names the version it used.
    pub version: String,
    /// When these rules were loaded (RFC 3339, UTC).
    pub loaded_at: String,
    pub currency: String,
    pub prices_date: String,
    pub alloys: Vec<AlloyView>,
    pub segments: Vec<SegmentView>,
    pub stones: Vec<StoneView>,
    /// Units a model's coordinates may be given in.
    pub units: Vec<String>,
    /// Present when the rules come from a watched directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadView>,
}

/// The rules in force: version, load time, alloys, segments, stones.
#[utoipa::path(
    get,
    path = "/v1/rules",
    tag = "rules",
    responses(
        (status = 200, description = "The active rules", body = RulesView),
        (status = 401, description = "Missing or wrong API key", body = ErrorResponse),
        (status = 429, description = "The tenant is over its requests per minute (rate_limited); Retry-After says when to retry", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds until a request is allowed"))),
    ),
    security(("api_key" = []), ())
)]
pub async fn rules(State(state): State<Arc<AppState>>, Extension(tenant): Extension<TenantOf>) -> Json<RulesView> {
    let rules = state.rules.current();
    let (loaded_at, reload) = match state.rules.reload_status() {
        None => (state.started, None),
        Some(s) => {
            (s.loaded_at, Some(ReloadView { last_error: s.last_error, reloads: s.reloads, failures: s.failures }))
        }
    };
    Json(RulesView {
        version: rules.version.clone(),
        loaded_at: rfc3339(loaded_at),
        currency: rules.currency.clone(),
        prices_date: rules.prices_date.clone(),
        alloys: rules
            .alloys
            .iter()
            .map(|a| AlloyView {
                id: a.id.clone(),
                label: a.label.clone(),
                metal: a.metal.clone(),
                fineness: a.fineness.to_string(),
            })
            .collect(),
        // A tenant sees the segments it may ask for, in its file's order (its default first).
        segments: match tenant.allowed_segments() {
            None => rules.segments.keys().cloned().collect::<Vec<_>>(),
            Some(allowed) => {
                allowed.iter().filter(|id| rules.segments.contains_key(**id)).map(|s| (*s).to_owned()).collect()
            }
        }
        .into_iter()
        .filter_map(|id| {
            let s = rules.segments.get(&id)?;
            Some(SegmentView { label: s.label.clone(), minimum_price: s.minimum_price.to_string(), id })
        })
        .collect(),
        stones: rules.stones.iter().map(|(id, s)| StoneView { id: id.clone(), label: s.label.clone() }).collect(),
        units: models::Units::ALL.iter().map(|u| u.as_str().to_owned()).collect(),
        reload,
    })
}

/// A UTC timestamp as RFC 3339, to the second.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "platform", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// `ok` or what is wrong, for the store, the queue and the rules.
    pub checks: std::collections::BTreeMap<String, String>,
}

/// Ready to take jobs: the model store answers, the queue is connected, rules are loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "platform",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let (store, queue) = (state.store.clone(), state.queue.clone());
    let probes: [(&'static str, crate::Probe); 3] = [
        (
            "store",
            Arc::new(move || {
                let s = store.clone();
                Box::pin(async move { s.ping().await.map_err(|e| e.to_string()) })
            }),
        ),
        (
            "queue",
            Arc::new(move || {
                let q = queue.clone();
                Box::pin(async move { q.ready().await.map_err(|e| e.to_string()) })
            }),
        ),
        // Rules are always loaded (a gateway does not start without them); a refused edit keeps the last good
        // ones, which /v1/rules reports.
        ("rules", Arc::new(|| Box::pin(async { Ok(()) }))),
    ];
    readiness(&probes).await
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match &state.metrics {
        Some(render) => prometheus_text(render()),
        None => ApiError::not_found("metrics are not enabled in this process").into_response(),
    }
}

pub(crate) fn prometheus_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// The one readiness check: runs every probe with a time limit; 200 when all pass, 503 with what failed
/// otherwise.
pub(crate) async fn readiness(probes: &[(&'static str, crate::Probe)]) -> Response {
    let limit = Duration::from_secs(3);
    let outcomes = futures::future::join_all(probes.iter().map(|(name, probe)| async move {
        let outcome = match tokio::time::timeout(limit, probe()).await {
            Ok(r) => r,
            Err(_) => Err("no answer within 3 s".to_owned()),
        };
        (*name, outcome)
    }))
    .await;
    let ready = outcomes.iter().all(|(_, o)| o.is_ok());
    let checks = outcomes.into_iter().map(|(n, o)| (n.to_owned(), o.err().unwrap_or_else(|| "ok".into()))).collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { status: if ready { "ready" } else { "not_ready" }.into(), checks })).into_response()
}

/// The OpenAPI description of this API.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], ApiDoc::openapi().to_pretty_json().unwrap_or_default())
        .into_response()
}

pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint {method} {}: see /openapi.json for the API", uri.path()))
}

pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}: see /openapi.json for the API", uri.path()),
    )
}

/// Counts and times every request by route template (never by raw path, which would explode the labels).
/// Also opens the request's HTTP server span, continuing the caller's trace when it sends a `traceparent`.
pub async fn observe(req: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let matched = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let route = matched.clone().unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!(
        "request",
        otel.name = matched.as_ref().map_or_else(|| method.clone(), |r| format!("{method} {r}")),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = matched.as_deref(),
        url.path = req.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let incoming = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
    if incoming.and_then(jobs::trace::parse).is_some() {
        let _ = span.set_parent(jobs::trace::context(incoming));
    }
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let status = response.status().as_u16().to_string();
    let seconds = started.elapsed().as_secs_f64();
    metrics::counter!(jobs::metric::HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!(jobs::metric::HTTP_REQUEST_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(seconds);
    tracing::debug!(http.method = %method, http.route = %route, http.status = %status, seconds, "request");
    response
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API description served at `/openapi.json`.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "assay", description = "Prices jewelry from 3D models: submit a model, get quotes per alloy."),
    paths(crate::submit::submit, get_quote, events, rules, crate::session::create, healthz, readyz),
    components(schemas(
        crate::submit::Accepted,
        crate::submit::ModelInfo,
        jobs::protocol::Options,
        QuoteView,
        jobs::WebhookStatus,
        jobs::DeliveryStatus,
        crate::session::SessionRequest,
        crate::session::SessionCreated,
        RulesView,
        AlloyView,
        SegmentView,
        StoneView,
        ReloadView,
        Health,
        Readiness,
        ErrorResponse,
        ErrorDetail,
    )),
    modifiers(&BearerAuth),
    tags((name = "quotes", description = "Quote jobs"), (name = "rules", description = "The pricing rules in force"),
         (name = "platform", description = "Health and readiness"))
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_rfc3339() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_570_245);
        assert_eq!(rfc3339(t), "2026-11-25T01:30:45Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
