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
//! Items whose SKU starts with `SLOW` take the slow path (a 750 ms shipping quote):
//! the load generator uses it so that the UI has slow traces to find.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use telemetry::db::Db;
use telemetry::env_or;
use tokio::sync::RwLock;
use tonic::transport::Channel as GrpcChannel;
use tracing::{info, warn, Instrument};
use user_proto::user_service_client::UserServiceClient;
use user_proto::GetUserRequest;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    items TEXT NOT NULL,
    total REAL NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id);";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Item {
    sku: String,
    quantity: u32,
    price: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    id: i64,
    user_id: i64,
    items: Vec<Item>,
    total: f64,
    status: String,
}

#[derive(Clone)]
struct AppState {
    db: Db,
    users: UserServiceClient<
        tonic::service::interceptor::InterceptedService<
            GrpcChannel,
            telemetry::grpc::InjectContext,
        >,
    >,
    queue: Arc<Queue>,
}

/// Where `order.created` goes: RabbitMQ (its channel, (re)connected in the
/// background), or, with `AMQP_URL=embedded`, email-service's embedded in-process
/// queue over HTTP (`EMAIL_SERVICE_URL`, default `http://127.0.0.1:3002`).
struct Queue {
    url: String,
    name: String,
    channel: RwLock<Option<Channel>>,
    embedded: Option<(String, reqwest::Client)>,
}

impl Queue {
    async fn connect(&self) -> anyhow::Result<()> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        telemetry::amqp::declare_queue(&channel, &self.name).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *self.channel.write().await = Some(channel);
        info!(queue = %self.name, "connected to RabbitMQ");
        Ok(())
    }

    async fn keep_connected(self: Arc<Self>) {
        if self.embedded.is_some() {
            return;
        }
        loop {
            let connected = matches!(&*self.channel.read().await, Some(channel) if channel.status().connected());
            if !connected {
                if let Err(e) = self.connect().await {
                    warn!(error = %e, "cannot reach RabbitMQ, retrying in 2s");
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn is_connected(&self) -> bool {
        self.embedded.is_some()
            || matches!(&*self.channel.read().await, Some(channel) if channel.status().connected())
    }

    /// Publishes `order.created` in a producer span, waiting for the broker's confirm.
    async fn publish(&self, order: &Order) -> anyhow::Result<()> {
        let span = tracing::info_span!(
            "publish",
            otel.name = %format!("{} publish", self.name),
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "publish",
            messaging.destination.name = %self.name,
            messaging.message.id = %order.id,
        );
        async {
            if let Some((email_url, client)) = &self.embedded {
                return self.publish_embedded(email_url, client, order).await;
            }
            let channel = self
                .channel
                .read()
                .await
                .clone()
                .ok_or_else(|| anyhow::anyhow!("not connected to RabbitMQ"))?;
            let mut headers = FieldTable::default();
            telemetry::amqp::inject_headers(&mut headers);
            let payload = serde_json::to_vec(order)?;
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_message_id(order.id.to_string().into())
                .with_headers(headers);
            let confirm = channel
                .basic_publish(
                    "".into(),
                    self.name.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    properties,
                )
                .await?
                .await?;
            if !confirm.is_ack() {
                anyhow::bail!("RabbitMQ did not confirm the message");
            }
            info!(order.id = order.id, "published order.created");
            Ok(())
        }
        .instrument(span.clone())
        .await
        .inspect_err(|e: &anyhow::Error| telemetry::mark_error(&span, e.to_string()))
    }
}

impl Queue {
    /// Publishes to the embedded queue, with the producer span's trace headers.
    async fn publish_embedded(
        &self,
        email_url: &str,
        client: &reqwest::Client,
        order: &Order,
    ) -> anyhow::Result<()> {
        let mut headers = reqwest::header::HeaderMap::new();
        telemetry::http::inject(&mut headers);
        headers.insert("message-id", reqwest::header::HeaderValue::from(order.id));
        let response = client
            .post(format!("{email_url}/queue/{}", self.name))
            .headers(headers)
            .json(order)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::ACCEPTED {
            anyhow::bail!(
                "the embedded queue refused the message: HTTP {}",
                response.status()
            );
        }
        info!(order.id = order.id, "published order.created");
        Ok(())
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
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
        .map_err(|_| error(StatusCode::NOT_FOUND, format!("user {user_id} not found")))?;
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
                Err(error(
                    StatusCode::NOT_FOUND,
                    format!("user {user_id} not found"),
                ))
            } else {
                warn!(user.id = user_id, error = %status.message(), "user-service unavailable");
                Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("user-service: {}", status.message()),
                ))
            }
        }
    }
}

async fn create_order(
    State(state): State<AppState>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid body: {}", e.body_text()),
            )
        }
    };
    let (user_id, items) = match validate(&body) {
        Ok(valid) => valid,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
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
    let total = items
        .iter()
        .map(|i| i.price * f64::from(i.quantity))
        .sum::<f64>();
    let total = (total * 100.0).round() / 100.0;
    let items_json = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
    let inserted = state
        .db
        .call(
            "INSERT",
            "orders",
            "INSERT INTO orders (user_id, items, total, status) VALUES (?1, ?2, ?3, 'created')",
            move |c| {
                c.execute(
                "INSERT INTO orders (user_id, items, total, status) VALUES (?1, ?2, ?3, 'created')",
                rusqlite::params![user_id, items_json, total],
            )?;
                Ok(c.last_insert_rowid())
            },
        )
        .await;
    let id = match inserted {
        Ok(id) => id,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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

fn row_to_order(row: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    let items: String = row.get(2)?;
    Ok(Order {
        id: row.get(0)?,
        user_id: row.get(1)?,
        items: serde_json::from_str(&items).unwrap_or_default(),
        total: row.get(3)?,
        status: row.get(4)?,
    })
}

#[derive(Deserialize)]
struct ListParams {
    #[serde(rename = "userId")]
    user_id: Option<String>,
}

async fn list_orders(State(state): State<AppState>, Query(params): Query<ListParams>) -> Response {
    let user_id = match params.user_id.as_deref().map(str::parse::<i64>).transpose() {
        Ok(id) => id,
        Err(_) => return error(StatusCode::BAD_REQUEST, "userId: must be an integer"),
    };
    let orders = state
        .db
        .call("SELECT", "orders", "SELECT id, user_id, items, total, status FROM orders WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id DESC LIMIT 100", move |c| {
            let mut statement = c.prepare_cached(
                "SELECT id, user_id, items, total, status FROM orders WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id DESC LIMIT 100",
            )?;
            let rows = statement.query_map([user_id], row_to_order)?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await;
    match orders {
        Ok(orders) => Json(orders).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_order(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("id: '{id}' is not an integer"),
        );
    };
    let order = state
        .db
        .call(
            "SELECT",
            "orders",
            "SELECT id, user_id, items, total, status FROM orders WHERE id = ?1",
            move |c| {
                let mut statement = c.prepare_cached(
                    "SELECT id, user_id, items, total, status FROM orders WHERE id = ?1",
                )?;
                let mut rows = statement.query_map([id], row_to_order)?;
                rows.next().transpose()
            },
        )
        .await;
    match order {
        Ok(Some(order)) => Json(order).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("order {id} not found")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn health(State(state): State<AppState>) -> Response {
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

    let db = Db::open(&database_url, SCHEMA)?;
    let channel = tonic::transport::Endpoint::from_shared(user_grpc.clone())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    let users = UserServiceClient::with_interceptor(channel, telemetry::grpc::InjectContext);
    let embedded = (amqp_url == "embedded").then(|| {
        (
            env_or("EMAIL_SERVICE_URL", "http://127.0.0.1:3002"),
            reqwest::Client::new(),
        )
    });
    if let Some((email_url, _)) = &embedded {
        info!(%email_url, "no RabbitMQ: publishing to email-service's embedded in-process queue");
    }
    let queue = Arc::new(Queue {
        url: amqp_url,
        name: queue_name.clone(),
        channel: RwLock::new(None),
        embedded,
    });
    tokio::spawn(Arc::clone(&queue).keep_connected());

    let app = Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{id}", get(get_order))
        .route("/health", get(health))
        .layer(axum::middleware::from_fn(telemetry::http::trace_requests))
        .with_state(AppState { db, users, queue });
    let listener = tokio::net::TcpListener::bind(&http_addr).await?;
    info!(http = %listener.local_addr()?, user_service = %user_grpc, queue = %queue_name, database = %database_url, "order-service listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(telemetry::shutdown_signal())
        .await?;
    info!("stopped");
    Ok(())
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
