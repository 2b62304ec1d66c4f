//! Zipkin v2: `POST /api/v2/spans`, a JSON list of spans (`application/json`, the
//! default when no type is given) or a protobuf `ListOfSpans`
//! (`application/x-protobuf`), gzip or not. Served on the OTLP/HTTP listener and,
//! with `--zipkin-addr`, on a listener of its own (Zipkin's port is 9411).
//!
//! Spans take OTLP's way from here on: the same body bounds ([`crate::otlp::body`]),
//! the same tokens, tenants and rate limits, the same queue and write-ahead log (which
//! keeps the converted records, as for OTLP/JSON). Success is `202 Accepted` with an
//! empty body, as Zipkin answers; an error is a status and a line of text that says
//! what was wrong. The mapping to the model is [`crate::decode::zipkin`]'s.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::decode::zipkin;
use crate::ingest::Ingester;
use crate::model::Signal;
use crate::otlp::body::BodyLimits;
use crate::otlp::{http, OtlpError};
use prost::bytes::Bytes;

/// The path Zipkin clients post to.
pub const SPANS_PATH: &str = "/api/v2/spans";

/// The Zipkin router; each request finds its tenant's [`Ingester`] in its
/// extensions ([`crate::otlp::authenticate`]).
pub fn router(limits: BodyLimits) -> Router {
    Router::new()
        .route(SPANS_PATH, post(spans))
        .route("/api/v1/spans", post(version_one))
        .layer(DefaultBodyLimit::disable())
        .with_state(limits)
}

#[derive(Clone, Copy)]
enum Encoding {
    Json,
    Protobuf,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, OtlpError> {
    match http::media_type(headers).as_str() {
        "" | "application/json" => Ok(Encoding::Json),
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        other => Err(OtlpError::UnsupportedMediaType(format!(
            "unsupported Content-Type '{other}': Zipkin v2 spans come as application/json or application/x-protobuf"
        ))),
    }
}

async fn spans(
    State(limits): State<BodyLimits>,
    Extension(ingester): Extension<Ingester>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match encoding(&headers) {
        Ok(encoding) => encoding,
        Err(error) => return http::unread(error_response(error)),
    };
    let prepare = move |ingester: &Ingester, bytes: &Bytes| {
        let now = ingester.now();
        let converted = match encoding {
            Encoding::Json => zipkin::decode_json(bytes, now, ingester.limits()),
            Encoding::Protobuf => zipkin::decode_protobuf(bytes, now, ingester.limits()),
        }
        .map_err(|e| OtlpError::Decode(e.to_string()))?;
        Ok(ingester.prepare_spans(converted, None, now)?)
    };
    match http::receive(
        ingester,
        Signal::Spans,
        &headers,
        body,
        &limits,
        error_response,
        prepare,
    )
    .await
    {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(response) => response,
    }
}

/// Zipkin v1 (Thrift or the v1 JSON) is not taken: say which API to use.
async fn version_one() -> Response {
    error_response(OtlpError::NotFound(format!(
        "Zipkin v1 spans are not accepted: send Zipkin v2 to {SPANS_PATH} (JSON or protobuf)"
    )))
}

/// An error as Zipkin gives one: the status and a line of text.
fn error_response(error: OtlpError) -> Response {
    http::text_error(error, "zipkin")
}
