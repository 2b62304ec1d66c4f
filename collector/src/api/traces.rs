//! Trace endpoints: Jaeger v1 (`/api/services`, `/api/operations`, `/api/traces`,
//! `/api/dependencies`) and api_v3 (`/api/v3/...`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Tenant;
use super::export::{Download, TracePages, SPAN_CSV_HEADER};
use super::{render, ApiError};
use crate::model::{SpanKind, TraceId};
use crate::query::params::{self, Params, TraceSearch};
use crate::query::service::{Operation, Trace};
use crate::query::span_patterns::{self, resolve_operation_pattern};
use crate::query::{analysis, jaeger, otlp_json, QueryError};
use crate::store::search::{DependencyLink, MAX_MATCHING_TRACES};

pub(super) type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub(super) fn pairs(query: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|Query(pairs)| pairs)
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

pub(super) async fn services(Tenant(state): Tenant, query: Pairs) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &[])?;
    let services = state.queries.services().await?;
    let total = services.len();
    Ok(Json(jaeger::envelope(json!(services), total)))
}

pub(super) async fn service_operations(
    Tenant(state): Tenant,
    Path(service): Path<String>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &[])?;
    let operations = state.queries.operations(service, None).await?;
    let mut names: Vec<String> = operations.into_iter().map(|op| op.name).collect();
    names.dedup();
    let total = names.len();
    Ok(Json(jaeger::envelope(json!(names), total)))
}

pub(super) fn operations_params(
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

pub(super) fn operations_json(operations: &[Operation]) -> Vec<Value> {
    operations
        .iter()
        .map(|op| json!({ "name": op.name, "spanKind": op.span_kind }))
        .collect()
}

pub(super) async fn operations(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let (service, kind) = operations_params(&pairs(query)?, "service", "spanKind")?;
    let data = operations_json(&state.queries.operations(service, kind).await?);
    let total = data.len();
    Ok(Json(jaeger::envelope(json!(data), total)))
}

/// `/api/operations/patterns?service=&spanKind=`: the patterns of the service's span
/// names (`GET /users/<num>`), those that stand for the most names first; a
/// pattern's `id` searches its traces (`/api/traces?operationPattern=`).
pub(super) async fn operation_patterns(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let (service, kind) = operations_params(&pairs(query)?, "service", "spanKind")?;
    let patterns = span_patterns::operation_patterns(state.queries.as_ref(), service, kind).await?;
    let total = patterns.len();
    Ok(Json(jaeger::envelope(
        span_patterns::operation_patterns_json(&patterns),
        total,
    )))
}

/// What a Jaeger trace says when it was cut.
fn warnings(trace: &Trace) -> Vec<String> {
    if !trace.is_cut() {
        return Vec::new();
    }
    vec![format!(
        "this trace has {} spans; the {} that started first are shown (--max-spans-per-trace)",
        trace.total,
        trace.spans.len()
    )]
}

/// `{"data": [traces], "total", ...}` as JSON bytes, written on a blocking thread
/// (a page of traces can hold thousands of spans).
async fn traces_response(
    traces: Vec<Trace>,
    total: usize,
    total_capped: bool,
    next_cursor: Option<Option<String>>,
) -> Result<Response, ApiError> {
    let body = render(move || {
        let warnings: Vec<Vec<String>> = traces.iter().map(warnings).collect();
        let data = traces
            .iter()
            .zip(&warnings)
            .map(|(trace, warnings)| jaeger::JaegerTrace {
                id: trace.id,
                spans: &trace.spans,
                warnings,
            })
            .collect::<Vec<_>>();
        serde_json::to_vec(&jaeger::Envelope {
            total_capped,
            next_cursor,
            ..jaeger::Envelope::new(data, total)
        })
    })
    .await?
    .map_err(|e| ApiError::internal(format!("cannot write the traces as JSON: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub(super) async fn search(Tenant(state): Tenant, query: Pairs) -> Result<Response, ApiError> {
    let mut search = params::trace_search(&pairs(query)?, state.now())?;
    if let TraceSearch::Filter(filter) = &mut search {
        resolve_operation_pattern(state.queries.as_ref(), filter).await?;
    }
    let page = state.queries.find_traces(search).await?;
    // `total`: how many traces matched in all, of which `data` holds the first
    // `limit`; past what a search counts, that bound, marked `totalCapped`.
    // The same search with `nextCursor` as `cursor` is the next page, in the
    // same window.
    traces_response(
        page.traces,
        page.total.unwrap_or(MAX_MATCHING_TRACES),
        page.total.is_none(),
        Some(page.next.map(|cursor| cursor.encode())),
    )
    .await
}

/// `GET /api/traces/export?format=ndjson|csv&limit=&...`: every trace the same
/// search finds (its filters, `sort`, `cursor` to resume), in its order, streamed
/// a few traces at a time; `limit` caps the traces (default: all). NDJSON: a
/// line of OTLP/JSON per trace; CSV: a row per span.
pub(super) async fn export(Tenant(state): Tenant, query: Pairs) -> Result<Response, ApiError> {
    let mut pairs = pairs(query)?;
    let download = Download::take(&mut pairs, "traces")?;
    let TraceSearch::Filter(mut filter) = params::trace_search(&pairs, state.now())? else {
        return Err(ApiError::bad_request(
            "traceID: a download is of a search (get traces by id from /api/traces)",
        ));
    };
    resolve_operation_pattern(state.queries.as_ref(), &mut filter).await?;
    let pages = TracePages::new(state.queries.clone(), filter);
    download
        .respond("hopline-traces", SPAN_CSV_HEADER, pages)
        .await
}

/// The trace `text` names, or 404.
async fn one_trace(state: &super::ApiState, text: &str) -> Result<Trace, ApiError> {
    let id: TraceId = params::parse_trace_id(text)?;
    state
        .queries
        .trace(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("trace {} not found", id.to_hex())))
}

pub(super) async fn trace(
    Tenant(state): Tenant,
    Path(trace_id): Path<String>,
    query: Pairs,
) -> Result<Response, ApiError> {
    Params::new(&pairs(query)?, &["start", "end", "prettyPrint", "raw"])?;
    let trace = one_trace(&state, &trace_id).await?;
    traces_response(vec![trace], 1, false, None).await
}

/// One edge of the service map, as Jaeger gives it, with latency quantiles (ms).
pub(super) fn dependency_json(link: &DependencyLink) -> Value {
    let ms = |q: f64| link.latencies.quantile(q).map(|ns| ns as f64 / 1e6);
    json!({
        "parent": link.parent,
        "child": link.child,
        "callCount": link.call_count,
        "errorCount": link.error_count,
        "p50": ms(0.5),
        "p95": ms(0.95),
        "p99": ms(0.99),
    })
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
    let links = state.queries.dependencies(start, end).await?;
    let data: Vec<Value> = links.iter().map(dependency_json).collect();
    let total = data.len();
    Ok(Json(jaeger::envelope(json!(data), total)))
}

pub(super) async fn v3_services(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &[])?;
    let services = state.queries.services().await?;
    Ok(Json(json!({ "services": services })))
}

pub(super) async fn v3_operations(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let (service, kind) = operations_params(&pairs(query)?, "service", "span_kind")?;
    let data = operations_json(&state.queries.operations(service, kind).await?);
    Ok(Json(json!({ "operations": data })))
}

pub(super) async fn v3_trace(
    Tenant(state): Tenant,
    Path(trace_id): Path<String>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(&pairs(query)?, &["start_time", "end_time", "raw_traces"])?;
    let trace = one_trace(&state, &trace_id).await?;
    let result = render(move || otlp_json::traces_data(&trace.spans)).await?;
    Ok(Json(json!({ "result": result })))
}

pub(super) async fn v3_search(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let filter = params::v3_trace_search(&pairs(query)?, state.now(), true)?;
    let traces = state
        .queries
        .find_traces(TraceSearch::Filter(filter))
        .await?
        .traces;
    let result = render(move || {
        let spans: Vec<crate::model::Span> =
            traces.into_iter().flat_map(|trace| trace.spans).collect();
        otlp_json::traces_data(&spans)
    })
    .await?;
    Ok(Json(json!({ "result": result })))
}

/// `/api/analysis`: why the slow ones are slow (see `query::analysis`).
pub(super) async fn analysis(Tenant(state): Tenant, query: Pairs) -> Result<Json<Value>, ApiError> {
    let mut request = params::analysis(&pairs(query)?, state.now())?;
    resolve_operation_pattern(state.queries.as_ref(), &mut request.filter).await?;
    let analysis = analysis::analyse(state.queries.as_ref(), request).await?;
    Ok(Json(
        render(move || analysis::analysis_json(&analysis)).await?,
    ))
}

/// `/api/v3/trace-summaries`: what the Jaeger UI (2.19 on) lists as search
/// results, as Jaeger's api_v3 writes it (times as decimal strings).
pub(super) async fn v3_trace_summaries(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let filter = params::v3_trace_search(&pairs(query)?, state.now(), false)?;
    let page = state.queries.trace_summaries(filter).await?;
    let summaries: Vec<Value> = page
        .summaries
        .iter()
        .map(|summary| {
            let services: Vec<Value> = summary
                .services
                .iter()
                .map(
                    |s| json!({ "name": s.name, "spanCount": s.spans, "errorSpanCount": s.errors }),
                )
                .collect();
            json!({
                "traceId": summary.id.to_hex(),
                "rootServiceName": summary.root_service,
                "rootOperationName": summary.root_name,
                "minStartTimeUnixNano": summary.start.to_string(),
                "maxEndTimeUnixNano": summary.end.to_string(),
                "spanCount": summary.spans,
                "errorSpanCount": summary.errors,
                "orphanSpanCount": summary.orphans,
                "services": services,
            })
        })
        .collect();
    Ok(Json(json!({ "summaries": summaries })))
}
