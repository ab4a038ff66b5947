//! The queue at the boundary: what a worker needs from a transport, and what a submitter needs. The in-process
//! transport and the Kafka transport implement the same traits, and one contract test suite runs on both.
//! Nothing here names a particular transport: a delivery's place is a neutral partition and offset.

use std::future::Future;

use tokio::sync::mpsc;

use crate::protocol::{Job, JobResult};

/// Where a delivery sits in a partitioned log (the Kafka transport's partition and offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

/// A job message as delivered, with what the transport needs to acknowledge it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub payload: Vec<u8>,
    /// W3C trace context of the request that submitted the job.
    pub traceparent: Option<String>,
    /// When the message entered the queue, in ms since the Unix epoch, when the transport knows.
    pub enqueued_at_ms: Option<u64>,
    /// The transport's handle on this delivery: a sequence number in-process, the offset in a log.
    pub seq: u64,
    /// Its place in a partitioned log, for transports that have one.
    pub position: Option<Position>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is closed")]
    Closed,
    /// The transport cannot be reached or refused the operation; trying again later may help.
    #[error("{system}: {message}")]
    Unavailable { system: &'static str, message: String },
    /// The queue's storage has no room left; it takes jobs again once there is.
    #[error("{0}")]
    Full(String),
    #[error("cannot encode the message: {0}")]
    Encode(String),
}

/// The worker's side of a queue: jobs in, results and dead letters out.
///
/// Delivery is at least once: a job is `done` only after its result (or its dead letter) is durable, and only
/// done jobs are ever committed, in order within each partition.
pub trait WorkerQueue: Send + Sync + 'static {
    /// `messaging.system` for spans: `kafka`, or `in_process`.
    fn messaging_system(&self) -> &'static str;
    /// The jobs and the results destinations, for spans.
    fn destinations(&self) -> (&str, &str);
    /// The consumer group, for spans (none in-process).
    fn consumer_group(&self) -> Option<&str>;
    /// The next job; `None` when the queue is closed for good.
    fn next(&self) -> impl Future<Output = Result<Option<Delivery>, QueueError>> + Send;
    /// Publishes a result and returns once the queue holds it durably.
    fn publish(
        &self,
        result: &JobResult,
        traceparent: Option<&str>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Tells whoever waits that a worker has started a job (a `running` message). Best effort, not awaited
    /// durably: losing it only delays the news until the result.
    fn progress(&self, update: &JobResult, traceparent: Option<&str>) -> impl Future<Output = ()> + Send;
    /// Puts an undecodable message on the dead-letter queue with the reason.
    fn dead_letter(&self, delivery: &Delivery, reason: &str) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Marks a delivery finished, so it may be committed.
    fn done(&self, delivery: &Delivery);
    /// Stops fetching, commits what is done and leaves the group; unfinished jobs go to another worker.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// The submitting side: jobs in, every message about them out.
pub trait Submitter: Send + Sync + 'static {
    /// `messaging.system` for spans: `kafka`, or `in_process`.
    fn messaging_system(&self) -> &'static str;
    /// Where jobs are sent, for spans.
    fn destination(&self) -> &str;
    /// Queues a job (keyed by its model's SHA-256, so repeats of a model meet the same worker's cache).
    fn submit(&self, job: &Job, traceparent: Option<&str>) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Every message about jobs from now on (for Kafka, also those still in the compacted results topic):
    /// `running` progress and final results, in the order they arrive. At least once and never dropped: a
    /// subscriber that reads slowly holds the stream back instead of losing messages.
    fn subscribe(&self) -> mpsc::Receiver<JobResult>;
    /// Whether jobs can be queued now (for readiness checks): the broker answers, the topics exist.
    fn ready(&self) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// What a durable transport knows of a job its subscribers may not have heard of (one accepted before this
    /// process started): its final result, or its state. Transports that keep nothing answer `None`.
    fn lookup(&self, _job_id: &str) -> impl Future<Output = Result<Option<JobResult>, QueueError>> + Send {
        async { Ok(None) }
    }
}
