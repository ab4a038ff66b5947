//! What a process reports about itself: logs (JSON lines with the field names Elasticsearch/ECS users expect, or
//! human-readable on a terminal) and the Prometheus recorder. Only the binary installs these; the libraries
//! record through the `tracing` and `metrics` facades.

use std::fmt;
use std::io::IsTerminal;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// JSON when standard error is not a terminal, text when it is.
    Auto,
    /// One JSON object per line (ECS field names).
    Json,
    /// Human-readable lines.
    Text,
}

/// What must outlive the program's work: the span exporter, flushed when this is dropped.
pub(crate) struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("warning: spans not all exported at exit: {e}");
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// An OTLP span exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, configured by the
/// standard variables: `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `grpc`),
/// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_SDK_DISABLED`.
fn tracer_provider(service: &str) -> anyhow::Result<Telemetry> {
    use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    let off = Telemetry { provider: None, runtime: None };
    if env("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")).is_none()
        || env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none")
    {
        return Ok(off);
    }
    let mut resource = opentelemetry_sdk::Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    let resource = resource.build();
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into());
    match protocol.as_str() {
        "http/protobuf" => {
            let exporter = SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()
                .context("the OTLP/HTTP span exporter")?;
            // The batch processor exports from a thread of its own, with a blocking HTTP client.
            let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
            Ok(Telemetry { provider: Some(provider), runtime: None })
        }
        "grpc" => {
            // tonic needs a tokio runtime: one small runtime of its own, so export never competes with the
            // service's runtime and outlives it until the final flush.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-export")
                .enable_all()
                .build()
                .context("the OTLP export runtime")?;
            let provider = {
                let _inside = runtime.enter();
                let exporter = SpanExporter::builder().with_tonic().build().context("the OTLP/gRPC span exporter")?;
                let processor =
                    opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                        exporter,
                        opentelemetry_sdk::runtime::Tokio,
                    )
                    .build();
                SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build()
            };
            Ok(Telemetry { provider: Some(provider), runtime: Some(runtime) })
        }
        other => anyhow::bail!("OTEL_EXPORTER_OTLP_PROTOCOL \"{other}\" is not supported: use http/protobuf or grpc"),
    }
}

/// Installs the log subscriber and, when configured, the OpenTelemetry span exporter. `service` names the
/// process (`OTEL_SERVICE_NAME` overrides it).
pub(crate) fn init(format: LogFormat, service: &str) -> anyhow::Result<Telemetry> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASSAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let name = env("OTEL_SERVICE_NAME").unwrap_or(service.to_owned());
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(JsonFields::new())
            .event_format(Ecs { service: name })
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter).boxed()
    };
    let telemetry = tracer_provider(service)?;
    // Spans of assay's own crates only, whatever ASSAY_LOG says: the exporter's HTTP client must not trace itself.
    let spans = telemetry.provider.as_ref().map(|p| {
        let targets = tracing_subscriber::filter::Targets::new()
            .with_target("assay", tracing::Level::INFO)
            .with_target("gateway", tracing::Level::INFO)
            .with_target("worker", tracing::Level::INFO);
        tracing_opentelemetry::layer().with_tracer(p.tracer("assay")).with_filter(targets)
    });
    tracing_subscriber::registry().with(logs).with(spans).init();
    Ok(telemetry)
}

/// One JSON object per event: `@timestamp`, `log.level`, `log.logger`, `message`, `service.name`, the event's
/// fields, and the fields of the spans it happened in (such as `job.id` and `trace.id` of the job's span).
struct Ecs {
    service: String,
}

#[derive(Default)]
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for Ecs
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = serde_json::Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("@timestamp".into(), timestamp.into());
        line.insert("log.level".into(), event.metadata().level().as_str().to_ascii_lowercase().into());
        line.insert("log.logger".into(), event.metadata().target().into());
        line.insert("service.name".into(), self.service.clone().into());
        // Span fields, outermost first, so an inner span's value wins; then the event's own.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(fields) = ext.get::<FormattedFields<N>>() else { continue };
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(fields) {
                    line.extend(map);
                }
            }
        }
        // With OpenTelemetry on, the span the event happened in: its ids join the line to the trace in Jaeger.
        {
            use opentelemetry::trace::TraceContextExt as _;
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            let cx = tracing::Span::current().context();
            let sc = cx.span().span_context().clone();
            if sc.is_valid() && !sc.is_remote() {
                line.insert("trace.id".into(), sc.trace_id().to_string().into());
                line.insert("span.id".into(), sc.span_id().to_string().into());
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        line.extend(fields.0);
        // Span names and kinds for OpenTelemetry, not log fields.
        line.retain(|k, _| !k.starts_with("otel."));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Seconds, from a millisecond to ten minutes: fits stage times of small and very large models.
const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Bytes, from 1 KB to 1 GB.
const BYTES_BUCKETS: &[f64] = &[1e3, 1e4, 1e5, 1e6, 5e6, 1e7, 5e7, 1e8, 2.5e8, 5e8, 1e9];
/// Triangles, from a few hundred to the 10 M limit.
const TRIANGLE_BUCKETS: &[f64] = &[1e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7];

/// Installs the process-wide Prometheus recorder with histogram buckets (the exporter's default, summaries,
/// cannot be aggregated across pods).
pub(crate) fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_triangles".into()), TRIANGLE_BUCKETS))
        .context("histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    jobs::metric::describe_all();
    Ok(handle)
}

/// Renders the metrics for `/metrics`, running the exporter's upkeep first (it is not run for us when we serve
/// the text from our own route).
pub(crate) fn render(handle: PrometheusHandle) -> impl Fn() -> String + Send + Sync + 'static {
    move || {
        handle.run_upkeep();
        handle.render()
    }
}
