//! `POST /v1/quotes`: read the options, stream the model into the store while hashing it, queue the job, answer
//! `202 Accepted`. Every refusal says what was wrong and what is allowed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use jobs::protocol::{idempotent_job_id, new_job_id, Options};
use jobs::{Job, ModelRef, Status};
use model_store::StoredModel;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Caller, TenantOf};
use crate::error::{ApiError, ErrorResponse};
use crate::AppState;

/// The answer to an accepted submission.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    pub job_id: String,
    /// `queued` for a new job; a retry with the same idempotency key answers with the job as it stands.
    pub status: Status,
    /// Poll this for the result.
    pub status_url: String,
    /// Open a WebSocket here to have the status and the result pushed.
    pub events_url: String,
    pub model: ModelInfo,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelInfo {
    /// SHA-256 of the uploaded bytes, lowercase hex.
    pub sha256: String,
    pub size_bytes: u64,
    /// `stl`, `glb` or `gltf`: what the bytes are, from their first bytes and length (a declared content type
    /// must agree).
    pub format: String,
}

/// The multipart form, for the API description.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the form in the OpenAPI document; the handler streams the parts")]
pub struct SubmitForm {
    /// The model file: STL, GLB or glTF (Draco, meshopt and quantized geometry are read).
    #[schema(content_media_type = "application/octet-stream")]
    model: Vec<u8>,
    options: Option<Options>,
    /// A `.gltf`'s external buffer files (the `.bin` beside it), one part each, repeatable: each part's filename
    /// is the URI the `.gltf` names. The stored model is the `.gltf` with these embedded, so `model.sha256` and
    /// `model.size_bytes` describe that whole model.
    #[schema(content_media_type = "application/octet-stream")]
    buffer: Option<Vec<Vec<u8>>>,
}

const MAX_OPTIONS_BYTES: usize = 64 * 1024;

/// An idempotency key: who sent it, and the key.
pub(crate) type IdemKey = (Caller, String);
/// When a key was first seen, and the answer once there is one (`None` while the first request runs).
pub(crate) type IdemEntry = (Instant, Option<Arc<Answered>>);

/// The first answer to an idempotency key, and what it was an answer to.
#[derive(Debug)]
pub(crate) struct Answered {
    accepted: Accepted,
    /// A retry must be the same request.
    request: Fingerprint,
}

/// What makes two submissions the same request: the model's bytes and every option.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    sha256: String,
    options: Options,
}

impl Fingerprint {
    /// The request in one string: the model's hash and the options as JSON (fields in declaration order).
    fn digest(&self) -> String {
        format!("{} {}", self.sha256, serde_json::to_string(&self.options).unwrap_or_default())
    }
}

/// Takes an idempotency key for a request: `Ok` when it is new (or its time to live is over), else the first
/// request's answer (`None` while that request still runs).
fn begin(state: &AppState, key: &IdemKey) -> Result<(), Option<Arc<Answered>>> {
    let mut keys = state.idempotency.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, answer)) = keys.get(key) {
        if at.elapsed() < state.config.idempotency_ttl {
            return Err(answer.clone());
        }
    }
    // Seen again after its time to live: one entry, the newest (the map never keeps a stale copy to evict).
    keys.insert(key.clone(), (Instant::now(), None));
    Ok(())
}

/// Releases a pending idempotency key if the request ends without an answer, so a retry can go ahead.
struct Reservation<'a> {
    state: &'a AppState,
    key: Option<IdemKey>,
}

impl Reservation<'_> {
    fn complete(mut self, accepted: &Accepted, request: Fingerprint) {
        if let Some(key) = self.key.take() {
            let mut idem = self.state.idempotency.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = idem.get_mut(&key) {
                entry.1 = Some(Arc::new(Answered { accepted: accepted.clone(), request }));
            }
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.state.idempotency.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        }
    }
}

/// What the client says the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Stl,
    Glb,
    Gltf,
    /// `application/octet-stream` or no type: decided from the first bytes.
    Sniff,
}

const ALLOWED_TYPES: &str =
    "model/stl, model/gltf-binary, model/gltf+json, application/octet-stream (format detected), multipart/form-data";

fn declared(content_type: Option<&str>) -> Result<Option<Declared>, ApiError> {
    let Some(ct) = content_type else { return Ok(Some(Declared::Sniff)) };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    Ok(Some(match essence.as_str() {
        "model/stl" | "model/x.stl-binary" | "model/x.stl-ascii" | "application/sla" | "application/vnd.ms-pki.stl" => {
            Declared::Stl
        }
        "model/gltf-binary" => Declared::Glb,
        "model/gltf+json" => Declared::Gltf,
        "application/octet-stream" | "" => Declared::Sniff,
        "multipart/form-data" => return Ok(None),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("content type \"{ct}\" is not a model: send one of {ALLOWED_TYPES}"),
            ))
        }
    }))
}

/// The format of an upload, by `models`' own detector on its first bytes and length; the declared type must
/// agree. Bytes that are no model are refused before a job exists.
fn detected(head: &[u8], size: u64, declared: Declared) -> Result<models::Format, ApiError> {
    use models::Format;
    let not_a_model = |why: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unknown_format",
            format!("the body is not a model: {why}; send an STL, GLB or glTF file as one of {ALLOWED_TYPES}"),
        )
    };
    let format = models::detect_head(head, size).map_err(|e| not_a_model(e.to_string()))?;
    let agrees = match declared {
        Declared::Sniff => true,
        Declared::Stl => matches!(format, Format::StlBinary | Format::StlAscii),
        Declared::Glb => format == Format::Glb,
        Declared::Gltf => format == Format::Gltf,
    };
    if !agrees {
        return Err(not_a_model(format!(
            "it was sent as {} but its bytes are {}",
            match declared {
                Declared::Stl => "STL",
                Declared::Glb => "GLB",
                _ => "glTF",
            },
            match format {
                Format::StlBinary => "a binary STL",
                Format::StlAscii => "an ASCII STL",
                Format::Glb => "a GLB",
                Format::Gltf => "glTF JSON",
            }
        )));
    }
    Ok(format)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the model is over the upload limit of {}: simplify or decimate the mesh, or ask the operator to raise \
             --max-upload-mb",
            human_bytes(limit)
        ),
    )
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MB ({n} bytes)", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// Streams a body into the store, hashing it, refusing it once it passes the limit.
async fn store_stream<S, E>(
    state: &AppState,
    mut stream: S,
    declared: Declared,
    on_error: impl Fn(E) -> ApiError,
) -> Result<(StoredModel, models::Format), ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    const HEAD: usize = models::HEAD_BYTES;
    let limit = state.config.max_upload_bytes;
    let mut upload = state.store.begin_upload().await.map_err(|e| {
        tracing::error!(error = %e, "cannot start an upload to the model store");
        ApiError::unavailable("store_unavailable", "the model store is unavailable: try again shortly")
    })?;
    let mut head = Vec::with_capacity(HEAD);
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                upload.abort().await;
                return Err(on_error(e));
            }
        };
        if upload.size() + chunk.len() as u64 > limit {
            upload.abort().await;
            return Err(too_large(limit));
        }
        if head.len() < HEAD {
            head.extend_from_slice(&chunk[..chunk.len().min(HEAD - head.len())]);
        }
        if let Err(e) = upload.write(&chunk).await {
            tracing::error!(error = %e, "writing an upload to the model store");
            return Err(ApiError::unavailable(
                "store_unavailable",
                "the model store is unavailable: try again shortly",
            ));
        }
    }
    if upload.size() == 0 {
        upload.abort().await;
        return Err(ApiError::bad_request("empty_model", "the model is empty: send the file's bytes as the body"));
    }
    let format = match detected(&head, upload.size(), declared) {
        Ok(f) => f,
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    let stored = upload.finish().await.map_err(|e| {
        tracing::error!(error = %e, "finishing an upload to the model store");
        ApiError::unavailable("store_unavailable", "the model store is unavailable: try again shortly")
    })?;
    Ok((stored, format))
}

/// The request's options, checked against the gateway's copy of the rules (the worker's copy decides: see
/// ARCHITECTURE.md).
/// A tenant's request without a segment gets the tenant's default; one with a segment the tenant may not use is
/// refused with 403 naming the ones it may.
fn checked(
    state: &AppState,
    tenant: &TenantOf,
    mut options: Options,
    segment_given: bool,
) -> Result<Options, ApiError> {
    if let Some(allowed) = tenant.allowed_segments() {
        if !segment_given {
            options.segment = allowed[0].to_owned();
        } else if !allowed.contains(&options.segment.as_str()) {
            return Err(segment_not_allowed(&options.segment, &allowed));
        }
    }
    state.rules.current().check_request(&options).map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    Ok(options)
}

/// 403 for a segment the caller may not use, naming the ones it may.
pub(crate) fn segment_not_allowed(segment: &str, allowed: &[&str]) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "segment_not_allowed",
        format!(
            "segment \"{segment}\" is not allowed for this key: allowed {}",
            allowed.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
        ),
    )
}

/// 429 for a tenant at its limit of unfinished jobs.
fn too_many_in_flight(t: &tenants::Tenant, max: u32) -> ApiError {
    ApiError::too_many(
        Duration::from_secs(2),
        "too_many_in_flight",
        format!("tenant \"{}\" has {max} unfinished jobs, its limit: wait for one to finish", t.id),
    )
}

fn units(value: &str) -> Result<models::Units, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::unprocessable("invalid_units", format!("units \"{value}\" is not one of mm, cm, m, in")))
}

/// Options from query parameters: `alloy` (repeatable, or comma-separated), `quantity`, `segment`, `units`; and
/// whether a segment was given.
fn query_options(uri: &axum::http::Uri) -> Result<(Options, bool), ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| ApiError::bad_request("bad_query", format!("the query string cannot be read: {e}")))?;
    let mut o = Options::default();
    let mut segment_given = false;
    for (k, v) in pairs {
        match k.as_str() {
            "alloy" => o.alloys.extend(v.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned)),
            "quantity" => {
                o.quantity = v.parse().map_err(|_| {
                    ApiError::unprocessable(
                        "invalid_quantity",
                        format!("quantity \"{v}\" is not a whole number from 1 to {}", u32::MAX),
                    )
                })?
            }
            "segment" => {
                o.segment = v;
                segment_given = true;
            }
            "units" => o.units = Some(units(&v)?),
            other => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!(
                        "unknown query parameter \"{other}\": expected alloy, quantity, segment, units (stones go in \
                         the options part of a multipart/form-data request)"
                    ),
                ))
            }
        }
    }
    Ok((o, segment_given))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => Ok(Some(k.to_owned())),
        _ => Err(ApiError::bad_request(
            "bad_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
        )),
    }
}

/// The W3C `traceparent` the job travels with: the request's when it sent a well-formed one (the caller's trace
/// goes on), else a new trace, so every job has a trace id its logs and result share.
fn traceparent(headers: &HeaderMap) -> String {
    let incoming = headers.get("traceparent").and_then(|v| v.to_str().ok());
    match incoming.filter(|tp| jobs::trace::trace_id(Some(tp)).is_some()) {
        Some(tp) => tp.to_owned(),
        None => jobs::trace::new_traceparent(),
    }
}

/// Submit a model for a quote.
///
/// Send the model as the body (`model/stl`, `model/gltf-binary`, `model/gltf+json`, or
/// `application/octet-stream` to have the format sniffed) with options as query parameters, or as
/// `multipart/form-data` with a `model` part, an optional `options` JSON part, and for a `.gltf` whose buffers
/// are separate files, one `buffer` part per file, named by the URI the `.gltf` gives it.
///
/// Read: binary and ASCII STL; GLB and `.gltf` (embedded `data:` buffers, or `buffer` parts), including
/// `KHR_draco_mesh_compression`, `EXT_meshopt_compression` / `KHR_meshopt_compression` and
/// `KHR_mesh_quantization` geometry; extensions that only touch materials or textures are ignored. A buffer URI
/// that is a URL, an absolute path or leads out through `..` is refused (`gltf_buffer_uri_refused`), and a `.gltf`
/// that names a file the request lacks is refused with the list (`gltf_missing_buffer`).
#[utoipa::path(
    post,
    path = "/v1/quotes",
    tag = "quotes",
    params(
        ("alloy" = Option<Vec<String>>, Query, description = "Alloy id from /v1/rules; repeatable; none means every alloy"),
        ("quantity" = Option<u32>, Query, description = "Pieces ordered (default 1)"),
        ("segment" = Option<String>, Query, description = "Customer segment from /v1/rules (default b2c; with tenants, the tenant's first segment, and only its segments)"),
        ("units" = Option<String>, Query, description = "mm, cm, m or in (default: the format's own; STL is mm)"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retried submit (same key, model and options) returns the first job"),
    ),
    request_body(content(
        ("model/stl"), ("model/gltf-binary"), ("model/gltf+json"), ("application/octet-stream"),
        (inline(SubmitForm) = "multipart/form-data"),
    )),
    responses(
        (status = 202, description = "Queued", body = Accepted),
        (status = 400, description = "Malformed request", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key", body = ErrorResponse),
        (status = 403, description = "A segment the tenant may not use (segment_not_allowed), naming the ones it may", body = ErrorResponse),
        (status = 429, description = "The tenant is over its requests per minute (rate_limited) or its unfinished jobs (too_many_in_flight); nothing was queued; Retry-After says when to retry", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 409, description = "A request with this Idempotency-Key is still in progress", body = ErrorResponse),
        (status = 413, description = "Over the upload limit", body = ErrorResponse),
        (status = 415, description = "Not a model format", body = ErrorResponse),
        (status = 422, description = "Options the rules cannot price, a .gltf whose buffer files are missing or refused, or an Idempotency-Key first used for another request", body = ErrorResponse),
        (status = 503, description = "Store or queue unavailable, or the job database full (storage_full)", body = ErrorResponse),
    ),
    security(("api_key" = []), ())
)]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(tenant): Extension<TenantOf>,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    // Over the limit of unfinished jobs: refused before anything is uploaded (a retry with an idempotency key is
    // read first: it may name a job already accepted, which is answered whatever the count).
    if let Some(t) = &tenant.tenant {
        let retry = headers.contains_key("idempotency-key");
        if let Some(max) = t.max_in_flight.filter(|m| !retry && state.in_flight.count(&t.id) >= *m as usize) {
            return Err(too_many_in_flight(t, max));
        }
    }
    let mut reservation = Reservation { state: &state, key: None };
    // A retry with a key already answered is read like a new request (its model lands on the stored copy), then
    // answered with the first job when it is the same request, refused when it is not.
    let mut replay: Option<Arc<Answered>> = None;
    let key = idempotency_key(&headers)?;
    if let Some(key) = &key {
        let key = (caller.clone(), key.clone());
        match begin(&state, &key) {
            Ok(()) => reservation.key = Some(key),
            Err(Some(first)) => replay = Some(first),
            Err(None) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being processed: retry when it has answered",
                ))
            }
        }
    }

    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let declared = declared(content_type)?;
    let limit = state.config.max_upload_bytes;
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some() && length.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }

    let (stored, format, options, buffers) = match declared {
        Some(declared) => {
            let (options, segment_given) = query_options(request.uri())?;
            let options = checked(&state, &tenant, options, segment_given)?;
            let body: Body = request.into_body();
            let (stored, format) = store_stream(&state, body.into_data_stream(), declared, |e| {
                ApiError::bad_request("body_interrupted", format!("the request body could not be read: {e}"))
            })
            .await?;
            (stored, format, options, Vec::new())
        }
        None => {
            if request.uri().query().is_some_and(|q| !q.is_empty()) {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    "a multipart/form-data submission takes its options from the options part, not the query string",
                ));
            }
            multipart(&state, &tenant, request).await?
        }
    };
    let stored = whole_gltf(&state, stored, format, buffers).await?;

    let request = Fingerprint { sha256: stored.sha256.clone(), options: options.clone() };
    if let Some(first) = replay {
        if first.request != request {
            return Err(ApiError::unprocessable(
                "idempotency_key_reused",
                format!(
                    "this Idempotency-Key was first used for another model or other options (job {}): send a new \
                     key with a new request",
                    first.accepted.job_id
                ),
            ));
        }
        let mut accepted = first.accepted.clone();
        accepted.status = state.book.get(&accepted.job_id).map_or(accepted.status, |j| j.status());
        return Ok(replayed(&accepted));
    }

    // With an idempotency key the job id is derived from the caller, the key and the request: any gateway
    // instance that sees a retry names the same job. The request is part of it so that a key reused for another
    // model or other options (after its time to live here, or through an instance that never saw it) can never
    // be answered with the first request's price.
    let job_id = match &key {
        Some(key) => idempotent_job_id(&caller.id(), key, &request.digest()),
        None => new_job_id(),
    };
    let accepted = Accepted {
        status_url: format!("/v1/quotes/{job_id}"),
        events_url: format!("/v1/quotes/{job_id}/events"),
        job_id: job_id.clone(),
        status: Status::Queued,
        model: ModelInfo { sha256: stored.sha256.clone(), size_bytes: stored.size, format: format.family().to_owned() },
    };
    let model = ModelRef { key: stored.key, sha256: stored.sha256.clone(), format: Some(format) };
    let tenant_id = tenant.id().map(str::to_owned);
    let job = Job::new(job_id.clone(), model, options, state.config.job_deadline).for_tenant(tenant_id.clone());
    let destination = state.queue.destination();
    let send = tracing::info_span!(
        "send",
        otel.name = format!("send {destination}"),
        otel.kind = "producer",
        messaging.system = state.queue.messaging_system(),
        messaging.operation.type = "send",
        messaging.destination.name = destination,
        assay.job_id = %job_id,
        assay.model_sha256 = %stored.sha256,
    );
    // The job carries the send span's context; without an OpenTelemetry layer, the caller's or a new trace.
    let traceparent = jobs::trace::of_span(&send).unwrap_or_else(|| traceparent(&headers));
    let trace_id = jobs::trace::trace_id(Some(&traceparent)).unwrap_or_default();
    // In the book before it is queued: an answer cannot arrive for a job the book does not know. A job the book
    // already holds under this id is a retry through another instance (or after this one forgot the key):
    // answered with that job, not queued twice.
    let known = key.is_some() && state.job(&job_id).await.is_some();
    if known || !state.book.accept(&job_id, job.submitted_at_ms, Some(traceparent.clone()), tenant_id.clone()) {
        let mut accepted = accepted;
        accepted.status = state.book.get(&job_id).map_or(Status::Queued, |j| j.status());
        reservation.complete(&accepted, request);
        return Ok(replayed(&accepted));
    }
    if let Some(s) = &tenant.session {
        if !state.take_session_quote(s) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "session_used_up",
                format!("this quote session has made its {} quotes: ask the shop for a new link", s.quotes),
            ));
        }
    }
    if let Some(t) = &tenant.tenant {
        if !state.in_flight.admit(&t.id, &job_id, t.max_in_flight) {
            state.book.withdraw(&job_id);
            return Err(too_many_in_flight(t, t.max_in_flight.unwrap_or(0)));
        }
    }
    if let Err(e) = tracing::Instrument::instrument(state.queue.submit(&job, Some(&traceparent)), send).await {
        state.book.withdraw(&job_id);
        if let Some(t) = &tenant_id {
            state.in_flight.finish(t, &job_id);
        }
        tracing::error!(job.id = %job_id, trace.id = %trace_id, error = %e, "cannot queue a job");
        return Err(match e {
            jobs::QueueError::Full(why) => ApiError::unavailable("storage_full", format!("{why}: try again later")),
            _ => ApiError::unavailable("queue_unavailable", "the job queue is unavailable: try again shortly"),
        });
    }
    tracing::info!(job.id = %job_id, trace.id = %trace_id, model.sha256 = %stored.sha256, model.size = stored.size, format = format.as_str(), "job accepted");
    metrics::counter!(jobs::metric::GATEWAY_JOBS_ACCEPTED).increment(1);
    metrics::histogram!(jobs::metric::GATEWAY_UPLOAD_BYTES).record(stored.size as f64);
    reservation.complete(&accepted, request);
    Ok(accepted_response(&accepted))
}

fn replayed(accepted: &Accepted) -> Response {
    let mut response = accepted_response(accepted);
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

fn accepted_response(a: &Accepted) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(a)).into_response();
    if let Ok(location) = HeaderValue::from_str(&a.status_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A `.gltf`'s buffer files sent as `buffer` parts: each part's filename, and its bytes.
type BufferParts = Vec<(String, Bytes)>;
type Submission = (StoredModel, models::Format, Options, BufferParts);

/// A `.gltf` whose buffers are files, made whole from the request's `buffer` parts: the whole model is stored and
/// replaces the upload. A model that names no files is kept as it came; a file it names that the request lacks, a
/// URI that leads out of its folder, and a part it does not name are refused, each by name.
async fn whole_gltf(
    state: &AppState,
    stored: StoredModel,
    format: models::Format,
    parts: BufferParts,
) -> Result<StoredModel, ApiError> {
    if format != models::Format::Gltf {
        return match parts.first() {
            None => Ok(stored),
            Some((name, _)) => Err(ApiError::unprocessable(
                "unused_buffer",
                format!(
                    "the buffer part \"{name}\" is for a .gltf's external files, but the model is {}",
                    format.as_str()
                ),
            )),
        };
    }
    let unavailable = |e: model_store::StoreError| {
        tracing::error!(error = %e, "reading an upload back from the model store");
        ApiError::unavailable("store_unavailable", "the model store is unavailable: try again shortly")
    };
    let bytes = state.store.get(&stored.key, &stored.sha256).await.map_err(unavailable)?;
    let refused = |e: models::ModelError| ApiError::unprocessable(e.code(), e.to_string());
    let named = models::gltf_external_buffers(&bytes).map_err(refused)?;
    if named.is_empty() && parts.is_empty() {
        return Ok(stored);
    }
    let names = |b: &models::ExternalBuffer, part: &str| part == b.uri || part == b.path;
    if let Some((unused, _)) = parts.iter().find(|(part, _)| !named.iter().any(|b| names(b, part))) {
        let wanted: Vec<String> = named.iter().map(|b| format!("\"{}\"", b.uri)).collect();
        return Err(ApiError::unprocessable(
            "unused_buffer",
            format!(
                "the buffer part \"{unused}\" is not a file the .gltf names (it names {})",
                if wanted.is_empty() { "none".to_owned() } else { wanted.join(", ") }
            ),
        ));
    }
    let whole = models::embed_gltf_buffers(&bytes, |path| {
        parts.iter().find(|(part, _)| named.iter().any(|b| b.path == path && names(b, part))).map(|(_, b)| b.to_vec())
    })
    .map_err(refused)?;
    state.store.put(whole.into()).await.map_err(unavailable)
}

/// A `multipart/form-data` submission: a `model` part (streamed), an optional `options` JSON part and a `.gltf`'s
/// `buffer` parts, in any order.
async fn multipart(state: &AppState, tenant: &TenantOf, request: Request) -> Result<Submission, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request("bad_multipart", format!("the multipart body cannot be read: {}", e.body_text()))
    };
    let mut form = Multipart::from_request(request, &()).await.map_err(|e| {
        ApiError::bad_request("bad_multipart", format!("the multipart body cannot be read: {}", e.body_text()))
    })?;
    let mut options: Option<Options> = None;
    let mut model: Option<(StoredModel, models::Format)> = None;
    let mut buffers: BufferParts = Vec::new();
    let mut buffer_bytes = 0u64;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or("") {
            "options" => {
                if options.is_some() {
                    return Err(ApiError::bad_request("bad_multipart", "the options part appears twice"));
                }
                let mut text = Vec::new();
                let mut field = field;
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    if text.len() + chunk.len() > MAX_OPTIONS_BYTES {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "too_large",
                            format!("the options part is over {MAX_OPTIONS_BYTES} bytes"),
                        ));
                    }
                    text.extend_from_slice(&chunk);
                }
                let invalid = |e: serde_json::Error| {
                    ApiError::unprocessable(
                        "invalid_options",
                        format!(
                            "the options part is not valid: {e}; expected a JSON object with alloys, quantity, \
                             segment, stones, units"
                        ),
                    )
                };
                let value: serde_json::Value = serde_json::from_slice(&text).map_err(invalid)?;
                let segment_given = value.get("segment").is_some();
                let body: Options = serde_json::from_value(value).map_err(|e| {
                    ApiError::unprocessable(
                        "invalid_options",
                        format!(
                            "the options part is not valid: {e}; expected a JSON object with alloys, quantity, \
                             segment, stones, units"
                        ),
                    )
                })?;
                options = Some(checked(state, tenant, body, segment_given)?);
            }
            "model" => {
                if model.is_some() {
                    return Err(ApiError::bad_request(
                        "bad_multipart",
                        "the model part appears twice: send one model per job",
                    ));
                }
                let declared = declared(field.content_type())?.unwrap_or(Declared::Sniff);
                model = Some(store_stream(state, field, declared, bad).await?);
            }
            "buffer" => {
                let Some(name) = field.file_name().map(str::to_owned).filter(|n| !n.is_empty()) else {
                    return Err(ApiError::bad_request(
                        "bad_multipart",
                        "a buffer part needs a filename: the URI the .gltf gives that buffer",
                    ));
                };
                if buffers.iter().any(|(n, _)| *n == name) {
                    return Err(ApiError::bad_request("bad_multipart", format!("the buffer \"{name}\" appears twice")));
                }
                let mut data = Vec::new();
                let mut field = field;
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    buffer_bytes += chunk.len() as u64;
                    if buffer_bytes > state.config.max_upload_bytes {
                        return Err(too_large(state.config.max_upload_bytes));
                    }
                    data.extend_from_slice(&chunk);
                }
                buffers.push((name, Bytes::from(data)));
            }
            other => {
                return Err(ApiError::bad_request(
                    "bad_multipart",
                    format!(
                        "unknown part \"{other}\": expected a \"model\" part, an optional \"options\" part and, \
                         for a .gltf, its \"buffer\" parts"
                    ),
                ))
            }
        }
    }
    let Some((stored, format)) = model else {
        return Err(ApiError::bad_request("missing_model", "no \"model\" part: attach the model file as \"model\""));
    };
    let options = match options {
        Some(o) => o,
        None => checked(state, tenant, Options::default(), false)?,
    };
    Ok((stored, format, options, buffers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_type_must_agree_with_the_bytes() {
        let stl = models::to_binary_stl(&models::synth::ring_band(8.0, 10.0, 2.0, 8, 4));
        let head = &stl[..models::HEAD_BYTES];
        assert_eq!(detected(head, stl.len() as u64, Declared::Sniff), Ok(models::Format::StlBinary));
        assert_eq!(detected(head, stl.len() as u64, Declared::Stl), Ok(models::Format::StlBinary));
        let e = detected(head, stl.len() as u64, Declared::Glb).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unknown_format"));
        assert!(e.message.contains("sent as GLB but its bytes are a binary STL"), "{}", e.message);
        assert_eq!(detected(b"\n  {\"asset\":", 20, Declared::Gltf), Ok(models::Format::Gltf));
        let e = detected(b"GIF89a", 6, Declared::Sniff).unwrap_err();
        assert_eq!(e.code, "unknown_format");
    }

    #[test]
    fn content_types() {
        assert_eq!(declared(Some("model/stl")), Ok(Some(Declared::Stl)));
        assert_eq!(declared(Some("Model/GLTF-Binary; charset=x")), Ok(Some(Declared::Glb)));
        assert_eq!(declared(None), Ok(Some(Declared::Sniff)));
        assert_eq!(declared(Some("multipart/form-data; boundary=x")), Ok(None));
        let e = declared(Some("image/png")).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
    }
}
