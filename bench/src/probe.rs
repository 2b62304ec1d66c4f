//! The visibility probe: how long an acknowledged record takes to be searchable,
//! measured beside a load by sending marked records and querying for them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use crate::collector::Collector;
use crate::queries::{hex, timed_get};
use crate::stats::Samples;
use crate::workload::{self, Signal};

/// Until `stop`: sends one uniquely marked record every 250 ms over OTLP/HTTP and
/// measures from its acknowledgement until a query finds it. Returns the delays and
/// how many probes were acknowledged (those refused under overload are sent again
/// as new probes, and not stored).
pub async fn visibility_probe(
    collector: Arc<Collector>,
    signal: Signal,
    nonce: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Samples, u64)> {
    let mut delays = Samples::default();
    let mut sent = 0u64;
    let mut acknowledged_probes = 0u64;
    while !stop.load(Ordering::Relaxed) {
        sent += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let marker = format!("probe{:x}x{sent}", nonce % 0xffff_ffff);
        let mut trace_id = [0xfe; 16];
        trace_id[8..].copy_from_slice(&sent.to_be_bytes());
        let (path, body, query) = match signal {
            Signal::Spans => {
                let request = ExportTraceServiceRequest {
                    resource_spans: vec![ResourceSpans {
                        resource: Some(workload::resource(0)),
                        scope_spans: vec![ScopeSpans {
                            spans: vec![Span {
                                trace_id: trace_id.to_vec(),
                                span_id: vec![1; 8],
                                name: marker.clone(),
                                kind: 2,
                                start_time_unix_nano: now,
                                end_time_unix_nano: now + 1_000,
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
                (
                    "traces",
                    request.encode_to_vec(),
                    format!("{}/api/traces/{}", collector.api, hex(&trace_id)),
                )
            }
            Signal::Logs => {
                let request = ExportLogsServiceRequest {
                    resource_logs: vec![ResourceLogs {
                        resource: Some(workload::resource(0)),
                        scope_logs: vec![ScopeLogs {
                            log_records: vec![LogRecord {
                                time_unix_nano: now,
                                severity_number: 9,
                                body: Some(AnyValue {
                                    value: Some(any_value::Value::StringValue(format!(
                                        "visibility {marker}"
                                    ))),
                                }),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
                (
                    "logs",
                    request.encode_to_vec(),
                    format!("{}/api/logs?query={marker}&limit=1", collector.api),
                )
            }
        };
        let response = collector
            .http
            .post(
                &format!("{}/v1/{path}", collector.otlp_http),
                "application/x-protobuf",
                None,
                body,
            )
            .await
            .context("probe export failed")?;
        if !response.is_success() {
            // Refused under overload: not acknowledged, so nothing to wait for.
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        acknowledged_probes += 1;
        let acknowledged = Instant::now();
        loop {
            if acknowledged.elapsed() > Duration::from_secs(30) {
                // Never seen: counted as the longest delay there is.
                delays.push(acknowledged.elapsed());
                break;
            }
            let (_, status, json) = timed_get(&collector, &query).await?;
            let found = match signal {
                Signal::Spans => status == 200,
                Signal::Logs => json["total"].as_u64().is_some_and(|total| total > 0),
            };
            if found {
                delays.push(acknowledged.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((delays, acknowledged_probes))
}
