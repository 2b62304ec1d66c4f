//! OTLP/HTTP: `POST /v1/traces` and `/v1/logs`, `application/x-protobuf` or
//! `application/json`, optionally `Content-Encoding: gzip`. Answers in the encoding
//! of the request; errors carry a `google.rpc.Status` with a message a person can
//! act on. `/v1/metrics` answers 404 with a message.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::body::{self, BodyLimits};
use super::grpc::METRICS_UNSUPPORTED;
use super::{export as export_request, run_blocking, OtlpError, OtlpSignal, Payload};
use crate::ingest::{ExportOutcome, Ingester, Prepared};
use crate::model::Signal;
use prost::bytes::Bytes;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The OTLP/HTTP router; bodies are read within `limits` ([`super::body`]). Each
/// request finds the [`Ingester`] of its tenant in its extensions, put there by
/// [`super::authenticate`].
pub fn router(limits: BodyLimits) -> Router {
    Router::new()
        .route("/v1/traces", post(export::<ExportTraceServiceRequest>))
        .route("/v1/logs", post(export::<ExportLogsServiceRequest>))
        .route("/v1/metrics", post(metrics))
        .layer(DefaultBodyLimit::disable())
        .with_state(limits)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

pub(super) fn error_response(error: OtlpError, encoding: Encoding) -> Response {
    if matches!(error, OtlpError::Internal(_)) {
        tracing::error!(error = %error, "otlp/http export failed");
    }
    let status = error.http_status();
    let code = error.grpc_code() as i32;
    let message = error.to_string();
    let mut response = match encoding {
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, JSON)],
            serde_json::json!({ "code": code, "message": message }).to_string(),
        )
            .into_response(),
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, PROTOBUF)],
            error.rpc_status().encode_to_vec(),
        )
            .into_response(),
    };
    set_retry_after(&mut response, &error);
    response
}

/// A request to a receiver of another protocol (Zipkin, Loki) on its way: the
/// body read only when `signal`'s queue has room (else refused at once and the
/// connection closed, as [`export`] does), decoded and framed by `prepare` on the
/// blocking pool, then made durable. Errors come back as `render` gives them.
pub(crate) async fn receive(
    ingester: Ingester,
    signal: Signal,
    headers: &HeaderMap,
    body: Body,
    limits: &BodyLimits,
    render: fn(OtlpError) -> Response,
    prepare: impl FnOnce(&Ingester, &Bytes) -> Result<Prepared, OtlpError> + Send + 'static,
) -> Result<ExportOutcome, Response> {
    let received = match ingester.check_capacity(signal) {
        Ok(()) => body::read_http(headers, body, limits).await,
        Err(error) => Err(error.into()),
    };
    let received = received.map_err(|error| unread(render(error)))?;
    let result = async {
        let prepared = run_blocking({
            let ingester = ingester.clone();
            let bytes = received.bytes.clone();
            move || prepare(&ingester, &bytes)
        })
        .await??;
        Ok::<_, OtlpError>(ingester.submit(prepared).await?)
    }
    .await;
    // The body's budget was held until here.
    drop(received);
    result.map_err(render)
}

/// The media type of a request (`application/json`), lower case, without
/// parameters; empty when none is given.
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// An error as the other protocols give one (Zipkin, Loki): the status, a line of
/// text, and `Retry-After` when the client should come back.
pub(crate) fn text_error(error: OtlpError, receiver: &str) -> Response {
    if matches!(error, OtlpError::Internal(_)) {
        tracing::error!(error = %error, receiver, "export failed");
    }
    let mut response = (
        error.http_status(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{error}\n"),
    )
        .into_response();
    set_retry_after(&mut response, &error);
    response
}

/// `Retry-After` on the answer to an error that asks the client to come back.
pub(crate) fn set_retry_after(response: &mut Response, error: &OtlpError) {
    if let Some(retry_after) = error.retry_after() {
        if let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
}

pub(super) fn request_encoding(headers: &HeaderMap) -> Result<Encoding, OtlpError> {
    match media_type(headers).as_str() {
        PROTOBUF => Ok(Encoding::Protobuf),
        JSON => Ok(Encoding::Json),
        "" => Err(OtlpError::UnsupportedMediaType(
            "missing Content-Type: use application/x-protobuf or application/json".into(),
        )),
        other => Err(OtlpError::UnsupportedMediaType(format!(
            "unsupported Content-Type '{other}': use application/x-protobuf or application/json"
        ))),
    }
}

fn decode_json<S: OtlpSignal>(bytes: &[u8]) -> Result<S, OtlpError> {
    serde_json::from_slice(bytes)
        .map_err(|e| OtlpError::Decode(format!("cannot decode OTLP/JSON {}: {e}", S::REQUEST_NAME)))
}

fn success<T: Message + serde::Serialize>(response: T, encoding: Encoding) -> Response {
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

/// `POST /v1/traces` and `/v1/logs`: one handler, typed by the signal.
async fn export<S: OtlpSignal>(
    State(limits): State<BodyLimits>,
    Extension(ingester): Extension<Ingester>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match request_encoding(&headers) {
        Ok(encoding) => encoding,
        Err(error) => return unread(error_response(error, Encoding::Json)),
    };
    // Refused before its body is read (full queue, too large, too slow, over the
    // budget): the connection is closed after the answer, so that the client does
    // not send its next request behind the unread rest of this one.
    let received = match ingester.check_capacity(S::SIGNAL) {
        Ok(()) => body::read_http(&headers, body, &limits).await,
        Err(error) => Err(error.into()),
    };
    let received = match received {
        Ok(received) => received,
        Err(error) => return unread(error_response(error, encoding)),
    };
    let result = async {
        let bytes = received.bytes.clone();
        let payload = match encoding {
            Encoding::Protobuf => Payload::Protobuf(bytes),
            Encoding::Json => {
                Payload::Decoded(run_blocking(move || decode_json::<S>(&bytes)).await??)
            }
        };
        export_request(&ingester, payload).await
    }
    .await;
    // The body's budget was held until here.
    drop(received);
    match result {
        Ok(outcome) => success(S::response(outcome), encoding),
        Err(error) => error_response(error, encoding),
    }
}

/// An answer given without reading the whole request: `Connection: close`.
pub(crate) fn unread(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn metrics(headers: HeaderMap) -> Response {
    let encoding = request_encoding(&headers).unwrap_or(Encoding::Json);
    error_response(OtlpError::NotFound(METRICS_UNSUPPORTED.into()), encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_matched_without_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(request_encoding(&headers).expect("json"), Encoding::Json);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(request_encoding(&headers)
            .expect_err("an error")
            .to_string()
            .contains("'text/plain'"));
    }
}
