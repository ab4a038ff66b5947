//! Signed webhooks from the real `assay serve`, received by a back end that verifies every request with the
//! official Standard Webhooks library for Python: every job of a tenant gets exactly one verified `done` (or
//! `failed`) delivery once deduplicated on `webhook-id`; a receiver that answers 503 twice gets the third
//! attempt; deliveries pending when `assay serve` is killed with SIGKILL are made after it starts again; a
//! receiver that never answers is given up after the last retry, and the job's `webhook` says `failed`.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

#[path = "support/http.rs"]
mod http;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use std::time::{Duration, Instant};

use http::{request, wait_final, Proc};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Tenants: one per receiver behaviour, each with its own key. Retries every second, twelve attempts in all.
fn tenants_file(r: &receiver::Receiver) -> String {
    let mut text = String::from(
        "format = 1\nallow_private_network = true\n\n[webhooks]\nretry_secs = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\ntimeout_secs = 1\n",
    );
    for (id, path) in [("shop", "/ok"), ("flaky", "/flaky"), ("silent", "/never"), ("gated", "/gate")] {
        text.push_str(&format!(
            "\n[[tenant]]\nid = \"{id}\"\nname = \"{id}\"\nkeys = [\"{}\"]\nsegments = [\"b2c\"]\n\n[tenant.webhook]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
            tenants::key_digest(&key(id)),
            r.url(path)
        ));
    }
    text
}

fn key(tenant: &str) -> String {
    format!("{tenant}-key-0123456789abcdef")
}

fn serve(data: &Path, tenants: &Path, log: &str) -> (Proc, String) {
    http::spawn_serve(data, &["--tenants".as_ref(), tenants.as_os_str()], log)
}

fn submit(addr: &str, tenant: &str, body: &[u8]) -> String {
    let auth = format!("Bearer {}", key(tenant));
    let r = request(
        addr,
        "POST",
        "/v1/quotes?alloy=18k-yellow",
        &[("Content-Type", "model/stl"), ("Authorization", &auth)],
        body,
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()["job_id"].as_str().unwrap().to_owned()
}

fn poll(addr: &str, tenant: &str, id: &str) -> serde_json::Value {
    let auth = format!("Bearer {}", key(tenant));
    let r = request(addr, "GET", &format!("/v1/quotes/{id}"), &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Polls until the job's webhook status satisfies `ok`.
fn wait_webhook(
    addr: &str,
    tenant: &str,
    id: &str,
    within: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + within;
    loop {
        let job = poll(addr, tenant, id);
        if ok(&job["webhook"]) {
            return job;
        }
        assert!(Instant::now() < until, "job {id}'s webhook not as expected within {within:?}: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_job_gets_one_verified_delivery_through_retries_a_sigkill_and_a_silent_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate-open");
    let rx = receiver::start(SECRET, dir.path(), &gate);
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(&tenants, tenants_file(&rx)).unwrap();
    let data = dir.path().join("data");
    let (mut child, addr) = serve(&data, &tenants, "serve-1.log");

    let band = models::to_binary_stl(&models::synth::ring_band(8.0, 10.0, 2.0, 96, 24));
    let distinct = |i: usize| {
        let mut b = band.clone();
        let tag = format!("webhook test model {i:05}");
        b[..tag.len()].copy_from_slice(tag.as_bytes());
        b
    };
    let mut jobs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..12 {
        jobs.entry("shop".into()).or_default().push(submit(&addr, "shop", &distinct(i)));
    }
    // A failed job is told of too (event failed).
    let broken = submit(&addr, "shop", b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 1 2\n");
    for (t, n) in [("flaky", 2), ("silent", 1), ("gated", 3)] {
        for i in 0..n {
            jobs.entry(t.into()).or_default().push(submit(&addr, t, &distinct(100 + i + 10 * t.len())));
        }
    }
    for (t, ids) in &jobs {
        for id in ids {
            wait_final(&addr, id, &[("Authorization", &format!("Bearer {}", key(t)))], Duration::from_secs(120));
        }
    }
    // The gated receiver answers 503: each gated delivery has been tried and is pending when the process dies.
    for id in &jobs["gated"] {
        let job = wait_webhook(&addr, "gated", id, Duration::from_secs(30), |w| w["attempts"].as_u64() >= Some(1));
        assert_eq!(job["webhook"]["status"], "pending", "{job}");
        assert_eq!(job["webhook"]["last_status_code"], 503, "{job}");
    }
    child.kill().unwrap(); // SIGKILL: no drain
    child.wait().unwrap();
    std::fs::write(&gate, b"").unwrap();
    let (_child, addr) = serve(&data, &tenants, "serve-2.log");

    // After the restart: the gated deliveries are made, the flaky ones on their third attempt, the shop's once.
    for (t, ids) in &jobs {
        for id in ids {
            let job = wait_webhook(&addr, t, id, Duration::from_secs(60), |w| w["status"] != "pending" && !w.is_null());
            let w = &job["webhook"];
            match t.as_str() {
                "silent" => {
                    assert_eq!(w["status"], "failed", "{job}");
                    assert_eq!(w["attempts"], 12, "given up after the last of the twelve attempts: {job}");
                    assert!(w["last_error"].as_str().unwrap().contains("no answer within 1 s"), "{job}");
                }
                "flaky" => {
                    assert_eq!((w["status"].as_str(), w["attempts"].as_u64()), (Some("delivered"), Some(3)), "{job}");
                    assert_eq!(w["last_status_code"], 200);
                }
                _ => assert_eq!(
                    (w["status"].as_str(), w["last_status_code"].as_u64()),
                    (Some("delivered"), Some(200)),
                    "{job}"
                ),
            }
        }
    }
    let job = wait_webhook(&addr, "shop", &broken, Duration::from_secs(30), |w| w["status"] == "delivered");
    assert_eq!(job["status"], "failed");

    // What the receiver saw: every request verified by the library; one delivered message per job and event.
    let seen = rx.seen();
    assert!(seen.iter().all(|s| s.verified), "every request verifies with standardwebhooks");
    let delivered: Vec<&receiver::Seen> = seen.iter().filter(|s| s.answered == Some(200)).collect();
    let ids: BTreeSet<&str> = delivered.iter().map(|s| s.id.as_str()).collect();
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for (t, list) in &jobs {
        if t != "silent" {
            expected.extend(list.iter().map(|id| format!("msg_{id}_done")));
        }
    }
    expected.insert(format!("msg_{broken}_failed"));
    assert_eq!(ids, expected.iter().map(String::as_str).collect(), "one delivered message per job");
    for s in &delivered {
        let job = s.job_id.as_deref().unwrap();
        assert_eq!(s.id, format!("msg_{job}_{}", s.status.as_deref().unwrap()), "the body is the job's: {s:?}");
    }
    // The flaky receiver saw each of its messages three times.
    for id in &jobs["flaky"] {
        assert_eq!(seen.iter().filter(|s| s.id == format!("msg_{id}_done")).count(), 3);
    }
    // Twelve recorded attempts; the receiver may have seen a thirteenth, cut short by the SIGKILL before it was
    // recorded and made again after the restart (at least once).
    let silent = &jobs["silent"][0];
    let n = seen.iter().filter(|s| s.id == format!("msg_{silent}_done")).count();
    assert!((12..=13).contains(&n), "the silent receiver saw {n} attempts");
    // No delivery was made for a job of another tenant at another tenant's URL.
    for s in &seen {
        let owner =
            jobs.iter().find(|(_, ids)| s.job_id.as_ref().is_some_and(|j| ids.contains(j))).map(|(t, _)| t.as_str());
        let expected_path = match owner {
            Some("shop") | None => "/ok",
            Some("flaky") => "/flaky",
            Some("silent") => "/never",
            Some(_) => "/gate",
        };
        assert_eq!(s.path, expected_path, "{s:?}");
    }
}
