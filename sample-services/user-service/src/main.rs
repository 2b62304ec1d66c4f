//! user-service: users over REST (`POST /users`, `GET /users`, `GET /users/{id}`) on
//! `HTTP_ADDR` (default `0.0.0.0:3000`) and gRPC `UserService.GetUser` on `GRPC_ADDR`
//! (default `0.0.0.0:50051`), stored in its own SQLite database (`DATABASE_URL`,
//! default `sqlite:user-service.db`).
//!
//! `main.rs` wires it together; the handlers are in `api.rs`, the SQL in `store.rs`.

mod api;
mod store;

use axum::routing::get;
use axum::Router;
use telemetry::db::Db;
use telemetry::env_or;
use tracing::info;
use user_proto::user_service_server::UserServiceServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::run("user-service", env!("CARGO_PKG_VERSION"), run).await
}

async fn run() -> anyhow::Result<()> {
    let http_addr = env_or("HTTP_ADDR", "0.0.0.0:3000");
    let grpc_addr = env_or("GRPC_ADDR", "0.0.0.0:50051");
    let database_url = env_or("DATABASE_URL", "sqlite:user-service.db");
    let db = Db::open(&database_url, store::SCHEMA)?;
    let app = Router::new()
        .route("/users", get(api::list_users).post(api::create_user))
        .route("/users/{id}", get(api::get_user))
        .route("/health", get(api::health))
        .layer(axum::middleware::from_fn(telemetry::http::trace_requests))
        .with_state(db.clone());
    let http = tokio::net::TcpListener::bind(&http_addr).await?;
    let grpc = tokio::net::TcpListener::bind(&grpc_addr).await?;
    info!(http = %http.local_addr()?, grpc = %grpc.local_addr()?, database = %database_url, "user-service listening");
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut http_stop = stop.subscribe();
    let mut grpc_stop = stop.subscribe();
    let http_server = axum::serve(http, app).with_graceful_shutdown(async move {
        let _ = http_stop.recv().await;
    });
    let grpc_server = tonic::transport::Server::builder()
        .add_service(UserServiceServer::new(api::Grpc { db }))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc),
            async move {
                let _ = grpc_stop.recv().await;
            },
        );
    let signal = async move {
        telemetry::shutdown_signal().await;
        info!("shutting down");
        let _ = stop.send(());
    };
    let (http_result, grpc_result, ()) = tokio::join!(http_server, grpc_server, signal);
    http_result?;
    grpc_result?;
    Ok(())
}
