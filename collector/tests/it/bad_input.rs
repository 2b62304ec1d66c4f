//! Bad input, endpoint by endpoint: each gets its status and a message that says
//! what was wrong; the server keeps serving and keeps what it acknowledged.

use std::io::Write;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use serde_json::json;

use crate::common::*;

const LIMIT: usize = 64 * 1024;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn json_span(trace_id: &str, span_id: &str, start: &str) -> Vec<u8> {
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": trace_id, "spanId": span_id, "name": "s",
        "startTimeUnixNano": start, "endTimeUnixNano": start, "kind": 1
    }]}]}]})
    .to_string()
    .into_bytes()
}

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    message: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_bad_input_table() {
    let server = TestServer::start_with(|config| config.server.max_request_size = LIMIT).await;
    let now = now_nanos();
    // Something acknowledged before the abuse starts, to find again afterwards.
    let kept = [7u8; 16];
    let response = server
        .post_protobuf(
            "/v1/traces",
            &traces_request("survivor", vec![span(kept, 1, None, "kept", now, 1000)]),
        )
        .await;
    assert_eq!(response.status(), 200);

    let now_text = now.to_string();
    let mut deep = String::new();
    for _ in 0..200 {
        deep.push_str(r#"{"arrayValue":{"values":["#);
    }
    let deep_json =
        format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{deep}"#).into_bytes();
    let mut bad_utf8 = b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"".to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    bad_utf8.extend_from_slice(b"\"}]}]}]}");
    let mut bad_utf8_proto =
        traces_request("x", vec![span([1; 16], 1, None, "PLACEHOLDER", now, 1)]).encode_to_vec();
    let at = bad_utf8_proto
        .windows(11)
        .position(|w| w == b"PLACEHOLDER")
        .expect("name");
    bad_utf8_proto[at] = 0xff;

    let cases = vec![
        Case {
            name: "garbage protobuf",
            path: "/v1/traces",
            content_type: "application/x-protobuf",
            encoding: None,
            body: b"\xff\xff\xff\xffgarbage".to_vec(),
            status: 400,
            message: "cannot decode protobuf ExportTraceServiceRequest",
        },
        Case {
            name: "garbage protobuf logs",
            path: "/v1/logs",
            content_type: "application/x-protobuf",
            encoding: None,
            body: vec![0x0a, 0xff, 0xff],
            status: 400,
            message: "cannot decode protobuf ExportLogsServiceRequest",
        },
        Case {
            name: "garbage json",
            path: "/v1/traces",
            content_type: "application/json",
            encoding: None,
            body: b"{not json".to_vec(),
            status: 400,
            message: "cannot decode OTLP/JSON",
        },
        Case {
            name: "wrong content type",
            path: "/v1/traces",
            content_type: "text/plain",
            encoding: None,
            body: b"hello".to_vec(),
            status: 415,
            message: "unsupported Content-Type 'text/plain'",
        },
        Case {
            name: "unknown encoding",
            path: "/v1/logs",
            content_type: "application/json",
            encoding: Some("br"),
            body: b"{}".to_vec(),
            status: 415,
            message: "unsupported Content-Encoding 'br'",
        },
        Case {
            name: "oversized body",
            path: "/v1/traces",
            content_type: "application/x-protobuf",
            encoding: None,
            body: vec![0; LIMIT + 1],
            status: 413,
            message: "exceeds the 65536-byte limit",
        },
        Case {
            name: "gzip bomb",
            path: "/v1/traces",
            content_type: "application/x-protobuf",
            encoding: Some("gzip"),
            body: gzip(&vec![0; 8 << 20]),
            status: 413,
            message: "decompressed body exceeds",
        },
        Case {
            name: "invalid gzip",
            path: "/v1/logs",
            content_type: "application/json",
            encoding: Some("gzip"),
            body: b"not gzip at all".to_vec(),
            status: 400,
            message: "invalid gzip body",
        },
        Case {
            name: "non-hex trace id",
            path: "/v1/traces",
            content_type: "application/json",
            encoding: None,
            body: json_span(
                "zz8efff798038103d269b633813fc60c",
                "eee19b7ec3c1b174",
                &now_text,
            ),
            status: 400,
            message: "cannot decode OTLP/JSON",
        },
        Case {
            name: "deep nesting",
            path: "/v1/logs",
            content_type: "application/json",
            encoding: None,
            body: deep_json,
            status: 400,
            message: "recursion limit",
        },
        Case {
            name: "invalid utf-8 json",
            path: "/v1/traces",
            content_type: "application/json",
            encoding: None,
            body: bad_utf8,
            status: 400,
            message: "cannot decode OTLP/JSON",
        },
        Case {
            name: "invalid utf-8 protobuf",
            path: "/v1/traces",
            content_type: "application/x-protobuf",
            encoding: None,
            body: bad_utf8_proto,
            status: 400,
            message: "cannot decode protobuf",
        },
        Case {
            name: "metrics",
            path: "/v1/metrics",
            content_type: "application/json",
            encoding: None,
            body: b"{}".to_vec(),
            status: 404,
            message: "not metrics",
        },
    ];
    for case in cases {
        let mut request = server
            .http
            .post(server.otlp_url(case.path))
            .header("content-type", case.content_type)
            .body(case.body);
        if let Some(encoding) = case.encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.send().await.expect(case.name);
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        let bytes = response.bytes().await.expect("body");
        let message = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(body) => body["message"].as_str().unwrap_or_default().to_string(),
            Err(_) => String::from_utf8_lossy(&bytes).to_string(),
        };
        assert!(message.contains(case.message), "{}: {message}", case.name);
    }

    // Records rejected one by one come back as partialSuccess, the rest is stored.
    let mut short_id = span([2; 16], 1, None, "short id", now, 10);
    short_id.trace_id.truncate(12);
    let ancient = span([3; 16], 1, None, "ancient", 1_600_000_000, 10);
    let future = span(
        [4; 16],
        1,
        None,
        "future",
        now + 10 * 86_400 * 1_000_000_000,
        10,
    );
    let good = span([5; 16], 1, None, "good", now, 10);
    let response = server
        .post_protobuf(
            "/v1/traces",
            &traces_request("mixed", vec![short_id, ancient, future, good]),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            response.bytes().await.expect("body"),
        )
        .expect("response");
    let partial = body.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 3);
    assert!(
        partial
            .error_message
            .contains("invalid traceId: expected 16 bytes, got 12"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("before the year 2000"),
        "{}",
        partial.error_message
    );

    let response = server
        .post(
            "/v1/traces",
            "application/json",
            json_span(
                "5b8efff798038103d269b633813f",
                "eee19b7ec3c1b174",
                &now_text,
            ),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["partialSuccess"]["rejectedSpans"], 1, "{body}");

    // Still serving, and what was acknowledged is there.
    server.flush().await;
    let (status, body) = server.get(&format!("/api/traces/{}", hex(&kept))).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.get(&format!("/api/traces/{}", hex(&[5; 16]))).await;
    assert_eq!(status, 200);
    server.hopline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_bad_input() {
    let server = TestServer::start_with(|config| config.server.max_request_size = LIMIT).await;
    let endpoint = format!("http://{}", server.hopline.otlp_grpc_addr);
    let mut client = TraceServiceClient::connect(endpoint.clone())
        .await
        .expect("connect");
    let now = now_nanos();

    let mut big = span([9; 16], 1, None, "big", now, 1);
    big.attributes.push(string_kv("blob", &"x".repeat(LIMIT)));
    let status = client
        .export(traces_request("big", vec![big]))
        .await
        .expect_err("too large");
    assert!(
        matches!(
            status.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{status:?}"
    );

    let mut bad = span([9; 16], 2, None, "bad", now, 1);
    bad.span_id = vec![1, 2, 3];
    let response = client
        .export(traces_request(
            "grpc",
            vec![bad, span([9; 16], 3, None, "ok", now, 1)],
        ))
        .await
        .expect("export")
        .into_inner();
    let partial = response.partial_success.expect("partial");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("invalid spanId"),
        "{}",
        partial.error_message
    );

    let mut metrics = MetricsServiceClient::connect(endpoint.clone())
        .await
        .expect("connect");
    let status = metrics
        .export(ExportMetricsServiceRequest::default())
        .await
        .expect_err("unimplemented");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status.message().contains("not metrics"),
        "{}",
        status.message()
    );

    // Bytes that are not an export request, and a method the service lacks.
    let channel = tonic::transport::Channel::from_shared(endpoint)
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    for (path, bytes, code, message) in [
        (
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            vec![0x0a, 0xff, 0xff, 0xff],
            tonic::Code::InvalidArgument,
            "cannot decode protobuf ExportTraceServiceRequest",
        ),
        (
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            vec![0xff; 8],
            tonic::Code::InvalidArgument,
            "cannot decode protobuf ExportLogsServiceRequest",
        ),
        (
            "/opentelemetry.proto.collector.trace.v1.TraceService/Import",
            Vec::new(),
            tonic::Code::Unimplemented,
            "has one method, Export",
        ),
    ] {
        grpc.ready().await.expect("ready");
        let status = grpc
            .unary(
                tonic::Request::new(bytes),
                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                RawCodec,
            )
            .await
            .expect_err(path);
        assert_eq!(status.code(), code, "{path}: {status:?}");
        assert!(status.message().contains(message), "{path}: {status:?}");
    }

    server.flush().await;
    let (status, body) = server.get(&format!("/api/traces/{}", hex(&[9; 16]))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["spans"].as_array().expect("spans").len(), 1);
    server.hopline.shutdown().await;
}

/// Sends bytes as they are and takes the answer as bytes.
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_api_bad_input_table() {
    let server = TestServer::start().await;
    let cases: [(&str, u16, &str); 31] = [
        (
            "/api/traces/not-a-trace-id",
            400,
            "malformed trace id 'not-a-trace-id'",
        ),
        (
            "/api/traces/00000000000000000000000000000000",
            400,
            "all-zero",
        ),
        (
            "/api/traces/0123456789abcdef0123456789abcdef",
            404,
            "not found",
        ),
        (
            "/api/traces?service=a&colour=red",
            400,
            "unknown query parameter 'colour'",
        ),
        (
            "/api/traces?service=a&sort=loudest",
            400,
            "invalid sort 'loudest'",
        ),
        (
            "/api/traces?service=a&minDuration=soon",
            400,
            "invalid minDuration 'soon'",
        ),
        (
            "/api/traces?service=a&start=abc",
            400,
            "invalid start 'abc'",
        ),
        (
            "/api/logs?query=(timeout",
            400,
            "malformed query at column 9",
        ),
        ("/api/logs?query=colour:red", 400, "unknown field 'colour'"),
        (
            "/api/logs?offset=9950&limit=100",
            400,
            "goes past the 10000 newest matching lines",
        ),
        ("/api/logs?offset=-1", 400, "invalid offset '-1'"),
        (
            "/api/logs?cursor=12-zz-0",
            400,
            "invalid cursor '12-zz-0'",
        ),
        (
            "/api/logs?cursor=12-0000000000000001-0&offset=5",
            400,
            "cursor and offset",
        ),
        (
            "/api/logs?minSeverity=loud",
            400,
            "invalid minSeverity 'loud'",
        ),
        (
            "/api/logs?query=pattern:0123456789abcdefg",
            400,
            "is not a pattern id",
        ),
        ("/api/logs/patterns?limit=many", 400, "invalid limit 'many'"),
        ("/api/metrics/calls", 400, "parameter 'service' is required"),
        (
            "/api/metrics/latencies?service=a",
            400,
            "parameter 'quantile' is required",
        ),
        (
            "/api/metrics/latencies?service=a&quantile=1.5",
            400,
            "invalid quantile '1.5'",
        ),
        ("/api/metrics/calls?service=a&step=0", 400, "invalid step '0'"),
        (
            "/api/metrics/calls?service=a&lookback=172800000&step=1000",
            400,
            "at most 10000",
        ),
        (
            "/api/metrics/calls?service=a&spanKind=sideways",
            400,
            "invalid spanKind 'sideways'",
        ),
        (
            "/api/metrics/calls?service=a&groupByOperation=maybe",
            400,
            "invalid groupByOperation 'maybe'",
        ),
        ("/api/metrics/throughput?service=a", 404, "no metric 'throughput'"),
        (
            "/api/service-metrics?operation=GET",
            400,
            "'operation' needs exactly one 'service'",
        ),
        ("/api/service-metrics?step=0s", 400, "invalid step '0s'"),
        (
            "/api/service-metrics?lookback=30d&step=1s",
            400,
            "at most 10000",
        ),
        (
            "/api/v3/trace-summaries?query.startTimeMin=yesterday",
            400,
            "invalid query.startTimeMin 'yesterday'",
        ),
        (
            "/api/v3/trace-summaries?query.startTimeMin=2026-01-02T00:00:00Z&query.startTimeMax=2026-01-01T00:00:00Z",
            400,
            "query.startTimeMin is after query.startTimeMax",
        ),
        (
            "/api/v3/trace-summaries?query.durationMin=2s&query.durationMax=1s",
            400,
            "query.durationMin is greater than query.durationMax",
        ),
        ("/api/nope", 404, "no route"),
    ];
    for (path, status, message) in cases {
        let (got, body) = server.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["data"], serde_json::Value::Null, "{path}");
        let msg = body["errors"][0]["msg"].as_str().unwrap_or_default();
        assert!(msg.contains(message), "{path}: {msg}");
        assert_eq!(body["errors"][0]["code"], status, "{path}");
    }
    let (status, _) = server.get("/health").await;
    assert_eq!(status, 200);
    server.hopline.shutdown().await;
}
