//! email-service: consumes `order.created` from RabbitMQ (`AMQP_URL`, queue
//! `ORDER_QUEUE`, default `order.created`), continues the producer's trace from the
//! message headers, "sends" the confirmation (records it in its own SQLite database,
//! `DATABASE_URL`, default `sqlite:email-service.db`) and acknowledges. `GET /emails`
//! lists what was sent; `GET /health` on `HTTP_ADDR` (default `0.0.0.0:3002`) reports
//! the broker connection and counters.
//!
//! With `AMQP_URL=embedded` (a machine without RabbitMQ) it hosts an embedded
//! in-process queue instead, fed by order-service over `POST /queue/{ORDER_QUEUE}`
//! with the same trace headers.
//!
//! A message that is not an order (a poison message) is rejected without requeue:
//! RabbitMQ dead-letters it to `{ORDER_QUEUE}.dead`, with a log line, instead of
//! redelivering it forever. An order with a `FAIL-EMAIL` item fails to send (an error
//! span and an error log): the load generator uses it so that the UI has failures to find.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use serde_json::json;
use telemetry::db::Db;
use telemetry::env_or;
use tokio::sync::RwLock;
use tracing::{error, info, warn, Instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS emails (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL
);";

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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Email {
    id: i64,
    order_id: i64,
    recipient: String,
    subject: String,
    status: String,
}

#[derive(Default)]
struct Counters {
    consumed: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    db: Db,
    counters: Arc<Counters>,
    connected: Arc<RwLock<bool>>,
    queue: String,
    /// The embedded queue's sender, when there is no RabbitMQ.
    embedded: Option<tokio::sync::mpsc::Sender<QueuedMessage>>,
    dead_letters: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

/// Handles one message in a consumer span that continues the producer's trace.
/// `Err` means poison: the caller dead-letters it.
async fn handle(
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
async fn handle_delivery(state: AppState, delivery: Delivery) {
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
struct QueuedMessage {
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
}

/// The embedded in-process queue, for machines without RabbitMQ (`AMQP_URL=embedded`):
/// order-service enqueues with `POST /queue/{ORDER_QUEUE}` (202 once queued), the
/// message keeps its `traceparent`/`tracestate`/`message-id` headers, and one consumer
/// task handles messages in order. Poison messages go to an in-memory dead-letter list.
async fn consume_embedded(
    state: AppState,
    mut messages: tokio::sync::mpsc::Receiver<QueuedMessage>,
) {
    *state.connected.write().await = true;
    info!(queue = %state.queue, "consuming from the embedded in-process queue (no RabbitMQ)");
    while let Some(message) = messages.recv().await {
        let parent = telemetry::extract_pairs(&message.headers);
        let message_id = message
            .headers
            .iter()
            .find(|(k, _)| k == "message-id")
            .map(|(_, v)| v.clone());
        if handle(
            &state,
            "in-process",
            parent,
            message_id.as_deref(),
            &message.payload,
        )
        .await
        .is_err()
        {
            if let Ok(mut dead) = state.dead_letters.lock() {
                dead.push(message.payload);
            }
        }
    }
}

async fn enqueue(
    State(state): State<AppState>,
    axum::extract::Path(queue): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(tx) = &state.embedded else {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "the embedded queue is off: this email-service consumes from RabbitMQ" }))).into_response();
    };
    if queue != state.queue {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no queue '{queue}' (this one is '{}')", state.queue) })),
        )
            .into_response();
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
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "the embedded queue is full" })),
        )
            .into_response(),
    }
}

/// A message that can never be handled.
struct Poison(String);

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
    let order_id = order.id;
    let recorded = state
        .db
        .call(
            "INSERT",
            "emails",
            "INSERT INTO emails (order_id, recipient, subject, status) VALUES (?1, ?2, ?3, ?4)",
            move |c| {
                c.execute(
                "INSERT INTO emails (order_id, recipient, subject, status) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![order_id, recipient, subject, status],
            )
            },
        )
        .await;
    if let Err(e) = recorded {
        // Not poison: the database may come back. Log it; the message is acknowledged
        // because the e-mail itself was handled.
        error!(order.id = order.id, error = %e, "cannot record the e-mail");
    }
    Ok(())
}

async fn consume(state: AppState, url: String) {
    loop {
        match consume_once(&state, &url).await {
            Ok(()) => warn!("RabbitMQ connection closed, reconnecting in 2s"),
            Err(e) => warn!(error = %e, "cannot consume from RabbitMQ, retrying in 2s"),
        }
        *state.connected.write().await = false;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn consume_once(state: &AppState, url: &str) -> anyhow::Result<()> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    telemetry::amqp::declare_queue(&channel, &state.queue).await?;
    channel.basic_qos(16, BasicQosOptions::default()).await?;
    let consumer = channel
        .basic_consume(
            state.queue.as_str().into(),
            "email-service".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    *state.connected.write().await = true;
    info!(queue = %state.queue, "consuming");
    let handler_state = state.clone();
    consumer.set_delegate(move |delivery: lapin::message::DeliveryResult| {
        let state = handler_state.clone();
        async move {
            match delivery {
                Ok(Some(delivery)) => handle_delivery(state, delivery).await,
                Ok(None) => {}
                Err(e) => warn!(error = %e, "consumer error"),
            }
        }
    });
    while connection.status().connected() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

async fn list_emails(State(state): State<AppState>) -> Response {
    let emails = state
        .db
        .call("SELECT", "emails", "SELECT id, order_id, recipient, subject, status FROM emails ORDER BY id DESC LIMIT 100", |c| {
            let mut statement =
                c.prepare_cached("SELECT id, order_id, recipient, subject, status FROM emails ORDER BY id DESC LIMIT 100")?;
            let rows = statement.query_map([], |row| {
                Ok(Email { id: row.get(0)?, order_id: row.get(1)?, recipient: row.get(2)?, subject: row.get(3)?, status: row.get(4)? })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await;
    match emails {
        Ok(emails) => Json(emails).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn health(State(state): State<AppState>) -> Response {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::run("email-service", env!("CARGO_PKG_VERSION"), run).await
}

async fn run() -> anyhow::Result<()> {
    let http_addr = env_or("HTTP_ADDR", "0.0.0.0:3002");
    let database_url = env_or("DATABASE_URL", "sqlite:email-service.db");
    let amqp_url = env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let queue = env_or("ORDER_QUEUE", "order.created");
    let embedded = amqp_url == "embedded";
    let (embedded_tx, embedded_rx) = tokio::sync::mpsc::channel(10_000);
    let state = AppState {
        db: Db::open(&database_url, SCHEMA)?,
        counters: Arc::default(),
        connected: Arc::new(RwLock::new(false)),
        queue: queue.clone(),
        embedded: embedded.then_some(embedded_tx),
        dead_letters: Arc::default(),
    };
    let consumer = if embedded {
        tokio::spawn(consume_embedded(state.clone(), embedded_rx))
    } else {
        tokio::spawn(consume(state.clone(), amqp_url))
    };
    let app = Router::new()
        .route("/emails", get(list_emails))
        .route("/health", get(health))
        .layer(axum::middleware::from_fn(telemetry::http::trace_requests))
        // The queue's own endpoint is transport, not a traced operation: the consumer
        // span continues the producer's trace from the message's headers.
        .merge(Router::new().route("/queue/{queue}", axum::routing::post(enqueue)))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&http_addr).await?;
    info!(http = %listener.local_addr()?, %queue, database = %database_url, "email-service listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(telemetry::shutdown_signal())
        .await?;
    consumer.abort();
    info!("stopped");
    Ok(())
}
