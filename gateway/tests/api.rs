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
    assert_eq!(body["model"]["sha256"], worker::store::sha256_hex(&ring()));

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
