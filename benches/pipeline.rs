//! The pipeline's speed: jobs per second and submit-to-result latency (p50, p99) through the in-process queue, the
//! embedded SQLite queue of `assay serve`, librdkafka's mock cluster and (when installed) the tansu broker, with 1 and 2
//! workers, for a small and a large model, each repeated (the geometry cache answers) and as distinct models (every job
//! parses).
//!
//! `cargo bench --bench pipeline` prints a Markdown table. Jobs are submitted in one burst; latency includes the
//! wait in the queue. Workers here are run loops inside this process (each with its own cache, as separate
//! processes would have), so the numbers are the pipeline's, not process start-up's.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::protocol::Options;
use jobs::{InProcessQueue, Job, ModelRef, Submitter, WorkerQueue};
use model_store::StoredModel;
use queue_kafka::KafkaConfig;
use rdkafka::mocking::MockCluster;
use worker::RunOptions;

struct Case {
    name: &'static str,
    models: Vec<StoredModel>,
    jobs: usize,
}

struct Row {
    transport: String,
    workers: usize,
    case: &'static str,
    jobs: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rules() -> pricing_rules::Rules {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    pricing_rules::Rules::Fixed(Arc::new(pricing_rules::RuleSet::load_dir(&dir).expect("rules")))
}

/// Submits a case's jobs in one burst and waits for all results, at most two minutes; `None` when they did not
/// all arrive in that time.
async fn measure<S: Submitter>(submitter: &S, case: &Case, tag: &str) -> Option<(f64, Vec<f64>)> {
    let mut rx = submitter.subscribe();
    let mut sent = HashMap::new();
    let start = Instant::now();
    for i in 0..case.jobs {
        let m = &case.models[i % case.models.len()];
        let mut job = Job::new(
            format!("{tag}-{i}"),
            ModelRef { key: m.key.clone(), sha256: m.sha256.clone(), format: None },
            Options { alloys: vec!["18k-yellow".into()], ..Options::default() },
            Duration::from_secs(600),
        );
        job.deadline_ms = None;
        sent.insert(job.job_id.clone(), Instant::now());
        submitter.submit(&job, None).await.expect("submit");
    }
    let mut latencies = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while latencies.len() < case.jobs {
        let r = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => r,
            _ => return None,
        };
        if !r.is_final() {
            continue;
        }
        if let Some(t) = sent.remove(&r.job_id) {
            assert!(r.outcome.error().is_none(), "{:?}", r.outcome);
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Some((case.jobs as f64 / elapsed, latencies))
}

/// Every case with 1 and 2 workers on a transport that lives in this process (both of its sides are one value).
async fn local_rows<Q: WorkerQueue + Submitter>(
    transport: &str,
    q: Arc<Q>,
    cases: &[Case],
    store: &model_store::ModelStore,
    rows: &mut Vec<Row>,
) {
    for workers in [1, 2] {
        for case in cases {
            let qq = q.clone();
            let connect = || {
                let q = qq.clone();
                async move { q }
            };
            run_case(transport, workers, case, store, connect, &*q, |_| true, rows).await;
        }
    }
}

#[allow(clippy::too_many_arguments, reason = "a benchmark driver: each argument is one axis of the table")]
async fn run_case<Q: WorkerQueue, S: Submitter, F: Future<Output = Arc<Q>>>(
    transport: &str,
    workers: usize,
    case: &Case,
    store: &model_store::ModelStore,
    connect: impl Fn() -> F,
    submitter: &S,
    wait_ready: impl Fn(&[Arc<Q>]) -> bool,
    rows: &mut Vec<Row>,
) {
    let mut stops = Vec::new();
    let mut handles = Vec::new();
    let mut queues = Vec::new();
    for w in 0..workers {
        let q = connect().await;
        queues.push(q.clone());
        let ctx = Arc::new(worker::Context::new(&format!("w{w}"), store.clone(), rules()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        handles.push(tokio::spawn(worker::run(q, ctx, RunOptions::default(), async {
            let _ = rx.await;
        })));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !wait_ready(&queues) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Job ids allow [A-Za-z0-9_-] only.
    let tag: String = format!("{transport}-{workers}-{}-{}", case.name, jobs::now_ms())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    eprintln!("{transport}, {workers} worker(s): {}", case.name);
    let (per_second, lat) = measure(submitter, case, &tag).await.unwrap_or((f64::NAN, Vec::new()));
    rows.push(Row {
        transport: transport.to_owned(),
        workers,
        case: case.name,
        jobs: case.jobs,
        per_second,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    });
    for s in stops {
        let _ = s.send(());
    }
    for h in handles {
        let _ = h.await;
    }
}

#[path = "../tests/support/tansu.rs"]
mod tansu;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; this benchmark has no tests
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = model_store::ModelStore::from_url(&dir.path().display().to_string()).expect("store");
        let sample = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/pixelverse_ring.stl"))
            .expect("sample");
        let small = store.put(sample.into()).await.expect("put");
        let mut small_distinct = Vec::new();
        for i in 0..100 {
            let band = models::synth::ring_band(9.0 + f64::from(i) * 0.001, 11.0, 3.0, 120, 48); // 11,520 triangles
            small_distinct.push(store.put(models::to_binary_stl(&band).into()).await.expect("put"));
        }
        let mut large = Vec::new();
        for i in 0..8 {
            let band = models::synth::ring_band(9.0 + f64::from(i) * 0.001, 11.0, 3.0, 1000, 250); // 500,000 triangles
            large.push(store.put(models::to_binary_stl(&band).into()).await.expect("put"));
        }
        let cases = [
            Case { name: "small (11k triangles), repeated", models: vec![small.clone()], jobs: 200 },
            Case { name: "small (11k triangles), distinct", models: small_distinct, jobs: 100 },
            Case { name: "large (500k triangles), repeated", models: vec![large[0].clone()], jobs: 16 },
            Case { name: "large (500k triangles), distinct", models: large, jobs: 8 },
        ];
        let mut rows = Vec::new();

        local_rows("in-process", Arc::new(InProcessQueue::default()), &cases, &store, &mut rows).await;
        // The embedded durable queue `assay serve` runs on: every job and result committed to a SQLite file.
        let db = queue_sqlite::SqliteConfig::in_dir(&dir.path().join("db"));
        let q = Arc::new(queue_sqlite::SqliteQueue::open(db).expect("db"));
        local_rows("embedded (SQLite)", q, &cases, &store, &mut rows).await;

        let cluster = MockCluster::new(1).expect("mock cluster");
        let brokers: Vec<(&str, String)> = {
            let mut b = vec![("mock cluster", cluster.bootstrap_servers())];
            if let Some(t) = tansu::installed().filter(|_| std::env::var_os("ASSAY_BENCH_NO_TANSU").is_none()) {
                let broker = tansu::start(&t, dir.path());
                b.push(("tansu broker", broker.bootstrap.clone()));
                std::mem::forget(broker); // runs until this process ends
            } else {
                eprintln!("tansu is not installed: broker rows skipped (scripts/install-tansu.sh)");
            }
            b
        };
        for (name, bootstrap) in brokers {
            for workers in [1, 2] {
                for (c, case) in cases.iter().enumerate() {
                    // A fresh group and topics per run, so no run inherits another's backlog.
                    let mut cfg = KafkaConfig::new(&bootstrap);
                    let suffix = format!("{}-{workers}-{c}", name.replace(' ', "-"));
                    cfg.jobs_topic = format!("bench.jobs.{suffix}");
                    cfg.results_topic = format!("bench.results.{suffix}");
                    cfg.dlq_topic = format!("bench.dlq.{suffix}");
                    cfg.deliveries_topic = format!("bench.deliveries.{suffix}");
                    cfg.group_id = format!("bench-{suffix}");
                    cfg.partitions = 4;
                    cfg.session_timeout_ms = 6000;
                    if name == "mock cluster" {
                        queue_kafka::create_mock_topics(&cluster, &cfg, 4).expect("topics");
                    } else {
                        queue_kafka::ensure_topics(&cfg).await.expect("topics");
                    }
                    let submitter = queue_kafka::KafkaSubmitter::connect(&cfg, true).expect("submitter");
                    let c2 = cfg.clone();
                    run_case(
                        name,
                        workers,
                        case,
                        &store,
                        || {
                            let cfg = c2.clone();
                            async move { Arc::new(queue_kafka::KafkaWorkerQueue::connect(&cfg).expect("connect")) }
                        },
                        &submitter,
                        |qs: &[Arc<queue_kafka::KafkaWorkerQueue>]| qs.iter().all(|q| q.assigned_partitions() > 0),
                        &mut rows,
                    )
                    .await;
                }
            }
        }

        // NaN: not every result arrived within two minutes.
        println!("| transport | workers | jobs | jobs/s | p50 latency (ms) | p99 latency (ms) |");
        println!("|---|---|---|---|---|---|");
        for r in rows {
            println!(
                "| {} | {} | {} × {} | {:.1} | {:.1} | {:.1} |",
                r.transport, r.workers, r.jobs, r.case, r.per_second, r.p50_ms, r.p99_ms
            );
        }
        println!(
            "\n{} cores; each worker runs {} jobs at once; jobs submitted in one burst.",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            RunOptions::default().concurrency
        );
    });
}
