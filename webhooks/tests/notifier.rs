//! The notifier against a receiver in this process: signatures that the `standardwebhooks` crate verifies, the
//! retry schedule with Retry-After honoured, 410 Gone disabling the endpoint until the tenants file changes, an
//! address refused by the network guard before any request is made, and events the tenant did not ask for
//! skipped.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use jobs::{DeliveryStatus, Outbox, Status};
use webhooks::{MemoryOutbox, Notifier, NotifierConfig};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(String, bool)>>,
    calls: AtomicUsize,
}

/// A receiver: `/ok` 200, `/busy` 503 with Retry-After 1 to the first attempt then 200, `/gone` 410.
async fn receiver(seen: Arc<Seen>) -> String {
    let verifier = Arc::new(standardwebhooks::Webhook::new(SECRET).unwrap());
    let app = axum::Router::new().route(
        "/{mode}",
        axum::routing::post(
            move |axum::extract::Path(mode): axum::extract::Path<String>, headers: HeaderMap, body: String| {
                let seen = seen.clone();
                let verified = verifier.verify(body.as_bytes(), &headers).is_ok();
                async move {
                    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    seen.requests.lock().unwrap().push((id, verified));
                    let n = seen.calls.fetch_add(1, Ordering::SeqCst);
                    match mode.as_str() {
                        "ok" => (StatusCode::OK, HeaderMap::new()),
                        "busy" if n == 0 => {
                            let mut h = HeaderMap::new();
                            h.insert("retry-after", "1".parse().unwrap());
                            (StatusCode::SERVICE_UNAVAILABLE, h)
                        }
                        "busy" => (StatusCode::OK, HeaderMap::new()),
                        _ => (StatusCode::GONE, HeaderMap::new()),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn file_text(url: &str) -> String {
    tenants_text(url, true, "[\"done\"]", "[0, 0, 0]")
}

fn tenants(url: &str, private: bool, events: &str, retry: &str) -> tenants::Tenants {
    tenants::Tenants::parse("tenants.toml", &tenants_text(url, private, events, retry)).unwrap()
}

fn tenants_text(url: &str, private: bool, events: &str, retry: &str) -> String {
    format!(
        "format = 1\nallow_private_network = {private}\n[webhooks]\nretry_secs = {retry}\ntimeout_secs = 2\n\
         [[tenant]]\nid = \"shop\"\nname = \"Shop\"\nkeys = []\nsegments = [\"b2c\"]\n\
         [tenant.webhook]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nevents = {events}\n"
    )
}

/// Runs a notifier over `outbox` until every delivery has ended (or 20 s).
async fn drain(outbox: Arc<MemoryOutbox>, t: tenants::Tenants) {
    let config = NotifierConfig { poll: Duration::from_millis(50), jitter: 0.0, ..NotifierConfig::default() };
    let notifier = Notifier::new(outbox.clone(), t.into(), config).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(notifier.run(async {
        let _ = rx.await;
    }));
    let until = Instant::now() + Duration::from_secs(20);
    while !outbox.is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tx.send(());
    run.await.unwrap();
}

fn add(outbox: &MemoryOutbox, job: &str, event: Status, ended: &Arc<AtomicUsize>) {
    let ended = ended.clone();
    outbox.add(job, event, "shop", format!("{{\"job_id\":\"{job}\"}}"), move || {
        ended.fetch_add(1, Ordering::SeqCst);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_waits_for_retry_after_and_skips_unwanted_events() {
    let seen = Arc::new(Seen::default());
    let base = receiver(seen.clone()).await;
    let outbox = Arc::new(MemoryOutbox::new(100));
    let ended = Arc::new(AtomicUsize::new(0));
    add(&outbox, "j1", Status::Running, &ended);
    add(&outbox, "j1", Status::Done, &ended);
    let started = Instant::now();
    // The schedule says retry at once; the receiver's Retry-After says one second.
    drain(outbox.clone(), tenants(&format!("{base}/busy"), true, "[\"done\", \"failed\"]", "[0, 0, 0]")).await;
    assert_eq!(ended.load(Ordering::SeqCst), 2, "both deliveries ended (running: not wanted)");
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests, vec![("msg_j1_done".to_owned(), true), ("msg_j1_done".to_owned(), true)]);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured: {:?}", started.elapsed());
    let status = outbox.status("j1").unwrap();
    assert_eq!((status.status, status.attempts, status.last_status_code), (DeliveryStatus::Delivered, 2, Some(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_endpoint_until_the_file_changes() {
    let seen = Arc::new(Seen::default());
    let base = receiver(seen.clone()).await;
    let outbox = Arc::new(MemoryOutbox::new(100));
    let ended = Arc::new(AtomicUsize::new(0));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants.toml");
    let text = |t: &tenants::Tenants| t.version.clone();
    let gone = tenants(&format!("{base}/gone"), true, "[\"done\"]", "[0, 0, 0]");
    std::fs::write(&path, file_text(&format!("{base}/gone"))).unwrap();
    let watcher = Arc::new(tenants::watch(&path, Duration::from_millis(50), Duration::from_secs(60)).unwrap());
    assert_eq!(text(&watcher.current()), text(&gone));
    let source = tenants::TenantsSource::Watched(watcher.clone());
    let config = NotifierConfig { poll: Duration::from_millis(50), jitter: 0.0, concurrency: 1 };
    let notifier = Notifier::new(outbox.clone(), source, config).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(notifier.run(async {
        let _ = rx.await;
    }));
    let settle = |outbox: Arc<MemoryOutbox>| async move {
        while !outbox.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    add(&outbox, "a", Status::Done, &ended);
    settle(outbox.clone()).await;
    add(&outbox, "b", Status::Done, &ended);
    settle(outbox.clone()).await;
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1, "after 410 nothing more is sent to the endpoint");
    let b = outbox.status("b").unwrap();
    assert_eq!((b.status, b.attempts), (DeliveryStatus::Failed, 0));
    assert!(b.last_error.unwrap().contains("410 Gone"));
    assert_eq!(outbox.status("a").unwrap().last_status_code, Some(410));

    // The operator edits the file (the receiver moved): the endpoint is enabled again.
    std::fs::write(&path, file_text(&format!("{base}/ok"))).unwrap();
    while watcher.current().version == gone.version {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    add(&outbox, "c", Status::Done, &ended);
    settle(outbox.clone()).await;
    let _ = tx.send(());
    run.await.unwrap();
    assert_eq!(outbox.status("c").unwrap().status, DeliveryStatus::Delivered);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_is_refused_without_a_request_and_given_up_after_the_last_retry() {
    let seen = Arc::new(Seen::default());
    let base = receiver(seen.clone()).await;
    // https to a loopback address, private networks not allowed: the guard refuses before connecting.
    let url = base.replace("http://", "https://") + "/ok";
    let outbox = Arc::new(MemoryOutbox::new(100));
    let ended = Arc::new(AtomicUsize::new(0));
    add(&outbox, "p", Status::Failed, &ended);
    drain(outbox.clone(), tenants(&url, false, "[\"failed\"]", "[0, 0]")).await;
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0, "no request reached the loopback receiver");
    let p = outbox.status("p").unwrap();
    assert_eq!((p.status, p.attempts), (DeliveryStatus::Failed, 2), "two attempts, the schedule's two");
    assert!(p.last_error.unwrap().contains("loopback address"));
    // A host name that resolves to loopback is refused the same way, after resolution.
    let outbox = Arc::new(MemoryOutbox::new(100));
    add(&outbox, "q", Status::Failed, &ended);
    let port = base.rsplit(':').next().unwrap();
    drain(outbox.clone(), tenants(&format!("https://localhost:{port}/ok"), false, "[\"failed\"]", "[0]")).await;
    let q = outbox.status("q").unwrap();
    assert_eq!(q.status, DeliveryStatus::Failed);
    assert!(q.last_error.unwrap().contains("resolves to no allowed address"), "{:?}", outbox.status("q"));
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0);
    let _ = outbox.due(0, 1, &[]).await;
}
