//! Elasticsearch `_bulk` requests (NDJSON: an action line, then a document) into
//! log records, as Filebeat, Fluent Bit, Vector, Logstash and the Elasticsearch
//! clients send them, with ECS field names:
//!
//! | document | Hopline (OTLP) |
//! | --- | --- |
//! | `@timestamp` (RFC 3339, or epoch milliseconds) | the record's time (the receipt time when absent) |
//! | `message` | the body (without one: the document, as a map) |
//! | `log.level` (else `level`, `severity`) | severity text, and its number for a known name |
//! | `service.name` | resource `service.name` (else the index's name) |
//! | `host.name` | resource `host.name` |
//! | the index (`_index`, or the path's) | resource `elasticsearch.index` |
//! | `trace.id`, `span.id` (ECS; also `trace_id`, `span_id`) | trace and span ids, when hex |
//! | every other field | an attribute; nested objects flattened with dots (`http.request.method`) |
//!
//! Field names may come dotted (`"log.level"`) or nested (`{"log": {"level"}}`);
//! both are read alike. Each action gets its own outcome, as Elasticsearch gives it:
//! `index` and `create` store their document (201), a document that cannot be
//! stored gets a `document_parsing_exception` with the reason and the others are
//! kept; `delete` and `update` are refused item by item (Hopline keeps what it
//! receives). A malformed action line refuses the whole request, as in
//! Elasticsearch.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::convert::{log_times, Converted};
use super::limits::Limit;
use crate::config::RecordLimits;
use crate::model::{
    parse_rfc3339, severity_number_of, AnyValue, KeyValue, LogRecord, Resource, Scope, SpanId, Str,
    TraceId,
};

/// The index of a request to `/_bulk` whose actions name none.
pub const DEFAULT_INDEX: &str = "hopline";
/// How deeply a document's objects may nest before the rest is kept as JSON text.
const MAX_DEPTH: usize = 16;

/// Why a request could not be read at all (Elasticsearch's
/// `illegal_argument_exception`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

/// What became of one action: Elasticsearch's item in a bulk response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub action: &'static str,
    pub index: String,
    pub id: String,
    /// Why it was not stored (`None`: created).
    pub error: Option<ItemError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub status: u16,
    pub kind: &'static str,
    pub reason: String,
}

/// The records of a bulk request and the outcome of each action, in order. The
/// records are those of the items without an error. `default_index` is the
/// path's index (`/{index}/_bulk`), else [`DEFAULT_INDEX`]; the documents that
/// come without an `_id` get `{id_base:x}-{n}` (the receiver gives the receipt
/// time).
pub fn decode_bulk(
    body: &[u8],
    default_index: &str,
    id_base: u64,
    now_nanos: u64,
    limits: &RecordLimits,
) -> Result<(Converted<LogRecord>, Vec<Item>), DecodeError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| DecodeError(format!("the bulk body is not UTF-8: {e}")))?;
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim_end_matches('\r')))
        .filter(|(_, line)| !line.trim().is_empty());
    let mut builder = Builder {
        now_nanos,
        limits,
        resources: HashMap::new(),
        scope: Arc::new(Scope {
            name: Str::from_static("elasticsearch"),
            version: String::new(),
            attributes: Vec::new(),
        }),
    };
    let mut out = Converted::default();
    let mut items = Vec::new();
    let mut unnamed = 0u64;
    while let Some((number, line)) = lines.next() {
        let (action, meta) = action(number, line)?;
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .unwrap_or(default_index)
            .to_string();
        let id = match meta.get("_id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                unnamed += 1;
                format!("{id_base:x}-{unnamed}")
            }
        };
        let mut item = Item {
            action,
            index,
            id,
            error: None,
        };
        if action == "delete" {
            item.error = Some(refused(action));
            items.push(item);
            continue;
        }
        let Some((_, source)) = lines.next() else {
            return Err(DecodeError(format!(
                "the {action} action on line {number} has no document after it"
            )));
        };
        if action == "update" {
            item.error = Some(refused(action));
            items.push(item);
            continue;
        }
        match serde_json::from_str::<Map<String, Value>>(source)
            .map_err(|e| format!("the document is not a JSON object: {e}"))
            .and_then(|document| builder.record(document, &item.index))
        {
            Ok(record) => out.records.push(record),
            Err(reason) => {
                out.reject(format!("document {}: {reason}", item.id));
                item.error = Some(ItemError {
                    status: 400,
                    kind: "document_parsing_exception",
                    reason,
                });
            }
        }
        items.push(item);
    }
    Ok((out, items))
}

/// An action line: `{"index": {...}}`, `{"create": {...}}`, `{"delete": {...}}`
/// or `{"update": {...}}`.
fn action(number: usize, line: &str) -> Result<(&'static str, Map<String, Value>), DecodeError> {
    let malformed =
        |why: &str| DecodeError(format!("Malformed action/metadata line [{number}], {why}"));
    let object: Map<String, Value> =
        serde_json::from_str(line).map_err(|_| malformed("expected a JSON object"))?;
    let mut entries = object.into_iter();
    let (Some((name, meta)), None) = (entries.next(), entries.next()) else {
        return Err(malformed("expected one action"));
    };
    let action = match name.as_str() {
        "index" => "index",
        "create" => "create",
        "delete" => "delete",
        "update" => "update",
        other => {
            return Err(malformed(&format!(
                "unknown action [{}]: expected index, create, delete or update",
                other.chars().take(40).collect::<String>()
            )))
        }
    };
    match meta {
        Value::Object(meta) => Ok((action, meta)),
        _ => Err(malformed("expected an object of metadata")),
    }
}

fn refused(action: &'static str) -> ItemError {
    ItemError {
        status: 405,
        kind: "illegal_argument_exception",
        reason: format!(
            "the {action} action is not supported: Hopline keeps log records as they come (index or create)"
        ),
    }
}

struct Builder<'a> {
    now_nanos: u64,
    limits: &'a RecordLimits,
    /// By (index, service, host).
    resources: HashMap<(String, String, String), (Str, Arc<Resource>)>,
    scope: Arc<Scope>,
}

impl Builder<'_> {
    fn record(&mut self, document: Map<String, Value>, index: &str) -> Result<LogRecord, String> {
        let mut fields = Vec::new();
        flatten(String::new(), Value::Object(document), 0, &mut fields);
        let mut take = |names: &[&str]| -> Option<Value> {
            let at = fields
                .iter()
                .position(|(key, _)| names.contains(&key.as_str()))?;
            Some(fields.remove(at).1)
        };
        let time = match take(&["@timestamp", "timestamp"]) {
            None => 0,
            Some(Value::String(text)) => {
                parse_rfc3339(&text).map_err(|e| format!("@timestamp '{text}': {e}"))?
            }
            Some(Value::Number(millis)) => millis
                .as_u64()
                .and_then(|ms| ms.checked_mul(1_000_000))
                .ok_or_else(|| format!("@timestamp {millis} is not epoch milliseconds"))?,
            Some(other) => return Err(format!("@timestamp {other} is not a time")),
        };
        let (time, observed) = log_times(time, 0, self.now_nanos)?;
        let text = |value: Value| match value {
            Value::String(text) => text,
            other => other.to_string(),
        };
        let message = take(&["message"]);
        let level = take(&["log.level", "level", "severity"])
            .map(text)
            .unwrap_or_default();
        let service = take(&["service.name"]).map(text);
        let host = take(&["host.name"]).map(text).unwrap_or_default();
        let ids = |value: Option<Value>| value.map(text).filter(|id| !id.is_empty());
        let trace_id = ids(take(&["trace.id", "trace_id", "traceId"]))
            .map(|id| TraceId::from_hex(&id).map_err(|e| format!("trace.id '{id}': {e}")))
            .transpose()?;
        let span_id = ids(take(&["span.id", "span_id", "spanId"]))
            .map(|id| SpanId::from_hex(&id).map_err(|e| format!("span.id '{id}': {e}")))
            .transpose()?;
        let attributes: Vec<KeyValue> = fields
            .into_iter()
            .map(|(key, value)| KeyValue::new(key, any_value(value)))
            .collect();
        let body = match message {
            Some(message) => AnyValue::Str(Str::from(text(message))),
            None => AnyValue::Map(attributes.clone()),
        };
        let service = service.unwrap_or_else(|| index.to_string());
        let (service_name, resource) = self.resource(index, service, host);
        let mut record = LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: observed,
            severity_number: severity_number_of(&level).unwrap_or(0),
            severity_text: Str::from(level),
            body,
            attributes,
            dropped_attributes_count: 0,
            flags: 0,
            trace_id,
            span_id,
            event_name: String::new(),
            service_name,
            resource,
            scope: Arc::clone(&self.scope),
        };
        let _cut = record.limit(self.limits);
        Ok(record)
    }

    fn resource(&mut self, index: &str, service: String, host: String) -> (Str, Arc<Resource>) {
        let key = (index.to_string(), service, host);
        if let Some(found) = self.resources.get(&key) {
            return found.clone();
        }
        let mut attributes = vec![
            KeyValue::new("service.name", AnyValue::Str(Str::from(key.1.as_str()))),
            KeyValue::new("elasticsearch.index", AnyValue::Str(Str::from(index))),
        ];
        if !key.2.is_empty() {
            attributes.push(KeyValue::new(
                "host.name",
                AnyValue::Str(Str::from(key.2.as_str())),
            ));
        }
        let mut resource = Resource {
            attributes,
            dropped_attributes_count: 0,
        };
        let _cut = resource.limit(self.limits);
        let name = match resource.attributes.first().map(|kv| &kv.value) {
            Some(AnyValue::Str(name)) if !name.is_empty() => name.clone(),
            _ => Str::from_static(crate::model::UNKNOWN_SERVICE),
        };
        let found = (name, Arc::new(resource));
        self.resources.insert(key, found.clone());
        found
    }
}

/// A document's fields with dotted names; objects nested deeper than
/// [`MAX_DEPTH`] are kept whole.
fn flatten(prefix: String, value: Value, depth: usize, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(object) if depth < MAX_DEPTH => {
            for (key, value) in object {
                let key = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(key, value, depth + 1, out);
            }
        }
        value => out.push((prefix, value)),
    }
}

fn any_value(value: Value) -> AnyValue {
    match value {
        Value::Null => AnyValue::Empty,
        Value::Bool(b) => AnyValue::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AnyValue::Str(Str::from(s)),
        // Arrays of scalars stay arrays; anything else keeps its JSON text.
        Value::Array(values) if values.iter().all(|v| !v.is_object() && !v.is_array()) => {
            AnyValue::Array(values.into_iter().map(any_value).collect())
        }
        other => AnyValue::Str(Str::from(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000 * 1_000_000_000;

    fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
        crate::model::attribute(attributes, key)
    }

    #[test]
    fn ecs_documents_become_records_dotted_or_nested() {
        let body = concat!(
            r#"{"index":{"_index":"logs-shop","_id":"a1"}}"#,
            "\n",
            r#"{"@timestamp":"2023-11-14T22:13:19.5Z","message":"card declined","log.level":"warn","service.name":"checkout","host":{"name":"node-3"},"trace.id":"4bf92f3577b34da6a3ce929d0e0e4736","http":{"request":{"method":"POST"}},"order":42}"#,
            "\n",
            r#"{"create":{}}"#,
            "\r\n",
            r#"{"@timestamp":1699999999000,"log":{"level":"error"},"event":"no message"}"#,
            "\n",
        );
        let (converted, items) =
            decode_bulk(body.as_bytes(), "app", 0, NOW, &RecordLimits::default()).expect("decoded");
        assert_eq!(converted.rejected, 0);
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].index.as_str(), items[0].id.as_str()),
            ("logs-shop", "a1")
        );
        assert_eq!(
            (items[1].index.as_str(), items[1].action),
            ("app", "create")
        );
        assert_eq!(items[1].id, "0-1");
        let [first, second] = &converted.records[..] else {
            panic!("two records");
        };
        assert_eq!(first.time_unix_nano, 1_699_999_999_500_000_000);
        assert_eq!(first.body, AnyValue::Str("card declined".into()));
        assert_eq!((first.severity_number, &*first.severity_text), (13, "warn"));
        assert_eq!(&*first.service_name, "checkout");
        assert_eq!(
            attribute(&first.resource.attributes, "host.name"),
            Some(&AnyValue::Str("node-3".into()))
        );
        assert_eq!(
            attribute(&first.resource.attributes, "elasticsearch.index"),
            Some(&AnyValue::Str("logs-shop".into()))
        );
        assert_eq!(
            first.trace_id.map(|id| id.to_hex()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            attribute(&first.attributes, "http.request.method"),
            Some(&AnyValue::Str("POST".into()))
        );
        assert_eq!(
            attribute(&first.attributes, "order"),
            Some(&AnyValue::Int(42))
        );
        assert_eq!(attribute(&first.attributes, "host.name"), None);

        assert_eq!(second.time_unix_nano, 1_699_999_999_000_000_000);
        assert_eq!(second.severity_number, 17);
        assert_eq!(&*second.service_name, "app", "the index names the service");
        let AnyValue::Map(fields) = &second.body else {
            panic!("a document without a message is its own body");
        };
        assert_eq!(
            attribute(fields, "event"),
            Some(&AnyValue::Str("no message".into()))
        );
    }

    #[test]
    fn each_item_gets_its_outcome_and_a_malformed_action_refuses_all() {
        let body = concat!(
            r#"{"index":{}}"#,
            "\n",
            r#"{"message":"kept"}"#,
            "\n",
            r#"{"index":{}}"#,
            "\n",
            r#"{"message":"bad time","@timestamp":"yesterday"}"#,
            "\n",
            r#"{"index":{}}"#,
            "\n",
            r#"not json"#,
            "\n",
            r#"{"index":{}}"#,
            "\n",
            r#"{"message":"x","trace.id":"xyz"}"#,
            "\n",
            r#"{"delete":{"_id":"7"}}"#,
            "\n",
            r#"{"update":{"_id":"8"}}"#,
            "\n",
            r#"{"doc":{}}"#,
            "\n",
        );
        let (converted, items) =
            decode_bulk(body.as_bytes(), "app", 0, NOW, &RecordLimits::default()).expect("decoded");
        assert_eq!(converted.records.len(), 1);
        assert_eq!(converted.records[0].time_unix_nano, NOW, "the receipt time");
        let outcomes: Vec<Option<u16>> = items
            .iter()
            .map(|item| item.error.as_ref().map(|e| e.status))
            .collect();
        assert_eq!(
            outcomes,
            [None, Some(400), Some(400), Some(400), Some(405), Some(405)]
        );
        let reasons: Vec<&str> = items
            .iter()
            .filter_map(|item| item.error.as_ref().map(|e| e.reason.as_str()))
            .collect();
        assert!(reasons[0].contains("@timestamp 'yesterday'"), "{reasons:?}");
        assert!(reasons[1].contains("not a JSON object"), "{reasons:?}");
        assert!(reasons[2].contains("trace.id 'xyz'"), "{reasons:?}");
        assert!(
            reasons[3].contains("delete action is not supported"),
            "{reasons:?}"
        );

        let limits = RecordLimits::default();
        for (body, expected) in [
            ("{\"index\":{}}\n", "has no document after it"),
            (
                "{\"purge\":{}}\n{}\n",
                "Malformed action/metadata line [1], unknown action [purge]",
            ),
            ("[1]\n", "Malformed action/metadata line [1]"),
            ("{\"index\":{},\"create\":{}}\n{}\n", "expected one action"),
        ] {
            let error = decode_bulk(body.as_bytes(), "app", 0, NOW, &limits).expect_err(body);
            assert!(error.to_string().contains(expected), "{body}: {error}");
        }
        let error = decode_bulk(b"\xff\n", "app", 0, NOW, &limits).expect_err("not UTF-8");
        assert!(error.to_string().contains("not UTF-8"), "{error}");
    }

    #[test]
    fn deep_documents_are_kept_without_recursing_past_the_limit() {
        let mut document = String::from(r#"{"message":"deep","a":"#);
        for _ in 0..100 {
            document.push_str(r#"{"b":"#);
        }
        document.push('1');
        document.push_str(&"}".repeat(101));
        let body = format!("{{\"index\":{{}}}}\n{document}\n");
        let (converted, _) =
            decode_bulk(body.as_bytes(), "app", 0, NOW, &RecordLimits::default()).expect("ok");
        let key = format!("a{}", ".b".repeat(MAX_DEPTH - 1));
        assert!(
            attribute(&converted.records[0].attributes, &key).is_some(),
            "kept whole at depth {MAX_DEPTH}: {:?}",
            converted.records[0].attributes
        );
    }
}
