//! Loki's push API: `POST /loki/api/v1/push` on the OTLP/HTTP listener, JSON
//! (`application/json`, gzip or not) or snappy-compressed protobuf
//! (`application/x-protobuf`), as Promtail, Grafana Alloy, Fluent Bit, Vector and
//! Loki's client libraries send it. A log agent's Loki URL is then
//! `http://HOST:4318/loki/api/v1/push`.
//!
//! Records take OTLP's way from the body on: the same body bounds, tokens, tenants
//! (an agent's `tenant_id` comes as `X-Scope-OrgID`, which picks a tenant as it
//! does for OTLP), rate limits, queue and write-ahead log. Success is `204 No
//! Content`, as Loki answers. Entries that cannot be stored are dropped one by one
//! and the rest kept; the answer is then 400 with the reasons, as Loki's, so the
//! agent logs what was dropped (agents do not retry a 400). The mapping is
//! [`crate::decode::loki`]'s.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::decode::loki;
use crate::ingest::Ingester;
use crate::model::Signal;
use crate::otlp::body::BodyLimits;
use crate::otlp::{http, OtlpError};
use prost::bytes::Bytes;

/// The path Loki clients post to.
pub const PUSH_PATH: &str = "/loki/api/v1/push";

/// The Loki push router; each request finds its tenant's [`Ingester`] in its
/// extensions ([`crate::otlp::authenticate`]).
pub fn router(limits: BodyLimits) -> Router {
    Router::new()
        .route(PUSH_PATH, post(push))
        .layer(DefaultBodyLimit::disable())
        .with_state(limits)
}

#[derive(Clone, Copy)]
enum Encoding {
    Json,
    SnappyProtobuf,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, OtlpError> {
    match http::media_type(headers).as_str() {
        "application/json" => Ok(Encoding::Json),
        // Loki takes a push without a type as protobuf, as Promtail sends it.
        "" | "application/x-protobuf" | "application/protobuf" => Ok(Encoding::SnappyProtobuf),
        other => Err(OtlpError::UnsupportedMediaType(format!(
            "unsupported Content-Type '{other}': a Loki push comes as application/json or application/x-protobuf (snappy)"
        ))),
    }
}

async fn push(
    State(limits): State<BodyLimits>,
    Extension(ingester): Extension<Ingester>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match encoding(&headers) {
        Ok(encoding) => encoding,
        Err(error) => return http::unread(http::text_error(error, "loki")),
    };
    let max_size = limits.max_size;
    let prepare = move |ingester: &Ingester, bytes: &Bytes| {
        let now = ingester.now();
        let decode = |e: loki::DecodeError| OtlpError::Decode(e.to_string());
        let converted = match encoding {
            Encoding::Json => loki::decode_json(bytes, now, ingester.limits()),
            Encoding::SnappyProtobuf => {
                // A snappy bomb, as a gzip bomb: 413 before decompressing.
                let size = loki::decompressed_len(bytes).map_err(decode)?;
                if size > max_size {
                    return Err(OtlpError::TooLarge(format!(
                        "the decompressed body would be {size} bytes, over the {max_size}-byte limit (--max-request-size)"
                    )));
                }
                loki::decode_protobuf(bytes, max_size, now, ingester.limits())
            }
        }
        .map_err(decode)?;
        Ok(ingester.prepare_log_records(converted, None, now)?)
    };
    let outcome = http::receive(
        ingester,
        Signal::Logs,
        &headers,
        body,
        &limits,
        |error| http::text_error(error, "loki"),
        prepare,
    )
    .await;
    match outcome {
        Ok(outcome) if outcome.rejected == 0 => StatusCode::NO_CONTENT.into_response(),
        Ok(outcome) => http::text_error(
            OtlpError::Decode(format!(
                "{} entries were dropped, the rest is stored: {}",
                outcome.rejected, outcome.error_message
            )),
            "loki",
        ),
        Err(response) => response,
    }
}
