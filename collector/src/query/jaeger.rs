//! Spans -> Jaeger's JSON model (the shape the Jaeger UI and Grafana's Jaeger data
//! source read), following the OpenTelemetry specification's Jaeger translation:
//! resource attributes become process tags, span kind the `span.kind` tag, an error
//! status `error=true` plus `otel.status_code`/`otel.status_description`, events
//! span logs (`event` field), links `FOLLOWS_FROM` references. Tags keep their type.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::model::{AnyValue, KeyValue, Resource, Span, StatusCode, TraceId};

fn tag(key: &str, value: &AnyValue) -> Value {
    let (kind, value) = match value {
        AnyValue::Str(s) => ("string", Value::String(s.to_string())),
        AnyValue::Bool(b) => ("bool", Value::Bool(*b)),
        AnyValue::Int(i) => ("int64", Value::from(*i)),
        AnyValue::Double(d) => ("float64", value_of_f64(*d)),
        AnyValue::Bytes(b) => ("binary", Value::String(crate::model::hex(b))),
        AnyValue::Empty => ("string", Value::String(String::new())),
        AnyValue::Array(_) | AnyValue::Map(_) => {
            ("string", Value::String(value.to_json().to_string()))
        }
    };
    json!({ "key": key, "type": kind, "value": value })
}

fn value_of_f64(d: f64) -> Value {
    serde_json::Number::from_f64(d)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(d.to_string()))
}

fn string_tag(key: &str, value: &str) -> Value {
    json!({ "key": key, "type": "string", "value": value })
}

fn tags(attributes: &[KeyValue]) -> Vec<Value> {
    attributes
        .iter()
        .map(|kv| tag(&kv.key, &kv.value))
        .collect()
}

fn micros(nanos: u64) -> u64 {
    nanos / 1000
}

/// One trace in Jaeger's JSON model. `spans` must all belong to `trace_id`;
/// `warnings` are shown by the Jaeger UI above the trace (e.g. that it was cut).
pub fn trace_json(trace_id: TraceId, spans: &[Span], warnings: &[String]) -> Value {
    // Processes: one per distinct (service, resource), numbered in order of appearance.
    let mut processes: Vec<(&str, &Arc<Resource>)> = Vec::new();
    let mut process_ids = Vec::with_capacity(spans.len());
    for span in spans {
        let key = (&*span.service_name, &span.resource);
        // Spans read from one split share their resource: a pointer comparison
        // settles most of them.
        let same =
            |p: &(&str, &Arc<Resource>)| p.0 == key.0 && (Arc::ptr_eq(p.1, key.1) || p.1 == key.1);
        let index = match processes.iter().position(same) {
            Some(index) => index,
            None => {
                processes.push(key);
                processes.len() - 1
            }
        };
        process_ids.push(format!("p{}", index + 1));
    }
    let spans_json: Vec<Value> = spans
        .iter()
        .zip(&process_ids)
        .map(|(span, pid)| span_json(span, pid))
        .collect();
    let processes_json: serde_json::Map<String, Value> = processes
        .iter()
        .enumerate()
        .map(|(i, (service, resource))| {
            let process_tags: Vec<Value> = resource
                .attributes
                .iter()
                .filter(|kv| kv.key != "service.name")
                .map(|kv| tag(&kv.key, &kv.value))
                .collect();
            (
                format!("p{}", i + 1),
                json!({ "serviceName": service, "tags": process_tags }),
            )
        })
        .collect();
    json!({
        "traceID": trace_id.to_hex(),
        "spans": spans_json,
        "processes": processes_json,
        "warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) },
    })
}

fn span_json(span: &Span, process_id: &str) -> Value {
    let trace_id = span.trace_id.to_hex();
    let mut references = Vec::new();
    if let Some(parent) = span.parent_span_id {
        references
            .push(json!({ "refType": "CHILD_OF", "traceID": trace_id, "spanID": parent.to_hex() }));
    }
    for link in &span.links {
        references.push(json!({
            "refType": "FOLLOWS_FROM",
            "traceID": link.trace_id.to_hex(),
            "spanID": link.span_id.to_hex(),
        }));
    }
    let mut span_tags = tags(&span.attributes);
    let kind = span.kind.as_jaeger();
    if !kind.is_empty() {
        span_tags.push(string_tag("span.kind", kind));
    }
    match span.status_code {
        StatusCode::Error => {
            span_tags.push(json!({ "key": "error", "type": "bool", "value": true }));
            span_tags.push(string_tag("otel.status_code", "ERROR"));
            if !span.status_message.is_empty() {
                span_tags.push(string_tag("otel.status_description", &span.status_message));
            }
        }
        StatusCode::Ok => span_tags.push(string_tag("otel.status_code", "OK")),
        StatusCode::Unset => {}
    }
    if !span.scope.name.is_empty() {
        span_tags.push(string_tag("otel.scope.name", &span.scope.name));
    }
    if !span.scope.version.is_empty() {
        span_tags.push(string_tag("otel.scope.version", &span.scope.version));
    }
    if !span.trace_state.is_empty() {
        span_tags.push(string_tag("w3c.tracestate", &span.trace_state));
    }
    let logs: Vec<Value> = span
        .events
        .iter()
        .map(|event| {
            let mut fields = vec![string_tag("event", &event.name)];
            fields.extend(tags(&event.attributes));
            json!({ "timestamp": micros(event.time_unix_nano), "fields": fields })
        })
        .collect();
    json!({
        "traceID": trace_id,
        "spanID": span.span_id.to_hex(),
        "operationName": span.name,
        "references": references,
        "startTime": micros(span.start_time_unix_nano),
        "duration": micros(span.duration_nanos()),
        "tags": span_tags,
        "logs": logs,
        "processID": process_id,
        "warnings": null,
        "flags": span.flags & 0xff,
    })
}

/// Jaeger's response envelope.
pub fn envelope(data: Value, total: usize) -> Value {
    json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null })
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
