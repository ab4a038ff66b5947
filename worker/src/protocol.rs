//! The job protocol: versioned JSON messages. A job names a model in the store (never its bytes); a result
//! carries the geometry, the quotes and the time every stage took.

use serde::{Deserialize, Serialize};

/// The protocol version this build writes and reads.
pub const VERSION: u32 = 1;

/// Largest job message accepted: jobs are small, a bigger one is not ours.
pub const MAX_JOB_BYTES: usize = 64 * 1024;

/// A quote job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Protocol version: 1.
    pub v: u32,
    pub job_id: String,
    pub model: ModelRef,
    #[serde(default)]
    pub options: JobOptions,
    /// When the shop submitted it, in milliseconds since the Unix epoch.
    pub submitted_at_ms: u64,
    /// When the answer stops being useful, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// Where the model is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// The store key.
    pub key: String,
    /// SHA-256 of the bytes, lowercase hex: checked when the model is read, and the Kafka key of the job.
    pub sha256: String,
    /// What the uploader said the format is ("stl", "glb", "gltf"); the bytes decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The unit of the coordinates; the format's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<models::Units>,
}

/// What to price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    #[serde(default)]
    pub alloys: Vec<String>,
    #[serde(default = "one")]
    pub quantity: u32,
    #[serde(default = "b2c")]
    pub segment: String,
    #[serde(default)]
    pub stones: Vec<pricing_rules::StoneRequest>,
}

fn one() -> u32 {
    1
}

fn b2c() -> String {
    "b2c".into()
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions { alloys: Vec::new(), quantity: 1, segment: b2c(), stones: Vec::new() }
    }
}

impl From<&JobOptions> for pricing_rules::QuoteRequest {
    fn from(o: &JobOptions) -> Self {
        pricing_rules::QuoteRequest {
            alloys: o.alloys.clone(),
            quantity: o.quantity,
            segment: o.segment.clone(),
            stones: o.stones.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A progress message: a worker has started the job. Not a result: a final `done` or `failed` follows.
    Running,
    Done,
    Failed,
}

impl Status {
    /// Whether this is a job's answer (`done` or `failed`) rather than progress.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Running)
    }
}

/// Milliseconds each stage took. `queue_wait` is from submission to the start of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
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
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// The answer to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub v: u32,
    pub job_id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices_date: Option<String>,
    /// The customer segment and the quantity the quotes are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<models::Report>,
    #[serde(default)]
    pub quotes: Vec<pricing_rules::Quote>,
    #[serde(default)]
    pub detected_stones: Vec<pricing_rules::DetectedStone>,
    #[serde(default)]
    pub warnings: Vec<String>,
    pub timings_ms: Timings,
    /// The worker instance that answered.
    pub worker: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl JobResult {
    /// A message with a status and nothing measured or priced yet.
    fn bare(job_id: &str, worker: &str, status: Status) -> JobResult {
        JobResult {
            v: VERSION,
            job_id: job_id.to_owned(),
            status,
            rules_version: None,
            prices_date: None,
            segment: None,
            quantity: None,
            geometry: None,
            quotes: Vec::new(),
            detected_stones: Vec::new(),
            warnings: Vec::new(),
            timings_ms: Timings::default(),
            worker: worker.to_owned(),
            trace_id: None,
            error: None,
        }
    }

    /// The progress message a worker sends when it starts a job.
    pub fn running(job_id: &str, worker: &str, trace_id: Option<String>) -> JobResult {
        JobResult { trace_id, ..JobResult::bare(job_id, worker, Status::Running) }
    }

    pub fn failed(job_id: &str, worker: &str, code: &str, message: impl Into<String>) -> JobResult {
        JobResult {
            error: Some(ErrorBody { code: code.to_owned(), message: message.into() }),
            ..JobResult::bare(job_id, worker, Status::Failed)
        }
    }
}

/// Why a message is not a job, and its job id when that much could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    pub reason: String,
    pub job_id: Option<String>,
}

/// Decodes a job message, refusing oversized, malformed and newer-version messages with a reason.
pub fn decode_job(payload: &[u8]) -> Result<Job, Undecodable> {
    if payload.len() > MAX_JOB_BYTES {
        return Err(Undecodable {
            reason: format!("job message of {} bytes is over the limit of {MAX_JOB_BYTES}", payload.len()),
            job_id: None,
        });
    }
    let job_id = || {
        serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v.get("job_id").and_then(|j| j.as_str()).map(str::to_owned))
            .filter(|id| is_valid_job_id(id))
    };
    let job: Job = serde_json::from_slice(payload)
        .map_err(|e| Undecodable { reason: format!("not a job message: {e}"), job_id: job_id() })?;
    if job.v != VERSION {
        return Err(Undecodable {
            reason: format!("job protocol version {} is not {VERSION}, the one this worker reads", job.v),
            job_id: job_id(),
        });
    }
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
            r#"{{"v":1,"job_id":"j-1","model":{{"key":"models/{s}","sha256":"{s}"}},"submitted_at_ms":1}}"#,
            s = "a".repeat(64)
        )
    }

    #[test]
    fn a_minimal_job_decodes_with_defaults() {
        let job = decode_job(job_json().as_bytes()).unwrap();
        assert_eq!(job.options, JobOptions::default());
        assert_eq!(job.deadline_ms, None);
    }

    #[test]
    fn undecodable_messages_keep_the_job_id_when_they_can() {
        let e = decode_job(job_json().replace("\"v\":1", "\"v\":1,\"colour\":\"red\"").as_bytes()).unwrap_err();
        assert_eq!(e.job_id.as_deref(), Some("j-1"));
        assert!(e.reason.contains("unknown field `colour`"), "{}", e.reason);
        let e = decode_job(b"\x00\x01garbage").unwrap_err();
        assert_eq!(e.job_id, None);
        let e = decode_job(job_json().replace("\"v\":1", "\"v\":2").as_bytes()).unwrap_err();
        assert_eq!(e.reason, "job protocol version 2 is not 1, the one this worker reads");
        let e = decode_job(job_json().replace("j-1", "../etc").as_bytes()).unwrap_err();
        assert_eq!(e.job_id, None);
    }
}
