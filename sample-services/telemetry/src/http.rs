//! HTTP: server spans that continue an incoming `traceparent`, injection into
//! outgoing `reqwest` requests, and the services' JSON error answer. Attribute names
//! follow the stable HTTP semantic conventions.

use std::collections::BTreeMap;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::Json;
use opentelemetry::propagation::{Extractor, Injector};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Adds the current span's trace context to outgoing headers.
pub fn inject(headers: &mut reqwest::header::HeaderMap) {
    super::inject_current(&mut HeaderInjector(headers));
}

/// axum middleware: one server span per request, child of the caller's span when
/// the request carries a `traceparent`. 5xx answers mark the span as an error.
pub async fn trace_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    if route == "/health" {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let span = tracing::info_span!(
        "http request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        url.scheme = "http",
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let parent = super::extract(&HeaderExtractor(request.headers()));
    let _ = span.set_parent(parent);
    // The trace id in the span's fields, so the service's own log lines show it too.
    let trace_id = {
        use opentelemetry::trace::TraceContextExt;
        span.context().span().span_context().trace_id()
    };
    span.record("trace_id", tracing::field::display(trace_id));
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        super::mark_error(&span, format!("HTTP {}", status.as_u16()));
    }
    response
}

/// An error answer: `status` with the JSON body `{"error": message}`
/// (`content-type: application/json`), the same shape in every sample service, e.g.
/// `error_response(StatusCode::NOT_FOUND, format!("user {id} not found"))`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    let body = BTreeMap::from([("error", message.into())]);
    (status, Json(body)).into_response()
}
