//! Quote jobs through a queue to a pool of workers: the job protocol, the queue traits with an in-process and a
//! Kafka transport, the model store, the geometry cache and the job loop.
//!
//! `worker` is the only crate that knows Kafka. It knows nothing of HTTP.

pub mod cache;
pub mod inproc;
pub mod job;
pub mod kafka;
pub mod protocol;
pub mod queue;
pub mod run;
pub mod store;
pub mod trace;

pub use cache::GeometryCache;
pub use inproc::InProcessQueue;
pub use job::{process, Context, Rules};
pub use kafka::{ensure_topics, KafkaConfig, KafkaSubmitter, KafkaWorkerQueue};
pub use protocol::{Job, JobOptions, JobResult, ModelRef, Status, Timings};
pub use queue::{Delivery, QueueError, Submitter, WorkerQueue};
pub use run::{describe_metrics, report_rules, run, RunOptions, RunStats};
pub use store::{ModelStore, StoreError, StoredModel};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
