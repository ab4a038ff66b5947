//! The in-process queue: the embedded default, for `assay serve` and tests. Jobs wait in a channel; a worker that
//! closes with jobs unfinished puts them back for the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::{broadcast, mpsc};

use crate::protocol::{Job, JobResult};
use crate::queue::{Delivery, QueueError, Submitter, Token, WorkerQueue};

#[derive(Debug)]
pub struct InProcessQueue {
    tx: mpsc::UnboundedSender<Delivery>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>,
    in_flight: Mutex<HashMap<u64, Delivery>>,
    next_id: AtomicU64,
    results: broadcast::Sender<JobResult>,
    updates: broadcast::Sender<JobResult>,
    dead: Mutex<Vec<(Vec<u8>, String)>>,
}

impl Default for InProcessQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessQueue {
    pub fn new() -> InProcessQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        InProcessQueue {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            in_flight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            results: broadcast::channel(65_536).0,
            updates: broadcast::channel(65_536).0,
            dead: Mutex::new(Vec::new()),
        }
    }

    /// Queues raw bytes as a job message (tests use it to send what a broken client might).
    pub fn send_raw(&self, payload: Vec<u8>, traceparent: Option<String>) -> Result<(), QueueError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let delivery =
            Delivery { payload, traceparent, enqueued_at_ms: Some(crate::now_ms()), token: Token::InProcess(id) };
        self.tx.send(delivery).map_err(|_| QueueError::Closed)
    }

    /// Messages put on the dead-letter queue, with their reasons.
    pub fn dead_letters(&self) -> Vec<(Vec<u8>, String)> {
        self.dead.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Jobs delivered and not yet done.
    pub fn in_flight(&self) -> usize {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl WorkerQueue for InProcessQueue {
    async fn next(&self) -> Result<Option<Delivery>, QueueError> {
        let d = self.rx.lock().await.recv().await;
        if let Some(d) = &d {
            if let Token::InProcess(id) = d.token {
                self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(id, d.clone());
            }
        }
        Ok(d)
    }

    async fn publish(&self, result: &JobResult, _traceparent: Option<&str>) -> Result<(), QueueError> {
        // No subscriber is not an error: the result is simply not awaited.
        let _ = self.updates.send(result.clone());
        if result.status.is_final() {
            let _ = self.results.send(result.clone());
        }
        Ok(())
    }

    async fn progress(&self, update: &JobResult, _traceparent: Option<&str>) {
        let _ = self.updates.send(update.clone());
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        self.dead.lock().unwrap_or_else(|e| e.into_inner()).push((delivery.payload.clone(), reason.to_owned()));
        Ok(())
    }

    fn done(&self, delivery: &Delivery) {
        if let Token::InProcess(id) = delivery.token {
            self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
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
    async fn submit(&self, job: &Job, traceparent: Option<&str>) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(job).map_err(|e| QueueError::Encode(e.to_string()))?;
        self.send_raw(payload, traceparent.map(str::to_owned))
    }

    fn results(&self) -> broadcast::Receiver<JobResult> {
        self.results.subscribe()
    }

    async fn ready(&self) -> Result<(), QueueError> {
        if self.tx.is_closed() {
            return Err(QueueError::Closed);
        }
        Ok(())
    }

    fn updates(&self) -> broadcast::Receiver<JobResult> {
        self.updates.subscribe()
    }
}
