//! Trace endpoints: Jaeger v1 (`/api/services`, `/api/operations`, `/api/traces`,
//! `/api/dependencies`) and api_v3 (`/api/v3/...`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Tenant;
use super::ApiError;
use crate::model::{SpanKind, TraceId};
use crate::query::params::{self, Params, TraceSearch};
use crate::query::{jaeger, otlp_json, QueryError};
use crate::store::search::{Cancel, TraceFilter, TraceSpans};
use crate::store::Store;

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub(super) fn pairs(query: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|Query(pairs)| pairs)
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

fn services_of(store: &Store, cancel: &Cancel) -> Result<Vec<String>, QueryError> {
    Ok(store
        .spans
        .services(store.span_schema.service, cancel)?
        .into_iter()
        .collect())
}

pub(super) async fn services(Tenant(state): Tenant, query: Pairs) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &[])?;
    let services = state.blocking(services_of).await?;
    let total = services.len();
    Ok(Json(jaeger::envelope(json!(services), total)))
}

fn operations_of(
    store: &Store,
    service: &str,
    kind: Option<SpanKind>,
    cancel: &Cancel,
) -> Result<Vec<(String, String)>, QueryError> {
    let operations = store
        .spans
        .operations(&store.span_schema, service, cancel)?;
    Ok(operations
        .into_iter()
        .filter(|(_, k)| kind.is_none_or(|kind| kind.as_jaeger() == k))
        .collect())
}

pub(super) async fn service_operations(
    Tenant(state): Tenant,
    Path(service): Path<String>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &[])?;
    let operations = state
        .blocking(move |store, cancel| operations_of(store, &service, None, cancel))
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
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let (service, kind) = operations_params(&pairs(query)?, "service", "spanKind")?;
    let operations = state
        .blocking(move |store, cancel| operations_of(store, &service, kind, cancel))
        .await?;
    let data: Vec<Value> = operations
        .iter()
        .map(|(name, kind)| json!({ "name": name, "spanKind": kind }))
        .collect();
    let total = data.len();
    Ok(Json(jaeger::envelope(json!(data), total)))
}

/// Spans a search answer holds in all: past it, the traces that follow are cut
/// harder (each keeps at least its earliest span), so that a search cannot make
/// an answer of millions of spans.
const MAX_SPANS_PER_SEARCH: usize = 100_000;

/// Loads traces, in the order given, skipping ids with no spans: each cut to the
/// trace cap, and all together to [`MAX_SPANS_PER_SEARCH`].
fn load_traces(
    store: &Store,
    ids: &[TraceId],
    max_spans: usize,
    cancel: &Cancel,
) -> Result<Vec<(TraceId, TraceSpans)>, QueryError> {
    let mut traces = Vec::with_capacity(ids.len());
    let mut budget = MAX_SPANS_PER_SEARCH;
    for id in ids {
        let cap = max_spans.min(budget).max(1);
        let trace = store.spans.trace(&store.span_schema, *id, cap, cancel)?;
        if !trace.spans.is_empty() {
            budget = budget.saturating_sub(trace.spans.len());
            traces.push((*id, trace));
        }
    }
    Ok(traces)
}

fn search_traces(
    store: &Store,
    filter: &TraceFilter,
    max_spans: usize,
    cancel: &Cancel,
) -> Result<Vec<(TraceId, TraceSpans)>, QueryError> {
    let ids = store
        .spans
        .find_traces(&store.span_schema, filter, cancel)?;
    load_traces(store, &ids, max_spans, cancel)
}

/// What a Jaeger trace says when it was cut.
fn warnings(trace: &TraceSpans) -> Vec<String> {
    if !trace.is_cut() {
        return Vec::new();
    }
    vec![format!(
        "this trace has {} spans; the {} that started first are shown (--max-spans-per-trace)",
        trace.total,
        trace.spans.len()
    )]
}

pub(super) async fn search(Tenant(state): Tenant, query: Pairs) -> Result<Json<Value>, ApiError> {
    let search = params::trace_search(&pairs(query)?, state.now())?;
    let max_spans = state.queries.limits.max_spans_per_trace;
    let data = state
        .blocking(move |store, cancel| {
            let traces = match search {
                TraceSearch::Ids(ids) => load_traces(store, &ids, max_spans, cancel)?,
                TraceSearch::Filter(filter) => search_traces(store, &filter, max_spans, cancel)?,
            };
            // Rendered here, off the runtime.
            Ok(traces
                .iter()
                .map(|(id, trace)| jaeger::trace_json(*id, &trace.spans, &warnings(trace)))
                .collect::<Vec<Value>>())
        })
        .await?;
    let total = data.len();
    Ok(Json(jaeger::envelope(json!(data), total)))
}

fn one_trace(
    store: &Store,
    text: &str,
    max_spans: usize,
    cancel: &Cancel,
) -> Result<(TraceId, TraceSpans), QueryError> {
    let id = params::parse_trace_id(text)?;
    let trace = store
        .spans
        .trace(&store.span_schema, id, max_spans, cancel)?;
    if trace.spans.is_empty() {
        return Err(QueryError::NotFound(format!(
            "trace {} not found",
            id.to_hex()
        )));
    }
    Ok((id, trace))
}

pub(super) async fn trace(
    Tenant(state): Tenant,
    Path(trace_id): Path<String>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &["start", "end", "prettyPrint", "raw"])?;
    let max_spans = state.queries.limits.max_spans_per_trace;
    let trace = state
        .blocking(move |store, cancel| {
            let (id, trace) = one_trace(store, &trace_id, max_spans, cancel)?;
            Ok(jaeger::trace_json(id, &trace.spans, &warnings(&trace)))
        })
        .await?;
    Ok(Json(jaeger::envelope(json!([trace]), 1)))
}

pub(super) async fn dependencies(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let pairs = pairs(query)?;
    let params = Params::new(&pairs, &["endTs", "lookback"])?;
    let end_ms = params.u64("endTs")?.unwrap_or(state.now() / 1_000_000);
    let lookback_ms = params.u64("lookback")?.unwrap_or(24 * 3600 * 1000);
    let end = end_ms.saturating_mul(1_000_000);
    let start = end.saturating_sub(lookback_ms.saturating_mul(1_000_000));
    let links = state
        .blocking(move |store, cancel| {
            Ok(store
                .spans
                .dependencies(&store.span_schema, start, end, cancel)?)
        })
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
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &[])?;
    let services = state.blocking(services_of).await?;
    Ok(Json(json!({ "services": services })))
}

pub(super) async fn v3_operations(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let (service, kind) = operations_params(&pairs(query)?, "service", "span_kind")?;
    let operations = state
        .blocking(move |store, cancel| operations_of(store, &service, kind, cancel))
        .await?;
    let data: Vec<Value> = operations
        .iter()
        .map(|(name, kind)| json!({ "name": name, "spanKind": kind }))
        .collect();
    Ok(Json(json!({ "operations": data })))
}

pub(super) async fn v3_trace(
    Tenant(state): Tenant,
    Path(trace_id): Path<String>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &["start_time", "end_time", "raw_traces"])?;
    let max_spans = state.queries.limits.max_spans_per_trace;
    let result = state
        .blocking(move |store, cancel| {
            let (_, trace) = one_trace(store, &trace_id, max_spans, cancel)?;
            Ok(otlp_json::traces_data(&trace.spans))
        })
        .await?;
    Ok(Json(json!({ "result": result })))
}

pub(super) async fn v3_search(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let filter = params::v3_trace_search(&pairs(query)?, state.now())?;
    let max_spans = state.queries.limits.max_spans_per_trace;
    let result = state
        .blocking(move |store, cancel| {
            let traces = search_traces(store, &filter, max_spans, cancel)?;
            let spans: Vec<crate::model::Span> = traces
                .into_iter()
                .flat_map(|(_, trace)| trace.spans)
                .collect();
            Ok(otlp_json::traces_data(&spans))
        })
        .await?;
    Ok(Json(json!({ "result": result })))
}
