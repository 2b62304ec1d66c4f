//! Loki push requests (`POST /loki/api/v1/push`) into log records: the JSON body
//! (`{"streams":[{"stream":{labels},"values":[["<ns>","line",{metadata}]]}]}`) and
//! the snappy-compressed protobuf `logproto.PushRequest` Promtail, Grafana Alloy,
//! Fluent Bit and Vector send.
//!
//! | Loki | Hopline (OTLP) |
//! | --- | --- |
//! | a stream's labels | resource attributes, one resource per stream |
//! | label `service_name`, else `service`, `app`, `application`, `job`, `container` | also `service.name` |
//! | an entry's timestamp (ns) | the record's time |
//! | the line | the body, a string |
//! | structured metadata | record attributes |
//! | `level`, `severity`, `detected_level`, `lvl` (metadata, else label) | severity text, and its number when the name is known (`warning` 13, `critical` 21) |
//! | `trace_id`, `traceID`, `traceId` (metadata, else label) | the trace id, when it is 1-32 hex digits (kept as an attribute either way) |
//! | `span_id`, `spanID`, `spanId` | the span id, likewise |
//!
//! An entry that cannot be stored (a timestamp before 2000, more than a day ahead,
//! or not a number) is rejected with the reason and the rest of the request is
//! stored, as Loki does; the receiver answers 400 with the reasons then, so that the
//! sender's log says what was dropped.

use std::sync::Arc;

use prost::bytes::Bytes;
use serde::Deserialize;

use super::convert::{log_times, Converted};
use super::limits::Limit;
use crate::config::RecordLimits;
use crate::model::{
    severity_number_of, AnyValue, KeyValue, LogRecord, Resource, Scope, SpanId, Str, TraceId,
    UNKNOWN_SERVICE,
};

/// Why a request could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

/// The labels that name a stream's service, in order of preference.
pub const SERVICE_LABELS: [&str; 6] = [
    "service_name",
    "service",
    "app",
    "application",
    "job",
    "container",
];
const LEVEL_KEYS: [&str; 4] = ["level", "severity", "detected_level", "lvl"];
const TRACE_ID_KEYS: [&str; 4] = ["trace_id", "traceID", "traceId", "traceid"];
const SPAN_ID_KEYS: [&str; 4] = ["span_id", "spanID", "spanId", "spanid"];
/// How many labels a stream may have, and a label set's text at most.
const MAX_LABELS: usize = 128;

/// The records of a Loki JSON push; `now_nanos` is the receipt time.
pub fn decode_json(
    body: &[u8],
    now_nanos: u64,
    limits: &RecordLimits,
) -> Result<Converted<LogRecord>, DecodeError> {
    let request: JsonPush = serde_json::from_slice(body)
        .map_err(|e| DecodeError(format!("cannot decode the Loki push JSON: {e}")))?;
    let mut out = Converted::default();
    for stream in request.streams {
        if stream.stream.len() > MAX_LABELS {
            return Err(too_many_labels(stream.stream.len()));
        }
        let labels: Vec<(String, String)> = stream.stream.into_iter().collect();
        let resource = Stream::new(labels, limits);
        for JsonEntry(time, line, metadata) in stream.values {
            let time = time.nanos().ok_or_else(|| {
                DecodeError(format!(
                    "an entry's timestamp '{}' is not a number of nanoseconds",
                    time.text()
                ))
            })?;
            let metadata = metadata
                .map(|m| m.into_iter().collect())
                .unwrap_or_default();
            resource.push(&mut out, time, line, metadata, now_nanos, limits);
        }
    }
    Ok(out)
}

/// The records of a snappy-compressed protobuf `PushRequest`.
pub fn decode_protobuf(
    body: &[u8],
    max_size: usize,
    now_nanos: u64,
    limits: &RecordLimits,
) -> Result<Converted<LogRecord>, DecodeError> {
    let size = decompressed_len(body)?;
    if size > max_size {
        return Err(DecodeError(format!(
            "the decompressed body would be {size} bytes, over the {max_size}-byte limit (--max-request-size)"
        )));
    }
    let bytes = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError(format!("the body is not snappy-compressed protobuf: {e}")))?;
    let request = <proto::PushRequest as prost::Message>::decode(Bytes::from(bytes))
        .map_err(|e| DecodeError(format!("cannot decode protobuf logproto.PushRequest: {e}")))?;
    let mut out = Converted::default();
    for stream in request.streams {
        let labels = parse_labels(&stream.labels)?;
        let resource = Stream::new(labels, limits);
        for entry in stream.entries {
            let time = entry.timestamp.map_or(0, |t| {
                u64::try_from(t.seconds)
                    .unwrap_or(0)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(u64::try_from(t.nanos).unwrap_or(0))
            });
            let metadata = entry
                .structured_metadata
                .into_iter()
                .map(|pair| (pair.name, pair.value))
                .collect();
            resource.push(&mut out, time, entry.line, metadata, now_nanos, limits);
        }
    }
    Ok(out)
}

/// What a snappy-compressed body says it decompresses to (its first bytes), so a
/// snappy bomb is refused before it is decompressed.
pub fn decompressed_len(body: &[u8]) -> Result<usize, DecodeError> {
    snap::raw::decompress_len(body)
        .map_err(|e| DecodeError(format!("the body is not snappy-compressed protobuf: {e}")))
}

fn too_many_labels(count: usize) -> DecodeError {
    DecodeError(format!(
        "a stream has {count} labels; at most {MAX_LABELS} are accepted"
    ))
}

/// One stream: its resource, and what its labels say of every entry.
struct Stream {
    labels: Vec<(String, String)>,
    resource: Arc<Resource>,
    service_name: Str,
    scope: Arc<Scope>,
}

impl Stream {
    fn new(labels: Vec<(String, String)>, limits: &RecordLimits) -> Stream {
        let service = SERVICE_LABELS
            .iter()
            .find_map(|key| labels.iter().find(|(k, v)| k == key && !v.is_empty()))
            .map_or(UNKNOWN_SERVICE, |(_, v)| v.as_str());
        let mut attributes: Vec<KeyValue> = labels
            .iter()
            .map(|(k, v)| KeyValue::new(k.as_str(), AnyValue::Str(Str::from(v.as_str()))))
            .collect();
        attributes.push(KeyValue::new(
            "service.name",
            AnyValue::Str(Str::from(service)),
        ));
        let mut resource = Resource {
            attributes,
            dropped_attributes_count: 0,
        };
        let _cut = resource.limit(limits);
        let service_name = match crate::model::attribute(&resource.attributes, "service.name") {
            Some(AnyValue::Str(name)) => name.clone(),
            _ => Str::from_static(UNKNOWN_SERVICE),
        };
        Stream {
            labels,
            resource: Arc::new(resource),
            service_name,
            scope: Arc::new(Scope {
                name: Str::from_static("loki"),
                version: String::new(),
                attributes: Vec::new(),
            }),
        }
    }

    /// A key of the entry's metadata, else of the stream's labels.
    fn find<'a>(&'a self, metadata: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
        keys.iter().find_map(|key| {
            metadata
                .iter()
                .chain(&self.labels)
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        })
    }

    fn push(
        &self,
        out: &mut Converted<LogRecord>,
        time: u64,
        line: String,
        metadata: Vec<(String, String)>,
        now_nanos: u64,
        limits: &RecordLimits,
    ) {
        let (time, observed) = match log_times(time, 0, now_nanos) {
            Ok(times) => times,
            Err(reason) => {
                out.reject(format!("stream {}: {reason}", self.describe()));
                return;
            }
        };
        let level = self.find(&metadata, &LEVEL_KEYS).unwrap_or("");
        let trace_id = self
            .find(&metadata, &TRACE_ID_KEYS)
            .and_then(|text| TraceId::from_hex(text).ok());
        let span_id = self
            .find(&metadata, &SPAN_ID_KEYS)
            .and_then(|text| SpanId::from_hex(text).ok());
        let mut record = LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: observed,
            severity_number: severity_number_of(level).unwrap_or(0),
            severity_text: Str::from(level),
            body: AnyValue::Str(Str::from(line)),
            attributes: metadata
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, AnyValue::Str(Str::from(v))))
                .collect(),
            dropped_attributes_count: 0,
            flags: 0,
            trace_id,
            span_id,
            event_name: String::new(),
            service_name: self.service_name.clone(),
            resource: Arc::clone(&self.resource),
            scope: Arc::clone(&self.scope),
        };
        let _cut = record.limit(limits);
        out.records.push(record);
    }

    /// The stream as Loki writes it (`{app="shop"}`), shortened, for reasons.
    fn describe(&self) -> String {
        let mut text = String::from("{");
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("{k}={v:?}"));
            if text.len() > 120 {
                text.push_str(", ...");
                break;
            }
        }
        text.push('}');
        text
    }
}

/// A label set as Loki and Prometheus write it: `{name="value", ...}`, values
/// quoted with `\"`, `\\` and `\n` escapes.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, DecodeError> {
    let error = |message: &str| DecodeError(format!("invalid labels {text:?}: {message}"));
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| error("expected {name=\"value\", ...}"))?;
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.') {
            name.push(c);
        }
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(error("a label name must start with a letter or '_'"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(error(&format!("expected '=' after {name}")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('"') {
            return Err(error(&format!("the value of {name} must be quoted")));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(error(&format!("the value of {name} is not closed"))),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(c @ ('"' | '\\')) => value.push(c),
                    Some(c) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(error(&format!("the value of {name} is not closed"))),
                },
                Some(c) => value.push(c),
            }
        }
        labels.push((name, value));
        if labels.len() > MAX_LABELS {
            return Err(too_many_labels(labels.len()));
        }
    }
    Ok(labels)
}

// ---- Loki push JSON ----

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<JsonEntry>,
}

/// `["<ns>", "line"]` or `["<ns>", "line", {"key": "value"}]`.
#[derive(Deserialize)]
struct JsonEntry(
    Timestamp,
    String,
    #[serde(default)] Option<std::collections::BTreeMap<String, String>>,
);

/// Nanoseconds as a string (what Loki documents) or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Text(String),
    Number(u64),
}

impl Timestamp {
    fn nanos(&self) -> Option<u64> {
        match self {
            Timestamp::Text(text) => text.trim().parse().ok(),
            Timestamp::Number(number) => Some(*number),
        }
    }

    fn text(&self) -> String {
        match self {
            Timestamp::Text(text) => text.chars().take(40).collect(),
            Timestamp::Number(number) => number.to_string(),
        }
    }
}

/// Loki's `logproto` push messages (`pkg/push/push.proto`).
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub(super) streams: Vec<StreamAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub(super) labels: String,
        #[prost(message, repeated, tag = "2")]
        pub(super) entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub(super) hash: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub(super) timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub(super) line: String,
        #[prost(message, repeated, tag = "3")]
        pub(super) structured_metadata: Vec<LabelPairAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub(super) name: String,
        #[prost(string, tag = "2")]
        pub(super) value: String,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Timestamp {
        #[prost(int64, tag = "1")]
        pub(super) seconds: i64,
        #[prost(int32, tag = "2")]
        pub(super) nanos: i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    const NOW: u64 = 1_700_000_000 * 1_000_000_000;

    fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
        match crate::model::attribute(attributes, key) {
            Some(AnyValue::Str(text)) => Some(text),
            _ => None,
        }
    }

    #[test]
    fn labels_become_the_resource_and_metadata_the_attributes() {
        let body = format!(
            r#"{{"streams":[{{"stream":{{"job":"varlogs","app":"checkout","level":"warn"}},
                "values":[["{}","card declined",{{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user":"u-7"}}],
                          ["{}","retrying"]]}}]}}"#,
            NOW - 2_000,
            NOW - 1_000
        );
        let converted = decode_json(body.as_bytes(), NOW, &RecordLimits::default()).expect("ok");
        assert_eq!(converted.rejected, 0);
        let [first, second] = &converted.records[..] else {
            panic!("two records: {:?}", converted.records);
        };
        assert_eq!(&*first.service_name, "checkout", "app wins over job");
        assert_eq!(
            attribute(&first.resource.attributes, "job"),
            Some("varlogs")
        );
        assert_eq!(first.time_unix_nano, NOW - 2_000);
        assert_eq!(first.body, AnyValue::Str("card declined".into()));
        assert_eq!(first.severity_number, 13);
        assert_eq!(&*first.severity_text, "warn");
        assert_eq!(
            first.trace_id.map(|id| id.to_hex()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(attribute(&first.attributes, "user"), Some("u-7"));
        assert_eq!(second.trace_id, None);
        assert!(Arc::ptr_eq(&first.resource, &second.resource));
    }

    #[test]
    fn snappy_protobuf_gives_what_json_gives() {
        let request = proto::PushRequest {
            streams: vec![proto::StreamAdapter {
                labels: r#"{service_name="api", env="prod \"eu\""}"#.into(),
                entries: vec![proto::EntryAdapter {
                    timestamp: Some(proto::Timestamp {
                        seconds: 1_699_999_999,
                        nanos: 5,
                    }),
                    line: "GET /health 200".into(),
                    structured_metadata: vec![proto::LabelPairAdapter {
                        name: "traceID".into(),
                        value: "00f067aa0ba902b7".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .expect("snappy");
        let converted =
            decode_protobuf(&body, 1 << 20, NOW, &RecordLimits::default()).expect("decoded");
        let json = r#"{"streams":[{"stream":{"service_name":"api","env":"prod \"eu\""},
            "values":[["1699999999000000005","GET /health 200",{"traceID":"00f067aa0ba902b7"}]]}]}"#;
        let from_json = decode_json(json.as_bytes(), NOW, &RecordLimits::default()).expect("ok");
        // The resource's attributes come in another order: compare the rest.
        let (a, b) = (&converted.records[0], &from_json.records[0]);
        assert_eq!(a.body, b.body);
        assert_eq!(a.time_unix_nano, b.time_unix_nano);
        assert_eq!(a.trace_id, b.trace_id);
        assert_eq!(a.attributes, b.attributes);
        assert_eq!(&*a.service_name, "api");
        assert_eq!(
            attribute(&a.resource.attributes, "env"),
            Some("prod \"eu\"")
        );
        assert_eq!(
            a.trace_id.map(|id| id.to_hex()).as_deref(),
            Some("000000000000000000f067aa0ba902b7")
        );
    }

    #[test]
    fn bad_entries_are_rejected_one_by_one_and_bad_requests_whole() {
        let body = format!(
            r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[["{}","ok"],["1600000000","seconds"],["{}","future"]]}}]}}"#,
            NOW,
            NOW + 2 * 86_400 * 1_000_000_000
        );
        let converted = decode_json(body.as_bytes(), NOW, &RecordLimits::default()).expect("ok");
        assert_eq!(converted.records.len(), 1);
        assert_eq!(converted.rejected, 2);
        let message = converted.error_message();
        assert!(message.contains(r#"stream {job="a"}"#), "{message}");
        assert!(message.contains("before the year 2000"), "{message}");
        assert!(message.contains("in the future"), "{message}");

        let limits = RecordLimits::default();
        for (body, expected) in [
            (r#"{"streams":{}}"#, "cannot decode the Loki push JSON"),
            (
                r#"{"streams":[{"stream":{"a":"b"},"values":[["x","line"]]}]}"#,
                "'x' is not a number",
            ),
            (r#"{"streams":[{"stream":{"a":1}}]}"#, "cannot decode"),
        ] {
            let error = decode_json(body.as_bytes(), NOW, &limits).expect_err(body);
            assert!(error.to_string().contains(expected), "{body}: {error}");
        }
        for (body, expected) in [
            (b"not snappy".to_vec(), "not snappy-compressed"),
            (
                snap::raw::Encoder::new()
                    .compress_vec(&[0xff; 64])
                    .expect("snappy"),
                "cannot decode protobuf logproto.PushRequest",
            ),
            (
                snap::raw::Encoder::new()
                    .compress_vec(&vec![0; 4096])
                    .expect("snappy"),
                "over the 1024-byte limit",
            ),
        ] {
            let error = decode_protobuf(&body, 1024, NOW, &limits).expect_err(expected);
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[test]
    fn label_sets_are_parsed_as_prometheus_writes_them() {
        assert_eq!(
            parse_labels(r#"{a="1", b_c="x\"y\\z\n", d=""}"#).expect("parsed"),
            [
                ("a".to_string(), "1".to_string()),
                ("b_c".to_string(), "x\"y\\z\n".to_string()),
                ("d".to_string(), String::new()),
            ]
        );
        assert_eq!(parse_labels("{}").expect("parsed"), []);
        for bad in [
            "a=\"1\"",
            "{a=1}",
            "{a=\"1}",
            "{=\"1\"}",
            "{1a=\"x\"}",
            "{a \"x\"}",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..200).map(|i| format!("l{i}=\"v\"")).collect();
        let error = parse_labels(&format!("{{{}}}", many.join(","))).expect_err("too many");
        assert!(error.to_string().contains("at most 128"), "{error}");
    }
}
