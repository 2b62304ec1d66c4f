//! OTLP/HTTP: `POST /v1/traces` and `/v1/logs`, `application/x-protobuf` or
//! `application/json`, optionally `Content-Encoding: gzip`. Answers in the encoding
//! of the request; errors carry a `google.rpc.Status` with a message a person can
//! act on. `/v1/metrics` answers 404 with a message.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::grpc::METRICS_UNSUPPORTED;
use super::{export as export_request, run_blocking, OtlpError, OtlpSignal, Payload};
use crate::ingest::Ingester;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

#[derive(Clone)]
struct HttpState {
    ingester: Ingester,
    max_request_size: usize,
}

/// The OTLP/HTTP router.
pub fn router(ingester: Ingester, max_request_size: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(export::<ExportTraceServiceRequest>))
        .route("/v1/logs", post(export::<ExportLogsServiceRequest>))
        .route("/v1/metrics", post(metrics))
        .layer(DefaultBodyLimit::disable())
        .with_state(HttpState {
            ingester,
            max_request_size,
        })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
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

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn error_response(error: OtlpError, encoding: Encoding) -> Response {
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
            RpcStatus { code, message }.encode_to_vec(),
        )
            .into_response(),
    };
    if let Some(retry_after) = error.retry_after() {
        if let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

fn request_encoding(headers: &HeaderMap) -> Result<Encoding, OtlpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
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

/// Reads the body within the size limit and undoes `Content-Encoding`.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, OtlpError> {
    let too_large = || {
        OtlpError::TooLarge(format!(
            "request body exceeds the {limit}-byte limit (--max-request-size)"
        ))
    };
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if length > limit as u64 {
            return Err(too_large());
        }
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    if !matches!(encoding.as_str(), "identity" | "" | "gzip") {
        return Err(OtlpError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding '{encoding}': use gzip or none"
        )));
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    if encoding != "gzip" {
        return Ok(bytes);
    }
    Ok(Bytes::from(
        run_blocking(move || gunzip(&bytes, limit)).await??,
    ))
}

/// Decompresses at most `limit` bytes: a gzip bomb stops at the limit.
fn gunzip(compressed: &[u8], limit: usize) -> Result<Vec<u8>, OtlpError> {
    let mut decoder = flate2::read::GzDecoder::new(compressed).take(limit as u64 + 1);
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    decoder
        .read_to_end(&mut out)
        .map_err(|e| OtlpError::Decode(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(OtlpError::TooLarge(format!(
            "decompressed body exceeds the {limit}-byte limit (--max-request-size)"
        )));
    }
    Ok(out)
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
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match request_encoding(&headers) {
        Ok(encoding) => encoding,
        Err(error) => return error_response(error, Encoding::Json),
    };
    let result = async {
        state.ingester.check_capacity(S::SIGNAL)?;
        let bytes = read_body(&headers, body, state.max_request_size).await?;
        let payload = match encoding {
            Encoding::Protobuf => Payload::Protobuf(bytes),
            Encoding::Json => {
                Payload::Decoded(run_blocking(move || decode_json::<S>(&bytes)).await??)
            }
        };
        export_request(&state.ingester, payload).await
    }
    .await;
    match result {
        Ok(outcome) => success(S::response(outcome), encoding),
        Err(error) => error_response(error, encoding),
    }
}

async fn metrics(headers: HeaderMap) -> Response {
    let encoding = request_encoding(&headers).unwrap_or(Encoding::Json);
    error_response(OtlpError::NotFound(METRICS_UNSUPPORTED.into()), encoding)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn gunzip_stops_a_bomb_at_the_limit() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![0u8; 10 << 20]).expect("compress");
        let bomb = encoder.finish().expect("finish");
        assert!(bomb.len() < 64 << 10);
        match gunzip(&bomb, 1 << 20) {
            Err(OtlpError::TooLarge(message)) => {
                assert!(message.contains("decompressed"), "{message}")
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

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
            .unwrap_err()
            .to_string()
            .contains("'text/plain'"));
    }
}
