//! A real OpenTelemetry client end to end: the Rust SDK and its `opentelemetry-otlp`
//! exporter, over gRPC and over HTTP/protobuf, send a trace across two services and
//! a log carrying its trace id; the API gives every field back.

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{LogExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::Value;

use crate::common::{eventually, span_parents, tag, urlencode, TestServer};

#[derive(Clone, Copy)]
enum Transport {
    Grpc,
    HttpProtobuf,
}

fn resource(service: &str) -> Resource {
    Resource::builder_empty()
        .with_service_name(service.to_string())
        .with_attributes([
            KeyValue::new("service.version", "1.4.2"),
            KeyValue::new("host.name", "node-3"),
        ])
        .build()
}

fn tracer_provider(transport: Transport, server: &TestServer, service: &str) -> SdkTracerProvider {
    let exporter = match transport {
        Transport::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{}", server.hopline.otlp_grpc_addr))
            .build(),
        Transport::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(server.otlp_url("/v1/traces"))
            .build(),
    }
    .expect("span exporter");
    SdkTracerProvider::builder()
        .with_resource(resource(service))
        .with_simple_exporter(exporter)
        .build()
}

fn logger_provider(transport: Transport, server: &TestServer, service: &str) -> SdkLoggerProvider {
    let exporter = match transport {
        Transport::Grpc => LogExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{}", server.hopline.otlp_grpc_addr))
            .build(),
        Transport::HttpProtobuf => LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(server.otlp_url("/v1/logs"))
            .build(),
    }
    .expect("log exporter");
    SdkLoggerProvider::builder()
        .with_resource(resource(service))
        .with_simple_exporter(exporter)
        .build()
}

struct Sent {
    trace_id: String,
    root: String,
    client: String,
    server: String,
    linked_trace: String,
}

/// Emits gateway -> orders: a server span, its client call, the orders server span
/// (typed attributes, an event, a link, an error status) and an orders log line.
fn emit(transport: Transport, server: &TestServer) -> Sent {
    let gateway = tracer_provider(transport, server, "gateway");
    let orders = tracer_provider(transport, server, "orders");
    let orders_logs = logger_provider(transport, server, "orders");
    let gateway_tracer = gateway.tracer("gateway-http");
    let orders_tracer = orders.tracer("orders-http");

    let root = gateway_tracer
        .span_builder("GET /api/orders")
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new("http.request.method", "POST")])
        .start(&gateway_tracer);
    let root_cx = Context::new().with_span(root);
    let client = gateway_tracer
        .span_builder("POST /orders")
        .with_kind(SpanKind::Client)
        .start_with_context(&gateway_tracer, &root_cx);
    let client_context = client.span_context().clone();

    let linked = SpanContext::new(
        TraceId::from_bytes([0x42; 16]),
        SpanId::from_bytes([0x24; 8]),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let remote_parent = Context::new().with_remote_span_context(client_context.clone());
    let mut server_span = orders_tracer
        .span_builder("POST /orders")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("order.paid", false),
            KeyValue::new("order.items", 3i64),
            KeyValue::new("order.total", 59.97f64),
            KeyValue::new("order.sku", "SKU-1"),
        ])
        .with_links(vec![Link::with_context(linked)])
        .start_with_context(&orders_tracer, &remote_parent);
    server_span.add_event(
        "order validated",
        vec![KeyValue::new("validator", "rules-v2")],
    );
    let server_context = server_span.span_context().clone();

    let logger = orders_logs.logger("orders");
    let mut record = logger.create_log_record();
    record.set_body(AnyValue::from("order 42 rejected: card declined by issuer"));
    record.set_severity_number(Severity::Error);
    record.set_severity_text("ERROR");
    record.add_attribute("order.id", 42i64);
    record.set_trace_context(
        server_context.trace_id(),
        server_context.span_id(),
        Some(TraceFlags::SAMPLED),
    );
    logger.emit(record);

    server_span.set_status(Status::error("card declined"));
    server_span.end();
    let mut client = client;
    client.end();
    root_cx.span().end();

    for result in [gateway.shutdown(), orders.shutdown()] {
        result.expect("flush spans");
    }
    orders_logs.shutdown().expect("flush logs");
    Sent {
        trace_id: format!("{:032x}", client_context.trace_id()),
        root: format!("{:016x}", root_cx.span().span_context().span_id()),
        client: format!("{:016x}", client_context.span_id()),
        server: format!("{:016x}", server_context.span_id()),
        linked_trace: "42".repeat(16),
    }
}

async fn round_trip(transport: Transport) {
    let server = TestServer::start().await;
    let sent = {
        let server_ref = &server;
        tokio::task::block_in_place(|| emit(transport, server_ref))
    };
    let trace = eventually(std::time::Duration::from_secs(10), || async {
        let (status, body) = server.get(&format!("/api/traces/{}", sent.trace_id)).await;
        (status == 200 && body["data"][0]["spans"].as_array().map(Vec::len) == Some(3))
            .then_some(body)
    })
    .await
    .expect("the trace becomes visible");
    let trace = &trace["data"][0];

    assert_eq!(span_parents(trace), {
        let mut expected = vec![
            (sent.root.clone(), None),
            (sent.client.clone(), Some(sent.root.clone())),
            (sent.server.clone(), Some(sent.client.clone())),
        ];
        expected.sort();
        expected
    });
    let spans = trace["spans"].as_array().expect("spans");
    let orders_span = spans
        .iter()
        .find(|s| s["spanID"] == sent.server.as_str())
        .expect("orders span");
    let tags = &orders_span["tags"];
    assert_eq!(
        tag(tags, "order.paid"),
        &serde_json::json!({"key": "order.paid", "type": "bool", "value": false})
    );
    assert_eq!(tag(tags, "order.items")["type"], "int64");
    assert_eq!(tag(tags, "order.items")["value"], 3);
    assert_eq!(tag(tags, "order.total")["type"], "float64");
    assert_eq!(tag(tags, "order.sku")["type"], "string");
    assert_eq!(tag(tags, "span.kind")["value"], "server");
    assert_eq!(tag(tags, "error")["value"], true);
    assert_eq!(
        tag(tags, "otel.status_description")["value"],
        "card declined"
    );
    assert_eq!(tag(tags, "otel.scope.name")["value"], "orders-http");
    assert_eq!(
        orders_span["logs"][0]["fields"][0]["value"],
        "order validated"
    );
    assert_eq!(
        tag(&orders_span["logs"][0]["fields"], "validator")["value"],
        "rules-v2"
    );
    let follows: Vec<&Value> = orders_span["references"]
        .as_array()
        .expect("refs")
        .iter()
        .filter(|r| r["refType"] == "FOLLOWS_FROM")
        .collect();
    assert_eq!(follows.len(), 1);
    assert_eq!(follows[0]["traceID"], sent.linked_trace.as_str());
    let process = &trace["processes"][orders_span["processID"].as_str().expect("pid")];
    assert_eq!(process["serviceName"], "orders");
    assert_eq!(tag(&process["tags"], "service.version")["value"], "1.4.2");
    assert_eq!(tag(&process["tags"], "host.name")["value"], "node-3");
    let client_span = spans
        .iter()
        .find(|s| s["spanID"] == sent.client.as_str())
        .expect("client span");
    assert_eq!(
        trace["processes"][client_span["processID"].as_str().expect("pid")]["serviceName"],
        "gateway"
    );

    // The log line, by trace id and by full text.
    let logs = eventually(std::time::Duration::from_secs(10), || async {
        let (_, body) = server
            .get(&format!("/api/logs?traceID={}", sent.trace_id))
            .await;
        (body["total"] == 1).then_some(body)
    })
    .await
    .expect("the log becomes visible");
    let log = &logs["data"][0];
    assert_eq!(log["spanID"], sent.server.as_str());
    assert_eq!(log["serviceName"], "orders");
    assert_eq!(log["severityNumber"], 17);
    assert_eq!(log["attributes"]["order.id"], 42);
    for query in [
        "\"card declined\"",
        "service:orders AND severity:error declined",
        "attributes.order.id:42",
        // A resource attribute, found through the split's origin table.
        "attributes.host.name:node-3 AND declined",
    ] {
        let (status, body) = server
            .get(&format!("/api/logs?query={}", urlencode(query)))
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(body["total"], 1, "{query}: {body}");
        assert_eq!(
            body["data"][0]["traceID"],
            sent.trace_id.as_str(),
            "{query}"
        );
    }
    let (_, body) = server
        .get(&format!(
            "/api/logs?query={}",
            urlencode("declined NOT service:orders")
        ))
        .await;
    assert_eq!(body["total"], 0, "{body}");
    let (_, body) = server
        .get(&format!(
            "/api/logs?query={}",
            urlencode("attributes.host.name:node-4 OR attributes.service.version:9")
        ))
        .await;
    assert_eq!(body["total"], 0, "{body}");

    // Search, services, operations and the service map.
    let (_, body) = server.get("/api/services").await;
    assert_eq!(body["data"], serde_json::json!(["gateway", "orders"]));
    let (_, body) = server
        .get("/api/operations?service=orders&spanKind=server")
        .await;
    assert_eq!(
        body["data"],
        serde_json::json!([{"name": "POST /orders", "spanKind": "server"}])
    );
    let (_, body) = server
        .get(&format!(
            "/api/traces?service=orders&tags={}",
            urlencode(r#"{"error":"true"}"#)
        ))
        .await;
    assert_eq!(body["data"][0]["traceID"], sent.trace_id.as_str(), "{body}");
    // Resource attributes are tags too (Jaeger's process tags).
    let (_, body) = server
        .get(&format!(
            "/api/traces?service=orders&tags={}",
            urlencode(r#"{"host.name":"node-3","error":"true"}"#)
        ))
        .await;
    assert_eq!(body["data"][0]["traceID"], sent.trace_id.as_str(), "{body}");
    for tags in [
        r#"{"host.name":"node-4"}"#,
        r#"{"service.version":"1.4.3"}"#,
    ] {
        let (_, body) = server
            .get(&format!(
                "/api/traces?service=orders&tags={}",
                urlencode(tags)
            ))
            .await;
        assert_eq!(body["data"], serde_json::json!([]), "{tags}: {body}");
    }
    let (_, body) = server
        .get("/api/traces?service=orders&tag=order.sku:SKU-2")
        .await;
    assert_eq!(body["data"], serde_json::json!([]));
    let (_, mut body) = server.get("/api/dependencies").await;
    // The callee's latency, as the SDK timed it.
    let link = &mut body["data"][0];
    for quantile in ["p50", "p95", "p99"] {
        let ms = link[quantile].as_f64().unwrap_or(-1.0);
        assert!(ms >= 0.0, "{quantile}: {link}");
        link.as_object_mut().map(|link| link.remove(quantile));
    }
    assert_eq!(
        body["data"],
        serde_json::json!([{"parent": "gateway", "child": "orders", "callCount": 1, "errorCount": 1}])
    );
    let (status, body) = server
        .get("/api/v3/traces?query.service_name=gateway")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["resourceSpans"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    server.hopline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_grpc() {
    round_trip(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_http_protobuf() {
    round_trip(Transport::HttpProtobuf).await;
}
