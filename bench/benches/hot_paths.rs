//! Micro-benchmarks of the collector's hot paths, on the standard workload:
//! OTLP decoding and conversion, the write-ahead-log append, document building, and
//! the JSON of a trace.
//!
//! `cargo bench -p hopline-bench --bench hot_paths [-- FILTER]`

use std::io::{Read, Write};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hopline::decode::convert::{convert_logs, convert_traces};
use hopline::decode::protobuf::{decode_logs, decode_traces};
use hopline::ingest::WalPayload;
use hopline::metrics::Metrics;
use hopline::model::Signal;
use hopline::model::{Span, TraceId};
use hopline::query::jaeger;
use hopline::store::schema::{LogSchema, Scratch, SpanSchema};
use hopline::store::Records;
use hopline::wal::Wal;
use hopline_bench::workload::{Workload, BATCH, SPANS_PER_TRACE};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::bytes::Bytes;
use prost::Message;

/// The collector's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WORKLOAD: Workload = Workload {
    nonce: 42,
    now: 1_750_000_000_000_000_000,
};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip to memory");
    encoder.finish().expect("gzip to memory")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 8);
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn spans() -> Vec<Span> {
    convert_traces(
        WORKLOAD.spans(0, BATCH),
        WORKLOAD.now,
        &hopline::config::RecordLimits::default(),
    )
    .records
}

fn decode_and_convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(BATCH));
    // The collector's path for protobuf, and prost's messages + `convert` beside
    // it (the path of OTLP/JSON's records, and of protobuf before the decoder).
    let traces = gzip(&WORKLOAD.spans(0, BATCH).encode_to_vec());
    group.bench_function("traces: gunzip + decode into the model, 512 spans", |b| {
        b.iter(|| {
            let request = Bytes::from(gunzip(&traces));
            decode_traces(
                &request,
                WORKLOAD.now,
                &hopline::config::RecordLimits::default(),
            )
            .expect("decode")
            .records
            .len()
        })
    });
    group.bench_function("traces: gunzip + prost + convert, 512 spans", |b| {
        b.iter(|| {
            let request =
                ExportTraceServiceRequest::decode(gunzip(&traces).as_slice()).expect("decode");
            convert_traces(
                request,
                WORKLOAD.now,
                &hopline::config::RecordLimits::default(),
            )
            .records
            .len()
        })
    });
    let logs = gzip(&WORKLOAD.logs(0, BATCH).encode_to_vec());
    group.bench_function("logs: gunzip + decode into the model, 512 records", |b| {
        b.iter(|| {
            let request = Bytes::from(gunzip(&logs));
            decode_logs(
                &request,
                WORKLOAD.now,
                &hopline::config::RecordLimits::default(),
            )
            .expect("decode")
            .records
            .len()
        })
    });
    group.bench_function("logs: gunzip + prost + convert, 512 records", |b| {
        b.iter(|| {
            let request =
                ExportLogsServiceRequest::decode(gunzip(&logs).as_slice()).expect("decode");
            convert_logs(
                request,
                WORKLOAD.now,
                &hopline::config::RecordLimits::default(),
            )
            .records
            .len()
        })
    });
    group.finish();
}

fn wal_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (wal, thread) =
        Wal::open(dir.path(), [0, 0], Arc::new(Metrics::default()), |_| {}).expect("open wal");
    let request = WORKLOAD.spans(0, BATCH).encode_to_vec();
    let records = Records::Spans(spans());
    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(
        "frame + append + fsync, a protobuf request of 512 spans",
        |b| {
            b.iter(|| {
                let payload = WalPayload::Protobuf {
                    received: WORKLOAD.now,
                    bytes: &request,
                }
                .encode()
                .expect("encode");
                runtime
                    .block_on(wal.append(Signal::Spans, payload, Box::new(|_| true)))
                    .expect("append")
            })
        },
    );
    group.bench_function(
        "encode + append + fsync, 512 converted spans (OTLP/JSON)",
        |b| {
            b.iter(|| {
                let payload = WalPayload::Records(&records).encode().expect("encode");
                runtime
                    .block_on(wal.append(Signal::Spans, payload, Box::new(|_| true)))
                    .expect("append")
            })
        },
    );
    group.finish();
    drop(wal);
    thread.join();
}

fn documents(c: &mut Criterion) {
    let spans = spans();
    let logs = convert_logs(
        WORKLOAD.logs(0, BATCH),
        WORKLOAD.now,
        &hopline::config::RecordLimits::default(),
    )
    .records;
    let span_schema = SpanSchema::new();
    let log_schema = LogSchema::new();
    let mut scratch = Scratch::default();
    let mut group = c.benchmark_group("documents");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("spans: 512 documents", |b| {
        b.iter(|| {
            spans
                .iter()
                .map(|span| {
                    span_schema
                        .document(span, 0, &mut scratch)
                        .expect("document")
                })
                .count()
        })
    });
    group.bench_function("logs: 512 documents", |b| {
        b.iter(|| {
            logs.iter()
                .map(|record| {
                    log_schema
                        .document(record, 0, &mut scratch)
                        .expect("document")
                })
                .count()
        })
    });
    // Part of the documents above: each body's pattern id.
    group.bench_function("logs: 512 pattern ids", |b| {
        b.iter(|| {
            logs.iter()
                .map(|record| hopline::store::pattern::pattern_id(&record.body_text()))
                .fold(0, u64::wrapping_add)
        })
    });
    group.finish();
}

fn trace_json(c: &mut Criterion) {
    let mut group = c.benchmark_group("jaeger json");
    for traces in [1, 100] {
        // Whole traces: the spans of trace 0 are every 5,000th span.
        let wanted = traces * SPANS_PER_TRACE;
        let spans: Vec<Span> = (0..wanted)
            .map(|i| {
                let n = i % SPANS_PER_TRACE * hopline_bench::workload::CONCURRENT_TRACES;
                let request = WORKLOAD.spans(n, 1);
                let mut span = convert_traces(
                    request,
                    WORKLOAD.now,
                    &hopline::config::RecordLimits::default(),
                )
                .records
                .remove(0);
                span.trace_id = TraceId([1; 16]);
                span
            })
            .collect();
        group.throughput(Throughput::Elements(wanted));
        group.bench_function(format!("render {wanted} spans"), |b| {
            b.iter_batched(
                || spans.clone(),
                |spans| {
                    let trace = jaeger::JaegerTrace {
                        id: TraceId([1; 16]),
                        spans: &spans,
                        warnings: &[],
                    };
                    serde_json::to_vec(&trace).expect("json").len()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    decode_and_convert,
    wal_append,
    documents,
    trace_json
);
criterion_main!(benches);
