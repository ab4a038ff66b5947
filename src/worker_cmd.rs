//! `assay worker` (a member of the Kafka consumer group that measures and prices jobs) and `assay submit` (push
//! one model through the queue by hand and wait for its answer).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jobs::{Job, ModelRef, Submitter};
use queue_kafka::KafkaConfig;

use crate::{KafkaArgs, SubmitArgs, WorkerArgs};

impl KafkaArgs {
    pub(crate) fn config(&self) -> KafkaConfig {
        let mut cfg = KafkaConfig::new(&self.kafka);
        cfg.group_id = self.group.clone();
        cfg.partitions = self.partitions;
        cfg.replication = self.replication;
        cfg.session_timeout_ms = self.session_timeout_ms;
        cfg.assignment = match self.partition_assignment {
            crate::PartitionAssignment::Eager => queue_kafka::Assignment::Eager,
            crate::PartitionAssignment::Cooperative => queue_kafka::Assignment::Cooperative,
        };
        cfg
    }
}

/// The rules a long-running process uses: a watched directory (hot reload), or the built-in copy.
pub(crate) fn service_rules(dir: Option<&Path>) -> anyhow::Result<pricing_rules::Rules> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None if Path::new(crate::rules_source::DEFAULT_DIR).is_dir() => crate::rules_source::DEFAULT_DIR.into(),
        None => {
            tracing::info!("no ./rules directory: using the rules built into assay");
            return Ok(pricing_rules::Rules::Fixed(Arc::new(crate::rules_source::embedded())));
        }
    };
    let watcher = pricing_rules::RulesWatcher::start(&dir, Duration::from_millis(500), Duration::from_secs(30))
        .with_context(|| format!("cannot use the rules in {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), version = %watcher.current().version, "pricing rules loaded; watching for edits");
    Ok(pricing_rules::Rules::Watched(Arc::new(watcher)))
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
        let mut cfg = args.kafka.config();
        cfg.group_instance_id = args.group_instance_id.clone();
        let store = model_store::ModelStore::from_url(&args.store)?;
        let rules = service_rules(args.rules.as_deref())?;
        queue_kafka::ensure_topics(&cfg).await.context("cannot prepare the Kafka topics")?;
        let queue = Arc::new(queue_kafka::KafkaWorkerQueue::connect(&cfg)?);
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

pub(crate) fn submit(args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        if args.price.rules.is_some() {
            eprintln!("note: the workers price with their own rules; --rules is ignored by submit");
        }
        let bytes = crate::analyze_cmd::read_model(&args.file)
            .map_err(|f| anyhow::anyhow!("{}: {} [{}]", args.file.display(), f.message, f.code))?;
        let store = model_store::ModelStore::from_url(&args.store)?;
        let cfg = args.kafka.config();
        queue_kafka::ensure_topics(&cfg).await.context("cannot prepare the Kafka topics")?;
        let submitter = queue_kafka::KafkaSubmitter::connect(&cfg, true)?;
        let mut results = submitter.subscribe();
        let format = models::detect(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
        let stored = store.put(bytes).await?;
        let model = ModelRef { key: stored.key, sha256: stored.sha256, format: Some(format) };
        let job =
            Job::new(jobs::protocol::new_job_id(), model, args.price.request(), Duration::from_secs(args.timeout_secs));
        submitter.submit(&job, None).await?;
        eprintln!("submitted job {} for {}", job.job_id, args.file.display());
        let wait = async {
            while let Some(r) = results.recv().await {
                if r.job_id == job.job_id && r.is_final() {
                    return Some(r);
                }
            }
            None
        };
        match tokio::time::timeout(Duration::from_secs(args.timeout_secs), wait).await {
            Ok(Some(result)) => {
                println!("{}", serde_json::to_string(&result)?);
                Ok(if result.outcome.error().is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            _ => anyhow::bail!("no result for job {} within {} s: is a worker running?", job.job_id, args.timeout_secs),
        }
    })
}
