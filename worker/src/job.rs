//! One job, start to finish: check the deadline, fetch the model (retrying a briefly unreachable store), measure it
//! on rayon (or take it from the cache), price it with the rules in force, and time every stage.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use crate::cache::GeometryCache;
use crate::protocol::{Job, JobResult, Status, Timings, VERSION};
use crate::store::{ModelStore, StoreError};

/// Where the rules come from: fixed, or a watched directory that reloads.
#[derive(Debug, Clone)]
pub enum Rules {
    Fixed(Arc<pricing_rules::RuleSet>),
    Watched(Arc<pricing_rules::RulesWatcher>),
}

impl Rules {
    pub fn current(&self) -> Arc<pricing_rules::RuleSet> {
        match self {
            Rules::Fixed(r) => r.clone(),
            Rules::Watched(w) => w.current(),
        }
    }
}

/// What every job of a worker shares.
#[derive(Debug)]
pub struct Context {
    /// This worker instance's name, in every result.
    pub name: String,
    pub store: ModelStore,
    pub cache: GeometryCache,
    pub rules: Rules,
    pub limits: models::Limits,
    /// Attempts at reading a model while the store is unreachable, with doubling waits from `retry_base`.
    pub fetch_attempts: u32,
    pub retry_base: Duration,
    recent: Mutex<RecentResults>,
}

/// Final results of recent jobs by id, so a redelivered job gets the answer it already had.
#[derive(Debug, Default)]
struct RecentResults {
    by_id: HashMap<String, JobResult>,
    order: VecDeque<String>,
}

const RECENT: usize = 10_000;

impl Context {
    pub fn new(name: &str, store: ModelStore, rules: Rules) -> Context {
        Context {
            name: name.to_owned(),
            store,
            cache: GeometryCache::new(64 << 20),
            rules,
            limits: models::Limits::default(),
            fetch_attempts: 5,
            retry_base: Duration::from_millis(100),
            recent: Mutex::new(RecentResults::default()),
        }
    }

    fn remember(&self, result: &JobResult) {
        let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if r.by_id.insert(result.job_id.clone(), result.clone()).is_none() {
            r.order.push_back(result.job_id.clone());
        }
        while r.order.len() > RECENT {
            if let Some(old) = r.order.pop_front() {
                r.by_id.remove(&old);
            }
        }
    }

    fn recalled(&self, job_id: &str) -> Option<JobResult> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).by_id.get(job_id).cloned()
    }
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id(traceparent: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = traceparent?.split('-').collect();
    (parts.len() == 4 && parts[1].len() == 32 && parts[1].bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| parts[1].to_owned())
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
    let now = crate::now_ms();
    let mut t = Timings { queue_wait: now.saturating_sub(job.submitted_at_ms) as f64, ..Timings::default() };
    let fail = |code: &str, message: String, t: Timings| {
        let mut r = JobResult::failed(&job.job_id, &ctx.name, code, message);
        r.timings_ms = Timings { total: ms(started.elapsed()) + t.queue_wait, ..t };
        r.trace_id = trace_id(traceparent);
        r
    };
    let result = 'work: {
        if let Some(deadline) = job.deadline_ms {
            if now > deadline {
                break 'work fail(
                    "deadline_exceeded",
                    format!("the job's deadline passed {} ms before a worker took it", now - deadline),
                    t,
                );
            }
        }
        let units = job.model.units;
        let report = match ctx.cache.get(&job.model.sha256, units) {
            Some(r) => {
                metrics::counter!("assay_cache_hits_total").increment(1);
                r
            }
            None => {
                metrics::counter!("assay_cache_misses_total").increment(1);
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
                        break 'work fail(code, e.to_string(), t);
                    }
                };
                t.fetch = ms(fetch.elapsed());
                metrics::histogram!("assay_model_size_bytes").record(bytes.len() as f64);
                let options = models::ParseOptions { units, limits: ctx.limits.clone() };
                match measure(bytes, options).await {
                    Ok((report, parse, analyze)) => {
                        t.parse = parse;
                        t.analyze = analyze;
                        metrics::histogram!("assay_model_triangles").record(report.triangles as f64);
                        let report = Arc::new(report);
                        ctx.cache.insert(&job.model.sha256, units, report.clone());
                        report
                    }
                    Err((e, parse)) => {
                        t.parse = parse;
                        break 'work fail(e.code(), e.to_string(), t);
                    }
                }
            }
        };
        let price = Instant::now();
        let rules = ctx.rules.current();
        let quotes = tracing::info_span!("price").in_scope(|| rules.price(&report, &(&job.options).into()));
        t.price = ms(price.elapsed());
        match quotes {
            Ok(q) => {
                t.total = ms(started.elapsed()) + t.queue_wait;
                JobResult {
                    v: VERSION,
                    job_id: job.job_id.clone(),
                    status: Status::Done,
                    rules_version: Some(q.rules_version),
                    prices_date: Some(q.prices_date),
                    segment: Some(q.segment),
                    quantity: Some(q.quantity),
                    geometry: Some((*report).clone()),
                    quotes: q.quotes,
                    detected_stones: q.detected_stones,
                    warnings: q.warnings,
                    timings_ms: t,
                    worker: ctx.name.clone(),
                    trace_id: trace_id(traceparent),
                    error: None,
                }
            }
            Err(e) => fail(e.code(), e.to_string(), t),
        }
    };
    ctx.remember(&result);
    result
}

async fn fetch_with_retry(ctx: &Context, job: &Job) -> Result<bytes::Bytes, StoreError> {
    let mut wait = ctx.retry_base;
    let mut attempt = 1;
    loop {
        match ctx.store.get(&job.model.key, &job.model.sha256).await {
            Err(e) if e.is_transient() && attempt < ctx.fetch_attempts => {
                tracing::warn!(job.id = %job.job_id, attempt, error = %e, "model store unreachable; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
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
