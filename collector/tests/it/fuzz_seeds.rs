//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/`) from the
//! test data: `cargo test -p hopline --test integration write_fuzz_seeds -- --ignored`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hopline::metrics::Metrics;
use hopline::model::Signal;
use hopline::wal::Wal;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::common::*;

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("resources/tests")
            .join(name),
    )
    .expect("fixture")
}

#[tokio::test]
#[ignore = "writes files into the repository: run by hand to refresh the seeds"]
async fn write_fuzz_seeds() {
    let traces: ExportTraceServiceRequest =
        serde_json::from_slice(&fixture("trace.json")).expect("trace.json");
    let logs: ExportLogsServiceRequest =
        serde_json::from_slice(&fixture("logs.json")).expect("logs.json");
    let now = now_nanos();
    let sdk_like = traces_request(
        "checkout",
        vec![
            span([1; 16], 1, None, "GET /", now, 1000),
            span([1; 16], 2, Some(1), "SELECT", now + 10, 100),
        ],
    );
    let lines = logs_request(
        "checkout",
        vec![log_record(Some([1; 16]), now, 17, "card declined")],
    );

    let dir = corpus("otlp_json");
    std::fs::write(dir.join("trace.json"), fixture("trace.json")).expect("write");
    std::fs::write(dir.join("logs.json"), fixture("logs.json")).expect("write");

    let dir = corpus("otlp_protobuf");
    std::fs::write(dir.join("trace.pb"), traces.encode_to_vec()).expect("write");
    std::fs::write(dir.join("logs.pb"), logs.encode_to_vec()).expect("write");
    std::fs::write(dir.join("sdk-spans.pb"), sdk_like.encode_to_vec()).expect("write");
    std::fs::write(dir.join("sdk-logs.pb"), lines.encode_to_vec()).expect("write");

    // A real segment: frames of both signals, in the layout ingest writes.
    let wal_dir = tempfile::tempdir().expect("tempdir");
    let (wal, thread) =
        Wal::open(wal_dir.path(), [0, 0], Arc::new(Metrics::default()), |_| {}).expect("wal");
    for (signal, request) in [
        (Signal::Spans, sdk_like.encode_to_vec()),
        (Signal::Logs, lines.encode_to_vec()),
        (Signal::Spans, traces.encode_to_vec()),
    ] {
        let payload = hopline::ingest::WalPayload::Protobuf {
            received: now,
            bytes: &request,
        }
        .encode()
        .expect("payload");
        wal.append(signal, payload, Box::new(|_| true))
            .await
            .expect("append");
    }
    drop(wal);
    thread.join();
    let dir = corpus("wal_replay");
    for entry in std::fs::read_dir(wal_dir.path()).expect("wal dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("segment");
        if bytes.is_empty() {
            continue;
        }
        // The target's first byte is the segment's first sequence number.
        let mut seed = vec![1u8];
        seed.extend_from_slice(&bytes);
        std::fs::write(dir.join("segment"), seed).expect("write");
    }

    let dir = corpus("logs_query");
    for (n, query) in [
        r#"service:orders AND (severity:error OR "card declined") NOT attributes.user.id:42"#,
        "payment failed OR timeout",
        r#"body:"connection reset" traceID:5b8efff798038103d269b633813fc60c"#,
        "((a OR b) AND NOT (c))",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(dir.join(format!("query-{n}")), query).expect("write");
    }

    let dir = corpus("query_params");
    for (n, params) in [
        "service=checkout&operation=POST%20/orders&tags=%7B%22error%22%3A%22true%22%7D&minDuration=150ms&lookback=1h&limit=20",
        "service=a&tag=http.response.status_code:500&start=1700000000000000&end=1700000100000000",
        "query.service_name=a&query.start_time_min=2024-05-01T00:00:00Z&query.attributes={\"k\":\"v\"}&query.search_depth=20",
        "query=service:checkout%20AND%20timeout&minSeverity=warn&limit=100&lookback=2h",
        "traceID=5b8efff798038103d269b633813fc60c&traceID=0123",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(dir.join(format!("params-{n}")), params).expect("write");
    }
}
