//! Kafka under stress, on librdkafka's mock cluster: two workers share a group, a broker disappears for a while,
//! a worker vanishes mid-job without committing, a job is delivered twice. Nothing is lost, nothing is answered
//! twice differently.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use jobs::{Status, Submitter, WorkerQueue};
use queue_kafka::{KafkaSubmitter, KafkaWorkerQueue};
use worker::RunOptions;

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stopper() -> (tokio::sync::oneshot::Sender<()>, impl std::future::Future<Output = ()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async {
        let _ = rx.await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_in_one_group_share_the_jobs() {
    let (_c, cfg) = mock_cluster("share");
    let fx = Fixture::new();
    let mut models = Vec::new();
    for i in 0..8 {
        models.push(fx.put(band(i)).await);
    }
    let (a, b) =
        (Arc::new(KafkaWorkerQueue::connect(&cfg).unwrap()), Arc::new(KafkaWorkerQueue::connect(&cfg).unwrap()));
    let (stop_a, sa) = stopper();
    let (stop_b, sb) = stopper();
    let ra = tokio::spawn(worker::run(a.clone(), fx.context("a"), RunOptions::default(), sa));
    let rb = tokio::spawn(worker::run(b.clone(), fx.context("b"), RunOptions::default(), sb));
    wait_until("both members to own partitions", || a.assigned_partitions() > 0 && b.assigned_partitions() > 0).await;
    assert_eq!(a.assigned_partitions() + b.assigned_partitions(), 4);

    let submitter = KafkaSubmitter::connect(&cfg, true).unwrap();
    let mut rx = submitter.subscribe();
    let ids: Vec<String> = (0..40).map(|i| format!("share-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        submitter.submit(&job(id, &models[i % 8]), None).await.unwrap();
    }
    let got = collect(&mut rx, &ids, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 40, "every job answered");
    let by_a = got.values().filter(|r| r[0].worker == "a").count();
    let by_b = got.values().filter(|r| r[0].worker == "b").count();
    assert!(by_a > 0 && by_b > 0, "a answered {by_a}, b answered {by_b}");
    assert!(got.values().all(|r| r[0].status() == Status::Done));
    let _ = (stop_a.send(()), stop_b.send(()));
    ra.await.unwrap();
    rb.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_for_a_few_seconds_delays_jobs_but_loses_none() {
    let (c, cfg) = mock_cluster("outage");
    let fx = Fixture::new();
    let ring = fx.put(sample()).await;
    let q = Arc::new(KafkaWorkerQueue::connect(&cfg).unwrap());
    let (stop, s) = stopper();
    let run = tokio::spawn(worker::run(q.clone(), fx.context("w"), RunOptions::default(), s));
    wait_until("the worker to own partitions", || q.assigned_partitions() > 0).await;
    let submitter = KafkaSubmitter::connect(&cfg, true).unwrap();
    let mut rx = submitter.subscribe();

    c.broker_down(1).unwrap();
    let ids: Vec<String> = (0..10).map(|i| format!("outage-{i}")).collect();
    let sends = {
        let ids = ids.clone();
        let ring = ring.clone();
        tokio::spawn(async move {
            for id in &ids {
                submitter.submit(&job(id, &ring), None).await.unwrap();
            }
            submitter
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.broker_up(1).unwrap();
    let _submitter = sends.await.unwrap();
    let got = collect(&mut rx, &ids, Duration::from_secs(90)).await;
    assert_eq!(got.len(), 10, "all jobs answered after the outage: {:?}", got.keys());
    assert!(got.values().all(|r| r[0].status() == Status::Done));
    let _ = stop.send(());
    run.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dropped_mid_job_has_its_jobs_finished_by_another() {
    let (_c, cfg) = mock_cluster("handover");
    let fx = Fixture::new();
    let ring = fx.put(sample()).await;
    let submitter = KafkaSubmitter::connect(&cfg, true).unwrap();
    let mut rx = submitter.subscribe();
    let ids: Vec<String> = (0..6).map(|i| format!("handover-{i}")).collect();

    // Worker A takes jobs and dies before finishing any: it never acknowledges, so nothing is committed.
    let a = KafkaWorkerQueue::connect(&cfg).unwrap();
    for id in &ids {
        submitter.submit(&job(id, &ring), None).await.unwrap();
    }
    let mut taken = 0;
    while taken < ids.len() {
        match tokio::time::timeout(Duration::from_secs(30), a.next()).await {
            Ok(Ok(Some(_))) => taken += 1,
            other => panic!("worker A got no job: {other:?}"),
        }
    }
    drop(a);

    let b = Arc::new(KafkaWorkerQueue::connect(&cfg).unwrap());
    let (stop, s) = stopper();
    let run = tokio::spawn(worker::run(b, fx.context("b"), RunOptions::default(), s));
    let got = collect(&mut rx, &ids, Duration::from_secs(90)).await;
    assert_eq!(got.len(), ids.len(), "every job A took was redelivered and finished: {:?}", got.keys());
    assert!(got.values().all(|r| r[0].worker == "b" && r[0].status() == Status::Done));
    let _ = stop.send(());
    run.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_delivered_twice_gets_one_answer() {
    let (_c, cfg) = mock_cluster("twice");
    let fx = Fixture::new();
    let ring = fx.put(sample()).await;
    let q = Arc::new(KafkaWorkerQueue::connect(&cfg).unwrap());
    let (stop, s) = stopper();
    let run = tokio::spawn(worker::run(q, fx.context("w"), RunOptions { concurrency: 1, ..Default::default() }, s));
    let submitter = KafkaSubmitter::connect(&cfg, true).unwrap();
    let mut rx = submitter.subscribe();
    let j = job("twice", &ring);
    submitter.submit(&j, None).await.unwrap();
    submitter.submit(&j, None).await.unwrap();
    submitter.submit(&job("marker", &ring), None).await.unwrap();
    // The marker comes after both copies in the same partition (same model key), so both have been answered.
    let mut got = collect(&mut rx, &["marker".to_owned()], Duration::from_secs(60)).await;
    while got.get("twice").map_or(0, Vec::len) < 2 {
        let r = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap().unwrap();
        if r.is_final() {
            got.entry(r.job_id.clone()).or_default().push(r);
        }
    }
    let answers = &got["twice"];
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0], answers[1], "the redelivered job got the very same answer");
    let _ = stop.send(());
    run.await.unwrap();
}
