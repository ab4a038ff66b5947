//! The job book: what the gateway knows of recent jobs, bounded in memory, fed by the queue's messages. A poll
//! reads it; a WebSocket watches one entry. In scaled mode every gateway reads every result, so any instance
//! can answer for any job.

use std::sync::{Arc, Mutex};

use jobs::protocol::{JobResult, Outcome, Status};
use jobs::BoundedMap;
use tokio::sync::watch;

/// One job's state: its status, and the worker's latest message once there is one.
#[derive(Debug, Clone)]
pub struct JobState {
    pub job_id: String,
    /// When this gateway accepted it (absent for jobs another instance accepted).
    pub submitted_at_ms: Option<u64>,
    /// The `traceparent` the job was sent with (known to the gateway that accepted it).
    pub traceparent: Option<String>,
    /// The latest message about the job: none while it is queued.
    pub result: Option<Arc<JobResult>>,
    /// The tenant whose job it is, when the gateway has tenants (from the submission, or from the job's messages
    /// for one another instance accepted).
    pub tenant: Option<String>,
}

impl JobState {
    pub fn status(&self) -> Status {
        self.result.as_ref().map_or(Status::Queued, |r| r.status())
    }

    /// Whether `tenant` may see this job: a caller with no tenant (one key, or the open mode) sees every job; a
    /// tenant only its own.
    pub fn visible_to(&self, tenant: Option<&str>) -> bool {
        tenant.is_none_or(|t| self.tenant.as_deref() == Some(t))
    }

    pub fn outcome(&self) -> &Outcome {
        static QUEUED: Outcome = Outcome::Queued;
        self.result.as_ref().map_or(&QUEUED, |r| &r.outcome)
    }
}

#[derive(Debug)]
pub struct JobBook {
    jobs: Mutex<BoundedMap<String, watch::Sender<JobState>>>,
}

impl JobBook {
    /// A book that keeps at most `capacity` jobs, forgetting the oldest first.
    pub fn new(capacity: usize) -> JobBook {
        JobBook { jobs: Mutex::new(BoundedMap::new(capacity)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedMap<String, watch::Sender<JobState>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a job this gateway accepted, before it is queued (so no answer can arrive for an unknown id). A
    /// job the book already knows (a retry with the same idempotency key, through this or another instance) is
    /// left as it is; returns whether the job is new to the book.
    pub fn accept(
        &self,
        job_id: &str,
        submitted_at_ms: u64,
        traceparent: Option<String>,
        tenant: Option<String>,
    ) -> bool {
        let mut jobs = self.lock();
        if jobs.contains_key(job_id) {
            return false;
        }
        let state = JobState {
            job_id: job_id.to_owned(),
            submitted_at_ms: Some(submitted_at_ms),
            traceparent,
            result: None,
            tenant,
        };
        jobs.insert(job_id.to_owned(), watch::channel(state).0);
        true
    }

    /// Forgets a job that could not be queued.
    pub fn withdraw(&self, job_id: &str) {
        self.lock().remove(job_id);
    }

    /// Applies a message about a job. A final answer is never replaced by progress, nor by a later duplicate; a
    /// `queued` state (a durable queue's answer for a job accepted before this process started) only makes the
    /// job known.
    pub fn update(&self, result: JobResult) {
        let status = result.status();
        let mut jobs = self.lock();
        match jobs.get(&result.job_id) {
            Some(tx) => {
                tx.send_if_modified(|state| {
                    let now = state.status();
                    let progress_again = status == Status::Running && now == Status::Running;
                    if now.is_final() || status == Status::Queued || progress_again {
                        return false;
                    }
                    state.submitted_at_ms = state.submitted_at_ms.or(result.submitted_at_ms);
                    if state.tenant.is_none() {
                        state.tenant = result.tenant.clone();
                    }
                    state.result = Some(Arc::new(result));
                    true
                });
            }
            None => {
                // Accepted by another gateway instance, or before this process started.
                let id = result.job_id.clone();
                let state = JobState {
                    job_id: id.clone(),
                    submitted_at_ms: result.submitted_at_ms,
                    traceparent: None,
                    tenant: result.tenant.clone(),
                    result: (status != Status::Queued).then(|| Arc::new(result)),
                };
                jobs.insert(id, watch::channel(state).0);
            }
        }
    }

    pub fn get(&self, job_id: &str) -> Option<JobState> {
        self.lock().get(job_id).map(|tx| tx.borrow().clone())
    }

    /// A receiver that sees the job's state now and at every change.
    pub fn watch(&self, job_id: &str) -> Option<watch::Receiver<JobState>> {
        self.lock().get(job_id).map(watch::Sender::subscribe)
    }

    /// Jobs in the book.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, status: Status, worker: &str) -> JobResult {
        match status {
            Status::Failed => JobResult::failed(id, worker, "x", "y"),
            Status::Done => {
                let mut r = JobResult::failed(id, worker, "x", "y");
                // Only the status matters to the book: a done message with a made-up body.
                let priced: jobs::Priced = serde_json::from_value(serde_json::json!({
                    "rules_version": "v", "prices_date": "d", "segment": "b2c", "quantity": 1,
                    "detected_stones": [], "quotes": [], "warnings": [],
                    "geometry": models::analyze(&models::synth::ring_band(8.0, 10.0, 2.0, 8, 4)),
                    "timings_ms": jobs::Timings::default(),
                }))
                .expect("priced");
                r.outcome = Outcome::Done(Box::new(priced));
                r
            }
            _ => JobResult::running(id, worker, None),
        }
    }

    #[test]
    fn a_final_answer_stays_and_the_oldest_jobs_are_forgotten_first() {
        let book = JobBook::new(2);
        assert!(book.accept("a", 1, None, None));
        assert!(!book.accept("a", 2, None, None), "a retry leaves the job as it is");
        let mut rx = book.watch("a").expect("accepted");
        assert_eq!(rx.borrow_and_update().status(), Status::Queued);
        book.update(msg("a", Status::Running, "w1"));
        assert_eq!(book.get("a").map(|s| s.status()), Some(Status::Running));
        book.update(msg("a", Status::Done, "w1"));
        book.update(msg("a", Status::Running, "w2"));
        book.update(msg("a", Status::Failed, "w2"));
        let a = book.get("a").expect("kept");
        assert_eq!((a.status(), a.result.map(|r| r.worker.clone())), (Status::Done, Some("w1".to_owned())));
        assert!(rx.has_changed().unwrap_or(false));

        // A result for a job this instance never saw is kept too (scaled mode).
        book.update(msg("b", Status::Done, "w1"));
        assert_eq!(book.get("b").map(|s| (s.status(), s.submitted_at_ms)), Some((Status::Done, None)));
        book.accept("c", 3, None, None);
        assert_eq!(book.len(), 2);
        assert!(book.get("a").is_none(), "the oldest went first");
        book.withdraw("c");
        assert!(book.get("c").is_none());
    }
}
