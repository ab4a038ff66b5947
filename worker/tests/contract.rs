//! One contract, two transports: the in-process queue and Kafka (librdkafka's mock cluster, in-process).
//! Jobs get exactly the results they should; bad messages go to the dead-letter queue and the worker goes on.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use jobs::{InProcessQueue, JobResult, Status, Submitter, WorkerQueue};
use queue_kafka::{KafkaSubmitter, KafkaWorkerQueue};
use worker::RunOptions;

type BoxFut<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A transport under test: a worker side, a submitting side, and a way to send raw bytes as a job.
struct Transport<W: WorkerQueue, S: Submitter> {
    worker: Arc<W>,
    submitter: Arc<S>,
    send_raw: Box<dyn Fn(Vec<u8>, Option<&'static str>) -> BoxFut<'static> + Send + Sync>,
}

async fn contract<W: WorkerQueue, S: Submitter>(t: Transport<W, S>, within: Duration) {
    let fx = Fixture::new();
    let ring = fx.put(sample()).await;
    let garbage = fx.put(b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 1 2\n".to_vec()).await;
    let mut updates = t.submitter.subscribe();
    // Ready once connected and (Kafka) caught up with the results already in the topic.
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = t.submitter.ready().await {
        assert!(tokio::time::Instant::now() < until, "the transport never became ready: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker::run(
        t.worker.clone(),
        fx.context("w1"),
        RunOptions { concurrency: 4, ..Default::default() },
        async {
            let _ = stop_rx.await;
        },
    ));

    let mut ids = Vec::new();
    for i in 0..10 {
        let id = format!("ok-{i}");
        t.submitter
            .submit(&job(&id, &ring), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
            .await
            .unwrap();
        ids.push(id);
    }
    t.submitter.submit(&job("bad-mesh", &garbage), None).await.unwrap();
    let mut late = job("late", &ring);
    late.deadline_ms = Some(1);
    t.submitter.submit(&late, None).await.unwrap();
    let mut missing = job("missing", &ring);
    missing.model.key = "models/nothing-here".into();
    missing.model.sha256 = "0".repeat(64);
    t.submitter.submit(&missing, None).await.unwrap();
    // A message with a readable job id but an unknown field, and one that is not JSON at all.
    let poison_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    (t.send_raw)(br#"{"v":2,"job_id":"poison","model":{},"colour":"red"}"#.to_vec(), Some(poison_trace)).await;
    (t.send_raw)(b"\xff\xfe not json".to_vec(), None).await;
    let mut after = job("after-poison", &ring);
    after.options.alloys = vec!["pt950".into()];
    t.submitter.submit(&after, None).await.unwrap();

    ids.extend(["bad-mesh", "late", "missing", "poison", "after-poison"].map(String::from));
    let all = collect_all(&mut updates, &ids, within).await;
    let first = |id: &str| -> &JobResult {
        all.get(id)
            .and_then(|m| m.iter().find(|r| r.is_final()))
            .unwrap_or_else(|| panic!("no result for {id}: {:?}", all.keys()))
    };

    for i in 0..10 {
        let r = first(&format!("ok-{i}"));
        assert_eq!(r.status(), Status::Done, "{r:?}");
        assert_eq!(r.worker, "w1");
        assert_eq!(r.trace_id.as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
        let p = priced(r);
        assert_eq!(p.quotes.quotes.len(), 1);
        assert_eq!(p.geometry.triangles, 11422);
        assert!(p.timings_ms.total >= p.timings_ms.price);
        assert!(p.quotes.rules_version.len() == 64);
    }
    let code = |id: &str| code(first(id));
    assert_eq!(code("bad-mesh"), "stl_syntax");
    let message = &first("bad-mesh").outcome.error().unwrap().message;
    assert!(message.starts_with("ASCII STL line ") && message.contains("truncated"), "{message}");
    assert_eq!(code("late"), "deadline_exceeded");
    assert_eq!(code("missing"), "model_not_found");
    assert_eq!(code("poison"), "bad_message");
    assert_eq!(first("poison").trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"), "the poison's trace");
    assert_eq!(first("after-poison").status(), Status::Done, "the worker goes on after poison");
    assert_eq!(priced(first("after-poison")).quotes.quotes[0].alloy, "pt950");
    // The repeated model came from the cache: nine of the ten ok jobs did no parsing.
    let parsed = (0..10).filter(|i| priced(first(&format!("ok-{i}"))).timings_ms.parse > 0.0).count();
    assert!(parsed <= 4, "{parsed} of 10 parsed the same model (concurrency 4 can race at most 4)");

    // Progress: every started job said `running` before its answer.
    for i in 0..10 {
        let statuses: Vec<Status> = all[&format!("ok-{i}")].iter().map(JobResult::status).collect();
        let statuses = &statuses;
        assert_eq!(statuses.first(), Some(&Status::Running), "ok-{i}: {statuses:?}");
        assert_eq!(statuses.last(), Some(&Status::Done), "ok-{i}: {statuses:?}");
    }

    let _ = stop_tx.send(());
    let stats = run.await.unwrap();
    assert_eq!(stats.abandoned, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_transport() {
    let q = Arc::new(InProcessQueue::default());
    let raw = q.clone();
    let t = Transport {
        worker: q.clone(),
        submitter: q.clone(),
        send_raw: Box::new(move |bytes, traceparent| {
            let q = raw.clone();
            Box::pin(async move { q.send_raw(bytes, traceparent.map(str::to_owned)).unwrap() })
        }),
    };
    contract(t, Duration::from_secs(60)).await;
    let dead = q.dead_letters();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.iter().any(|(_, r)| r.contains("missing field `key`")), "{dead:?}");
    assert_eq!(q.in_flight(), 0, "every delivery was acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_durable_transport() {
    let dir = tempfile::tempdir().unwrap();
    let q = Arc::new(queue_sqlite::SqliteQueue::open(queue_sqlite::SqliteConfig::in_dir(dir.path())).unwrap());
    let raw = q.clone();
    let t = Transport {
        worker: q.clone(),
        submitter: q.clone(),
        send_raw: Box::new(move |bytes, traceparent| {
            let q = raw.clone();
            Box::pin(async move { q.send_raw(bytes, traceparent.map(str::to_owned)).await.unwrap() })
        }),
    };
    contract(t, Duration::from_secs(60)).await;
    let dead = q.dead_letters().await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.iter().any(|(_, r)| r.contains("missing field `key`")), "{dead:?}");
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.queued, counts.running), (0, 0), "every delivery was settled");
    // Every answer is in the file: a restart would tell them all again.
    assert_eq!(q.lookup("ok-3").await.unwrap().map(|r| r.status()), Some(Status::Done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_transport_on_the_mock_cluster() {
    let (_cluster, cfg) = mock_cluster("assay-workers");
    queue_kafka::ensure_topics(&cfg).await.expect("topics exist already, nothing to create");
    let raw_cfg = cfg.clone();
    let t = Transport {
        worker: Arc::new(KafkaWorkerQueue::connect(&cfg).unwrap()),
        submitter: Arc::new(KafkaSubmitter::connect(&cfg, true).unwrap()),
        send_raw: Box::new(move |bytes, traceparent| {
            let cfg = raw_cfg.clone();
            Box::pin(async move { queue_kafka::send_raw(&cfg, "poison", &bytes, traceparent).await.unwrap() })
        }),
    };
    contract(t, Duration::from_secs(90)).await;

    // The two undecodable messages are on the dead-letter topic with their reasons in a header.
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let dlq: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &cfg.bootstrap)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&cfg.dlq_topic]).unwrap();
    let mut reasons = Vec::new();
    while reasons.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(30), dlq.recv()).await.expect("dead letters").unwrap();
        let h = m.headers().expect("headers");
        let reason = h.iter().find(|h| h.key == "assay-dlq-reason").and_then(|h| h.value).expect("reason");
        reasons.push(String::from_utf8_lossy(reason).into_owned());
    }
    assert!(reasons.iter().any(|r| r.contains("missing field `key`")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("expected value")), "{reasons:?}");
}
