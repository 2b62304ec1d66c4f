//! Downloads of a whole result set: `/api/logs/export` (log lines) and
//! `/api/traces/export` (traces), as NDJSON or CSV, streamed page by page.
//!
//! Each download reads its search's pages with the cursor the API gives a
//! client, so a download holds what paging through the API would, each result
//! once, and never more than one page in memory.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde_json::Value;

use super::ApiError;
use crate::model::{attributes_to_json, LogRecord, Span, StatusCode, TraceId};
use crate::query::params::TraceSearch;
use crate::query::service::QueryService;
use crate::query::{body_json, log_json, otlp_json, severity_label, QueryError};
use crate::store::search::{LogFilter, TraceFilter};

/// What a download is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ExportFormat {
    /// One JSON document per line: a log line as `/api/logs` gives it; a trace
    /// as OTLP/JSON `{"resourceSpans": [...]}` (as the OpenTelemetry
    /// Collector's file exporter writes them).
    Ndjson,
    /// RFC 4180, with a header row: a row per log line, or per span.
    Csv,
}

/// What a download asks besides its search.
pub(super) struct Download {
    pub(super) format: ExportFormat,
    /// At most this many results (lines or traces); `u64::MAX`: all.
    pub(super) cap: u64,
}

impl Download {
    /// Takes `format` and `limit` out of `pairs` (the rest is the search);
    /// `what` names a result in the error of a bad `limit`.
    pub(super) fn take(
        pairs: &mut Vec<(String, String)>,
        what: &str,
    ) -> Result<Download, ApiError> {
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
                ApiError::bad_request(format!(
                    "invalid limit '{text}': expected a count of {what}"
                ))
            })?,
            None => u64::MAX,
        };
        Ok(Download { format, cap })
    }

    /// The download of what `pages` reads. Its first page is read before the
    /// answer's head, so a search that fails says so with its status; a failure
    /// after it ends the body early (the transfer is then incomplete).
    pub(super) async fn respond(
        self,
        name: &str,
        csv_header: &'static str,
        mut pages: impl Pages,
    ) -> Result<Response, ApiError> {
        let format = self.format;
        let mut head = match format {
            ExportFormat::Ndjson => Vec::new(),
            ExportFormat::Csv => csv_header.as_bytes().to_vec(),
        };
        let first = match self.cap {
            0 => 0,
            cap => pages.next(format, cap, &mut head).await?,
        };
        let left = self.cap - first as u64;
        let rest = futures_util::stream::unfold(
            (pages, left, first > 0),
            move |(mut pages, left, going)| async move {
                if left == 0 || !going {
                    return None;
                }
                let mut out = Vec::new();
                match pages.next(format, left, &mut out).await {
                    Ok(0) => None,
                    Ok(n) => Some((Ok(Bytes::from(out)), (pages, left - n as u64, true))),
                    Err(e) => {
                        tracing::warn!(error = %e, "a download ended early");
                        Some((Err(std::io::Error::other(e.to_string())), (pages, 0, false)))
                    }
                }
            },
        );
        let body =
            futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) })
                .chain(rest);
        let (content_type, extension) = match format {
            ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
            ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        };
        Ok((
            [
                (header::CONTENT_TYPE, content_type.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.{extension}\""),
                ),
            ],
            Body::from_stream(body),
        )
            .into_response())
    }
}

/// The pages of a download's search.
pub(super) trait Pages: Send + 'static {
    /// Writes the next results, at most `max`, to `out` in `format`; how many
    /// it wrote, 0 when there are no more.
    fn next<'a>(
        &'a mut self,
        format: ExportFormat,
        max: u64,
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, Result<usize, QueryError>>;
}

/// Lines a log download reads per page.
const LOG_PAGE: usize = 1_000;

/// The columns of a log download's CSV.
pub(super) const LOG_CSV_HEADER: &str =
    "time,timeUnixNano,severity,service,body,traceID,spanID,attributes\r\n";

/// The pages of a log search, newest first.
pub(super) struct LogPages {
    pub(super) queries: Arc<dyn QueryService>,
    pub(super) filter: LogFilter,
    pub(super) done: bool,
}

impl Pages for LogPages {
    fn next<'a>(
        &'a mut self,
        format: ExportFormat,
        max: u64,
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, Result<usize, QueryError>> {
        Box::pin(async move {
            if self.done {
                return Ok(0);
            }
            self.filter.limit = LOG_PAGE
                .min(usize::try_from(max).unwrap_or(LOG_PAGE))
                .max(1);
            let page = self.queries.search_logs(self.filter.clone()).await?;
            match page.next {
                Some(next) => self.filter.after = Some(next),
                None => self.done = true,
            }
            for record in &page.records {
                match format {
                    ExportFormat::Ndjson => {
                        out.extend_from_slice(log_json(record).to_string().as_bytes());
                        out.push(b'\n');
                    }
                    ExportFormat::Csv => log_csv_row(record, out),
                }
            }
            Ok(page.records.len())
        })
    }
}

/// Trace ids a trace download reads per page of its search.
const TRACE_ID_PAGE: usize = 10_000;

/// Traces a trace download loads at once.
const TRACES_AT_ONCE: usize = 20;

/// The columns of a trace download's CSV: a row per span.
pub(super) const SPAN_CSV_HEADER: &str = "traceID,spanID,parentSpanID,service,operation,kind,\
     start,startUnixNano,durationNanos,status,statusMessage,attributes\r\n";

/// The traces of a trace search, in its order: their ids a page at a time
/// (by the search's cursor), then their spans a few traces at a time.
pub(super) struct TracePages {
    queries: Arc<dyn QueryService>,
    filter: TraceFilter,
    ids: VecDeque<TraceId>,
    /// Whether the search has pages of ids not read yet.
    more: bool,
}

impl TracePages {
    pub(super) fn new(queries: Arc<dyn QueryService>, mut filter: TraceFilter) -> TracePages {
        filter.limit = TRACE_ID_PAGE;
        TracePages {
            queries,
            filter,
            ids: VecDeque::new(),
            more: true,
        }
    }
}

impl Pages for TracePages {
    fn next<'a>(
        &'a mut self,
        format: ExportFormat,
        max: u64,
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, Result<usize, QueryError>> {
        Box::pin(async move {
            let mut written = 0;
            // Traces deleted since their ids were read are passed over.
            while written == 0 {
                if self.ids.is_empty() && self.more {
                    let page = self.queries.trace_ids(self.filter.clone()).await?;
                    self.ids.extend(page.ids);
                    self.more = page.next.is_some();
                    self.filter.after = page.next;
                }
                let take = self
                    .ids
                    .len()
                    .min(TRACES_AT_ONCE)
                    .min(usize::try_from(max).unwrap_or(usize::MAX));
                if take == 0 {
                    return Ok(0);
                }
                let ids: Vec<TraceId> = self.ids.drain(..take).collect();
                let page = self.queries.find_traces(TraceSearch::Ids(ids)).await?;
                for mut trace in page.traces {
                    // A search's answer cuts its traces harder than a lookup of
                    // one does: a trace cut here is read alone.
                    if trace.is_cut() {
                        if let Some(alone) = self.queries.trace(trace.id).await? {
                            trace = alone;
                        }
                    }
                    match format {
                        ExportFormat::Ndjson => {
                            let json = otlp_json::traces_data(&trace.spans);
                            out.extend_from_slice(json.to_string().as_bytes());
                            out.push(b'\n');
                        }
                        ExportFormat::Csv => {
                            for span in &trace.spans {
                                span_csv_row(span, out);
                            }
                        }
                    }
                    written += 1;
                }
            }
            Ok(written)
        })
    }
}

/// One log record as a CSV row.
fn log_csv_row(record: &LogRecord, out: &mut Vec<u8>) {
    let body = match body_json(record) {
        Value::String(text) => text,
        other => other.to_string(),
    };
    csv_row(
        &[
            hopline_ui::format::rfc3339(record.time_unix_nano / 1000),
            record.time_unix_nano.to_string(),
            severity_label(record),
            record.service_name.to_string(),
            body,
            record.trace_id.map(|id| id.to_hex()).unwrap_or_default(),
            record.span_id.map(|id| id.to_hex()).unwrap_or_default(),
            attributes_to_json(&record.attributes).to_string(),
        ],
        out,
    );
}

/// One span as a CSV row.
fn span_csv_row(span: &Span, out: &mut Vec<u8>) {
    let status = match span.status_code {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    };
    csv_row(
        &[
            span.trace_id.to_hex(),
            span.span_id.to_hex(),
            span.parent_span_id
                .map(|id| id.to_hex())
                .unwrap_or_default(),
            span.service_name.to_string(),
            span.name.to_string(),
            span.kind.as_jaeger().to_string(),
            hopline_ui::format::rfc3339(span.start_time_unix_nano / 1000),
            span.start_time_unix_nano.to_string(),
            span.duration_nanos().to_string(),
            status.to_string(),
            span.status_message.clone(),
            attributes_to_json(&span.attributes).to_string(),
        ],
        out,
    );
}

/// A CSV row: RFC 4180 quoting, and a value a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@`, tab or carriage return first) starts with `'`.
fn csv_row(fields: &[String], out: &mut Vec<u8>) {
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
