//! Elasticsearch's bulk API on the OTLP/HTTP listener, for log shippers that speak
//! it (Filebeat, Fluent Bit, Vector, Logstash, the Elasticsearch clients): their
//! Elasticsearch host is then `http://HOST:4318`.
//!
//! - `POST /_bulk`, `POST /{index}/_bulk` (also `PUT`): NDJSON, gzip or not;
//!   records take OTLP's way from the body on (limits, tokens, tenants, queue,
//!   write-ahead log). The answer is Elasticsearch's: `took`, `errors`, and an
//!   item per action (201 `created`, or the item's error), once the stored
//!   records are durable. The mapping is [`crate::decode::elasticsearch`]'s.
//! - What shippers ask before they send, answered as a compatible server would:
//!   `GET /` (the version, 8.17.0, and `You Know, for Search`), `GET /_license`,
//!   and index and component templates, ILM policies, ingest pipelines and data
//!   streams, which are acknowledged (`PUT`) and reported present (`GET`, `HEAD`);
//!   Hopline has no mappings to keep.
//!
//! Every answer carries `X-Elastic-Product: Elasticsearch`, which the official
//! clients check.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use prost::bytes::Bytes;
use serde_json::{json, Value};

use crate::decode::elasticsearch::{self, Item, DEFAULT_INDEX};
use crate::ingest::Ingester;
use crate::model::Signal;
use crate::otlp::body::BodyLimits;
use crate::otlp::{http, OtlpError};

/// The Elasticsearch version Hopline answers as.
pub const VERSION: &str = "8.17.0";
const PRODUCT_HEADER: &str = "x-elastic-product";

/// The Elasticsearch router; each request finds its tenant's [`Ingester`] in its
/// extensions ([`crate::otlp::authenticate`]).
pub fn router(limits: BodyLimits) -> Router {
    Router::new()
        .route("/", get(info))
        .route("/_license", get(license))
        .route("/_bulk", post(bulk).put(bulk))
        .route("/{index}/_bulk", post(bulk_into).put(bulk_into))
        .route("/_index_template/{*name}", any(setup))
        .route("/_component_template/{*name}", any(setup))
        .route("/_template/{*name}", any(setup))
        .route("/_ilm/policy/{*name}", any(setup))
        .route("/_ingest/pipeline/{*name}", any(setup))
        .route("/_data_stream/{*name}", any(setup))
        .layer(axum::middleware::map_response(product_header))
        .layer(DefaultBodyLimit::disable())
        .with_state(limits)
}

async fn product_header(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(PRODUCT_HEADER, HeaderValue::from_static("Elasticsearch"));
    response
}

async fn info() -> Response {
    axum::Json(json!({
        "name": "hopline",
        "cluster_name": "hopline",
        "cluster_uuid": "hopline",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "hopline",
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    }))
    .into_response()
}

async fn license() -> Response {
    axum::Json(json!({
        "license": {"status": "active", "uid": "hopline", "type": "basic", "mode": "basic"}
    }))
    .into_response()
}

/// Templates, policies, pipelines and data streams: Hopline keeps no mappings,
/// so a shipper's setup is acknowledged and reported present.
async fn setup() -> Response {
    axum::Json(json!({"acknowledged": true})).into_response()
}

async fn bulk(
    State(limits): State<BodyLimits>,
    Extension(ingester): Extension<Ingester>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(limits, ingester, DEFAULT_INDEX.to_string(), headers, body).await
}

async fn bulk_into(
    State(limits): State<BodyLimits>,
    Extension(ingester): Extension<Ingester>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(limits, ingester, index, headers, body).await
}

async fn receive(
    limits: BodyLimits,
    ingester: Ingester,
    index: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let media_type = http::media_type(&headers);
    let known = ["", "application/json", "application/x-ndjson"].contains(&media_type.as_str())
        || media_type.starts_with("application/vnd.elasticsearch+");
    if !known {
        let error = OtlpError::UnsupportedMediaType(format!(
            "unsupported Content-Type '{media_type}': a bulk request comes as application/x-ndjson"
        ));
        return http::unread(error_response(error));
    }
    let (items_out, items_in) = tokio::sync::oneshot::channel();
    let prepare = move |ingester: &Ingester, bytes: &Bytes| {
        let now = ingester.now();
        let (converted, items) =
            elasticsearch::decode_bulk(bytes, &index, now, now, ingester.limits())
                .map_err(|e| OtlpError::Decode(e.to_string()))?;
        let _ = items_out.send(items);
        Ok(ingester.prepare_log_records(converted, None, now)?)
    };
    let outcome = http::receive(
        ingester,
        Signal::Logs,
        &headers,
        body,
        &limits,
        error_response,
        prepare,
    )
    .await;
    match (outcome, items_in.await) {
        (Ok(_), Ok(items)) => bulk_response(&items, started),
        (Err(response), _) => response,
        (Ok(_), Err(_)) => error_response(OtlpError::Internal(
            "the bulk request's items were lost".into(),
        )),
    }
}

/// Elasticsearch's answer to a bulk request.
fn bulk_response(items: &[Item], started: Instant) -> Response {
    let errors = items.iter().any(|item| item.error.is_some());
    let items: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(seq_no, item)| {
            let outcome = match &item.error {
                None => json!({
                    "_index": item.index,
                    "_id": item.id,
                    "_version": 1,
                    "result": "created",
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": seq_no,
                    "_primary_term": 1,
                    "status": 201
                }),
                Some(error) => json!({
                    "_index": item.index,
                    "_id": item.id,
                    "status": error.status,
                    "error": {"type": error.kind, "reason": error.reason}
                }),
            };
            json!({ item.action: outcome })
        })
        .collect();
    axum::Json(json!({
        "took": started.elapsed().as_millis() as u64,
        "errors": errors,
        "items": items
    }))
    .into_response()
}

/// An error of the shared path in Elasticsearch's shape, with `Retry-After` when
/// the shipper should come back.
fn error_response(error: OtlpError) -> Response {
    if matches!(error, OtlpError::Internal(_)) {
        tracing::error!(error = %error, receiver = "elasticsearch", "export failed");
    }
    let mut response = es_error(error.http_status(), &error.to_string());
    http::set_retry_after(&mut response, &error);
    response
}

/// An error in Elasticsearch's shape: `{"error": {"root_cause", "type",
/// "reason"}, "status"}`.
fn es_error(status: StatusCode, reason: &str) -> Response {
    let kind = match status.as_u16() {
        400 => "illegal_argument_exception",
        401 => "security_exception",
        413 => "content_too_long_exception",
        415 => "media_type_header_exception",
        429 | 503 => "es_rejected_execution_exception",
        _ => "exception",
    };
    let cause = json!({"type": kind, "reason": reason});
    (
        status,
        axum::Json(json!({
            "error": {"root_cause": [cause.clone()], "type": kind, "reason": reason},
            "status": status.as_u16()
        })),
    )
        .into_response()
}
