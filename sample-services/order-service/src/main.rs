//! order-service: orders over REST (`POST /orders`, `GET /orders?userId=`,
//! `GET /orders/{id}`) on `HTTP_ADDR` (default `0.0.0.0:3001`). It checks the user
//! with user-service over gRPC (`USER_SERVICE_GRPC`, default `http://127.0.0.1:50051`),
//! keeps orders in its own SQLite database (`DATABASE_URL`, default
//! `sqlite:order-service.db`) and publishes `order.created` to RabbitMQ (`AMQP_URL`,
//! default `amqp://guest:guest@127.0.0.1:5672/%2f`; queue `ORDER_QUEUE`, default
//! `order.created`) with the trace context in the message headers.
//!
//! With `AMQP_URL=embedded` it publishes to email-service's embedded in-process
//! queue instead (`EMAIL_SERVICE_URL`), with the same trace headers.
//!
//! Faults on purpose, which the load generator uses so that the UI has slow traces
//! to find: items whose SKU starts with `SLOW` take the slow path (a 750 ms
//! shipping quote); a `BUNDLE-n` item (n parts, at most 50) has its parts read
//! from the parts catalogue (a database 8 ms away) one query per part, an N+1.
//!
//! `main.rs` wires it together; the handlers are in `api.rs`, the SQL in `store.rs`,
//! the publisher of `order.created` in `queue.rs`.

mod api;
mod queue;
mod store;

use std::sync::Arc;
use std::time::Duration;

use api::AppState;
use axum::routing::get;
use axum::Router;
use queue::Queue;
use telemetry::db::Db;
use telemetry::env_or;
use tracing::info;
use user_proto::user_service_client::UserServiceClient;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::run("order-service", env!("CARGO_PKG_VERSION"), run).await
}

async fn run() -> anyhow::Result<()> {
    let http_addr = env_or("HTTP_ADDR", "0.0.0.0:3001");
    let user_grpc = env_or("USER_SERVICE_GRPC", "http://127.0.0.1:50051");
    let database_url = env_or("DATABASE_URL", "sqlite:order-service.db");
    let amqp_url = env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let queue_name = env_or("ORDER_QUEUE", "order.created");

    let db = Db::open(&database_url, store::SCHEMA)?;
    // The parts catalogue: a database one network hop away (8 ms a round trip).
    let catalogue = Db::open("sqlite::memory:", store::CATALOGUE_SCHEMA)?
        .with_round_trip(Duration::from_millis(8));
    let channel = tonic::transport::Endpoint::from_shared(user_grpc.clone())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    let users = UserServiceClient::with_interceptor(channel, telemetry::grpc::InjectContext);
    let queue = if amqp_url == "embedded" {
        let email_url = env_or("EMAIL_SERVICE_URL", "http://127.0.0.1:3002");
        info!(%email_url, "no RabbitMQ: publishing to email-service's embedded in-process queue");
        Queue::embedded(queue_name.clone(), email_url)
    } else {
        Queue::rabbitmq(queue_name.clone(), amqp_url)
    };
    let queue = Arc::new(queue);
    tokio::spawn(Arc::clone(&queue).keep_connected());

    let app = Router::new()
        .route("/orders", get(api::list_orders).post(api::create_order))
        .route("/orders/{id}", get(api::get_order))
        .route("/health", get(api::health))
        .layer(axum::middleware::from_fn(telemetry::http::trace_requests))
        .with_state(AppState {
            db,
            catalogue,
            users,
            queue,
        });
    let listener = tokio::net::TcpListener::bind(&http_addr).await?;
    info!(http = %listener.local_addr()?, user_service = %user_grpc, queue = %queue_name, database = %database_url, "order-service listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(telemetry::shutdown_signal())
        .await?;
    info!("stopped");
    Ok(())
}
