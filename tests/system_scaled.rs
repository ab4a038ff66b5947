//! The scaled deployment as processes: `assay gateway` + two `assay worker` over a Kafka-protocol broker and a
//! shared model store. Every sample submitted over HTTP, each result pushed over the WebSocket and polled (the
//! same, with timings, from one of the workers); a second gateway started afterwards answers for jobs the first
//! accepted (it rebuilds from the compacted results topic); SIGTERM stops everything cleanly.
//!
//! Runs on librdkafka's mock cluster, hosted by this test process, and on the tansu broker process when it is
//! installed (`scripts/install-tansu.sh`; `.ci/run` installs it, elsewhere the tansu case is skipped).

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

#[path = "support/http.rs"]
mod http;
#[path = "support/tansu.rs"]
mod tansu;

use std::path::Path;
use std::time::Duration;

use http::{events, request, samples, wait_final, Proc};

/// Starts an `assay` process whose JSON log lines go to `log`.
fn spawn(role: &[&str], bootstrap: &str, store: &str, log: &Path) -> Proc {
    http::spawn_kafka_role(role, bootstrap, store, log, 6000, 4)
}

/// The JSON log lines of a process.
fn log_lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect()
}

fn gateway(bootstrap: &str, store: &str, log: &Path) -> (Proc, String) {
    let mut child = spawn(&["gateway", "--listen", "127.0.0.1:0"], bootstrap, store, log);
    let (addr, out) = http::listening_address(&mut child);
    // Keep reading stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut { out }, &mut std::io::sink()));
    (child, addr)
}

fn scaled_pipeline(bootstrap: &str) {
    let data = tempfile::tempdir().unwrap();
    let store = data.path().display().to_string();
    let logs = tempfile::tempdir().unwrap();
    let log = |name: &str| logs.path().join(format!("{name}.log"));
    let (mut gw1, addr) = gateway(bootstrap, &store, &log("gw1"));
    let mut workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|name| {
            let role =
                ["worker", "--name", name, "--concurrency", "2", "--grace-secs", "20", "--listen", "127.0.0.1:0"];
            spawn(&role, bootstrap, &store, &log(name))
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let mut ids = Vec::new();
    for file in samples() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let r = request(
            &addr,
            "POST",
            "/v1/quotes?alloy=sterling-925",
            &[("Content-Type", http::content_type(&file))],
            &std::fs::read(&file).unwrap(),
        );
        assert_eq!(r.status, 202, "{name}: {}", String::from_utf8_lossy(&r.body));
        let id = r.json()["job_id"].as_str().unwrap().to_owned();
        let pushed = runtime.block_on(events(&addr, &id, None));
        let polled = wait_final(&addr, &id, &[], Duration::from_secs(120));
        assert_eq!(pushed.last(), Some(&polled), "{name}: pushed and polled differ");
        assert_eq!(polled["status"], "done", "{name}: {polled}");
        assert!(["w1", "w2"].contains(&polled["worker"].as_str().unwrap()), "{polled}");
        assert!(polled["timings_ms"]["total"].as_f64().unwrap() > 0.0);
        ids.push((id, polled));
    }

    // Another gateway instance, started now, is ready once it has read the results topic, and then answers for
    // the first one's jobs.
    let (mut gw2, addr2) = gateway(bootstrap, &store, &log("gw2"));
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while request(&addr2, "GET", "/readyz", &[], b"").status != 200 {
        assert!(std::time::Instant::now() < until, "the second gateway never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    for (id, polled) in &ids {
        let r = request(&addr2, "GET", &format!("/v1/quotes/{id}"), &[], b"");
        assert_eq!(r.status, 200, "a ready gateway knows every job: {}", String::from_utf8_lossy(&r.body));
        let again = r.json();
        assert_eq!(again["quotes"], polled["quotes"], "{id}");
        assert_eq!(again["worker"], polled["worker"]);
    }

    // Each role's /metrics after real traffic: the worker's own listener, and the gateway.
    for w in ["w1", "w2"] {
        let listening = log_lines(&log(w))
            .into_iter()
            .find(|l| l["message"] == "serving /metrics, /healthz, /readyz")
            .unwrap_or_else(|| panic!("{w} did not say where it serves its metrics"));
        let waddr = listening["addr"].as_str().unwrap().to_owned();
        assert_eq!(request(&waddr, "GET", "/readyz", &[], b"").status, 200, "{w} ready");
        let text = String::from_utf8(request(&waddr, "GET", "/metrics", &[], b"").body).unwrap();
        assert!(text.contains("assay_rules_info{version="), "{w}: {text}");
        http::promtool_check(&text);
    }
    let text = String::from_utf8(request(&addr, "GET", "/metrics", &[], b"").body).unwrap();
    assert!(text.contains("assay_gateway_jobs_accepted_total"), "{text}");
    http::promtool_check(&text);

    for child in workers.iter_mut().chain([&mut gw1, &mut gw2]) {
        let status = http::terminate(child, Duration::from_secs(60));
        assert!(status.success(), "exit {status:?}");
    }

    // Every job's trace id is in the gateway's JSON lines and the answering worker's, and in its result.
    let gateway_lines = log_lines(&log("gw1"));
    assert!(gateway_lines.iter().all(|l| l["service.name"] == "assay-gateway" && l["@timestamp"].is_string()));
    for (id, polled) in &ids {
        let accepted = gateway_lines
            .iter()
            .find(|l| l["message"] == "job accepted" && l["job.id"] == id.as_str())
            .unwrap_or_else(|| panic!("no 'job accepted' line for {id}"));
        let trace = accepted["trace.id"].as_str().unwrap();
        assert_eq!(trace.len(), 32);
        assert_eq!(polled["trace_id"], trace, "the result carries the trace id");
        let w = polled["worker"].as_str().unwrap();
        let worker_lines = log_lines(&log(w));
        let done = worker_lines
            .iter()
            .find(|l| l["message"] == "job done" && l["job.id"] == id.as_str())
            .unwrap_or_else(|| panic!("no 'job done' line for {id} in {w}'s log"));
        assert_eq!(done["trace.id"], trace);
        assert_eq!(done["service.name"], "assay-worker");
        assert_eq!(done["log.level"], "info");
        assert!(done["total_ms"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn gateway_and_two_workers_on_the_mock_cluster() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let cfg = queue_kafka::KafkaConfig::new(&cluster.bootstrap_servers());
    // The mock cluster has no CreateTopics: the topics the processes would create.
    queue_kafka::create_mock_topics(&cluster, &cfg, 4).unwrap();
    scaled_pipeline(&cluster.bootstrap_servers());
}

#[test]
fn gateway_and_two_workers_on_tansu() {
    let Some(tansu) = tansu::for_test() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = tansu::start(&tansu, dir.path());
    scaled_pipeline(&broker.bootstrap);
}
