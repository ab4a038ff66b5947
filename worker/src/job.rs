//! One job, start to finish: check the deadline, fetch the model (retrying a briefly unreachable store), measure it
//! on rayon (or take it from the cache), price it with the rules in force, and time every stage.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs::protocol::{ErrorBody, Failure, Job, JobResult, Outcome, Priced, Timings};
use jobs::{metric, Backoff, BoundedMap};
use model_store::{ModelStore, StoreError};
use pricing_rules::Rules;
use tracing::Instrument as _;

use crate::cache::GeometryCache;

/// A worker's tuning, with the defaults a service starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Memory for geometry reports of recent models, by model hash and units (default 64 MiB).
    pub cache_bytes: usize,
    /// Final results remembered by job id, so a redelivered job gets the answer it already had (default 10,000).
    pub recent_results: usize,
    /// Tries at reading a model while the store is unreachable (default 5 tries, waits from 100 ms, doubling).
    pub fetch: Backoff,
    /// Tries at publishing a result or dead letter before the delivery is left to be redelivered (default 5
    /// tries, waits from 200 ms, doubling).
    pub publish: Backoff,
    /// Bounds on what one model may make the parser do.
    pub limits: models::Limits,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            cache_bytes: 64 << 20,
            recent_results: 10_000,
            fetch: Backoff::new(5, Duration::from_millis(100)),
            publish: Backoff::new(5, Duration::from_millis(200)),
            limits: models::Limits::default(),
        }
    }
}

/// What every job of a worker shares.
#[derive(Debug)]
pub struct Context {
    /// This worker instance's name, in every result.
    pub name: String,
    pub store: ModelStore,
    pub rules: Rules,
    pub config: WorkerConfig,
    pub cache: GeometryCache,
    /// Final results of recent jobs by id.
    recent: Mutex<BoundedMap<String, JobResult>>,
}

impl Context {
    pub fn new(name: &str, store: ModelStore, rules: Rules) -> Context {
        Context::with_config(name, store, rules, WorkerConfig::default())
    }

    pub fn with_config(name: &str, store: ModelStore, rules: Rules, config: WorkerConfig) -> Context {
        Context {
            name: name.to_owned(),
            store,
            rules,
            cache: GeometryCache::new(config.cache_bytes),
            recent: Mutex::new(BoundedMap::new(config.recent_results)),
            config,
        }
    }

    fn remember(&self, result: &JobResult) {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).insert(result.job_id.clone(), result.clone());
    }

    fn recalled(&self, job_id: &str) -> Option<JobResult> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).get(job_id).cloned()
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Runs a job to its result, which is `failed` with a precise code when the job cannot be priced.
pub async fn process(ctx: &Context, job: &Job, traceparent: Option<&str>) -> JobResult {
    if let Some(previous) = ctx.recalled(&job.job_id) {
        return previous;
    }
    let started = Instant::now();
    let now = jobs::now_ms();
    let mut t = Timings { queue_wait: now.saturating_sub(job.submitted_at_ms) as f64, ..Timings::default() };
    let fail = |code: &str, message: String, rules_version: Option<String>, t: Timings| {
        let timings_ms = Timings { total: ms(started.elapsed()) + t.queue_wait, ..t };
        let error = ErrorBody { code: code.to_owned(), message };
        Outcome::Failed(Box::new(Failure { error, rules_version, timings_ms }))
    };
    let outcome = 'work: {
        if let Some(deadline) = job.deadline_ms {
            if now > deadline {
                break 'work fail(
                    "deadline_exceeded",
                    format!("the job's deadline passed {} ms before a worker took it", now - deadline),
                    None,
                    t,
                );
            }
        }
        let units = job.options.units;
        let report = match ctx.cache.get(&job.model.sha256, units) {
            Some(r) => {
                metrics::counter!(metric::CACHE_HITS).increment(1);
                r
            }
            None => {
                metrics::counter!(metric::CACHE_MISSES).increment(1);
                let fetch = Instant::now();
                let bytes = match fetch_with_retry(ctx, job).instrument(tracing::info_span!("fetch")).await {
                    Ok(b) => b,
                    Err(e) => {
                        t.fetch = ms(fetch.elapsed());
                        let code = match e {
                            StoreError::NotFound { .. } => "model_not_found",
                            StoreError::HashMismatch { .. } => "model_corrupt",
                            _ => "store_unavailable",
                        };
                        break 'work fail(code, e.to_string(), None, t);
                    }
                };
                t.fetch = ms(fetch.elapsed());
                metrics::histogram!(metric::MODEL_SIZE).record(bytes.len() as f64);
                let options =
                    models::ParseOptions { units, limits: ctx.config.limits.clone(), format: job.model.format };
                match measure(bytes, options).await {
                    Ok((report, parse, analyze)) => {
                        t.parse = parse;
                        t.analyze = analyze;
                        metrics::histogram!(metric::MODEL_TRIANGLES).record(report.triangles as f64);
                        let report = Arc::new(report);
                        ctx.cache.insert(&job.model.sha256, units, report.clone());
                        report
                    }
                    Err((e, parse)) => {
                        t.parse = parse;
                        break 'work fail(e.code(), e.to_string(), None, t);
                    }
                }
            }
        };
        let price = Instant::now();
        // The worker's rules decide: a request the gateway checked against a copy that has since changed fails
        // here with the rules' own code (unknown_alloy, ...) and names the version that refused it.
        let rules = ctx.rules.current();
        let quotes = tracing::info_span!("price").in_scope(|| rules.price(&report, &job.options));
        t.price = ms(price.elapsed());
        match quotes {
            Ok(quotes) => {
                t.total = ms(started.elapsed()) + t.queue_wait;
                Outcome::Done(Box::new(Priced { quotes, geometry: (*report).clone(), timings_ms: t }))
            }
            Err(e) => fail(e.code(), e.to_string(), Some(rules.version.clone()), t),
        }
    };
    let result = JobResult {
        submitted_at_ms: Some(job.submitted_at_ms),
        tenant: job.tenant.clone(),
        ..JobResult::new(&job.job_id, &ctx.name, jobs::trace::trace_id(traceparent), outcome)
    };
    ctx.remember(&result);
    result
}

async fn fetch_with_retry(ctx: &Context, job: &Job) -> Result<bytes::Bytes, StoreError> {
    ctx.config
        .fetch
        .retry(
            || ctx.store.get(&job.model.key, &job.model.sha256),
            StoreError::is_transient,
            |attempt, e| tracing::warn!(job.id = %job.job_id, attempt, error = %e, "model store unreachable; retrying"),
        )
        .await
}

/// Parses and measures on rayon's pool, never on the async runtime's threads.
async fn measure(
    bytes: bytes::Bytes,
    options: models::ParseOptions,
) -> Result<(models::Report, f64, f64), (models::ModelError, f64)> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The stage spans are children of the job's span, opened on rayon's thread where the work happens.
    let job_span = tracing::Span::current();
    rayon::spawn(move || {
        let t = Instant::now();
        let mesh = tracing::info_span!(parent: &job_span, "parse").in_scope(|| models::parse(&bytes, &options));
        let parse = ms(t.elapsed());
        drop(bytes);
        let out = match mesh {
            Ok(mesh) => {
                let t = Instant::now();
                let report = tracing::info_span!(parent: &job_span, "analyze").in_scope(|| models::analyze(&mesh));
                Ok((report, parse, ms(t.elapsed())))
            }
            Err(e) => Err((e, parse)),
        };
        let _ = tx.send(out);
    });
    rx.await.unwrap_or_else(|_| {
        Err((models::ModelError::InvalidMesh { message: "the measuring task ended without an answer".into() }, 0.0))
    })
}
