//! Every metric assay records, named once. Code records through these constants; [`CATALOGUE`] gives each its
//! kind, unit and help text for the exporter, and a test checks it against the dashboard, the alert rules and
//! the metrics table in `k8s/observability`.

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: its name, kind, unit and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<metrics::Unit>,
    pub help: &'static str,
}

pub const HTTP_REQUESTS: &str = "assay_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "assay_http_request_duration_seconds";
pub const GATEWAY_JOBS_ACCEPTED: &str = "assay_gateway_jobs_accepted_total";
pub const GATEWAY_UPLOAD_BYTES: &str = "assay_gateway_upload_bytes";
pub const GATEWAY_WEBSOCKETS_OPEN: &str = "assay_gateway_websockets_open";
pub const JOBS: &str = "assay_jobs_total";
pub const JOB_STAGE_DURATION: &str = "assay_job_stage_duration_seconds";
pub const JOB_QUEUE_WAIT: &str = "assay_job_queue_wait_seconds";
pub const JOBS_IN_FLIGHT: &str = "assay_jobs_in_flight";
pub const MODEL_SIZE: &str = "assay_model_size_bytes";
pub const MODEL_TRIANGLES: &str = "assay_model_triangles";
pub const CACHE_HITS: &str = "assay_cache_hits_total";
pub const CACHE_MISSES: &str = "assay_cache_misses_total";
pub const DEAD_LETTERS: &str = "assay_dead_letters_total";
pub const RULES_INFO: &str = "assay_rules_info";
pub const RULES_RELOADS: &str = "assay_rules_reloads_total";
pub const RULES_RELOAD_FAILURES: &str = "assay_rules_reload_failures_total";
pub const KAFKA_CONSUMER_LAG: &str = "assay_kafka_consumer_lag";
pub const WEBHOOK_ATTEMPTS: &str = "assay_webhook_attempts_total";
pub const WEBHOOK_ATTEMPT_DURATION: &str = "assay_webhook_attempt_duration_seconds";
pub const WEBHOOK_GIVEN_UP: &str = "assay_webhook_given_up_total";
pub const WEBHOOK_PENDING: &str = "assay_webhook_pending";

const fn m(name: &'static str, kind: Kind, unit: Option<metrics::Unit>, help: &'static str) -> Metric {
    Metric { name, kind, unit, help }
}

use metrics::Unit;
use Kind::{Counter, Gauge, Histogram};

/// Every metric, with its help text.
pub const CATALOGUE: &[Metric] = &[
    m(HTTP_REQUESTS, Counter, None, "HTTP requests answered, by route template, method and status"),
    m(
        HTTP_REQUEST_DURATION,
        Histogram,
        Some(Unit::Seconds),
        "Time to answer an HTTP request, by route template and method (a submission includes its upload)",
    ),
    m(GATEWAY_JOBS_ACCEPTED, Counter, None, "Quote jobs accepted and queued"),
    m(GATEWAY_UPLOAD_BYTES, Histogram, Some(Unit::Bytes), "Size of accepted model uploads"),
    m(GATEWAY_WEBSOCKETS_OPEN, Gauge, None, "Event WebSockets open now"),
    m(JOBS, Counter, None, "Quote jobs finished, by outcome (done, failed) and error code"),
    m(
        JOB_STAGE_DURATION,
        Histogram,
        Some(Unit::Seconds),
        "Time a job spent in each stage: fetch, parse, analyze, price, and total from submission",
    ),
    m(JOB_QUEUE_WAIT, Histogram, Some(Unit::Seconds), "Time from submission until a worker took the job"),
    m(JOBS_IN_FLIGHT, Gauge, None, "Jobs this process is working on now"),
    m(MODEL_SIZE, Histogram, Some(Unit::Bytes), "Size of the models fetched from the store"),
    m(MODEL_TRIANGLES, Histogram, Some(Unit::Count), "Triangles of the models measured"),
    m(CACHE_HITS, Counter, None, "Jobs whose geometry came from the cache"),
    m(CACHE_MISSES, Counter, None, "Jobs whose model had to be fetched and measured"),
    m(DEAD_LETTERS, Counter, None, "Undecodable job messages put on the dead-letter queue"),
    m(RULES_INFO, Gauge, None, "1 for the version of the pricing rules in force (0 for earlier ones)"),
    m(RULES_RELOADS, Counter, None, "Edits of the rules directory taken into force"),
    m(RULES_RELOAD_FAILURES, Counter, None, "Edits of the rules directory refused (last good rules kept)"),
    m(
        KAFKA_CONSUMER_LAG,
        Gauge,
        Some(Unit::Count),
        "Messages behind the end of each jobs partition this worker consumes (librdkafka statistics)",
    ),
    m(
        WEBHOOK_ATTEMPTS,
        Counter,
        None,
        "Webhook attempts by outcome: delivered, retry, given_up (the last retry failed), gone (410)",
    ),
    m(WEBHOOK_ATTEMPT_DURATION, Histogram, Some(Unit::Seconds), "Time from sending a webhook to its answer or failure"),
    m(
        WEBHOOK_GIVEN_UP,
        Counter,
        None,
        "Webhook deliveries ended without a 2xx (retries used up, 410, webhook removed)",
    ),
    m(WEBHOOK_PENDING, Gauge, Some(Unit::Count), "Webhook deliveries waiting for their next attempt in this notifier"),
];

/// Registers the help text and unit of every metric (call once the recorder is installed).
pub fn describe_all() {
    for m in CATALOGUE {
        match (m.kind, m.unit) {
            (Kind::Counter, Some(u)) => metrics::describe_counter!(m.name, u, m.help),
            (Kind::Counter, None) => metrics::describe_counter!(m.name, m.help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(m.name, u, m.help),
            (Kind::Gauge, None) => metrics::describe_gauge!(m.name, m.help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(m.name, u, m.help),
            (Kind::Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
    }
}
