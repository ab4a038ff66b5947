//! The quote job contract, neutral of any transport: the job and result messages ([`protocol`]), the queue
//! traits every transport implements ([`queue`]), the in-memory transport ([`inproc`]), and the small mechanisms
//! every service shares (a bounded map, a retry with backoff, a fan-out with backpressure, trace context, the
//! metric catalogue).
//!
//! `jobs` knows nothing of Kafka, HTTP or storage: the Kafka transport (`queue-kafka`) and the durable embedded
//! one (`queue-sqlite`) implement its traits; the gateway and the workers speak through them.

pub mod bounded;
pub mod fanout;
pub mod inproc;
pub mod metric;
pub mod outbox;
pub mod protocol;
pub mod queue;
pub mod retry;
pub mod trace;
pub mod view;

pub use bounded::BoundedMap;
pub use fanout::Fanout;
pub use inproc::{InProcessConfig, InProcessQueue};
pub use outbox::{Outbox, Pending, Record};
pub use protocol::{ErrorBody, Failure, Job, JobResult, ModelRef, Outcome, Priced, Status, Timings};
pub use queue::{Delivery, Position, QueueError, Submitter, WorkerQueue};
pub use retry::Backoff;
pub use view::{DeliveryStatus, DeliveryUpdate, QuoteView, WebhookStatus};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
