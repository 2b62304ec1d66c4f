//! The REST handlers (`/users`, `/users/{id}`, `/health`) and the gRPC
//! `UserService.GetUser`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use telemetry::db::Db;
use telemetry::http::error_response;
use tracing::{info, warn, Instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use user_proto::user_service_server::UserService;
use user_proto::{GetUserRequest, GetUserResponse};

use crate::store::{self, User};

#[derive(Deserialize)]
pub(crate) struct NewUser {
    name: Option<String>,
    email: Option<String>,
}

pub(crate) async fn create_user(
    State(db): State<Db>,
    body: Result<Json<NewUser>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("invalid body: {}", e.body_text()),
            )
        }
    };
    let name = body.name.unwrap_or_default().trim().to_string();
    let email = body.email.unwrap_or_default().trim().to_string();
    if name.is_empty() {
        return error_response(StatusCode::BAD_REQUEST, "name: required");
    }
    if !email.contains('@') {
        return error_response(StatusCode::BAD_REQUEST, "email: must be an e-mail address");
    }
    match store::insert_user(&db, name.clone(), email.clone()).await {
        Ok(id) => {
            info!(user.id = id, "created user");
            (StatusCode::CREATED, Json(User { id, name, email })).into_response()
        }
        Err(e) if e.to_string().contains("UNIQUE") => {
            warn!(%email, "user with this email already exists");
            error_response(
                StatusCode::CONFLICT,
                format!("email: {email} is already registered"),
            )
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) async fn list_users(State(db): State<Db>) -> Response {
    match store::list_users(&db).await {
        Ok(users) => Json(users).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) async fn get_user(State(db): State<Db>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("id: '{id}' is not an integer"),
        );
    };
    match store::find_user(&db, id).await {
        Ok(Some(user)) => Json(user).into_response(),
        Ok(None) => {
            info!(user.id = id, "user not found");
            error_response(StatusCode::NOT_FOUND, format!("user {id} not found"))
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) async fn health(State(db): State<Db>) -> Response {
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

/// The gRPC `user.UserService`, over the same database as the REST API.
pub(crate) struct Grpc {
    pub(crate) db: Db,
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
            match store::find_user(&db, i64::from(id)).await {
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
