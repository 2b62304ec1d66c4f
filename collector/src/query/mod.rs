//! Reading: API parameters -> typed filters ([`params`]), the query service that
//! answers them ([`service`]), the analysis of many traces over it ([`analysis`]), a
//! log line's context ([`context`]), and
//! records -> API JSON ([`jaeger`], [`otlp_json`],
//! [`log_json`]). No HTTP types; `api` calls them and maps [`QueryError`].

pub mod analysis;
pub mod context;
pub mod digest;
pub mod jaeger;
pub mod logql;
pub mod loki;
pub mod otlp_json;
pub mod params;
pub mod partial;
pub mod red;
pub mod service;
pub mod span_patterns;
pub mod tail;

use std::time::Duration;

use serde_json::{json, Value};

use crate::model::{attributes_to_json, LogRecord};
use crate::store::pattern;
use crate::store::search::{LogPatterns, LogVolume, VOLUME_LEVELS};
use crate::store::StoreError;

/// Why a query could not be answered. The API maps each to its HTTP
/// status, in one place.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A malformed id, parameter or query: what was wrong, for the client.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A limit other than query slots is reached for now (e.g. `--max-tails`).
    #[error("{0}")]
    Unavailable(String),
    /// Every query slot was taken for as long as this one could wait.
    #[error("too many queries: {running} run at once (--max-concurrent-queries) and this one waited {waited:?} for its turn; retry later")]
    TooMany { running: usize, waited: Duration },
    /// The store failed or stopped the search (time ran out, the client left).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The thread that ran the search failed.
    #[error("query worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

/// Nanoseconds as milliseconds, to two decimals (the JSON of summaries).
pub(crate) fn ms(nanos: u64) -> f64 {
    (nanos as f64 / 1e4).round() / 100.0
}

/// Nanoseconds since the epoch as an RFC 3339 time.
pub(crate) fn rfc3339(nanos: u64) -> String {
    hopline_ui::format::rfc3339(nanos / 1000)
}

/// The severity a log line shows: its text, else the level of its number.
pub fn severity_label(record: &LogRecord) -> String {
    if record.severity_text.is_empty() {
        record.level().to_uppercase()
    } else {
        record.severity_text.to_string()
    }
}

/// A log line's body: a string as itself, any other value as its JSON form.
pub fn body_json(record: &LogRecord) -> Value {
    match &record.body {
        crate::model::AnyValue::Str(s) => Value::String(s.to_string()),
        other => other.to_json(),
    }
}

/// `/api/logs/volume`'s answer: `levels`, then per bucket its start (ns), its
/// total and its count per level, in the order of `levels`.
pub fn log_volume_json(volume: &LogVolume) -> Value {
    let buckets: Vec<Value> = volume
        .counts
        .iter()
        .enumerate()
        .map(|(i, counts)| {
            json!({
                "time": volume.start + i as u64 * volume.step,
                "total": counts.iter().sum::<u64>(),
                "counts": counts,
            })
        })
        .collect();
    json!({
        "start": volume.start,
        "step": volume.step,
        "levels": VOLUME_LEVELS,
        "total": volume.counts.iter().flatten().sum::<u64>(),
        "buckets": buckets,
    })
}

/// `/api/logs/patterns`' answer: the patterns of a log search, most frequent
/// first (at most its `limit`), each with its template (from its newest line),
/// its lines per bucket, its errors, its lines in the range before and that line.
pub fn log_patterns_json(patterns: &LogPatterns) -> Value {
    let total: u64 = patterns.patterns.iter().map(|p| p.count).sum::<u64>()
        + patterns.unpatterned
        + patterns.uncounted;
    let share = |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 / total as f64
        }
    };
    let found = patterns.patterns.iter().filter(|p| p.count > 0);
    let listed: Vec<Value> = found
        .clone()
        .take(patterns.limit)
        .map(|p| {
            json!({
                "id": pattern::format_id(p.id),
                "template": p.sample.as_ref().map(|line| pattern::template(&line.body_text())),
                "count": p.count,
                "share": share(p.count),
                "errors": p.errors,
                "errorShare": if p.count == 0 { 0.0 } else { p.errors as f64 / p.count as f64 },
                "previous": p.previous,
                "new": p.previous == 0,
                "counts": p.counts,
                "sample": p.sample.as_ref().map(log_json),
            })
        })
        .collect();
    json!({
        "start": patterns.start,
        "step": patterns.step,
        "previousStart": patterns.previous_start,
        "previousEnd": patterns.previous_end,
        "total": total,
        "patternCount": found.count(),
        "unpatterned": patterns.unpatterned,
        "uncounted": patterns.uncounted,
        "patterns": listed,
    })
}

/// One log record as `/api/logs` returns it.
pub fn log_json(record: &LogRecord) -> Value {
    json!({
        "timeUnixNano": record.time_unix_nano.to_string(),
        "observedTimeUnixNano": record.observed_time_unix_nano.to_string(),
        "severityNumber": record.severity_number,
        "severityText": severity_label(record),
        "body": body_json(record),
        "serviceName": record.service_name,
        "traceID": record.trace_id.map(|id| id.to_hex()),
        "spanID": record.span_id.map(|id| id.to_hex()),
        "eventName": record.event_name,
        "attributes": attributes_to_json(&record.attributes),
        "resource": attributes_to_json(&record.resource.attributes),
        "scope": { "name": record.scope.name, "version": record.scope.version },
    })
}
