//! Tenants: a key names its tenant, a tenant sees only its own jobs (another's answers 404 on poll and socket,
//! exactly like an unknown id), asks only for its segments (403 naming them; its default when it names none),
//! stays within its limits (429 with Retry-After, nothing queued), and the tenants file reloads (a key added
//! works; a broken edit is refused and the last good file stays).

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use gateway::Config;

const SHOP: &str = "shop-key-0123456789abcdef";
const TRADE: &str = "trade-key-0123456789abcdef";
const OTHER: &str = "other-key-0123456789abcdef";

fn file(extra_trade_key: Option<&str>) -> String {
    let trade_keys = std::iter::once(TRADE)
        .chain(extra_trade_key)
        .map(|k| format!("\"{}\"", tenants::key_digest(k)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"format = 1

[[tenant]]
id = "storefront"
name = "Web shop (retail)"
keys = ["{shop}"]
segments = ["b2c"]
rate_per_minute = 600
max_in_flight = 50

[[tenant]]
id = "trade"
name = "Trade customers"
keys = [{trade_keys}]
segments = ["b2b", "b2c"]
"#,
        shop = tenants::key_digest(SHOP),
    )
}

fn config(text: &str) -> Config {
    let t = tenants::Tenants::parse("tenants.toml", text).unwrap();
    Config { tenants: Some(t.into()), ..Config::default() }
}

fn as_key(mut r: Request<Body>, key: &str) -> Request<Body> {
    r.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

fn get(path: &str, key: &str) -> Request<Body> {
    as_key(Request::get(path).body(Body::empty()).unwrap(), key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_only_its_own_jobs() {
    let gw = Gateway::start(config(&file(None)), true);
    let (status, _, body) = gw.send(as_key(post("/v1/quotes?alloy=18k-yellow", "model/stl", ring()), SHOP)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    // The owner polls it to the end.
    let path = format!("/v1/quotes/{id}");
    let done = loop {
        let (status, _, body) = gw.send(get(&path, SHOP)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["status"] == "done" {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["segment"], "b2c", "the tenant's default segment");
    // Another tenant gets exactly what an unknown id gets.
    let (status, _, theirs) = gw.send(get(&path, TRADE)).await;
    let (unknown_status, _, unknown) = gw.send(get("/v1/quotes/0123456789abcdef0123456789abcdef", TRADE)).await;
    assert_eq!((status, unknown_status), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND), "{theirs}");
    assert_eq!(theirs["error"]["code"], unknown["error"]["code"]);
    assert!(!theirs.to_string().contains("quotes\""), "no price leaks: {theirs}");
    // A key in no tenant is refused.
    let (status, _, body) = gw.send(get(&path, OTHER)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = gw.send(Request::get(&path).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // And on the events socket: 404 for the other tenant, the result for the owner.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway::serve(listener, gw.router.clone(), std::future::pending()));
    match tokio_tungstenite::connect_async(format!("ws://{addr}/v1/quotes/{id}/events?access_token={TRADE}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/v1/quotes/{id}/events?access_token={SHOP}"))
            .await
            .unwrap();
    use futures::StreamExt as _;
    let first = ws.next().await.unwrap().unwrap();
    let view: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(view["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_asks_only_for_its_segments() {
    let gw = Gateway::start(config(&file(None)), true);
    let (status, _, body) = gw.send(as_key(post("/v1/quotes?segment=b2b", "model/stl", ring()), SHOP)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "segment_not_allowed");
    assert!(body["error"]["message"].as_str().unwrap().contains("allowed \"b2c\""), "{body}");
    // In the options part too.
    let (status, _, body) = gw
        .send(as_key(
            multipart(&[("options", "application/json", br#"{"segment":"b2b"}"#), ("model", "model/stl", &ring())]),
            SHOP,
        ))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("segment_not_allowed")));
    // The trade tenant gets b2b by default and may ask for b2c.
    let (status, _, body) = gw.send(as_key(post("/v1/quotes", "model/stl", ring()), TRADE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    let (status, _, body) = gw.send(as_key(post("/v1/quotes?segment=b2c", "model/stl", ring()), TRADE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let path = format!("/v1/quotes/{id}");
    let done = loop {
        let (_, _, body) = gw.send(get(&path, TRADE)).await;
        if body["status"] == "done" {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["segment"], "b2b");
    // The rules show each tenant its own segments, its default first.
    let (_, _, rules) = gw.send(get("/v1/rules", SHOP)).await;
    let ids: Vec<&str> = rules["segments"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["b2c"]);
    let (_, _, rules) = gw.send(get("/v1/rules", TRADE)).await;
    let ids: Vec<&str> = rules["segments"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["b2b", "b2c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_429_with_retry_after_and_queue_nothing() {
    let text = file(None)
        .replace("rate_per_minute = 600", "rate_per_minute = 3")
        .replace("max_in_flight = 50", "max_in_flight = 2");
    // No workers: jobs stay unfinished.
    let gw = Gateway::start(config(&text), false);
    for _ in 0..2 {
        let (status, _, body) = gw.send(as_key(post("/v1/quotes", "model/stl", ring()), SHOP)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, headers, body) = gw.send(as_key(post("/v1/quotes", "model/stl", ring()), SHOP)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_in_flight");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    // The fourth request in the minute is over the rate, whatever it asks.
    let (status, headers, body) = gw.send(get("/v1/rules", SHOP)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "one request comes back within 20 s at 3 a minute: {wait}");
    // Nothing over a limit was queued: the two accepted jobs are all the queue holds.
    assert_eq!(gw.queue.sent(), 2);
    // Another tenant is not limited by this one.
    let (status, _, _) = gw.send(get("/v1/rules", TRADE)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_file_reloads_and_a_broken_edit_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants.toml");
    std::fs::write(&path, file(None)).unwrap();
    let watcher = tenants::watch(&path, Duration::from_millis(100), Duration::from_secs(60)).unwrap();
    let source = tenants::TenantsSource::Watched(Arc::new(watcher));
    let gw = Gateway::start(Config { tenants: Some(source.clone()), ..Config::default() }, false);
    assert_eq!(gw.send(get("/v1/rules", OTHER)).await.0, StatusCode::UNAUTHORIZED);

    // A key added to the trade tenant works once the file is saved.
    std::fs::write(&path, file(Some(OTHER))).unwrap();
    let mut status = StatusCode::UNAUTHORIZED;
    for _ in 0..100 {
        status = gw.send(get("/v1/rules", OTHER)).await.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::OK, "the added key takes effect");
    let good = source.current().version.clone();

    // A broken edit is refused with its place; the last good file stays in force.
    std::fs::write(&path, file(Some(OTHER)).replace("segments = [\"b2c\"]", "segments = \"b2c\"")).unwrap();
    let mut error = None;
    for _ in 0..100 {
        error = source.reload_status().unwrap().last_error;
        if error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = error.expect("the broken edit is reported");
    assert!(error.contains("tenants.toml:7:12: invalid type: string \"b2c\", expected a sequence"), "{error}");
    assert_eq!(source.current().version, good);
    assert_eq!(gw.send(get("/v1/rules", OTHER)).await.0, StatusCode::OK, "the last good file stays");
    assert_eq!(gw.send(get("/v1/rules", SHOP)).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_session_is_scoped_to_it_one_segment_and_its_quotes() {
    let gw = Gateway::start(Config { session_secret: Some(vec![7; 32]), ..config(&file(None)) }, true);
    let make = |body: &'static str, key: &str| {
        let mut r =
            Request::post("/v1/sessions").header("content-type", "application/json").body(Body::from(body)).unwrap();
        r.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
        r
    };
    // The trade tenant may not hand out a segment it does not have; the shop may not hand out b2b.
    let (status, _, body) = gw.send(make(r#"{"segment":"b2b"}"#, SHOP)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("segment_not_allowed")));
    let (status, _, body) = gw.send(make(r#"{"quotes": 1, "ttl_secs": 600}"#, TRADE)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["segment"], "b2b", "the tenant's default");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(body["url"].as_str().unwrap().ends_with(&token));

    // The session prices in its segment, once; the job is the tenant's, not another's.
    let (status, _, body) = gw.send(as_key(post("/v1/quotes", "model/stl", ring()), &token)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    let (status, _, body) = gw.send(as_key(post("/v1/quotes", "model/stl", ring()), &token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("session_used_up")), "{body}");
    let path = format!("/v1/quotes/{id}");
    let done = loop {
        let (status, _, body) = gw.send(get(&path, &token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["status"] == "done" {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["segment"], "b2b");
    assert_eq!(gw.send(get(&path, TRADE)).await.0, StatusCode::OK, "the tenant sees its session's job");
    assert_eq!(gw.send(get(&path, SHOP)).await.0, StatusCode::NOT_FOUND, "another tenant does not");
    // A session cannot make sessions; a token signed with another secret is refused.
    assert_eq!(gw.send(make("{}", &token)).await.0, StatusCode::UNAUTHORIZED);
    let other = Gateway::start(Config { session_secret: Some(vec![8; 32]), ..config(&file(None)) }, false);
    let (status, _, body) = other.send(get("/v1/rules", &token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_invalid")));
}
