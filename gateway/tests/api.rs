//! The HTTP API through `Router::oneshot`, with a real worker behind an in-process queue: submissions in both
//! forms, polls, every refusal with its status and message, keys, idempotency, rules, health, the API description.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use gateway::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_in_the_body_is_queued_measured_and_priced() {
    let gw = Gateway::start(Config::default(), true);
    let (status, headers, body) =
        gw.send(post("/v1/quotes?alloy=18k-yellow&alloy=sterling-925&quantity=2", "model/stl", ring())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "queued");
    assert_eq!(body["status_url"], format!("/v1/quotes/{id}"));
    assert_eq!(body["events_url"], format!("/v1/quotes/{id}/events"));
    assert_eq!(headers["location"], format!("/v1/quotes/{id}").as_str());
    assert_eq!(body["model"]["format"], "stl");
    assert_eq!(body["model"]["size_bytes"], ring().len() as u64);
    assert_eq!(body["model"]["sha256"], model_store::sha256_hex(&ring()));

    let done = gw.wait(&id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["geometry"]["triangles"], 11422);
    let alloys: Vec<&str> = done["quotes"].as_array().unwrap().iter().map(|q| q["alloy"].as_str().unwrap()).collect();
    assert_eq!(alloys, ["18k-yellow", "sterling-925"]);
    assert_eq!((done["quantity"].as_u64(), done["segment"].as_str()), (Some(2), Some("b2c")));
    assert!(done["timings_ms"]["total"].as_f64().unwrap() > 0.0, "{done}");
    assert_eq!(done["worker"], "test-worker");
    assert_eq!(done["rules_version"].as_str().unwrap().len(), 64);

    let (status, body) = gw.get("/v1/quotes/0123456789abcdef").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_submission_with_options_and_a_sniffed_format() {
    let gw = Gateway::start(Config::default(), true);
    let options = br#"{"alloys": ["pt950"], "quantity": 3, "segment": "b2b", "stones": [{"kind": "diamond", "count": 5}], "units": "mm"}"#;
    let (status, _, body) = gw
        .send(multipart(&[("options", "application/json", options), ("model", "application/octet-stream", &ring())]))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["model"]["format"], "stl", "sniffed from the bytes");
    let done = gw.wait(body["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    let quote = &done["quotes"][0];
    assert_eq!((quote["alloy"].as_str(), done["quantity"].as_u64()), (Some("pt950"), Some(3)));
    assert_eq!(done["segment"], "b2b");
    let text = quote.to_string();
    assert!(text.contains("diamond"), "the stones are priced: {text}");

    // Options after the model work too.
    let (status, _, body) = gw
        .send(multipart(&[("model", "model/stl", &ring()), ("options", "application/json", br#"{"alloys":["24k"]}"#)]))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(gw.wait(body["job_id"].as_str().unwrap()).await["quotes"][0]["alloy"], "24k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_model_is_a_failed_job_not_an_http_error() {
    let gw = Gateway::start(Config::default(), true);
    let (status, _, body) = gw
        .send(post("/v1/quotes", "model/stl", b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 1 2\n".to_vec()))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let failed = gw.wait(body["job_id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "stl_syntax", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("line"), "{failed}");
}

/// Each bad request: its status, its code, and words from its message that say what is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_say_what_is_wrong_and_what_is_allowed() {
    let gw = Gateway::start(Config { max_upload_bytes: 1_000_000, ..Config::default() }, true);
    let cases: Vec<(Request<Body>, StatusCode, &str, &str)> = vec![
        (
            post("/v1/quotes", "image/png", ring()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "model/stl",
        ),
        (
            post("/v1/quotes", "application/octet-stream", b"GIF89a".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unknown_format",
            "model/gltf-binary",
        ),
        (
            post("/v1/quotes?alloy=19k", "model/stl", ring()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_alloy",
            "18k-yellow",
        ),
        (
            post("/v1/quotes?segment=vip", "model/stl", ring()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_segment",
            "b2b, b2c",
        ),
        (
            post("/v1/quotes?quantity=0", "model/stl", ring()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
            "at least 1",
        ),
        (
            post("/v1/quotes?quantity=many", "model/stl", ring()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
            "whole number",
        ),
        (
            post("/v1/quotes?units=furlong", "model/stl", ring()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_units",
            "mm, cm, m, in",
        ),
        (
            post("/v1/quotes?colour=red", "model/stl", ring()),
            StatusCode::BAD_REQUEST,
            "unknown_parameter",
            "alloy, quantity, segment, units",
        ),
        (post("/v1/quotes", "model/stl", Vec::new()), StatusCode::BAD_REQUEST, "empty_model", "body"),
        (
            post("/v1/quotes", "model/stl", vec![0; 1_200_000]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "1000000 bytes",
        ),
        (
            multipart(&[("options", "application/json", br#"{"alloy": "pt950"}"#), ("model", "model/stl", &ring())]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_options",
            "unknown field `alloy`",
        ),
        (
            multipart(&[("options", "application/json", b"{not json"), ("model", "model/stl", &ring())]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_options",
            "expected a JSON object",
        ),
        (
            multipart(&[
                ("options", "application/json", br#"{"stones":[{"kind":"ruby","count":1}]}"#),
                ("model", "model/stl", &ring()),
            ]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_stone",
            "diamond",
        ),
        (
            multipart(&[("options", "application/json", br#"{"alloys":["pt950"]}"#)]),
            StatusCode::BAD_REQUEST,
            "missing_model",
            "\"model\"",
        ),
        (multipart(&[("picture", "image/png", b"x")]), StatusCode::BAD_REQUEST, "bad_multipart", "\"model\" part"),
        (
            multipart(&[("model", "text/html", b"<html>")]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "model/stl",
        ),
        (
            multipart(&[("model", "model/stl", &vec![0; 1_200_000])]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "1000000 bytes",
        ),
        (
            post("/v1/quotes", "multipart/form-data; boundary=x", b"garbage".to_vec()),
            StatusCode::BAD_REQUEST,
            "bad_multipart",
            "multipart",
        ),
        (
            Request::post("/v1/quotes").header("idempotency-key", "").body(Body::from(ring())).unwrap(),
            StatusCode::BAD_REQUEST,
            "bad_idempotency_key",
            "1 to 255",
        ),
        (
            Request::delete("/v1/rules").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "DELETE",
        ),
        (
            Request::get("/v2/everything").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
            "/openapi.json",
        ),
        (
            Request::get("/v1/quotes/nope/events").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
            "never submitted",
        ),
    ];
    for (request, status, code, allowed) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (got, headers, body) = gw.send(request).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(headers["content-type"], "application/json", "{what}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(allowed), "{what}: {message:?} should mention {allowed:?}");
    }
    // Nothing was queued by any of them, and the gateway still works.
    assert_eq!(gw.state.book().len(), 0);
    let (status, _, body) = gw.send(post("/v1/quotes", "model/stl", ring())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(gw.wait(body["job_id"].as_str().unwrap()).await["status"], "done");
    // A job's events endpoint asked for over plain HTTP says how to use it.
    let (status, _, body) = gw
        .send(
            Request::get(format!("/v1/quotes/{}/events", body["job_id"].as_str().unwrap()))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UPGRADE_REQUIRED, Some("websocket_required")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_v1_but_not_the_platform_endpoints() {
    let key = "k3y-for-the-test-suite-0001";
    let gw = Gateway::start(
        Config { api_keys: vec!["another-key-that-is-long".into(), key.into()], ..Config::default() },
        true,
    );
    for auth in [None, Some("Bearer wrong-key-wrong-key"), Some("Basic Zm9vOmJhcg=="), Some(key)] {
        let mut r = Request::get("/v1/rules");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let (status, headers, body) = gw.send(r.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(!body.to_string().contains(key), "a key is never echoed");
    }
    let (status, _, body) = gw
        .send(Request::get("/v1/rules").header("authorization", format!("Bearer {key}")).body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = gw
        .send(
            Request::post("/v1/quotes")
                .header("authorization", format!("bearer {key}"))
                .header("content-type", "model/stl")
                .body(Body::from(ring()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for open in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(gw.get(open).await.0, StatusCode::OK, "{open}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_submit_with_an_idempotency_key_returns_the_first_job() {
    let gw = Gateway::start(Config::default(), false);
    let send = |key: &str| {
        Request::post("/v1/quotes?alloy=pt950")
            .header("content-type", "model/stl")
            .header("idempotency-key", key)
            .body(Body::from(ring()))
            .unwrap()
    };
    let (s1, _, first) = gw.send(send("order-1234")).await;
    let (s2, headers, again) = gw.send(send("order-1234")).await;
    let (s3, _, other) = gw.send(send("order-1235")).await;
    assert_eq!((s1, s2, s3), (StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first["job_id"], again["job_id"]);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_ne!(first["job_id"], other["job_id"]);
    assert_eq!(gw.state.book().len(), 2, "two jobs, not three");

    // The same key on another request (other options, or another model) is a client's mistake, not a retry: it
    // is refused, and the key still answers its own request.
    let other_alloy = Request::post("/v1/quotes?alloy=18k-yellow")
        .header("content-type", "model/stl")
        .header("idempotency-key", "order-1234")
        .body(Body::from(ring()))
        .unwrap();
    let (status, _, refused) = gw.send(other_alloy).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains(first["job_id"].as_str().unwrap()), "{message}");
    let mut other_model = ring();
    other_model[..5].copy_from_slice(b"other");
    let other_model = Request::post("/v1/quotes?alloy=pt950")
        .header("content-type", "model/stl")
        .header("idempotency-key", "order-1234")
        .body(Body::from(other_model))
        .unwrap();
    let (status, _, refused) = gw.send(other_model).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &"idempotency_key_reused".into())
    );
    let (status, _, again) = gw.send(send("order-1234")).await;
    assert_eq!((status, &again["job_id"]), (StatusCode::ACCEPTED, &first["job_id"]));
    assert_eq!(gw.state.book().len(), 2, "still two jobs");

    // A refused request does not hold on to its key: the corrected retry goes through.
    let bad = Request::post("/v1/quotes?alloy=19k")
        .header("content-type", "model/stl")
        .header("idempotency-key", "order-9")
        .body(Body::from(ring()))
        .unwrap();
    assert_eq!(gw.send(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(gw.send(send("order-9")).await.0, StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_health_readiness_and_the_api_description() {
    let gw = Gateway::start(Config::default(), false);
    let (status, rules) = gw.get("/v1/rules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rules["version"].as_str().unwrap().len(), 64);
    assert!(rules["loaded_at"].as_str().unwrap().ends_with('Z'));
    let alloys: Vec<&str> = rules["alloys"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert!(alloys.contains(&"18k-yellow") && alloys.contains(&"pt950") && alloys.len() == 13, "{alloys:?}");
    let segments: Vec<&str> = rules["segments"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(segments, ["b2b", "b2c"]);
    assert_eq!(rules["units"], serde_json::json!(["mm", "cm", "m", "in"]));

    assert_eq!(gw.get("/healthz").await, (StatusCode::OK, serde_json::json!({"status": "ok"})));
    let (status, ready) = gw.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["store"], "ok");
    assert_eq!(ready["checks"]["queue"], "ok");

    let (status, doc) = gw.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for p in ["/v1/quotes", "/v1/quotes/{id}", "/v1/quotes/{id}/events", "/v1/rules", "/healthz", "/readyz"] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys());
    }
    let body = &doc["paths"]["/v1/quotes"]["post"]["requestBody"]["content"];
    for ct in ["model/stl", "model/gltf-binary", "model/gltf+json", "application/octet-stream", "multipart/form-data"] {
        assert!(body.get(ct).is_some(), "{ct} missing from {body}");
    }
    assert!(doc["components"]["schemas"]["QuoteView"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_without_a_worker_stays_queued() {
    let gw = Gateway::start(Config::default(), false);
    let (status, _, body) = gw.send(post("/v1/quotes", "model/stl", ring())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, job) = gw.get(body["status_url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(job["status"], "queued");
    assert!(job["submitted_at_ms"].as_u64().unwrap() > 0);
    assert!(job.get("quotes").is_none(), "no result fields before the result: {job}");
}

/// Bytes that follow from a seed, with no structure at all.
fn random_bytes(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_no_model_are_refused_with_415_before_a_job_exists() {
    let gw = Gateway::start(Config::default(), true);
    for seed in [1, 2, 3, 0x9E37_79B9_7F4A_7C15] {
        for content_type in ["application/octet-stream", "model/stl"] {
            let (status, _, body) = gw.send(post("/v1/quotes", content_type, random_bytes(3000, seed))).await;
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}, seed {seed}: {body}");
            assert_eq!(body["error"]["code"], "unknown_format");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("model/stl, model/gltf-binary"), "says what is accepted: {message}");
        }
    }
    // A real model sent under another model's type is refused too, saying what the bytes are.
    let (status, _, body) = gw.send(post("/v1/quotes", "model/gltf-binary", ring())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("its bytes are a binary STL"), "{body}");
    assert_eq!(gw.state.book().len(), 0, "nothing was queued");
    // Nothing is left in the store's upload area either.
    let uploads = gw.store_dir.path().join("uploads");
    assert_eq!(std::fs::read_dir(uploads).map(|d| d.count()).unwrap_or(0), 0);
}

fn idempotent(alloy: &str, key: &str) -> Request<Body> {
    Request::post(format!("/v1/quotes?alloy={alloy}"))
        .header("content-type", "model/stl")
        .header("idempotency-key", key)
        .body(Body::from(ring()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_used_again_after_its_time_to_live_is_one_entry_not_two() {
    // Time to live 4 s: the first use must be past it, the three requests after the second use well within it
    // even on a loaded machine.
    let ttl = std::time::Duration::from_secs(4);
    let config = Config { idempotency_ttl: ttl, max_idempotency_keys: 2, ..Config::default() };
    let gw = Gateway::start(config, false);
    let (_, _, first) = gw.send(idempotent("pt950", "k1")).await;
    tokio::time::sleep(ttl + std::time::Duration::from_millis(100)).await;
    let second_use = std::time::Instant::now();
    // After its time to live the key may name a new request: a new job.
    let (status, _, second) = gw.send(idempotent("18k-yellow", "k1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_ne!(first["job_id"], second["job_id"]);
    // Another key fills the map to its bound. A stale second entry for k1 would now be evicted and take the live
    // one with it, and k1 would forget that it names the 18K request.
    let (status, _, _) = gw.send(idempotent("pt950", "k2")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, refused) = gw.send(idempotent("pt950", "k1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    let (status, headers, again) = gw.send(idempotent("18k-yellow", "k1")).await;
    assert_eq!((status, &again["job_id"]), (StatusCode::ACCEPTED, &second["job_id"]));
    assert_eq!(headers["idempotent-replayed"], "true");
    assert!(second_use.elapsed() < ttl, "the machine was too slow for this test's time to live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_through_another_gateway_instance_gets_the_first_job() {
    let key = "k3y-for-the-test-suite-0001";
    let config = || Config { api_keys: vec![key.into()], ..Config::default() };
    let gw1 = Gateway::with_queue(config(), std::sync::Arc::new(jobs::InProcessQueue::default()), None);
    // The second instance knows the keys in another order: the caller is the same.
    let gw2 =
        gw1.another_instance(Config { api_keys: vec!["another-key-that-is-long".into(), key.into()], ..config() });
    let request = || {
        Request::post("/v1/quotes?alloy=pt950")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "model/stl")
            .header("idempotency-key", "order-77")
            .body(Body::from(ring()))
            .unwrap()
    };
    // The first try reaches instance 1; its answer is lost, and the retry reaches instance 2 before any worker
    // has said a word about the job.
    let (s1, _, first) = gw1.send(request()).await;
    let (s2, _, retried) = gw2.send(request()).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED), "{first} {retried}");
    assert_eq!(first["job_id"], retried["job_id"], "both instances name the same job");
    let id = first["job_id"].as_str().unwrap().to_owned();
    // Workers answer (the job was queued twice under one id; the answer is one).
    let _workers = start_workers(&gw1.queue, gw1.store(), rules());
    let poll = || {
        Request::get(format!("/v1/quotes/{id}"))
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    let mut done = Vec::new();
    for gw in [&gw1, &gw2] {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (status, _, job) = gw.send(poll()).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if job["status"] == "done" {
                done.push(job);
                break;
            }
            assert!(std::time::Instant::now() < until, "{job}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(done[0]["quotes"], done[1]["quotes"]);
    // A third try, through instance 2 again, once it knows the answer: the same job, marked as a replay.
    let (status, headers, third) = gw2.send(request()).await;
    assert_eq!((status, &third["job_id"], &third["status"]), (StatusCode::ACCEPTED, &first["job_id"], &"done".into()));
    assert_eq!(headers["idempotent-replayed"], "true");
}

#[tokio::test(flavor = "current_thread")]
async fn no_final_result_is_lost_however_far_the_job_book_falls_behind() {
    use jobs::WorkerQueue as _;
    // 70,000 answers, more than the 65,536 the old broadcast channel held; published on one thread without a
    // pause, so the book's reader runs only when publishing has to wait for it.
    const N: usize = 70_000;
    let queue = std::sync::Arc::new(jobs::InProcessQueue::new(jobs::InProcessConfig {
        subscriber_buffer: 64,
        ..jobs::InProcessConfig::default()
    }));
    let gw = Gateway::with_queue(Config { max_jobs_kept: N, ..Config::default() }, queue.clone(), None);
    for i in 0..N {
        let r = jobs::JobResult::failed(&format!("j{i}"), "w", "no_metal", "nothing to cast");
        queue.publish(&r, None).await.unwrap();
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while gw.state.book().len() < N && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(gw.state.book().len(), N, "every final result reached the book");
    for i in [0, N / 2, N - 1] {
        assert_eq!(gw.state.book().get(&format!("j{i}")).map(|j| j.status()), Some(jobs::Status::Failed));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_workers_rules_cannot_price_fails_with_the_rules_code() {
    // A rules edit in flight: the gateway's copy still has 24k, the workers' copy no longer does.
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    for entry in std::fs::read_dir(&shipped).unwrap().flatten() {
        if entry.path().is_file() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let text = if entry.file_name() == "alloys.toml" {
                let at = text.find("[[alloy]]\nid = \"24k\"").expect("24k in the shipped alloys");
                let end = text[at + 1..].find("[[alloy]]").map_or(text.len(), |e| at + 1 + e);
                format!("{}{}", &text[..at], &text[end..])
            } else {
                text
            };
            std::fs::write(dir.path().join(entry.file_name()), text).unwrap();
        }
    }
    let edited = pricing_rules::RuleSet::load_dir(dir.path()).unwrap();
    let edited_version = edited.version.clone();
    let gw = Gateway::with_queue(
        Config::default(),
        std::sync::Arc::new(jobs::InProcessQueue::default()),
        Some(pricing_rules::Rules::from(edited)),
    );
    let (status, _, body) = gw.send(post("/v1/quotes?alloy=24k", "model/stl", ring())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the gateway's copy has 24k: {body}");
    let failed = gw.wait(body["job_id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "unknown_alloy");
    assert_eq!(failed["rules_version"], edited_version.as_str(), "names the rules that refused it");
    assert!(failed.get("quotes").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_job_database_answers_503_storage_full_and_is_not_ready() {
    use tower::ServiceExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = model_store::ModelStore::from_url(&dir.path().join("store").display().to_string()).unwrap();
    let config =
        queue_sqlite::SqliteConfig { max_bytes: Some(96 << 10), ..queue_sqlite::SqliteConfig::in_dir(dir.path()) };
    let queue = std::sync::Arc::new(queue_sqlite::SqliteQueue::open(config).unwrap());
    let state = gateway::AppState::new(Config::default(), store, queue.clone(), rules());
    let router = gateway::router(state);
    let send = |r: Request<Body>| {
        let router = router.clone();
        async move {
            let response = router.oneshot(r).await.unwrap();
            let status = response.status();
            let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
        }
    };
    let mut accepted = Vec::new();
    let refused = loop {
        // Long option values make each job a few kB, so the bound is reached after some dozens.
        let alloys = ["18k-yellow"; 60].join(",");
        let (status, body) = send(post(&format!("/v1/quotes?alloy={alloys}"), "model/stl", ring())).await;
        if status != StatusCode::ACCEPTED {
            break (status, body);
        }
        accepted.push(body["job_id"].as_str().unwrap().to_owned());
        assert!(accepted.len() < 2000, "the bound was never reached");
    };
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.1);
    assert_eq!(refused.1["error"]["code"], "storage_full", "{}", refused.1);
    assert!(refused.1["error"]["message"].as_str().unwrap().contains("full"));
    let (status, ready) = send(Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert!(ready["checks"]["queue"].as_str().unwrap().contains("full"), "{ready}");
    // Everything accepted before is still there and still answers.
    assert_eq!(queue.counts().await.unwrap().queued, accepted.len() as u64);
    for id in [&accepted[0], accepted.last().unwrap()] {
        let (status, job) = send(Request::get(format!("/v1/quotes/{id}")).body(Body::empty()).unwrap()).await;
        assert_eq!((status, job["status"].as_str()), (StatusCode::OK, Some("queued")));
    }
}

fn separate_ring() -> (Vec<u8>, Vec<u8>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/data/compressed/separate");
    (std::fs::read(dir.join("ring.gltf")).unwrap(), std::fs::read(dir.join("ring.bin")).unwrap())
}

/// A `.gltf` with its `.bin` as a `buffer` part is stored whole and priced like the GLB it was made from; a
/// Draco GLB is priced too. What is missing, escaping or unused is refused by name before a job exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gltf_with_its_buffers_as_parts_and_a_draco_glb() {
    let gw = Gateway::start(Config::default(), true);
    let (gltf, bin) = separate_ring();
    let glb =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/solitaire_ring.glb")).unwrap();
    let (status, _, from_glb) = gw.send(post("/v1/quotes?alloy=18k-yellow", "model/gltf-binary", glb)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{from_glb}");
    let (status, _, body) = gw
        .send(multipart(&[
            ("buffer:ring.bin", "application/octet-stream", &bin),
            ("model", "model/gltf+json", &gltf),
            ("options", "application/json", br#"{"alloys": ["18k-yellow"]}"#),
        ]))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["model"]["format"], "gltf");
    assert!(body["model"]["size_bytes"].as_u64().unwrap() > bin.len() as u64, "the stored model holds the buffer");
    let separate = gw.wait(body["job_id"].as_str().unwrap()).await;
    let whole = gw.wait(from_glb["job_id"].as_str().unwrap()).await;
    assert_eq!(separate["status"], "done", "{separate}");
    assert_eq!(separate["geometry"]["triangles"], 18440);
    assert_eq!(separate["geometry"]["volume_mm3"], whole["geometry"]["volume_mm3"]);
    assert_eq!(separate["quotes"][0]["total"], whole["quotes"][0]["total"]);

    let draco = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models/tests/data/compressed/ring_gltf_pipeline_draco.glb"),
    )
    .unwrap();
    let (status, _, body) = gw.send(post("/v1/quotes?alloy=18k-yellow", "model/gltf-binary", draco)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = gw.wait(body["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    let (v, v0) = (done["geometry"]["volume_mm3"].as_f64().unwrap(), whole["geometry"]["volume_mm3"].as_f64().unwrap());
    assert!((v / v0 - 1.0).abs() < 0.01, "{v} vs {v0}");

    let escaping = String::from_utf8(gltf.clone()).unwrap().replace("\"ring.bin\"", "\"../ring.bin\"");
    let cases: Vec<(Request<Body>, &str, &str)> = vec![
        (post("/v1/quotes", "model/gltf+json", gltf.clone()), "gltf_missing_buffer", "'ring.bin'"),
        (multipart(&[("model", "model/gltf+json", &gltf)]), "gltf_missing_buffer", "'ring.bin'"),
        (
            multipart(&[("model", "model/gltf+json", &gltf), ("buffer:rings.bin", "application/octet-stream", &bin)]),
            "unused_buffer",
            "\"rings.bin\" is not a file the .gltf names (it names \"ring.bin\")",
        ),
        (
            multipart(&[
                ("model", "model/gltf+json", escaping.as_bytes()),
                ("buffer:ring.bin", "application/octet-stream", &bin),
            ]),
            "gltf_buffer_uri_refused",
            "'../ring.bin'",
        ),
        (
            multipart(&[("model", "model/stl", &ring()), ("buffer:ring.bin", "application/octet-stream", &bin)]),
            "unused_buffer",
            "the model is stl",
        ),
    ];
    for (request, code, says) in cases {
        let (status, _, body) = gw.send(request).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{body}");
    }
    let (status, _, body) =
        gw.send(multipart(&[("model", "model/gltf+json", &gltf), ("buffer", "application/octet-stream", &bin)])).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_multipart")), "{body}");
}
