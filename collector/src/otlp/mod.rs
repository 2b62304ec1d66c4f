//! OTLP receivers (OTLP 1.x): gRPC `TraceService`/`LogsService` and HTTP
//! `/v1/traces`/`/v1/logs`, protobuf or JSON, gzip or not.
//!
//! Both transports read bodies within the same bounds ([`body`]) and go through
//! the same [`export`]: protobuf requests arrive as bytes and are decoded there, on
//! the blocking pool, straight into records ([`crate::decode::protobuf`]), and the
//! write-ahead log keeps those bytes; OTLP/JSON requests arrive parsed and are
//! converted ([`crate::decode::convert`]). What differs per signal is in
//! [`OtlpSignal`]; errors map to an HTTP status and a gRPC status in one place
//! ([`OtlpError`]).

pub mod body;
pub mod grpc;
pub mod http;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use prost::bytes::Bytes;

use crate::decode::convert::{convert_logs, convert_traces};
use crate::decode::protobuf;
use crate::ingest::{ExportOutcome, IngestError, Ingester, Prepared};
use crate::model::Signal;

/// What a receiver tells a client that it could not take a request.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("{0}")]
    Decode(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after: Duration,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<IngestError> for OtlpError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Overloaded { retry_after, .. } => OtlpError::Overloaded {
                message: error.to_string(),
                retry_after,
            },
            IngestError::Unavailable(message) => OtlpError::Unavailable(message),
            IngestError::Encode(message) => OtlpError::Internal(message),
        }
    }
}

impl OtlpError {
    pub fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            OtlpError::Decode(_) => StatusCode::BAD_REQUEST,
            OtlpError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OtlpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OtlpError::Overloaded { .. } | OtlpError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            OtlpError::NotFound(_) => StatusCode::NOT_FOUND,
            OtlpError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            OtlpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            OtlpError::Decode(_) | OtlpError::UnsupportedMediaType(_) => {
                tonic::Code::InvalidArgument
            }
            OtlpError::TooLarge(_) => tonic::Code::ResourceExhausted,
            OtlpError::Overloaded { .. } | OtlpError::Unavailable(_) => tonic::Code::Unavailable,
            OtlpError::NotFound(_) => tonic::Code::Unimplemented,
            OtlpError::Timeout(_) => tonic::Code::DeadlineExceeded,
            OtlpError::Internal(_) => tonic::Code::Internal,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OtlpError::Overloaded { retry_after, .. } => Some(*retry_after),
            OtlpError::Unavailable(_) => Some(crate::ingest::RETRY_AFTER),
            _ => None,
        }
    }

    pub fn into_status(self) -> tonic::Status {
        if matches!(self, OtlpError::Internal(_)) {
            tracing::error!(error = %self, "export failed");
        }
        tonic::Status::new(self.grpc_code(), self.to_string())
    }
}

/// An export request as a transport hands it over.
pub enum Payload<S> {
    /// Protobuf bytes, decompressed, not yet decoded.
    Protobuf(Bytes),
    /// Decoded from OTLP/JSON.
    Decoded(S),
}

/// Decodes (protobuf), converts, makes durable and queues the records of one
/// request. A nearly full queue refuses it before any of that work.
pub async fn export<S: OtlpSignal>(
    ingester: &Ingester,
    payload: Payload<S>,
) -> Result<ExportOutcome, OtlpError> {
    ingester.check_capacity(S::SIGNAL)?;
    let prepared = run_blocking({
        let ingester = ingester.clone();
        move || match payload {
            Payload::Protobuf(bytes) => S::prepare_protobuf(&ingester, &bytes),
            Payload::Decoded(request) => Ok(S::prepare(&ingester, request)?),
        }
    })
    .await??;
    Ok(ingester.submit(prepared).await?)
}

fn decode_error<S: OtlpSignal>(error: protobuf::DecodeError) -> OtlpError {
    OtlpError::Decode(format!(
        "cannot decode protobuf {}: {error}",
        S::REQUEST_NAME
    ))
}

/// What differs between traces and logs, for both transports: the request's and
/// the gRPC service's names, how records are converted, and the response that
/// reports rejected records.
pub trait OtlpSignal: serde::de::DeserializeOwned + Send + 'static {
    const REQUEST_NAME: &'static str;
    const GRPC_SERVICE: &'static str;
    const SIGNAL: Signal;
    type Response: prost::Message + serde::Serialize + Send + 'static;

    /// Converts the records of a request decoded from OTLP/JSON for the log and
    /// the index.
    fn prepare(ingester: &Ingester, request: Self) -> Result<Prepared, IngestError>;

    /// Decodes a protobuf request straight into records ([`protobuf`]) and
    /// prepares them; the log keeps the request as received.
    fn prepare_protobuf(ingester: &Ingester, request: &Bytes) -> Result<Prepared, OtlpError>;

    fn response(outcome: ExportOutcome) -> Self::Response;
}

impl OtlpSignal for ExportTraceServiceRequest {
    const REQUEST_NAME: &'static str = "ExportTraceServiceRequest";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const SIGNAL: Signal = Signal::Spans;
    type Response = ExportTraceServiceResponse;

    fn prepare(ingester: &Ingester, request: Self) -> Result<Prepared, IngestError> {
        let now = ingester.now();
        ingester.prepare_spans(convert_traces(request, now, ingester.limits()), None, now)
    }

    fn prepare_protobuf(ingester: &Ingester, request: &Bytes) -> Result<Prepared, OtlpError> {
        let now = ingester.now();
        let converted = protobuf::decode_traces(request, now, ingester.limits())
            .map_err(decode_error::<Self>)?;
        Ok(ingester.prepare_spans(converted, Some(request), now)?)
    }

    fn response(outcome: ExportOutcome) -> Self::Response {
        let partial_success = (outcome.rejected > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: outcome.rejected as i64,
            error_message: outcome.error_message,
        });
        ExportTraceServiceResponse { partial_success }
    }
}

impl OtlpSignal for ExportLogsServiceRequest {
    const REQUEST_NAME: &'static str = "ExportLogsServiceRequest";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const SIGNAL: Signal = Signal::Logs;
    type Response = ExportLogsServiceResponse;

    fn prepare(ingester: &Ingester, request: Self) -> Result<Prepared, IngestError> {
        let now = ingester.now();
        ingester.prepare_log_records(convert_logs(request, now, ingester.limits()), None, now)
    }

    fn prepare_protobuf(ingester: &Ingester, request: &Bytes) -> Result<Prepared, OtlpError> {
        let now = ingester.now();
        let converted =
            protobuf::decode_logs(request, now, ingester.limits()).map_err(decode_error::<Self>)?;
        Ok(ingester.prepare_log_records(converted, Some(request), now)?)
    }

    fn response(outcome: ExportOutcome) -> Self::Response {
        let partial_success = (outcome.rejected > 0).then_some(ExportLogsPartialSuccess {
            rejected_log_records: outcome.rejected as i64,
            error_message: outcome.error_message,
        });
        ExportLogsServiceResponse { partial_success }
    }
}

/// Runs CPU-bound work (decoding, converting) off the async runtime.
pub async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OtlpError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| OtlpError::Internal(format!("worker failed: {e}")))
}
