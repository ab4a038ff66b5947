//! `assay notifier` (the tenants' webhooks from the Kafka results topic, for the scaled deployment), `assay
//! tenants` (keys, secrets, checking a tenants file), and the webhook wiring `assay serve` shares.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jobs::{JobResult, WorkerQueue};

use crate::worker_cmd::shutdown_signal;
use crate::NotifierArgs;

/// The tenants file, watched: a valid edit takes effect, a broken one is logged and the last good file stays.
pub(crate) fn tenants_source(path: &Path) -> anyhow::Result<tenants::TenantsSource> {
    let watcher = tenants::watch(path, Duration::from_millis(500), Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("cannot use the tenants file {}: {e}", path.display()))?;
    let t = watcher.current();
    tracing::info!(file = %path.display(), tenants = t.all().len(), version = %t.version, "tenants file loaded; watching for edits");
    Ok(tenants::TenantsSource::Watched(Arc::new(watcher)))
}

pub(crate) fn new_key() -> anyhow::Result<ExitCode> {
    let (key, digest) = tenants::new_key();
    println!("key:    {key}");
    println!("digest: {digest}");
    eprintln!("give the key to the shop (it is shown once); put the digest in the tenant's keys = [...]");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn new_secret() -> anyhow::Result<ExitCode> {
    println!("{}", tenants::new_secret());
    eprintln!("put it in the tenant's [tenant.webhook] secret and give it to the shop to verify signatures with");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn check(file: &Path) -> anyhow::Result<ExitCode> {
    match tenants::Tenants::load(file) {
        Ok(t) => {
            let hooks = t.all().iter().filter(|t| t.webhook.is_some()).count();
            println!(
                "{}: {} tenants, {hooks} with a webhook; version {}",
                file.display(),
                t.all().len(),
                &t.version[..12]
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A job's webhook status for the gateway, from `assay serve`'s database.
pub(crate) struct SqliteWebhooks(pub Arc<queue_sqlite::SqliteQueue>);

#[async_trait::async_trait]
impl gateway::WebhookLookup for SqliteWebhooks {
    async fn webhook(&self, job_id: &str) -> Option<jobs::WebhookStatus> {
        match self.0.webhook_status(job_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(job.id = %job_id, error = %e, "cannot read a webhook's status");
                None
            }
        }
    }
}

/// A job's webhook status for a gateway of the scaled deployment, from the deliveries topic the notifiers write.
pub(crate) struct KafkaWebhooks(pub queue_kafka::DeliveryStatuses);

#[async_trait::async_trait]
impl gateway::WebhookLookup for KafkaWebhooks {
    async fn webhook(&self, job_id: &str) -> Option<jobs::WebhookStatus> {
        self.0.get(job_id)
    }
}

/// The notifier's outbox: deliveries in memory (their results' offsets committed once they end), each final
/// event's state published for the gateways before it is recorded.
struct Published {
    inner: Arc<webhooks::MemoryOutbox>,
    log: queue_kafka::DeliveryLog,
}

#[async_trait::async_trait]
impl jobs::Outbox for Published {
    async fn due(&self, now_ms: u64, limit: usize, busy: &[u64]) -> Result<Vec<jobs::Pending>, String> {
        self.inner.due(now_ms, limit, busy).await
    }

    async fn pending(&self) -> Result<u64, String> {
        self.inner.pending().await
    }

    async fn record(&self, pending: &jobs::Pending, record: jobs::Record) -> Result<(), String> {
        if let (Some(webhook), true) = (record.view(), pending.event != jobs::Status::Running) {
            let update = jobs::DeliveryUpdate { job_id: pending.job_id.clone(), webhook };
            if let Err(e) = self.log.publish(&update).await {
                // The delivery goes on; only what the gateways show of it lags.
                tracing::warn!(job.id = %pending.job_id, error = %e, "cannot publish a webhook's state");
            }
        }
        self.inner.record(pending, record).await
    }
}

/// Whether a result is one its tenant's webhook wants, by the tenants in force.
fn wanted(t: &tenants::Tenants, r: &JobResult) -> bool {
    r.tenant.as_deref().is_some_and(|id| webhooks::webhook_for(t, id, r.status()).is_some())
}

pub(crate) fn run(args: &NotifierArgs) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let result = runtime.block_on(async {
        let source = tenants_source(&args.tenants)?;
        let mut cfg = args.kafka.config();
        cfg.group_id = args.notifier_group.clone();
        queue_kafka::ensure_topics(&cfg).await.context("cannot prepare the Kafka topics")?;
        // A member of the notifiers' group on the results topic: an offset is committed only once every result
        // before it in its partition has had its delivery end.
        cfg.jobs_topic = cfg.results_topic.clone();
        let queue = Arc::new(queue_kafka::KafkaWorkerQueue::connect(&cfg)?);
        let outbox = Arc::new(webhooks::MemoryOutbox::new(100_000));
        let published = Arc::new(Published { inner: outbox.clone(), log: queue_kafka::DeliveryLog::connect(&cfg)? });
        let notifier = webhooks::Notifier::new(published, source.clone(), webhooks::NotifierConfig::default())
            .map_err(|e| anyhow::anyhow!(e))?;
        if let Some(addr) = &args.listen {
            let metrics = crate::telemetry::install_metrics()?;
            let q = queue.clone();
            let probes: Vec<(&'static str, gateway::Probe)> = vec![(
                "queue",
                Arc::new(move || {
                    let q = q.clone();
                    Box::pin(async move { q.ready().await.map_err(|e| e.to_string()) })
                }),
            )];
            let listener =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
            let router = gateway::ops_router(crate::telemetry::render(metrics), probes);
            tokio::spawn(async move {
                if let Err(e) = gateway::serve(listener, router, std::future::pending()).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            });
        }
        tracing::info!(kafka = %cfg.bootstrap, group = %cfg.group_id, topic = %cfg.results_topic, "notifier started");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(notifier.clone().run({
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        }));
        let max_pending = usize::try_from(args.max_pending).unwrap_or(usize::MAX);
        let read = async {
            loop {
                while outbox.len() >= max_pending {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let d = match queue.next().await {
                    Ok(Some(d)) => d,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the results topic");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let result = match serde_json::from_slice::<JobResult>(&d.payload) {
                    Ok(r) if wanted(&source.current(), &r) => r,
                    // Not a tenant's, not an event its webhook wants, or not a result at all: nothing to deliver.
                    _ => {
                        queue.done(&d);
                        continue;
                    }
                };
                let q = queue.clone();
                let tenant = result.tenant.clone().unwrap_or_default();
                outbox.add(&result.job_id, result.status(), &tenant, jobs::view::body(&result), move || q.done(&d));
                notifier.wake();
            }
        };
        tokio::select! {
            _ = read => {}
            _ = shutdown_signal() => {}
        }
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(args.grace_secs), running).await;
        // Commits the offsets of every result whose delivery ended; the rest are read again by the next notifier.
        queue.close().await;
        tracing::info!(pending = outbox.len(), "notifier stopped");
        Ok(ExitCode::SUCCESS)
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}
