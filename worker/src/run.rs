//! The job loop: bounded concurrency, at-least-once acknowledgement, and a drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use jobs::metric;
use jobs::protocol::{decode_job, JobResult, Outcome};
use jobs::queue::{Delivery, QueueError, WorkerQueue};
use pricing_rules::Rules;

use crate::job::{process, Context};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Jobs handled at once (default: the number of cores).
    pub concurrency: usize,
    /// How long in-flight jobs may take to finish after shutdown is asked for; what is left is redelivered.
    pub grace: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            grace: Duration::from_secs(30),
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunStats {
    pub finished: u64,
    /// Jobs still running when the grace period ended: not acknowledged, so redelivered elsewhere.
    pub abandoned: u64,
}

/// Takes jobs from `queue` until `shutdown` resolves (or the queue closes), then stops fetching, lets in-flight
/// jobs finish within the grace period, and closes the queue (commit, leave the group).
pub async fn run<Q: WorkerQueue>(
    queue: Arc<Q>,
    ctx: Arc<Context>,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> RunStats {
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut stats = RunStats::default();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let delivery = tokio::select! {
            _ = &mut shutdown => break,
            d = queue.next() => d,
        };
        match delivery {
            Ok(Some(d)) => {
                let (queue, ctx) = (queue.clone(), ctx.clone());
                tasks.spawn(async move {
                    handle(&*queue, &ctx, d).await;
                    drop(permit);
                });
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch jobs; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        while tasks.try_join_next().is_some() {
            stats.finished += 1;
        }
    }
    while tasks.try_join_next().is_some() {
        stats.finished += 1;
    }
    tracing::info!(in_flight = tasks.len(), "stopping: no new jobs; finishing those in flight");
    let drain = async {
        while tasks.join_next().await.is_some() {
            stats.finished += 1;
        }
    };
    if tokio::time::timeout(options.grace, drain).await.is_err() {
        stats.abandoned = tasks.len() as u64;
        tracing::warn!(abandoned = stats.abandoned, "grace period over: unfinished jobs will be redelivered");
        tasks.abort_all();
    }
    queue.close().await;
    stats
}

/// Handles one delivery; acknowledges it only once its result (or dead letter) is durable.
async fn handle<Q: WorkerQueue>(queue: &Q, ctx: &Context, d: Delivery) {
    use tracing::field::Empty;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    metrics::gauge!(metric::JOBS_IN_FLIGHT).increment(1.0);
    // One consumer span per job, child of the submitter's span (single-message processing: the quote stays one
    // trace) and linked to it, as the messaging conventions ask. Every log line of the job carries its id and
    // trace id (filled in once the message is decoded).
    let (jobs, _) = queue.destinations();
    let span = tracing::info_span!(
        "process",
        otel.name = format!("process {jobs}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = queue.messaging_system(),
        messaging.operation.type = "process",
        messaging.destination.name = jobs,
        messaging.destination.partition.id = Empty,
        messaging.kafka.offset = Empty,
        messaging.consumer.group.name = queue.consumer_group(),
        job.id = Empty,
        trace.id = Empty,
        assay.job_id = Empty,
        assay.model_sha256 = Empty,
        assay.triangles = Empty,
        assay.rules_version = Empty,
    );
    if let Some(p) = d.position {
        span.record("messaging.destination.partition.id", p.partition.to_string());
        span.record("messaging.kafka.offset", p.offset);
    }
    if let Some(parent) = d.traceparent.as_deref().and_then(jobs::trace::parse) {
        let _ = span.set_parent(jobs::trace::context(d.traceparent.as_deref()));
        span.add_link(parent);
    }
    handle_inner(queue, ctx, d).instrument(span).await;
    metrics::gauge!(metric::JOBS_IN_FLIGHT).decrement(1.0);
}

async fn handle_inner<Q: WorkerQueue>(queue: &Q, ctx: &Context, d: Delivery) {
    let result = match decode_job(&d.payload) {
        Ok(job) => {
            let span = tracing::Span::current();
            span.record("job.id", job.job_id.as_str());
            span.record("assay.job_id", job.job_id.as_str());
            span.record("assay.model_sha256", job.model.sha256.as_str());
            if let Some(trace) = jobs::trace::trace_id(d.traceparent.as_deref()) {
                span.record("trace.id", trace.as_str());
            }
            tracing::info!(model.sha256 = %job.model.sha256, "job started");
            let running = JobResult {
                submitted_at_ms: Some(job.submitted_at_ms),
                tenant: job.tenant.clone(),
                ..JobResult::running(&job.job_id, &ctx.name, jobs::trace::trace_id(d.traceparent.as_deref()))
            };
            queue.progress(&running, d.traceparent.as_deref()).await;
            process(ctx, &job, d.traceparent.as_deref()).await
        }
        Err(bad) => {
            tracing::warn!(reason = %bad.reason, "undecodable job message to the dead-letter queue");
            metrics::counter!(metric::DEAD_LETTERS).increment(1);
            if !publish(ctx, "dead letter", || queue.dead_letter(&d, &bad.reason)).await {
                return;
            }
            match bad.job_id {
                Some(id) => JobResult {
                    trace_id: jobs::trace::trace_id(d.traceparent.as_deref()),
                    ..JobResult::failed(&id, &ctx.name, "bad_message", bad.reason)
                },
                None => {
                    queue.done(&d);
                    return;
                }
            }
        }
    };
    record(&result);
    let span = tracing::Span::current();
    match &result.outcome {
        Outcome::Done(p) => {
            span.record("assay.rules_version", p.quotes.rules_version.as_str());
            span.record("assay.triangles", p.geometry.triangles);
            let t = &p.timings_ms;
            tracing::info!(
                queue_wait_ms = t.queue_wait,
                fetch_ms = t.fetch,
                parse_ms = t.parse,
                analyze_ms = t.analyze,
                price_ms = t.price,
                total_ms = t.total,
                "job done"
            );
        }
        Outcome::Failed(f) => {
            if let Some(v) = &f.rules_version {
                span.record("assay.rules_version", v.as_str());
            }
            span.record("otel.status_code", "ERROR");
            tracing::info!(code = %f.error.code, total_ms = f.timings_ms.total, "job failed");
        }
        Outcome::Queued | Outcome::Running => {}
    }
    let (_, results) = queue.destinations();
    let send = tracing::info_span!(
        "send",
        otel.name = format!("send {results}"),
        otel.kind = "producer",
        messaging.system = queue.messaging_system(),
        messaging.operation.type = "send",
        messaging.destination.name = results,
    );
    // The result travels with the send span's context (the job's own when no OpenTelemetry layer is installed).
    let traceparent = jobs::trace::of_span(&send).or_else(|| d.traceparent.clone());
    if publish(ctx, "result", || queue.publish(&result, traceparent.as_deref())).instrument(send).await {
        queue.done(&d);
    }
}

/// Tries a publish with the worker's backoff; false leaves the delivery unacknowledged, to be redelivered.
async fn publish<F, Fut>(ctx: &Context, what: &str, f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), QueueError>>,
{
    let outcome = ctx
        .config
        .publish
        .retry(f, |_| true, |attempt, e| tracing::warn!(attempt, error = %e, "cannot publish the {what}"))
        .await;
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "giving up publishing the {what}: the job stays unacknowledged and will be redelivered");
    }
    outcome.is_ok()
}

/// The job's outcome and stage times as metrics (seconds, as Prometheus wants them).
fn record(result: &JobResult) {
    let (outcome, code) = match result.outcome.error() {
        None => ("done", String::new()),
        Some(e) => ("failed", e.code.clone()),
    };
    metrics::counter!(metric::JOBS, "outcome" => outcome, "code" => code).increment(1);
    let Some(t) = result.outcome.timings() else { return };
    metrics::histogram!(metric::JOB_QUEUE_WAIT).record(t.queue_wait / 1e3);
    for (stage, ms) in
        [("fetch", t.fetch), ("parse", t.parse), ("analyze", t.analyze), ("price", t.price), ("total", t.total)]
    {
        metrics::histogram!(metric::JOB_STAGE_DURATION, "stage" => stage).record(ms / 1e3);
    }
}

/// Publishes the rules in force as metrics every few seconds: `assay_rules_info{version}` and the reload
/// counters, so a refused edit shows on a dashboard and in an alert.
pub async fn report_rules(rules: Rules) {
    let mut shown: Option<String> = None;
    loop {
        let version = rules.current().version.clone();
        if shown.as_deref() != Some(version.as_str()) {
            if let Some(old) = shown.take() {
                metrics::gauge!(metric::RULES_INFO, "version" => old).set(0.0);
            }
            metrics::gauge!(metric::RULES_INFO, "version" => version.clone()).set(1.0);
            shown = Some(version);
        }
        if let Some(status) = rules.reload_status() {
            metrics::counter!(metric::RULES_RELOADS).absolute(status.reloads);
            metrics::counter!(metric::RULES_RELOAD_FAILURES).absolute(status.failures);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
