//! gateway: the API gateway on `HTTP_ADDR` (default `0.0.0.0:8080`).
//!
//! `/api/users[/*]` -> user-service `/users[/*]` and `/api/orders[/*]` -> order-service
//! `/orders[/*]`, with the request's trace continued (or started) and passed on.
//! Each upstream is a list of base URLs (`USER_SERVICE_URLS`, default
//! `http://127.0.0.1:3000`; `ORDER_SERVICE_URLS`, default `http://127.0.0.1:3001`;
//! comma-separated). A host name that resolves to several addresses (replicas behind
//! one DNS name, as in docker-compose) counts as one replica per address. Calls go
//! round robin over the replicas whose `/health` answers (checked every
//! `HEALTH_INTERVAL_MS`, default 2000), and through a circuit breaker per upstream:
//! after `BREAKER_THRESHOLD` (default 5) consecutive failures it opens and answers 503
//! at once for `BREAKER_OPEN_SECONDS` (default 10), then lets one trial call through.
//!
//! `main.rs` wires it together; the proxy and its upstreams are in `api.rs`, the
//! circuit breaker in `breaker.rs`.

mod api;
mod breaker;

use std::sync::Arc;
use std::time::Duration;

use api::{AppState, Upstream};
use axum::routing::{any, get};
use axum::Router;
use breaker::Breaker;
use telemetry::env_or;
use tracing::info;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::run("gateway", env!("CARGO_PKG_VERSION"), run).await
}

async fn run() -> anyhow::Result<()> {
    let http_addr = env_or("HTTP_ADDR", "0.0.0.0:8080");
    let threshold: u32 = env_or("BREAKER_THRESHOLD", "5").parse()?;
    let open_for = Duration::from_secs_f64(env_or("BREAKER_OPEN_SECONDS", "10").parse()?);
    let health_interval = Duration::from_millis(env_or("HEALTH_INTERVAL_MS", "2000").parse()?);
    let users = Arc::new(Upstream::new(
        "user-service",
        "/api/users",
        "/users",
        &env_or("USER_SERVICE_URLS", "http://127.0.0.1:3000"),
        Breaker::new(threshold, open_for),
    ));
    let orders = Arc::new(Upstream::new(
        "order-service",
        "/api/orders",
        "/orders",
        &env_or("ORDER_SERVICE_URLS", "http://127.0.0.1:3001"),
        Breaker::new(threshold, open_for),
    ));
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .build()?;
    for upstream in [Arc::clone(&users), Arc::clone(&orders)] {
        let client = client.clone();
        tokio::spawn(async move {
            loop {
                upstream.refresh(&client).await;
                tokio::time::sleep(health_interval).await;
            }
        });
    }
    let app = Router::new()
        .route("/api/users", any(api::proxy_users))
        .route("/api/users/{*rest}", any(api::proxy_users))
        .route("/api/orders", any(api::proxy_orders))
        .route("/api/orders/{*rest}", any(api::proxy_orders))
        .route("/health", get(api::health))
        .layer(axum::middleware::from_fn(telemetry::http::trace_requests))
        .with_state(AppState {
            users: Arc::clone(&users),
            orders: Arc::clone(&orders),
            client,
        });
    let listener = tokio::net::TcpListener::bind(&http_addr).await?;
    info!(
        http = %listener.local_addr()?,
        users = ?users.urls,
        orders = ?orders.urls,
        breaker_threshold = threshold,
        breaker_open = ?open_for,
        "gateway listening"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(telemetry::shutdown_signal())
        .await?;
    info!("stopped");
    Ok(())
}
