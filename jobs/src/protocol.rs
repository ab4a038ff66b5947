//! The job protocol: versioned JSON messages. A job names a model in the store (never its bytes); a result is
//! the job's [`Outcome`]: running, done with the geometry, the quotes and the time every stage took, or failed
//! with an error.

use serde::{Deserialize, Serialize};

/// The protocol version this build writes and reads. 2: the units travel with the options, results carry their
/// outcome as one `status`-tagged object.
pub const VERSION: u32 = 2;

/// Largest job message accepted: jobs are small, a bigger one is not ours.
pub const MAX_JOB_BYTES: usize = 64 * 1024;

/// The destinations of the protocol's messages, as both transports name them by default.
pub const JOBS: &str = "assay.quote-jobs";
pub const RESULTS: &str = "assay.quote-results";
pub const DEAD_LETTERS: &str = "assay.quote-jobs.dlq";
/// The webhook deliveries' states, keyed by job id (compacted): the notifiers write, the gateways read.
pub const WEBHOOK_DELIVERIES: &str = "assay.webhook-deliveries";

/// The options of a quote, one type from the HTTP request to pricing.
pub use pricing_rules::QuoteRequest as Options;

/// A quote job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Protocol version: 2.
    pub v: u32,
    pub job_id: String,
    pub model: ModelRef,
    #[serde(default)]
    pub options: Options,
    /// When the shop submitted it, in milliseconds since the Unix epoch.
    pub submitted_at_ms: u64,
    /// When the answer stops being useful, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// The tenant that submitted it (the tenants file's id), when the gateway has tenants: its results carry it,
    /// so only that tenant sees them and its webhook hears of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl Job {
    /// The one way a job is made: submitted now, due within `deadline`.
    pub fn new(job_id: String, model: ModelRef, options: Options, deadline: std::time::Duration) -> Job {
        let now = crate::now_ms();
        Job {
            v: VERSION,
            job_id,
            model,
            options,
            submitted_at_ms: now,
            deadline_ms: Some(now.saturating_add(u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX))),
            tenant: None,
        }
    }

    /// The same job, submitted by `tenant`.
    pub fn for_tenant(self, tenant: Option<String>) -> Job {
        Job { tenant, ..self }
    }
}

/// A new job id: 128 random bits as 32 lowercase hex digits.
pub fn new_job_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The job id of a submission with an idempotency key: the same caller, key and request name the same job on
/// any gateway instance, so a retry through another instance finds the first job instead of making a second
/// one. 32 hex digits of SHA-256 over the three, told apart from random ids by nothing a client should rely on.
pub fn idempotent_job_id(caller: &str, key: &str, request: &str) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"assay idempotency key\0");
    for part in [caller, key, request] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("{:x}", h.finalize())[..32].to_owned()
}

/// Where the model is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// The store key.
    pub key: String,
    /// SHA-256 of the bytes, lowercase hex: checked when the model is read, and the Kafka key of the job.
    pub sha256: String,
    /// The format the gateway detected (`models::detect_head`); the worker parses it as that format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<models::Format>,
}

/// Where a job stands. Only a worker's messages travel on the queue: `queued` is the state a gateway gives a job
/// it accepted until the first message about it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted and waiting for a worker.
    Queued,
    /// A worker is measuring and pricing it.
    Running,
    /// Priced: the quotes are in the result.
    Done,
    /// Not priced: `error` says why.
    Failed,
}

impl Status {
    const ALL: [Status; 4] = [Status::Queued, Status::Running, Status::Done, Status::Failed];

    /// The status as the messages write it (`queued`, `running`, `done`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether this is a job's answer (`done` or `failed`) rather than its progress.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Failed)
    }
}

/// Milliseconds each stage took. `queue_wait` is from submission to the start of work; `total` from submission
/// to the result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timings {
    pub queue_wait: f64,
    pub fetch: f64,
    pub parse: f64,
    pub analyze: f64,
    pub price: f64,
    pub total: f64,
}

/// Why a job failed: a stable code and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable, for programs: `unknown_format`, `no_metal`, `unknown_alloy`, `deadline_exceeded`, ...
    pub code: String,
    /// For people: what was wrong and what is allowed.
    pub message: String,
}

/// A priced job: what was measured, the quotes, and the time each stage took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Priced {
    /// The rules version, prices date, segment and quantity, and one quote per alloy.
    #[serde(flatten)]
    pub quotes: pricing_rules::Quotes,
    /// The geometry report (as `assay analyze --json`).
    pub geometry: models::Report,
    pub timings_ms: Timings,
}

/// A job that was not priced: why, and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Failure {
    pub error: ErrorBody,
    /// The rules the worker checked the request against, when the failure is the rules' (an alloy the worker's
    /// rules do not have, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_version: Option<String>,
    pub timings_ms: Timings,
}

/// A job's state with exactly the facts that state has: a running job has no price, a failed one always has an
/// error. Serialized flat, tagged by `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Accepted and waiting for a worker (a gateway's state; never sent by a worker).
    Queued,
    /// A worker is measuring and pricing it.
    Running,
    /// Priced.
    Done(Box<Priced>),
    /// Not priced.
    Failed(Box<Failure>),
}

impl Outcome {
    pub fn status(&self) -> Status {
        match self {
            Outcome::Queued => Status::Queued,
            Outcome::Running => Status::Running,
            Outcome::Done(_) => Status::Done,
            Outcome::Failed(_) => Status::Failed,
        }
    }

    pub fn error(&self) -> Option<&ErrorBody> {
        match self {
            Outcome::Failed(f) => Some(&f.error),
            _ => None,
        }
    }

    pub fn timings(&self) -> Option<&Timings> {
        match self {
            Outcome::Done(p) => Some(&p.timings_ms),
            Outcome::Failed(f) => Some(&f.timings_ms),
            _ => None,
        }
    }
}

/// A worker's message about a job: progress (`running`) or its answer (`done`, `failed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub v: u32,
    pub job_id: String,
    /// The worker instance that sent it.
    pub worker: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// When the job was submitted, in ms since the Unix epoch (so any reader of the result knows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at_ms: Option<u64>,
    /// The tenant whose job it is (the job's `tenant`), so any gateway shows it to that tenant alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl JobResult {
    pub fn new(job_id: &str, worker: &str, trace_id: Option<String>, outcome: Outcome) -> JobResult {
        JobResult {
            v: VERSION,
            job_id: job_id.to_owned(),
            worker: worker.to_owned(),
            trace_id,
            submitted_at_ms: None,
            tenant: None,
            outcome,
        }
    }

    /// The progress message a worker sends when it starts a job.
    pub fn running(job_id: &str, worker: &str, trace_id: Option<String>) -> JobResult {
        JobResult::new(job_id, worker, trace_id, Outcome::Running)
    }

    /// A failed answer with nothing measured.
    pub fn failed(job_id: &str, worker: &str, code: &str, message: impl Into<String>) -> JobResult {
        let failure = Failure {
            error: ErrorBody { code: code.to_owned(), message: message.into() },
            rules_version: None,
            timings_ms: Timings::default(),
        };
        JobResult::new(job_id, worker, None, Outcome::Failed(Box::new(failure)))
    }

    pub fn status(&self) -> Status {
        self.outcome.status()
    }

    pub fn is_final(&self) -> bool {
        self.status().is_final()
    }
}

/// Why a message is not a job, and its job id when that much could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    pub reason: String,
    pub job_id: Option<String>,
}

/// Decodes a job message, refusing oversized, malformed and other-version messages with a reason.
pub fn decode_job(payload: &[u8]) -> Result<Job, Undecodable> {
    if payload.len() > MAX_JOB_BYTES {
        return Err(Undecodable {
            reason: format!("job message of {} bytes is over the limit of {MAX_JOB_BYTES}", payload.len()),
            job_id: None,
        });
    }
    let value = || serde_json::from_slice::<serde_json::Value>(payload).ok();
    let job_id = || {
        value()
            .and_then(|v| v.get("job_id").and_then(|j| j.as_str()).map(str::to_owned))
            .filter(|id| is_valid_job_id(id))
    };
    // The version first: a message of another version is named as such, not as a field error.
    if let Some(v) = value().and_then(|v| v.get("v").and_then(serde_json::Value::as_u64)) {
        if v != u64::from(VERSION) {
            return Err(Undecodable {
                reason: format!("job protocol version {v} is not {VERSION}, the one this worker reads"),
                job_id: job_id(),
            });
        }
    }
    let job: Job = serde_json::from_slice(payload)
        .map_err(|e| Undecodable { reason: format!("not a job message: {e}"), job_id: job_id() })?;
    if !is_valid_job_id(&job.job_id) {
        return Err(Undecodable { reason: "job_id must be 1 to 128 characters of [A-Za-z0-9_-]".into(), job_id: None });
    }
    if job.model.sha256.len() != 64 || !job.model.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Undecodable { reason: "model.sha256 must be 64 hex digits".into(), job_id: Some(job.job_id) });
    }
    Ok(job)
}

pub fn is_valid_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_json() -> String {
        format!(
            r#"{{"v":2,"job_id":"j-1","model":{{"key":"models/{s}","sha256":"{s}"}},"submitted_at_ms":1}}"#,
            s = "a".repeat(64)
        )
    }

    #[test]
    fn a_minimal_job_decodes_with_defaults() {
        let job = decode_job(job_json().as_bytes()).unwrap();
        assert_eq!(job.options, Options::default());
        assert_eq!(job.deadline_ms, None);
    }

    #[test]
    fn undecodable_messages_keep_the_job_id_when_they_can() {
        let e = decode_job(job_json().replace("\"v\":2", "\"v\":2,\"colour\":\"red\"").as_bytes()).unwrap_err();
        assert_eq!(e.job_id.as_deref(), Some("j-1"));
        assert!(e.reason.contains("unknown field `colour`"), "{}", e.reason);
        let e = decode_job(b"\x00\x01garbage").unwrap_err();
        assert_eq!(e.job_id, None);
        let e = decode_job(job_json().replace("\"v\":2", "\"v\":1").as_bytes()).unwrap_err();
        assert_eq!(e.reason, "job protocol version 1 is not 2, the one this worker reads");
        assert_eq!(e.job_id.as_deref(), Some("j-1"));
        let e = decode_job(job_json().replace("j-1", "../etc").as_bytes()).unwrap_err();
        assert_eq!(e.job_id, None);
    }

    #[test]
    fn results_are_flat_and_tagged_by_status() {
        let r = JobResult::failed("j", "w", "no_metal", "nothing to cast");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"]["code"], "no_metal");
        assert_eq!(serde_json::from_value::<JobResult>(v).unwrap(), r);
        let v = serde_json::to_value(JobResult::running("j", "w", None)).unwrap();
        assert_eq!(v, serde_json::json!({"v": 2, "job_id": "j", "worker": "w", "status": "running"}));
        // A message that claims `failed` without its error is not a result.
        assert!(serde_json::from_str::<JobResult>(r#"{"v":2,"job_id":"j","worker":"w","status":"failed"}"#).is_err());
    }

    #[test]
    fn idempotent_ids_depend_on_caller_key_and_request() {
        let a = idempotent_job_id("key:abc", "k1", "r");
        assert_eq!(a, idempotent_job_id("key:abc", "k1", "r"));
        assert_ne!(a, idempotent_job_id("key:abd", "k1", "r"));
        assert_ne!(a, idempotent_job_id("key:abc", "k2", "r"));
        assert_ne!(a, idempotent_job_id("key:abc", "k1", "s"));
        assert_ne!(idempotent_job_id("ab", "c", "r"), idempotent_job_id("a", "bc", "r"));
        assert!(is_valid_job_id(&a) && a.len() == 32);
    }
}
