//! OTLP/gRPC: `TraceService/Export`, `LogsService/Export`, and a clear
//! `Unimplemented` for `MetricsService/Export`. gzip is accepted and the decoded
//! message size is bounded by `--max-request-size` (tonic enforces both).
//!
//! The two export methods are served by [`ExportServer`] rather than by the
//! generated servers: its codec hands over the request's protobuf bytes as they
//! came, so that they are decoded on the blocking pool and the write-ahead log keeps
//! them as they are instead of encoding every record again.

use std::convert::Infallible;
use std::marker::PhantomData;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::bytes::Buf;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, Bytes, Context, Poll, Service, StdError};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::{export, OtlpError, OtlpSignal, Payload};
use crate::ingest::Ingester;

pub const METRICS_UNSUPPORTED: &str =
    "hopline stores traces and logs, not metrics: send metrics to a metrics backend";

#[derive(Clone)]
pub struct OtlpGrpc {
    ingester: Ingester,
}

impl OtlpGrpc {
    pub fn new(ingester: Ingester) -> Self {
        Self { ingester }
    }

    /// The gRPC routes of the three OTLP services.
    pub fn routes(self, max_request_size: usize) -> tonic::service::Routes {
        let traces =
            ExportServer::<ExportTraceServiceRequest>::new(self.ingester.clone(), max_request_size);
        let logs =
            ExportServer::<ExportLogsServiceRequest>::new(self.ingester.clone(), max_request_size);
        let metrics = MetricsServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_request_size);
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
    ingester: Ingester,
    max_request_size: usize,
    signal: PhantomData<fn() -> S>,
}

impl<S> ExportServer<S> {
    pub fn new(ingester: Ingester, max_request_size: usize) -> Self {
        Self {
            ingester,
            max_request_size,
            signal: PhantomData,
        }
    }
}

impl<S> Clone for ExportServer<S> {
    fn clone(&self) -> Self {
        Self::new(self.ingester.clone(), self.max_request_size)
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
        // Under overload, refuse before reading and decompressing the body.
        if let Err(error) = self.ingester.check_capacity(S::SIGNAL) {
            let status = OtlpError::from(error).into_status();
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let method = ExportMethod::<S> {
            ingester: self.ingester.clone(),
            signal: PhantomData,
        };
        let mut grpc = tonic::server::Grpc::new(BytesCodec::<S::Response>(PhantomData))
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(self.max_request_size);
        Box::pin(async move { Ok(grpc.unary(method, request).await) })
    }
}

/// `Export` itself, given the request's bytes.
struct ExportMethod<S> {
    ingester: Ingester,
    signal: PhantomData<fn() -> S>,
}

impl<S: OtlpSignal> Service<Request<Bytes>> for ExportMethod<S> {
    type Response = Response<S::Response>;
    type Error = Status;
    type Future = BoxFuture<Self::Response, Status>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingester = self.ingester.clone();
        Box::pin(async move {
            let payload = Payload::<S>::Protobuf(request.into_inner());
            let outcome = export(&ingester, payload)
                .await
                .map_err(|e| e.into_status())?;
            Ok(Response::new(S::response(outcome)))
        })
    }
}

/// Requests as bytes (decoded later, off the runtime), responses as protobuf.
struct BytesCodec<R>(PhantomData<fn() -> R>);

impl<R: Message + Send + 'static> Codec for BytesCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ProtobufEncoder<R>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProtobufEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

struct ProtobufEncoder<R>(PhantomData<fn() -> R>);

impl<R: Message> Encoder for ProtobufEncoder<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: R, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
