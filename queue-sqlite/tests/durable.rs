//! The embedded queue on a real SQLite file: what survives a process that stops without closing, what a final
//! answer is, and how a file that cannot be used is refused.

use std::time::Duration;

use jobs::protocol::{Job, JobResult, ModelRef, Options, Status};
use jobs::{Submitter, WorkerQueue};
use queue_sqlite::{OpenError, Retention, SqliteConfig, SqliteQueue};

fn job(id: &str, sha: &str) -> Job {
    let model = ModelRef { key: format!("models/{sha}"), sha256: sha.to_owned(), format: None };
    Job::new(id.to_owned(), model, Options::default(), Duration::from_secs(600))
}

fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn open(dir: &tempfile::TempDir) -> SqliteQueue {
    SqliteQueue::open(SqliteConfig::in_dir(dir.path())).expect("open")
}

async fn drain(rx: &mut tokio::sync::mpsc::Receiver<JobResult>, n: usize) -> Vec<JobResult> {
    let mut got = Vec::new();
    while got.len() < n {
        got.push(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("in time").expect("open"));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_dies_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first_answer;
    {
        let q = open(&dir);
        for i in 0..3 {
            q.submit(&job(&format!("j{i}"), &sha(i)), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
                .await
                .unwrap();
        }
        // j0 is answered; j1 is being worked when the process dies; j2 was never taken.
        let d0 = q.next().await.unwrap().unwrap();
        assert_eq!(jobs::protocol::decode_job(&d0.payload).unwrap().job_id, "j0");
        first_answer = JobResult::failed("j0", "w1", "no_metal", "first answer");
        q.publish(&first_answer, None).await.unwrap();
        let d1 = q.next().await.unwrap().unwrap();
        assert_eq!(d1.traceparent.as_deref(), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        // Dropped without close: as a SIGKILL leaves it.
    }
    let q = open(&dir);
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.queued, counts.running, counts.finished), (2, 0, 1), "j1 queued again");
    // Every job answers a lookup (the job book reads through to it after the restart): the answer as stored, the
    // rest queued, with when they were submitted.
    assert_eq!(q.lookup("j0").await.unwrap(), Some(first_answer.clone()));
    let j1 = q.lookup("j1").await.unwrap().unwrap();
    assert_eq!((j1.status(), j1.submitted_at_ms.is_some()), (Status::Queued, true));
    assert_eq!(q.lookup("nobody").await.unwrap(), None);
    let mut rx = q.subscribe();
    // j1 and j2 are worked again, in order.
    let again: Vec<String> = [q.next().await.unwrap().unwrap(), q.next().await.unwrap().unwrap()]
        .iter()
        .map(|d| jobs::protocol::decode_job(&d.payload).unwrap().job_id)
        .collect();
    assert_eq!(again, ["j1", "j2"]);
    // j0 answered again (worked twice somewhere): the first answer stands, and is what subscribers hear.
    q.publish(&JobResult::failed("j0", "w2", "no_metal", "second answer"), None).await.unwrap();
    assert_eq!(drain(&mut rx, 1).await[0], first_answer);
    assert_eq!(q.lookup("j0").await.unwrap(), Some(first_answer));
    assert_eq!(q.lookup("j1").await.unwrap().map(|r| r.status()), Some(Status::Running));
    // A job submitted again under the same id (an idempotent retry) is still one job.
    q.submit(&job("j2", &sha(2)), None).await.unwrap();
    assert_eq!(q.counts().await.unwrap().queued + q.counts().await.unwrap().running, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_puts_running_jobs_back() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    q.submit(&job("a", &sha(1)), None).await.unwrap();
    let _ = q.next().await.unwrap().unwrap();
    q.close().await;
    assert_eq!(q.counts().await.unwrap().queued, 1);
    // The queue stays usable: the job is handed out again (to another run loop, or after a restart).
    let again = q.next().await.unwrap().unwrap();
    assert_eq!(jobs::protocol::decode_job(&again.payload).unwrap().job_id, "a");
}

#[test]
fn a_file_from_a_newer_assay_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let path = dir.path().join(queue_sqlite::FILE_NAME);
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let e = SqliteQueue::open(SqliteConfig::in_dir(dir.path())).unwrap_err();
    assert!(matches!(e, OpenError::Newer { found: 99, .. }), "{e}");
    let message = e.to_string();
    assert!(message.contains(&path.display().to_string()) && message.contains("newer assay"), "{message}");
}

#[test]
fn a_corrupt_file_is_refused_with_its_name_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(queue_sqlite::FILE_NAME);
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let e = SqliteQueue::open(SqliteConfig::in_dir(dir.path())).unwrap_err();
    assert!(matches!(e, OpenError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "the file is left as it was");
}

#[test]
fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(&dir);
    let e = SqliteQueue::open(SqliteConfig::in_dir(dir.path())).unwrap_err();
    assert!(matches!(e, OpenError::Locked { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_refuses_new_jobs_keeps_the_old_ones_and_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig { max_bytes: Some(128 << 10), ..SqliteConfig::in_dir(dir.path()) };
    let q = SqliteQueue::open(config).unwrap();
    assert!(q.ready().await.is_ok());
    let mut accepted = 0u64;
    let refusal = loop {
        let mut j = job(&format!("job-{accepted}"), &sha((accepted % 200) as u8));
        j.options.alloys = vec!["x".repeat(2000)]; // a few kB each, so the bound is reached soon
        match q.submit(&j, None).await {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 10_000, "the bound was never reached");
    };
    assert!(matches!(refusal, jobs::QueueError::Full(_)), "{refusal}");
    assert!(refusal.to_string().contains("full"), "{refusal}");
    assert!(q.ready().await.is_err(), "not ready while full");
    assert_eq!(q.counts().await.unwrap().queued, accepted, "every accepted job is kept");
    // Room again (a job answered and swept away): the next write succeeds and readiness returns.
    let d = q.next().await.unwrap().unwrap();
    let id = jobs::protocol::decode_job(&d.payload).unwrap().job_id;
    let _ = q.publish(&JobResult::failed(&id, "w", "x", "y"), None).await;
    let store = model_store::ModelStore::from_url("memory://").unwrap();
    let retention = Retention { max_age: Duration::ZERO, ..Retention::default() };
    q.sweep(&store, &retention).await.unwrap();
    let mut j = job("after", &sha(1));
    j.options.alloys = vec!["y".into()];
    q.submit(&j, None).await.unwrap();
    assert!(q.ready().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_model_while_a_job_needs_it_and_removes_it_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = model_store::ModelStore::from_url(&dir.path().join("store").display().to_string()).unwrap();
    let a = store.put(bytes::Bytes::from_static(b"model a")).await.unwrap();
    let b = store.put(bytes::Bytes::from_static(b"model b")).await.unwrap();
    let orphan = store.put(bytes::Bytes::from_static(b"nobody's model")).await.unwrap();
    let q = open(&dir);
    q.submit(&job("old", &a.sha256), None).await.unwrap();
    q.submit(&job("pending", &b.sha256), None).await.unwrap();
    let d = q.next().await.unwrap().unwrap();
    assert_eq!(jobs::protocol::decode_job(&d.payload).unwrap().job_id, "old");
    q.publish(&JobResult::failed("old", "w", "x", "y"), None).await.unwrap();

    // Young models are spared whatever refers to them (an upload lands just before its job is written).
    let keep_all = Retention { max_age: Duration::from_secs(3600), ..Retention::default() };
    let swept = q.sweep(&store, &keep_all).await.unwrap();
    assert_eq!((swept.jobs, swept.models), (0, 0));

    let now = Retention { max_age: Duration::ZERO, model_grace: Duration::ZERO, ..Retention::default() };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let swept = q.sweep(&store, &now).await.unwrap();
    assert_eq!(swept.jobs, 1, "the finished job is past its time");
    let left: Vec<String> = store.models().await.unwrap().into_iter().map(|m| m.sha256).collect();
    assert!(left.contains(&b.sha256), "the queued job's model is kept");
    assert!(!left.contains(&a.sha256) && !left.contains(&orphan.sha256), "{left:?}");
    assert_eq!(q.lookup("old").await.unwrap(), None);

    // Once the pending job is answered and expired, its model goes too.
    let d = q.next().await.unwrap().unwrap();
    assert_eq!(jobs::protocol::decode_job(&d.payload).unwrap().job_id, "pending");
    q.publish(&JobResult::failed("pending", "w", "x", "y"), None).await.unwrap();
    assert!(store.get(&b.key, &b.sha256).await.is_ok(), "still there while its job is retained");
    tokio::time::sleep(Duration::from_millis(5)).await;
    q.sweep(&store, &now).await.unwrap();
    assert!(store.models().await.unwrap().is_empty());

    // The bound on stored jobs: the oldest finished go first.
    for i in 0..5 {
        let id = format!("n{i}");
        q.submit(&job(&id, &a.sha256), None).await.unwrap();
        q.next().await.unwrap().unwrap();
        q.publish(&JobResult::failed(&id, "w", "x", "y"), None).await.unwrap();
    }
    let bounded = Retention { max_jobs: 2, ..Retention::default() };
    assert_eq!(q.sweep(&store, &bounded).await.unwrap().jobs, 3);
    assert!(q.lookup("n4").await.unwrap().is_some() && q.lookup("n2").await.unwrap().is_none());
}
