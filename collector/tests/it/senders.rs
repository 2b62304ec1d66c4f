//! Senders other than OpenTelemetry's, with their own client libraries: Zipkin's
//! `py_zipkin` (PyPI) posting Zipkin v2 JSON and protobuf; Loki's push API from
//! `python-logging-loki` (JSON) and as Promtail sends it (protobuf built with
//! Google's `protobuf` from Loki's push.proto messages, snappy-compressed with
//! `cramjam`); Elasticsearch's bulk API from the official `elasticsearch` client
//! (`helpers.bulk`); syslog from util-linux's `logger` (TCP, octet counting, UDP;
//! RFC 5424 and 3164) and through `rsyslogd` relaying to Hopline. The libraries are
//! installed once into a virtual environment under the target dir; without PyPI
//! the tests skip with a message, unless `HOPLINE_REQUIRE_SENDERS=1` (CI).
//! Each sender also has its bad-input table here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The client libraries, pinned (`mcp`, the MCP SDK, is `mcp.rs`'s).
const PACKAGES: &[&str] = &[
    "py_zipkin[protobuf]==1.2.8",
    "protobuf==7.36.2",
    "python-logging-loki==0.3.1",
    "cramjam==2.14.0",
    "elasticsearch==8.17.2",
    "mcp==2.3.0",
];

/// Made once for every test of this file.
static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);

/// A virtual environment with the client libraries, or None (skip) without PyPI.
pub fn python() -> Option<PathBuf> {
    let mut made = VENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(venv) = made.as_ref() {
        return Some(venv.join("bin/python"));
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("senders-venv");
    let stamp = venv.join("packages.txt");
    let wanted = PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let installed = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet"])
                .args(PACKAGES)
                .status()
                .is_ok_and(|s| s.success())
            && std::fs::write(&stamp, &wanted).is_ok();
        if !installed {
            assert!(
                std::env::var("HOPLINE_REQUIRE_SENDERS").as_deref() != Ok("1"),
                "cannot install {PACKAGES:?}, and HOPLINE_REQUIRE_SENDERS=1"
            );
            eprintln!("skipped: cannot install {PACKAGES:?} from PyPI");
            return None;
        }
    }
    *made = Some(venv.clone());
    Some(venv.join("bin/python"))
}

/// Runs a Python script; its standard output, parsed as JSON.
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> Value {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "the script failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the script's output is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// A gateway's server span, its client call to `user`, and the user service's
/// shared server span (the client's span id, as B3 propagation gives it; sent on
/// its own), which fails; sent with py_zipkin's own HTTP transport in the given
/// encoding.
const PY_ZIPKIN_TRACE: &str = r#"
import json, sys, threading
from py_zipkin import Kind
from py_zipkin.encoding import Encoding
from py_zipkin.transport import SimpleHTTPTransport
from py_zipkin.zipkin import ZipkinAttrs, zipkin_span

host, port, encoding = sys.argv[1], int(sys.argv[2]), getattr(Encoding, sys.argv[3])
transport = SimpleHTTPTransport(host, port)
with zipkin_span(service_name="zk-gateway", span_name="GET /checkout", kind=Kind.SERVER,
                 transport_handler=transport, sample_rate=100.0, encoding=encoding,
                 use_128bit_trace_id=True) as root:
    root.update_binary_annotations({"http.method": "GET", "http.route": "/checkout"})
    with zipkin_span(service_name="zk-gateway", span_name="get user", kind=Kind.CLIENT) as call:
        call.add_sa_binary_annotation(port=9000, service_name="zk-user", host="10.1.2.3")
        call.add_annotation("retrying")
        attrs = call.zipkin_attrs
        # The user service, as another process would: a context of its own, joined
        # from the propagated ids; py_zipkin marks its span shared.
        def user_service():
            server = ZipkinAttrs(trace_id=attrs.trace_id, span_id=attrs.span_id,
                                 parent_span_id=attrs.parent_span_id, flags="0", is_sampled=True)
            with zipkin_span(service_name="zk-user", span_name="GET /users/7", kind=Kind.SERVER,
                             zipkin_attrs=server, transport_handler=transport,
                             encoding=encoding) as user:
                user.update_binary_annotations({"error": "user 7 not found"})
        thread = threading.Thread(target=user_service)
        thread.start()
        thread.join()
print(json.dumps({"trace_id": attrs.trace_id, "root": attrs.parent_span_id, "client": attrs.span_id}))
"#;

async fn trace(server: &TestServer, trace_id: &str) -> Value {
    eventually(Duration::from_secs(20), || async {
        let (status, body) = server.get(&format!("/api/traces/{trace_id}")).await;
        let trace = body["data"][0].clone();
        (status == 200 && trace["spans"].as_array().is_some_and(|s| s.len() == 3)).then_some(trace)
    })
    .await
    .unwrap_or_else(|| panic!("trace {trace_id} did not come back whole"))
}

fn span_named<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["operationName"] == name))
        .unwrap_or_else(|| panic!("no span {name} in {trace}"))
}

fn service_of(trace: &Value, span: &Value) -> String {
    let process = span["processID"].as_str().expect("processID");
    trace["processes"][process]["serviceName"]
        .as_str()
        .expect("serviceName")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_zipkin_sends_a_trace_across_two_services_in_json_and_protobuf() {
    let Some(python) = python() else {
        return;
    };
    let server = TestServer::start_with(|config| {
        config.zipkin_addr = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let zipkin = server.hopline.zipkin_addr.expect("a Zipkin listener");
    let otlp_http = server.hopline.otlp_http_addr;
    // JSON to the Zipkin port, protobuf to the OTLP/HTTP port (which takes both).
    for (port, encoding) in [(zipkin.port(), "V2_JSON"), (otlp_http.port(), "V2_PROTO3")] {
        let python = python.clone();
        let sent = tokio::task::spawn_blocking(move || {
            run_python(
                &python,
                PY_ZIPKIN_TRACE,
                &["127.0.0.1", &port.to_string(), encoding],
            )
        })
        .await
        .expect("sender");
        let trace_id = sent["trace_id"].as_str().expect("trace id");
        let trace = trace(&server, trace_id).await;

        let root = span_named(&trace, "GET /checkout");
        let client = span_named(&trace, "get user");
        let user = span_named(&trace, "GET /users/7");
        assert_eq!(service_of(&trace, root), "zk-gateway", "{encoding}");
        assert_eq!(service_of(&trace, client), "zk-gateway", "{encoding}");
        assert_eq!(service_of(&trace, user), "zk-user", "{encoding}");
        assert_eq!(tag(&root["tags"], "http.method")["value"], "GET");
        assert_eq!(tag(&root["tags"], "span.kind")["value"], "server");
        assert_eq!(tag(&client["tags"], "span.kind")["value"], "client");
        assert_eq!(tag(&client["tags"], "peer.service")["value"], "zk-user");
        assert_eq!(
            tag(&client["tags"], "network.peer.address")["value"],
            "10.1.2.3"
        );
        assert_eq!(
            client["logs"][0]["fields"][0]["value"], "retrying",
            "{encoding}: the annotation is an event: {client}"
        );
        // The shared server span: a span of its own under the client's.
        assert_eq!(client["spanID"], sent["client"], "{encoding}");
        assert_ne!(user["spanID"], client["spanID"], "{encoding}");
        let parents = span_parents(&trace);
        let parent_of = |span: &Value| {
            parents
                .iter()
                .find(|(id, _)| Some(id.as_str()) == span["spanID"].as_str())
                .and_then(|(_, parent)| parent.clone())
        };
        assert_eq!(parent_of(user).as_deref(), client["spanID"].as_str());
        assert_eq!(parent_of(client).as_deref(), root["spanID"].as_str());
        assert_eq!(parent_of(root), None, "{encoding}");
        assert_eq!(tag(&user["tags"], "error")["value"], true, "{encoding}");
        assert_eq!(
            tag(&user["tags"], "otel.status_description")["value"],
            "user 7 not found",
            "{encoding}"
        );
        let duration = root["duration"].as_u64().expect("duration");
        assert!(
            duration >= client["duration"].as_u64().expect("duration"),
            "{encoding}: the root spans its child: {trace}"
        );
    }
    // Zipkin's services are searchable like any other.
    let (_, services) = server.get("/api/services").await;
    let services: Vec<&str> = services["data"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        services.contains(&"zk-gateway") && services.contains(&"zk-user"),
        "{services:?}"
    );
}

/// One row of a bad-input table: what is posted, and what must come back.
struct Case {
    name: &'static str,
    url: String,
    content_type: Option<&'static str>,
    gzip: bool,
    body: Vec<u8>,
    status: u16,
    /// A part of the answer's text.
    message: &'static str,
}

impl Case {
    fn new(
        name: &'static str,
        url: &str,
        content_type: Option<&'static str>,
        body: impl Into<Vec<u8>>,
        status: u16,
        message: &'static str,
    ) -> Case {
        Case {
            name,
            url: url.to_string(),
            content_type,
            gzip: false,
            body: body.into(),
            status,
            message,
        }
    }

    /// Sent gzip'd (`Content-Encoding: gzip`).
    fn gzip(self) -> Case {
        Case { gzip: true, ..self }
    }

    /// Posts the row and checks the answer; its text.
    async fn check(self, http: &reqwest::Client) -> String {
        let mut request = http.post(&self.url);
        if let Some(content_type) = self.content_type {
            request = request.header("content-type", content_type);
        }
        let body = if self.gzip {
            request = request.header("content-encoding", "gzip");
            gzip(&self.body)
        } else {
            self.body
        };
        let response = request.body(body).send().await.expect(self.name);
        assert_eq!(response.status().as_u16(), self.status, "{}", self.name);
        let text = response.text().await.expect("body");
        assert!(text.contains(self.message), "{}: {text}", self.name);
        text
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn zipkin_span(trace_id: &str, id: &str, name: &str, micros: u64) -> String {
    format!(
        r#"{{"traceId":"{trace_id}","id":"{id}","name":"{name}","timestamp":{micros},"duration":150,"kind":"SERVER","localEndpoint":{{"serviceName":"zk-table"}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_bad_input_table() {
    const LIMIT: usize = 64 * 1024;
    let server = TestServer::start_with(|config| {
        config.server.max_request_size = LIMIT;
        config.zipkin_addr = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let zipkin = server.hopline.zipkin_addr.expect("a Zipkin listener");
    let url = format!("http://{zipkin}/api/v2/spans");
    let micros = now_nanos() / 1000;
    let kept = zipkin_span("5a5a5a5a5a5a5a5a", "0000000000000001", "kept", micros);

    let json = Some("application/json");
    let cases = [
        Case::new("accepted", &url, json, format!("[{kept}]"), 202, ""),
        Case::new(
            "accepted, gzip'd, no content type",
            &url,
            None,
            format!(
                "[{}]",
                zipkin_span("5a5a5a5a5a5a5a5a", "0000000000000002", "gzipped", micros)
            ),
            202,
            "",
        )
        .gzip(),
        Case::new(
            "not a list",
            &url,
            json,
            kept.clone(),
            400,
            "cannot decode Zipkin v2 JSON (a list of spans)",
        ),
        Case::new(
            "garbage json",
            &url,
            json,
            "[{nope",
            400,
            "cannot decode Zipkin v2 JSON",
        ),
        Case::new(
            "garbage protobuf",
            &url,
            Some("application/x-protobuf"),
            b"\x0a\x05\x0a".to_vec(),
            400,
            "cannot decode Zipkin v2 protobuf",
        ),
        Case::new(
            "wrong content type",
            &url,
            Some("text/plain"),
            "[]",
            415,
            "unsupported Content-Type 'text/plain'",
        ),
        Case::new(
            "invalid id",
            &url,
            json,
            format!(
                "[{}]",
                zipkin_span("5a5a5a5a5a5a5a5a", "not-hex", "bad", micros)
            ),
            400,
            "invalid id 'not-hex'",
        ),
        Case::new(
            "one span of two without a timestamp: neither is kept",
            &url,
            json,
            format!(
                r#"[{}, {{"traceId":"5a5a5a5a5a5a5a5a","id":"0000000000000004","name":"late"}}]"#,
                zipkin_span("5a5a5a5a5a5a5a5a", "0000000000000003", "dropped", micros)
            ),
            400,
            "1 of 2 spans cannot be stored, so none was: span 'late': timestamp is missing",
        ),
        Case::new(
            "oversized body",
            &url,
            json,
            format!("[{}]", " ".repeat(LIMIT)),
            413,
            "exceeds the 65536-byte limit",
        ),
        Case::new(
            "gzip bomb",
            &url,
            json,
            " ".repeat(8 << 20),
            413,
            "decompressed body exceeds",
        )
        .gzip(),
        Case::new(
            "Zipkin v1",
            &url.replace("/api/v2/", "/api/v1/"),
            json,
            "[]",
            404,
            "send Zipkin v2 to /api/v2/spans",
        ),
    ];
    for case in cases {
        let (status, text) = (case.status, case.check(&server.http).await);
        if status == 202 {
            assert!(text.is_empty(), "Zipkin answers 202 with no body: {text}");
        }
    }
    // What was accepted is there; nothing of a refused request is.
    server.flush().await;
    let (status, body) = server.get("/api/traces/5a5a5a5a5a5a5a5a").await;
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<&str> = body["data"][0]["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter_map(|s| s["operationName"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["gzipped", "kept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_and_loki_take_the_tokens_and_tenants_of_otlp() {
    let tokens = tempfile::NamedTempFile::new().expect("tokens file");
    std::fs::write(
        tokens.path(),
        r#"
ingest_tokens = ["zk-ingest-default-0123456789"]
query_tokens = ["zk-query-default-0123456789"]

[[tenants]]
name = "zk-tenant"
ingest_tokens = ["zk-ingest-tenant-0123456789"]
query_tokens = ["zk-query-tenant-0123456789"]
"#,
    )
    .expect("write tokens");
    let server = TestServer::start_with(|config| {
        *config = config
            .clone()
            .with_tokens_file(tokens.path())
            .expect("valid tokens file");
        config.zipkin_addr = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let zipkin = server.hopline.zipkin_addr.expect("a Zipkin listener");
    let body = format!(
        "[{}]",
        zipkin_span(
            "7e7e7e7e7e7e7e7e",
            "0000000000000001",
            "tenant secret",
            now_nanos() / 1000
        )
    );
    let post = |token: Option<&'static str>| {
        let mut request = server
            .http
            .post(format!("http://{zipkin}/api/v2/spans"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let refused = post(None).await.expect("request");
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let wrong = post(Some("zk-query-tenant-0123456789"))
        .await
        .expect("request");
    assert!(
        [401, 403].contains(&wrong.status().as_u16()),
        "a query token may not write: {}",
        wrong.status()
    );
    let accepted = post(Some("zk-ingest-tenant-0123456789"))
        .await
        .expect("request");
    assert_eq!(accepted.status(), 202);
    server.hopline.flush().await.expect("flush");

    let get = |token: &'static str| {
        server
            .http
            .get(server.api_url("/api/traces/7e7e7e7e7e7e7e7e"))
            .bearer_auth(token)
            .send()
    };
    let own = get("zk-query-tenant-0123456789").await.expect("request");
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.expect("json");
    assert_eq!(own["data"][0]["spans"][0]["operationName"], "tenant secret");
    let other = get("zk-query-default-0123456789").await.expect("request");
    assert_eq!(other.status(), 404, "the default tenant does not see it");

    // A Loki push: refused without a token, stored in the token's tenant with one.
    let line = format!(
        r#"{{"streams":[{{"stream":{{"app":"lk-tenant"}},"values":[["{}","tenant line"]]}}]}}"#,
        now_nanos()
    );
    let loki = |token: Option<&'static str>| {
        let mut request = server
            .http
            .post(server.otlp_url("/loki/api/v1/push"))
            .header("content-type", "application/json")
            .body(line.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(loki(None).await.expect("request").status(), 401);
    assert_eq!(
        loki(Some("zk-ingest-tenant-0123456789"))
            .await
            .expect("request")
            .status(),
        204
    );
    server.hopline.flush().await.expect("flush");
    let search = |token: &'static str| {
        server
            .http
            .get(server.api_url("/api/logs?query=service:lk-tenant"))
            .bearer_auth(token)
            .send()
    };
    let own: Value = search("zk-query-tenant-0123456789")
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(own["data"][0]["body"], "tenant line", "{own}");
    let other: Value = search("zk-query-default-0123456789")
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(other["data"], serde_json::json!([]), "{other}");
}

/// Python's logging through `python-logging-loki`'s handler (Loki's JSON push), a
/// warning carrying a trace id among its tags; then a push as Promtail sends it:
/// a protobuf `logproto.PushRequest` (the messages declared here from Loki's
/// push.proto, encoded by Google's protobuf library), snappy-compressed, with the
/// level and the trace id as structured metadata.
const LOKI_SENDERS: &str = r#"
import json, logging, sys, time, urllib.request
import cramjam
import logging_loki
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

url, trace_id = sys.argv[1], sys.argv[2]
handler = logging_loki.LokiHandler(url=url, tags={"application": "lk-shop", "env": "test"},
                                   version="1")
logger = logging.getLogger("checkout")
logger.propagate = False
logger.addHandler(handler)
logger.setLevel(logging.INFO)
logger.info("order 42 placed")
logger.warning("card declined for order 42", extra={"tags": {"trace_id": trace_id}})
logger.error("payment service unreachable")

proto = descriptor_pb2.FileDescriptorProto(name="push.proto", package="logproto",
                                           dependency=["google/protobuf/timestamp.proto"])
def message(name, *fields):
    m = proto.message_type.add(name=name)
    for number, (field, kind, label, type_name) in enumerate(fields, start=1):
        f = m.field.add(name=field, number=number, label=label, type=kind)
        if type_name:
            f.type_name = type_name
F = descriptor_pb2.FieldDescriptorProto
message("LabelPairAdapter", ("name", F.TYPE_STRING, F.LABEL_OPTIONAL, None),
        ("value", F.TYPE_STRING, F.LABEL_OPTIONAL, None))
message("EntryAdapter", ("timestamp", F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".google.protobuf.Timestamp"),
        ("line", F.TYPE_STRING, F.LABEL_OPTIONAL, None),
        ("structuredMetadata", F.TYPE_MESSAGE, F.LABEL_REPEATED, ".logproto.LabelPairAdapter"))
message("StreamAdapter", ("labels", F.TYPE_STRING, F.LABEL_OPTIONAL, None),
        ("entries", F.TYPE_MESSAGE, F.LABEL_REPEATED, ".logproto.EntryAdapter"),
        ("hash", F.TYPE_UINT64, F.LABEL_OPTIONAL, None))
message("PushRequest", ("streams", F.TYPE_MESSAGE, F.LABEL_REPEATED, ".logproto.StreamAdapter"))
pool = descriptor_pool.DescriptorPool()
pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
pool.AddSerializedFile(proto.SerializeToString())
PushRequest = message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))

push = PushRequest()
stream = push.streams.add(labels='{service_name="lk-worker", env="test", job="batch"}')
entry = stream.entries.add(line="job 7 failed: disk full")
entry.timestamp.FromNanoseconds(time.time_ns())
entry.structuredMetadata.add(name="level", value="error")
entry.structuredMetadata.add(name="traceID", value=trace_id)
body = bytes(cramjam.snappy.compress_raw(push.SerializeToString()))
request = urllib.request.Request(url, body, {"Content-Type": "application/x-protobuf"})
status = urllib.request.urlopen(request).status
print(json.dumps({"protobuf_status": status}))
"#;

async fn logs(server: &TestServer, query: &str, count: usize) -> Vec<Value> {
    let path = format!("/api/logs?query={}&limit=100", urlencode(query));
    eventually(Duration::from_secs(20), || async {
        let (status, body) = server.get(&path).await;
        let data = body["data"].as_array().cloned().unwrap_or_default();
        (status == 200 && data.len() == count).then_some(data)
    })
    .await
    .unwrap_or_else(|| panic!("{query} did not find {count} log lines"))
}

fn body_of(record: &Value) -> &str {
    record["body"].as_str().expect("a string body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_clients_push_logs_that_correlate_with_traces() {
    let Some(python) = python() else {
        return;
    };
    let server = TestServer::start().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let url = server.otlp_url("/loki/api/v1/push");
    let sent =
        tokio::task::spawn_blocking(move || run_python(&python, LOKI_SENDERS, &[&url, trace_id]))
            .await
            .expect("sender");
    assert_eq!(sent["protobuf_status"], 204);

    // python-logging-loki: its tags are the stream's labels, `application` names
    // the service, `severity` is the level.
    let shop = logs(&server, "service:lk-shop", 3).await;
    let warning = shop
        .iter()
        .find(|r| body_of(r) == "card declined for order 42")
        .unwrap_or_else(|| panic!("the warning: {shop:?}"));
    assert_eq!(warning["severityNumber"], 13, "{warning}");
    assert_eq!(warning["traceID"], trace_id, "{warning}");
    assert_eq!(warning["resource"]["env"], "test");
    assert_eq!(warning["resource"]["logger"], "checkout");
    assert_eq!(warning["serviceName"], "lk-shop");
    let error = shop
        .iter()
        .find(|r| body_of(r) == "payment service unreachable")
        .expect("the error");
    assert_eq!(error["severityNumber"], 17);
    assert_eq!(error["traceID"], Value::Null);

    // Promtail's protobuf: `service_name` names the service; the metadata gives
    // the level and the trace id, and stays as attributes.
    let worker = logs(&server, "service:lk-worker", 1).await;
    assert_eq!(body_of(&worker[0]), "job 7 failed: disk full");
    assert_eq!(worker[0]["severityNumber"], 17);
    assert_eq!(worker[0]["traceID"], trace_id);
    assert_eq!(worker[0]["attributes"]["level"], "error");
    assert_eq!(worker[0]["resource"]["job"], "batch");

    // Both lines with the trace id are the trace's logs.
    let correlated = logs(&server, &format!("traceID:{trace_id}"), 2).await;
    let mut bodies: Vec<&str> = correlated.iter().map(body_of).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        ["card declined for order 42", "job 7 failed: disk full"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_push_bad_input_table() {
    const LIMIT: usize = 64 * 1024;
    let server = TestServer::start_with(|config| config.server.max_request_size = LIMIT).await;
    let url = server.otlp_url("/loki/api/v1/push");
    let now = now_nanos();
    let push = |line: &str, time: u64| {
        format!(
            r#"{{"streams":[{{"stream":{{"app":"lk-table"}},"values":[["{time}","{line}"]]}}]}}"#
        )
    };
    let snappy = |bytes: &[u8]| {
        let mut encoder = snap::raw::Encoder::new();
        encoder.compress_vec(bytes).expect("snappy")
    };
    let (json, protobuf) = (Some("application/json"), Some("application/x-protobuf"));
    let cases = [
        Case::new("json", &url, json, push("kept", now), 204, ""),
        Case::new("gzip'd json", &url, json, push("gzipped", now), 204, "").gzip(),
        Case::new(
            "one entry too old of three: the others are kept",
            &url,
            json,
            format!(
                r#"{{"streams":[{{"stream":{{"app":"lk-table"}},"values":[["{now}","kept too"],["946684700000000000","ancient"],["{now}","and this"]]}}]}}"#
            ),
            400,
            "1 entries were dropped, the rest is stored: stream {app=\"lk-table\"}: log record: timeUnixNano 946684700000000000 is before the year 2000",
        ),
        Case::new(
            "garbage json",
            &url,
            json,
            "{\"streams\": [",
            400,
            "cannot decode the Loki push JSON",
        ),
        Case::new(
            "a timestamp that is not a number",
            &url,
            json,
            push("x", 0).replace("\"0\"", "\"yesterday\""),
            400,
            "'yesterday' is not a number of nanoseconds",
        ),
        Case::new(
            "no type: protobuf, but not snappy",
            &url,
            None,
            "plain text",
            400,
            "not snappy-compressed",
        ),
        Case::new(
            "snappy garbage",
            &url,
            protobuf,
            snappy(&[0xff; 32]),
            400,
            "cannot decode protobuf logproto.PushRequest",
        ),
        Case::new(
            "snappy bomb",
            &url,
            protobuf,
            snappy(&vec![0; 1 << 20]),
            413,
            "the decompressed body would be 1048576 bytes, over the 65536-byte limit",
        ),
        Case::new(
            "bad labels",
            &url,
            protobuf,
            snappy(b"\x0a\x05\x0a\x03{a="),
            400,
            "invalid labels",
        ),
        Case::new(
            "wrong content type",
            &url,
            Some("text/plain"),
            "hello",
            415,
            "unsupported Content-Type 'text/plain'",
        ),
        Case::new(
            "oversized",
            &url,
            json,
            vec![b' '; LIMIT + 1],
            413,
            "exceeds the 65536-byte limit",
        ),
    ];
    for case in cases {
        case.check(&server.http).await;
    }
    let kept = logs(&server, "service:lk-table", 4).await;
    let mut bodies: Vec<&str> = kept.iter().map(body_of).collect();
    bodies.sort();
    assert_eq!(bodies, ["and this", "gzipped", "kept", "kept too"]);
}

/// The official Elasticsearch client: its product check (`info`), then
/// `helpers.bulk` with ECS documents, nested and dotted, one with a trace id; then
/// a bulk with a document that cannot be stored beside one that can.
const ELASTICSEARCH_SENDER: &str = r#"
import json, sys, time
from datetime import datetime, timezone
from elasticsearch import Elasticsearch, helpers

url, trace_id = sys.argv[1], sys.argv[2]
es = Elasticsearch(url)
info = es.info()
now = datetime.now(timezone.utc).isoformat()
actions = [
    {"_index": "es-shop", "_id": "o-1", "_source": {
        "@timestamp": now, "message": "order 42 shipped", "log": {"level": "info"},
        "service": {"name": "es-shop"}, "trace": {"id": trace_id}, "order": {"id": 42}}},
    {"_index": "es-shop", "_source": {
        "@timestamp": int(time.time() * 1000), "message": "stock low for sku 7",
        "log.level": "warning", "service.name": "es-shop", "host.name": "node-3"}},
]
stored, _ = helpers.bulk(es, actions)
stored_too, errors = helpers.bulk(es, [
    {"_index": "es-shop", "_source": {"message": "bad time", "@timestamp": "yesterday"}},
    {"_index": "es-shop", "_source": {"message": "fine too", "service.name": "es-shop"}},
], raise_on_error=False)
print(json.dumps({"version": info["version"]["number"], "stored": stored,
                  "stored_too": stored_too, "errors": errors}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elasticsearch_client_bulk_indexes_logs() {
    let Some(python) = python() else {
        return;
    };
    let server = TestServer::start().await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let url = server.otlp_url("");
    let sent = tokio::task::spawn_blocking(move || {
        run_python(&python, ELASTICSEARCH_SENDER, &[&url, trace_id])
    })
    .await
    .expect("sender");
    assert_eq!(sent["version"], "8.17.0");
    assert_eq!(sent["stored"], 2);
    assert_eq!(sent["stored_too"], 1, "{sent}");
    let error = &sent["errors"][0]["index"];
    assert_eq!(error["status"], 400, "{sent}");
    assert_eq!(error["error"]["type"], "document_parsing_exception");
    assert!(
        error["error"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("@timestamp 'yesterday'")),
        "{sent}"
    );

    let records = logs(&server, "service:es-shop", 3).await;
    let shipped = records
        .iter()
        .find(|r| body_of(r) == "order 42 shipped")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(shipped["severityNumber"], 9);
    assert_eq!(shipped["traceID"], trace_id);
    assert_eq!(shipped["attributes"]["order.id"], 42);
    assert_eq!(shipped["resource"]["elasticsearch.index"], "es-shop");
    let low = records
        .iter()
        .find(|r| body_of(r) == "stock low for sku 7")
        .expect("the dotted document");
    assert_eq!(low["severityNumber"], 13);
    assert_eq!(low["resource"]["host.name"], "node-3");
    assert!(records.iter().any(|r| body_of(r) == "fine too"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_bulk_bad_input_table() {
    const LIMIT: usize = 64 * 1024;
    let server = TestServer::start_with(|config| config.server.max_request_size = LIMIT).await;
    let url = server.otlp_url("/es-table/_bulk");
    let ndjson = Some("application/x-ndjson");
    let document = r#"{"message":"kept","service.name":"es-table"}"#;
    let cases = [
        Case::new(
            "stored",
            &url,
            ndjson,
            format!("{{\"index\":{{}}}}\n{document}\n"),
            200,
            r#""errors":false"#,
        ),
        Case::new(
            "gzip'd",
            &url,
            ndjson,
            format!(
                "{{\"create\":{{}}}}\n{}\n",
                document.replace("kept", "gzipped")
            ),
            200,
            r#""result":"created""#,
        )
        .gzip(),
        Case::new(
            "a delete among the actions",
            &url,
            ndjson,
            "{\"delete\":{\"_id\":\"1\"}}\n",
            200,
            "the delete action is not supported",
        ),
        Case::new(
            "malformed action line",
            &url,
            ndjson,
            "{\"index\":{}}\n{}\nnot json\n",
            400,
            "Malformed action/metadata line [3]",
        ),
        Case::new(
            "an action without its document",
            &url,
            ndjson,
            "{\"index\":{}}\n",
            400,
            "has no document after it",
        ),
        Case::new(
            "wrong content type",
            &url,
            Some("text/plain"),
            "{}",
            415,
            "media_type_header_exception",
        ),
        Case::new(
            "oversized",
            &url,
            ndjson,
            vec![b' '; LIMIT + 1],
            413,
            "exceeds the 65536-byte limit",
        ),
        Case::new(
            "gzip bomb",
            &url,
            ndjson,
            " ".repeat(8 << 20),
            413,
            "decompressed body exceeds",
        )
        .gzip(),
    ];
    for case in cases {
        let text = case.check(&server.http).await;
        let answer: Value = serde_json::from_str(&text).expect("an Elasticsearch JSON answer");
        assert!(
            answer.get("items").is_some() || answer["error"]["root_cause"].is_array(),
            "{text}"
        );
    }
    // What shippers ask first, answered as Elasticsearch would, with its header.
    for (method, path, status) in [
        ("GET", "/", 200),
        ("HEAD", "/", 200),
        ("GET", "/_license", 200),
        ("HEAD", "/_index_template/filebeat-8", 200),
        ("PUT", "/_index_template/filebeat-8", 200),
        ("PUT", "/_ilm/policy/filebeat", 200),
    ] {
        let response = server
            .http
            .request(method.parse().expect("method"), server.otlp_url(path))
            .header("content-type", "application/json")
            .body(if method == "PUT" { "{}" } else { "" })
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response
                .headers()
                .get("x-elastic-product")
                .and_then(|v| v.to_str().ok()),
            Some("Elasticsearch"),
            "{method} {path}"
        );
    }
    let kept = logs(&server, "service:es-table", 2).await;
    let mut bodies: Vec<&str> = kept.iter().map(body_of).collect();
    bodies.sort();
    assert_eq!(bodies, ["gzipped", "kept"]);
}

/// A free TCP port on loopback (for rsyslog's own input).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// `logger` (util-linux) and `rsyslogd`, or None (skip) where they are missing.
fn syslog_tools() -> Option<PathBuf> {
    let found = |tool: &str| {
        ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .map(|dir| Path::new(dir).join(tool))
            .find(|path| path.exists())
    };
    match (found("logger"), found("rsyslogd")) {
        (Some(_), Some(rsyslogd)) => Some(rsyslogd),
        _ => {
            assert!(
                std::env::var("HOPLINE_REQUIRE_SENDERS").as_deref() != Ok("1"),
                "logger or rsyslogd is missing, and HOPLINE_REQUIRE_SENDERS=1"
            );
            eprintln!("skipped: logger or rsyslogd is missing (apt-get install rsyslog)");
            None
        }
    }
}

fn logger(args: &[&str]) {
    let status = Command::new("logger")
        .args(args)
        .status()
        .expect("run logger");
    assert!(status.success(), "logger {args:?}");
}

/// rsyslogd in the foreground with its own configuration: a TCP input on a free
/// port, everything forwarded to Hopline as RFC 5424 with octet counting, as a
/// relay in front of Hopline would be set up. Killed when dropped.
struct Rsyslog {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start(rsyslogd: &Path, hopline: std::net::SocketAddr) -> Rsyslog {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
*.* action(type="omfwd" target="{host}" port="{hopline_port}" protocol="tcp"
           TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
"#,
                dir = dir.path().display(),
                host = hopline.ip(),
                hopline_port = hopline.port(),
            ),
        )
        .expect("write rsyslog.conf");
        let child = Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        // Ready once its input accepts connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "rsyslogd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_and_rsyslog_send_syslog_over_tcp_and_udp() {
    let Some(rsyslogd) = syslog_tools() else {
        return;
    };
    let server = TestServer::start_with(|config| {
        config.syslog_addr = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let syslog = server.hopline.syslog_addr.expect("a syslog listener");
    let port = syslog.port().to_string();
    let relay = tokio::task::spawn_blocking(move || {
        let port = port.as_str();
        let to = ["-n", "127.0.0.1", "-P", port];
        // RFC 5424 over TCP, newline-framed, with structured data.
        logger(
            &[
                &to[..],
                &["--tcp", "--rfc5424", "-t", "sl-app", "-p", "local0.err"],
                &[
                    "--sd-id",
                    "order@32473",
                    "--sd-param",
                    "id=\"42\"",
                    "disk almost full",
                ],
            ]
            .concat(),
        );
        // RFC 5424 over TCP, octet-counted.
        logger(
            &[
                &to[..],
                &[
                    "--tcp",
                    "--octet-count",
                    "--rfc5424",
                    "-t",
                    "sl-counted",
                    "counted frame",
                ],
            ]
            .concat(),
        );
        // RFC 3164 over UDP.
        logger(
            &[
                &to[..],
                &[
                    "--udp",
                    "--rfc3164",
                    "-t",
                    "sl-cron",
                    "-p",
                    "cron.notice",
                    "job done",
                ],
            ]
            .concat(),
        );
        // Through rsyslog, as a relay forwards.
        let relay = Rsyslog::start(&rsyslogd, syslog);
        let relay_port = relay.port.to_string();
        logger(&[
            "-n",
            "127.0.0.1",
            "-P",
            &relay_port,
            "--tcp",
            "--rfc5424",
            "-t",
            "sl-relayed",
            "-p",
            "user.warning",
            "via rsyslog",
        ]);
        relay
    })
    .await
    .expect("senders");

    let app = logs(&server, "service:sl-app", 1).await;
    assert_eq!(body_of(&app[0]), "disk almost full");
    assert_eq!(app[0]["severityNumber"], 17);
    assert_eq!(app[0]["severityText"], "err");
    assert_eq!(app[0]["attributes"]["syslog.facility"], "local0");
    assert_eq!(app[0]["attributes"]["syslog.sd.order@32473.id"], "42");
    assert!(app[0]["resource"]["host.name"].is_string(), "{}", app[0]);
    let counted = logs(&server, "service:sl-counted", 1).await;
    assert_eq!(body_of(&counted[0]), "counted frame");
    let cron = logs(&server, "service:sl-cron", 1).await;
    assert_eq!(body_of(&cron[0]), "job done");
    assert_eq!(cron[0]["severityNumber"], 10);
    assert_eq!(cron[0]["attributes"]["syslog.facility"], "cron");
    let relayed = logs(&server, "service:sl-relayed", 1).await;
    assert_eq!(body_of(&relayed[0]), "via rsyslog");
    assert_eq!(relayed[0]["severityNumber"], 13);
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_bad_input_is_cut_stored_or_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(|config| {
        config.syslog_addr = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let syslog = server.hopline.syslog_addr.expect("a syslog listener");

    // A line of 100 KiB is cut to 64 KiB; a line of bytes that are not UTF-8 and
    // no header is kept as it came (lossily), at the receipt time.
    let mut stream = tokio::net::TcpStream::connect(syslog)
        .await
        .expect("connect");
    let mut long = b"<14>1 - - sl-long - - - ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 100 << 10));
    long.push(b'\n');
    stream.write_all(&long).await.expect("write");
    stream
        .write_all(b"sl-garbage \xff\xfe no header\n")
        .await
        .expect("write");
    stream.flush().await.expect("flush");
    let long = logs(&server, "service:sl-long", 1).await;
    let cut = body_of(&long[0]).len();
    assert!(
        cut < 64 << 10 && cut > 60 << 10,
        "cut to the 64 KiB frame: {cut}"
    );
    let garbage = logs(&server, "garbage", 1).await;
    assert!(body_of(&garbage[0]).contains('\u{fffd}'), "{}", garbage[0]);

    // An octet count past the limit closes the connection; the server serves on.
    stream
        .write_all(b"99999999 <14>1 - - sl-huge - - - x")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "closed: {closed:?}"
    );
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    udp.send_to(b"<14>1 - - sl-after - - - still here", syslog)
        .await
        .expect("send");
    let after = logs(&server, "service:sl-after", 1).await;
    assert_eq!(body_of(&after[0]), "still here");
}
