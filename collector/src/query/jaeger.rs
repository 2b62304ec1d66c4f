//! Spans -> Jaeger's JSON model (the shape the Jaeger UI and Grafana's Jaeger data
//! source read), following the OpenTelemetry specification's Jaeger translation:
//! resource attributes become process tags, span kind the `span.kind` tag, an error
//! status `error=true` plus `otel.status_code`/`otel.status_description`, events
//! span logs (`event` field), links `FOLLOWS_FROM` references. Tags keep their type.

use std::borrow::Cow;
use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::{hex, AnyValue, KeyValue, Resource, Span, StatusCode, TraceId};

/// One trace in Jaeger's JSON model, serialized straight from the spans (a
/// `serde_json::Value` of a trace first costs as much as writing it out).
/// `spans` must all belong to `id`; `warnings` are shown by the Jaeger UI above
/// the trace (e.g. that it was cut).
pub struct JaegerTrace<'a> {
    pub id: TraceId,
    pub spans: &'a [Span],
    pub warnings: &'a [String],
}

impl Serialize for JaegerTrace<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Processes: one per distinct (service, resource), numbered in order of
        // appearance.
        let mut processes: Vec<(&str, &Arc<Resource>)> = Vec::new();
        let mut process_of = Vec::with_capacity(self.spans.len());
        for span in self.spans {
            let key = (&*span.service_name, &span.resource);
            // Spans read from one split share their resource: a pointer
            // comparison settles most of them.
            let same = |p: &(&str, &Arc<Resource>)| {
                p.0 == key.0 && (Arc::ptr_eq(p.1, key.1) || p.1 == key.1)
            };
            let index = match processes.iter().position(same) {
                Some(index) => index,
                None => {
                    processes.push(key);
                    processes.len() - 1
                }
            };
            process_of.push(index);
        }
        let trace_id = self.id.to_hex();
        let mut trace = serializer.serialize_struct("Trace", 4)?;
        trace.serialize_field("traceID", &trace_id)?;
        trace.serialize_field(
            "spans",
            &Each(
                self.spans
                    .iter()
                    .zip(&process_of)
                    .map(|(span, &process)| JaegerSpan {
                        span,
                        trace_id: &trace_id,
                        process,
                    }),
            ),
        )?;
        trace.serialize_field("processes", &Processes(&processes))?;
        if self.warnings.is_empty() {
            trace.serialize_field("warnings", &())?;
        } else {
            trace.serialize_field("warnings", self.warnings)?;
        }
        trace.end()
    }
}

/// A sequence serialized from an iterator (cloned: serializing takes `&self`).
struct Each<I>(I);

impl<I> Serialize for Each<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self.0.clone();
        let mut seq = serializer.serialize_seq(None)?;
        for item in items {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

/// `"p1": {"serviceName", "tags"}`, ...: the resource attributes but the
/// service name are the process's tags.
struct Processes<'a>(&'a [(&'a str, &'a Arc<Resource>)]);

impl Serialize for Processes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (i, (service, resource)) in self.0.iter().enumerate() {
            let tags = resource
                .attributes
                .iter()
                .filter(|kv| kv.key != "service.name")
                .map(Tag::of);
            map.serialize_entry(
                &ProcessId(i),
                &Two("serviceName", service, "tags", Each(tags)),
            )?;
        }
        map.end()
    }
}

/// An object of two fields.
#[derive(Clone)]
struct Two<A, B>(&'static str, A, &'static str, B);

impl<A: Serialize, B: Serialize> Serialize for Two<A, B> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(self.0, &self.1)?;
        map.serialize_entry(self.2, &self.3)?;
        map.end()
    }
}

/// `p<n>`, numbered from 1.
struct ProcessId(usize);

impl Serialize for ProcessId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("p{}", self.0 + 1))
    }
}

/// A tag: `{"key", "type", "value"}`, its type that of the value.
#[derive(Clone, Copy)]
struct Tag<'a> {
    key: &'a str,
    value: TagValue<'a>,
}

#[derive(Clone, Copy)]
enum TagValue<'a> {
    Any(&'a AnyValue),
    Str(&'a str),
    True,
}

impl<'a> Tag<'a> {
    fn of(kv: &'a KeyValue) -> Tag<'a> {
        Tag {
            key: &kv.key,
            value: TagValue::Any(&kv.value),
        }
    }

    fn string(key: &'a str, value: &'a str) -> Tag<'a> {
        Tag {
            key,
            value: TagValue::Str(value),
        }
    }
}

impl TagValue<'_> {
    /// Jaeger's name of the value's type.
    fn kind(self) -> &'static str {
        match self {
            TagValue::Any(AnyValue::Bool(_)) | TagValue::True => "bool",
            TagValue::Any(AnyValue::Int(_)) => "int64",
            TagValue::Any(AnyValue::Double(_)) => "float64",
            TagValue::Any(AnyValue::Bytes(_)) => "binary",
            _ => "string",
        }
    }
}

impl Serialize for TagValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            TagValue::Str(text) => serializer.serialize_str(text),
            TagValue::True => serializer.serialize_bool(true),
            TagValue::Any(value) => match value {
                AnyValue::Str(text) => serializer.serialize_str(text),
                AnyValue::Bool(b) => serializer.serialize_bool(*b),
                AnyValue::Int(i) => serializer.serialize_i64(*i),
                AnyValue::Double(d) if d.is_finite() => serializer.serialize_f64(*d),
                // JSON has no NaN or infinity: those are written as text.
                AnyValue::Double(d) => serializer.collect_str(d),
                AnyValue::Bytes(b) => serializer.serialize_str(&hex(b)),
                AnyValue::Empty => serializer.serialize_str(""),
                AnyValue::Array(_) | AnyValue::Map(_) => serializer.collect_str(&value.to_json()),
            },
        }
    }
}

impl Serialize for Tag<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tag = serializer.serialize_struct("Tag", 3)?;
        tag.serialize_field("key", self.key)?;
        tag.serialize_field("type", self.value.kind())?;
        tag.serialize_field("value", &self.value)?;
        tag.end()
    }
}

fn micros(nanos: u64) -> u64 {
    nanos / 1000
}

/// One span of a trace, its trace id already in hex, its process numbered.
#[derive(Clone, Copy)]
struct JaegerSpan<'a> {
    span: &'a Span,
    trace_id: &'a str,
    process: usize,
}

/// `{"refType", "traceID", "spanID"}`.
#[derive(Serialize)]
struct Reference<'a> {
    #[serde(rename = "refType")]
    kind: &'static str,
    #[serde(rename = "traceID")]
    trace_id: Cow<'a, str>,
    #[serde(rename = "spanID")]
    span_id: String,
}

impl Serialize for JaegerSpan<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.span;
        let references = span
            .parent_span_id
            .map(|parent| Reference {
                kind: "CHILD_OF",
                trace_id: Cow::Borrowed(self.trace_id),
                span_id: parent.to_hex(),
            })
            .into_iter()
            .chain(span.links.iter().map(|link| Reference {
                kind: "FOLLOWS_FROM",
                trace_id: Cow::Owned(link.trace_id.to_hex()),
                span_id: link.span_id.to_hex(),
            }))
            .collect::<Vec<_>>();
        let mut tags: Vec<Tag> = span.attributes.iter().map(Tag::of).collect();
        let kind = span.kind.as_jaeger();
        if !kind.is_empty() {
            tags.push(Tag::string("span.kind", kind));
        }
        match span.status_code {
            StatusCode::Error => {
                tags.push(Tag {
                    key: "error",
                    value: TagValue::True,
                });
                tags.push(Tag::string("otel.status_code", "ERROR"));
                if !span.status_message.is_empty() {
                    tags.push(Tag::string("otel.status_description", &span.status_message));
                }
            }
            StatusCode::Ok => tags.push(Tag::string("otel.status_code", "OK")),
            StatusCode::Unset => {}
        }
        for (key, value) in [
            ("otel.scope.name", &*span.scope.name),
            ("otel.scope.version", &*span.scope.version),
            ("w3c.tracestate", &*span.trace_state),
        ] {
            if !value.is_empty() {
                tags.push(Tag::string(key, value));
            }
        }
        let logs = span.events.iter().map(|event| {
            let fields = std::iter::once(Tag::string("event", &event.name))
                .chain(event.attributes.iter().map(Tag::of));
            Two(
                "timestamp",
                micros(event.time_unix_nano),
                "fields",
                Each(fields),
            )
        });
        let mut out = serializer.serialize_struct("Span", 11)?;
        out.serialize_field("traceID", self.trace_id)?;
        out.serialize_field("spanID", &span.span_id.to_hex())?;
        out.serialize_field("operationName", &*span.name)?;
        out.serialize_field("references", &references)?;
        out.serialize_field("startTime", &micros(span.start_time_unix_nano))?;
        out.serialize_field("duration", &micros(span.duration_nanos()))?;
        out.serialize_field("tags", &tags)?;
        out.serialize_field("logs", &Each(logs))?;
        out.serialize_field("processID", &ProcessId(self.process))?;
        out.serialize_field("warnings", &())?;
        out.serialize_field("flags", &(span.flags & 0xff))?;
        out.end()
    }
}

/// Jaeger's response envelope, with what Hopline adds to a trace search's:
/// `totalCapped` past what a search counts, and `nextCursor`.
#[derive(Serialize)]
pub struct Envelope<D> {
    pub data: D,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: (),
    #[serde(rename = "totalCapped", skip_serializing_if = "std::ops::Not::not")]
    pub total_capped: bool,
    /// `Some` on a search: the next page's cursor, or null on the last.
    #[serde(rename = "nextCursor", skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Option<String>>,
}

impl<D> Envelope<D> {
    pub fn new(data: D, total: usize) -> Self {
        Envelope {
            data,
            total,
            limit: 0,
            offset: 0,
            errors: (),
            total_capped: false,
            next_cursor: None,
        }
    }
}

/// Jaeger's response envelope around `data`.
pub fn envelope(data: Value, total: usize) -> Value {
    json!(Envelope::new(data, total))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Scope, SpanEvent, SpanId, SpanKind, SpanLink};

    fn span() -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: Some(SpanId([3; 8])),
            trace_state: String::new(),
            flags: 1,
            name: "GET /users/{id}".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_700_000_000_000_001_000,
            end_time_unix_nano: 1_700_000_000_002_001_000,
            attributes: vec![
                KeyValue::new("http.response.status_code", AnyValue::Int(500)),
                KeyValue::new("retry", AnyValue::Bool(true)),
                KeyValue::new("ratio", AnyValue::Double(0.5)),
                KeyValue::new(
                    "ids",
                    AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Int(2)]),
                ),
            ],
            dropped_attributes_count: 0,
            events: vec![SpanEvent {
                time_unix_nano: 1_700_000_000_001_000_000,
                name: "exception".into(),
                attributes: vec![KeyValue::new(
                    "exception.message",
                    AnyValue::Str("boom".into()),
                )],
                dropped_attributes_count: 0,
            }],
            dropped_events_count: 0,
            links: vec![SpanLink {
                trace_id: TraceId([9; 16]),
                span_id: SpanId([8; 8]),
                trace_state: String::new(),
                attributes: vec![],
                dropped_attributes_count: 0,
                flags: 0,
            }],
            dropped_links_count: 0,
            status_code: StatusCode::Error,
            status_message: "database down".into(),
            service_name: "user-service".into(),
            resource: Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AnyValue::Str("user-service".into())),
                    KeyValue::new("host.name", AnyValue::Str("box-1".into())),
                ],
                dropped_attributes_count: 0,
            }),
            scope: Arc::new(Scope {
                name: "axum".into(),
                version: "0.8".into(),
                attributes: vec![],
            }),
        }
    }

    fn trace_json(id: TraceId, spans: &[Span], warnings: &[String]) -> Value {
        serde_json::to_value(JaegerTrace {
            id,
            spans,
            warnings,
        })
        .expect("json")
    }

    #[test]
    fn values_json_cannot_hold_are_written_as_text_and_the_envelope_says_only_what_applies() {
        let mut odd = span();
        odd.attributes = vec![
            KeyValue::new("nan", AnyValue::Double(f64::NAN)),
            KeyValue::new("raw", AnyValue::Bytes(vec![0xab, 0x01])),
        ];
        let trace = trace_json(TraceId([1; 16]), &[odd], &["cut".into()]);
        let tags = &trace["spans"][0]["tags"];
        assert_eq!(
            find_tag(tags, "nan"),
            &json!({"key": "nan", "type": "float64", "value": "NaN"})
        );
        assert_eq!(
            find_tag(tags, "raw"),
            &json!({"key": "raw", "type": "binary", "value": "ab01"})
        );
        assert_eq!(trace["warnings"], json!(["cut"]));
        assert_eq!(trace["spans"][0]["warnings"], Value::Null);
        let spans = [span()];
        let envelope = |total_capped, next_cursor| {
            serde_json::to_value(Envelope {
                total_capped,
                next_cursor,
                ..Envelope::new(
                    vec![JaegerTrace {
                        id: TraceId([1; 16]),
                        spans: &spans,
                        warnings: &[],
                    }],
                    1,
                )
            })
            .expect("json")
        };
        let one = envelope(false, None);
        assert_eq!(one["total"], 1);
        assert_eq!(one["errors"], Value::Null);
        assert_eq!(one["data"][0]["warnings"], Value::Null);
        assert!(one.get("totalCapped").is_none() && one.get("nextCursor").is_none());
        let page = envelope(true, Some(None));
        assert_eq!(page["totalCapped"], true);
        assert_eq!(page["nextCursor"], Value::Null);
        assert!(page.as_object().expect("object").contains_key("nextCursor"));
    }

    fn find_tag<'a>(tags: &'a Value, key: &str) -> &'a Value {
        tags.as_array()
            .and_then(|tags| tags.iter().find(|t| t["key"] == key))
            .unwrap_or_else(|| panic!("no tag {key} in {tags}"))
    }

    #[test]
    fn maps_a_span_the_way_the_specification_translates_to_jaeger() {
        let trace = trace_json(TraceId([1; 16]), &[span()], &[]);
        let span = &trace["spans"][0];
        assert_eq!(span["startTime"], 1_700_000_000_000_001u64);
        assert_eq!(span["duration"], 2000);
        assert_eq!(
            span["references"][0],
            json!({"refType": "CHILD_OF", "traceID": "01".repeat(16), "spanID": "03".repeat(8)})
        );
        assert_eq!(span["references"][1]["refType"], "FOLLOWS_FROM");
        let tags = &span["tags"];
        assert_eq!(
            find_tag(tags, "http.response.status_code"),
            &json!({"key": "http.response.status_code", "type": "int64", "value": 500})
        );
        assert_eq!(find_tag(tags, "retry")["type"], "bool");
        assert_eq!(find_tag(tags, "ratio")["type"], "float64");
        assert_eq!(find_tag(tags, "ids")["value"], "[1,2]");
        assert_eq!(find_tag(tags, "span.kind")["value"], "server");
        assert_eq!(find_tag(tags, "error")["value"], true);
        assert_eq!(
            find_tag(tags, "otel.status_description")["value"],
            "database down"
        );
        assert_eq!(
            span["logs"][0]["fields"][0],
            json!({"key": "event", "type": "string", "value": "exception"})
        );
        let process = &trace["processes"][span["processID"].as_str().expect("pid")];
        assert_eq!(process["serviceName"], "user-service");
        assert_eq!(find_tag(&process["tags"], "host.name")["value"], "box-1");
    }
}
