//! The webhook outbox as a transport-neutral contract: deliveries waiting for their next attempt, and what each
//! attempt came to. The embedded database keeps one that survives restarts (`queue-sqlite`); the scaled
//! notifier keeps one in memory over the results topic, whose offsets advance only past ended deliveries.

use crate::protocol::Status;
use crate::view::{DeliveryStatus, WebhookStatus};

/// A delivery whose next attempt is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The outbox's own handle on it.
    pub id: u64,
    pub job_id: String,
    /// The job's event it tells of: `running`, `done` or `failed`.
    pub event: Status,
    pub tenant: String,
    /// What is sent: the job as `GET /v1/quotes/{id}` shows it, as JSON.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What an attempt (or the decision not to make one) came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `None`: the tenant does not want this event (or has no webhook): the delivery is dropped, not shown.
    pub status: Option<DeliveryStatus>,
    pub attempts: u32,
    pub last_attempt_at_ms: Option<u64>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// When `status` is `pending`: when to try again, in ms since the Unix epoch.
    pub next_at_ms: Option<u64>,
}

impl Record {
    /// Nothing to send: the tenant has no webhook for this event.
    pub fn skipped() -> Record {
        Record {
            status: None,
            attempts: 0,
            last_attempt_at_ms: None,
            last_status_code: None,
            last_error: None,
            next_at_ms: None,
        }
    }

    /// How the record reads in a job's view, when it is one to show.
    pub fn view(&self) -> Option<WebhookStatus> {
        Some(WebhookStatus {
            status: self.status?,
            attempts: self.attempts,
            last_attempt_at: self.last_attempt_at_ms,
            last_status_code: self.last_status_code,
            last_error: self.last_error.clone(),
        })
    }
}

/// Where deliveries wait. Every method may fail with a sentence (the store is unavailable): the notifier logs it
/// and tries again later; nothing is dropped.
#[async_trait::async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Pending deliveries due by `now_ms`, earliest first, at most `limit`, leaving out the ids in `busy`.
    async fn due(&self, now_ms: u64, limit: usize, busy: &[u64]) -> Result<Vec<Pending>, String>;
    /// Records an attempt: a pending record reschedules the delivery; any other ends it.
    async fn record(&self, pending: &Pending, record: Record) -> Result<(), String>;
    /// Deliveries not ended, for the pending gauge.
    async fn pending(&self) -> Result<u64, String>;
}
