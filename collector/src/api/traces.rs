//! Trace endpoints: Jaeger v1 (`/api/services`, `/api/operations`, `/api/traces`,
//! `/api/dependencies`) and api_v3 (`/api/v3/...`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, ApiState};
use crate::model::{SpanKind, TraceId};
use crate::query::params::{self, Params, TraceSearch};
use crate::query::{jaeger, otlp_json, QueryError};
use crate::store::search::TraceFilter;
use crate::store::Store;

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub(super) fn pairs(query: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|Query(pairs)| pairs)
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

fn services_of(store: &Store) -> Result<Vec<String>, QueryError> {
    Ok(store
        .spans
        .services(store.span_schema.service)?
        .into_iter()
        .collect())
}

pub(super) async fn services(
    State(state): State<ApiState>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &[])?;
    let services = state.blocking(services_of).await?;
    let total = services.len();
    Ok(Json(jaeger::envelope(json!(services), total)))
}

fn operations_of(
    store: &Store,
    service: &str,
    kind: Option<SpanKind>,
) -> Result<Vec<(String, String)>, QueryError> {
    let operations = store.spans.operations(&store.span_schema, service)?;
    Ok(operations
        .into_iter()
        .filter(|(_, k)| kind.is_none_or(|kind| kind.as_jaeger() == k))
        .collect())
}

pub(super) async fn service_operations(
    State(state): State<ApiState>,
    Path(service): Path<String>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &[])?;
    let operations = state
        .blocking(move |store| operations_of(store, &service, None))
        .await?;
    let mut names: Vec<String> = operations.into_iter().map(|(name, _)| name).collect();
    names.dedup();
    let total = names.len();
    Ok(Json(jaeger::envelope(json!(names), total)))
}

fn operations_params(
    pairs: &[(String, String)],
    service_key: &str,
    kind_key: &str,
) -> Result<(String, Option<SpanKind>), QueryError> {
    let params = Params::new(pairs, &[service_key, kind_key])?;
    let service = params
        .get(service_key)
        .ok_or_else(|| QueryError::BadRequest(format!("parameter '{service_key}' is required")))?
        .to_string();
    let kind = params
        .get(kind_key)
        .map(|k| {
            SpanKind::from_jaeger(k)
                .ok_or_else(|| QueryError::BadRequest(format!("invalid {kind_key} '{k}'")))
        })
        .transpose()?;
    Ok((service, kind))
}

pub(super) async fn operations(
    State(state): State<ApiState>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let (service, kind) = operations_params(&pairs(query)?, "service", "spanKind")?;
    let operations = state
        .blocking(move |store| operations_of(store, &service, kind))
        .await?;
    let data: Vec<Value> = operations
        .iter()
        .map(|(name, kind)| json!({ "name": name, "spanKind": kind }))
        .collect();
    let total = data.len();
    Ok(Json(jaeger::envelope(json!(data), total)))
}

/// Fetches whole traces, in the order given, skipping ids with no spans.
fn load_traces(
    store: &Store,
    ids: &[TraceId],
) -> Result<Vec<(TraceId, Vec<crate::model::Span>)>, QueryError> {
    let mut traces = Vec::with_capacity(ids.len());
    for id in ids {
        let spans = store.spans.trace(&store.span_schema, *id)?;
        if !spans.is_empty() {
            traces.push((*id, spans));
        }
    }
    Ok(traces)
}

fn search_traces(
    store: &Store,
    filter: &TraceFilter,
) -> Result<Vec<(TraceId, Vec<crate::model::Span>)>, QueryError> {
    let ids = store.spans.find_traces(&store.span_schema, filter)?;
    load_traces(store, &ids)
}

pub(super) async fn search(
    State(state): State<ApiState>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let search = params::trace_search(&pairs(query)?, state.now())?;
    let traces = state
        .blocking(move |store| match search {
            TraceSearch::Ids(ids) => load_traces(store, &ids),
            TraceSearch::Filter(filter) => search_traces(store, &filter),
        })
        .await?;
    let data: Vec<Value> = traces
        .iter()
        .map(|(id, spans)| jaeger::trace_json(*id, spans))
        .collect();
    let total = data.len();
    Ok(Json(jaeger::envelope(json!(data), total)))
}

fn one_trace(store: &Store, text: &str) -> Result<(TraceId, Vec<crate::model::Span>), QueryError> {
    let id = params::parse_trace_id(text)?;
    let spans = store.spans.trace(&store.span_schema, id)?;
    if spans.is_empty() {
        return Err(QueryError::NotFound(format!(
            "trace {} not found",
            id.to_hex()
        )));
    }
    Ok((id, spans))
}

pub(super) async fn trace(
    State(state): State<ApiState>,
    Path(trace_id): Path<String>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &["start", "end", "prettyPrint", "raw"])?;
    let (id, spans) = state
        .blocking(move |store| one_trace(store, &trace_id))
        .await?;
    Ok(Json(jaeger::envelope(
        json!([jaeger::trace_json(id, &spans)]),
        1,
    )))
}

pub(super) async fn dependencies(
    State(state): State<ApiState>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let pairs = pairs(query)?;
    let params = Params::new(&pairs, &["endTs", "lookback"])?;
    let end_ms = params.u64("endTs")?.unwrap_or(state.now() / 1_000_000);
    let lookback_ms = params.u64("lookback")?.unwrap_or(24 * 3600 * 1000);
    let end = end_ms.saturating_mul(1_000_000);
    let start = end.saturating_sub(lookback_ms.saturating_mul(1_000_000));
    let links = state
        .blocking(move |store| Ok(store.spans.dependencies(&store.span_schema, start, end)?))
        .await?;
    let data: Vec<Value> = links
        .iter()
        .map(|link| {
            json!({ "parent": link.parent, "child": link.child, "callCount": link.call_count, "errorCount": link.error_count })
        })
        .collect();
    let total = data.len();
    Ok(Json(jaeger::envelope(json!(data), total)))
}

pub(super) async fn v3_services(
    State(state): State<ApiState>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &[])?;
    let services = state.blocking(services_of).await?;
    Ok(Json(json!({ "services": services })))
}

pub(super) async fn v3_operations(
    State(state): State<ApiState>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let (service, kind) = operations_params(&pairs(query)?, "service", "span_kind")?;
    let operations = state
        .blocking(move |store| operations_of(store, &service, kind))
        .await?;
    let data: Vec<Value> = operations
        .iter()
        .map(|(name, kind)| json!({ "name": name, "spanKind": kind }))
        .collect();
    Ok(Json(json!({ "operations": data })))
}

pub(super) async fn v3_trace(
    State(state): State<ApiState>,
    Path(trace_id): Path<String>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &["start_time", "end_time", "raw_traces"])?;
    let (_, spans) = state
        .blocking(move |store| one_trace(store, &trace_id))
        .await?;
    Ok(Json(json!({ "result": otlp_json::traces_data(&spans) })))
}

pub(super) async fn v3_search(
    State(state): State<ApiState>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let filter = params::v3_trace_search(&pairs(query)?, state.now())?;
    let traces = state
        .blocking(move |store| search_traces(store, &filter))
        .await?;
    let spans: Vec<crate::model::Span> = traces.into_iter().flat_map(|(_, spans)| spans).collect();
    Ok(Json(json!({ "result": otlp_json::traces_data(&spans) })))
}
