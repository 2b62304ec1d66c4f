//! Spans -> OTLP/JSON `TracesData` (Jaeger's api_v3 answers with it): hex ids,
//! 64-bit integers as strings, enums as integers, lowerCamelCase names.

use serde_json::{json, Value};

use crate::model::{AnyValue, KeyValue, Resource, Scope, Span};

pub fn any_value(value: &AnyValue) -> Value {
    match value {
        AnyValue::Empty => json!({}),
        AnyValue::Str(s) => json!({ "stringValue": s }),
        AnyValue::Bool(b) => json!({ "boolValue": b }),
        AnyValue::Int(i) => json!({ "intValue": i.to_string() }),
        AnyValue::Double(d) => json!({ "doubleValue": d }),
        AnyValue::Bytes(b) => json!({ "bytesValue": base64(b) }),
        AnyValue::Array(values) => {
            json!({ "arrayValue": { "values": values.iter().map(any_value).collect::<Vec<_>>() } })
        }
        AnyValue::Map(entries) => json!({ "kvlistValue": { "values": attributes(entries) } }),
    }
}

pub fn attributes(attributes: &[KeyValue]) -> Vec<Value> {
    attributes
        .iter()
        .map(|kv| json!({ "key": kv.key, "value": any_value(&kv.value) }))
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn span_json(span: &Span) -> Value {
    let mut value = json!({
        "traceId": span.trace_id.to_hex(),
        "spanId": span.span_id.to_hex(),
        "parentSpanId": span.parent_span_id.map(|id| id.to_hex()).unwrap_or_default(),
        "traceState": span.trace_state,
        "flags": span.flags,
        "name": span.name,
        "kind": span.kind.as_otlp(),
        "startTimeUnixNano": span.start_time_unix_nano.to_string(),
        "endTimeUnixNano": span.end_time_unix_nano.to_string(),
        "attributes": attributes(&span.attributes),
        "droppedAttributesCount": span.dropped_attributes_count,
        "events": span.events.iter().map(|event| json!({
            "timeUnixNano": event.time_unix_nano.to_string(),
            "name": event.name,
            "attributes": attributes(&event.attributes),
            "droppedAttributesCount": event.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "droppedEventsCount": span.dropped_events_count,
        "links": span.links.iter().map(|link| json!({
            "traceId": link.trace_id.to_hex(),
            "spanId": link.span_id.to_hex(),
            "traceState": link.trace_state,
            "attributes": attributes(&link.attributes),
            "droppedAttributesCount": link.dropped_attributes_count,
            "flags": link.flags,
        })).collect::<Vec<_>>(),
        "droppedLinksCount": span.dropped_links_count,
        "status": { "code": span.status_code.as_otlp(), "message": span.status_message },
    });
    if span.parent_span_id.is_none() {
        if let Some(object) = value.as_object_mut() {
            object.remove("parentSpanId");
        }
    }
    value
}

/// Groups spans by resource and scope into `{"resourceSpans": [...]}`.
pub fn traces_data(spans: &[Span]) -> Value {
    // The spans of each scope of each resource, in order of first appearance.
    type ScopeGroup<'a> = (&'a Scope, Vec<&'a Span>);
    let mut groups: Vec<(&Resource, Vec<ScopeGroup<'_>>)> = Vec::new();
    for span in spans {
        let resource = span.resource.as_ref();
        let group = match groups.iter().position(|(r, _)| *r == resource) {
            Some(i) => &mut groups[i].1,
            None => {
                groups.push((resource, Vec::new()));
                let last = groups.len() - 1;
                &mut groups[last].1
            }
        };
        let scope = span.scope.as_ref();
        match group.iter().position(|(s, _)| *s == scope) {
            Some(i) => group[i].1.push(span),
            None => group.push((scope, vec![span])),
        }
    }
    let resource_spans: Vec<Value> = groups
        .into_iter()
        .map(|(resource, scopes)| {
            json!({
                "resource": {
                    "attributes": attributes(&resource.attributes),
                    "droppedAttributesCount": resource.dropped_attributes_count,
                },
                "scopeSpans": scopes.into_iter().map(|(scope, spans)| json!({
                    "scope": { "name": scope.name, "version": scope.version, "attributes": attributes(&scope.attributes) },
                    "spans": spans.into_iter().map(span_json).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_like_the_standard_alphabet() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn int64_values_are_strings() {
        assert_eq!(any_value(&AnyValue::Int(7)), json!({"intValue": "7"}));
    }
}
