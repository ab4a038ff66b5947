//! `assay worker` (a member of the Kafka consumer group that measures and prices jobs) and `assay submit` (push
//! one model through the queue by hand and wait for its answer).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use worker::{Job, JobOptions, KafkaConfig, ModelRef, Submitter};

use crate::{KafkaArgs, SubmitArgs, WorkerArgs};

impl KafkaArgs {
    pub(crate) fn config(&self) -> KafkaConfig {
        let mut cfg = KafkaConfig::new(&self.kafka);
        cfg.group_id = self.group.clone();
        cfg.partitions = self.partitions;
        cfg.replication = self.replication;
        cfg.session_timeout_ms = self.session_timeout_ms;
        cfg
    }
}

/// The rules a long-running process uses: a watched directory (hot reload), or the built-in copy.
pub(crate) fn service_rules(dir: Option<&Path>) -> anyhow::Result<worker::Rules> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None if Path::new(crate::rules_source::DEFAULT_DIR).is_dir() => crate::rules_source::DEFAULT_DIR.into(),
        None => {
            tracing::info!("no ./rules directory: using the rules built into assay");
            return Ok(worker::Rules::Fixed(Arc::new(crate::rules_source::embedded())));
        }
    };
    let watcher = pricing_rules::RulesWatcher::start(&dir, Duration::from_millis(500), Duration::from_secs(30))
        .with_context(|| format!("cannot use the rules in {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), version = %watcher.current().version, "pricing rules loaded; watching for edits");
    Ok(worker::Rules::Watched(Arc::new(watcher)))
}

/// Resolves when the process is asked to stop (SIGTERM or Ctrl-C).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}

pub(crate) fn run_worker(args: &WorkerArgs) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let result = runtime.block_on(async {
        let cfg = args.kafka.config();
        let store = worker::ModelStore::from_url(&args.store)?;
        let rules = service_rules(args.rules.as_deref())?;
        worker::ensure_topics(&cfg).await.context("cannot prepare the Kafka topics")?;
        let queue = Arc::new(worker::KafkaWorkerQueue::connect(&cfg)?);
        if let Some(addr) = &args.listen {
            let metrics = crate::telemetry::install_metrics()?;
            let (s, q) = (store.clone(), queue.clone());
            let probes: Vec<(&'static str, gateway::Probe)> = vec![
                ("store", Arc::new(move || { let s = s.clone(); Box::pin(async move { s.ping().await.map_err(|e| e.to_string()) }) })),
                ("queue", Arc::new(move || { let q = q.clone(); Box::pin(async move { q.ready().await.map_err(|e| e.to_string()) }) })),
            ];
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(addr = %listener.local_addr().context("the listening address")?, "serving /metrics, /healthz, /readyz");
            let router = gateway::ops_router(crate::telemetry::render(metrics), probes);
            tokio::spawn(async move {
                if let Err(e) = gateway::serve(listener, router, std::future::pending()).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            });
        }
        tokio::spawn(worker::report_rules(rules.clone()));
        let name = args.name.clone().unwrap_or_else(|| format!("worker-{}", std::process::id()));
        let ctx = Arc::new(worker::Context::new(&name, store.clone(), rules));
        let options = worker::RunOptions {
            concurrency: args.concurrency.unwrap_or_else(|| worker::RunOptions::default().concurrency),
            grace: Duration::from_secs(args.grace_secs),
        };
        tracing::info!(worker = %name, kafka = %cfg.bootstrap, group = %cfg.group_id, concurrency = options.concurrency, "worker started");
        let stats = worker::run(queue, ctx, options, shutdown_signal()).await;
        tracing::info!(finished = stats.finished, abandoned = stats.abandoned, "worker stopped");
        Ok(ExitCode::SUCCESS)
    });
    // Dropping a runtime waits for its blocking threads without end; a Kafka close that outlives its own time
    // limit must not keep a stopped worker from exiting (its group notices at the session timeout).
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

fn new_job_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn submit(args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        if args.price.rules.is_some() {
            eprintln!("note: the workers price with their own rules; --rules is ignored by submit");
        }
        let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
        let store = worker::ModelStore::from_url(&args.store)?;
        let stored = store.put(bytes.into()).await?;
        let cfg = args.kafka.config();
        worker::ensure_topics(&cfg).await.context("cannot prepare the Kafka topics")?;
        let submitter = worker::KafkaSubmitter::connect(&cfg, true)?;
        let mut results = submitter.results();
        let job = Job {
            v: worker::protocol::VERSION,
            job_id: new_job_id(),
            model: ModelRef { key: stored.key, sha256: stored.sha256, format: None, units: args.price.units },
            options: JobOptions {
                alloys: args.price.alloys.clone(),
                quantity: args.price.qty,
                segment: args.price.segment.clone(),
                stones: args.price.stones.clone(),
            },
            submitted_at_ms: worker::now_ms(),
            deadline_ms: Some(worker::now_ms() + args.timeout_secs * 1000),
        };
        submitter.submit(&job, None).await?;
        eprintln!("submitted job {} for {}", job.job_id, args.file.display());
        let wait = async {
            loop {
                match results.recv().await {
                    Ok(r) if r.job_id == job.job_id => return Some(r),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(args.timeout_secs), wait).await {
            Ok(Some(result)) => {
                println!("{}", serde_json::to_string(&result)?);
                Ok(if result.error.is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            _ => anyhow::bail!("no result for job {} within {} s: is a worker running?", job.job_id, args.timeout_secs),
        }
    })
}
