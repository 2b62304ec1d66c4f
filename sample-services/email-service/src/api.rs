//! The handlers: one `order.created` message (from RabbitMQ or the embedded queue),
//! `POST /queue/{queue}` (the embedded queue's producer side), `GET /emails` and
//! `GET /health`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use serde::Deserialize;
use serde_json::json;
use telemetry::db::Db;
use telemetry::http::error_response;
use tokio::sync::RwLock;
use tracing::{error, info, warn, Instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::store;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderCreated {
    id: i64,
    user_id: i64,
    items: Vec<Item>,
    total: f64,
}

#[derive(Debug, Deserialize)]
struct Item {
    sku: String,
}

#[derive(Default)]
pub(crate) struct Counters {
    consumed: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) counters: Arc<Counters>,
    pub(crate) connected: Arc<RwLock<bool>>,
    pub(crate) queue: String,
    /// The embedded queue's sender, when there is no RabbitMQ.
    pub(crate) embedded: Option<tokio::sync::mpsc::Sender<QueuedMessage>>,
    pub(crate) dead_letters: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

/// Handles one message in a consumer span that continues the producer's trace.
/// `Err` means poison: the caller dead-letters it.
pub(crate) async fn handle(
    state: &AppState,
    system: &'static str,
    parent: opentelemetry::Context,
    message_id: Option<&str>,
    payload: &[u8],
) -> Result<(), Poison> {
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("{} process", state.queue),
        otel.kind = "consumer",
        messaging.system = system,
        messaging.operation.type = "process",
        messaging.destination.name = %state.queue,
        messaging.message.id = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    if let Some(id) = message_id {
        span.record("messaging.message.id", id);
    }
    state.counters.consumed.fetch_add(1, Ordering::Relaxed);
    let outcome = process(state, payload).instrument(span.clone()).await;
    if let Err(Poison(reason)) = &outcome {
        span.in_scope(|| {
            warn!(reason = %reason, bytes = payload.len(), "poison message: dead-lettering it instead of redelivering")
        });
        telemetry::mark_error(&span, format!("poison message: {reason}"));
        state.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
    outcome
}

/// Handles a RabbitMQ delivery: ack when handled, reject without requeue (so the
/// broker dead-letters it) when poison.
pub(crate) async fn handle_delivery(state: AppState, delivery: Delivery) {
    let parent = telemetry::amqp::extract(delivery.properties.headers().as_ref());
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_string());
    let outcome = handle(
        &state,
        "rabbitmq",
        parent,
        message_id.as_deref(),
        &delivery.data,
    )
    .await;
    let acked = match outcome {
        Ok(()) => delivery.ack(BasicAckOptions::default()).await,
        Err(_) => {
            delivery
                .nack(BasicNackOptions {
                    requeue: false,
                    ..BasicNackOptions::default()
                })
                .await
        }
    };
    if let Err(e) = acked {
        warn!(error = %e, "cannot acknowledge message");
    }
}

/// A message of the embedded queue: the producer's trace headers and the payload.
pub(crate) struct QueuedMessage {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) payload: Vec<u8>,
}

/// `POST /queue/{queue}`: enqueues on the embedded queue (202 once queued), keeping
/// the message's `traceparent`/`tracestate`/`message-id` headers.
pub(crate) async fn enqueue(
    State(state): State<AppState>,
    axum::extract::Path(queue): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(tx) = &state.embedded else {
        return error_response(
            StatusCode::NOT_FOUND,
            "the embedded queue is off: this email-service consumes from RabbitMQ",
        );
    };
    if queue != state.queue {
        return error_response(
            StatusCode::NOT_FOUND,
            format!("no queue '{queue}' (this one is '{}')", state.queue),
        );
    }
    let headers = ["traceparent", "tracestate", "message-id"]
        .into_iter()
        .filter_map(|name| {
            Some((
                name.to_string(),
                headers.get(name)?.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    match tx.try_send(QueuedMessage {
        headers,
        payload: body.to_vec(),
    }) {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "queued": true }))).into_response(),
        Err(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the embedded queue is full",
        ),
    }
}

/// A message that can never be handled.
pub(crate) struct Poison(String);

async fn process(state: &AppState, payload: &[u8]) -> Result<(), Poison> {
    let order: OrderCreated = serde_json::from_slice(payload)
        .map_err(|e| Poison(format!("not an order.created message: {e}")))?;
    let recipient = format!("user-{}@example.com", order.user_id);
    let subject = format!("Your order #{} ({:.2})", order.id, order.total);
    let fails = order.items.iter().any(|item| item.sku == "FAIL-EMAIL");
    let status = if fails {
        error!(order.id = order.id, %recipient, "sending the confirmation e-mail failed: mail server rejected the recipient");
        telemetry::mark_error(
            &tracing::Span::current(),
            "mail server rejected the recipient",
        );
        state.counters.failed.fetch_add(1, Ordering::Relaxed);
        "failed"
    } else {
        info!(order.id = order.id, %recipient, "confirmation e-mail sent");
        state.counters.sent.fetch_add(1, Ordering::Relaxed);
        "sent"
    };
    let recorded = store::insert_email(&state.db, order.id, recipient, subject, status).await;
    if let Err(e) = recorded {
        // Not poison: the database may come back. Log it; the message is acknowledged
        // because the e-mail itself was handled.
        error!(order.id = order.id, error = %e, "cannot record the e-mail");
    }
    Ok(())
}

pub(crate) async fn list_emails(State(state): State<AppState>) -> Response {
    match store::list_emails(&state.db).await {
        Ok(emails) => Json(emails).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let connected = *state.connected.read().await;
    let database = state.db.ping().await;
    let c = &state.counters;
    let body = json!({
        "status": if connected && database { "ok" } else { "degraded" },
        "queue": if state.embedded.is_some() { "embedded" } else { "rabbitmq" },
        "rabbitmq": if state.embedded.is_some() { "unused" } else if connected { "connected" } else { "disconnected" },
        "database": if database { "ok" } else { "unavailable" },
        "consumed": c.consumed.load(Ordering::Relaxed),
        "sent": c.sent.load(Ordering::Relaxed),
        "failed": c.failed.load(Ordering::Relaxed),
        "deadLettered": c.dead_lettered.load(Ordering::Relaxed),
    });
    (
        if database {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
        .into_response()
}
