//! An outbox in memory, for a notifier whose durability is elsewhere: the scaled notifier keeps each result's
//! deliveries here and commits the result's offset only when they have ended (the `on_end` of each entry), so
//! a notifier that dies is replaced by one that reads the result again and delivers it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jobs::{DeliveryStatus, Outbox, Pending, Record, WebhookStatus};

type OnEnd = Box<dyn FnOnce() + Send>;

struct Entry {
    pending: Pending,
    next_at_ms: u64,
    on_end: Option<OnEnd>,
}

/// Deliveries in memory, each with what to do when it ends.
pub struct MemoryOutbox {
    entries: Mutex<BTreeMap<u64, Entry>>,
    /// Ended deliveries by job id, for the status (bounded: the oldest forgotten first).
    ended: Mutex<jobs::BoundedMap<String, WebhookStatus>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for MemoryOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryOutbox").field("pending", &self.len()).finish()
    }
}

impl MemoryOutbox {
    /// An outbox that remembers the outcome of the last `keep` ended deliveries.
    pub fn new(keep: usize) -> MemoryOutbox {
        MemoryOutbox {
            entries: Mutex::default(),
            ended: Mutex::new(jobs::BoundedMap::new(keep.max(1))),
            next_id: Default::default(),
        }
    }

    /// Adds a delivery due now; `on_end` runs once when it has ended (delivered, given up, or not wanted).
    pub fn add(
        &self,
        job_id: &str,
        event: jobs::Status,
        tenant: &str,
        body: String,
        on_end: impl FnOnce() + Send + 'static,
    ) {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pending = Pending { id, job_id: job_id.to_owned(), event, tenant: tenant.to_owned(), body, attempts: 0 };
        let entry = Entry { pending, next_at_ms: 0, on_end: Some(Box::new(on_end)) };
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).insert(id, entry);
    }

    /// Deliveries not ended.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How a job's delivery went, once it has ended (pending ones are read from the entries).
    pub fn status(&self, job_id: &str) -> Option<WebhookStatus> {
        let pending = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|e| e.pending.job_id == job_id && e.pending.event != jobs::Status::Running)
            .map(|e| WebhookStatus {
                status: DeliveryStatus::Pending,
                attempts: e.pending.attempts,
                last_attempt_at: None,
                last_status_code: None,
                last_error: None,
            });
        pending.or_else(|| self.ended.lock().unwrap_or_else(|e| e.into_inner()).get(job_id).cloned())
    }
}

#[async_trait::async_trait]
impl Outbox for MemoryOutbox {
    async fn due(&self, now_ms: u64, limit: usize, busy: &[u64]) -> Result<Vec<Pending>, String> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut due: Vec<(u64, Pending)> = entries
            .values()
            .filter(|e| e.next_at_ms <= now_ms && !busy.contains(&e.pending.id))
            .map(|e| (e.next_at_ms, e.pending.clone()))
            .collect();
        due.sort_by_key(|(at, p)| (*at, p.id));
        Ok(due.into_iter().take(limit).map(|(_, p)| p).collect())
    }

    async fn pending(&self) -> Result<u64, String> {
        Ok(self.len() as u64)
    }

    async fn record(&self, pending: &Pending, record: Record) -> Result<(), String> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match (record.status, record.next_at_ms) {
            (Some(DeliveryStatus::Pending), Some(next)) => {
                if let Some(e) = entries.get_mut(&pending.id) {
                    e.pending.attempts = record.attempts;
                    e.next_at_ms = next;
                }
            }
            _ => {
                let entry = entries.remove(&pending.id);
                drop(entries);
                if let (Some(view), true) = (record.view(), pending.event != jobs::Status::Running) {
                    self.ended.lock().unwrap_or_else(|e| e.into_inner()).insert(pending.job_id.clone(), view);
                }
                if let Some(on_end) = entry.and_then(|mut e| e.on_end.take()) {
                    on_end();
                }
            }
        }
        Ok(())
    }
}
