//! Shared helpers: start a collector on port 0, build OTLP requests, call the API.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hopline::config::Config;
use hopline::model::Clock;
use hopline::Hopline;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

pub struct TestServer {
    pub hopline: Hopline,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// Sent by [`TestServer::post`] and [`TestServer::get`] when set.
    pub ingest_token: Option<String>,
    pub query_token: Option<String>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(dir.path());
        adjust(&mut config);
        let hopline = Hopline::start(config).await.expect("start");
        TestServer {
            hopline,
            dir,
            http: reqwest::Client::new(),
            ingest_token: None,
            query_token: None,
        }
    }

    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let hopline = Hopline::start_with_clock(Config::for_tests(dir.path()), clock)
            .await
            .expect("start");
        TestServer {
            hopline,
            dir,
            http: reqwest::Client::new(),
            ingest_token: None,
            query_token: None,
        }
    }

    pub fn otlp_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.hopline.otlp_http_addr)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.hopline.http_addr)
    }

    /// Sends `ingest` with what it posts and `query` with what it gets.
    pub fn with_token(mut self, ingest: &str, query: &str) -> TestServer {
        self.ingest_token = Some(ingest.to_string());
        self.query_token = Some(query.to_string());
        self
    }

    pub async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        let mut request = self.http.post(self.otlp_url(path));
        if let Some(token) = &self.ingest_token {
            request = request.bearer_auth(token);
        }
        request
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_protobuf(&self, path: &str, message: &impl Message) -> reqwest::Response {
        self.post(path, "application/x-protobuf", message.encode_to_vec())
            .await
    }

    /// Posts until accepted, waiting out 503s (a full queue) as an SDK does.
    pub async fn export(&self, path: &str, message: &impl Message) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let response = self.post_protobuf(path, message).await;
            match response.status().as_u16() {
                200 => return,
                503 if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => panic!("export to {path} answered {other}"),
            }
        }
    }

    /// GET on the API port: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let mut request = self.http.get(self.api_url(path));
        if let Some(token) = &self.query_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.expect("json body");
        (status, body)
    }

    pub async fn flush(&self) {
        self.hopline.flush().await.expect("flush");
    }
}

/// The text of `/metrics`.
pub async fn metrics_text(server: &TestServer) -> String {
    server
        .http
        .get(server.api_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// A metric's value in `/metrics`.
pub async fn metric(server: &TestServer, name: &str) -> f64 {
    let text = metrics_text(server).await;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Polls `check` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

pub fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn int_kv(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// A span of `service` in trace `trace`, starting `start` ns since the epoch.
pub fn span(
    trace: [u8; 16],
    id: u8,
    parent: Option<u8>,
    name: &str,
    start: u64,
    duration: u64,
) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes: vec![
            string_kv("http.request.method", "GET"),
            int_kv("http.response.status_code", 200),
        ],
        ..Default::default()
    }
}

pub fn traces_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn log_record(trace: Option<[u8; 16]>, time: u64, severity: i32, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        severity_number: severity,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        trace_id: trace.map(|t| t.to_vec()).unwrap_or_default(),
        span_id: trace.map(|_| vec![1; 8]).unwrap_or_default(),
        attributes: vec![string_kv("component", "test")],
        ..Default::default()
    }
}

pub fn logs_request(service: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `text` percent-encoded for a URL's query (unreserved characters kept).
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A time in ns since the epoch as RFC 3339 (UTC), as api_v3 takes it.
pub fn rfc3339(nanos: u64) -> String {
    hopline_ui::format::rfc3339(nanos / 1000)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Span ids (hex) of a Jaeger trace, with their parents.
pub fn span_parents(trace: &Value) -> Vec<(String, Option<String>)> {
    let mut spans: Vec<(String, Option<String>)> = trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|span| {
            let parent = span["references"]
                .as_array()
                .and_then(|refs| refs.iter().find(|r| r["refType"] == "CHILD_OF"))
                .map(|r| r["spanID"].as_str().expect("id").to_string());
            (span["spanID"].as_str().expect("id").to_string(), parent)
        })
        .collect();
    spans.sort();
    spans
}

pub fn tag<'a>(tags: &'a Value, key: &str) -> &'a Value {
    tags.as_array()
        .and_then(|tags| tags.iter().find(|t| t["key"] == key))
        .unwrap_or_else(|| panic!("no tag {key} in {tags}"))
}

pub struct Collector {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of OTLP/HTTP (empty for a role that does not
    /// ingest) and of the API.
    pub http: String,
    pub api: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary on port 0, with `args` after the defaults, and reads the
/// addresses it logs; its log lines are kept for [`Collector::log`].
pub fn spawn_collector(data_dir: &std::path::Path, args: &[&str]) -> Collector {
    spawn_collector_env(data_dir, args, &[])
}

/// [`spawn_collector`] with environment variables.
pub fn spawn_collector_env(
    data_dir: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Collector {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hopline"))
        .envs(envs.iter().copied())
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(
            [
                ["--otlp-grpc-addr", "127.0.0.1:0"],
                ["--otlp-http-addr", "127.0.0.1:0"],
                ["--http-addr", "127.0.0.1:0"],
            ]
            .into_iter()
            .filter(|[flag, _]| !args.contains(flag))
            .flatten(),
        )
        .args(args)
        .args(
            Some(["--commit-interval", "200ms"])
                .filter(|_| !args.contains(&"--commit-interval"))
                .into_iter()
                .flatten(),
        )
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hopline");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut http, mut api) = (None, None);
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    // Up to the line that says it is ready (roles that do not ingest log no
    // OTLP address).
    loop {
        let line = lines
            .next()
            .expect("hopline exited before listening")
            .expect("read");
        let line = strip_ansi(&line);
        log.lock().expect("lock").push(line.clone());
        if let Some(addr) = field(&line, "otlp_http_addr=") {
            http = Some(addr);
        }
        if let Some(url) = field(&line, "url=") {
            api = Some(url.trim_end_matches('/').to_string());
        }
        if line.contains(" ready") && api.is_some() {
            break;
        }
    }
    // Keep reading the log so the child never blocks on a full pipe.
    let kept = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().expect("lock").push(strip_ansi(&line));
        }
    });
    Collector {
        child,
        http: http
            .map(|addr| format!("http://{addr}"))
            .unwrap_or_default(),
        api: api.expect("api"),
        log,
    }
}

impl Collector {
    /// The lines it has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("lock").clone()
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    Some(line[start..].split_whitespace().next()?.to_string())
}
