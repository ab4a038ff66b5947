//! The job loop: bounded concurrency, at-least-once acknowledgement, and a drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::job::{process, Context};
use crate::protocol::{decode_job, JobResult};
use crate::queue::{Delivery, WorkerQueue};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Jobs handled at once (default: the number of cores).
    pub concurrency: usize,
    /// How long in-flight jobs may take to finish after shutdown is asked for; what is left is redelivered.
    pub grace: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            grace: Duration::from_secs(30),
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunStats {
    pub finished: u64,
    /// Jobs still running when the grace period ended: not acknowledged, so redelivered elsewhere.
    pub abandoned: u64,
}

/// Takes jobs from `queue` until `shutdown` resolves (or the queue closes), then stops fetching, lets in-flight
/// jobs finish within the grace period, and closes the queue (commit, leave the group).
pub async fn run<Q: WorkerQueue>(
    queue: Arc<Q>,
    ctx: Arc<Context>,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> RunStats {
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut stats = RunStats::default();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let delivery = tokio::select! {
            _ = &mut shutdown => break,
            d = queue.next() => d,
        };
        match delivery {
            Ok(Some(d)) => {
                let (queue, ctx) = (queue.clone(), ctx.clone());
                tasks.spawn(async move {
                    handle(&*queue, &ctx, d).await;
                    drop(permit);
                });
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch jobs; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        while tasks.try_join_next().is_some() {
            stats.finished += 1;
        }
    }
    tracing::info!(in_flight = tasks.len(), "stopping: no new jobs; finishing those in flight");
    let drain = async {
        while tasks.join_next().await.is_some() {
            stats.finished += 1;
        }
    };
    if tokio::time::timeout(options.grace, drain).await.is_err() {
        stats.abandoned = tasks.len() as u64;
        tracing::warn!(abandoned = stats.abandoned, "grace period over: unfinished jobs will be redelivered");
        tasks.abort_all();
    }
    queue.close().await;
    stats
}

/// Handles one delivery; acknowledges it only once its result (or dead letter) is durable.
async fn handle<Q: WorkerQueue>(queue: &Q, ctx: &Context, d: Delivery) {
    let result = match decode_job(&d.payload) {
        Ok(job) => {
            tracing::info!(job.id = %job.job_id, model = %job.model.sha256, "job started");
            let running = JobResult::running(&job.job_id, &ctx.name, crate::job::trace_id(d.traceparent.as_deref()));
            queue.progress(&running, d.traceparent.as_deref()).await;
            process(ctx, &job, d.traceparent.as_deref()).await
        }
        Err(bad) => {
            tracing::warn!(reason = %bad.reason, "undecodable job message to the dead-letter queue");
            if !retry("dead letter", || queue.dead_letter(&d, &bad.reason)).await {
                return;
            }
            match bad.job_id {
                Some(id) => JobResult::failed(&id, &ctx.name, "bad_message", bad.reason),
                None => {
                    queue.done(&d);
                    return;
                }
            }
        }
    };
    match &result.error {
        None => tracing::info!(job.id = %result.job_id, total_ms = result.timings_ms.total, "job done"),
        Some(e) => tracing::info!(job.id = %result.job_id, code = %e.code, "job failed"),
    }
    if retry("result", || queue.publish(&result, d.traceparent.as_deref())).await {
        queue.done(&d);
    }
}

/// Tries a publish a few times; false leaves the delivery unacknowledged, to be redelivered.
async fn retry<F, Fut>(what: &str, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), crate::queue::QueueError>>,
{
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=5 {
        match f().await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(attempt, error = %e, "cannot publish the {what}");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    tracing::error!("giving up publishing the {what}: the job stays unacknowledged and will be redelivered");
    false
}
