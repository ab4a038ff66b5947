//! The system test with real processes: a Kafka-compatible broker (tansu, in-memory storage) on a loopback
//! port, two `assay worker` processes, 500 jobs over real models, and one worker killed with SIGKILL midway (no
//! drain, no commit) while it holds unanswered jobs. Every job ends with one answer (a redelivered job may be
//! answered twice, at the same price), some of the killed worker's jobs are answered by another worker, and the
//! group has nothing left in flight.
//!
//! How the kill is recovered on tansu 0.6.0: a replacement worker joins once tansu has expired the killed
//! member. tansu does not give a vanished member's partitions to the survivors by itself: it notices the
//! missed session inside a survivor's Heartbeat, where it removes the member but keeps the group formed with the
//! old assignment (`tansu-broker-0.6.0/src/coordinator/group/administrator.rs`: `Controller::heartbeat` runs the
//! state's `heartbeat` first, :1181, whose `Inner<Formed>::missed_heartbeat`, :2676 and :1365, removes the member
//! without reopening the group, so `Wrapper::missed_heartbeat`, :1185 and :435, finds nothing left to do). The
//! survivor is told to rejoin, gets the same generation back (:2384) and, from SyncGroup, the stored assignment,
//! the leader's new one being ignored (:2581, :2633): the killed member's partitions belong to nobody for good.
//! A member that joins after that expiry reopens the group (:2312 to :2361) and the group is assigned afresh; one
//! that joins before it (a replacement started at once) is assigned partitions beside the dead member, whose
//! share is then lost the same way when it expires. Hence the order here: kill, wait for the survivor's
//! rebalance that marks the expiry, then start the replacement. The takeover by a survivor alone is tested on
//! librdkafka's mock cluster (`worker/tests/kafka_faults.rs`).
//!
//! Run it with `scripts/install-tansu.sh && cargo test --test system_tansu -- --nocapture`; it is skipped, with
//! the reason printed, when tansu is not installed, except in CI, where `.ci/run` installs it first.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::protocol::Options;
use jobs::{Job, JobResult, ModelRef, Outcome, Submitter};
use queue_kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[path = "support/tansu.rs"]
mod tansu;

/// Long enough for a member to finish joining on tansu (each follower JoinGroup waits 3 s there, and a member
/// that has not heartbeated for a session is expired, even while it is still joining).
const SESSION_TIMEOUT_MS: u64 = 10_000;
const PARTITIONS: i32 = 6;
const JOBS: usize = 500;
/// Answers received before the kill.
const KILL_AFTER: usize = 150;

/// An `assay worker` process with its log in a file; killed when dropped, so a failing test leaves none behind.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn spawn(bootstrap: &str, store: &str, dir: &Path, name: &'static str) -> Worker {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_assay"))
            .args(["worker", "--kafka", bootstrap, "--store", store, "--name", name, "--concurrency", "2"])
            .args(["--rules", &root().join("rules").display().to_string()])
            .env("ASSAY_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS.to_string())
            .env("ASSAY_TOPIC_PARTITIONS", PARTITIONS.to_string())
            .env("ASSAY_LOG", "info")
            .env("ASSAY_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Worker { child, log }
    }

    /// The partition counts of every assignment this worker has logged, in order.
    fn assignments(&self) -> Vec<usize> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["message"] == "partitions assigned")
            .filter_map(|l| l["partitions"].as_u64().map(|n| n as usize))
            .collect()
    }

    fn owns(&self) -> usize {
        self.assignments().last().copied().unwrap_or(0)
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Panics with `msg` after printing the end of every log, so a failure says what the processes saw.
fn fail(msg: &str, logs: &[PathBuf]) -> ! {
    let mut err = std::io::stderr().lock();
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(strip_ansi).collect();
        let _ = writeln!(err, "---- last lines of {}", log.display());
        for l in &lines[lines.len().saturating_sub(40)..] {
            let _ = writeln!(err, "{l}");
        }
    }
    panic!("{msg}");
}

/// The shipped sample and the project's own small real models, as (bytes) to quote.
fn real_models() -> Vec<Vec<u8>> {
    let mut out = vec![std::fs::read(root().join("samples/pixelverse_ring.stl")).unwrap()];
    for name in
        ["trimesh_unit_cube.STL", "draco_test_sphere_ascii.stl", "trimesh_nested.glb", "trimesh_BoxInterleaved.glb"]
    {
        out.push(std::fs::read(root().join("models/tests/data").join(name)).unwrap());
    }
    out
}

fn wait_until(what: &str, timeout: Duration, logs: &[PathBuf], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            fail(&format!("timed out after {timeout:?} waiting for {what}"), logs);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn five_hundred_jobs_two_worker_processes_one_killed() {
    let Some(tansu) = tansu::for_test() else { return };
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let broker = tansu::start(&tansu, work.path());
    let bootstrap = broker.bootstrap.clone();
    let session = Duration::from_millis(SESSION_TIMEOUT_MS);

    let mut cfg = KafkaConfig::new(&bootstrap);
    cfg.partitions = PARTITIONS;
    let store_url = work.path().join("data").display().to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let models = runtime.block_on(async {
        queue_kafka::ensure_topics(&cfg).await.unwrap();
        let store = model_store::ModelStore::from_url(&store_url).unwrap();
        let mut stored = Vec::new();
        for bytes in real_models() {
            stored.push(store.put(bytes.into()).await.unwrap());
        }
        stored
    });

    // One after the other: the group forms with w1 (its leader from then on: the member killed below is not the
    // leader), then shares every partition between w1 and w2.
    let logs: Vec<PathBuf> = [broker.log.clone()]
        .into_iter()
        .chain(["w1", "w2", "w3"].map(|w| work.path().join(format!("{w}.log"))))
        .collect();
    let w1 = Worker::spawn(&bootstrap, &store_url, work.path(), "w1");
    wait_until("w1 to own every partition", session * 3, &logs, || w1.owns() == PARTITIONS as usize);
    let mut w2 = Worker::spawn(&bootstrap, &store_url, work.path(), "w2");
    wait_until("w1 and w2 to share the partitions", session * 4, &logs, || {
        w1.owns() > 0 && w2.owns() > 0 && w1.owns() + w2.owns() == PARTITIONS as usize
    });
    let _ = writeln!(
        std::io::stderr(),
        "group formed: w1 {} + w2 {} partitions after {:?}",
        w1.owns(),
        w2.owns(),
        started.elapsed()
    );

    let ids: Vec<String> = (0..JOBS).map(|i| format!("sys-{i}")).collect();
    let model_of: HashMap<&str, usize> =
        ids.iter().enumerate().map(|(i, id)| (id.as_str(), i % models.len())).collect();
    let mut w3: Option<Worker> = None;
    let mut killed_at: Option<Instant> = None;
    let mut answered_by_w2_before_kill: BTreeSet<String> = BTreeSet::new();
    let results: HashMap<String, Vec<JobResult>> = runtime.block_on(async {
        let submitter = Arc::new(queue_kafka::KafkaSubmitter::connect(&cfg, true).unwrap());
        let mut rx = submitter.subscribe();
        for (i, id) in ids.iter().enumerate() {
            let m = &models[i % models.len()];
            let mut job = Job::new(
                id.clone(),
                ModelRef { key: m.key.clone(), sha256: m.sha256.clone(), format: None },
                Options { alloys: vec!["18k-yellow".into(), "sterling-925".into()], ..Options::default() },
                Duration::from_secs(600),
            );
            job.deadline_ms = None;
            submitter.submit(&job, None).await.unwrap();
        }
        let mut got: HashMap<String, Vec<JobResult>> = HashMap::new();
        let mut w1_assignments_at_kill = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        while got.len() < ids.len() && tokio::time::Instant::now() < deadline {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) if r.is_final() => got.entry(r.job_id.clone()).or_default().push(r),
                    Some(_) => {}
                    None => panic!("the results stream ended"),
                },
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            if killed_at.is_none() && got.len() >= KILL_AFTER {
                // SIGKILL: no drain, no commit; w2's unanswered and uncommitted jobs must be answered by others.
                w1_assignments_at_kill = w1.assignments().len();
                w2.child.kill().unwrap();
                let _ = w2.child.wait();
                killed_at = Some(Instant::now());
                answered_by_w2_before_kill = got
                    .iter()
                    .filter(|(_, answers)| answers.iter().any(|r| r.worker == "w2"))
                    .map(|(id, _)| id.clone())
                    .collect();
                let _ = writeln!(
                    std::io::stderr(),
                    "w2 killed after {:?} with {} answers in, {} of them by w2",
                    started.elapsed(),
                    got.len(),
                    answered_by_w2_before_kill.len()
                );
            }
            if let (Some(at), None) = (killed_at, &w3) {
                // tansu expires w2 in one of w1's heartbeats and makes w1 rebalance (to the same partitions).
                if w1.assignments().len() > w1_assignments_at_kill {
                    let _ =
                        writeln!(std::io::stderr(), "tansu expired w2 {:?} after the kill; starting w3", at.elapsed());
                    w3 = Some(Worker::spawn(&bootstrap, &store_url, work.path(), "w3"));
                } else if at.elapsed() > session * 3 {
                    fail("tansu did not expire the killed member (no rebalance of w1 after the kill)", &logs);
                }
            }
        }
        got
    });
    let _ = writeln!(
        std::io::stderr(),
        "{} of {JOBS} jobs answered after {:?} (w3 owns {} partitions)",
        results.len(),
        started.elapsed(),
        w3.as_ref().map_or(0, Worker::owns)
    );

    assert!(killed_at.is_some(), "w2 was killed midway");
    let missing: Vec<&String> = ids.iter().filter(|id| !results.contains_key(*id)).collect();
    if !missing.is_empty() {
        fail(&format!("{} jobs never answered, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]), &logs);
    }
    for (id, answers) in &results {
        // Redelivery after the kill may answer twice; every answer is the same price.
        let prices: BTreeSet<Vec<String>> = answers
            .iter()
            .map(|r| match &r.outcome {
                Outcome::Done(p) => p.quotes.quotes.iter().map(|q| q.total.to_string()).collect(),
                other => panic!("{id}: {other:?}"),
            })
            .collect();
        assert_eq!(prices.len(), 1, "{id} got different answers: {prices:?}");
    }
    // The kill took work away: w2 had answered jobs of some model (a partition it owned), and jobs of that same
    // model were answered by another worker (its unanswered jobs, taken over).
    assert!(
        !answered_by_w2_before_kill.is_empty(),
        "w2 answered nothing before it was killed: the kill proved nothing"
    );
    let w2_models: BTreeSet<usize> = answered_by_w2_before_kill.iter().map(|id| model_of[id.as_str()]).collect();
    let taken_over = results
        .iter()
        .filter(|(id, answers)| w2_models.contains(&model_of[id.as_str()]) && answers.iter().all(|r| r.worker != "w2"))
        .count();
    let _ = writeln!(std::io::stderr(), "{taken_over} jobs of w2's partitions answered by another worker");
    assert!(taken_over > 0, "no job of w2's partitions was answered by another worker");

    // Nothing in flight: the group's committed offsets reach the end of every jobs partition.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut tpl = TopicPartitionList::new();
        for p in 0..cfg.partitions {
            tpl.add_partition(&cfg.jobs_topic, p);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        let lag: i64 = committed
            .elements()
            .iter()
            .map(|e| {
                let (_, high) =
                    consumer.fetch_watermarks(&cfg.jobs_topic, e.partition(), Duration::from_secs(10)).unwrap();
                high - e.offset().to_raw().unwrap_or(0).max(0)
            })
            .sum();
        if lag == 0 {
            break;
        }
        if Instant::now() > deadline {
            fail(&format!("{lag} jobs still uncommitted"), &logs);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = writeln!(std::io::stderr(), "nothing in flight after {:?}", started.elapsed());
}
