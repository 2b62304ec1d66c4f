//! email-service: consumes `order.created` from RabbitMQ (`AMQP_URL`, queue
//! `ORDER_QUEUE`, default `order.created`), continues the producer's trace from the
//! message headers, "sends" the confirmation (records it in its own SQLite database,
//! `DATABASE_URL`, default `sqlite:email-service.db`) and acknowledges. `GET /emails`
//! lists what was sent; `GET /health` on `HTTP_ADDR` (default `0.0.0.0:3002`) reports
//! the broker connection and counters.
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
}

/// Handles one delivery in a consumer span that continues the producer's trace.
async fn handle(state: AppState, delivery: Delivery) {
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("{} process", state.queue),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = %state.queue,
        messaging.message.id = tracing::field::Empty,
    );
    let _ = span.set_parent(telemetry::amqp::extract(
        delivery.properties.headers().as_ref(),
    ));
    if let Some(id) = delivery.properties.message_id() {
        span.record("messaging.message.id", id.as_str());
    }
    state.counters.consumed.fetch_add(1, Ordering::Relaxed);
    let outcome = process(&state, &delivery.data)
        .instrument(span.clone())
        .await;
    let acked = match outcome {
        Ok(()) => delivery.ack(BasicAckOptions::default()).await,
        Err(Poison(reason)) => {
            span.in_scope(|| {
                warn!(reason = %reason, bytes = delivery.data.len(), "poison message: dead-lettering it instead of redelivering")
            });
            telemetry::mark_error(&span, format!("poison message: {reason}"));
            state.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
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
                Ok(Some(delivery)) => handle(state, delivery).await,
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
        "rabbitmq": if connected { "connected" } else { "disconnected" },
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
    let guard = telemetry::init("email-service", env!("CARGO_PKG_VERSION"))?;
    let result = run().await;
    if let Err(e) = &result {
        tracing::error!("{e:#}");
    }
    guard.shutdown();
    result
}

async fn run() -> anyhow::Result<()> {
    let http_addr = env_or("HTTP_ADDR", "0.0.0.0:3002");
    let database_url = env_or("DATABASE_URL", "sqlite:email-service.db");
    let amqp_url = env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let queue = env_or("ORDER_QUEUE", "order.created");
    let state = AppState {
        db: Db::open(&database_url, SCHEMA)?,
        counters: Arc::default(),
        connected: Arc::new(RwLock::new(false)),
        queue: queue.clone(),
    };
    let consumer = tokio::spawn(consume(state.clone(), amqp_url));
    let app = Router::new()
        .route("/emails", get(list_emails))
        .route("/health", get(health))
        .layer(axum::middleware::from_fn(telemetry::http::trace_requests))
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
