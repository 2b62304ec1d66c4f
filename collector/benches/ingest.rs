//! Ingest throughput and visibility delay, end to end over OTLP/HTTP protobuf + gzip.
//!
//! `cargo bench -p hopline --bench ingest -- [SECONDS] [CONNECTIONS]`
//!
//! Starts a collector in this process on a fresh temporary data directory, sends
//! requests of 512 server spans (10 attributes, 9 resource attributes, 10 spans per
//! trace) and of 512 log records from CONNECTIONS concurrent clients for SECONDS,
//! and meanwhile probes how long an acknowledged span takes to become visible in
//! `/api/traces/{id}`. The client shares the machine's cores with the collector, so
//! the figures are a floor. The full benchmark suite is tracked separately.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hopline::config::Config;
use hopline::Hopline;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const SPANS_PER_REQUEST: usize = 512;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn resource(service: usize) -> Resource {
    Resource {
        attributes: vec![
            s("service.name", &format!("service-{service}")),
            s("service.version", "1.2.3"),
            s("service.instance.id", &format!("instance-{service}-a1b2c3")),
            s("host.name", &format!("node-{service}")),
            s("host.arch", "amd64"),
            s("os.type", "linux"),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.language", "rust"),
            s("telemetry.sdk.version", "0.33.0"),
        ],
        ..Default::default()
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

fn span_request(seed: u64) -> Vec<u8> {
    let now = now_nanos();
    let mut resource_spans = Vec::new();
    for service in 0..4 {
        let mut spans = Vec::new();
        for i in 0..SPANS_PER_REQUEST / 4 {
            let n = seed * 10_000 + (service * 1000 + i) as u64;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(n / 10 + 1).to_be_bytes());
            trace_id[8..].copy_from_slice(&seed.to_be_bytes());
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: (n + 1).to_be_bytes().to_vec(),
                parent_span_id: if n % 10 == 0 { vec![] } else { (n).to_be_bytes().to_vec() },
                name: format!("GET /api/items/{{id}}/{}", i % 20),
                kind: 2,
                start_time_unix_nano: now - 5_000_000,
                end_time_unix_nano: now - 5_000_000 + (n % 997) * 10_000,
                attributes: vec![
                    s("http.request.method", "GET"),
                    s("url.path", &format!("/api/items/{}", n % 5000)),
                    s("url.scheme", "https"),
                    s("http.route", "/api/items/{id}"),
                    kv("http.response.status_code", any_value::Value::IntValue(if n % 50 == 0 { 500 } else { 200 })),
                    s("server.address", "items.internal"),
                    kv("server.port", any_value::Value::IntValue(8080)),
                    s("client.address", &format!("10.0.{}.{}", n % 200, n % 250)),
                    s("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"),
                    s("network.protocol.version", "1.1"),
                ],
                ..Default::default()
            });
        }
        resource_spans.push(ResourceSpans {
            resource: Some(resource(service)),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    gzip(&ExportTraceServiceRequest { resource_spans }.encode_to_vec())
}

fn log_request(seed: u64) -> Vec<u8> {
    let now = now_nanos();
    let records = (0..SPANS_PER_REQUEST as u64)
        .map(|i| {
            let n = seed * 10_000 + i;
            LogRecord {
                time_unix_nano: now,
                severity_number: if n % 20 == 0 { 17 } else { 9 },
                severity_text: if n % 20 == 0 {
                    "ERROR".into()
                } else {
                    "INFO".into()
                },
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!(
                        "handled request {n} for user {} in {} ms with cache {}",
                        n % 3000,
                        n % 400,
                        if n % 3 == 0 { "miss" } else { "hit" }
                    ))),
                }),
                trace_id: if n % 10 < 7 {
                    [n.to_be_bytes(), seed.to_be_bytes()].concat()
                } else {
                    vec![]
                },
                span_id: if n % 10 < 7 {
                    (n + 1).to_be_bytes().to_vec()
                } else {
                    vec![]
                },
                attributes: vec![
                    s("code.function", "handle"),
                    s("http.route", "/api/items/{id}"),
                    kv("user.id", any_value::Value::IntValue((n % 3000) as i64)),
                    s("region", "eu-west-1"),
                    kv("cache.hit", any_value::Value::BoolValue(n % 3 != 0)),
                ],
                ..Default::default()
            }
        })
        .collect();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(1)),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    gzip(&request.encode_to_vec())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

async fn load(
    hopline: &Hopline,
    path: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    seconds: u64,
    connections: usize,
) -> (u64, u64) {
    let client = reqwest::Client::new();
    let url = format!("http://{}{path}", hopline.otlp_http_addr);
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let (client, url, bodies, stop, accepted, refused) = (
            client.clone(),
            url.clone(),
            bodies.clone(),
            stop.clone(),
            accepted.clone(),
            refused.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = connection;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[i % bodies.len()].clone();
                i += connections;
                let response = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .header("content-encoding", "gzip")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => {
                        accepted.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed)
                    }
                    _ => refused.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed),
                };
            }
        }));
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        eprintln!(
            "  {path}: {:>4.0}s {:>10} accepted",
            started.elapsed().as_secs_f64(),
            accepted.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    (
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    )
}

async fn visibility_probe(hopline: &Hopline, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let otlp = format!("http://{}/v1/traces", hopline.otlp_http_addr);
    let mut delays = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let mut trace_id = [0x77u8; 16];
        trace_id[..8].copy_from_slice(&n.to_be_bytes());
        let now = now_nanos();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource(9)),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: trace_id.to_vec(),
                        span_id: vec![1; 8],
                        name: "probe".into(),
                        start_time_unix_nano: now,
                        end_time_unix_nano: now + 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let sent = client
            .post(&otlp)
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await;
        if !matches!(&sent, Ok(r) if r.status() == 200) {
            continue;
        }
        let acknowledged = Instant::now();
        let url = format!(
            "http://{}/api/traces/{}",
            hopline.http_addr,
            hopline::model::hex(&trace_id)
        );
        while acknowledged.elapsed() < Duration::from_secs(30) {
            if matches!(client.get(&url).send().await, Ok(r) if r.status() == 200) {
                delays.push(acknowledged.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delays
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20);
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::for_tests(dir.path());
    config.commit_interval = Duration::from_secs(1);
    let hopline = Hopline::start(config).await.expect("start");

    eprintln!("preparing requests ...");
    let span_bodies = Arc::new((0..200u64).map(span_request).collect::<Vec<_>>());
    let log_bodies = Arc::new((0..200u64).map(log_request).collect::<Vec<_>>());
    let wire: usize = span_bodies.iter().map(Vec::len).sum::<usize>() / span_bodies.len();
    eprintln!("span request: {SPANS_PER_REQUEST} spans, {wire} bytes gzip; {seconds}s per signal, {connections} connections");

    let probe_stop = Arc::new(AtomicBool::new(false));
    let (spans, delays) = tokio::join!(
        async {
            let started = Instant::now();
            let result = load(&hopline, "/v1/traces", span_bodies, seconds, connections).await;
            probe_stop.store(true, Ordering::Relaxed);
            (result, started.elapsed())
        },
        visibility_probe(&hopline, probe_stop.clone())
    );
    let ((spans_ok, spans_refused), spans_wall) = spans;
    let indexed_before_logs = hopline.metrics.spans.indexed.load(Ordering::Relaxed);
    let logs_started = Instant::now();
    let (logs_ok, logs_refused) =
        load(&hopline, "/v1/logs", log_bodies, seconds, connections).await;
    let logs_wall = logs_started.elapsed();
    hopline.flush().await.expect("flush");
    let (span_bytes, log_bytes) = hopline.store.disk_usage();
    let mut delays = delays;
    delays.sort();

    println!("| figure | value |");
    println!("| --- | --- |");
    println!(
        "| spans acknowledged | {spans_ok} in {:.1}s = {:.0} spans/s (refused: {spans_refused}) |",
        spans_wall.as_secs_f64(),
        spans_ok as f64 / spans_wall.as_secs_f64()
    );
    println!("| spans indexed at end of span phase | {indexed_before_logs} |");
    println!(
        "| logs acknowledged | {logs_ok} in {:.1}s = {:.0} logs/s (refused: {logs_refused}) |",
        logs_wall.as_secs_f64(),
        logs_ok as f64 / logs_wall.as_secs_f64()
    );
    println!(
        "| visibility delay (ack -> trace by id), under span load | p50 {:?}, p99 {:?}, n={} |",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.len()
    );
    println!(
        "| index bytes on disk (before merges settle) | spans {:.0} B/span, logs {:.0} B/log |",
        span_bytes as f64 / spans_ok.max(1) as f64,
        log_bytes as f64 / logs_ok.max(1) as f64
    );
    println!(
        "| peak RSS (collector and load client, one process) | {} MiB |",
        peak_rss_mib()
    );
}
