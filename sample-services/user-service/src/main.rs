//! user-service: users over REST (`POST /users`, `GET /users`, `GET /users/{id}`) on
//! `HTTP_ADDR` (default `0.0.0.0:3000`) and gRPC `UserService.GetUser` on `GRPC_ADDR`
//! (default `0.0.0.0:50051`), stored in its own SQLite database (`DATABASE_URL`,
//! default `sqlite:user-service.db`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use telemetry::db::Db;
use telemetry::env_or;
use tracing::{info, warn, Instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use user_proto::user_service_server::{UserService, UserServiceServer};
use user_proto::{GetUserRequest, GetUserResponse};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE
);";

#[derive(Clone, Debug, serde::Serialize)]
struct User {
    id: i64,
    name: String,
    email: String,
}

async fn find_user(db: &Db, id: i64) -> anyhow::Result<Option<User>> {
    db.call(
        "SELECT",
        "users",
        "SELECT id, name, email FROM users WHERE id = ?1",
        move |c| {
            let mut statement =
                c.prepare_cached("SELECT id, name, email FROM users WHERE id = ?1")?;
            let mut rows = statement.query_map([id], |row| {
                Ok(User {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    email: row.get(2)?,
                })
            })?;
            rows.next().transpose()
        },
    )
    .await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

#[derive(Deserialize)]
struct NewUser {
    name: Option<String>,
    email: Option<String>,
}

async fn create_user(
    State(db): State<Db>,
    body: Result<Json<NewUser>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid body: {}", e.body_text()),
            )
        }
    };
    let name = body.name.unwrap_or_default().trim().to_string();
    let email = body.email.unwrap_or_default().trim().to_string();
    if name.is_empty() {
        return error(StatusCode::BAD_REQUEST, "name: required");
    }
    if !email.contains('@') {
        return error(StatusCode::BAD_REQUEST, "email: must be an e-mail address");
    }
    let (n, e) = (name.clone(), email.clone());
    let result = db
        .call(
            "INSERT",
            "users",
            "INSERT INTO users (name, email) VALUES (?1, ?2)",
            move |c| {
                c.execute("INSERT INTO users (name, email) VALUES (?1, ?2)", [&n, &e])?;
                Ok(c.last_insert_rowid())
            },
        )
        .await;
    match result {
        Ok(id) => {
            info!(user.id = id, "created user");
            (StatusCode::CREATED, Json(User { id, name, email })).into_response()
        }
        Err(e) if e.to_string().contains("UNIQUE") => {
            warn!(%email, "user with this email already exists");
            error(
                StatusCode::CONFLICT,
                format!("email: {email} is already registered"),
            )
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn list_users(State(db): State<Db>) -> Response {
    let users = db
        .call(
            "SELECT",
            "users",
            "SELECT id, name, email FROM users ORDER BY id LIMIT 1000",
            |c| {
                let mut statement =
                    c.prepare_cached("SELECT id, name, email FROM users ORDER BY id LIMIT 1000")?;
                let rows = statement.query_map([], |row| {
                    Ok(User {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        email: row.get(2)?,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            },
        )
        .await;
    match users {
        Ok(users) => Json(users).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_user(State(db): State<Db>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("id: '{id}' is not an integer"),
        );
    };
    match find_user(&db, id).await {
        Ok(Some(user)) => Json(user).into_response(),
        Ok(None) => {
            info!(user.id = id, "user not found");
            error(StatusCode::NOT_FOUND, format!("user {id} not found"))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn health(State(db): State<Db>) -> Response {
    if db.ping().await {
        Json(json!({ "status": "ok", "database": "ok" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "degraded", "database": "unavailable" })),
        )
            .into_response()
    }
}

struct Grpc {
    db: Db,
}

#[tonic::async_trait]
impl UserService for Grpc {
    async fn get_user(
        &self,
        request: tonic::Request<GetUserRequest>,
    ) -> Result<tonic::Response<GetUserResponse>, tonic::Status> {
        let span = tracing::info_span!(
            "grpc request",
            otel.name = "user.UserService/GetUser",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = "user.UserService",
            rpc.method = "GetUser",
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let _ = span.set_parent(telemetry::grpc::extract(request.metadata()));
        let id = request.into_inner().id;
        let db = self.db.clone();
        let outcome = async move {
            match find_user(&db, i64::from(id)).await {
                Ok(Some(user)) => {
                    info!(user.id = id, "found user");
                    Ok(GetUserResponse {
                        id,
                        name: user.name,
                        email: user.email,
                    })
                }
                Ok(None) => {
                    warn!(user.id = id, "user not found");
                    Err(tonic::Status::not_found(format!("user {id} not found")))
                }
                Err(e) => Err(tonic::Status::internal(e.to_string())),
            }
        }
        .instrument(span.clone())
        .await;
        match &outcome {
            Ok(_) => span.record("rpc.grpc.status_code", 0),
            Err(status) => {
                span.record("rpc.grpc.status_code", status.code() as i32);
                telemetry::mark_error(&span, status.message().to_string());
                &span
            }
        };
        outcome.map(tonic::Response::new)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::run("user-service", env!("CARGO_PKG_VERSION"), run).await
}

async fn run() -> anyhow::Result<()> {
    let http_addr = env_or("HTTP_ADDR", "0.0.0.0:3000");
    let grpc_addr = env_or("GRPC_ADDR", "0.0.0.0:50051");
    let database_url = env_or("DATABASE_URL", "sqlite:user-service.db");
    let db = Db::open(&database_url, SCHEMA)?;
    let app = Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", get(get_user))
        .route("/health", get(health))
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
        .add_service(UserServiceServer::new(Grpc { db }))
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
