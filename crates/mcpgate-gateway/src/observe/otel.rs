//! The OTLP trace exporter (gRPC or HTTP/protobuf), built from `telemetry.otlp`. Spans go
//! through a bounded queue to one background export task: a request never waits for the
//! exporter, a full queue drops the span and counts it (`mcpgate_trace_spans_dropped_total`),
//! and a broken endpoint only fails exports (`mcpgate_trace_export_failures_total`).
//!
//! Export headers may hold secrets: they are read from the config and never logged.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

use super::series::{Series, bump};
use crate::config::{OtlpConfig, OtlpProtocol};

/// The running exporter. Keep it for the life of the process; [`Telemetry::flush`] at exit.
pub struct Telemetry {
    pub provider: SdkTracerProvider,
    pub tracer: SdkTracer,
    flush: mpsc::Sender<oneshot::Sender<()>>,
}

impl Telemetry {
    /// Starts the exporter (inside a tokio runtime). Errors name the key.
    pub fn start(cfg: &OtlpConfig, series: Arc<Series>, http: reqwest::Client) -> Result<Self, String> {
        let mut exporter = match cfg.protocol {
            OtlpProtocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in &cfg.headers {
                    let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| format!("telemetry.otlp.headers.{k}: not a header name"))?;
                    let value = v.expose().parse().map_err(|_| format!("telemetry.otlp.headers.{k}: not a header value"))?;
                    metadata.insert(key, value);
                }
                let mut b =
                    opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(&cfg.endpoint).with_timeout(cfg.timeout).with_metadata(metadata);
                if cfg.endpoint.starts_with("https://") {
                    b = b.with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
                }
                b.build().map_err(|e| format!("telemetry.otlp: {e}"))?
            }
            OtlpProtocol::Http => {
                let headers = cfg.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect();
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(&cfg.endpoint)
                    .with_timeout(cfg.timeout)
                    .with_http_client(http)
                    .with_headers(headers)
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .build()
                    .map_err(|e| format!("telemetry.otlp: {e}"))?
            }
        };
        let mut resource = Resource::builder();
        if !cfg.resource.contains_key("service.name") {
            resource = resource.with_service_name("mcpgate");
        }
        let resource = resource.with_attributes(cfg.resource.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone()))).build();
        exporter.set_resource(&resource);
        let (tx, rx) = mpsc::channel(cfg.queue_size.max(1));
        let (flush, flushes) = mpsc::channel(1);
        tokio::spawn(export_loop(exporter, rx, flushes, cfg.batch_size.max(1), cfg.export_interval, series.clone()));
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sampling_ratio)));
        let provider = SdkTracerProvider::builder().with_span_processor(Bounded { tx, series }).with_sampler(sampler).with_resource(resource).build();
        let tracer = provider.tracer("mcpgate");
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        super::trace::set_enabled(true);
        Ok(Self { provider, tracer, flush })
    }

    /// Exports what is queued (at exit), waiting at most `limit`.
    pub async fn flush(&self, limit: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.flush.send(tx).await.is_ok() {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }
}

/// Hands ended spans to the export task without ever waiting.
#[derive(Debug)]
struct Bounded {
    tx: mpsc::Sender<SpanData>,
    series: Arc<Series>,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            bump(&self.series.spans_dropped);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
    batch_size: usize,
    interval: Duration,
    series: Arc<Series>,
) {
    let mut batch = Vec::with_capacity(batch_size);
    let mut tick = tokio::time::interval(interval);
    loop {
        let mut done = None;
        tokio::select! {
            span = rx.recv() => match span {
                Some(s) => {
                    batch.push(s);
                    while batch.len() < batch_size {
                        match rx.try_recv() {
                            Ok(s) => batch.push(s),
                            Err(_) => break,
                        }
                    }
                    if batch.len() < batch_size {
                        continue;
                    }
                }
                None => return,
            },
            _ = tick.tick() => {}
            f = flushes.recv() => {
                while let Ok(s) = rx.try_recv() {
                    batch.push(s);
                }
                done = f;
            }
        }
        if !batch.is_empty() {
            let spans = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
            if let Err(e) = exporter.export(spans).await {
                bump(&series.span_exports_failed);
                tracing::debug!("trace export failed: {e}");
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}
