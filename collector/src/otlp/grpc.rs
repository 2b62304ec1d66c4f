//! OTLP/gRPC: `TraceService/Export`, `LogsService/Export`, and a clear
//! `Unimplemented` for `MetricsService/Export`. gzip is accepted and the decoded
//! message size is bounded by `--max-request-size` (tonic enforces both).
//!
//! The two export methods are served by [`ExportServer`] rather than by the
//! generated servers: it reads the request's message itself, within the size, time
//! and memory bounds of [`super::body`] (tonic would reserve what a message
//! announces before it arrives, and copy it), and hands the protobuf bytes on as
//! they came, so that they are decoded on the blocking pool and the write-ahead log
//! keeps them as they are instead of encoding every record again.

use std::convert::Infallible;
use std::marker::PhantomData;

use http_body::Frame;
use http_body_util::StreamBody;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{http, Body, BoxFuture, Bytes, Context, Poll, Service, StdError};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::body::{self, BodyLimits};
use super::{export, OtlpError, OtlpSignal, Payload};
use crate::ingest::Ingester;

pub const METRICS_UNSUPPORTED: &str =
    "hopline stores traces and logs, not metrics: send metrics to a metrics backend";

/// The OTLP/gRPC services. Each request finds the [`Ingester`] of its tenant in its
/// extensions, put there by [`super::authenticate`].
#[derive(Clone, Default)]
pub struct OtlpGrpc;

impl OtlpGrpc {
    /// The gRPC routes of the three OTLP services; request messages are read
    /// within `limits`.
    pub fn routes(self, limits: BodyLimits) -> tonic::service::Routes {
        let traces = ExportServer::<ExportTraceServiceRequest>::new(limits.clone());
        let logs = ExportServer::<ExportLogsServiceRequest>::new(limits.clone());
        let metrics = MetricsServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limits.max_size);
        tonic::service::Routes::new(traces)
            .add_service(logs)
            .add_service(metrics)
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        _request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        Err(Status::unimplemented(METRICS_UNSUPPORTED))
    }
}

/// The gRPC service of one signal (`<S::GRPC_SERVICE>/Export`).
pub struct ExportServer<S> {
    limits: BodyLimits,
    signal: PhantomData<fn() -> S>,
}

impl<S> ExportServer<S> {
    pub fn new(limits: BodyLimits) -> Self {
        Self {
            limits,
            signal: PhantomData,
        }
    }
}

impl<S> Clone for ExportServer<S> {
    fn clone(&self) -> Self {
        Self::new(self.limits.clone())
    }
}

impl<S: OtlpSignal> NamedService for ExportServer<S> {
    const NAME: &'static str = S::GRPC_SERVICE;
}

impl<S, B> Service<http::Request<B>> for ExportServer<S>
where
    S: OtlpSignal,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let is_export = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(S::GRPC_SERVICE))
            == Some("/Export");
        if !is_export {
            let status =
                Status::unimplemented(format!("{} has one method, Export", S::GRPC_SERVICE));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let Some(ingester) = request.extensions().get::<Ingester>().cloned() else {
            let status = Status::internal("no tenant was resolved for this request");
            return Box::pin(async move { Ok(status.into_http()) });
        };
        // Under overload, or over the tenant's rate, refuse before reading and
        // decompressing the body.
        if let Err(error) = ingester.check_capacity(S::SIGNAL) {
            let status = OtlpError::from(error).into_status();
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let limits = self.limits.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let result = async {
                // The body's budget is held until the request is answered.
                let received = body::read_grpc(&parts.headers, body, &limits).await?;
                export(&ingester, Payload::<S>::Protobuf(received.bytes.clone())).await
            }
            .await;
            Ok(match result {
                Ok(outcome) => unary_response(&S::response(outcome)),
                Err(error) => error.into_status().into_http(),
            })
        })
    }
}

/// The answer of a unary call: the message in one uncompressed frame, then
/// `grpc-status: 0` in the trailers.
fn unary_response(message: &impl Message) -> http::Response<tonic::body::Body> {
    let length = message.encoded_len();
    let mut frame = Vec::with_capacity(5 + length);
    frame.push(0);
    frame.extend_from_slice(&(length as u32).to_be_bytes());
    message.encode_raw(&mut frame);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames: [Result<Frame<Bytes>, Infallible>; 2] = [
        Ok(Frame::data(Bytes::from(frame))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}
