//! Zipkin v2 spans (`POST /api/v2/spans`, a JSON list or a protobuf
//! `ListOfSpans`) into the model, as the OpenTelemetry specification maps Zipkin
//! to OTLP (<https://opentelemetry.io/docs/specs/otel/trace/sdk_exporters/zipkin/>,
//! read backwards):
//!
//! | Zipkin | Hopline (OTLP) |
//! | --- | --- |
//! | `traceId` (16 or 32 hex, 8 or 16 bytes) | trace id, a 64-bit id left-padded with zeros |
//! | `id`, `parentId` | span id, parent span id |
//! | `name` | span name |
//! | `kind` `CLIENT`/`SERVER`/`PRODUCER`/`CONSUMER`, absent | the same kind; `INTERNAL` |
//! | `timestamp`, `duration` (µs) | start, and end = start + duration |
//! | `localEndpoint.serviceName` | resource `service.name` |
//! | `localEndpoint.ipv4`/`ipv6`, `port` | `network.local.address`, `network.local.port` |
//! | `remoteEndpoint.serviceName` | `peer.service` |
//! | `remoteEndpoint.ipv4`/`ipv6`, `port` | `network.peer.address`, `network.peer.port` |
//! | `annotations` | events (name = value) |
//! | `tags` | string attributes, but for the four below |
//! | tag `otel.status_code` (`OK`/`ERROR`), `otel.status_description` | status code and message |
//! | tag `error` | status `ERROR`, its value the message (unless empty or `true`) |
//! | tag `otel.scope.name`/`.version` (or `otel.library.*`) | instrumentation scope |
//! | `shared: true` | a span of its own, child of the span it shares the id with |
//!
//! A shared span is the server half of an RPC that reuses its client's span id (B3
//! single-host spans). Two spans with one id would make one node of two in the
//! trace's tree, so the shared one gets an id of its own, derived from the shared
//! one, and the client span as its parent: Jaeger does the same when it reads
//! Zipkin spans. `debug` is not kept.
//!
//! A request is taken whole or not at all: a span that cannot be stored (an invalid
//! id, a missing or absurd timestamp) refuses the request with the reasons, as
//! Zipkin's own server does; Zipkin has no partial success to report it with.

use std::sync::Arc;

use prost::bytes::Bytes;
use serde::Deserialize;

use super::convert::{check_span_times, Converted};
use super::limits::Limit;
use crate::config::RecordLimits;
use crate::model::{
    AnyValue, KeyValue, Resource, Scope, Span, SpanEvent, SpanId, SpanKind, StatusCode, Str,
    TraceId, UNKNOWN_SERVICE,
};

/// Why a request could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

/// The spans of a Zipkin v2 JSON list, checked; `now_nanos` is the receipt time.
pub fn decode_json(
    body: &[u8],
    now_nanos: u64,
    limits: &RecordLimits,
) -> Result<Converted<Span>, DecodeError> {
    let spans: Vec<JsonSpan> = serde_json::from_slice(body).map_err(|e| {
        DecodeError(format!(
            "cannot decode Zipkin v2 JSON (a list of spans): {e}"
        ))
    })?;
    let spans = spans
        .into_iter()
        .map(ZipkinSpan::from_json)
        .collect::<Result<Vec<_>, _>>()?;
    Builder::new(now_nanos, limits).build(spans)
}

/// The spans of a Zipkin v2 protobuf `ListOfSpans`, checked as [`decode_json`].
pub fn decode_protobuf(
    body: &Bytes,
    now_nanos: u64,
    limits: &RecordLimits,
) -> Result<Converted<Span>, DecodeError> {
    let list = <proto::ListOfSpans as prost::Message>::decode(body.clone()).map_err(|e| {
        DecodeError(format!(
            "cannot decode Zipkin v2 protobuf (zipkin.proto3.ListOfSpans): {e}"
        ))
    })?;
    let spans = list
        .spans
        .into_iter()
        .map(ZipkinSpan::from_protobuf)
        .collect::<Result<Vec<_>, _>>()?;
    Builder::new(now_nanos, limits).build(spans)
}

/// One span as both encodings give it, ids read.
struct ZipkinSpan {
    trace_id: TraceId,
    id: SpanId,
    parent_id: Option<SpanId>,
    name: String,
    kind: SpanKind,
    /// µs since the epoch; 0 when absent.
    timestamp: u64,
    duration: u64,
    local: Endpoint,
    remote: Option<Endpoint>,
    annotations: Vec<(u64, String)>,
    tags: Vec<(String, String)>,
    shared: bool,
}

#[derive(Default)]
struct Endpoint {
    service_name: String,
    address: Option<String>,
    port: Option<i64>,
}

impl ZipkinSpan {
    fn from_json(span: JsonSpan) -> Result<Self, DecodeError> {
        let id = |what: &str, text: &str| -> Result<SpanId, DecodeError> {
            SpanId::from_hex(text).map_err(|e| {
                DecodeError(format!(
                    "span '{}': invalid {what} '{text}': {e}",
                    span.name
                ))
            })
        };
        let trace_id = TraceId::from_hex(&span.trace_id).map_err(|e| {
            DecodeError(format!(
                "span '{}': invalid traceId '{}': {e}",
                span.name, span.trace_id
            ))
        })?;
        let parent_id = match span.parent_id.as_deref() {
            None | Some("") => None,
            Some(text) if text.bytes().all(|b| b == b'0') => None,
            Some(text) => Some(id("parentId", text)?),
        };
        let kind = match span.kind.as_deref() {
            None | Some("") => SpanKind::Internal,
            Some("CLIENT") => SpanKind::Client,
            Some("SERVER") => SpanKind::Server,
            Some("PRODUCER") => SpanKind::Producer,
            Some("CONSUMER") => SpanKind::Consumer,
            Some(other) => {
                return Err(DecodeError(format!(
                "span '{}': unknown kind '{other}': expected CLIENT, SERVER, PRODUCER or CONSUMER",
                span.name
            )))
            }
        };
        Ok(Self {
            trace_id,
            id: id("id", &span.id)?,
            parent_id,
            kind,
            timestamp: span.timestamp.unwrap_or(0),
            duration: span.duration.unwrap_or(0),
            local: span
                .local_endpoint
                .map(JsonEndpoint::read)
                .unwrap_or_default(),
            remote: span.remote_endpoint.map(JsonEndpoint::read),
            annotations: span
                .annotations
                .into_iter()
                .map(|a| (a.timestamp, a.value))
                .collect(),
            tags: span
                .tags
                .into_iter()
                .map(|(key, value)| (key, value.into_string()))
                .collect(),
            shared: span.shared,
            name: span.name,
        })
    }

    fn from_protobuf(span: proto::Span) -> Result<Self, DecodeError> {
        let name = span.name;
        let trace_id = match span.trace_id.len() {
            8 => {
                let mut bytes = [0u8; 16];
                bytes[8..].copy_from_slice(&span.trace_id);
                TraceId::from_bytes(&bytes)
            }
            _ => TraceId::from_bytes(&span.trace_id),
        }
        .map_err(|e| DecodeError(format!("span '{name}': invalid trace_id: {e}")))?;
        let id = SpanId::from_bytes(&span.id)
            .map_err(|e| DecodeError(format!("span '{name}': invalid id: {e}")))?;
        let parent_id = if span.parent_id.is_empty() || span.parent_id.iter().all(|b| *b == 0) {
            None
        } else {
            Some(
                SpanId::from_bytes(&span.parent_id)
                    .map_err(|e| DecodeError(format!("span '{name}': invalid parent_id: {e}")))?,
            )
        };
        let kind = match span.kind {
            0 => SpanKind::Internal,
            1 => SpanKind::Client,
            2 => SpanKind::Server,
            3 => SpanKind::Producer,
            4 => SpanKind::Consumer,
            other => {
                return Err(DecodeError(format!(
                    "span '{name}': unknown kind {other}: expected 0-4"
                )))
            }
        };
        Ok(Self {
            trace_id,
            id,
            parent_id,
            kind,
            timestamp: span.timestamp,
            duration: span.duration,
            local: span
                .local_endpoint
                .map(proto::Endpoint::read)
                .unwrap_or_default(),
            remote: span.remote_endpoint.map(proto::Endpoint::read),
            annotations: span
                .annotations
                .into_iter()
                .map(|a| (a.timestamp, a.value))
                .collect(),
            tags: span.tags.into_iter().collect(),
            shared: span.shared,
            name,
        })
    }
}

/// Turns Zipkin spans into the model's, one resource per local service.
struct Builder<'a> {
    now_nanos: u64,
    limits: &'a RecordLimits,
    resources: Vec<(Str, Arc<Resource>)>,
    no_scope: Arc<Scope>,
    out: Converted<Span>,
}

impl<'a> Builder<'a> {
    fn new(now_nanos: u64, limits: &'a RecordLimits) -> Self {
        Self {
            now_nanos,
            limits,
            resources: Vec::new(),
            no_scope: Arc::new(Scope {
                name: Str::from_static(""),
                version: String::new(),
                attributes: Vec::new(),
            }),
            out: Converted::default(),
        }
    }

    /// The resource of a local service, made once per request.
    fn resource(&mut self, service: &str) -> (Str, Arc<Resource>) {
        let service = if service.is_empty() {
            UNKNOWN_SERVICE
        } else {
            service
        };
        if let Some((name, resource)) = self.resources.iter().find(|(name, _)| &**name == service) {
            return (name.clone(), Arc::clone(resource));
        }
        let mut resource = Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AnyValue::Str(Str::from(service)),
            )],
            dropped_attributes_count: 0,
        };
        let _cut = resource.limit(self.limits);
        let name = match resource.attributes.first().map(|kv| &kv.value) {
            Some(AnyValue::Str(name)) => name.clone(),
            _ => Str::from(service),
        };
        let resource = Arc::new(resource);
        self.resources.push((name.clone(), Arc::clone(&resource)));
        (name, resource)
    }

    /// Converts every span, or refuses them all.
    fn build(mut self, mut spans: Vec<ZipkinSpan>) -> Result<Converted<Span>, DecodeError> {
        // A server span with the id of a client span of the same request shares
        // it, whether it says so or not (instrumentation that predates `shared`).
        let clients: std::collections::HashSet<(TraceId, SpanId)> = spans
            .iter()
            .filter(|span| span.kind == SpanKind::Client)
            .map(|span| (span.trace_id, span.id))
            .collect();
        for span in &mut spans {
            span.shared |=
                span.kind == SpanKind::Server && clients.contains(&(span.trace_id, span.id));
        }
        for span in spans {
            match self.convert(span) {
                Ok(mut span) => {
                    let _cut = span.limit(self.limits);
                    self.out.records.push(span);
                }
                Err(reason) => self.out.reject(reason),
            }
        }
        self.finish()
    }

    fn convert(&mut self, span: ZipkinSpan) -> Result<Span, String> {
        let micros = |value: u64, what: &str| {
            value
                .checked_mul(1_000)
                .ok_or_else(|| format!("span '{}': {what} {value} µs is out of range", span.name))
        };
        if span.timestamp == 0 {
            return Err(format!("span '{}': timestamp is missing", span.name));
        }
        let start = micros(span.timestamp, "timestamp")?;
        let end = start.saturating_add(micros(span.duration, "duration")?);
        check_span_times(&span.name, start, end, self.now_nanos)?;

        let mut attributes = Vec::with_capacity(span.tags.len() + 5);
        let mut status_code = StatusCode::Unset;
        let mut status_message = String::new();
        let mut error_message = None;
        let (mut scope_name, mut scope_version) = (None, None);
        for (key, value) in span.tags {
            match key.as_str() {
                "otel.status_code" => {
                    status_code = match value.as_str() {
                        "OK" => StatusCode::Ok,
                        "ERROR" => StatusCode::Error,
                        _ => StatusCode::Unset,
                    }
                }
                "otel.status_description" => status_message = value,
                "error" => error_message = Some(value),
                "otel.scope.name" | "otel.library.name" => scope_name = Some(value),
                "otel.scope.version" | "otel.library.version" => scope_version = Some(value),
                _ => attributes.push(KeyValue::new(key, AnyValue::Str(Str::from(value)))),
            }
        }
        if let Some(message) = error_message {
            status_code = StatusCode::Error;
            if status_message.is_empty() && !message.is_empty() && message != "true" {
                status_message = message;
            }
        }
        endpoint_attributes(&mut attributes, "local", &span.local);
        if let Some(remote) = &span.remote {
            if !remote.service_name.is_empty() {
                attributes.push(KeyValue::new(
                    "peer.service",
                    AnyValue::Str(Str::from(remote.service_name.as_str())),
                ));
            }
            endpoint_attributes(&mut attributes, "peer", remote);
        }
        let mut events = Vec::with_capacity(span.annotations.len());
        for (timestamp, value) in span.annotations {
            events.push(SpanEvent {
                time_unix_nano: micros(timestamp, "annotation timestamp")?,
                name: Str::from(value),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
            });
        }
        let scope = match scope_name {
            Some(name) => Arc::new(Scope {
                name: Str::from(name),
                version: scope_version.unwrap_or_default(),
                attributes: Vec::new(),
            }),
            None => Arc::clone(&self.no_scope),
        };
        let (span_id, parent_span_id) = if span.shared {
            (shared_span_id(span.id), Some(span.id))
        } else {
            (span.id, span.parent_id)
        };
        let (service_name, resource) = self.resource(&span.local.service_name);
        Ok(Span {
            trace_id: span.trace_id,
            span_id,
            parent_span_id,
            trace_state: String::new(),
            flags: 0,
            name: Str::from(span.name),
            kind: span.kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status_code,
            status_message,
            service_name,
            resource,
            scope,
        })
    }

    fn finish(self) -> Result<Converted<Span>, DecodeError> {
        if self.out.rejected > 0 {
            return Err(DecodeError(format!(
                "{} of {} spans cannot be stored, so none was: {}",
                self.out.rejected,
                self.out.rejected as usize + self.out.records.len(),
                self.out.error_message()
            )));
        }
        Ok(self.out)
    }
}

fn endpoint_attributes(attributes: &mut Vec<KeyValue>, side: &str, endpoint: &Endpoint) {
    if let Some(address) = &endpoint.address {
        attributes.push(KeyValue::new(
            format!("network.{side}.address"),
            AnyValue::Str(Str::from(address.as_str())),
        ));
    }
    if let Some(port) = endpoint.port.filter(|port| *port > 0) {
        attributes.push(KeyValue::new(
            format!("network.{side}.port"),
            AnyValue::Int(port),
        ));
    }
}

/// The id of the shared half of an RPC span: derived from the id it shares, the
/// same on every decoding (splitmix64), never zero nor the shared id.
fn shared_span_id(shared: SpanId) -> SpanId {
    let mut z = shared.as_u64().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == 0 || z == shared.as_u64() {
        z = !shared.as_u64() | 1;
    }
    SpanId(z.to_be_bytes())
}

// ---- Zipkin v2 JSON (zipkin2-api.yaml) ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: String,
    id: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    duration: Option<u64>,
    #[serde(default)]
    local_endpoint: Option<JsonEndpoint>,
    #[serde(default)]
    remote_endpoint: Option<JsonEndpoint>,
    #[serde(default)]
    annotations: Vec<JsonAnnotation>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, TagValue>,
    #[serde(default)]
    shared: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndpoint {
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    ipv4: Option<String>,
    #[serde(default)]
    ipv6: Option<String>,
    #[serde(default)]
    port: Option<i64>,
}

impl JsonEndpoint {
    fn read(self) -> Endpoint {
        Endpoint {
            service_name: self.service_name.unwrap_or_default(),
            address: self.ipv4.or(self.ipv6).filter(|a| !a.is_empty()),
            port: self.port,
        }
    }
}

#[derive(Deserialize)]
struct JsonAnnotation {
    timestamp: u64,
    value: String,
}

/// Zipkin's tags are strings; numbers and booleans some clients send are kept
/// as their text.
#[derive(Deserialize)]
#[serde(untagged)]
enum TagValue {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl TagValue {
    fn into_string(self) -> String {
        match self {
            TagValue::Text(text) => text,
            TagValue::Number(number) => number.to_string(),
            TagValue::Bool(value) => value.to_string(),
        }
    }
}

/// Zipkin v2 protobuf (`zipkin.proto3`, zipkin-api's `zipkin.proto`).
mod proto {
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ListOfSpans {
        #[prost(message, repeated, tag = "1")]
        pub(super) spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub(super) trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub(super) parent_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub(super) id: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub(super) kind: i32,
        #[prost(string, tag = "5")]
        pub(super) name: String,
        #[prost(fixed64, tag = "6")]
        pub(super) timestamp: u64,
        #[prost(uint64, tag = "7")]
        pub(super) duration: u64,
        #[prost(message, optional, tag = "8")]
        pub(super) local_endpoint: Option<Endpoint>,
        #[prost(message, optional, tag = "9")]
        pub(super) remote_endpoint: Option<Endpoint>,
        #[prost(message, repeated, tag = "10")]
        pub(super) annotations: Vec<Annotation>,
        #[prost(btree_map = "string, string", tag = "11")]
        pub(super) tags: std::collections::BTreeMap<String, String>,
        #[prost(bool, tag = "12")]
        pub(super) debug: bool,
        #[prost(bool, tag = "13")]
        pub(super) shared: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Endpoint {
        #[prost(string, tag = "1")]
        pub(super) service_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub(super) ipv4: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub(super) ipv6: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub(super) port: i32,
    }

    impl Endpoint {
        pub(super) fn read(self) -> super::Endpoint {
            let address = if let Ok(v4) = <[u8; 4]>::try_from(self.ipv4.as_slice()) {
                Some(Ipv4Addr::from(v4).to_string())
            } else if let Ok(v6) = <[u8; 16]>::try_from(self.ipv6.as_slice()) {
                Some(Ipv6Addr::from(v6).to_string())
            } else {
                None
            };
            super::Endpoint {
                service_name: self.service_name,
                address,
                port: (self.port > 0).then_some(i64::from(self.port)),
            }
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Annotation {
        #[prost(fixed64, tag = "1")]
        pub(super) timestamp: u64,
        #[prost(string, tag = "2")]
        pub(super) value: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    const NOW: u64 = 1_700_000_000 * 1_000_000_000;
    const MICROS: u64 = 1_699_999_990 * 1_000_000;

    fn limits() -> RecordLimits {
        RecordLimits::default()
    }

    fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
        crate::model::attribute(&span.attributes, key)
    }

    #[test]
    fn a_client_and_its_shared_server_span_become_parent_and_child() {
        let body = format!(
            r#"[{{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0020000000000001",
                 "name":"get /users","kind":"CLIENT","timestamp":{MICROS},"duration":2500,
                 "localEndpoint":{{"serviceName":"frontend","ipv4":"10.0.0.1","port":8080}},
                 "remoteEndpoint":{{"serviceName":"user","ipv6":"2001:db8::c001","port":9000}},
                 "annotations":[{{"timestamp":{MICROS},"value":"ws"}}],
                 "tags":{{"http.method":"GET","http.status_code":404,"retry":false,
                          "error":"user not found","otel.scope.name":"zipkin-js"}}}},
                {{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0020000000000001",
                 "name":"get /users","kind":"SERVER","shared":true,"timestamp":{MICROS},"duration":2000,
                 "localEndpoint":{{"serviceName":"user"}}}}]"#
        );
        let converted = decode_json(body.as_bytes(), NOW, &limits()).expect("decoded");
        let [client, server] = &converted.records[..] else {
            panic!("two spans: {:?}", converted.records);
        };
        assert_eq!(client.trace_id.to_hex(), "0000000000000000463ac35c9f6413ad");
        assert_eq!(client.span_id.to_hex(), "a2fb4a1d1a96d312");
        assert_eq!(
            client.parent_span_id.map(|id| id.to_hex()).as_deref(),
            Some("0020000000000001")
        );
        assert_eq!(client.kind, SpanKind::Client);
        assert_eq!(client.start_time_unix_nano, MICROS * 1000);
        assert_eq!(client.duration_nanos(), 2_500_000);
        assert_eq!(&*client.service_name, "frontend");
        assert_eq!(client.status_code, StatusCode::Error);
        assert_eq!(client.status_message, "user not found");
        assert_eq!(&*client.scope.name, "zipkin-js");
        assert_eq!(
            attribute(client, "http.status_code"),
            Some(&AnyValue::Str("404".into()))
        );
        assert_eq!(
            attribute(client, "retry"),
            Some(&AnyValue::Str("false".into()))
        );
        assert_eq!(attribute(client, "error"), None);
        assert_eq!(
            attribute(client, "peer.service"),
            Some(&AnyValue::Str("user".into()))
        );
        assert_eq!(
            attribute(client, "network.peer.address"),
            Some(&AnyValue::Str("2001:db8::c001".into()))
        );
        assert_eq!(
            attribute(client, "network.peer.port"),
            Some(&AnyValue::Int(9000))
        );
        assert_eq!(
            attribute(client, "network.local.address"),
            Some(&AnyValue::Str("10.0.0.1".into()))
        );
        assert_eq!(client.events.len(), 1);
        assert_eq!(&*client.events[0].name, "ws");

        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(&*server.service_name, "user");
        assert_eq!(server.parent_span_id, Some(client.span_id));
        assert_ne!(server.span_id, client.span_id);
        assert_eq!(server.span_id, shared_span_id(client.span_id));
        assert_eq!(server.status_code, StatusCode::Unset);

        // Without `shared`, a server span with a client's id in the same request
        // is taken as sharing it all the same.
        let unmarked = body.replace(r#""shared":true,"#, "");
        assert_ne!(unmarked, body);
        let converted = decode_json(unmarked.as_bytes(), NOW, &limits()).expect("decoded");
        assert_eq!(converted.records[1].parent_span_id, Some(client.span_id));
        assert_eq!(converted.records[1].span_id, server.span_id);
    }

    #[test]
    fn protobuf_gives_what_json_gives() {
        let span = proto::Span {
            trace_id: vec![0x46; 16],
            parent_id: Vec::new(),
            id: vec![0xa2; 8],
            kind: 2,
            name: "checkout".into(),
            timestamp: MICROS,
            duration: 1200,
            local_endpoint: Some(proto::Endpoint {
                service_name: "order".into(),
                ipv4: vec![10, 1, 2, 3],
                ipv6: Vec::new(),
                port: 443,
            }),
            remote_endpoint: None,
            annotations: vec![proto::Annotation {
                timestamp: MICROS + 5,
                value: "cache miss".into(),
            }],
            tags: [("otel.status_code".to_string(), "OK".to_string())].into(),
            debug: true,
            shared: false,
        };
        let body = proto::ListOfSpans { spans: vec![span] }.encode_to_vec();
        let converted = decode_protobuf(&Bytes::from(body), NOW, &limits()).expect("decoded");
        let json = format!(
            r#"[{{"traceId":"46464646464646464646464646464646","id":"a2a2a2a2a2a2a2a2","kind":"SERVER",
                 "name":"checkout","timestamp":{MICROS},"duration":1200,"debug":true,
                 "localEndpoint":{{"serviceName":"order","ipv4":"10.1.2.3","port":443}},
                 "annotations":[{{"timestamp":{},"value":"cache miss"}}],
                 "tags":{{"otel.status_code":"OK"}}}}]"#,
            MICROS + 5
        );
        let from_json = decode_json(json.as_bytes(), NOW, &limits()).expect("decoded");
        assert_eq!(converted.records, from_json.records);
        assert_eq!(converted.records[0].status_code, StatusCode::Ok);
        assert_eq!(converted.records[0].parent_span_id, None);
    }

    #[test]
    fn a_request_with_a_span_that_cannot_be_stored_is_refused_whole_with_the_reason() {
        let cases = [
            (r#"{"traceId":"1"}"#.to_string(), "a list of spans"),
            (
                r#"[{"id":"a2fb4a1d1a96d312"}]"#.to_string(),
                "missing field `traceId`",
            ),
            (
                format!(r#"[{{"traceId":"xyz","id":"1","timestamp":{MICROS}}}]"#),
                "invalid traceId 'xyz'",
            ),
            (
                format!(r#"[{{"traceId":"1","id":"12345678901234567","timestamp":{MICROS}}}]"#),
                "invalid id",
            ),
            (
                format!(r#"[{{"traceId":"1","id":"0","timestamp":{MICROS}}}]"#),
                "all-zero",
            ),
            (
                format!(r#"[{{"traceId":"1","id":"2","kind":"BROKER","timestamp":{MICROS}}}]"#),
                "unknown kind 'BROKER'",
            ),
            (
                format!(
                    r#"[{{"traceId":"1","id":"2","name":"ok","timestamp":{MICROS}}},
                        {{"traceId":"1","id":"3","name":"late"}}]"#
                ),
                "1 of 2 spans cannot be stored, so none was: span 'late': timestamp is missing",
            ),
            (
                r#"[{"traceId":"1","id":"2","name":"ms","timestamp":1699999990000}]"#.to_string(),
                "before the year 2000",
            ),
            (
                r#"[{"traceId":"1","id":"2","timestamp":18446744073709552}]"#.to_string(),
                "out of range",
            ),
        ];
        for (body, expected) in cases {
            let error = decode_json(body.as_bytes(), NOW, &limits()).expect_err(&body);
            assert!(error.to_string().contains(expected), "{body}: {error}");
        }
        let error = decode_protobuf(&Bytes::from_static(b"\x0a\x05\x0a"), NOW, &limits())
            .expect_err("truncated");
        assert!(error.to_string().contains("ListOfSpans"), "{error}");
    }

    #[test]
    fn long_tags_are_cut_to_the_record_limits() {
        let long = "x".repeat(100_000);
        let body = format!(
            r#"[{{"traceId":"1","id":"2","name":"n","timestamp":{MICROS},"tags":{{"big":"{long}"}}}}]"#
        );
        let converted = decode_json(body.as_bytes(), NOW, &limits()).expect("decoded");
        let Some(AnyValue::Str(value)) = attribute(&converted.records[0], "big") else {
            panic!("the tag is kept");
        };
        assert_eq!(value.len(), limits().max_attribute_value);
        assert!(attribute(&converted.records[0], super::super::limits::TRUNCATED).is_some());
    }
}
