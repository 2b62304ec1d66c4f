//! `/api/logs`: log search with the query language, newest first; and
//! `/api/logs/tail`: the same filters as a live stream (server-sent events).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use serde_json::{json, Value};

use super::traces::pairs;
use super::{ApiError, ApiState};
use crate::query::{log_json, params};

pub(super) async fn search(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = params::log_search(&pairs(query)?, state.now())?;
    let limit = filter.limit;
    let (records, total) = state
        .blocking(move |store| Ok(store.logs.search_logs(&store.log_schema, &filter)?))
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

/// `GET /api/logs/tail?query=&service=&traceID=&spanID=&minSeverity=`: server-sent
/// events, one `logs` event (a JSON array, oldest first) whenever new matching lines
/// became searchable, from the moment of connection on.
pub(super) async fn tail(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = params::log_search(&pairs(query)?, state.now())?;
    let since = state.now();
    let seen: HashMap<String, u64> = HashMap::new();
    let stream = futures_util::stream::unfold(
        (state, filter, since, seen),
        |(state, mut filter, since, mut seen)| async move {
            loop {
                let mut shutdown = state.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(TAIL_POLL) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return None,
                }
                let now = state.now();
                filter.start = since.max(now.saturating_sub(TAIL_OVERLAP.as_nanos() as u64));
                filter.end = now;
                filter.limit = 1000;
                let query = filter.clone();
                let Ok((records, _)) = state
                    .blocking(move |store| Ok(store.logs.search_logs(&store.log_schema, &query)?))
                    .await
                else {
                    continue;
                };
                let mut fresh: Vec<Value> = Vec::new();
                for record in records.iter().rev() {
                    let line = log_json(record);
                    let key = line.to_string();
                    if seen.insert(key, record.time_unix_nano).is_none() {
                        fresh.push(line);
                    }
                }
                seen.retain(|_, time| *time >= filter.start);
                if !fresh.is_empty() {
                    let event = Event::default()
                        .event("logs")
                        .data(Value::Array(fresh).to_string());
                    return Some((Ok(event), (state, filter, since, seen)));
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
