//! The standard workload as other senders send it, for `--sender`: spans as a
//! Zipkin reporter sends them (Zipkin v2 JSON), log records as a Loki agent pushes
//! them (Loki's JSON push) or as a Filebeat sends them (Elasticsearch bulk
//! NDJSON, ECS names). The same records, so that records per CPU-second compare
//! with OTLP's.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use serde_json::{json, Map, Value};

/// Zipkin v2 JSON of the spans of `request`: the resource's `service.name` as the
/// local endpoint, the attributes as string tags.
pub fn zipkin_json(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|resource| {
                resource
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
            })
            .and_then(|kv| kv.value.as_ref())
            .map(text)
            .unwrap_or_default();
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                let tags: Map<String, Value> = span
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = kv.value.as_ref().map(text).unwrap_or_default();
                        (kv.key.clone(), Value::String(value))
                    })
                    .collect();
                let kind = match span.kind {
                    2 => Some("SERVER"),
                    3 => Some("CLIENT"),
                    4 => Some("PRODUCER"),
                    5 => Some("CONSUMER"),
                    _ => None,
                };
                let mut zipkin = json!({
                    "traceId": hex(&span.trace_id),
                    "id": hex(&span.span_id),
                    "name": span.name,
                    "timestamp": span.start_time_unix_nano / 1000,
                    "duration": span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) / 1000,
                    "localEndpoint": {"serviceName": service},
                    "tags": tags,
                });
                if !span.parent_span_id.is_empty() {
                    zipkin["parentId"] = Value::String(hex(&span.parent_span_id));
                }
                if let Some(kind) = kind {
                    zipkin["kind"] = Value::String(kind.into());
                }
                spans.push(zipkin);
            }
        }
    }
    serde_json::to_vec(&spans).unwrap_or_default()
}

/// Loki's JSON push of the records of `request`: a stream per resource, its
/// attributes the labels (`service.name` as `service_name`); each record's body
/// the line, its attributes, severity and trace id structured metadata.
pub fn loki_json(request: &ExportLogsServiceRequest) -> Vec<u8> {
    let label = |key: &str| key.replace('.', "_");
    let mut streams = Vec::new();
    for resource_logs in &request.resource_logs {
        let labels: Map<String, Value> = resource_logs
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .map(|kv| (label(&kv.key), Value::String(value_text(kv))))
            .collect();
        let mut values = Vec::new();
        for scope_logs in &resource_logs.scope_logs {
            for record in &scope_logs.log_records {
                let mut metadata: Map<String, Value> = record
                    .attributes
                    .iter()
                    .map(|kv| (label(&kv.key), Value::String(value_text(kv))))
                    .collect();
                metadata.insert("level".into(), record.severity_text.clone().into());
                if !record.trace_id.is_empty() {
                    metadata.insert("trace_id".into(), hex(&record.trace_id).into());
                }
                let line = record.body.as_ref().map(text).unwrap_or_default();
                values.push(json!([record.time_unix_nano.to_string(), line, metadata]));
            }
        }
        streams.push(json!({"stream": labels, "values": values}));
    }
    serde_json::to_vec(&json!({ "streams": streams })).unwrap_or_default()
}

/// An Elasticsearch bulk request of the records of `request`: an `index` action
/// and an ECS document each (`@timestamp`, `message`, `log.level`,
/// `service.name`, `trace.id`, the attributes as fields).
pub fn elasticsearch_bulk(request: &ExportLogsServiceRequest) -> Vec<u8> {
    let mut out = Vec::new();
    for resource_logs in &request.resource_logs {
        let service = resource_logs
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|kv| kv.key == "service.name")
            .map(value_text)
            .unwrap_or_default();
        for scope_logs in &resource_logs.scope_logs {
            for record in &scope_logs.log_records {
                let mut document: Map<String, Value> = record
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), Value::String(value_text(kv))))
                    .collect();
                // RFC 3339 to the nanosecond, as Filebeat and Vector send it: epoch
                // milliseconds would give thousands of records one time.
                document.insert("@timestamp".into(), rfc3339(record.time_unix_nano).into());
                document.insert(
                    "message".into(),
                    record.body.as_ref().map(text).unwrap_or_default().into(),
                );
                document.insert("log.level".into(), record.severity_text.clone().into());
                document.insert("service.name".into(), service.clone().into());
                if !record.trace_id.is_empty() {
                    document.insert("trace.id".into(), hex(&record.trace_id).into());
                }
                out.extend_from_slice(b"{\"index\":{}}\n");
                // Writing to a Vec cannot fail.
                let _ = serde_json::to_writer(&mut out, &document);
                out.push(b'\n');
            }
        }
    }
    out
}

/// `nanos` since the epoch as RFC 3339 UTC, to the nanosecond.
fn rfc3339(nanos: u64) -> String {
    let (seconds, fraction) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // The civil date of a day number (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:09}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn value_text(kv: &KeyValue) -> String {
    kv.value.as_ref().map(text).unwrap_or_default()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BoolValue(value)) => value.to_string(),
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;

    #[test]
    fn every_span_of_a_batch_becomes_a_zipkin_span_with_its_service_and_tags() {
        let workload = Workload {
            nonce: 7,
            now: 1_900_000_000_000_000_000,
        };
        let request = workload.spans(0, 16);
        let spans: Vec<Value> = serde_json::from_slice(&zipkin_json(&request)).expect("json");
        assert_eq!(spans.len(), 16);
        let first = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(spans[0]["id"], hex(&first.span_id));
        assert_eq!(spans[0]["traceId"].as_str().map(str::len), Some(32));
        assert_eq!(spans[0]["timestamp"], first.start_time_unix_nano / 1000);
        assert!(spans[0]["localEndpoint"]["serviceName"]
            .as_str()
            .is_some_and(|name| !name.is_empty()));
        assert_eq!(
            spans[0]["tags"].as_object().map(Map::len),
            Some(first.attributes.len())
        );
    }

    #[test]
    fn every_log_record_of_a_batch_becomes_an_action_and_a_document() {
        let workload = Workload {
            nonce: 7,
            now: 1_900_000_000_000_000_000,
        };
        let request = workload.logs(0, 16);
        let bulk = elasticsearch_bulk(&request);
        let lines: Vec<Value> = bulk
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).expect("json"))
            .collect();
        assert_eq!(lines.len(), 32);
        assert_eq!(lines[0], json!({"index": {}}));
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(
            hopline::model::parse_rfc3339(lines[1]["@timestamp"].as_str().expect("a time")),
            Ok(record.time_unix_nano)
        );
        assert_eq!(
            rfc3339(1_700_000_000_500_000_000),
            "2023-11-14T22:13:20.500000000Z"
        );
        assert_eq!(
            lines[1]["message"],
            text(record.body.as_ref().expect("body"))
        );
    }

    #[test]
    fn every_log_record_of_a_batch_becomes_a_loki_entry_of_its_resource_stream() {
        let workload = Workload {
            nonce: 7,
            now: 1_900_000_000_000_000_000,
        };
        let request = workload.logs(0, 16);
        let push: Value = serde_json::from_slice(&loki_json(&request)).expect("json");
        let streams = push["streams"].as_array().expect("streams");
        assert_eq!(streams.len(), request.resource_logs.len());
        let entries: usize = streams
            .iter()
            .map(|s| s["values"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(entries, 16);
        assert!(streams[0]["stream"]["service_name"].is_string());
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        let entry = &streams[0]["values"][0];
        assert_eq!(entry[0], record.time_unix_nano.to_string());
        assert_eq!(entry[1], text(record.body.as_ref().expect("body")));
    }
}
