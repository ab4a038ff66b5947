//! What the gateway tests share: a gateway over an in-process queue with a real worker behind it, requests
//! sent with `Router::oneshot`, and JSON answers.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use gateway::{AppState, Config};
use http_body_util::BodyExt;
use tower::ServiceExt;
use worker::{InProcessQueue, ModelStore, Rules};

pub fn rules() -> Rules {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    Rules::Fixed(Arc::new(pricing_rules::RuleSet::load_dir(&dir).expect("shipped rules")))
}

pub fn ring() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/pixelverse_ring.stl")).expect("sample")
}

pub struct Gateway {
    pub router: Router,
    pub state: Arc<AppState>,
    pub queue: Arc<InProcessQueue>,
    pub store_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Gateway {
    /// A gateway with a worker pool behind it (`workers: false` leaves jobs queued).
    pub fn start(config: Config, workers: bool) -> Gateway {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let store = ModelStore::from_url(&store_dir.path().display().to_string()).expect("store");
        let queue = Arc::new(InProcessQueue::new());
        let state = AppState::new(config, store.clone(), queue.clone(), rules());
        let router = gateway::router(state.clone());
        let mut stop = None;
        if workers {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let ctx = Arc::new(worker::Context::new("test-worker", store, rules()));
            tokio::spawn(worker::run(queue.clone(), ctx, worker::RunOptions::default(), async {
                let _ = rx.await;
            }));
            stop = Some(tx);
        }
        Gateway { router, state, queue, store_dir, stop }
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let (s, _, j) = self.send(Request::get(path).body(Body::empty()).expect("request")).await;
        (s, j)
    }

    /// Polls a job until it has a final status.
    pub async fn wait(&self, job_id: &str) -> serde_json::Value {
        let path = format!("/v1/quotes/{job_id}");
        for _ in 0..600 {
            let (status, body) = self.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["status"] == "done" || body["status"] == "failed" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job_id} did not finish in 30 s");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn post(path: &str, content_type: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(path).header("content-type", content_type).body(Body::from(body)).expect("request")
}

/// A multipart/form-data body with the given parts: (name, content type, bytes).
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> Request<Body> {
    let boundary = "assay-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, ct, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let filename = if *name == "model" { "; filename=\"model.bin\"" } else { "" };
        body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n").as_bytes());
        body.extend_from_slice(format!("Content-Type: {ct}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    post("/v1/quotes", &format!("multipart/form-data; boundary={boundary}"), body)
}
