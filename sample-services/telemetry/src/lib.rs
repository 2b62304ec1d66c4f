//! OpenTelemetry for Hopline's sample services: one call sets up traces and logs over
//! OTLP, and small helpers carry W3C trace context over HTTP, gRPC and AMQP.
//!
//! - [`init`] reads the standard `OTEL_*` variables, installs a `tracing` subscriber
//!   whose spans become OpenTelemetry spans and whose events become OTLP log records
//!   (carrying the trace and span id of the span they happen in), and returns a guard
//!   whose [`TelemetryGuard::shutdown`] flushes both.
//! - [`http`]: an axum middleware that continues an incoming `traceparent` in a server
//!   span, [`http::inject`] for outgoing requests, and [`http::error_response`], the
//!   services' JSON error answer.
//! - [`grpc`]: a tonic client interceptor and the server-side extraction.
//! - [`amqp`]: trace context in AMQP message headers, both ways, and the queue topology.
//! - [`db`]: a service's own SQLite database, every statement in a `db.*` client span.
//! - [`env_or`]: configuration from the environment with documented defaults.

use std::collections::HashMap;

use anyhow::{bail, Context as _};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{LogExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;

pub mod amqp;
pub mod db;
pub mod grpc;
pub mod http;

/// Where telemetry goes when `OTEL_EXPORTER_OTLP_ENDPOINT` is not set: Hopline's
/// OTLP/HTTP port on this machine (its gRPC port with
/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";

/// Flushes and stops the exporters; call it before the process exits.
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
    logger_provider: SdkLoggerProvider,
}

impl TelemetryGuard {
    pub fn shutdown(self) {
        if let Err(e) = self.tracer_provider.shutdown() {
            eprintln!("telemetry: flushing spans failed: {e}");
        }
        if let Err(e) = self.logger_provider.shutdown() {
            eprintln!("telemetry: flushing logs failed: {e}");
        }
    }
}

/// A service's `main`: sets up telemetry, runs `service`, logs its error if it fails,
/// and flushes spans and logs on the way out.
pub async fn run<F>(
    service_name: &str,
    version: &str,
    service: impl FnOnce() -> F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let guard = init(service_name, version)?;
    let result = service().await;
    if let Err(e) = &result {
        tracing::error!("{e:#}");
    }
    guard.shutdown();
    result
}

/// Sets up traces and logs export for a service. `service_name` is used unless
/// `OTEL_SERVICE_NAME` says otherwise; `version` becomes `service.version`.
pub fn init(service_name: &str, version: &str) -> anyhow::Result<TelemetryGuard> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let service_name = env
        .get("OTEL_SERVICE_NAME")
        .cloned()
        .unwrap_or_else(|| service_name.to_string());
    let protocol = match env.get("OTEL_EXPORTER_OTLP_PROTOCOL").map(String::as_str) {
        None | Some("") | Some("http/protobuf") => Transport::HttpProtobuf,
        Some("grpc") => Transport::Grpc,
        Some(other) => {
            bail!("OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported here: use http/protobuf or grpc")
        }
    };
    let endpoint = env
        .get("OTEL_EXPORTER_OTLP_ENDPOINT")
        .cloned()
        .unwrap_or_else(|| protocol.default_endpoint().to_string());
    let endpoint = endpoint.trim_end_matches('/').to_string();
    let host = hostname();
    let resource = Resource::builder_empty()
        .with_service_name(service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", version.to_string()),
            KeyValue::new(
                "service.instance.id",
                format!("{host}-{}", std::process::id()),
            ),
            KeyValue::new("host.name", host),
        ])
        .build();
    let (tracer_provider, logger_provider) = providers(protocol, &endpoint, resource)?;

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    let tracer = tracer_provider.tracer(service_name.clone());

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // What is exported: our own crates' spans and events, not the HTTP and AMQP
    // clients' internals (which would also report on the export itself).
    let export_filter = EnvFilter::new("info,h2=off,hyper=off,hyper_util=off,reqwest=off,tonic=off,tower=off,lapin=warn,amq_protocol=warn");
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
        )
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // Semantic-convention attributes only: no source locations, threads or timings.
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(export_filter.clone()),
        )
        .with(OpenTelemetryTracingBridge::new(&logger_provider).with_filter(export_filter))
        .try_init()
        .context("cannot install the tracing subscriber")?;
    tracing::info!(service = %service_name, %endpoint, protocol = protocol.name(), "exporting traces and logs over OTLP");
    Ok(TelemetryGuard {
        tracer_provider,
        logger_provider,
    })
}

/// How the services export: `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    HttpProtobuf,
    Grpc,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::HttpProtobuf => "http/protobuf",
            Transport::Grpc => "grpc",
        }
    }

    fn default_endpoint(self) -> &'static str {
        match self {
            Transport::HttpProtobuf => DEFAULT_ENDPOINT,
            Transport::Grpc => DEFAULT_GRPC_ENDPOINT,
        }
    }
}

/// The tracer and logger providers exporting to `endpoint`. OTLP/HTTP uses the
/// SDK's batch processors, which export from a thread of their own with a blocking
/// HTTP client; gRPC (tonic) needs the tokio runtime, so its batches are exported
/// by the runtime's variant of the processors.
fn providers(
    transport: Transport,
    endpoint: &str,
    resource: Resource,
) -> anyhow::Result<(SdkTracerProvider, SdkLoggerProvider)> {
    let traces = SdkTracerProvider::builder().with_resource(resource.clone());
    let logs = SdkLoggerProvider::builder().with_resource(resource);
    Ok(match transport {
        Transport::HttpProtobuf => {
            let spans = SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{endpoint}/v1/traces"))
                .build()
                .context("cannot build the OTLP span exporter")?;
            let records = LogExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{endpoint}/v1/logs"))
                .build()
                .context("cannot build the OTLP log exporter")?;
            (
                traces.with_batch_exporter(spans).build(),
                logs.with_batch_exporter(records).build(),
            )
        }
        Transport::Grpc => {
            use opentelemetry_sdk::logs::log_processor_with_async_runtime::BatchLogProcessor;
            use opentelemetry_sdk::runtime::Tokio;
            use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
            let spans = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .context("cannot build the OTLP/gRPC span exporter")?;
            let records = LogExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .context("cannot build the OTLP/gRPC log exporter")?;
            (
                traces
                    .with_span_processor(BatchSpanProcessor::builder(spans, Tokio).build())
                    .build(),
                logs.with_log_processor(BatchLogProcessor::builder(records, Tokio).build())
                    .build(),
            )
        }
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The OpenTelemetry context of the current `tracing` span.
pub fn current_context() -> Context {
    tracing::Span::current().context()
}

/// Injects the current span's `traceparent`/`tracestate` through `injector`.
pub fn inject_current(injector: &mut dyn Injector) {
    TraceContextPropagator::new().inject_context(&current_context(), injector);
}

/// Reads a remote parent from `traceparent`/`tracestate`.
pub fn extract(extractor: &dyn Extractor) -> Context {
    TraceContextPropagator::new().extract(extractor)
}

struct PairsExtractor<'a>(&'a [(String, String)]);

impl Extractor for PairsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Reads a remote parent from `(name, value)` pairs, such as a queued message's headers.
pub fn extract_pairs(pairs: &[(String, String)]) -> Context {
    extract(&PairsExtractor(pairs))
}

/// Marks the current span as failed, with a description (`otel.status_code=ERROR`).
pub fn mark_error(span: &tracing::Span, description: impl Into<String>) {
    span.set_status(opentelemetry::trace::Status::error(description.into()));
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio_ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    ctrl_c.await;
}

async fn tokio_ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

/// A setting from the environment, or its default.
pub fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}
