//! The HTTP API on the UI port: Jaeger's v1 JSON API (`/api/...`), Jaeger's api_v3
//! (`/api/v3/...`), the logs API, `/health` and `/metrics`. Handlers parse their
//! parameters, call the tenant's [`QueryService`], and render.

pub mod auth;
mod error;
mod export;
mod logs;
mod loki;
pub mod mcp;
mod red;
mod traces;
pub mod ui;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub use error::ApiError;

use crate::access::{AccessControl, TenantId};
use crate::cluster::leaf::{LeafRequest, LeafServer};
use crate::metrics::Metrics;
use crate::model::Clock;
use crate::query::partial;
use crate::query::service::QueryService;
use crate::query::QueryError;
use crate::store::Store;

#[derive(Clone)]
pub struct ApiState {
    /// The caller's tenant's queries once [`auth::authenticate`] has found it
    /// ([`auth::Tenant`]); the default tenant's before.
    pub queries: Arc<dyn QueryService>,
    /// Every tenant's queries, by [`TenantId`].
    pub tenants: Arc<Vec<Arc<dyn QueryService>>>,
    /// The caller's tenant once authenticated.
    pub tenant: TenantId,
    /// Cluster mode: answers other nodes' leaf searches.
    pub leaves: Option<Arc<LeafServer>>,
    /// Every tenant's store, for the figures of `/health`.
    pub stores: Arc<Vec<Store>>,
    pub access: Arc<AccessControl>,
    /// Whether the port serves TLS (the sign-in cookie is then `Secure`).
    pub tls: bool,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

impl ApiState {
    /// This state, seeing only `tenant`'s data.
    fn for_tenant(&self, tenant: TenantId) -> ApiState {
        ApiState {
            queries: Arc::clone(&self.tenants[tenant]),
            tenant,
            ..self.clone()
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_unix_nanos()
    }
}

/// Renders an answer on the blocking pool: a Jaeger trace of many thousand spans
/// takes milliseconds to turn into JSON, too long for the runtime's threads.
async fn render<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::from(QueryError::from(e)))
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/services", get(traces::services))
        .route(
            "/api/services/{service}/operations",
            get(traces::service_operations),
        )
        .route("/api/operations", get(traces::operations))
        .route("/api/operations/patterns", get(traces::operation_patterns))
        .route("/api/traces", get(traces::search))
        .route("/api/traces/export", get(traces::export))
        .route("/api/traces/{trace_id}", get(traces::trace))
        .route("/api/dependencies", get(traces::dependencies))
        .route("/api/analysis", get(traces::analysis))
        .route("/api/metrics/minstep", get(red::min_step))
        .route("/api/metrics/{metric}", get(red::jaeger_metric))
        .route("/api/service-metrics", get(red::service_metrics))
        .route("/api/logs", get(logs::search))
        .route("/api/logs/tail", get(logs::tail))
        .route("/api/logs/export", get(logs::export))
        .route("/api/logs/context", get(logs::context))
        .route("/api/logs/volume", get(logs::volume))
        .route("/api/logs/patterns", get(logs::patterns))
        .route("/loki/api/v1/labels", get(loki::labels))
        .route("/loki/api/v1/label/{name}/values", get(loki::label_values))
        .route("/loki/api/v1/series", get(loki::series))
        .route("/loki/api/v1/query_range", get(loki::query_range))
        .route("/loki/api/v1/query", get(loki::query))
        .route("/loki/api/v1/index/stats", get(loki::index_stats))
        .route("/loki/api/v1/status/buildinfo", get(loki::buildinfo))
        .route("/api/v3/services", get(traces::v3_services))
        .route("/api/v3/operations", get(traces::v3_operations))
        .route("/api/v3/traces", get(traces::v3_search))
        .route("/api/v3/trace-summaries", get(traces::v3_trace_summaries))
        .route("/api/v3/traces/{trace_id}", get(traces::v3_trace))
        .route(
            crate::cluster::leaf::PATH,
            post(leaf).layer(axum::extract::DefaultBodyLimit::max(
                crate::cluster::leaf::MAX_REQUEST_BYTES,
            )),
        )
        .nest_service("/mcp", mcp::service())
        .route("/signin", get(auth::sign_in_page).post(auth::sign_in))
        .route("/signout", post(auth::sign_out))
        .fallback(not_found)
        .layer(middleware::from_fn(partial_answers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe_latency,
        ))
        .with_state(state)
}

/// Largest JSON answer that gets the notes of a partial answer in its body (the
/// header carries them on any answer).
const MAX_ANNOTATED_BYTES: u64 = 64 * 1024 * 1024;

/// Puts what the query service left out of an answer (a node that did not
/// answer, in cluster mode) on it: the `Hopline-Partial` header, and a top-level
/// `warnings` list in a JSON object answer (but MCP's, whose messages are
/// JSON-RPC's).
async fn partial_answers(request: Request, next: Next) -> Response {
    let is_mcp = request.uri().path().starts_with("/mcp");
    let (response, notes) = partial::gathering(next.run(request)).await;
    if notes.is_empty() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let summary = notes
        .join("; ")
        .replace(|c: char| !(' '..='~').contains(&c), "?");
    if let Ok(value) = header::HeaderValue::from_str(&summary) {
        parts.headers.insert("hopline-partial", value);
    }
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let whole = http_body::Body::size_hint(&body)
        .exact()
        .is_some_and(|len| len <= MAX_ANNOTATED_BYTES);
    if is_mcp || !is_json || !whole {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ANNOTATED_BYTES as usize).await else {
        return ApiError::internal("the answer could not be read back to note what it lacks")
            .into_response();
    };
    let annotated = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut object)) => {
            let warnings = object.entry("warnings").or_insert(json!([]));
            match warnings.as_array_mut() {
                Some(list) => list.extend(notes.into_iter().map(serde_json::Value::from)),
                None => *warnings = json!(notes),
            }
            serde_json::to_vec(&object).ok()
        }
        _ => None,
    };
    let bytes = annotated.map_or(bytes, axum::body::Bytes::from);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

async fn observe_latency(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(route) = route.filter(|r| r.starts_with("/api")) {
        state.metrics.observe_query(&route, started.elapsed());
    }
    response
}

/// `/health`: 200 and `"status":"ok"`, or 503 and `"degraded"` while something
/// holds that stops ingest (a full disk, failing commits); `problems` also lists
/// what was found since start (a damaged log segment, a quarantined split).
/// Open to all (load balancers probe it): figures of the whole process, no tenant's.
async fn health(State(state): State<ApiState>) -> Response {
    let stores = Arc::clone(&state.stores);
    let (spans_bytes, logs_bytes) = tokio::task::spawn_blocking(move || {
        stores
            .iter()
            .map(Store::disk_usage)
            .fold((0, 0), |(s, l), (a, b)| (s + a, l + b))
    })
    .await
    .unwrap_or_default();
    let splits = |signal: crate::model::Signal| -> usize {
        state
            .stores
            .iter()
            .map(|store| store.of(signal).splits().len())
            .sum()
    };
    let health = &state.metrics.health;
    let degraded = health.is_degraded();
    let status = if degraded {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "problems": health.problems(),
        "version": env!("CARGO_PKG_VERSION"),
        "spans": { "splits": splits(crate::model::Signal::Spans), "bytes": spans_bytes },
        "logs": { "splits": splits(crate::model::Signal::Logs), "bytes": logs_bytes },
    }));
    (status, body).into_response()
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// `POST /internal/leaf`: another node of the cluster asks for its part of an
/// answer (postcard in, postcard out), with the tenant's query token.
async fn leaf(
    auth::Tenant(state): auth::Tenant,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let Some(leaves) = &state.leaves else {
        return Err(ApiError::not_found("this node is not part of a cluster"));
    };
    let request: LeafRequest = postcard::from_bytes(&body)
        .map_err(|e| ApiError::bad_request(format!("undecodable leaf request: {e}")))?;
    let answer = leaves.serve(state.tenant, request).await?;
    let body = postcard::to_allocvec(&answer)
        .map_err(|e| ApiError::internal(format!("cannot encode the leaf answer: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

pub(super) async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}
