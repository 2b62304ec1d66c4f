//! `/api/logs`: log search with the query language, newest first; and
//! `/api/logs/tail`: the same filters as a live stream (server-sent events).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use super::auth::Tenant;
use super::traces::{pairs, Pairs};
use super::ApiError;
use crate::model::{attributes_to_json, LogRecord};
use crate::query::tail::TailEvent;
use crate::query::{
    body_json, log_json, log_patterns_json, log_volume_json, params, severity_label,
};

pub(super) async fn search(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = params::log_search(&pairs(query)?, state.now())?;
    let (limit, offset, end) = (filter.limit, filter.offset, filter.end);
    let page = state.queries.search_logs(filter).await?;
    let data: Vec<Value> = page.records.iter().map(log_json).collect();
    // `end` (µs) pins the window: the next page is the same search with it and
    // `nextCursor` (or `offset` + `limit`), whatever arrives meanwhile.
    Ok(Json(json!({
        "data": data,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "end": end / 1000,
        "nextCursor": page.next.map(|cursor| cursor.encode()),
        "errors": null,
    })))
}

/// `GET /api/logs/tail?query=&service=&traceID=&spanID=&minSeverity=`: server-sent
/// events from the moment of connection on: `logs` (a JSON array of lines, oldest
/// first) whenever new matching lines became searchable; `skipped`
/// (`{"lines":N}`) when more arrived in one second than a tail delivers;
/// `closed` (`{"reason":"..."}`) before the server ends a tail that does not keep
/// up. At most `--max-tails` are open at once.
pub(super) async fn tail(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = params::log_search(&pairs(query)?, state.now())?;
    let tail = state.queries.tail_logs(filter)?;
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        let event = match tail.recv().await? {
            TailEvent::Lines(lines) => Event::default()
                .event("logs")
                .data(Value::Array(lines.iter().map(log_json).collect()).to_string()),
            TailEvent::Skipped(lines) => Event::default()
                .event("skipped")
                .data(json!({ "lines": lines }).to_string()),
            TailEvent::Closed(reason) => Event::default()
                .event("closed")
                .data(json!({ "reason": reason }).to_string()),
        };
        Some((Ok(event), tail))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Lines a download reads per page.
const EXPORT_PAGE: usize = 1_000;

/// What a download is written as.
#[derive(Clone, Copy)]
enum ExportFormat {
    /// One line per record, as `/api/logs` gives it.
    Ndjson,
    /// RFC 4180, with a header row.
    Csv,
}

/// The columns of a CSV download.
const CSV_HEADER: &str = "time,timeUnixNano,severity,service,body,traceID,spanID,attributes\r\n";

/// `/api/logs/volume`: how many lines the search matches per time bucket and
/// level, over its whole range.
pub(super) async fn volume(Tenant(state): Tenant, query: Pairs) -> Result<Json<Value>, ApiError> {
    let (filter, volume) = params::log_volume(&pairs(query)?, state.now())?;
    let volume = state.queries.log_volume(filter, volume).await?;
    Ok(Json(log_volume_json(&volume)))
}

/// `/api/logs/patterns`: the body patterns of the lines the search matches, with
/// their counts over time and against the range before.
pub(super) async fn patterns(Tenant(state): Tenant, query: Pairs) -> Result<Json<Value>, ApiError> {
    let (filter, patterns) = params::log_patterns(&pairs(query)?, state.now())?;
    let patterns = state.queries.log_patterns(filter, patterns).await?;
    Ok(Json(log_patterns_json(&patterns)))
}

/// `GET /api/logs/export?format=ndjson|csv&limit=&...`: every line the same
/// search finds (its filters, `start`/`end`, `cursor` to resume), newest first,
/// streamed page by page; `limit` caps the lines (default: all). A failure after
/// the first page ends the body early (the transfer is then incomplete).
pub(super) async fn export(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut pairs = pairs(query)?;
    let mut take = |key: &str| {
        let at = pairs.iter().position(|(k, _)| k == key)?;
        Some(pairs.remove(at).1)
    };
    let format = match take("format").as_deref() {
        None | Some("ndjson") => ExportFormat::Ndjson,
        Some("csv") => ExportFormat::Csv,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid format '{other}': expected ndjson or csv"
            )))
        }
    };
    let cap = match take("limit") {
        Some(text) => text.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid limit '{text}': expected a count of lines"))
        })?,
        None => u64::MAX,
    };
    let mut filter = params::log_search(&pairs, state.now())?;
    if filter.offset > 0 {
        return Err(ApiError::bad_request(
            "offset: a download reads every page itself (resume one with cursor)",
        ));
    }
    filter.limit = EXPORT_PAGE
        .min(usize::try_from(cap).unwrap_or(EXPORT_PAGE))
        .max(1);
    // The first page before the answer's head: a search that fails says so
    // with its status.
    let queries = state.queries.clone();
    let first = queries.search_logs(filter.clone()).await?;
    let head = match format {
        ExportFormat::Ndjson => Bytes::new(),
        ExportFormat::Csv => Bytes::from_static(CSV_HEADER.as_bytes()),
    };
    let pages = futures_util::stream::unfold(
        (Some(first), filter, cap),
        move |(page, mut filter, left)| {
            let queries = queries.clone();
            async move {
                if left == 0 {
                    return None;
                }
                let page = match page {
                    Some(page) => page,
                    // The page after the last one written.
                    None => match queries.search_logs(filter.clone()).await {
                        Ok(page) => page,
                        Err(e) => {
                            tracing::warn!(error = %e, "a log download ended early");
                            return Some((
                                Err(std::io::Error::other(e.to_string())),
                                (None, filter, 0),
                            ));
                        }
                    },
                };
                if page.records.is_empty() {
                    return None;
                }
                let lines = page
                    .records
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                let mut out = Vec::with_capacity(lines * 256);
                for record in &page.records[..lines] {
                    match format {
                        ExportFormat::Ndjson => {
                            out.extend_from_slice(log_json(record).to_string().as_bytes());
                            out.push(b'\n');
                        }
                        ExportFormat::Csv => csv_row(record, &mut out),
                    }
                }
                let left = left - lines as u64;
                let next = match page.next {
                    Some(next) if left > 0 => {
                        filter.after = Some(next);
                        filter.limit = filter
                            .limit
                            .min(usize::try_from(left).unwrap_or(usize::MAX));
                        (None, filter, left)
                    }
                    // Nothing more: the next turn ends the stream.
                    _ => (None, filter, 0),
                };
                Some((Ok(Bytes::from(out)), next))
            }
        },
    );
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(pages);
    let (content_type, name) = match format {
        ExportFormat::Ndjson => ("application/x-ndjson", "hopline-logs.ndjson"),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "hopline-logs.csv"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// One record as a CSV row: RFC 4180 quoting, and a value a spreadsheet would
/// run as a formula (`=`, `+`, `-`, `@`, tab or carriage return first) starts
/// with `'`.
fn csv_row(record: &LogRecord, out: &mut Vec<u8>) {
    let body = match body_json(record) {
        Value::String(text) => text,
        other => other.to_string(),
    };
    let fields = [
        hopline_ui::format::rfc3339(record.time_unix_nano / 1000),
        record.time_unix_nano.to_string(),
        severity_label(record),
        record.service_name.to_string(),
        body,
        record.trace_id.map(|id| id.to_hex()).unwrap_or_default(),
        record.span_id.map(|id| id.to_hex()).unwrap_or_default(),
        attributes_to_json(&record.attributes).to_string(),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(field, out);
    }
    out.extend_from_slice(b"\r\n");
}

fn csv_field(value: &str, out: &mut Vec<u8>) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = formula || value.contains([',', '"', '\r', '\n']);
    if quote {
        out.push(b'"');
    }
    if formula {
        out.push(b'\'');
    }
    for byte in value.bytes() {
        if byte == b'"' {
            out.push(b'"');
        }
        out.push(byte);
    }
    if quote {
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    fn field(value: &str) -> String {
        let mut out = Vec::new();
        csv_field(value, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain text"), "plain text");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "\"'-1\"");
        assert_eq!(field(""), "");
    }
}
