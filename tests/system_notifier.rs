//! The scaled webhooks: `assay gateway` with a tenants file, two `assay worker` and `assay notifier` over a
//! Kafka-protocol broker; the notifier is killed with SIGKILL halfway and another takes its place, and every
//! job still gets its verified `done` delivery (receivers deduplicate on `webhook-id`; a result whose delivery
//! had not ended when the notifier died is delivered by its successor, which reads it again because its offset
//! was never committed).
//!
//! Runs on librdkafka's mock cluster, hosted by this test process, and on tansu when it is installed.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

#[path = "support/http.rs"]
mod http;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/tansu.rs"]
mod tansu;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use http::{request, wait_final, Proc};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KEY: &str = "shop-key-0123456789abcdef";
const SESSION_MS: u64 = 6000;

fn notifier(bootstrap: &str, tenants: &Path, log: &Path) -> Proc {
    http::spawn_notifier(bootstrap, tenants, log, SESSION_MS, 4, &[])
}

fn scaled_webhooks(bootstrap: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let store = store.display().to_string();
    let rx = receiver::start(SECRET, dir.path(), &dir.path().join("gate"));
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(
        &tenants,
        format!(
            "format = 1\nallow_private_network = true\n[webhooks]\nretry_secs = [0, 1, 1, 1, 1, 1, 1, 1]\ntimeout_secs = 2\n\
             [[tenant]]\nid = \"shop\"\nname = \"Shop\"\nkeys = [\"{}\"]\nsegments = [\"b2c\"]\n\
             [tenant.webhook]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
            tenants::key_digest(KEY),
            rx.url("/ok")
        ),
    )
    .unwrap();
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let mut gw = http::spawn_kafka_role(
        &["gateway", "--listen", "127.0.0.1:0", "--tenants", tenants.to_str().unwrap()],
        bootstrap,
        &store,
        &log("gateway"),
        SESSION_MS,
        4,
    );
    let (addr, out) = http::listening_address(&mut gw);
    std::thread::spawn(move || std::io::copy(&mut { out }, &mut std::io::sink()));
    let _workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|w| {
            http::spawn_kafka_role(
                &["worker", "--name", w, "--concurrency", "2"],
                bootstrap,
                &store,
                &log(w),
                SESSION_MS,
                4,
            )
        })
        .collect();
    let mut n1 = notifier(bootstrap, &tenants, &log("notifier-1"));

    let band = models::to_binary_stl(&models::synth::ring_band(8.0, 10.0, 2.0, 64, 16));
    let auth = format!("Bearer {KEY}");
    let submit = |i: usize| {
        let mut b = band.clone();
        let tag = format!("notifier test model {i:05}");
        b[..tag.len()].copy_from_slice(tag.as_bytes());
        let r = request(
            &addr,
            "POST",
            "/v1/quotes?alloy=18k-yellow",
            &[("Content-Type", "model/stl"), ("Authorization", &auth)],
            &b,
        );
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        r.json()["job_id"].as_str().unwrap().to_owned()
    };
    let delivered = |rx: &receiver::Receiver| -> BTreeSet<String> {
        rx.seen().into_iter().filter(|s| s.verified && s.answered == Some(200)).map(|s| s.id).collect()
    };

    let mut ids: Vec<String> = (0..20).map(submit).collect();
    // Halfway: some delivered, then the notifier dies without a word.
    let until = Instant::now() + Duration::from_secs(120);
    while delivered(&rx).len() < 5 {
        assert!(Instant::now() < until, "no webhook delivered within 120 s; see {}", log("notifier-1").display());
        std::thread::sleep(Duration::from_millis(50));
    }
    n1.kill().unwrap();
    n1.wait().unwrap();
    ids.extend((20..40).map(submit));
    // The replacement joins once the group has let the dead member go (tansu hands a dead member's partitions to
    // no one when a new member joins before the old one's session has expired).
    std::thread::sleep(Duration::from_millis(SESSION_MS + 2000));
    let _n2 = notifier(bootstrap, &tenants, &log("notifier-2"));
    for id in &ids {
        let job = wait_final(&addr, id, &[("Authorization", &auth)], Duration::from_secs(120));
        assert_eq!(job["status"], "done", "{job}");
    }
    let expected: BTreeSet<String> = ids.iter().map(|id| format!("msg_{id}_done")).collect();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let got = delivered(&rx);
        if expected.is_subset(&got) {
            assert_eq!(got, expected, "deliveries only for these jobs");
            break;
        }
        let missing: Vec<&String> = expected.difference(&got).collect();
        assert!(Instant::now() < until, "{} of {} jobs never delivered: {missing:?}", missing.len(), ids.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    // The gateway shows each delivery as the notifiers published it.
    for id in &ids {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let r = request(&addr, "GET", &format!("/v1/quotes/{id}"), &[("Authorization", &auth)], b"");
            let w = r.json()["webhook"].clone();
            if w["status"] == "delivered" {
                assert_eq!(w["last_status_code"], 200, "{w}");
                assert!(w["attempts"].as_u64() >= Some(1), "{w}");
                break;
            }
            assert!(Instant::now() < until, "job {id}'s webhook not shown as delivered: {w}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let seen = rx.seen();
    assert!(seen.iter().all(|s| s.verified), "every request verifies with standardwebhooks");
    let sent = seen.len();
    eprintln!("{} jobs, {sent} requests received ({} repeats after the SIGKILL)", ids.len(), sent - ids.len());
}

#[test]
fn a_notifier_killed_mid_run_loses_no_delivery_on_the_mock_cluster() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let cfg = queue_kafka::KafkaConfig::new(&cluster.bootstrap_servers());
    queue_kafka::create_mock_topics(&cluster, &cfg, 4).unwrap();
    scaled_webhooks(&cluster.bootstrap_servers());
}

#[test]
fn a_notifier_killed_mid_run_loses_no_delivery_on_tansu() {
    let Some(tansu) = tansu::for_test() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = tansu::start(&tansu, dir.path());
    scaled_webhooks(&broker.bootstrap);
}
