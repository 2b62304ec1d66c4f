//! OTLP/JSON requests as the receiver decodes them (serde, then conversion into the
//! model): an error or records, never a panic or a stack overflow.
#![no_main]

use hopline::config::RecordLimits;
use hopline::decode::convert::{convert_logs, convert_traces};
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

const NOW: u64 = 1_700_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = RecordLimits::default();
    if let Ok(request) = serde_json::from_slice::<ExportTraceServiceRequest>(data) {
        let _ = convert_traces(request, NOW, &limits);
    }
    if let Ok(request) = serde_json::from_slice::<ExportLogsServiceRequest>(data) {
        let _ = convert_logs(request, NOW, &limits);
    }
});
