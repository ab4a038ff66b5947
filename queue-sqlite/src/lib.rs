//! The embedded, durable transport of the job queue: every job, its state and its final result in one SQLite
//! file under `assay serve`'s data directory, behind the `jobs` crate's traits. A job is in the file before the
//! submitter returns (so before `202 Accepted`); a worker claims it; its final result is written once and never
//! replaced; a restart works the unfinished jobs again, and [`Submitter::lookup`] answers for every retained job
//! (the gateway's job book reads through to it), so polls, WebSockets and idempotent retries answer as they did
//! before it.
//!
//! The claim's lease is the process: the process holds an exclusive lock on `assay.db.lock` beside the file for
//! as long as it runs, so one process at a time works its jobs, and whatever was `running` when a process died is
//! queued again when the next one opens the file.
//!
//! Commits never wait for the disk: WAL with `synchronous=NORMAL` writes each commit to the log without an fsync,
//! and a checkpointer thread of its own (a second connection) moves the log into the database every second, so
//! the fsync a checkpoint needs never stalls a submission, a claim or a result.

mod retention;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::protocol::{Job, JobResult, Outcome};
use jobs::queue::{Delivery, QueueError, Submitter, WorkerQueue};
use jobs::Fanout;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use tokio::sync::{mpsc, Notify};

pub use retention::{run_retention, sweep, Retention, Swept};

/// The schema this build writes. A file with a higher `user_version` was written by a newer assay: refused.
/// 2: the webhook outbox.
pub const SCHEMA_VERSION: i64 = 2;

/// The file's name under the data directory.
pub const FILE_NAME: &str = "assay.db";

/// The embedded queue's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file.
    pub path: PathBuf,
    /// Messages each subscriber may have unread before publishing waits for it (default 4,096).
    pub subscriber_buffer: usize,
    /// The most the file may grow to, in bytes; past it a submission is refused as `storage_full` (default: no
    /// bound but the disk's).
    pub max_bytes: Option<u64>,
    /// Names of the jobs and results destinations, for spans (default: the protocol's topic names).
    pub jobs: String,
    pub results: String,
}

impl SqliteConfig {
    /// The database in `data_dir` with the defaults.
    pub fn in_dir(data_dir: &Path) -> SqliteConfig {
        SqliteConfig {
            path: data_dir.join(FILE_NAME),
            subscriber_buffer: 4096,
            max_bytes: None,
            jobs: jobs::protocol::JOBS.into(),
            results: jobs::protocol::RESULTS.into(),
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path} was written by a newer assay (schema version {found}; this one reads up to {SCHEMA_VERSION}): upgrade assay, or start with another --data directory")]
    Newer { path: String, found: i64 },
    #[error("{path} is not a readable assay database ({message}): it was left as it is; restore it from a backup, or move it away to start with an empty one")]
    Corrupt { path: String, message: String },
    #[error("{path} is in use by another process (another assay serve on the same --data directory?)")]
    Locked { path: String },
    #[error("cannot open {path}: {message}")]
    Io { path: String, message: String },
}

/// Jobs in the database, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub queued: u64,
    pub running: u64,
    pub finished: u64,
}

/// The durable queue: both sides of the in-process transport, on a SQLite file.
#[derive(Debug)]
pub struct SqliteQueue {
    config: SqliteConfig,
    conn: Arc<Mutex<Connection>>,
    updates: Arc<Fanout<JobResult>>,
    queued: Notify,
    /// The jobs to hand out, in order, and those handed out and not yet settled. A claim needs no write: its lease
    /// is the process, and every job not final when the process stops is queued again at the next open.
    claims: Mutex<Claims>,
    /// The last write that failed for want of space or a writable file, until a write succeeds again.
    write_error: Arc<Mutex<Option<String>>>,
    /// Held for as long as this queue lives: one process per database.
    _lock: std::fs::File,
    /// Stops the checkpointer when the queue is dropped.
    _checkpointer: Checkpointer,
}

#[derive(Debug, Default)]
struct Claims {
    pending: std::collections::VecDeque<i64>,
    in_flight: std::collections::HashSet<i64>,
}

/// The thread that checkpoints the write-ahead log, off the path of every request.
#[derive(Debug)]
struct Checkpointer {
    stop: Arc<AtomicBool>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Checkpointer {
    fn start(path: PathBuf) -> Checkpointer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new().name("assay-db-checkpoint".into()).spawn(move || {
            let conn = match Connection::open(&path) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "the job database's checkpointer cannot open it: the log will grow");
                    return;
                }
            };
            let _ = conn.busy_timeout(Duration::from_secs(1));
            while !flag.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_secs(1));
                // PASSIVE: copies what no reader needs, never blocks the writer; its fsync happens here.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "checkpoint");
                }
            }
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the job database's checkpointer");
        }
        Checkpointer { stop }
    }
}

fn sqlite_code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

pub(crate) fn storage_error(e: &rusqlite::Error) -> QueueError {
    match sqlite_code(e) {
        Some(ErrorCode::DiskFull) => QueueError::Full(
            "the job database is full: free disk space (or raise --max-db-mb); jobs already accepted are kept".into(),
        ),
        Some(
            ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::PermissionDenied,
        ) => QueueError::Unavailable { system: "sqlite", message: format!("the job database cannot be written: {e}") },
        _ => QueueError::Unavailable { system: "sqlite", message: e.to_string() },
    }
}

impl SqliteQueue {
    /// Opens (or creates) the database: refuses a newer schema, an unreadable file or one another process holds,
    /// and queues again every job that was running when the last process stopped.
    pub fn open(config: SqliteConfig) -> Result<SqliteQueue, OpenError> {
        let path = config.path.display().to_string();
        let io = |e: rusqlite::Error| OpenError::Io { path: path.clone(), message: e.to_string() };
        let classify = |e: rusqlite::Error| match sqlite_code(&e) {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                OpenError::Corrupt { path: path.clone(), message: e.to_string() }
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => OpenError::Locked { path: path.clone() },
            _ => OpenError::Io { path: path.clone(), message: e.to_string() },
        };
        if let Some(dir) = config.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| OpenError::Io { path: path.clone(), message: e.to_string() })?;
        }
        // One process at a time: an exclusive lock on a file beside the database, released when the process ends
        // however it ends.
        let mut lock_path = config.path.clone().into_os_string();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| OpenError::Io { path: path.clone(), message: e.to_string() })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OpenError::Locked { path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(OpenError::Io { path, message: e.to_string() }),
        }
        let conn = Connection::open(&config.path).map_err(io)?;
        conn.busy_timeout(Duration::from_millis(200)).map_err(io)?;
        // Reading the header and the schema first: a file that is no database says so here, before any write.
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(classify)?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)).map_err(classify)?;
        if found > SCHEMA_VERSION {
            return Err(OpenError::Newer { path, found });
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(classify)?;
        // WAL with NORMAL: a commit survives a crash of the process; a power cut may lose the last commits.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(classify)?;
        // Checkpoints run on the checkpointer's own connection, never inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(classify)?;
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS jobs (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 job_id TEXT,
                 payload BLOB NOT NULL,
                 traceparent TEXT,
                 model_sha256 TEXT,
                 state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'final', 'dead')),
                 enqueued_at_ms INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 result TEXT,
                 finished_at_ms INTEGER
             );
             CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_id ON jobs(job_id) WHERE job_id IS NOT NULL;
             CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq);
             CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs(model_sha256);
             CREATE TABLE IF NOT EXISTS dead_letters (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 payload BLOB NOT NULL,
                 reason TEXT NOT NULL,
                 at_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS webhook_outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 job_id TEXT NOT NULL,
                 event TEXT NOT NULL,
                 tenant TEXT NOT NULL,
                 body TEXT NOT NULL,
                 state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'skipped')),
                 attempts INTEGER NOT NULL DEFAULT 0,
                 next_at_ms INTEGER NOT NULL,
                 last_attempt_at_ms INTEGER,
                 last_status_code INTEGER,
                 last_error TEXT,
                 UNIQUE (job_id, event)
             );
             CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox(state, next_at_ms);
             COMMIT;",
        )
        .map_err(classify)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(classify)?;
        if let Some(max) = config.max_bytes {
            let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(io)?;
            let pages = (max / u64::try_from(page.max(512)).unwrap_or(4096)).max(16);
            conn.pragma_update(None, "max_page_count", pages as i64).map_err(io)?;
        }
        // The lease of every claim was the process that made it; that process is gone. ('running' is written by
        // no version today; a file that has it is queued again all the same.)
        conn.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'", []).map_err(classify)?;
        let pending: std::collections::VecDeque<i64> = {
            let mut s = conn.prepare("SELECT seq FROM jobs WHERE state = 'queued' ORDER BY seq").map_err(classify)?;
            let rows = s.query_map([], |r| r.get(0)).map_err(classify)?;
            rows.collect::<rusqlite::Result<_>>().map_err(classify)?
        };
        if !pending.is_empty() {
            tracing::info!(jobs = pending.len(), "jobs not finished when assay last stopped are queued again");
        }
        Ok(SqliteQueue {
            updates: Arc::new(Fanout::new(config.subscriber_buffer)),
            _checkpointer: Checkpointer::start(config.path.clone()),
            _lock: lock,
            config,
            conn: Arc::new(Mutex::new(conn)),
            queued: Notify::new(),
            claims: Mutex::new(Claims { pending, in_flight: Default::default() }),
            write_error: Arc::new(Mutex::new(None)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Runs `f` on the connection off the async runtime's threads.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        on(&self.conn, f).await
    }

    /// Runs a write, keeping note of a failure that means the file cannot take more (for readiness).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, QueueError> {
        let outcome = self.with(f).await;
        let mut last = self.write_error.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(v) => {
                *last = None;
                Ok(v)
            }
            Err(e) => {
                let err = storage_error(&e);
                if matches!(err, QueueError::Full(_) | QueueError::Unavailable { .. }) {
                    *last = Some(err.to_string());
                }
                tracing::error!(error = %e, "writing to the job database");
                Err(err)
            }
        }
    }

    /// Queues raw bytes as a job message (tests use it to send what a broken client might).
    pub async fn send_raw(&self, payload: Vec<u8>, traceparent: Option<String>) -> Result<(), QueueError> {
        let job_id = serde_json::from_slice::<serde_json::Value>(&payload)
            .ok()
            .and_then(|v| v.get("job_id").and_then(|j| j.as_str()).map(str::to_owned))
            .filter(|id| jobs::protocol::is_valid_job_id(id));
        let now = jobs::now_ms() as i64;
        let seq = self
            .write(move |c| {
                c.query_row(
                    "INSERT INTO jobs (job_id, payload, traceparent, state, enqueued_at_ms) VALUES (?1, ?2, ?3, 'queued', ?4)
                     ON CONFLICT (job_id) WHERE job_id IS NOT NULL DO NOTHING RETURNING seq",
                    params![job_id, payload, traceparent, now],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        self.enqueue(seq);
        Ok(())
    }

    /// Hands a newly written job to the workers (none when the job id was already there).
    fn enqueue(&self, seq: Option<i64>) {
        if let Some(seq) = seq {
            self.claims.lock().unwrap_or_else(|e| e.into_inner()).pending.push_back(seq);
            self.queued.notify_one();
        }
    }

    /// Messages put on the dead-letter table, with their reasons.
    pub async fn dead_letters(&self) -> Vec<(Vec<u8>, String)> {
        self.with(|c| {
            let mut s = c.prepare("SELECT payload, reason FROM dead_letters ORDER BY id")?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Jobs by state: waiting, handed to a worker, finished.
    pub async fn counts(&self) -> Result<Counts, QueueError> {
        let (unfinished, finished): (u64, u64) = self
            .with(|c| {
                c.query_row(
                    "SELECT coalesce(sum(state = 'queued'), 0), coalesce(sum(state = 'final'), 0) FROM jobs",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await
            .map_err(|e| storage_error(&e))?;
        let running = self.claims.lock().unwrap_or_else(|e| e.into_inner()).in_flight.len() as u64;
        Ok(Counts { queued: unfinished.saturating_sub(running), running, finished })
    }

    /// Runs a retention sweep now (see [`sweep`]).
    pub async fn sweep(&self, store: &model_store::ModelStore, retention: &Retention) -> Result<Swept, QueueError> {
        retention::sweep(self, store, retention).await
    }
}

impl WorkerQueue for SqliteQueue {
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
        loop {
            let woken = self.queued.notified();
            let seq = {
                let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
                let seq = claims.pending.pop_front();
                if let Some(seq) = seq {
                    claims.in_flight.insert(seq);
                }
                seq
            };
            let Some(seq) = seq else {
                // Nothing queued: wait for a submission (or look again in a while, whatever happens).
                let _ = tokio::time::timeout(Duration::from_secs(1), woken).await;
                continue;
            };
            let read = self
                .with(move |c| {
                    c.query_row(
                        "SELECT payload, traceparent, enqueued_at_ms FROM jobs WHERE seq = ?1 AND state = 'queued'",
                        [seq],
                        |r| {
                            Ok(Delivery {
                                seq: seq as u64,
                                payload: r.get(0)?,
                                traceparent: r.get(1)?,
                                enqueued_at_ms: r.get::<_, Option<i64>>(2)?.map(|t| t as u64),
                                position: None,
                            })
                        },
                    )
                    .optional()
                })
                .await;
            match read {
                Ok(Some(d)) => return Ok(Some(d)),
                // Settled meanwhile (answered, or swept away): nothing to hand out.
                Ok(None) => {
                    self.claims.lock().unwrap_or_else(|e| e.into_inner()).in_flight.remove(&seq);
                }
                Err(e) => {
                    let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
                    claims.in_flight.remove(&seq);
                    claims.pending.push_front(seq);
                    return Err(storage_error(&e));
                }
            }
        }
    }

    async fn publish(&self, result: &JobResult, _traceparent: Option<&str>) -> Result<(), QueueError> {
        if !result.is_final() {
            self.updates.send(result.clone()).await;
            return Ok(());
        }
        let text = serde_json::to_string(result).map_err(|e| QueueError::Encode(e.to_string()))?;
        let id = result.job_id.clone();
        let now = jobs::now_ms() as i64;
        let outbox = outbox_row(result);
        // A final answer is written once: a second one (a job worked again after a crash) leaves the first, and
        // the first is what everyone is told.
        // `None` when this answer was written; the stored first answer when there was one already.
        let earlier: Option<String> = self
            .write(move |c| {
                let tx = c.transaction()?;
                let written = tx.execute(
                    "INSERT INTO jobs (job_id, payload, state, enqueued_at_ms, result, finished_at_ms)
                     VALUES (?1, x'', 'final', ?3, ?2, ?3)
                     ON CONFLICT (job_id) WHERE job_id IS NOT NULL
                     DO UPDATE SET state = 'final', result = excluded.result, finished_at_ms = excluded.finished_at_ms
                     WHERE jobs.state != 'final'",
                    params![id, text, now],
                )?;
                let earlier = if written == 0 {
                    Some(tx.query_row("SELECT result FROM jobs WHERE job_id = ?1", [&id], |r| r.get(0))?)
                } else {
                    // The tenant's webhook delivery is queued with the answer, in one commit: neither is
                    // written without the other.
                    if let Some(row) = &outbox {
                        insert_outbox(&tx, row, now)?;
                    }
                    None
                };
                tx.commit()?;
                Ok(earlier)
            })
            .await?;
        let first = match earlier.and_then(|t| serde_json::from_str::<JobResult>(&t).ok()) {
            Some(first) => first,
            None => result.clone(),
        };
        self.updates.send(first).await;
        Ok(())
    }

    async fn progress(&self, update: &JobResult, _traceparent: Option<&str>) {
        // A tenant's job's start may be wanted by its webhook: kept in the outbox (best effort: progress is
        // never worth failing a job for).
        if let Some(row) = outbox_row(update) {
            let now = jobs::now_ms() as i64;
            if let Err(e) = self.write(move |c| insert_outbox(c, &row, now).map(|_| ())).await {
                tracing::warn!(job.id = %update.job_id, error = %e, "cannot queue the running webhook");
            }
        }
        self.updates.send(update.clone()).await;
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let (seq, payload, reason, now) =
            (delivery.seq as i64, delivery.payload.clone(), reason.to_owned(), jobs::now_ms() as i64);
        self.write(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO dead_letters (payload, reason, at_ms) VALUES (?1, ?2, ?3)",
                params![payload, reason, now],
            )?;
            // The message is settled: a readable job id still gets its failed result, under that id.
            tx.execute("UPDATE jobs SET state = 'dead', job_id = NULL WHERE seq = ?1", [seq])?;
            tx.commit()
        })
        .await
    }

    fn done(&self, delivery: &Delivery) {
        // The final result (or the dead letter) was written durably when it was published: the claim ends.
        self.claims.lock().unwrap_or_else(|e| e.into_inner()).in_flight.remove(&(delivery.seq as i64));
    }

    async fn close(&self) {
        // Jobs still running go back to the queue, for another run loop (as the in-process queue does; the queue
        // itself stays usable); in the file they are queued all along, for the next start.
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        let mut unfinished: Vec<i64> = claims.in_flight.drain().collect();
        unfinished.sort_unstable();
        for seq in unfinished.into_iter().rev() {
            claims.pending.push_front(seq);
        }
        drop(claims);
        self.queued.notify_one();
    }
}

impl Submitter for SqliteQueue {
    fn messaging_system(&self) -> &'static str {
        "in_process"
    }

    fn destination(&self) -> &str {
        &self.config.jobs
    }

    async fn submit(&self, job: &Job, traceparent: Option<&str>) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(job).map_err(|e| QueueError::Encode(e.to_string()))?;
        let (id, sha, tp, at) =
            (job.job_id.clone(), job.model.sha256.clone(), traceparent.map(str::to_owned), job.submitted_at_ms as i64);
        // Committed before this returns: the job survives a crash from here on.
        let seq = self
            .write(move |c| {
                c.query_row(
                    "INSERT INTO jobs (job_id, payload, traceparent, model_sha256, state, enqueued_at_ms)
                     VALUES (?1, ?2, ?3, ?4, 'queued', ?5)
                     ON CONFLICT (job_id) WHERE job_id IS NOT NULL DO NOTHING RETURNING seq",
                    params![id, payload, tp, sha, at],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        self.enqueue(seq);
        Ok(())
    }

    fn subscribe(&self) -> mpsc::Receiver<JobResult> {
        self.updates.subscribe()
    }

    /// A job from before this process started: its final result as stored, else its state (`queued`, or
    /// `running`), with when it was submitted.
    async fn lookup(&self, job_id: &str) -> Result<Option<JobResult>, QueueError> {
        let id = job_id.to_owned();
        let row = self
            .with(move |c| {
                c.query_row("SELECT seq, state, result, payload FROM jobs WHERE job_id = ?1", [&id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .optional()
            })
            .await
            .map_err(|e| storage_error(&e))?;
        Ok(row.and_then(|(seq, state, result, payload)| match state.as_str() {
            "final" => result.and_then(|t| serde_json::from_str::<JobResult>(&t).ok()),
            "queued" | "running" => {
                let claimed = self.claims.lock().unwrap_or_else(|e| e.into_inner()).in_flight.contains(&seq);
                let outcome = if claimed { Outcome::Running } else { Outcome::Queued };
                let job = jobs::protocol::decode_job(&payload).ok();
                Some(JobResult {
                    submitted_at_ms: job.as_ref().map(|j| j.submitted_at_ms),
                    tenant: job.and_then(|j| j.tenant),
                    ..JobResult::new(job_id, "", None, outcome)
                })
            }
            _ => None,
        }))
    }

    async fn ready(&self) -> Result<(), QueueError> {
        if let Some(e) = self.write_error.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(QueueError::Unavailable { system: "sqlite", message: e });
        }
        self.with(|c| c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|_| ())
            .map_err(|e| storage_error(&e))
    }
}

/// A webhook delivery to queue for a message: its job's tenant, event and body.
struct OutboxRow {
    job_id: String,
    event: &'static str,
    tenant: String,
    body: String,
}

fn outbox_row(result: &JobResult) -> Option<OutboxRow> {
    let event = match result.status() {
        jobs::Status::Queued => return None,
        s => s.as_str(),
    };
    Some(OutboxRow {
        job_id: result.job_id.clone(),
        event,
        tenant: result.tenant.clone()?,
        body: jobs::view::body(result),
    })
}

fn insert_outbox(c: &Connection, row: &OutboxRow, now: i64) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT INTO webhook_outbox (job_id, event, tenant, body, state, next_at_ms) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)
         ON CONFLICT (job_id, event) DO NOTHING",
        params![row.job_id, row.event, row.tenant, row.body, now],
    )
}

/// The webhook outbox of `assay serve`: every delivery in the database from the commit of the result it tells
/// of, so deliveries pending when the process died are made after it starts again.
#[async_trait::async_trait]
impl jobs::Outbox for SqliteQueue {
    async fn due(&self, now_ms: u64, limit: usize, busy: &[u64]) -> Result<Vec<jobs::Pending>, String> {
        let busy: std::collections::HashSet<u64> = busy.iter().copied().collect();
        let want = limit + busy.len();
        let rows = self
            .with(move |c| {
                let mut s = c.prepare_cached(
                    "SELECT id, job_id, event, tenant, body, attempts FROM webhook_outbox
                     WHERE state = 'pending' AND next_at_ms <= ?1 ORDER BY next_at_ms, id LIMIT ?2",
                )?;
                let rows = s.query_map(params![now_ms as i64, want as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .filter(|r| !busy.contains(&(r.0 as u64)))
            .filter_map(|(id, job_id, event, tenant, body, attempts)| {
                Some(jobs::Pending {
                    id: id as u64,
                    job_id,
                    event: jobs::Status::parse(&event)?,
                    tenant,
                    body,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                })
            })
            .take(limit)
            .collect())
    }

    async fn pending(&self) -> Result<u64, String> {
        self.webhooks_pending().await.map_err(|e| e.to_string())
    }

    async fn record(&self, pending: &jobs::Pending, record: jobs::Record) -> Result<(), String> {
        let id = pending.id as i64;
        let state = record.status.map_or("skipped", jobs::DeliveryStatus::as_str);
        let next = record.next_at_ms.map(|n| n as i64);
        self.write(move |c| {
            c.execute(
                "UPDATE webhook_outbox SET state = ?2, attempts = ?3, next_at_ms = coalesce(?4, next_at_ms),
                     last_attempt_at_ms = coalesce(?5, last_attempt_at_ms), last_status_code = ?6, last_error = ?7
                 WHERE id = ?1",
                params![
                    id,
                    state,
                    record.attempts,
                    next,
                    record.last_attempt_at_ms.map(|n| n as i64),
                    record.last_status_code,
                    record.last_error
                ],
            )
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

impl SqliteQueue {
    /// How a job's final result is being delivered to its tenant's webhook, if it is.
    pub async fn webhook_status(&self, job_id: &str) -> Result<Option<jobs::WebhookStatus>, QueueError> {
        let id = job_id.to_owned();
        let row = self
            .with(move |c| {
                c.query_row(
                    "SELECT state, attempts, last_attempt_at_ms, last_status_code, last_error FROM webhook_outbox
                     WHERE job_id = ?1 AND event IN ('done', 'failed') AND state != 'skipped'",
                    [&id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                            r.get::<_, Option<i64>>(3)?,
                            r.get::<_, Option<String>>(4)?,
                        ))
                    },
                )
                .optional()
            })
            .await
            .map_err(|e| storage_error(&e))?;
        Ok(row.and_then(|(state, attempts, at, code, error)| {
            Some(jobs::WebhookStatus {
                status: jobs::DeliveryStatus::parse(&state)?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                last_attempt_at: at.map(|a| a as u64),
                last_status_code: code.and_then(|c| u16::try_from(c).ok()),
                last_error: error,
            })
        }))
    }

    /// Webhook deliveries waiting for an attempt.
    pub async fn webhooks_pending(&self) -> Result<u64, QueueError> {
        self.with(|c| {
            c.query_row("SELECT count(*) FROM webhook_outbox WHERE state = 'pending'", [], |r| r.get::<_, i64>(0))
        })
        .await
        .map(|n| n as u64)
        .map_err(|e| storage_error(&e))
    }
}

/// Runs `f` on the connection off the async runtime's threads.
async fn on<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
) -> rusqlite::Result<T> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c)
    })
    .await
    .unwrap_or_else(|e| Err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))
}
