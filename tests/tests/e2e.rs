//! A request through the gateway, followed across every hop: REST, gRPC, SQLite and
//! RabbitMQ, as the collector stores it.

use std::time::Duration;

use e2e::{eventually, rabbitmq_available, spans_of, SpanView, Stack, StackOptions};
use serde_json::{json, Value};

fn find<'a>(
    spans: &'a [SpanView],
    service: &str,
    kind: &str,
    name_part: &str,
) -> Option<&'a SpanView> {
    spans
        .iter()
        .find(|s| s.service == service && s.kind == kind && s.name.contains(name_part))
}

async fn create_user(stack: &Stack) -> i64 {
    let response = stack
        .http
        .post(format!("{}/api/users", stack.gateway))
        .json(
            &json!({ "name": "Ada Lovelace", "email": format!("ada-{}@example.com", stack.queue) }),
        )
        .send()
        .await
        .expect("create user");
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.expect("json");
    user["id"].as_i64().expect("integer id")
}

/// Waits for a trace to hold at least `min_spans` spans.
async fn trace(stack: &Stack, trace_id: &str, min_spans: usize) -> Vec<SpanView> {
    let url = stack.api(&format!("/api/traces/{trace_id}"));
    eventually(Duration::from_secs(20), || async {
        let (status, body) = stack.get_json(&url).await;
        let spans = spans_of(&body["data"][0]);
        (status == 200 && spans.len() >= min_spans).then_some(spans)
    })
    .await
    .unwrap_or_else(|| panic!("trace {trace_id} did not reach {min_spans} spans at {url}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_through_the_gateway_is_one_trace_over_every_hop_with_its_logs() {
    if !rabbitmq_available().await {
        return;
    }
    an_order_is_one_trace(StackOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_export_the_same_trace_over_otlp_grpc() {
    if !rabbitmq_available().await {
        return;
    }
    an_order_is_one_trace(StackOptions {
        grpc: true,
        ..StackOptions::default()
    })
    .await;
}

/// An order through the gateway: one trace over every hop, with its logs.
async fn an_order_is_one_trace(options: StackOptions) {
    let stack = Stack::start(options).await;
    let user_id = create_user(&stack).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = stack
        .http
        .post(format!("{}/api/orders", stack.gateway))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({ "userId": user_id, "items": [{ "sku": "BOOK-1", "quantity": 2, "price": 12.5 }] }))
        .send()
        .await
        .expect("create order");
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.expect("json");
    assert_eq!(order["total"], 25.0);
    assert_eq!(order["status"], "created");

    let spans = trace(&stack, trace_id, 10).await;
    let gateway =
        find(&spans, "gateway", "server", "POST /api/orders").expect("gateway server span");
    assert_eq!(
        gateway.parent.as_deref(),
        Some("00f067aa0ba902b7"),
        "continues the caller's traceparent"
    );
    let proxy = find(&spans, "gateway", "client", "order-service").expect("gateway client span");
    assert_eq!(proxy.parent.as_deref(), Some(gateway.id.as_str()));
    let order_server =
        find(&spans, "order-service", "server", "POST /orders").expect("order-service server span");
    assert_eq!(order_server.parent.as_deref(), Some(proxy.id.as_str()));
    let grpc_client = find(&spans, "order-service", "client", "GetUser").expect("gRPC client span");
    let grpc_server =
        find(&spans, "user-service", "server", "GetUser").expect("user-service gRPC server span");
    assert_eq!(grpc_server.parent.as_deref(), Some(grpc_client.id.as_str()));
    let user_db =
        find(&spans, "user-service", "client", "SELECT users").expect("user-service DB span");
    assert_eq!(user_db.parent.as_deref(), Some(grpc_server.id.as_str()));
    assert!(
        user_db.tags.to_string().contains("db.system.name"),
        "{:?}",
        user_db.tags
    );
    let publish = find(&spans, "order-service", "producer", "publish").expect("publish span");
    let consume = find(&spans, "email-service", "consumer", "process").expect("consume span");
    assert_eq!(
        consume.parent.as_deref(),
        Some(publish.id.as_str()),
        "the consumer continues the producer"
    );
    assert!(
        spans.iter().all(|s| !s.error),
        "no errors in a good order: {spans:#?}"
    );

    // Every service's log lines of this request, by trace id.
    let logs_url = stack.api(&format!("/api/logs?traceID={trace_id}"));
    let logs = eventually(Duration::from_secs(20), || async {
        let (_, body) = stack.get_json(&logs_url).await;
        let services: std::collections::BTreeSet<String> = body["data"]
            .as_array()?
            .iter()
            .filter_map(|l| l["serviceName"].as_str().map(str::to_string))
            .collect();
        (services.len() == 4).then_some(body)
    })
    .await
    .expect("logs of all four services");
    let bodies: Vec<&str> = logs["data"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(|l| l["body"].as_str())
        .collect();
    for expected in [
        "proxied",
        "order created",
        "found user",
        "published order.created",
        "confirmation e-mail sent",
    ] {
        assert!(
            bodies.contains(&expected),
            "missing log '{expected}' in {bodies:?}"
        );
    }

    let (_, emails) = stack.get_json(&format!("{}/emails", stack.email)).await;
    assert_eq!(emails[0]["orderId"], order["id"]);
    assert_eq!(emails[0]["status"], "sent");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_for_an_unknown_user_shows_grpc_not_found_and_the_gateways_404_as_errors() {
    if !rabbitmq_available().await {
        return;
    }
    let stack = Stack::start(StackOptions::default()).await;
    let trace_id = "5af7651916cd43dd8448eb211c80319c";
    let response = stack
        .http
        .post(format!("{}/api/orders", stack.gateway))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .json(&json!({ "userId": 424242, "items": [{ "sku": "BOOK-1", "quantity": 1, "price": 1.0 }] }))
        .send()
        .await
        .expect("order");
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "user 424242 not found");

    let spans = trace(&stack, trace_id, 6).await;
    let grpc_client = find(&spans, "order-service", "client", "GetUser").expect("gRPC client span");
    assert!(grpc_client.error, "{grpc_client:?}");
    assert!(
        grpc_client
            .tags
            .to_string()
            .contains("\"rpc.grpc.status_code\",\"type\":\"int64\",\"value\":5"),
        "{:?}",
        grpc_client.tags
    );
    let grpc_server = find(&spans, "user-service", "server", "GetUser").expect("gRPC server span");
    assert!(grpc_server.error);
    let proxy = find(&spans, "gateway", "client", "order-service").expect("gateway client span");
    assert!(proxy.error, "the gateway's 404 is an error: {proxy:?}");
    assert!(
        proxy.tags.to_string().contains("\"value\":404"),
        "{:?}",
        proxy.tags
    );
    assert!(
        find(&spans, "order-service", "producer", "publish").is_none(),
        "nothing published"
    );

    // The trace is found by searching for errors, as a user would.
    let (_, found) = stack
        .get_json(&stack.api(
            "/api/traces?service=order-service&tags=%7B%22error%22%3A%22true%22%7D&lookback=1h",
        ))
        .await;
    assert_eq!(found["data"][0]["traceID"], trace_id);
    stack.shutdown().await;
}

/// The analysis over many orders finds the demo's two faults: the slow shipping
/// quote of `SLOW-*` items and the N+1 of a `BUNDLE-n` (a query per part; 24
/// parts here, about 200 ms, far above a plain order even on a busy machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analysis_of_many_orders_finds_the_slow_quote_and_the_n_plus_one() {
    if !rabbitmq_available().await {
        return;
    }
    let stack = Stack::start(StackOptions::default()).await;
    let user_id = create_user(&stack).await;
    let skus = ["SLOW-CRATE", "BUNDLE-24"]
        .iter()
        .cycle()
        .take(4)
        .copied()
        .chain(std::iter::repeat_n("BOOK-1", 12));
    for sku in skus {
        let response = stack
            .http
            .post(format!("{}/api/orders", stack.gateway))
            .json(&json!({ "userId": user_id, "items": [{ "sku": sku, "quantity": 1, "price": 1.0 }] }))
            .send()
            .await
            .expect("order");
        assert_eq!(response.status(), 201, "{sku}");
    }
    let analysis = |query: &str| {
        stack.api(&format!(
            "/api/analysis?service=gateway&operation=POST%20%2Fapi%2Forders&lookback=1h&{query}"
        ))
    };
    let findings = |body: &Value| -> Vec<String> {
        body["findings"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };

    // The slowest quarter (the two slow quotes and the two bundles) against the
    // fastest half.
    let url = analysis("slowest=25");
    let body = eventually(Duration::from_secs(20), || async {
        let (status, body) = stack.get_json(&url).await;
        (status == 200 && body["matched"] == 16).then_some(body)
    })
    .await
    .unwrap_or_else(|| panic!("16 orders were not analysed at {url}"));
    let found = findings(&body);
    assert!(
        found[0].starts_with("The slowest 25% spend ")
            && found[0].contains(" more in order-service `quote shipping` than the fastest 50%"),
        "{body:#}"
    );

    // Without the slow quotes, the two slowest are the bundles: their parts are
    // read one query at a time, 24 queries where the others run none.
    let (status, body) = stack
        .get_json(&analysis("maxDuration=500ms&slowest=14"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"]["b"]["traces"], 2, "{body:#}");
    assert!(
        findings(&body)
            .iter()
            .any(|f| f.contains("order-service `SELECT parts`")
                && f.ends_with("where it appears 24 times per trace instead of none")),
        "{body:#}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_while_user_service_is_down_and_closes_when_it_returns() {
    if !rabbitmq_available().await {
        return;
    }
    let mut stack = Stack::start(StackOptions {
        breaker_threshold: 3,
        breaker_open_seconds: 1.0,
        ..StackOptions::default()
    })
    .await;
    let user_id = create_user(&stack).await;
    let user_url = format!("{}/api/users/{user_id}", stack.gateway);
    let health_url = format!("{}/health", stack.gateway);
    stack.service("user-service").stop();

    // Failures until the breaker opens.
    let opened = eventually(Duration::from_secs(20), || async {
        let response = stack.http.get(&user_url).send().await.ok()?;
        (response
            .headers()
            .get("x-circuit-breaker")
            .is_some_and(|v| v == "open"))
        .then_some(response.status().as_u16())
    })
    .await;
    assert_eq!(opened, Some(503), "the breaker opened and answered 503");
    // While open, calls are refused without reaching upstream.
    let (_, before) = stack.get_json(&health_url).await;
    let calls_before = before["upstreams"]["user-service"]["calls"]
        .as_u64()
        .expect("calls");
    assert_eq!(before["upstreams"]["user-service"]["breaker"], "open");
    let response = stack.http.get(&user_url).send().await.expect("request");
    assert_eq!(response.status(), 503);
    let (_, after) = stack.get_json(&health_url).await;
    assert_eq!(
        after["upstreams"]["user-service"]["calls"].as_u64(),
        Some(calls_before),
        "no upstream call while open"
    );
    assert!(
        after["upstreams"]["user-service"]["refused"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );

    // The service returns; after the open period a trial call closes the breaker.
    stack.service("user-service").start();
    let recovered = eventually(Duration::from_secs(30), || async {
        let response = stack.http.get(&user_url).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    assert!(recovered.is_some(), "the gateway serves users again");
    let (_, health) = stack.get_json(&health_url).await;
    assert_eq!(health["upstreams"]["user-service"]["breaker"], "closed");
    assert!(stack
        .service("gateway")
        .log()
        .contains("circuit breaker state changed"));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_not_redelivered_forever() {
    if !rabbitmq_available().await {
        return;
    }
    let stack = Stack::start(StackOptions::default()).await;
    let connection =
        lapin::Connection::connect(&e2e::amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_publish(
            "".into(),
            stack.queue.as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            b"\xff this is not an order",
            lapin::BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let health_url = format!("{}/health", stack.email);
    let dead = eventually(Duration::from_secs(20), || async {
        let (_, health) = stack.get_json(&health_url).await;
        (health["deadLettered"] == 1).then_some(health)
    })
    .await
    .expect("dead-lettered");
    assert_eq!(dead["consumed"], 1);
    // Nothing comes back: after a while it was still consumed once, and it waits in the dead-letter queue.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, health) = stack.get_json(&health_url).await;
    assert_eq!(health["consumed"], 1, "redelivered: {health}");
    let dead_queue = channel
        .queue_declare(
            format!("{}.dead", stack.queue).as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("dead-letter queue");
    assert_eq!(dead_queue.message_count(), 1);
    assert!(stack
        .services
        .iter()
        .any(|s| s.log().contains("poison message")));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rabbitmq_the_embedded_queue_carries_the_trace_to_email_service() {
    let stack = Stack::start(StackOptions {
        embedded_queue: true,
        ..StackOptions::default()
    })
    .await;
    let user_id = create_user(&stack).await;
    let trace_id = "6cf92f3577b34da6a3ce929d0e0e4736";
    let response = stack
        .http
        .post(format!("{}/api/orders", stack.gateway))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({ "userId": user_id, "items": [{ "sku": "FAIL-EMAIL", "quantity": 1, "price": 3.0 }] }))
        .send()
        .await
        .expect("create order");
    assert_eq!(response.status(), 201);

    let spans = trace(&stack, trace_id, 10).await;
    let publish = find(&spans, "order-service", "producer", "publish").expect("publish span");
    let consume = find(&spans, "email-service", "consumer", "process").expect("consume span");
    assert_eq!(
        consume.parent.as_deref(),
        Some(publish.id.as_str()),
        "the consumer continues the producer"
    );
    assert!(
        consume.tags.to_string().contains("in-process"),
        "{:?}",
        consume.tags
    );
    assert!(
        consume.error,
        "a failing e-mail marks the consumer span: {consume:?}"
    );
    let (_, health) = stack.get_json(&format!("{}/health", stack.email)).await;
    assert_eq!(health["queue"], "embedded");
    assert_eq!(health["failed"], 1);

    // A poison message on the embedded queue is dead-lettered too.
    let response = stack
        .http
        .post(format!("{}/queue/{}", stack.email, stack.queue))
        .body("not an order")
        .send()
        .await
        .expect("enqueue");
    assert_eq!(response.status(), 202);
    let dead = eventually(Duration::from_secs(10), || async {
        let (_, health) = stack.get_json(&format!("{}/health", stack.email)).await;
        (health["deadLettered"] == 1).then_some(())
    })
    .await;
    assert!(dead.is_some());
    stack.shutdown().await;
}
