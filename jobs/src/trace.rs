//! W3C trace context as the job carries it (`traceparent`), turned into OpenTelemetry contexts and back, so a
//! quote stays one trace across the gateway, the queue and the worker.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};

/// The span context a `traceparent` (`00-<trace id>-<span id>-<flags>`) names, as a remote parent.
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let [version, trace, span, flags] = parts[..] else { return None };
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok().filter(|t| *t != TraceId::INVALID)?;
    let span = SpanId::from_hex(span).ok().filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(trace, span, TraceFlags::new(flags), true, TraceState::default()))
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id(traceparent: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = traceparent?.split('-').collect();
    (parts.len() == 4 && parts[1].len() == 32 && parts[1].bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| parts[1].to_owned())
}

/// A `traceparent` that starts a new, sampled trace.
pub fn new_traceparent() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

/// The `traceparent` of a span context, when it is valid.
pub fn format(cx: &SpanContext) -> Option<String> {
    cx.is_valid().then(|| format!("00-{}-{}-{:02x}", cx.trace_id(), cx.span_id(), cx.trace_flags().to_u8()))
}

/// An OpenTelemetry context whose parent is the `traceparent`'s span (empty when there is none).
pub fn context(traceparent: Option<&str>) -> opentelemetry::Context {
    match traceparent.and_then(parse) {
        Some(sc) => opentelemetry::Context::new().with_remote_span_context(sc),
        None => opentelemetry::Context::new(),
    }
}

/// The `traceparent` of a `tracing` span, when an OpenTelemetry layer gives it one.
pub fn of_span(span: &tracing::Span) -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    format(&span.context().span().span_context().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let sc = parse(tp).expect("valid");
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(format(&sc).as_deref(), Some(tp));
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-xyz-b7ad6b7169203331-01",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
