//! The system test with real processes: a Kafka-compatible broker (tansu, in-memory storage) on a loopback
//! port, two `assay worker` processes, 500 jobs over real models, and one worker killed with SIGKILL midway and
//! replaced, as a deployment would. Every job ends with one answer (a redelivered job may be answered twice, at
//! the same price), and the group has nothing left in flight.
//!
//! Why a replacement: with tansu 0.6.0 the surviving member alone did not get the killed member's partitions
//! back (tansu expired the member after the session timeout and rebalanced, but the new assignment still gave
//! the survivor only its own share). The takeover by a survivor alone is tested on librdkafka's mock cluster
//! (`worker/tests/kafka_faults.rs`).
//!
//! Run it with `scripts/install-tansu.sh && cargo test --test system_tansu -- --ignored`. It is ignored by
//! default: on tansu 0.6.0 it passed 3 runs of 4 here; in the failing run some jobs were never answered within
//! 600 s, the pattern of partitions assigned to a member that no longer exists (see the README).

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use worker::{Job, JobOptions, JobResult, KafkaConfig, ModelRef, Submitter};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[path = "support/tansu.rs"]
mod tansu;

/// Kills the child when dropped, so a failing test leaves no worker behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_worker(bootstrap: &str, store: &str, name: &str) -> Guard {
    Guard(
        Command::new(env!("CARGO_BIN_EXE_assay"))
            .args(["worker", "--kafka", bootstrap, "--store", store, "--name", name, "--concurrency", "2"])
            .args(["--rules", &root().join("rules").display().to_string()])
            .env("ASSAY_SESSION_TIMEOUT_MS", "6000")
            .env("ASSAY_TOPIC_PARTITIONS", "6")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
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

#[test]
#[ignore = "flaky on tansu 0.6.0: a rebalance can leave partitions with a member that is gone; run with --ignored"]
fn five_hundred_jobs_two_worker_processes_one_killed() {
    let Some(tansu) = tansu::installed() else {
        let _ = writeln!(std::io::stderr(), "skipped: tansu is not installed (scripts/install-tansu.sh installs it)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let broker = tansu::start(&tansu, work.path());
    let bootstrap = broker.bootstrap.clone();

    let mut cfg = KafkaConfig::new(&bootstrap);
    cfg.partitions = 6;
    let store_url = work.path().join("data").display().to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let models = runtime.block_on(async {
        worker::ensure_topics(&cfg).await.unwrap();
        let store = worker::ModelStore::from_url(&store_url).unwrap();
        let mut stored = Vec::new();
        for bytes in real_models() {
            stored.push(store.put(bytes.into()).await.unwrap());
        }
        stored
    });

    // One after the other: the group settles with w1, then rebalances to share with w2.
    let _w1 = spawn_worker(&bootstrap, &store_url, "w1");
    std::thread::sleep(Duration::from_secs(5));
    let mut w2 = spawn_worker(&bootstrap, &store_url, "w2");
    std::thread::sleep(Duration::from_secs(8));

    let mut w3 = None;
    let ids: Vec<String> = (0..500).map(|i| format!("sys-{i}")).collect();
    let results: HashMap<String, Vec<JobResult>> = runtime.block_on(async {
        let submitter = Arc::new(worker::KafkaSubmitter::connect(&cfg, true).unwrap());
        let mut rx = submitter.results();
        for (i, id) in ids.iter().enumerate() {
            let m = &models[i % models.len()];
            let job = Job {
                v: 1,
                job_id: id.clone(),
                model: ModelRef { key: m.key.clone(), sha256: m.sha256.clone(), format: None, units: None },
                options: JobOptions {
                    alloys: vec!["18k-yellow".into(), "sterling-925".into()],
                    ..JobOptions::default()
                },
                submitted_at_ms: worker::now_ms(),
                deadline_ms: None,
            };
            submitter.submit(&job, None).await.unwrap();
        }
        let mut got: HashMap<String, Vec<JobResult>> = HashMap::new();
        let mut killed = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while got.len() < ids.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(r)) => got.entry(r.job_id.clone()).or_default().push(r),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => panic!("lagged {n}"),
                _ => break,
            }
            if !killed && got.len() >= 150 {
                // SIGKILL: no drain, no commit. As a deployment would, a replacement worker starts; its jobs
                // are redelivered from the last commit (tansu 0.6.0 does not give a vanished member's partitions
                // to the survivor alone: see the note in the README).
                w2.0.kill().unwrap();
                let _ = w2.0.wait();
                killed = true;
                w3 = Some(spawn_worker(&bootstrap, &store_url, "w3"));
            }
        }
        assert!(killed, "w2 was killed midway");
        got
    });

    let missing: Vec<&String> = ids.iter().filter(|id| !results.contains_key(*id)).collect();
    assert!(missing.is_empty(), "{} jobs never answered, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    for (id, answers) in &results {
        assert!(answers.iter().all(|r| r.error.is_none()), "{id}: {:?}", answers[0].error);
        // Redelivery after the kill may answer twice; every answer is the same price.
        let prices: std::collections::BTreeSet<Vec<String>> =
            answers.iter().map(|r| r.quotes.iter().map(|q| q.total.to_string()).collect()).collect();
        assert_eq!(prices.len(), 1, "{id} got different answers: {prices:?}");
    }

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
        assert!(Instant::now() < deadline, "{lag} jobs still uncommitted");
        std::thread::sleep(Duration::from_millis(500));
    }
}
