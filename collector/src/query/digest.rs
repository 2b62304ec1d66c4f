//! One trace, and two traces side by side, told in a few hundred words: what an
//! assistant (the MCP tools) reads instead of thousands of spans. The critical
//! path, the errors and the slowest spans, by service and operation, with the
//! span ids to ask about; the comparison span path by span path, as the
//! [analysis](super::analysis) of many traces reads one.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::analysis::{facts, shape, PathFacts};
use super::service::Trace;
use super::{ms, rfc3339};
use crate::model::{Span, StatusCode};

/// Rows of each list of a digest.
const ROWS: usize = 10;
/// Span paths listed in a comparison.
const COMPARED_PATHS: usize = 15;
/// Characters kept of an error message.
const MESSAGE_CHARS: usize = 300;

fn cut(text: &str) -> String {
    match text.char_indices().nth(MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Why a span failed: its status message, else its first exception event's
/// type and message.
fn error_message(span: &Span) -> String {
    if !span.status_message.is_empty() {
        return cut(&span.status_message);
    }
    let exception = span.events.iter().find(|e| &*e.name == "exception");
    let attribute = |key: &str| {
        exception.and_then(|e| {
            e.attributes
                .iter()
                .find(|kv| &*kv.key == key)
                .map(|kv| kv.value.to_search_text())
        })
    };
    match (attribute("exception.type"), attribute("exception.message")) {
        (Some(kind), Some(message)) => cut(&format!("{kind}: {message}")),
        (None, Some(message)) | (Some(message), None) => cut(&message),
        (None, None) => String::new(),
    }
}

fn span_row(span: &Span) -> serde_json::Map<String, Value> {
    let mut row = serde_json::Map::new();
    row.insert("service".into(), json!(&*span.service_name));
    row.insert("operation".into(), json!(&*span.name));
    row.insert("span_id".into(), json!(span.span_id.to_hex()));
    row
}

/// One trace for a model: its root, duration and services; the spans its
/// critical path runs through (the largest shares); its errors; its slowest
/// spans by self time; and `link`, where a person sees it whole.
pub fn trace_digest(trace: &Trace, link: &str) -> Value {
    let spans = &trace.spans;
    let shape = shape(spans);
    let (roots, children) = hopline_tree::children(&shape);
    let root = hopline_tree::main_root(&shape, &roots);
    let self_times = hopline_tree::self_times(&shape);
    let first = shape.iter().map(|s| s.start).min().unwrap_or(0);
    let last = shape.iter().map(|s| s.end).max().unwrap_or(0);

    // The critical path: time on it per span, largest first.
    let mut on_path: HashMap<usize, u64> = HashMap::new();
    if let Some(root) = root {
        for (span, from, to) in hopline_tree::critical_path(root, &shape, &children) {
            *on_path.entry(span).or_default() += to - from;
        }
    }
    let path_total: u64 = on_path.values().sum::<u64>().max(1);
    let mut path: Vec<(usize, u64)> = on_path.into_iter().collect();
    path.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let critical_path: Vec<Value> = path
        .iter()
        .take(ROWS)
        .map(|&(i, nanos)| {
            let mut row = span_row(&spans[i]);
            row.insert("ms_on_path".into(), json!(ms(nanos)));
            row.insert(
                "share".into(),
                json!(((nanos as f64 / path_total as f64) * 1000.0).round() / 1000.0),
            );
            Value::Object(row)
        })
        .collect();

    let failed: Vec<&Span> = spans
        .iter()
        .filter(|s| s.status_code == StatusCode::Error)
        .collect();
    let errors: Vec<Value> = failed
        .iter()
        .take(ROWS)
        .map(|span| {
            let mut row = span_row(span);
            row.insert("message".into(), json!(error_message(span)));
            Value::Object(row)
        })
        .collect();

    let mut slowest: Vec<usize> = (0..spans.len()).collect();
    slowest.sort_by(|&a, &b| self_times[b].cmp(&self_times[a]).then(a.cmp(&b)));
    let slowest: Vec<Value> = slowest
        .into_iter()
        .take(ROWS)
        .map(|i| {
            let mut row = span_row(&spans[i]);
            row.insert("duration_ms".into(), json!(ms(shape[i].duration())));
            row.insert("self_ms".into(), json!(ms(self_times[i])));
            Value::Object(row)
        })
        .collect();

    let mut services: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for span in spans {
        let entry = services.entry(&span.service_name).or_default();
        entry.0 += 1;
        entry.1 += u64::from(span.status_code == StatusCode::Error);
    }
    let services: Vec<Value> = services
        .into_iter()
        .map(|(service, (spans, errors))| json!({"service": service, "spans": spans, "errors": errors}))
        .collect();

    let mut digest = json!({
        "trace_id": trace.id.to_hex(),
        "link": link,
        "start": rfc3339(first),
        "duration_ms": ms(last.saturating_sub(first)),
        "spans": trace.total,
        "services": services,
        "critical_path": critical_path,
        "errors": errors,
        "error_count": failed.len(),
        "slowest_spans_by_self_time": slowest,
    });
    if let Some(root) = root {
        digest["root"] = Value::Object(span_row(&spans[root]));
    }
    if trace.is_cut() {
        digest["note"] = json!(format!(
            "the trace has {} spans; this digest reads its earliest {} (--max-spans-per-trace)",
            trace.total,
            spans.len()
        ));
    }
    digest
}

/// Two traces compared span path by span path (a path is the chain of
/// `service: operation` from the root): the paths whose time on the critical
/// path, span count or errors differ most, paths found in one trace only, and
/// `link` to the side-by-side view.
pub fn compare_digest(a: &Trace, b: &Trace, link: &str) -> Value {
    let (fa, fb) = (facts(a), facts(b));
    let empty = PathFacts::default();
    let mut keys: Vec<&String> = fa.paths.keys().chain(fb.paths.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut rows: Vec<(u64, Value)> = keys
        .into_iter()
        .map(|key| {
            let (pa, pb) = (
                fa.paths.get(key).unwrap_or(&empty),
                fb.paths.get(key).unwrap_or(&empty),
            );
            let named = if pa.spans > 0 { pa } else { pb };
            let change = pa.critical_ns.abs_diff(pb.critical_ns)
                + pa.self_ns.abs_diff(pb.self_ns) / 2
                + if pa.spans == 0 || pb.spans == 0 {
                    u64::MAX / 4
                } else {
                    0
                };
            let presence = match (pa.spans, pb.spans) {
                (0, _) => "only in b",
                (_, 0) => "only in a",
                _ => "both",
            };
            let row = json!({
                "path": key,
                "service": named.service,
                "operation": named.operation,
                "in": presence,
                "spans": [pa.spans, pb.spans],
                "errors": [pa.errors, pb.errors],
                "ms_on_critical_path": [ms(pa.critical_ns), ms(pb.critical_ns)],
                "self_ms": [ms(pa.self_ns), ms(pb.self_ns)],
            });
            (change, row)
        })
        .filter(|(change, row)| *change > 0 || row["spans"][0] != row["spans"][1])
        .collect();
    let differing = rows.len();
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    let paths: Vec<Value> = rows
        .into_iter()
        .take(COMPARED_PATHS)
        .map(|(_, row)| row)
        .collect();
    let side = |t: &Trace, f: &super::analysis::TraceFacts| {
        json!({
            "trace_id": t.id.to_hex(),
            "duration_ms": ms(f.duration_ns),
            "critical_path_ms": ms(f.critical_ns),
            "spans": t.total,
            "errors": t.spans.iter().filter(|s| s.status_code == StatusCode::Error).count(),
        })
    };
    let mut digest = json!({
        "link": link,
        "a": side(a, &fa),
        "b": side(b, &fb),
        "paths_that_differ": differing,
        "paths": paths,
        "reading": "each pair is [a, b]; paths are ordered by how much their time on the critical path and self time differ, paths in one trace only first",
    });
    if a.is_cut() || b.is_cut() {
        digest["note"] = json!("one of the traces has more spans than --max-spans-per-trace: its earliest spans are compared");
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resource, Scope, SpanId, TraceId};
    use std::sync::Arc;

    fn span(id: u8, parent: Option<u8>, service: &str, name: &str, start: u64, end: u64) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            trace_state: String::new(),
            flags: 0,
            name: name.into(),
            kind: crate::model::SpanKind::Server,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            service_name: service.into(),
            resource: Arc::new(Resource::default()),
            scope: Arc::new(Scope::default()),
        }
    }

    fn trace(spans: Vec<Span>) -> Trace {
        Trace {
            id: TraceId([1; 16]),
            total: spans.len(),
            spans,
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn a_digest_names_the_critical_path_the_errors_and_the_slowest_spans() {
        let mut db = span(3, Some(2), "orders", "SELECT", 20 * MS, 90 * MS);
        db.status_code = StatusCode::Error;
        db.status_message = "deadlock detected".into();
        let digest = trace_digest(
            &trace(vec![
                span(1, None, "gateway", "GET /order", 0, 100 * MS),
                span(2, Some(1), "orders", "load", 10 * MS, 95 * MS),
                db,
                // Off the path: it runs beside `load`, which the root waits on.
                span(4, Some(1), "users", "lookup", 12 * MS, 20 * MS),
            ]),
            "/trace/01",
        );
        assert_eq!(digest["duration_ms"], 100.0);
        assert_eq!(digest["root"]["operation"], "GET /order");
        let path = digest["critical_path"].as_array().expect("path");
        assert_eq!(path[0]["operation"], "SELECT", "{digest}");
        assert_eq!(path[0]["ms_on_path"], 70.0);
        assert!(
            path.iter().all(|row| row["operation"] != "lookup"),
            "{digest}"
        );
        assert_eq!(digest["error_count"], 1);
        assert_eq!(digest["errors"][0]["message"], "deadlock detected");
        assert_eq!(
            digest["slowest_spans_by_self_time"][0]["operation"],
            "SELECT"
        );
        assert_eq!(digest["slowest_spans_by_self_time"][0]["self_ms"], 70.0);
    }

    #[test]
    fn a_comparison_puts_what_changed_most_first() {
        let a = trace(vec![
            span(1, None, "gateway", "GET /order", 0, 30 * MS),
            span(2, Some(1), "orders", "load", 5 * MS, 25 * MS),
        ]);
        let b = trace(vec![
            span(1, None, "gateway", "GET /order", 0, 130 * MS),
            span(2, Some(1), "orders", "load", 5 * MS, 120 * MS),
            span(3, Some(2), "orders", "retry", 10 * MS, 110 * MS),
        ]);
        let digest = compare_digest(&a, &b, "/trace/a...b");
        let paths = digest["paths"].as_array().expect("paths");
        assert_eq!(paths[0]["operation"], "retry", "{digest}");
        assert_eq!(paths[0]["in"], "only in b");
        assert_eq!(digest["b"]["duration_ms"], 130.0);
        assert_eq!(digest["paths_that_differ"], 3, "{digest}");
    }
}
