//! Service health from spans: Jaeger's SPM endpoints (the Jaeger UI's Monitor
//! tab) and `/api/service-metrics`.

use axum::extract::Path;
use axum::Json;
use serde_json::{json, Value};

use super::auth::Tenant;
use super::traces::{pairs, Pairs};
use super::{render, ApiError};
use crate::query::jaeger;
use crate::query::red;

/// `/api/metrics/{calls,errors,latencies}`: a Jaeger `MetricFamily`.
pub(super) async fn jaeger_metric(
    Tenant(state): Tenant,
    Path(metric): Path<String>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let request = red::jaeger_metrics(&pairs(query)?, &metric, state.now())?;
    let metrics = state.queries.span_metrics(request.query.clone()).await?;
    let body = render(move || red::jaeger_family(&request, &metrics)).await?;
    Ok(Json(body))
}

/// `/api/metrics/minstep`: the smallest step, in ms (older Jaeger UIs ask).
pub(super) async fn min_step(Tenant(_): Tenant) -> Json<Value> {
    Json(jaeger::envelope(json!(1000), 0))
}

/// `/api/service-metrics`: requests, errors and latency quantiles per service
/// or operation, for the range and per bucket.
pub(super) async fn service_metrics(
    Tenant(state): Tenant,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let request = red::red_request(&pairs(query)?, state.now())?;
    let metrics = state.queries.span_metrics(request.query.clone()).await?;
    let body = render(move || red::red_json(&request, &metrics)).await?;
    Ok(Json(body))
}
