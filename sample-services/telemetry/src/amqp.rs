//! AMQP: trace context in message headers, so a consumer's span continues the
//! producer's trace.

use lapin::types::{AMQPValue, FieldTable, ShortString};
use opentelemetry::propagation::Injector;
use opentelemetry::Context;

struct TableInjector<'a>(&'a mut FieldTable);

impl Injector for TableInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(
            ShortString::from(key.to_string()),
            AMQPValue::LongString(value.into()),
        );
    }
}

/// Message headers carrying the current span's trace context.
pub fn inject_headers(headers: &mut FieldTable) {
    super::inject_current(&mut TableInjector(headers));
}

/// The producer's context from a message's headers.
pub fn extract(headers: Option<&FieldTable>) -> Context {
    let mut pairs = Vec::new();
    if let Some(headers) = headers {
        for (key, value) in headers.inner() {
            let text = match value {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).to_string(),
                AMQPValue::ShortString(s) => s.as_str().to_string(),
                _ => continue,
            };
            pairs.push((key.as_str().to_string(), text));
        }
    }
    super::extract_pairs(&pairs)
}

/// Declares `queue` (durable) and its dead-letter queue `{queue}.dead`: a message
/// the consumer rejects without requeue goes there instead of looping.
pub async fn declare_queue(channel: &lapin::Channel, queue: &str) -> lapin::Result<()> {
    use lapin::options::QueueDeclareOptions;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let dead = format!("{queue}.dead");
    channel
        .queue_declare(dead.as_str().into(), durable, FieldTable::default())
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(dead.into()),
    );
    channel
        .queue_declare(queue.into(), durable, arguments)
        .await?;
    Ok(())
}
