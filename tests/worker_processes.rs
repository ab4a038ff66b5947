//! `assay worker` and `assay submit` as separate processes against a Kafka-protocol broker: librdkafka's mock
//! cluster, which this test process hosts on a loopback port for the others to connect to.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::{Job, ModelRef, Outcome, Submitter};
use queue_kafka::KafkaConfig;
use rdkafka::mocking::MockCluster;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A worker process and the file its log goes to (a pipe read only at the end would fill up, 64 KiB on Linux,
/// and block the worker's next log line).
struct Worker {
    child: Child,
    log: PathBuf,
}

fn spawn_worker(bootstrap: &str, store: &str, name: &str, logs: &std::path::Path) -> Worker {
    let log = logs.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_assay"))
        .args([
            "worker",
            "--kafka",
            bootstrap,
            "--store",
            store,
            "--name",
            name,
            "--concurrency",
            "2",
            "--grace-secs",
            "20",
        ])
        .args(["--rules", &root().join("rules").display().to_string()])
        .env("ASSAY_SESSION_TIMEOUT_MS", "6000")
        .env("ASSAY_TOPIC_PARTITIONS", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
        .spawn()
        .expect("start assay worker");
    Worker { child, log }
}

/// SIGTERM, then the exit status; `None` when the process had to be killed after 60 s.
fn terminate(child: &mut Child) -> Option<std::process::ExitStatus> {
    #[cfg(unix)]
    {
        // SIGTERM: the worker drains and leaves the group.
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn workers_and_submit_as_processes() {
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let mut cfg = KafkaConfig::new(&bootstrap);
    cfg.partitions = 4;
    queue_kafka::create_mock_topics(&cluster, &cfg, 4).unwrap();
    let data = tempfile::tempdir().unwrap();
    let store_url = data.path().display().to_string();

    let logs = tempfile::tempdir().unwrap();
    let w1 = spawn_worker(&bootstrap, &store_url, "w1", logs.path());
    let w2 = spawn_worker(&bootstrap, &store_url, "w2", logs.path());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let results = runtime.block_on(async {
        let store = model_store::ModelStore::from_url(&store_url).unwrap();
        let mut models = Vec::new();
        for i in 0..8 {
            let band = models::synth::ring_band(8.0 + f64::from(i) * 0.01, 10.0, 2.0, 24, 8);
            models.push(store.put(models::to_binary_stl(&band).into()).await.unwrap());
        }
        let submitter = Arc::new(queue_kafka::KafkaSubmitter::connect(&cfg, true).unwrap());
        let mut rx = submitter.subscribe();
        let ids: Vec<String> = (0..40).map(|i| format!("proc-{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let m = &models[i % 8];
            let model = ModelRef { key: m.key.clone(), sha256: m.sha256.clone(), format: None };
            let job = Job::new(id.clone(), model, Default::default(), Duration::from_secs(600));
            submitter.submit(&job, None).await.unwrap();
        }
        let mut got = std::collections::HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while got.len() < ids.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => {
                    if r.is_final() {
                        got.entry(r.job_id.clone()).or_insert(r);
                    }
                }
                _ => break,
            }
        }
        got
    });
    assert_eq!(results.len(), 40, "every job answered by the worker processes");
    assert!(results.values().all(|r| matches!(&r.outcome, Outcome::Done(p) if p.quotes.quotes.len() == 13)));
    let workers: std::collections::BTreeSet<&str> = results.values().map(|r| r.worker.as_str()).collect();
    assert!(workers.iter().all(|w| *w == "w1" || *w == "w2"), "{workers:?}");

    // `assay submit` pushes a model by hand and prints its result.
    let out = Command::new(env!("CARGO_BIN_EXE_assay"))
        .args(["submit", &root().join("samples/pixelverse_ring.stl").display().to_string(), "--kafka", &bootstrap])
        .args(["--store", &store_url, "--alloy", "pt950", "--timeout-secs", "90"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "done");
    assert_eq!(result["quotes"][0]["alloy"], "pt950");
    assert_eq!(result["geometry"]["triangles"], 11422);

    // SIGTERM: both drain and exit cleanly.
    for mut w in [w1, w2] {
        let status = terminate(&mut w.child);
        let log = std::fs::read_to_string(&w.log).unwrap();
        let status = status.unwrap_or_else(|| panic!("the worker did not stop within 60 s of SIGTERM: {log}"));
        assert!(status.success(), "exit {status:?}: {log}");
        assert!(log.contains("worker stopped"), "{log}");
    }
}
