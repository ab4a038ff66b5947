//! The in-process queue, in memory: for tests and benchmarks (`assay serve` runs on the durable `queue-sqlite`).
//! Jobs wait in a channel; a worker that closes with jobs unfinished puts them back for the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::fanout::Fanout;
use crate::protocol::{Job, JobResult};
use crate::queue::{Delivery, QueueError, Submitter, WorkerQueue};

/// The in-process queue's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProcessConfig {
    /// Messages each subscriber (a gateway's job book) may have unread before publishing waits for it (default
    /// 4,096).
    pub subscriber_buffer: usize,
    /// Names of the jobs and results destinations, for spans (default: the protocol's topic names).
    pub jobs: String,
    pub results: String,
}

impl Default for InProcessConfig {
    fn default() -> Self {
        InProcessConfig {
            subscriber_buffer: 4096,
            jobs: crate::protocol::JOBS.into(),
            results: crate::protocol::RESULTS.into(),
        }
    }
}

#[derive(Debug)]
pub struct InProcessQueue {
    config: InProcessConfig,
    tx: mpsc::UnboundedSender<Delivery>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>,
    in_flight: Mutex<HashMap<u64, Delivery>>,
    next_id: AtomicU64,
    updates: Fanout<JobResult>,
    dead: Mutex<Vec<(Vec<u8>, String)>>,
}

impl Default for InProcessQueue {
    fn default() -> Self {
        Self::new(InProcessConfig::default())
    }
}

impl InProcessQueue {
    pub fn new(config: InProcessConfig) -> InProcessQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        InProcessQueue {
            updates: Fanout::new(config.subscriber_buffer),
            config,
            tx,
            rx: tokio::sync::Mutex::new(rx),
            in_flight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            dead: Mutex::new(Vec::new()),
        }
    }

    /// Queues raw bytes as a job message (tests use it to send what a broken client might).
    pub fn send_raw(&self, payload: Vec<u8>, traceparent: Option<String>) -> Result<(), QueueError> {
        let seq = self.next_id.fetch_add(1, Ordering::Relaxed);
        let delivery = Delivery { payload, traceparent, enqueued_at_ms: Some(crate::now_ms()), seq, position: None };
        self.tx.send(delivery).map_err(|_| QueueError::Closed)
    }

    /// Messages put on the dead-letter queue, with their reasons.
    pub fn dead_letters(&self) -> Vec<(Vec<u8>, String)> {
        self.dead.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Messages queued since the queue was made.
    pub fn sent(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// Jobs delivered and not yet done.
    pub fn in_flight(&self) -> usize {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl WorkerQueue for InProcessQueue {
    fn messaging_system(&self) -> &'static str {
        "in_process"
    }

    fn destinations(&self) -> (&str, &str) {
        (&self.config.jobs, &self.config.results)
    }

    fn consumer_group(&self) -> Option<&str> {
        None
    }

    async fn next(&self) -> Result<Option<Delivery>, QueueError> {
        let d = self.rx.lock().await.recv().await;
        if let Some(d) = &d {
            self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(d.seq, d.clone());
        }
        Ok(d)
    }

    async fn publish(&self, result: &JobResult, _traceparent: Option<&str>) -> Result<(), QueueError> {
        // Held once every subscriber has it buffered; with none, the result is simply not awaited.
        self.updates.send(result.clone()).await;
        Ok(())
    }

    async fn progress(&self, update: &JobResult, _traceparent: Option<&str>) {
        self.updates.send(update.clone()).await;
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        self.dead.lock().unwrap_or_else(|e| e.into_inner()).push((delivery.payload.clone(), reason.to_owned()));
        Ok(())
    }

    fn done(&self, delivery: &Delivery) {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&delivery.seq);
    }

    async fn close(&self) {
        // Unfinished jobs go back on the queue for whoever consumes next.
        let unfinished: Vec<Delivery> =
            self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, d)| d).collect();
        for d in unfinished {
            let _ = self.tx.send(d);
        }
    }
}

impl Submitter for InProcessQueue {
    fn messaging_system(&self) -> &'static str {
        "in_process"
    }

    fn destination(&self) -> &str {
        &self.config.jobs
    }

    async fn submit(&self, job: &Job, traceparent: Option<&str>) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(job).map_err(|e| QueueError::Encode(e.to_string()))?;
        self.send_raw(payload, traceparent.map(str::to_owned))
    }

    fn subscribe(&self) -> mpsc::Receiver<JobResult> {
        self.updates.subscribe()
    }

    async fn ready(&self) -> Result<(), QueueError> {
        if self.tx.is_closed() {
            return Err(QueueError::Closed);
        }
        Ok(())
    }
}
