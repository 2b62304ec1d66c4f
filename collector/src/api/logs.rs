//! `/api/logs`: log search with the query language, newest first; and
//! `/api/logs/tail`: the same filters as a live stream (server-sent events).

use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::Json;
use futures_util::Stream;
use serde_json::{json, Value};

use super::auth::Tenant;
use super::export::{Download, LogPages, LOG_CSV_HEADER};
use super::traces::{pairs, Pairs};
use super::ApiError;
use crate::query::context::log_context;
use crate::query::tail::TailEvent;
use crate::query::{log_json, log_patterns_json, log_volume_json, params};

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

/// `/api/logs/context`: the lines of a line's service instance just before and
/// after it, each list oldest first.
pub(super) async fn context(Tenant(state): Tenant, query: Pairs) -> Result<Json<Value>, ApiError> {
    let request = params::log_context(&pairs(query)?)?;
    let context = log_context(state.queries.as_ref(), &request).await?;
    let lines =
        |records: &[crate::model::LogRecord]| records.iter().map(log_json).collect::<Vec<_>>();
    Ok(Json(json!({
        "service": request.service,
        "instance": request.instance,
        "time": request.time.to_string(),
        "before": lines(&context.before),
        "at": lines(&context.at),
        "after": lines(&context.after),
    })))
}

/// `GET /api/logs/export?format=ndjson|csv&limit=&...`: every line the same
/// search finds (its filters, `start`/`end`, `cursor` to resume), newest first,
/// streamed page by page; `limit` caps the lines (default: all).
pub(super) async fn export(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut pairs = pairs(query)?;
    let download = Download::take(&mut pairs, "lines")?;
    let filter = params::log_search(&pairs, state.now())?;
    if filter.offset > 0 {
        return Err(ApiError::bad_request(
            "offset: a download reads every page itself (resume one with cursor)",
        ));
    }
    let pages = LogPages {
        queries: state.queries.clone(),
        filter,
        done: false,
    };
    download
        .respond("hopline-logs", LOG_CSV_HEADER, pages)
        .await
}
