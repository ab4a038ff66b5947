//! `assay serve` killed with SIGKILL and started again on the same `--data`: nothing accepted is lost. Jobs
//! answered before the kill answer the same after it, jobs queued or running are worked again, an idempotent
//! retry of a submission from before the kill names the same job, and a job killed in the middle of its work is
//! answered after the restart.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

#[path = "support/http.rs"]
mod http;

use std::path::Path;

use std::time::{Duration, Instant};

use http::{request, wait_final, Proc};

fn serve(data: &Path, log: &str) -> (Proc, String) {
    http::spawn_serve(data, &["--concurrency".as_ref(), "1".as_ref()], log)
}

fn kill9(child: &mut Proc) {
    child.kill().unwrap(); // SIGKILL: no drain, no close
    child.wait().unwrap();
}

/// A distinct model per `i`: the same small band under another header, so every job parses its own model.
fn model(i: usize, band: &[u8]) -> Vec<u8> {
    let mut bytes = band.to_vec();
    let tag = format!("restart test model {i:05}");
    bytes[..tag.len()].copy_from_slice(tag.as_bytes());
    bytes
}

fn submit(addr: &str, bytes: &[u8], key: &str) -> http::Response {
    request(
        addr,
        "POST",
        "/v1/quotes?alloy=18k-yellow&alloy=pt950",
        &[("Content-Type", "model/stl"), ("Idempotency-Key", key)],
        bytes,
    )
}

fn poll(addr: &str, id: &str) -> serde_json::Value {
    let r = request(addr, "GET", &format!("/v1/quotes/{id}"), &[], b"");
    assert_eq!(r.status, 200, "{id}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[test]
fn two_hundred_jobs_survive_a_sigkill_halfway() {
    let data = tempfile::tempdir().unwrap();
    let band = models::to_binary_stl(&models::synth::ring_band(8.0, 10.0, 2.0, 96, 24));
    let (mut child, addr) = serve(data.path(), "serve-1.log");

    // The first hundred: submitted and answered.
    let mut ids = Vec::new();
    for i in 0..100 {
        let r = submit(&addr, &model(i, &band), &format!("order-{i}"));
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        ids.push(r.json()["job_id"].as_str().unwrap().to_owned());
    }
    let before: Vec<serde_json::Value> =
        ids.iter().map(|id| wait_final(&addr, id, &[], Duration::from_secs(120))).collect();
    assert!(before.iter().all(|j| j["status"] == "done"), "{:?}", before.iter().find(|j| j["status"] != "done"));
    // The second hundred: accepted, then the process is killed with most of them queued or running.
    for i in 100..200 {
        let r = submit(&addr, &model(i, &band), &format!("order-{i}"));
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        ids.push(r.json()["job_id"].as_str().unwrap().to_owned());
    }
    // Killed as soon as one job is seen unfinished, looking from the last submitted: polling all hundred first
    // gave a loaded machine's workers the time to finish them all.
    let unfinished = ids[100..].iter().rev().position(|id| poll(&addr, id)["status"] != "done");
    kill9(&mut child);
    let _ = writeln_stderr(&format!("killed with job {unfinished:?} from the end of the second hundred unfinished"));
    assert!(unfinished.is_some(), "every job finished before the kill: the test proved nothing");

    let (child2, addr) = serve(data.path(), "serve-2.log");
    let _keep = child2;
    // Every job from before the restart is known at once (queued, running or done), never 404.
    for id in &ids {
        let job = poll(&addr, id);
        assert!(["queued", "running", "done"].contains(&job["status"].as_str().unwrap()), "{job}");
    }
    let after: Vec<serde_json::Value> =
        ids.iter().map(|id| wait_final(&addr, id, &[], Duration::from_secs(180))).collect();
    assert!(after.iter().all(|j| j["status"] == "done"), "{:?}", after.iter().find(|j| j["status"] != "done"));
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "a job answered before the kill answers the same after it");
    }
    // Pushed over the WebSocket after the restart: the same answer, then a normal close.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let pushed = runtime.block_on(http::events(&addr, &ids[7], None));
    assert_eq!(pushed.last(), Some(&after[7]));
    // An idempotent retry of a submission from before the kill names the same job.
    for i in [3, 150] {
        let r = submit(&addr, &model(i, &band), &format!("order-{i}"));
        assert_eq!(r.status, 202);
        assert_eq!(r.json()["job_id"], ids[i].as_str(), "retry of order-{i}");
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(r.json()["status"], "done");
    }
    let log = std::fs::read_to_string(data.path().join("serve-2.log")).unwrap();
    assert!(log.contains("job database open"), "{log}");
}

#[test]
fn a_job_killed_in_the_middle_of_its_work_is_answered_after_the_restart() {
    let data = tempfile::tempdir().unwrap();
    // 400k triangles: seconds of parsing in a debug build, long enough to be killed in the middle of.
    let big = models::to_binary_stl(&models::synth::ring_band(8.0, 10.0, 2.0, 500, 400));
    let (mut child, addr) = serve(data.path(), "serve-1.log");
    let r = submit(&addr, &big, "big-order");
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["job_id"].as_str().unwrap().to_owned();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let status = poll(&addr, &id)["status"].as_str().unwrap().to_owned();
        if status == "running" {
            break;
        }
        assert_eq!(status, "queued", "the job finished before it could be killed in the middle");
        assert!(Instant::now() < until, "the job never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    kill9(&mut child);

    let (_child2, addr) = serve(data.path(), "serve-2.log");
    let done = wait_final(&addr, &id, &[], Duration::from_secs(180));
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["geometry"]["triangles"], 400_000);
    let log = std::fs::read_to_string(data.path().join("serve-2.log")).unwrap();
    assert!(log.contains("queued again"), "the running job was queued again at start: {log}");
}

fn writeln_stderr(line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stderr(), "{line}")
}
