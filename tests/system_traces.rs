//! One quote, one trace: an OTLP receiver in this test (OTLP/HTTP, and once OTLP/gRPC) decodes what `assay
//! serve`, and then `assay gateway` with `assay worker` over a broker, export; the spans must form the trace the
//! messaging conventions describe: the HTTP server span, its child `send assay.quote-jobs` (producer), whose
//! child `process assay.quote-jobs` (consumer, also linked to it) has the children fetch, parse, analyze, price
//! and `send assay.quote-results`; the poll that delivers the result adds `deliver quote` under the send span.
//! The trace id is the result's `trace_id`.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

#[path = "support/http.rs"]
mod http;
#[path = "support/tansu.rs"]
mod tansu;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{request, root, wait_final, Proc};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;

#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    kind: i32,
    trace: String,
    id: String,
    parent: String,
    links: Vec<String>,
    attributes: HashMap<String, String>,
}

const SERVER: i32 = 2;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// Keeps the spans of one export request.
fn collect(req: ExportTraceServiceRequest, sink: &Mutex<Vec<Span>>) {
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(&a.value))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                sink.lock().unwrap().push(Span {
                    service: service.clone(),
                    name: s.name,
                    kind: s.kind,
                    trace: hex(&s.trace_id),
                    id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    links: s.links.iter().map(|l| hex(&l.span_id)).collect(),
                    attributes: s.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect(),
                });
            }
        }
    }
}

/// An OTLP/HTTP receiver on a loopback port: every span it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                collect(ExportTraceServiceRequest::decode(body).unwrap(), &sink);
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

/// An OTLP/gRPC receiver (the collector's trace service) on a loopback port.
async fn grpc_receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    struct Receiver(Arc<Mutex<Vec<Span>>>);
    #[tonic::async_trait]
    impl TraceService for Receiver {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            collect(request.into_inner(), &self.0);
            Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
        }
    }
    let spans = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // tonic's routes as an axum router, served over HTTP/2 cleartext as OTLP/gRPC clients speak it.
    let router = tonic::service::Routes::new(TraceServiceServer::new(Receiver(spans.clone()))).into_axum_router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), spans)
}

fn otel(cmd: &mut Command, endpoint: &str) {
    otel_with(cmd, endpoint, "http/protobuf");
}

fn otel_with(cmd: &mut Command, endpoint: &str, protocol: &str) {
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env_remove("OTEL_SERVICE_NAME");
}

/// Submits the sample ring and returns the final result.
fn quote(addr: &str) -> serde_json::Value {
    let ring = std::fs::read(root().join("samples/pixelverse_ring.stl")).unwrap();
    let r = request(addr, "POST", "/v1/quotes?alloy=pt950", &[("Content-Type", "model/stl")], &ring);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    wait_final(addr, r.json()["job_id"].as_str().unwrap(), &[], Duration::from_secs(60))
}

/// Checks the trace's shape; returns its spans by name.
fn check_trace(spans: &[Span], trace: &str, system: &str) -> HashMap<String, Span> {
    let mine: Vec<&Span> = spans.iter().filter(|s| s.trace == trace).collect();
    let by_name: HashMap<String, Span> = mine.iter().map(|s| (s.name.clone(), (*s).clone())).collect();
    let get = |n: &str| by_name.get(n).unwrap_or_else(|| panic!("no span {n:?} in trace {trace}: {mine:#?}"));
    let server = get("POST /v1/quotes");
    let send = get("send assay.quote-jobs");
    let process = get("process assay.quote-jobs");
    let result = get("send assay.quote-results");
    assert_eq!((server.kind, send.kind, process.kind, result.kind), (SERVER, PRODUCER, CONSUMER, PRODUCER));
    assert_eq!(server.attributes["http.route"], "/v1/quotes");
    assert_eq!(server.attributes["http.response.status_code"], "202");
    assert_eq!(send.parent, server.id, "the job is sent inside the request");
    assert_eq!(process.parent, send.id, "the consumer span is the producer's child");
    assert_eq!(process.links, vec![send.id.clone()], "and linked to it");
    assert_eq!(result.parent, process.id);
    let deliver = get("deliver quote");
    assert_eq!(deliver.parent, send.id, "the poll that delivered the result is in the quote's trace");
    assert_eq!(deliver.attributes["assay.delivery"], "poll");
    assert_eq!(deliver.links.len(), 1, "linked to the poll's own request span");
    for stage in ["fetch", "parse", "analyze", "price"] {
        assert_eq!(get(stage).parent, process.id, "{stage} is a child of the process span");
    }
    for s in [send, process, result] {
        assert_eq!(s.attributes["messaging.system"], system, "{}", s.name);
    }
    assert_eq!(process.attributes["messaging.destination.name"], "assay.quote-jobs");
    assert_eq!(process.attributes["assay.job_id"], send.attributes["assay.job_id"]);
    assert_eq!(process.attributes["assay.model_sha256"].len(), 64);
    assert_eq!(process.attributes["assay.triangles"], "11422");
    assert_eq!(process.attributes["assay.rules_version"].len(), 64);
    by_name
}

fn wait_for_spans(spans: &Mutex<Vec<Span>>, trace: &str, want: usize) {
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while spans.lock().unwrap().iter().filter(|s| s.trace == trace).count() < want {
        assert!(std::time::Instant::now() < until, "spans of {trace} did not all arrive: {:#?}", spans.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn one_quote_through_serve_is_one_trace() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (endpoint, spans) = runtime.block_on(receiver());
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assay"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).arg("--data").arg(data.path()).current_dir(root());
    otel(&mut cmd, &endpoint);
    let log = data.path().join("serve.log");
    cmd.env("ASSAY_LOG_FORMAT", "json").stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let mut child = Proc(cmd.stdout(Stdio::piped()).spawn().unwrap());
    let (addr, _out) = http::listening_address(&mut child);
    let result = quote(&addr);
    let trace = result["trace_id"].as_str().unwrap().to_owned();
    assert!(http::terminate(&mut child, Duration::from_secs(30)).success());
    // The log line of the finished job names the trace and the span it was written in.
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let done = lines.iter().find(|l| l["message"] == "job done").expect("a job done line");
    assert_eq!(done["trace.id"], trace.as_str());
    assert_eq!(done["span.id"].as_str().map(str::len), Some(16), "{done}");
    wait_for_spans(&spans, &trace, 9);
    let by_name = check_trace(&spans.lock().unwrap(), &trace, "in_process");
    assert!(by_name.values().all(|s| s.service == "assay"), "{by_name:#?}");
}

#[test]
fn spans_go_over_grpc_too() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (endpoint, spans) = runtime.block_on(grpc_receiver());
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assay"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).arg("--data").arg(data.path()).current_dir(root());
    otel_with(&mut cmd, &endpoint, "grpc");
    let mut child = Proc(cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let (addr, _out) = http::listening_address(&mut child);
    let trace = quote(&addr)["trace_id"].as_str().unwrap().to_owned();
    assert!(http::terminate(&mut child, Duration::from_secs(30)).success());
    wait_for_spans(&spans, &trace, 9);
    check_trace(&spans.lock().unwrap(), &trace, "in_process");
}

#[test]
fn one_quote_through_gateway_worker_and_the_mock_cluster_is_one_trace() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let cfg = queue_kafka::KafkaConfig::new(&bootstrap);
    // The mock cluster has no CreateTopics: the topics the processes would create.
    queue_kafka::create_mock_topics(&cluster, &cfg, 2).unwrap();
    scaled(&bootstrap);
}

#[test]
fn one_quote_through_gateway_worker_and_tansu_is_one_trace() {
    let Some(tansu) = tansu::for_test() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = tansu::start(&tansu, dir.path());
    scaled(&broker.bootstrap);
}

fn scaled(bootstrap: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (endpoint, spans) = runtime.block_on(receiver());
    let data = tempfile::tempdir().unwrap();
    let store = data.path().display().to_string();
    let spawn = |role: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_assay"));
        cmd.args(role).args(["--kafka", bootstrap, "--store", &store]).arg("--rules").arg(root().join("rules"));
        otel(&mut cmd, &endpoint);
        Proc(cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap())
    };
    let mut gw = spawn(&["gateway", "--listen", "127.0.0.1:0"]);
    let mut wk = spawn(&["worker", "--name", "traced"]);
    let (addr, out) = http::listening_address(&mut gw);
    std::thread::spawn(move || std::io::copy(&mut { out }, &mut std::io::sink()));
    let result = quote(&addr);
    let trace = result["trace_id"].as_str().unwrap().to_owned();
    for p in [&mut gw, &mut wk] {
        assert!(http::terminate(p, Duration::from_secs(60)).success());
    }
    wait_for_spans(&spans, &trace, 9);
    let by_name = check_trace(&spans.lock().unwrap(), &trace, "kafka");
    assert_eq!(by_name["POST /v1/quotes"].service, "assay-gateway");
    assert_eq!(by_name["send assay.quote-jobs"].service, "assay-gateway");
    let process = &by_name["process assay.quote-jobs"];
    assert_eq!(process.service, "assay-worker");
    assert_eq!(process.attributes["messaging.consumer.group.name"], "assay-workers");
    assert!(process.attributes["messaging.destination.partition.id"].parse::<i32>().is_ok(), "{process:?}");
    assert!(process.attributes["messaging.kafka.offset"].parse::<i64>().is_ok(), "{process:?}");
}
