//! W3C trace context, in and out, and the spans of a request. All of it is off (one relaxed
//! load per check) unless `telemetry.otlp` is configured: then a request gets a span, a valid
//! client `traceparent` becomes its parent (a malformed one is ignored: a new trace), and the
//! context goes to backends (Streamable HTTP), Vault and the IdP.
//!
//! Spans carry names, kinds and decisions; never a token, a credential or a header value.

use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Spans are made and exported (set once the exporter is running).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Every span of the request path has this target, so an exporter layer can take them alone.
pub const TARGET: &str = "mcpgate::otel";

pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The request's span: `mcp.request` (server kind), its parent taken from a valid client
/// `traceparent`. `Span::none()` when tracing is off.
pub fn request_span(headers: &HeaderMap) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        "mcp.request",
        otel.name = "mcp.request",
        otel.kind = "server",
        mcp.method.name = tracing::field::Empty,
        mcp.protocol.era = tracing::field::Empty,
        jsonrpc.request.id = tracing::field::Empty,
        gen_ai.tool.name = tracing::field::Empty,
        mcp.server = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// A child span of the current one (`authenticate`, `authorize`, `credential`,
/// `upstream`), or `Span::none()` when tracing is off.
#[macro_export]
macro_rules! stage_span {
    ($name:literal $(, $($fields:tt)*)?) => {
        if $crate::observe::trace::enabled() {
            tracing::info_span!(target: "mcpgate::otel", $name, otel.name = $name $(, $($fields)*)?)
        } else {
            tracing::Span::none()
        }
    };
}

/// The current trace's id (hex), when tracing is on and a span is current.
pub fn current_trace_id() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The current trace's and span's ids (hex), for log lines.
pub fn current_ids() -> Option<(String, String)> {
    if !enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// The current span's trace context as headers for a backend request (`None` when off).
pub fn outbound() -> Option<HeaderMap> {
    if !enabled() {
        return None;
    }
    let mut h = HeaderMap::new();
    mcpgate_credentials::inject_trace_context(&mut h);
    (!h.is_empty()).then_some(h)
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
