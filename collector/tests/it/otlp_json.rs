//! OTLP/JSON exactly as the specification's examples write it (hex ids, int64 as
//! strings, enums as integers), plain and gzip.

use std::io::Write;

use crate::common::{tag, TestServer};

const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/resources/tests/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

async fn assert_spec_examples_are_stored(server: &TestServer) {
    server.flush().await;
    let (status, body) = server.get(&format!("/api/traces/{TRACE_ID}")).await;
    assert_eq!(status, 200, "{body}");
    let trace = &body["data"][0];
    let span = &trace["spans"][0];
    assert_eq!(span["spanID"], "eee19b7ec3c1b174");
    assert_eq!(span["operationName"], "I'm a server span");
    assert_eq!(span["references"][0]["spanID"], "eee19b7ec3c1b173");
    assert_eq!(span["startTime"], 1_544_712_660_000_000u64);
    assert_eq!(span["duration"], 1_000_000);
    assert_eq!(
        tag(&span["tags"], "http.response.status_code")["value"],
        503
    );
    assert_eq!(tag(&span["tags"], "retry.count")["type"], "int64");
    assert_eq!(tag(&span["tags"], "span.kind")["value"], "server");
    assert_eq!(tag(&span["tags"], "error")["value"], true);
    assert_eq!(
        tag(&span["tags"], "otel.status_description")["value"],
        "upstream unavailable"
    );
    assert_eq!(span["logs"][0]["fields"][0]["value"], "cache miss");
    let process = &trace["processes"][span["processID"].as_str().expect("pid")];
    assert_eq!(process["serviceName"], "my.service");
    assert_eq!(tag(&process["tags"], "host.name")["value"], "node-7");

    let (status, body) = server
        .get(&format!("/api/logs?traceID={TRACE_ID}&start=0"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1, "{body}");
    let log = &body["data"][0];
    assert_eq!(log["body"], "Example log record");
    assert_eq!(log["severityText"], "Information");
    assert_eq!(log["spanID"], "eee19b7ec3c1b174");
    assert_eq!(log["attributes"]["int.attribute"], 10);
    assert_eq!(
        log["attributes"]["array.attribute"],
        serde_json::json!(["many", "values"])
    );
    assert_eq!(
        log["attributes"]["map.attribute"]["some.map.key"],
        "some value"
    );
    assert_eq!(log["resource"]["service.name"], "my.service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_examples_plain_json() {
    let server = TestServer::start().await;
    let response = server
        .post("/v1/traces", "application/json", fixture("trace.json"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body.get("partialSuccess").is_none_or(|p| p.is_null()),
        "{body}"
    );
    let response = server
        .post("/v1/logs", "application/json", fixture("logs.json"))
        .await;
    assert_eq!(response.status(), 200);
    assert_spec_examples_are_stored(&server).await;

    // The api_v3 view of the same trace is OTLP/JSON again.
    let (status, body) = server.get(&format!("/api/v3/traces/{TRACE_ID}")).await;
    assert_eq!(status, 200, "{body}");
    let span = &body["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], TRACE_ID);
    assert_eq!(span["kind"], 2);
    assert_eq!(span["startTimeUnixNano"], "1544712660000000000");
    server.hopline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_examples_gzip_json() {
    let server = TestServer::start().await;
    for (path, file) in [("/v1/traces", "trace.json"), ("/v1/logs", "logs.json")] {
        let response = server
            .http
            .post(server.otlp_url(path))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gzip(&fixture(file)))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{path}");
    }
    assert_spec_examples_are_stored(&server).await;
    server.hopline.shutdown().await;
}
