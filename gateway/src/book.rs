//! The job book: what the gateway knows of recent jobs, bounded in memory, fed by the queue's updates. A poll
//! reads it; a WebSocket watches one entry. In scaled mode every gateway reads every result, so any instance
//! can answer for any job.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use worker::{JobResult, Status};

/// Where a job stands, as a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted and waiting for a worker.
    Queued,
    /// A worker is measuring and pricing it.
    Running,
    /// Priced: the quotes are in the result.
    Done,
    /// Not priced: `error` says why.
    Failed,
}

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }
}

/// One job's state: its status, and the worker's message once there is one.
#[derive(Debug, Clone)]
pub struct JobState {
    pub job_id: String,
    pub status: JobStatus,
    /// When this gateway accepted it (absent for jobs another instance accepted).
    pub submitted_at_ms: Option<u64>,
    /// The `traceparent` the job was sent with (known to the gateway that accepted it).
    pub traceparent: Option<String>,
    pub result: Option<Arc<JobResult>>,
}

#[derive(Debug)]
pub struct JobBook {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<String, watch::Sender<JobState>>,
    order: VecDeque<String>,
}

impl JobBook {
    /// A book that keeps at most `capacity` jobs, forgetting the oldest first.
    pub fn new(capacity: usize) -> JobBook {
        JobBook { capacity: capacity.max(1), inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a job this gateway accepted, before it is queued (so no answer can arrive for an unknown id).
    pub fn accept(&self, job_id: &str, submitted_at_ms: u64, traceparent: Option<String>) {
        let state = JobState {
            job_id: job_id.to_owned(),
            status: JobStatus::Queued,
            submitted_at_ms: Some(submitted_at_ms),
            traceparent,
            result: None,
        };
        let mut inner = self.lock();
        if !inner.jobs.contains_key(job_id) {
            inner.jobs.insert(job_id.to_owned(), watch::channel(state).0);
            inner.order.push_back(job_id.to_owned());
            self.evict(&mut inner);
        }
    }

    /// Forgets a job that could not be queued.
    pub fn withdraw(&self, job_id: &str) {
        let mut inner = self.lock();
        if inner.jobs.remove(job_id).is_some() {
            inner.order.retain(|id| id != job_id);
        }
    }

    /// Applies a worker's message. A final answer is never replaced by progress, nor by a later duplicate.
    pub fn update(&self, result: JobResult) {
        let status = match result.status {
            Status::Running => JobStatus::Running,
            Status::Done => JobStatus::Done,
            Status::Failed => JobStatus::Failed,
        };
        let mut inner = self.lock();
        match inner.jobs.get(&result.job_id) {
            Some(tx) => {
                tx.send_if_modified(|state| {
                    if state.status.is_final() || (status == JobStatus::Running && state.status == JobStatus::Running) {
                        return false;
                    }
                    state.status = status;
                    state.result = Some(Arc::new(result));
                    true
                });
            }
            None => {
                // Accepted by another gateway instance, or before this one started.
                let id = result.job_id.clone();
                let state = JobState {
                    job_id: id.clone(),
                    status,
                    submitted_at_ms: None,
                    traceparent: None,
                    result: Some(Arc::new(result)),
                };
                inner.jobs.insert(id.clone(), watch::channel(state).0);
                inner.order.push_back(id);
                self.evict(&mut inner);
            }
        }
    }

    fn evict(&self, inner: &mut Inner) {
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.jobs.remove(&old);
            }
        }
    }

    pub fn get(&self, job_id: &str) -> Option<JobState> {
        self.lock().jobs.get(job_id).map(|tx| tx.borrow().clone())
    }

    /// A receiver that sees the job's state now and at every change.
    pub fn watch(&self, job_id: &str) -> Option<watch::Receiver<JobState>> {
        self.lock().jobs.get(job_id).map(watch::Sender::subscribe)
    }

    /// Jobs in the book.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, status: Status, worker: &str) -> JobResult {
        let mut r = JobResult::running(id, worker, None);
        r.status = status;
        r
    }

    #[test]
    fn a_final_answer_stays_and_the_oldest_jobs_are_forgotten_first() {
        let book = JobBook::new(2);
        book.accept("a", 1, None);
        let mut rx = book.watch("a").expect("accepted");
        assert_eq!(rx.borrow_and_update().status, JobStatus::Queued);
        book.update(msg("a", Status::Running, "w1"));
        assert_eq!(book.get("a").map(|s| s.status), Some(JobStatus::Running));
        book.update(msg("a", Status::Done, "w1"));
        book.update(msg("a", Status::Running, "w2"));
        book.update(msg("a", Status::Failed, "w2"));
        let a = book.get("a").expect("kept");
        assert_eq!((a.status, a.result.map(|r| r.worker.clone())), (JobStatus::Done, Some("w1".to_owned())));
        assert!(rx.has_changed().unwrap_or(false));

        // A result for a job this instance never saw is kept too (scaled mode).
        book.update(msg("b", Status::Done, "w1"));
        assert_eq!(book.get("b").map(|s| (s.status, s.submitted_at_ms)), Some((JobStatus::Done, None)));
        book.accept("c", 3, None);
        assert_eq!(book.len(), 2);
        assert!(book.get("a").is_none(), "the oldest went first");
        book.withdraw("c");
        assert!(book.get("c").is_none());
    }
}
