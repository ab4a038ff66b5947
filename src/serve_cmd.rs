//! `assay serve` (the whole service in one process: gateway, worker pool, in-process queue, models on disk) and
//! `assay gateway` (the HTTP API in front of Kafka, for the scaled deployment). This is where the Prometheus
//! recorder is installed: libraries only record.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::telemetry::{install_metrics, render};
use crate::worker_cmd::{service_rules, shutdown_signal};
use crate::{GatewayArgs, HttpArgs, ServeArgs};

impl HttpArgs {
    fn config(&self) -> anyhow::Result<gateway::Config> {
        let tenants = self.tenants.as_deref().map(crate::notifier_cmd::tenants_source).transpose()?;
        let config = gateway::Config {
            tenants,
            session_secret: self.session_secret.as_ref().map(|s| s.trim().as_bytes().to_vec()),
            max_upload_bytes: self.max_upload_mb << 20,
            api_keys: self.api_keys.iter().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect(),
            max_jobs_kept: usize::try_from(self.max_jobs_kept).unwrap_or(usize::MAX),
            job_deadline: Duration::from_secs(self.job_deadline_secs),
            ..gateway::Config::default()
        };
        config.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(config)
    }
}

async fn listen(addr: &str) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("the listening address")?;
    Ok((listener, local))
}

fn announce(what: &str, addr: std::net::SocketAddr, keys: bool, sample: &str) {
    println!("assay {what} listening on http://{addr}");
    let auth = if keys { " -H 'Authorization: Bearer YOUR_KEY'" } else { "" };
    println!(
        "try: curl -s{auth} -H 'Content-Type: model/stl' --data-binary @{sample} 'http://{addr}/v1/quotes?alloy=18k-yellow'"
    );
}

/// A shutdown signal that several tasks can wait on.
fn shutdown_watch() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    rx
}

async fn wait(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

pub(crate) fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let config = args.http.config()?;
        let metrics = install_metrics()?;
        let data = args.data.display().to_string();
        let store = model_store::ModelStore::from_url(&data)?;
        let rules = service_rules(args.http.rules.as_deref())?;
        let rules_for_metrics = rules.clone();
        // Jobs, their states and results in DATA/assay.db: a restart loses nothing.
        let db = queue_sqlite::SqliteConfig {
            max_bytes: args.max_db_mb.map(|mb| mb << 20),
            ..queue_sqlite::SqliteConfig::in_dir(&args.data)
        };
        let queue = Arc::new(queue_sqlite::SqliteQueue::open(db)?);
        let counts = queue.counts().await?;
        tracing::info!(
            db = %queue.path().display(),
            queued = counts.queued,
            finished = counts.finished,
            "job database open"
        );
        let retention = queue_sqlite::Retention {
            max_age: Duration::from_secs(args.retention_days * 86_400),
            max_jobs: args.max_stored_jobs,
            ..queue_sqlite::Retention::default()
        };
        tokio::spawn(queue_sqlite::run_retention(
            queue.clone(),
            store.clone(),
            retention,
            Duration::from_secs(args.retention_sweep_minutes * 60),
        ));
        let keys = !config.api_keys.is_empty() || config.tenants.is_some();
        let stop = shutdown_watch();
        let mut config = config;
        if config.session_secret.is_none() {
            config.session_secret = Some(session_key(&args.data)?);
        }
        // The tenants' webhooks: queued in the database with each result, delivered from it, after a restart too.
        let notifier = match config.tenants.clone() {
            Some(source) => {
                let outbox: Arc<dyn jobs::Outbox> = queue.clone();
                let notifier = webhooks::Notifier::new(outbox, source, webhooks::NotifierConfig::default())
                    .map_err(|e| anyhow::anyhow!(e))?;
                config.webhooks = Some(Arc::new(crate::notifier_cmd::SqliteWebhooks(queue.clone())));
                let (n, mut updates) = (notifier.clone(), jobs::Submitter::subscribe(&*queue));
                tokio::spawn(async move {
                    while let Some(r) = updates.recv().await {
                        if r.tenant.is_some() {
                            n.wake();
                        }
                    }
                });
                Some(tokio::spawn(notifier.run(wait(stop.clone()))))
            }
            None => None,
        };
        let state =
            gateway::AppState::with_metrics(config, store.clone(), queue.clone(), rules.clone(), render(metrics));
        let (listener, addr) = listen(&args.http.listen).await?;
        let ctx = Arc::new(worker::Context::new(&format!("serve-{}", std::process::id()), store, rules));
        let options = worker::RunOptions {
            concurrency: args.concurrency.unwrap_or_else(|| worker::RunOptions::default().concurrency),
            grace: Duration::from_secs(args.grace_secs),
        };
        tracing::info!(%addr, data = %data, concurrency = options.concurrency, "assay serve started");
        announce("serve", addr, keys, "samples/pixelverse_ring.stl");
        tokio::spawn(worker::report_rules(rules_for_metrics));
        let workers = tokio::spawn(worker::run(queue, ctx, options, wait(stop.clone())));
        gateway::serve(listener, gateway::router(state), wait(stop)).await.context("the HTTP server failed")?;
        let stats = workers.await.context("the worker pool failed")?;
        if let Some(n) = notifier {
            n.await.context("the webhook notifier failed")?;
        }
        tracing::info!(finished = stats.finished, abandoned = stats.abandoned, "assay serve stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// `serve`'s session secret when none is given: random, kept in DATA/session.key (readable by its owner only),
/// so sessions survive a restart.
fn session_key(data: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let path = data.join("session.key");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!("{} is shorter than 32 characters: delete it to have a new one made", path.display()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot read {}", path.display()))
        }
        Err(_) => {}
    }
    let key = format!("{}{}", jobs::protocol::new_job_id(), jobs::protocol::new_job_id());
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key.into_bytes())
}

pub(crate) fn gateway(args: &GatewayArgs) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let config = args.http.config()?;
        let metrics = install_metrics()?;
        let store = model_store::ModelStore::from_url(&args.store)?;
        let rules = service_rules(args.http.rules.as_deref())?;
        let cfg = args.kafka.config();
        queue_kafka::ensure_topics(&cfg).await.context("cannot prepare the Kafka topics")?;
        // From the start of the compacted results topic: this instance can answer for jobs others accepted.
        let queue = Arc::new(queue_kafka::KafkaSubmitter::connect(&cfg, true)?);
        let keys = !config.api_keys.is_empty() || config.tenants.is_some();
        let mut config = config;
        if config.tenants.is_some() {
            // What the notifiers publish of each delivery, for GET /v1/quotes/{id}.
            let statuses = queue_kafka::DeliveryStatuses::connect(&cfg, config.max_jobs_kept)?;
            config.webhooks = Some(Arc::new(crate::notifier_cmd::KafkaWebhooks(statuses)));
        }
        tokio::spawn(worker::report_rules(rules.clone()));
        let state = gateway::AppState::with_metrics(config, store, queue, rules, render(metrics));
        let (listener, addr) = listen(&args.http.listen).await?;
        tracing::info!(%addr, kafka = %cfg.bootstrap, store = %args.store, "assay gateway started");
        announce("gateway", addr, keys, "samples/pixelverse_ring.stl");
        gateway::serve(listener, gateway::router(state), shutdown_signal()).await.context("the HTTP server failed")?;
        tracing::info!("assay gateway stopped");
        Ok(ExitCode::SUCCESS)
    })
}
