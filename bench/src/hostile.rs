//! `hopline-bench --hostile`: the memory a hostile client could once make the
//! collector hold, measured on a release build: a trace of 200,000 spans read five
//! times at once (it took 3.2 GB for one before the answers were capped), and 30
//! gRPC connections of 200 streams that each announce a 16 MiB message and send
//! 16 KiB (2.25 GB before the bodies were read under a budget).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use crate::collector::Collector;
use crate::stats::{mib, millis, thousands};
use crate::workload;

/// What was measured.
pub struct HostileReport {
    pub rows: Vec<(String, String)>,
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Sends one trace of `spans` spans in requests of 10,000.
async fn send_trace(collector: &Collector, trace_id: [u8; 16], spans: u64) -> anyhow::Result<()> {
    let now = now_nanos();
    for chunk in 0..spans.div_ceil(10_000) {
        let first = chunk * 10_000;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(workload::resource(0)),
                scope_spans: vec![ScopeSpans {
                    spans: (first..(first + 10_000).min(spans))
                        .map(|i| Span {
                            trace_id: trace_id.to_vec(),
                            span_id: (i + 1).to_be_bytes().to_vec(),
                            parent_span_id: if i == 0 {
                                Vec::new()
                            } else {
                                1u64.to_be_bytes().to_vec()
                            },
                            name: format!("step {}", i % 50),
                            kind: 1,
                            start_time_unix_nano: now + i * 1000,
                            end_time_unix_nano: now + i * 1000 + 500,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let body = request.encode_to_vec();
        loop {
            let response = collector
                .http
                .post(
                    &format!("{}/v1/traces", collector.otlp_http),
                    "application/x-protobuf",
                    None,
                    body.clone(),
                )
                .await?;
            if response.is_success() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// The collector's resident memory, sampled every 20 ms until `stop`; the peak.
fn sample_peak(
    collector: Arc<Collector>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(memory) = collector.memory() {
                peak = peak.max(memory.rss);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    })
}

pub async fn hostile(collector: Arc<Collector>) -> anyhow::Result<HostileReport> {
    let mut rows = Vec::new();
    let baseline = collector.memory()?.rss;
    rows.push(("RSS at start".into(), mib(baseline)));

    // A trace of 200,000 spans, read five times at once.
    let trace_id = [0x4f; 16];
    eprintln!("hostile: sending a trace of 200,000 spans ...");
    send_trace(&collector, trace_id, 200_000).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_peak(Arc::clone(&collector), Arc::clone(&stop));
    let url = format!(
        "{}/api/traces/{}",
        collector.api,
        trace_id
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let started = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..5 {
        let (http, url) = (collector.http.clone(), url.clone());
        readers.push(tokio::spawn(async move {
            let started = Instant::now();
            let body = http.get(&url).await?.body;
            let json: serde_json::Value = serde_json::from_slice(&body)?;
            let spans = json["data"][0]["spans"].as_array().map_or(0, Vec::len);
            anyhow::Ok((
                started.elapsed(),
                body.len(),
                spans,
                json["data"][0]["warnings"][0].clone(),
            ))
        }));
    }
    let mut answers = Vec::new();
    for reader in readers {
        answers.push(reader.await.context("reader")??);
    }
    let all = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await?;
    let (one, bytes, spans, warning) = answers[0].clone();
    rows.push((
        "a 200,000-span trace by id, 5 at once".into(),
        format!(
            "each {} spans, {} in {} (all five {}); peak RSS {}; warning: {warning}",
            thousands(spans as u64),
            mib(bytes as u64),
            millis(one),
            millis(all),
            mib(peak)
        ),
    ));
    let answers_by_search = collector
        .http
        .get(&format!(
            "{}/api/traces?service={}&limit=20&lookback=1h",
            collector.api,
            workload::service_name(0)
        ))
        .await?
        .body;
    rows.push((
        "a search with limit=20 that matches it".into(),
        format!("{} answer", mib(answers_by_search.len() as u64)),
    ));

    // 30 connections x 200 streams announcing 16 MiB and sending 16 KiB.
    eprintln!("hostile: 30 gRPC connections x 200 streams announcing 16 MiB, sending 16 KiB ...");
    let before = collector.memory()?.rss;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_peak(Arc::clone(&collector), Arc::clone(&stop));
    let address = collector
        .otlp_grpc
        .trim_start_matches("http://")
        .to_string();
    let mut connections = Vec::new();
    let mut refused = 0usize;
    let mut opened = 0usize;
    for _ in 0..30 {
        let tcp = tokio::net::TcpStream::connect(&address).await?;
        let (client, connection) = h2::client::handshake(tcp).await?;
        tokio::spawn(connection);
        let mut client = client.ready().await?;
        let mut streams = Vec::new();
        for _ in 0..200 {
            let request =
                http::Request::post("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())?;
            // Past the server's stream limit `ready` waits for a stream to end.
            client = match tokio::time::timeout(Duration::from_millis(200), client.clone().ready())
                .await
            {
                Ok(Ok(client)) => client,
                _ => {
                    refused += 1;
                    continue;
                }
            };
            match client.send_request(request, false) {
                Ok((response, mut body)) => {
                    let mut frame = vec![0u8];
                    frame.extend_from_slice(&(16u32 << 20).to_be_bytes());
                    frame.extend_from_slice(&vec![0u8; 16 << 10]);
                    let _ = body.send_data(frame.into(), false);
                    streams.push((response, body));
                    opened += 1;
                }
                Err(_) => refused += 1,
            }
        }
        connections.push((client, streams));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = collector.memory()?.rss;
    let in_flight = collector
        .metric_value("hopline_request_bytes_in_flight")
        .await?;
    drop(connections);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = collector.memory()?.rss;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await?;
    rows.push((
        "30 gRPC connections x 200 streams, 16 MiB announced, 16 KiB sent".into(),
        format!(
            "{} streams started ({} refused by the client); the server takes 64 per connection at a time, the rest wait in the client; request bytes held {}; RSS {} before, {} during (peak {}), {} after they closed",
            thousands(opened as u64),
            thousands(refused as u64),
            mib(in_flight),
            mib(before),
            mib(during),
            mib(peak),
            mib(after)
        ),
    ));
    Ok(HostileReport { rows })
}

impl HostileReport {
    pub fn markdown(&self) -> String {
        let mut out = String::from("| attack | what the collector held |\n| --- | --- |\n");
        for (what, value) in &self.rows {
            out.push_str(&format!("| {what} | {value} |\n"));
        }
        out
    }
}
