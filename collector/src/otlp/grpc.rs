//! OTLP/gRPC: `TraceService/Export`, `LogsService/Export`, and a clear
//! `Unimplemented` for `MetricsService/Export`. gzip is accepted and the decoded
//! message size is bounded by `--max-request-size` (tonic enforces both).

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::OtlpSignal;
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
        let traces = TraceServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_request_size);
        let logs = LogsServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_request_size);
        let metrics = MetricsServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_request_size);
        tonic::service::Routes::new(traces)
            .add_service(logs)
            .add_service(metrics)
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let outcome = ExportTraceServiceRequest::export(&self.ingester, request.into_inner())
            .await
            .map_err(|e| e.into_status())?;
        Ok(Response::new(ExportTraceServiceRequest::response(outcome)))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let outcome = ExportLogsServiceRequest::export(&self.ingester, request.into_inner())
            .await
            .map_err(|e| e.into_status())?;
        Ok(Response::new(ExportLogsServiceRequest::response(outcome)))
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
