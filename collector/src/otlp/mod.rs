//! OTLP receivers (OTLP 1.x): gRPC `TraceService`/`LogsService` and HTTP
//! `/v1/traces`/`/v1/logs`, protobuf or JSON, gzip or not. Other receivers
//! (Zipkin's) read their bodies and report their errors with these.
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

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use prost::bytes::Bytes;
use prost::Message;

use crate::access::{self, AccessControl, Credentials, Role};
use crate::decode::convert::{convert_logs, convert_traces};
use crate::decode::protobuf;
use crate::ingest::{ExportOutcome, IngestError, Ingester, Prepared};
use crate::metrics::Metrics;
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
    /// Over the tenant's rate limits: 429 / `ResourceExhausted` with retry info.
    #[error("{message}")]
    Throttled {
        message: String,
        retry_after: Duration,
    },
    /// No or a wrong credential: 401 / `Unauthenticated`.
    #[error("{0}")]
    Unauthenticated(String),
    /// A credential that may not do this: 403 / `PermissionDenied`.
    #[error("{0}")]
    PermissionDenied(String),
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
            IngestError::Throttled(throttled) => OtlpError::Throttled {
                message: throttled.to_string(),
                retry_after: throttled.retry_after,
            },
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
            OtlpError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            OtlpError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            OtlpError::PermissionDenied(_) => StatusCode::FORBIDDEN,
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
            OtlpError::Throttled { .. } => tonic::Code::ResourceExhausted,
            OtlpError::Unauthenticated(_) => tonic::Code::Unauthenticated,
            OtlpError::PermissionDenied(_) => tonic::Code::PermissionDenied,
            OtlpError::NotFound(_) => tonic::Code::Unimplemented,
            OtlpError::Timeout(_) => tonic::Code::DeadlineExceeded,
            OtlpError::Internal(_) => tonic::Code::Internal,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OtlpError::Overloaded { retry_after, .. }
            | OtlpError::Throttled { retry_after, .. } => Some(*retry_after),
            OtlpError::Unavailable(_) => Some(crate::ingest::RETRY_AFTER),
            _ => None,
        }
    }

    pub fn into_status(self) -> tonic::Status {
        if matches!(self, OtlpError::Internal(_)) {
            tracing::error!(error = %self, "export failed");
        }
        let code = self.grpc_code();
        match self.retry_after() {
            // A client told to slow down is told when to retry
            // (`google.rpc.RetryInfo`), as the OTLP specification asks.
            Some(_) => {
                let details = self.rpc_status().encode_to_vec();
                tonic::Status::with_details(code, self.to_string(), details.into())
            }
            None => tonic::Status::new(code, self.to_string()),
        }
    }

    /// The `google.rpc.Status` of this error: the body of an OTLP/HTTP error (in
    /// protobuf) and gRPC's `grpc-status-details-bin`, with a `RetryInfo` when the
    /// client should come back later.
    fn rpc_status(&self) -> RpcStatus {
        let details = self
            .retry_after()
            .map(|delay| ProtoAny {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: RetryInfo {
                    retry_delay: Some(ProtoDuration {
                        seconds: delay.as_secs().max(1) as i64,
                        nanos: 0,
                    }),
                }
                .encode_to_vec(),
            })
            .into_iter()
            .collect();
        RpcStatus {
            code: self.grpc_code() as i32,
            message: self.to_string(),
            details,
        }
    }
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// Who may write to which tenant, and each tenant's [`Ingester`] (by
/// [`access::TenantId`]).
#[derive(Clone)]
pub struct IngestGate {
    pub access: Arc<AccessControl>,
    pub ingesters: Arc<Vec<Ingester>>,
    pub metrics: Arc<Metrics>,
}

/// Before anything is read or decoded: the request's token must be one that may
/// write, and names its tenant, whose [`Ingester`] goes into the request's
/// extensions. Refusals answer in the request's own protocol (a gRPC status, or an
/// OTLP/HTTP `Status` in the request's encoding).
pub async fn authenticate(
    State(gate): State<IngestGate>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let credentials = Credentials {
        token: text(header::AUTHORIZATION.as_str()).and_then(access::bearer_token),
        proxy_user: None,
        org_id: text(access::ORG_ID_HEADER),
    };
    let denied = match gate.access.authorize(Role::Ingest, credentials) {
        Ok(tenant) => {
            let ingester = gate.ingesters[tenant].clone();
            request.extensions_mut().insert(ingester);
            return next.run(request).await;
        }
        Err(denied) => denied,
    };
    gate.metrics
        .auth_denied
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let error = if denied.is_forbidden() {
        OtlpError::PermissionDenied(denied.to_string())
    } else if denied.is_ambiguous() {
        OtlpError::Decode(denied.to_string())
    } else {
        OtlpError::Unauthenticated(denied.to_string())
    };
    let is_grpc =
        text(header::CONTENT_TYPE.as_str()).is_some_and(|t| t.starts_with("application/grpc"));
    let mut response = if is_grpc {
        error
            .into_status()
            .into_http::<axum::body::Body>()
            .into_response()
    } else {
        let encoding = http::request_encoding(request.headers()).unwrap_or(http::Encoding::Json);
        http::unread(http::error_response(error, encoding))
    };
    if !is_grpc {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
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
