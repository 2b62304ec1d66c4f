//! The standard workload: what one busy service mesh sends.
//!
//! Spans are HTTP server spans with the 10 attributes of the stable HTTP semantic
//! conventions (a ~100-character user agent among them) under resources of 9
//! attributes; 10 spans per trace, and the spans of a trace are spread over about a
//! hundred export requests, as they are when many requests are in flight at once.
//! Log records carry a ~100-byte body, 5 attributes, and a trace id 70% of the time.
//! About 500 bytes per span and 330 per log record on the wire, before gzip.
//!
//! Everything is a pure function of a record's sequence number and the run's nonce,
//! so the harness can tell which traces are complete and which words occur where.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};

/// Records per export request.
pub const BATCH: u64 = 512;
/// Spans per trace.
pub const SPANS_PER_TRACE: u64 = 10;
/// Traces in flight at once: consecutive spans belong to different traces.
pub const CONCURRENT_TRACES: u64 = 5_000;
/// Services in the mesh; an export request carries spans of several.
pub const SERVICES: u64 = 20;
/// Services per export request (one resource each).
const RESOURCES_PER_REQUEST: u64 = 4;

const ROUTES: [&str; 10] = [
    "/api/items/{id}",
    "/api/orders/{id}",
    "/api/users/{id}",
    "/api/cart",
    "/api/checkout",
    "/api/search",
    "/api/items/{id}/reviews",
    "/api/payments/{id}",
    "/api/inventory/{sku}",
    "/api/recommendations",
];

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0 (compatible; bench)",
    "okhttp/4.12.0 (Android 14; Pixel 8 Pro; build UQ1A.240205.004; app com.example.shop 7.3.1 release)",
];

/// Words of the log templates; `LOG_TEMPLATES[i]` contains `LOG_WORDS[i]` and no other of them.
pub const LOG_WORDS: [&str; 10] = [
    "handled",
    "cache",
    "inventory",
    "payment",
    "retrying",
    "session",
    "shipment",
    "throttled",
    "timeout",
    "validated",
];

/// A cheap, well-mixed hash (splitmix64), so values look random but are reproducible.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

pub fn service_name(service: u64) -> String {
    format!("service-{service:02}")
}

/// The resource of one service: 9 attributes.
pub fn resource(service: u64) -> Resource {
    Resource {
        attributes: vec![
            string("service.name", service_name(service)),
            string("service.version", format!("1.{}.3", service % 4)),
            string(
                "service.instance.id",
                format!("{}-7d9f8c6b5-x{service:02}q", service_name(service)),
            ),
            string("service.namespace", "shop"),
            string("deployment.environment.name", "production"),
            string(
                "host.name",
                format!("node-{:02}.eu-west-1.compute.internal", service % 7),
            ),
            string("os.type", "linux"),
            string("telemetry.sdk.name", "opentelemetry"),
            string("telemetry.sdk.language", "rust"),
        ],
        ..Default::default()
    }
}

/// Which trace, and which position in it, span number `n` is.
pub fn span_position(n: u64) -> (u64, u64) {
    let slot = n % CONCURRENT_TRACES;
    let round = n / CONCURRENT_TRACES;
    let trace = round / SPANS_PER_TRACE * CONCURRENT_TRACES + slot;
    (trace, round % SPANS_PER_TRACE)
}

/// Traces numbered below this have all their spans among the first `sent` spans.
pub fn complete_traces(sent: u64) -> u64 {
    sent / (CONCURRENT_TRACES * SPANS_PER_TRACE) * CONCURRENT_TRACES
}

/// Random-looking, as SDKs make them (ids do not compress).
pub fn trace_id(nonce: u64, trace: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&mix(nonce ^ trace).to_be_bytes());
    id[8..].copy_from_slice(&mix(!nonce ^ trace).to_be_bytes());
    id
}

fn span_id(nonce: u64, trace: u64, position: u64) -> [u8; 8] {
    (mix(nonce.rotate_left(17) ^ (trace * 16 + position)) | 1).to_be_bytes()
}

/// Generates export requests; `now` anchors timestamps (ns since the epoch).
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub nonce: u64,
    pub now: u64,
}

impl Workload {
    /// Span number `n`.
    pub fn span(&self, n: u64) -> (u64, Span) {
        let (trace, position) = span_position(n);
        let h = mix(n ^ self.nonce);
        let service = (mix(trace) + position) % SERVICES;
        let route = ROUTES[((trace + position) % ROUTES.len() as u64) as usize];
        let method = if h.is_multiple_of(4) { "POST" } else { "GET" };
        let failed = h.is_multiple_of(50);
        let start = self.now + (trace % 10_000) * 1_000_000 + position * 100_000;
        let duration = 200_000 + (h >> 8) % 400_000_000 / (position + 1);
        let span = Span {
            trace_id: trace_id(self.nonce, trace).to_vec(),
            span_id: span_id(self.nonce, trace, position).to_vec(),
            parent_span_id: if position == 0 {
                Vec::new()
            } else {
                span_id(self.nonce, trace, (position - 1) / 2).to_vec()
            },
            name: format!("{method} {route}"),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes: vec![
                string("http.request.method", method),
                string(
                    "url.path",
                    route.replace("{id}", &((h >> 16) % 100_000).to_string()),
                ),
                string("url.scheme", "https"),
                string("http.route", route),
                int("http.response.status_code", if failed { 500 } else { 200 }),
                string(
                    "server.address",
                    format!("{}.shop.svc", service_name(service)),
                ),
                int("server.port", 8080),
                string(
                    "client.address",
                    format!(
                        "10.{}.{}.{}",
                        (h >> 24) % 4,
                        (h >> 32) % 256,
                        (h >> 40) % 256
                    ),
                ),
                string("user_agent.original", USER_AGENTS[((h >> 48) % 4) as usize]),
                string(
                    "network.protocol.version",
                    if h.is_multiple_of(3) { "2" } else { "1.1" },
                ),
            ],
            status: failed.then(|| Status {
                code: status::StatusCode::Error as i32,
                message: "upstream returned 500".into(),
            }),
            ..Default::default()
        };
        (service, span)
    }

    /// The export request of spans `first .. first + count`.
    pub fn spans(&self, first: u64, count: u64) -> ExportTraceServiceRequest {
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); RESOURCES_PER_REQUEST as usize];
        let offset = first / BATCH % SERVICES;
        for n in first..first + count {
            let (_, span) = self.span(n);
            by_service[(n % RESOURCES_PER_REQUEST) as usize].push(span);
        }
        ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .enumerate()
                .map(|(i, spans)| ResourceSpans {
                    resource: Some(resource((offset + i as u64 * 5) % SERVICES)),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(
                            opentelemetry_proto::tonic::common::v1::InstrumentationScope {
                                name: "opentelemetry-http".into(),
                                version: "0.33.0".into(),
                                ..Default::default()
                            },
                        ),
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// The service whose resource carries log record `n`.
    pub fn log_service(first_of_batch: u64, n: u64) -> u64 {
        (first_of_batch / BATCH % SERVICES + n % RESOURCES_PER_REQUEST * 5) % SERVICES
    }

    /// Log record number `n`: its body holds the word `LOG_WORDS[n % 10]` and the rare
    /// term [`Workload::log_request_id`]`(n)`, unique to it.
    pub fn log(&self, n: u64) -> LogRecord {
        let h = mix(n ^ self.nonce ^ 0x5eed);
        let (severity, text) = match h % 20 {
            0 => (17, "ERROR"),
            1 | 2 => (13, "WARN"),
            3 => (5, "DEBUG"),
            _ => (9, "INFO"),
        };
        let user = (h >> 8) % 50_000;
        let ms = (h >> 24) % 2_000;
        let id = Self::log_request_id(n);
        let body = match n % 10 {
            0 => format!("handled GET /api/items/{user} for user u{user} in {ms} ms, request {id}, 200 OK returned to caller"),
            1 => format!("cache lookup for key item:{user} missed after {ms} ms; loading from database, request {id}"),
            2 => format!("inventory reserved 3 units of sku-{user} for order {id} in warehouse eu-west-1a after {ms} ms"),
            3 => format!("payment authorised for order {id}: amount {user}.99 EUR, provider latency {ms} ms, card ending 4242"),
            4 => format!("retrying call to user-service (attempt 2 of 3) for request {id} after {ms} ms: connection reset"),
            5 => format!("session s{user} refreshed for request {id}; expires in 3600 s, {ms} ms spent in token exchange"),
            6 => format!("shipment created for order {id}, carrier dhl, {ms} parcels queued for pickup at depot {user}"),
            7 => format!("throttled client 10.1.{}.{} on request {id}: {ms} requests in the last minute exceed quota", user % 256, ms % 256),
            8 => format!("timeout after {ms} ms waiting for order-service on request {id}; returning 504 to the gateway"),
            _ => format!("validated payload of request {id} against schema v{}: {ms} fields checked, no errors found", user % 9),
        };
        let (trace, position) = span_position(n);
        let traced = h % 10 < 7;
        LogRecord {
            time_unix_nano: self.now + n,
            observed_time_unix_nano: self.now + n,
            severity_number: severity,
            severity_text: text.into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body)),
            }),
            attributes: vec![
                string("code.function", "handle_request"),
                string("http.route", ROUTES[(n % ROUTES.len() as u64) as usize]),
                int("user.id", user as i64),
                string("cloud.region", "eu-west-1"),
                kv(
                    "cache.hit",
                    any_value::Value::BoolValue(!h.is_multiple_of(3)),
                ),
            ],
            trace_id: if traced {
                trace_id(self.nonce, trace).to_vec()
            } else {
                Vec::new()
            },
            span_id: if traced {
                span_id(self.nonce, trace, position).to_vec()
            } else {
                Vec::new()
            },
            flags: u32::from(traced),
            ..Default::default()
        }
    }

    /// The rare term in log record `n`'s body: one token, in no other record.
    pub fn log_request_id(n: u64) -> String {
        format!("r{n:08x}")
    }

    /// The export request of log records `first .. first + count`.
    pub fn logs(&self, first: u64, count: u64) -> ExportLogsServiceRequest {
        let mut by_service: Vec<Vec<LogRecord>> = vec![Vec::new(); RESOURCES_PER_REQUEST as usize];
        for n in first..first + count {
            by_service[(n % RESOURCES_PER_REQUEST) as usize].push(self.log(n));
        }
        ExportLogsServiceRequest {
            resource_logs: by_service
                .into_iter()
                .enumerate()
                .map(|(i, log_records)| ResourceLogs {
                    resource: Some(resource(Self::log_service(first, i as u64))),
                    scope_logs: vec![ScopeLogs {
                        log_records,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn spans_of_a_trace_are_spread_and_complete() {
        let mut seen = std::collections::HashMap::new();
        let total = CONCURRENT_TRACES * SPANS_PER_TRACE * 2;
        for n in 0..total {
            let (trace, position) = span_position(n);
            assert!(
                seen.insert((trace, position), n).is_none(),
                "span {n} repeats"
            );
        }
        assert_eq!(complete_traces(total), 2 * CONCURRENT_TRACES);
        assert_eq!(complete_traces(total - 1), CONCURRENT_TRACES);
        for trace in 0..complete_traces(total) {
            for position in 0..SPANS_PER_TRACE {
                assert!(
                    seen.contains_key(&(trace, position)),
                    "trace {trace} lacks {position}"
                );
            }
        }
        // The spans of trace 0 lie a whole window apart: in different requests.
        assert_eq!(seen[&(0, 1)] - seen[&(0, 0)], CONCURRENT_TRACES);
    }

    /// The collector copies the strings of records that keep less than half of
    /// their request; the standard workload's must share it, as real SDKs' do.
    #[test]
    fn the_collector_decodes_standard_requests_without_copying_strings() {
        let workload = Workload {
            nonce: 7,
            now: 1_700_000_000_000_000_000,
        };
        let within = |buffer: &[u8], s: &str| {
            let (at, start) = (s.as_ptr() as usize, buffer.as_ptr() as usize);
            at >= start && at + s.len() <= start + buffer.len()
        };
        let request = prost::bytes::Bytes::from(workload.spans(0, BATCH).encode_to_vec());
        let spans = hopline::decode::protobuf::decode_traces(
            &request,
            workload.now,
            &hopline::config::RecordLimits::default(),
        )
        .expect("decode")
        .records;
        assert_eq!(spans.len() as u64, BATCH);
        assert!(spans.iter().all(|span| within(&request, &span.name)));
        let request = prost::bytes::Bytes::from(workload.logs(0, BATCH).encode_to_vec());
        let records = hopline::decode::protobuf::decode_logs(
            &request,
            workload.now,
            &hopline::config::RecordLimits::default(),
        )
        .expect("decode")
        .records;
        assert_eq!(records.len() as u64, BATCH);
        assert!(records
            .iter()
            .all(|record| within(&request, &record.attributes[0].key)));
    }

    #[test]
    fn requests_have_the_standard_sizes() {
        let workload = Workload {
            nonce: 7,
            now: 1_700_000_000_000_000_000,
        };
        let spans = workload.spans(0, BATCH).encode_to_vec().len() as u64 / BATCH;
        let logs = workload.logs(0, BATCH).encode_to_vec().len() as u64 / BATCH;
        assert!((450..=560).contains(&spans), "{spans} bytes per span");
        assert!((280..=380).contains(&logs), "{logs} bytes per log record");
        let body = workload.log(3).body.and_then(|b| b.value);
        let Some(any_value::Value::StringValue(body)) = body else {
            panic!("log body is not a string");
        };
        assert!(
            (85..=125).contains(&body.len()),
            "{} bytes: {body}",
            body.len()
        );
        assert!(body.contains(&Workload::log_request_id(3)));
        // Ten statements, so ten log patterns, whatever their numbers and ids.
        let mut patterns = std::collections::HashSet::new();
        for n in 0..1_000 {
            let body = workload.log(n).body.and_then(|b| b.value);
            let Some(any_value::Value::StringValue(body)) = body else {
                panic!("log body is not a string");
            };
            patterns.insert(hopline::store::pattern::template(&body));
        }
        assert_eq!(patterns.len(), 10, "{patterns:#?}");
        for n in 0..10 {
            let body = format!("{:?}", workload.log(n).body);
            for (i, word) in LOG_WORDS.iter().enumerate() {
                assert_eq!(body.contains(word), i as u64 == n, "{word} in {body}");
            }
        }
    }
}

/// Which signal a load sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Spans,
    Logs,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "logs",
        }
    }
}
