//! `/api/logs`: log search with the query language, newest first; and
//! `/api/logs/tail`: the same filters as a live stream (server-sent events).

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use serde_json::{json, Value};

use super::auth::Tenant;
use super::traces::pairs;
use super::{ApiError, ApiState};
use tokio::sync::mpsc;

use crate::model::{AnyValue, LogRecord};
use crate::query::{log_json, params};
use crate::store::search::LogFilter;

pub(super) async fn search(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = params::log_search(&pairs(query)?, state.now())?;
    let limit = filter.limit;
    let (records, total) = state
        .blocking(move |store, cancel| {
            Ok(store.logs.search_logs(&store.log_schema, &filter, cancel)?)
        })
        .await?;
    let data: Vec<Value> = records.iter().map(log_json).collect();
    Ok(Json(
        json!({ "data": data, "total": total, "limit": limit, "errors": null }),
    ))
}

/// How far back each poll of the tail looks: lines become searchable up to a commit
/// interval after they happened, so the window overlaps and a seen-set dedupes.
const TAIL_OVERLAP: Duration = Duration::from_secs(15);
const TAIL_POLL: Duration = Duration::from_secs(1);
/// Lines per query, and per `logs` event.
const TAIL_PAGE: usize = 1000;
/// Lines one poll delivers at most; beyond, a `skipped` event says how many were not.
const TAIL_MAX_PER_POLL: usize = 20_000;
/// Events waiting for a subscriber: one that falls this far behind is dropped.
const TAIL_BUFFER: usize = 32;

/// `GET /api/logs/tail?query=&service=&traceID=&spanID=&minSeverity=`: server-sent
/// events from the moment of connection on: `logs` (a JSON array of lines, oldest
/// first) whenever new matching lines became searchable; `skipped`
/// (`{"lines":N}`) when more arrived in one second than a tail delivers
/// ([`TAIL_MAX_PER_POLL`]); `closed` (`{"reason":"..."}`) before the server ends a
/// tail that does not keep up. At most `--max-tails` are open at once.
pub(super) async fn tail(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = params::log_search(&pairs(query)?, state.now())?;
    let Ok(open) = Arc::clone(&state.queries.tails).try_acquire_owned() else {
        return Err(ApiError::unavailable(format!(
            "{} live tails are open (--max-tails); retry later",
            state.queries.limits.max_tails
        )));
    };
    let (events, received) = mpsc::channel(TAIL_BUFFER);
    tokio::spawn(async move {
        follow(state, filter, events).await;
        drop(open);
    });
    let stream = futures_util::stream::unfold(received, |mut received| async move {
        let event = received.recv().await?;
        Some((Ok(event), received))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A line's identity for the seen-set: the hash of what `/api/logs` returns of it.
fn line_key(record: &LogRecord) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    record.time_unix_nano.hash(&mut hasher);
    record.service_name.hash(&mut hasher);
    record.trace_id.map(|id| id.0).hash(&mut hasher);
    record.span_id.map(|id| id.as_u64()).hash(&mut hasher);
    record.severity_number.hash(&mut hasher);
    match &record.body {
        AnyValue::Str(text) => text.hash(&mut hasher),
        other => other.to_json().to_string().hash(&mut hasher),
    }
    hasher.finish()
}

/// Polls for new lines and sends them until the client goes, the server stops, or
/// the client falls [`TAIL_BUFFER`] events behind.
async fn follow(state: ApiState, mut filter: LogFilter, events: mpsc::Sender<Event>) {
    let since = state.now();
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TAIL_POLL) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = events.closed() => return,
        }
        let now = state.now();
        filter.start = since.max(now.saturating_sub(TAIL_OVERLAP.as_nanos() as u64));
        filter.end = now;
        filter.limit = TAIL_PAGE;
        // Newest first, page by page: each page ends where the last one's oldest
        // line was (lines of that very time come again and are deduplicated).
        let mut fresh: Vec<Value> = Vec::new();
        let mut skipped = 0u64;
        let mut page = filter.clone();
        loop {
            let query = page.clone();
            let Ok((records, total)) = state
                .blocking(move |store, cancel| {
                    Ok(store.logs.search_logs(&store.log_schema, &query, cancel)?)
                })
                .await
            else {
                break;
            };
            let oldest = records.last().map(|r| r.time_unix_nano);
            for record in &records {
                if seen
                    .insert(line_key(record), record.time_unix_nano)
                    .is_none()
                {
                    fresh.push(log_json(record));
                }
            }
            let more = records.len() == TAIL_PAGE && oldest.is_some_and(|t| t < page.end);
            if !more {
                break;
            }
            if fresh.len() >= TAIL_MAX_PER_POLL {
                // What the window holds beyond the pages read, minus what was seen
                // before: a count, not exact where pages overlapped.
                skipped = total.saturating_sub(seen.len() as u64);
                break;
            }
            page.end = oldest.unwrap_or(page.start);
        }
        seen.retain(|_, time| *time >= filter.start);
        fresh.reverse();
        for lines in fresh.chunks(TAIL_PAGE) {
            let event = Event::default()
                .event("logs")
                .data(Value::Array(lines.to_vec()).to_string());
            if !deliver(&events, event).await {
                return;
            }
        }
        if skipped > 0 {
            let event = Event::default()
                .event("skipped")
                .data(json!({ "lines": skipped }).to_string());
            if !deliver(&events, event).await {
                return;
            }
        }
    }
}

/// Queues an event; false when the client is gone or too far behind (it is then
/// told why, if it ever reads again).
async fn deliver(events: &mpsc::Sender<Event>, event: Event) -> bool {
    match events.try_send(event) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        Err(mpsc::error::TrySendError::Full(_)) => {
            let closed = Event::default().event("closed").data(
                json!({ "reason": format!("this tail fell {TAIL_BUFFER} events behind and was closed; reconnect to follow again") })
                    .to_string(),
            );
            let _ = tokio::time::timeout(Duration::from_secs(5), events.send(closed)).await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_and_dropped() {
        let (events, mut received) = mpsc::channel(TAIL_BUFFER);
        for n in 0..TAIL_BUFFER {
            assert!(deliver(&events, Event::default().data(n.to_string())).await);
        }
        // Full: the next one ends the tail, and a `closed` event follows once the
        // subscriber reads again.
        let reader = tokio::spawn(async move {
            let mut count = 0;
            while received.recv().await.is_some() {
                count += 1;
            }
            count
        });
        assert!(!deliver(&events, Event::default().data("one too many")).await);
        drop(events);
        assert_eq!(reader.await.expect("reader"), TAIL_BUFFER + 1);
        let (gone, received) = mpsc::channel::<Event>(1);
        drop(received);
        assert!(
            !deliver(&gone, Event::default()).await,
            "a client that left"
        );
    }
}
