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
use jobs::InProcessQueue;
use model_store::ModelStore;
use pricing_rules::Rules;
use tower::ServiceExt;

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
        Gateway::with_queue(config, Arc::new(InProcessQueue::default()), if workers { Some(rules()) } else { None })
    }

    /// A gateway over `queue`, with a worker pool pricing with `worker_rules` behind it when given.
    pub fn with_queue(config: Config, queue: Arc<InProcessQueue>, worker_rules: Option<Rules>) -> Gateway {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let store = ModelStore::from_url(&store_dir.path().display().to_string()).expect("store");
        let state = AppState::new(config, store.clone(), queue.clone(), rules());
        let router = gateway::router(state.clone());
        let mut stop = None;
        if let Some(worker_rules) = worker_rules {
            stop = Some(start_workers(&queue, store, worker_rules));
        }
        Gateway { router, state, queue, store_dir, stop }
    }

    /// A second gateway instance in front of the same queue and store (as in the scaled deployment).
    pub fn another_instance(&self, config: Config) -> Gateway {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let state = AppState::new(config, self.store(), self.queue.clone(), rules());
        Gateway { router: gateway::router(state.clone()), state, queue: self.queue.clone(), store_dir, stop: None }
    }

    pub fn store(&self) -> ModelStore {
        ModelStore::from_url(&self.store_dir.path().display().to_string()).expect("store")
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

/// A worker pool on `queue` until the returned sender is dropped or sent to.
pub fn start_workers(queue: &Arc<InProcessQueue>, store: ModelStore, rules: Rules) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let ctx = Arc::new(worker::Context::new("test-worker", store, rules));
    tokio::spawn(worker::run(queue.clone(), ctx, worker::RunOptions::default(), async {
        let _ = rx.await;
    }));
    tx
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
        // "buffer:ring.bin" is a part named buffer whose filename is ring.bin.
        let (name, filename) = match name.split_once(':') {
            Some((name, file)) => (name, format!("; filename=\"{file}\"")),
            None if *name == "model" => (*name, "; filename=\"model.bin\"".to_owned()),
            None => (*name, String::new()),
        };
        body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n").as_bytes());
        body.extend_from_slice(format!("Content-Type: {ct}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    post("/v1/quotes", &format!("multipart/form-data; boundary={boundary}"), body)
}
