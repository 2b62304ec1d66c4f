//! Where `order.created` goes: RabbitMQ, or, with `AMQP_URL=embedded`, email-service's
//! embedded in-process queue over HTTP. Either way the message carries the trace
//! context of its producer span.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::RwLock;
use tracing::{info, warn, Instrument};

use crate::store::Order;

/// The queue `order.created` is published to (`ORDER_QUEUE`), and how it is reached.
pub(crate) struct Queue {
    name: String,
    transport: Transport,
}

enum Transport {
    /// RabbitMQ: its channel, (re)connected in the background by
    /// [`Queue::keep_connected`].
    RabbitMq(RabbitMq),
    /// email-service's embedded in-process queue over HTTP (`EMAIL_SERVICE_URL`,
    /// default `http://127.0.0.1:3002`).
    Embedded(Embedded),
}

struct RabbitMq {
    url: String,
    channel: RwLock<Option<Channel>>,
}

struct Embedded {
    email_url: String,
    client: reqwest::Client,
}

impl Queue {
    /// Publishes to RabbitMQ at `url`, once [`Queue::keep_connected`] has connected.
    pub(crate) fn rabbitmq(name: String, url: String) -> Self {
        Queue {
            name,
            transport: Transport::RabbitMq(RabbitMq {
                url,
                channel: RwLock::new(None),
            }),
        }
    }

    /// Publishes to email-service's embedded queue at `email_url`.
    pub(crate) fn embedded(name: String, email_url: String) -> Self {
        Queue {
            name,
            transport: Transport::Embedded(Embedded {
                email_url,
                client: reqwest::Client::new(),
            }),
        }
    }

    /// Connects to RabbitMQ and reconnects when the connection drops, checking every
    /// 2 s; returns at once for the embedded queue (nothing to connect).
    pub(crate) async fn keep_connected(self: Arc<Self>) {
        let Transport::RabbitMq(rabbitmq) = &self.transport else {
            return;
        };
        loop {
            if !rabbitmq.is_connected().await {
                if let Err(e) = rabbitmq.connect(&self.name).await {
                    warn!(error = %e, "cannot reach RabbitMQ, retrying in 2s");
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Whether a publish can go out now (always, for the embedded queue).
    pub(crate) async fn is_connected(&self) -> bool {
        match &self.transport {
            Transport::RabbitMq(rabbitmq) => rabbitmq.is_connected().await,
            Transport::Embedded(_) => true,
        }
    }

    /// Publishes `order.created` in a producer span: with RabbitMQ, waiting for the
    /// broker's confirm; with the embedded queue, for its 202.
    pub(crate) async fn publish(&self, order: &Order) -> anyhow::Result<()> {
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
            match &self.transport {
                Transport::RabbitMq(rabbitmq) => rabbitmq.publish(&self.name, order).await,
                Transport::Embedded(embedded) => embedded.publish(&self.name, order).await,
            }
        }
        .instrument(span.clone())
        .await
        .inspect_err(|e: &anyhow::Error| telemetry::mark_error(&span, e.to_string()))
    }
}

impl RabbitMq {
    async fn connect(&self, queue: &str) -> anyhow::Result<()> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        telemetry::amqp::declare_queue(&channel, queue).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *self.channel.write().await = Some(channel);
        info!(queue = %queue, "connected to RabbitMQ");
        Ok(())
    }

    async fn is_connected(&self) -> bool {
        matches!(&*self.channel.read().await, Some(channel) if channel.status().connected())
    }

    async fn publish(&self, queue: &str, order: &Order) -> anyhow::Result<()> {
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
                queue.into(),
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
}

impl Embedded {
    /// Posts to the embedded queue, with the producer span's trace headers.
    async fn publish(&self, queue: &str, order: &Order) -> anyhow::Result<()> {
        let mut headers = reqwest::header::HeaderMap::new();
        telemetry::http::inject(&mut headers);
        headers.insert("message-id", reqwest::header::HeaderValue::from(order.id));
        let response = self
            .client
            .post(format!("{}/queue/{queue}", self.email_url))
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
