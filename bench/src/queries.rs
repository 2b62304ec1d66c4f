//! The queries measured under ingest, and the visibility probes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::Samples;
use crate::workload::{self, mix, Workload, LOG_WORDS, SERVICES};
use anyhow::Context;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

use crate::collector::Collector;
use crate::load::Signal;

/// GETs `url`, returns the time to the whole JSON answer.
async fn timed_get(collector: &Collector, url: &str) -> anyhow::Result<(Duration, u16, Value)> {
    let started = Instant::now();
    let response = collector.http.get(url).send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    let elapsed = started.elapsed();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((elapsed, status, json))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET /api/traces/{id}` of `count` complete traces among the first `sent` spans;
/// returns the latencies and how many answers lacked spans.
pub async fn trace_by_id(
    collector: &Collector,
    workload: Workload,
    sent: u64,
    count: usize,
) -> anyhow::Result<(Samples, u64)> {
    let complete = workload::complete_traces(sent);
    anyhow::ensure!(complete > 0, "no complete trace among {sent} spans");
    let mut samples = Samples::default();
    let mut incomplete = 0;
    for i in 0..count as u64 {
        let trace = mix(i ^ workload.nonce) % complete;
        let id = hex(&workload::trace_id(workload.nonce, trace));
        let (elapsed, status, json) =
            timed_get(collector, &format!("{}/api/traces/{id}", collector.api)).await?;
        let spans = json["data"][0]["spans"].as_array().map_or(0, Vec::len) as u64;
        if status != 200 || spans != workload::SPANS_PER_TRACE {
            incomplete += 1;
        }
        samples.push(elapsed);
    }
    Ok((samples, incomplete))
}

/// Trace search by service, a tag and a minimum duration, 20 traces.
pub async fn trace_search(collector: &Collector, count: usize) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    for i in 0..count as u64 {
        let service = workload::service_name(i % SERVICES);
        let url = match i % 3 {
            0 => format!(
                "{}/api/traces?service={service}&tags=%7B%22http.response.status_code%22%3A%22500%22%7D&limit=20",
                collector.api
            ),
            1 => format!(
                "{}/api/traces?service={service}&minDuration=100ms&limit=20",
                collector.api
            ),
            _ => format!(
                "{}/api/traces?service={service}&tags=%7B%22http.request.method%22%3A%22POST%22%7D&minDuration=50ms&limit=20",
                collector.api
            ),
        };
        let (elapsed, status, json) = timed_get(collector, &url).await?;
        anyhow::ensure!(
            status == 200 && json["data"].is_array(),
            "trace search failed ({status}): {json}"
        );
        samples.push(elapsed);
    }
    Ok(samples)
}

/// Log searches among the first `sent` records: a rare term (one record), a common
/// word (a tenth of them), and service + severity + word. Returns the three
/// latencies and how many rare-term searches missed their record.
pub async fn log_search(
    collector: &Collector,
    sent: u64,
    count: usize,
) -> anyhow::Result<(Samples, Samples, Samples, u64)> {
    let (mut rare, mut common, mut filtered) = Default::default();
    let mut missed = 0;
    for i in 0..count as u64 {
        let n = mix(i) % sent.max(1);
        let url = format!(
            "{}/api/logs?query={}&limit=100",
            collector.api,
            Workload::log_request_id(n)
        );
        let (elapsed, status, json) = timed_get(collector, &url).await?;
        if status != 200 || json["total"].as_u64() != Some(1) {
            missed += 1;
        }
        Samples::push(&mut rare, elapsed);

        let word = LOG_WORDS[(i % LOG_WORDS.len() as u64) as usize];
        let url = format!("{}/api/logs?query={word}&limit=100", collector.api);
        let (elapsed, status, json) = timed_get(collector, &url).await?;
        anyhow::ensure!(status == 200, "log search failed ({status}): {json}");
        Samples::push(&mut common, elapsed);

        let url = format!(
            "{}/api/logs?service={}&minSeverity=error&query={word}&limit=100",
            collector.api,
            workload::service_name(i % SERVICES)
        );
        let (elapsed, status, json) = timed_get(collector, &url).await?;
        anyhow::ensure!(status == 200, "log search failed ({status}): {json}");
        Samples::push(&mut filtered, elapsed);
    }
    Ok((rare, common, filtered, missed))
}

/// Until `stop`: sends one uniquely marked record every 250 ms over OTLP/HTTP and
/// measures from its acknowledgement until a query finds it. Returns the delays and
/// how many probes were sent.
pub async fn visibility_probe(
    collector: Arc<Collector>,
    signal: Signal,
    nonce: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Samples, u64)> {
    let mut delays = Samples::default();
    let mut sent = 0u64;
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
            .post(format!("{}/v1/{path}", collector.otlp_http))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .context("probe export failed")?;
        if !response.status().is_success() {
            // Refused under overload: not acknowledged, so nothing to wait for.
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
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
    Ok((delays, sent))
}
