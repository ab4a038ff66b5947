//! What the worker tests share: a store with real models, a worker context, jobs, and waiting for results.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jobs::protocol::Options;
use jobs::{Job, JobResult, ModelRef};
use model_store::{ModelStore, StoredModel};
use pricing_rules::Rules;
use queue_kafka::KafkaConfig;
use rdkafka::mocking::MockCluster;
use tokio::sync::mpsc;
use worker::Context;

pub fn rules() -> Rules {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    Rules::Fixed(Arc::new(pricing_rules::RuleSet::load_dir(&dir).expect("shipped rules")))
}

pub fn sample() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/pixelverse_ring.stl")).expect("sample")
}

/// A distinct small closed model per `i` (so jobs spread over partitions by their model's hash).
pub fn band(i: u32) -> Vec<u8> {
    models::to_binary_stl(&models::synth::ring_band(8.0 + f64::from(i) * 0.01, 10.0, 2.0, 24, 8))
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: ModelStore,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ModelStore::from_url(&dir.path().display().to_string()).expect("store");
        Fixture { dir, store }
    }

    pub fn context(&self, name: &str) -> Arc<Context> {
        Arc::new(Context::new(name, self.store.clone(), rules()))
    }

    pub async fn put(&self, bytes: Vec<u8>) -> StoredModel {
        self.store.put(bytes.into()).await.expect("put")
    }
}

pub fn job(id: &str, model: &StoredModel) -> Job {
    let model = ModelRef { key: model.key.clone(), sha256: model.sha256.clone(), format: None };
    let mut job = Job::new(
        id.to_owned(),
        model,
        Options { alloys: vec!["18k-yellow".into()], ..Options::default() },
        Duration::from_secs(600),
    );
    job.deadline_ms = None;
    job
}

/// Collects the messages about jobs until every id in `ids` has a final one, or the deadline passes; returns
/// every message by id, in order (progress included).
pub async fn collect_all(
    rx: &mut mpsc::Receiver<JobResult>,
    ids: &[String],
    within: Duration,
) -> HashMap<String, Vec<JobResult>> {
    let mut got: HashMap<String, Vec<JobResult>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + within;
    while !ids.iter().all(|id| got.get(id).is_some_and(|m| m.iter().any(JobResult::is_final))) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => got.entry(r.job_id.clone()).or_default().push(r),
            Ok(None) | Err(_) => break,
        }
    }
    got
}

/// Collects final results until every id in `ids` has one, or the deadline passes; returns them by id.
pub async fn collect(
    rx: &mut mpsc::Receiver<JobResult>,
    ids: &[String],
    within: Duration,
) -> HashMap<String, Vec<JobResult>> {
    let mut got = collect_all(rx, ids, within).await;
    for messages in got.values_mut() {
        messages.retain(JobResult::is_final);
    }
    got.retain(|_, m| !m.is_empty());
    got
}

/// The priced outcome of a result, or a panic that shows the result.
pub fn priced(r: &JobResult) -> &jobs::Priced {
    match &r.outcome {
        jobs::Outcome::Done(p) => p,
        other => panic!("{} is not done: {other:?}", r.job_id),
    }
}

/// The error code of a result ("" when it has none).
pub fn code(r: &JobResult) -> String {
    r.outcome.error().map(|e| e.code.clone()).unwrap_or_default()
}

/// An in-process Kafka-protocol cluster with the three topics (4 job partitions) and a config for `group`.
pub fn mock_cluster(group: &str) -> (MockCluster<'static, rdkafka::producer::DefaultProducerContext>, KafkaConfig) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let mut cfg = KafkaConfig::new(&cluster.bootstrap_servers());
    cfg.group_id = group.into();
    cfg.session_timeout_ms = 6000;
    cfg.partitions = 4;
    queue_kafka::create_mock_topics(&cluster, &cfg, 4).expect("topics");
    (cluster, cfg)
}
