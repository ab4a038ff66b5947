//! The delivery loop: due deliveries out of the outbox, one attempt each (several at once), every attempt
//! recorded before the next is planned.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs::{DeliveryStatus, Outbox, Pending, Record};
use rand::Rng as _;
use tenants::TenantsSource;
use tokio::sync::Notify;

use crate::sender::{AttemptKind, Sender};

/// How the notifier works through its outbox.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Attempts in progress at once (default 64).
    pub concurrency: usize,
    /// How often the outbox is read when nothing wakes the notifier (default 500 ms).
    pub poll: Duration,
    /// Each wait of the schedule is stretched by a random fraction up to this (default 0.2: up to 20 % later), so
    /// the retries of many deliveries that failed together do not arrive together.
    pub jitter: f64,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig { concurrency: 64, poll: Duration::from_millis(500), jitter: 0.2 }
    }
}

/// Delivers what an outbox holds, for the tenants in force.
pub struct Notifier {
    outbox: Arc<dyn Outbox>,
    tenants: TenantsSource,
    sender: Sender,
    config: NotifierConfig,
    wake: Arc<Notify>,
    /// Tenants whose endpoint answered 410 Gone, with the tenants file version it answered under.
    disabled: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Notifier {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        tenants: TenantsSource,
        config: NotifierConfig,
    ) -> Result<Arc<Notifier>, String> {
        Ok(Arc::new(Notifier {
            outbox,
            tenants,
            sender: Sender::new()?,
            config,
            wake: Arc::new(Notify::new()),
            disabled: Mutex::new(HashMap::new()),
        }))
    }

    /// Wakes the loop at once (a delivery was added); otherwise it reads the outbox every `poll`.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Works until `shutdown`, then lets attempts in progress finish for up to their timeout; an attempt cut
    /// short is made again by the next process (at least once).
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        let mut busy: HashSet<u64> = HashSet::new();
        let mut tasks: tokio::task::JoinSet<u64> = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let room = self.config.concurrency.saturating_sub(busy.len());
            if room > 0 {
                let exclude: Vec<u64> = busy.iter().copied().collect();
                match self.outbox.due(jobs::now_ms(), room, &exclude).await {
                    Ok(due) => {
                        for p in due {
                            busy.insert(p.id);
                            let me = self.clone();
                            tasks.spawn(async move {
                                let id = p.id;
                                me.deliver(p).await;
                                id
                            });
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot read the webhook outbox; trying again"),
                }
            }
            if let Ok(n) = self.outbox.pending().await {
                metrics::gauge!(jobs::metric::WEBHOOK_PENDING).set(n as f64);
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                Some(done) = tasks.join_next() => {
                    if let Ok(id) = done {
                        busy.remove(&id);
                    }
                }
                _ = tokio::time::sleep(self.config.poll) => {}
            }
        }
        let grace = self.tenants.current().webhooks.timeout + Duration::from_secs(1);
        let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    }

    /// One attempt at `p`, recorded.
    async fn deliver(&self, p: Pending) {
        let tenants = self.tenants.current();
        let record = match crate::webhook_for(&tenants, &p.tenant, p.event) {
            Some(w) => {
                let gone =
                    self.disabled.lock().unwrap_or_else(|e| e.into_inner()).get(&p.tenant) == Some(&tenants.version);
                if gone {
                    ended(
                        &p,
                        DeliveryStatus::Failed,
                        None,
                        "the endpoint answered 410 Gone: disabled until the tenants file changes",
                    )
                } else {
                    self.attempt(&p, &w, &tenants).await
                }
            }
            // Not wanted, never tried: nothing to show. Tried and then removed from the file: given up.
            _ if p.attempts == 0 => Record::skipped(),
            _ => ended(
                &p,
                DeliveryStatus::Failed,
                None,
                "the tenant's webhook for this event was removed from the tenants file",
            ),
        };
        if record.status == Some(DeliveryStatus::Failed) && record.last_attempt_at_ms.is_none() {
            // Ended without an attempt (disabled after 410, or the webhook removed): given up all the same.
            metrics::counter!(jobs::metric::WEBHOOK_GIVEN_UP).increment(1);
            tracing::error!(job.id = %p.job_id, tenant = %p.tenant, event = p.event.as_str(), error = record.last_error.as_deref().unwrap_or(""), "webhook given up");
        }
        if let Err(e) = self.outbox.record(&p, record).await {
            // The attempt is made again when the outbox can be written: at least once.
            tracing::error!(job.id = %p.job_id, error = %e, "cannot record a webhook attempt");
        }
    }

    async fn attempt(&self, p: &Pending, w: &tenants::Webhook, tenants: &tenants::Tenants) -> Record {
        let n = p.attempts + 1;
        let started = Instant::now();
        let msg_id = crate::message_id(&p.job_id, p.event);
        let a = self.sender.attempt(w, tenants.allow_private_network, &msg_id, &p.body, tenants.webhooks.timeout).await;
        let now = jobs::now_ms();
        let schedule = &tenants.webhooks.retry;
        let (status, outcome, next_at_ms) = match a.kind {
            AttemptKind::Delivered => (DeliveryStatus::Delivered, "delivered", None),
            AttemptKind::Gone => {
                self.disabled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(p.tenant.clone(), tenants.version.clone());
                (DeliveryStatus::Failed, "gone", None)
            }
            AttemptKind::Failed => match schedule.get(n as usize) {
                None => (DeliveryStatus::Failed, "given_up", None),
                Some(wait) => {
                    let stretch = 1.0 + rand::rng().random_range(0.0..=self.config.jitter.max(0.0));
                    let wait = wait.mul_f64(stretch).max(a.retry_after.unwrap_or_default());
                    (DeliveryStatus::Pending, "retry", Some(now + wait.as_millis() as u64))
                }
            },
        };
        metrics::counter!(jobs::metric::WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
        metrics::histogram!(jobs::metric::WEBHOOK_ATTEMPT_DURATION).record(started.elapsed().as_secs_f64());
        match status {
            DeliveryStatus::Delivered => {
                tracing::info!(job.id = %p.job_id, tenant = %p.tenant, event = p.event.as_str(), attempt = n, http.response.status_code = a.status_code, "webhook delivered")
            }
            DeliveryStatus::Pending => {
                tracing::warn!(job.id = %p.job_id, tenant = %p.tenant, event = p.event.as_str(), attempt = n, http.response.status_code = a.status_code, error = a.error.as_deref().unwrap_or(""), next_at_ms, "webhook attempt failed; retrying")
            }
            DeliveryStatus::Failed => {
                metrics::counter!(jobs::metric::WEBHOOK_GIVEN_UP).increment(1);
                tracing::error!(job.id = %p.job_id, tenant = %p.tenant, event = p.event.as_str(), attempt = n, http.response.status_code = a.status_code, error = a.error.as_deref().unwrap_or(""), "webhook given up")
            }
        }
        Record {
            status: Some(status),
            attempts: n,
            last_attempt_at_ms: Some(now),
            last_status_code: a.status_code,
            last_error: a.error,
            next_at_ms,
        }
    }
}

fn ended(p: &Pending, status: DeliveryStatus, code: Option<u16>, why: &str) -> Record {
    Record {
        status: Some(status),
        attempts: p.attempts,
        last_attempt_at_ms: None,
        last_status_code: code,
        last_error: Some(why.to_owned()),
        next_at_ms: None,
    }
}
