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
//!
//! `main.rs` wires it together (configuration, the consumers, the HTTP listener); the
//! handlers are in `api.rs`, the SQL in `store.rs`.

mod api;
mod store;

use std::sync::Arc;
use std::time::Duration;

use api::{AppState, QueuedMessage};
use axum::routing::get;
use axum::Router;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use telemetry::db::Db;
use telemetry::env_or;
use tokio::sync::RwLock;
use tracing::{info, warn};

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
        if api::handle(
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
                Ok(Some(delivery)) => api::handle_delivery(state, delivery).await,
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
        db: Db::open(&database_url, store::SCHEMA)?,
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
        .route("/emails", get(api::list_emails))
        .route("/health", get(api::health))
        .layer(axum::middleware::from_fn(telemetry::http::trace_requests))
        // The queue's own endpoint is transport, not a traced operation: the consumer
        // span continues the producer's trace from the message's headers.
        .merge(Router::new().route("/queue/{queue}", axum::routing::post(api::enqueue)))
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
