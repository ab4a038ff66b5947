//! The queue at the boundary: what a worker needs from a transport, and what a submitter needs. The in-process
//! transport and the Kafka transport implement the same traits, and one contract test suite runs on both.

use std::future::Future;

use crate::protocol::{Job, JobResult};

/// A job message as delivered, with what the transport needs to acknowledge it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub payload: Vec<u8>,
    /// W3C trace context of the request that submitted the job.
    pub traceparent: Option<String>,
    /// When the message entered the queue, in ms since the Unix epoch, when the transport knows.
    pub enqueued_at_ms: Option<u64>,
    pub(crate) token: Token,
}

impl Delivery {
    /// The Kafka partition and offset the message came from (none in-process).
    pub fn position(&self) -> Option<(i32, i64)> {
        match self.token {
            Token::Kafka { partition, offset } => Some((partition, offset)),
            Token::InProcess(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    InProcess(u64),
    Kafka { partition: i32, offset: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is closed")]
    Closed,
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("cannot encode the message: {0}")]
    Encode(String),
}

/// The worker's side of a queue: jobs in, results and dead letters out.
///
/// Delivery is at least once: a job is `done` only after its result (or its dead letter) is durable, and only
/// done jobs are ever committed, in order within each partition.
pub trait WorkerQueue: Send + Sync + 'static {
    /// `messaging.system` for spans: `kafka`, or `in_process`.
    fn messaging_system(&self) -> &'static str {
        "in_process"
    }
    /// The jobs and the results destinations, for spans.
    fn destinations(&self) -> (&str, &str) {
        ("assay.quote-jobs", "assay.quote-results")
    }
    /// The consumer group, for spans (none in-process).
    fn consumer_group(&self) -> Option<&str> {
        None
    }
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

/// The submitting side: jobs in, results out.
pub trait Submitter: Send + Sync + 'static {
    /// `messaging.system` for spans: `kafka`, or `in_process`.
    fn messaging_system(&self) -> &'static str {
        "in_process"
    }
    /// Queues a job (keyed by its model's SHA-256, so repeats of a model meet the same worker's cache).
    fn submit(&self, job: &Job, traceparent: Option<&str>) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Every final result (`done` or `failed`) published from now on (and, for Kafka, those still in the
    /// compacted topic).
    fn results(&self) -> tokio::sync::broadcast::Receiver<JobResult>;
    /// Whether jobs can be queued now (for readiness checks): the broker answers, the topics exist.
    fn ready(&self) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Every message about jobs: `running` progress and final results, in the order they arrive.
    fn updates(&self) -> tokio::sync::broadcast::Receiver<JobResult>;
}
