//! The REST handlers (`/orders`, `/orders/{id}`, `/health`), the order's validation,
//! and the user check over gRPC.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use telemetry::db::Db;
use telemetry::http::error_response;
use tonic::transport::Channel as GrpcChannel;
use tracing::{info, warn, Instrument};
use user_proto::user_service_client::UserServiceClient;
use user_proto::GetUserRequest;

use crate::queue::Queue;
use crate::store::{self, Item, Order};

/// user-service's gRPC client, with the trace context injected into every call.
pub(crate) type UsersClient = UserServiceClient<
    tonic::service::interceptor::InterceptedService<GrpcChannel, telemetry::grpc::InjectContext>,
>;

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    /// The parts catalogue (see `store::find_part`).
    pub(crate) catalogue: Db,
    pub(crate) users: UsersClient,
    pub(crate) queue: Arc<Queue>,
}

/// Checks the body field by field; the error names the field at fault.
fn validate(body: &Value) -> Result<(i64, Vec<Item>), String> {
    let user_id = body
        .get("userId")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)
        .ok_or("userId: required, a positive integer")?;
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .ok_or("items: required, an array")?;
    if items.is_empty() {
        return Err("items: at least one item is required".into());
    }
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let sku = item
            .get("sku")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("items[{i}].sku: required, a non-empty string"))?;
        let quantity = item
            .get("quantity")
            .and_then(Value::as_u64)
            .filter(|q| (1..=1000).contains(q))
            .ok_or_else(|| format!("items[{i}].quantity: required, an integer from 1 to 1000"))?;
        let price = item
            .get("price")
            .and_then(Value::as_f64)
            .filter(|p| p.is_finite() && *p >= 0.0)
            .ok_or_else(|| format!("items[{i}].price: required, a non-negative number"))?;
        parsed.push(Item {
            sku: sku.to_string(),
            quantity: quantity as u32,
            price,
        });
    }
    Ok((user_id, parsed))
}

async fn check_user(state: &AppState, user_id: i64) -> Result<(), Response> {
    let span = tracing::info_span!(
        "grpc call",
        otel.name = "user.UserService/GetUser",
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = "user.UserService",
        rpc.method = "GetUser",
        rpc.grpc.status_code = tracing::field::Empty,
    );
    let mut users = state.users.clone();
    let id = i32::try_from(user_id)
        .map_err(|_| error_response(StatusCode::NOT_FOUND, format!("user {user_id} not found")))?;
    let result = users
        .get_user(GetUserRequest { id })
        .instrument(span.clone())
        .await;
    match result {
        Ok(_) => {
            span.record("rpc.grpc.status_code", 0);
            Ok(())
        }
        Err(status) => {
            span.record("rpc.grpc.status_code", status.code() as i32);
            telemetry::mark_error(&span, format!("{:?}: {}", status.code(), status.message()));
            if status.code() == tonic::Code::NotFound {
                warn!(user.id = user_id, "order refused: unknown user");
                Err(error_response(
                    StatusCode::NOT_FOUND,
                    format!("user {user_id} not found"),
                ))
            } else {
                warn!(user.id = user_id, error = %status.message(), "user-service unavailable");
                Err(error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("user-service: {}", status.message()),
                ))
            }
        }
    }
}

pub(crate) async fn create_order(
    State(state): State<AppState>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("invalid body: {}", e.body_text()),
            )
        }
    };
    let (user_id, items) = match validate(&body) {
        Ok(valid) => valid,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    if let Err(response) = check_user(&state, user_id).await {
        return response;
    }
    if items.iter().any(|item| item.sku.starts_with("SLOW")) {
        async {
            info!("quoting shipping for an oversized item (slow path)");
            tokio::time::sleep(Duration::from_millis(750)).await;
        }
        .instrument(tracing::info_span!(
            "quote shipping",
            otel.name = "quote shipping"
        ))
        .await;
    }
    for item in &items {
        let Some(parts) = item.sku.strip_prefix("BUNDLE-") else {
            continue;
        };
        let parts = parts
            .parse::<i64>()
            .unwrap_or(1)
            .clamp(1, store::MAX_BUNDLE_PARTS);
        for part in 1..=parts {
            if let Err(e) = store::find_part(&state.catalogue, part).await {
                return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            }
        }
        info!(sku = %item.sku, parts, "bundle parts checked");
    }
    let total = items
        .iter()
        .map(|i| i.price * f64::from(i.quantity))
        .sum::<f64>();
    let total = (total * 100.0).round() / 100.0;
    let id = match store::insert_order(&state.db, user_id, &items, total).await {
        Ok(id) => id,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let order = Order {
        id,
        user_id,
        items,
        total,
        status: "created".into(),
    };
    info!(order.id = id, user.id = user_id, total, "order created");
    if let Err(e) = state.queue.publish(&order).await {
        // The order is stored; the confirmation e-mail is what is lost. Say so.
        warn!(order.id = id, error = %e, "order.created not published");
    }
    (StatusCode::CREATED, Json(order)).into_response()
}

#[derive(Deserialize)]
pub(crate) struct ListParams {
    #[serde(rename = "userId")]
    user_id: Option<String>,
}

pub(crate) async fn list_orders(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Response {
    let user_id = match params.user_id.as_deref().map(str::parse::<i64>).transpose() {
        Ok(id) => id,
        Err(_) => return error_response(StatusCode::BAD_REQUEST, "userId: must be an integer"),
    };
    match store::list_orders(&state.db, user_id).await {
        Ok(orders) => Json(orders).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) async fn get_order(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("id: '{id}' is not an integer"),
        );
    };
    match store::find_order(&state.db, id).await {
        Ok(Some(order)) => Json(order).into_response(),
        Ok(None) => error_response(StatusCode::NOT_FOUND, format!("order {id} not found")),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let database = state.db.ping().await;
    let queue = state.queue.is_connected().await;
    let body = json!({
        "status": if database && queue { "ok" } else { "degraded" },
        "database": if database { "ok" } else { "unavailable" },
        "rabbitmq": if queue { "connected" } else { "disconnected" },
    });
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field_at_fault() {
        let cases = [
            (json!({}), "userId"),
            (json!({"userId": 1}), "items: required"),
            (json!({"userId": 1, "items": []}), "at least one"),
            (
                json!({"userId": 1, "items": [{"sku": "A", "quantity": 0, "price": 1}]}),
                "items[0].quantity",
            ),
            (
                json!({"userId": 1, "items": [{"sku": "A", "quantity": 1, "price": 1}, {"quantity": 1}]}),
                "items[1].sku",
            ),
            (
                json!({"userId": 1, "items": [{"sku": "A", "quantity": 1, "price": -2}]}),
                "items[0].price",
            ),
        ];
        for (body, field) in cases {
            let message = validate(&body).expect_err(field);
            assert!(message.contains(field), "{body}: {message}");
        }
        let (user, items) =
            validate(&json!({"userId": 3, "items": [{"sku": "A", "quantity": 2, "price": 1.5}]}))
                .expect("valid");
        assert_eq!((user, items.len()), (3, 1));
    }
}
