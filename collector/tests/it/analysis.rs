//! Answers over many requests, on a known data set with exact numbers: service
//! health from spans (`/api/service-metrics`, Jaeger's SPM endpoints as the
//! Jaeger UI's Monitor tab sends them) and trace summaries (`/api/v3/trace-summaries`
//! as the Jaeger UI 2.19+ search page sends it), the log volume and log patterns.

use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use serde_json::Value;

use crate::common::*;

const MS: u64 = 1_000_000;
const MINUTE: u64 = 60_000 * MS;

fn failed(mut span: Span) -> Span {
    span.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    span
}

fn kind(mut span: Span, kind: i32) -> Span {
    span.kind = kind;
    span
}

/// Two minutes of checkouts from `base` (a whole minute):
/// - minute 0: traces 1-4, gateway `GET /checkout` (server) of 10, 20, 30, 40 ms,
///   each calling order-service `POST /orders` (server, 5 ms); trace 3's order
///   span failed; trace 1's gateway also has a client span (`HTTP POST`, 6 ms);
/// - minute 1: traces 5-6, gateway 100 and 200 ms calling order-service (50 ms);
///   trace 6's gateway span failed; trace 5 also has an order-service internal
///   span whose parent never came; trace 7 is email-service alone, internal spans
///   only: a root `send` of 7 ms and its child of 3 ms.
async fn seed(server: &TestServer, base: u64) {
    let checkouts: [(u8, u64, u64); 6] = [
        (1, 0, 10),
        (2, 10_000, 20),
        (3, 20_000, 30),
        (4, 30_000, 40),
        (5, 60_000, 100),
        (6, 70_000, 200),
    ];
    for (n, offset_ms, gateway_ms) in checkouts {
        let trace = [n; 16];
        let start = base + offset_ms * MS;
        let order_ms = if n <= 4 { 5 } else { 50 };
        let mut gateway = vec![span(
            trace,
            1,
            None,
            "GET /checkout",
            start,
            gateway_ms * MS,
        )];
        if n == 6 {
            gateway[0] = failed(gateway[0].clone());
        }
        if n == 1 {
            gateway.push(kind(
                span(trace, 3, Some(1), "HTTP POST", start + MS, 6 * MS),
                3,
            ));
        }
        let mut order = vec![span(
            trace,
            2,
            Some(1),
            "POST /orders",
            start + 2 * MS,
            order_ms * MS,
        )];
        if n == 3 {
            order[0] = failed(order[0].clone());
        }
        if n == 5 {
            order.push(kind(
                span(trace, 4, Some(99), "SELECT", start + 3 * MS, MS),
                1,
            ));
        }
        server
            .export("/v1/traces", &traces_request("gateway", gateway))
            .await;
        server
            .export("/v1/traces", &traces_request("order-service", order))
            .await;
    }
    let trace = [7; 16];
    let start = base + 80_000 * MS;
    let email = vec![
        kind(span(trace, 1, None, "send", start, 7 * MS), 1),
        kind(span(trace, 2, Some(1), "render", start + MS, 3 * MS), 1),
    ];
    server
        .export("/v1/traces", &traces_request("email-service", email))
        .await;
    server.flush().await;
}

/// A whole minute, half an hour ago.
fn base() -> u64 {
    let past = now_nanos() - 30 * MINUTE;
    past - past % MINUTE
}

/// `(calls, errors, p50, p95, p99)` of a figures object (latencies in ms).
fn figures(value: &Value) -> (u64, u64, Option<f64>, Option<f64>, Option<f64>) {
    (
        value["calls"].as_u64().unwrap_or(u64::MAX),
        value["errors"].as_u64().unwrap_or(u64::MAX),
        value["p50"].as_f64(),
        value["p95"].as_f64(),
        value["p99"].as_f64(),
    )
}

fn series<'a>(body: &'a Value, service: &str, operation: Option<&str>) -> &'a Value {
    body["series"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|s| s["service"] == service && s["operation"].as_str() == operation)
        })
        .unwrap_or_else(|| panic!("no series {service} {operation:?} in {body}"))
}

#[tokio::test]
async fn service_health_counts_requests_errors_and_latencies_per_bucket() {
    let server = TestServer::start().await;
    let base = base();
    seed(&server, base).await;
    let range = format!(
        "start={}&end={}&step=1m",
        base / 1000,
        (base + 2 * MINUTE) / 1000 - 1
    );

    let (status, body) = server.get(&format!("/api/service-metrics?{range}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["step"], 60_000_000_000u64);
    assert_eq!(body["start"], base);
    assert_eq!(body["series"].as_array().map(Vec::len), Some(3), "{body}");
    // Server spans only: the gateway's client span is not a request.
    let gateway = series(&body, "gateway", None);
    assert_eq!(
        figures(&gateway["total"]),
        (6, 1, Some(30.0), Some(200.0), Some(200.0))
    );
    let points: Vec<_> = gateway["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(figures)
        .collect();
    assert_eq!(
        points,
        [
            (4, 0, Some(20.0), Some(40.0), Some(40.0)),
            (2, 1, Some(100.0), Some(200.0), Some(200.0)),
        ]
    );
    assert_eq!(gateway["points"][0]["time"], base);
    assert_eq!(gateway["points"][1]["errorRate"], 0.5);
    assert_eq!(gateway["points"][0]["rate"].as_f64(), Some(4.0 / 60.0));
    let orders = series(&body, "order-service", None);
    assert_eq!(
        figures(&orders["total"]),
        (6, 1, Some(5.0), Some(50.0), Some(50.0))
    );
    // A service without server or consumer spans is measured by its roots.
    let email = series(&body, "email-service", None);
    assert_eq!(
        figures(&email["total"]),
        (1, 0, Some(7.0), Some(7.0), Some(7.0))
    );
    assert_eq!(email["points"][0]["errorRate"], Value::Null);
    assert_eq!(email["points"][0]["p50"], Value::Null);
    // The segment's rollup is kept, and `/metrics` counts its bytes (the cache is
    // the process's: other tests' rollups may be in it too).
    assert!(metric(&server, "hopline_cache_bytes{cache=\"rollups\"}").await > 0.0);

    // Per operation of one service; one operation; other span kinds.
    let (status, body) = server
        .get(&format!(
            "/api/service-metrics?{range}&service=gateway&groupByOperation=true"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["series"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(
        figures(&series(&body, "gateway", Some("GET /checkout"))["total"]).0,
        6
    );
    let (_, body) = server
        .get(&format!(
            "/api/service-metrics?{range}&service=gateway&operation=HTTP%20POST&spanKind=client"
        ))
        .await;
    assert_eq!(
        figures(&series(&body, "gateway", Some("HTTP POST"))["total"]),
        (1, 0, Some(6.0), Some(6.0), Some(6.0))
    );

    // Per edge of the service map: calls, failures (either side) and the
    // callee's latency.
    let (status, body) = server
        .get(&format!(
            "/api/dependencies?endTs={}&lookback=7200000",
            (base + 2 * MINUTE) / MS
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        serde_json::json!([{
            "parent": "gateway", "child": "order-service", "callCount": 6, "errorCount": 2,
            "p50": 5.0, "p95": 50.0, "p99": 50.0,
        }])
    );

    // Jaeger's SPM endpoints, as the Monitor tab asks: a point every minute
    // over the minute before it (ratePer), three points for two minutes.
    let end_ms = (base + 2 * MINUTE) / MS;
    let jaeger = |metric: &str, extra: &str| {
        format!(
            "/api/metrics/{metric}?service=gateway&endTs={end_ms}&lookback=120000&quantile=0.95&ratePer=60000&spanKind=server&step=60000{extra}"
        )
    };
    let values = |body: &Value| -> Vec<Value> {
        body["metrics"][0]["metricPoints"]
            .as_array()
            .map(|points| {
                points
                    .iter()
                    .map(|p| p["gaugeValue"]["doubleValue"].clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (status, body) = server.get(&jaeger("calls", "")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "service_call_rate");
    assert_eq!(body["type"], "GAUGE");
    assert_eq!(
        body["metrics"][0]["labels"],
        serde_json::json!([{ "name": "service_name", "value": "gateway" }])
    );
    assert_eq!(
        values(&body),
        [
            serde_json::json!(0.0),
            serde_json::json!(4.0 / 60.0),
            serde_json::json!(2.0 / 60.0)
        ]
    );
    let timestamps: Vec<&str> = body["metrics"][0]["metricPoints"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p["timestamp"].as_str())
        .collect();
    assert_eq!(timestamps.len(), 3);
    assert!(
        timestamps.iter().all(|t| t.ends_with(":00Z")),
        "{timestamps:?}"
    );

    let (_, body) = server.get(&jaeger("errors", "")).await;
    assert_eq!(body["name"], "service_error_rate");
    assert_eq!(
        values(&body),
        [serde_json::json!("NaN"), 0.0.into(), 0.5.into()]
    );

    let (_, body) = server.get(&jaeger("latencies", "")).await;
    assert_eq!(body["name"], "service_latencies");
    assert_eq!(
        values(&body),
        [serde_json::json!("NaN"), 40.0.into(), 200.0.into()]
    );

    let (_, body) = server.get(&jaeger("calls", "&groupByOperation=true")).await;
    assert_eq!(body["name"], "service_operation_call_rate");
    assert_eq!(
        body["metrics"][0]["labels"][1],
        serde_json::json!({ "name": "operation", "value": "GET /checkout" })
    );

    // Steps and windows near the largest times do not overflow.
    let (status, body) = server
        .get("/api/metrics/calls?service=gateway&lookback=1&step=9223372036855&ratePer=18446744073709551615")
        .await;
    assert_eq!(status, 200, "{body}");

    // An unknown service: no series, not an error (the Monitor tab says "No data").
    let (status, body) = server
        .get(&format!(
            "/api/metrics/latencies?service=nobody&endTs={end_ms}&lookback=120000&quantile=0.5&step=60000"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metrics"], serde_json::json!([]));
    server.hopline.shutdown().await;
}

#[tokio::test]
async fn trace_summaries_answer_the_jaeger_ui_search_from_columns() {
    let server = TestServer::start().await;
    let base = base();
    seed(&server, base).await;
    // The request shape of jaeger-ui 2.19+: camelCase names, ISO times.
    let window = format!(
        "query.startTimeMin={}&query.startTimeMax={}",
        urlencode(&rfc3339(base - MINUTE)),
        urlencode(&rfc3339(base + 3 * MINUTE)),
    );
    let (status, body) = server
        .get(&format!(
            "/api/v3/trace-summaries?query.serviceName=gateway&{window}&query.searchDepth=2"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let summaries = body["summaries"].as_array().expect("summaries");
    let ids: Vec<&str> = summaries
        .iter()
        .filter_map(|s| s["traceId"].as_str())
        .collect();
    assert_eq!(ids, [hex(&[6; 16]), hex(&[5; 16])]);
    // The search read the segment's table of trace ids, and keeps it.
    assert!(metric(&server, "hopline_cache_bytes{cache=\"trace_ids\"}").await > 0.0);
    let start = base + 70_000 * MS;
    assert_eq!(
        summaries[0],
        serde_json::json!({
            "traceId": hex(&[6; 16]),
            "rootServiceName": "gateway",
            "rootOperationName": "GET /checkout",
            "minStartTimeUnixNano": start.to_string(),
            "maxEndTimeUnixNano": (start + 200 * MS).to_string(),
            "spanCount": 2,
            "errorSpanCount": 1,
            "orphanSpanCount": 0,
            "services": [
                { "name": "gateway", "spanCount": 1, "errorSpanCount": 1 },
                { "name": "order-service", "spanCount": 1, "errorSpanCount": 0 },
            ],
        })
    );
    assert_eq!(summaries[1]["spanCount"], 3);
    assert_eq!(summaries[1]["orphanSpanCount"], 1);

    // All services (the UI leaves the service out), a duration as the form
    // takes it, and the snake_case names of the proto.
    let (status, body) = server
        .get(&format!(
            "/api/v3/trace-summaries?{window}&query.searchDepth=20"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summaries"].as_array().map(Vec::len), Some(7));
    let email = &body["summaries"][0];
    assert_eq!(email["traceId"], hex(&[7; 16]));
    assert_eq!(
        (&email["rootServiceName"], &email["rootOperationName"]),
        (&"email-service".into(), &"send".into())
    );
    let (_, body) = server
        .get(&format!(
            "/api/v3/trace-summaries?query.service_name=gateway&{window}&query.durationMin=150ms"
        ))
        .await;
    let ids: Vec<&str> = body["summaries"]
        .as_array()
        .expect("summaries")
        .iter()
        .filter_map(|s| s["traceId"].as_str())
        .collect();
    assert_eq!(ids, [hex(&[6; 16])]);
    server.hopline.shutdown().await;
}

/// Twenty checkouts through gateway `POST /api/orders` (20 ms), each calling
/// order-service `POST /orders`, which runs `SELECT users` once (1 ms): traces
/// 1-16 so; 17 and 18 run `SELECT users` 14 times in a row (7 ms each: an N+1,
/// 120 ms in all); 19 and 20 wait 750 ms for `quote shipping` (800 ms in all).
/// The slow four carry `deploy=canary`, the rest `deploy=stable`.
async fn seed_checkouts(server: &TestServer, base: u64) {
    for n in 1..=20u8 {
        let trace = [n; 16];
        let start = base + u64::from(n) * 1000 * MS;
        let total_ms = match n {
            17 | 18 => 120,
            19 | 20 => 800,
            _ => 20,
        };
        let mut gateway = span(trace, 1, None, "POST /api/orders", start, total_ms * MS);
        let deploy = if n >= 17 { "canary" } else { "stable" };
        gateway.attributes.push(string_kv("deploy", deploy));
        let mut order = vec![span(
            trace,
            2,
            Some(1),
            "POST /orders",
            start + 2 * MS,
            (total_ms - 10) * MS,
        )];
        let selects = if n == 17 || n == 18 { 14 } else { 1 };
        let select_ms = if selects > 1 { 7 } else { 1 };
        for i in 0..selects {
            order.push(kind(
                span(
                    trace,
                    10 + i,
                    Some(2),
                    "SELECT users",
                    start + (3 + u64::from(i) * select_ms) * MS,
                    select_ms * MS,
                ),
                3,
            ));
        }
        if n >= 19 {
            order.push(kind(
                span(
                    trace,
                    30,
                    Some(2),
                    "quote shipping",
                    start + 5 * MS,
                    750 * MS,
                ),
                1,
            ));
        }
        server
            .export("/v1/traces", &traces_request("gateway", vec![gateway]))
            .await;
        server
            .export("/v1/traces", &traces_request("order-service", order))
            .await;
    }
    server.flush().await;
}

#[tokio::test]
async fn the_analysis_names_what_makes_the_slow_traces_slow() {
    let server = TestServer::start().await;
    let base = base();
    seed_checkouts(&server, base).await;
    let window = format!(
        "service=gateway&operation={}&start={}&end={}",
        urlencode("POST /api/orders"),
        base / 1000,
        (base + MINUTE) / 1000
    );
    let (status, body) = server
        .get(&format!("/api/analysis?{window}&slowest=20"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], 20);
    let ids = |list: &Value| -> Vec<u8> {
        list.as_array()
            .expect("ids")
            .iter()
            .map(|id| u8::from_str_radix(&id.as_str().expect("hex")[..2], 16).expect("hex"))
            .collect()
    };
    let (a, b) = (&body["groups"]["a"], &body["groups"]["b"]);
    assert_eq!(
        (a["label"].as_str(), a["traces"].as_u64()),
        (Some("the fastest 50%"), Some(10))
    );
    assert_eq!(
        (b["label"].as_str(), b["traces"].as_u64()),
        (Some("the slowest 20%"), Some(4))
    );
    assert_eq!(
        a["durationMs"],
        serde_json::json!({ "mean": 20.0, "p50": 20.0, "p95": 20.0 })
    );
    assert_eq!(b["durationMs"]["mean"], 460.0);
    assert_eq!(ids(&b["examples"]), [20, 19, 18]);

    // Critical path per trace: a fast one spends 10 ms in the gateway, 9 in
    // order-service and 1 in the query; an N+1 one 98 ms in queries, 12 in
    // order-service; a quote one 750 ms quoting, 39 in order-service, 1 querying.
    assert_eq!(
        body["findings"],
        serde_json::json!([
            "The slowest 20% spend 375 ms more in order-service `quote shipping` than the \
             fastest 50%, where it appears 0.5 times per trace instead of none",
            "The slowest 20% spend 49 ms more in order-service `SELECT users` than the \
             fastest 50%, where it appears 7.5 times per trace instead of once",
            "deploy=canary is on 100% of the slowest 20% and 0% of the fastest 50%",
        ]),
        "{body:#}"
    );
    let paths = body["paths"].as_array().expect("paths");
    let keys: Vec<&str> = paths.iter().filter_map(|p| p["path"].as_str()).collect();
    let root = "gateway: POST /api/orders";
    let order = format!("{root} › order-service: POST /orders");
    assert_eq!(
        keys,
        [
            format!("{order} › order-service: quote shipping"),
            format!("{order} › order-service: SELECT users"),
            order.clone(),
            root.to_string(),
        ]
    );
    let select = &paths[1];
    assert_eq!(select["criticalDeltaMs"], 48.5);
    assert_eq!(
        (
            &select["a"]["traces"],
            &select["a"]["spansPerTrace"],
            &select["a"]["criticalMs"]
        ),
        (
            &serde_json::json!(10),
            &serde_json::json!(1.0),
            &serde_json::json!(1.0)
        )
    );
    let slow = &select["b"];
    assert_eq!(
        (
            slow["traces"].as_u64(),
            slow["spansPerTrace"].as_f64(),
            slow["criticalMs"].as_f64(),
            slow["criticalShare"].as_f64(),
            slow["selfMeanMs"].as_f64(),
            slow["selfP95Ms"].as_f64(),
        ),
        (
            Some(4),
            Some(7.5),
            Some(49.5),
            Some(0.108),
            Some(49.5),
            Some(98.0)
        )
    );
    assert_eq!(ids(&slow["examples"]), [18, 17, 20]);
    assert_eq!(paths[3]["criticalDeltaMs"], 0.0);
    assert_eq!(body["attributes"][0]["key"], "deploy");
    assert_eq!(
        body["attributes"][0]["b"],
        serde_json::json!({ "traces": 4, "share": 1.0 })
    );

    // Two values of an attribute: the sixteen stable against the four canaries.
    let (status, body) = server
        .get(&format!(
            "/api/analysis?{window}&group=attribute&attribute=deploy&a=stable&b=canary"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"]["a"]["traces"], 16);
    assert_eq!(body["groups"]["b"]["traces"], 4);
    assert_eq!(body["groups"]["b"]["label"], "traces with deploy=canary");
    assert_eq!(
        body["attributes"],
        serde_json::json!([]),
        "the grouping key is not a finding"
    );
    assert_eq!(
        body["paths"][0]["path"],
        format!("{order} › order-service: quote shipping")
    );

    // The range against the minute before it, where nothing ran.
    let (status, body) = server
        .get(&format!("/api/analysis?{window}&group=time"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"]["a"]["traces"], 0);
    assert_eq!(body["groups"]["b"]["traces"], 20);
    assert_eq!(body["findings"], serde_json::json!([]));

    for (query, error) in [
        ("group=slowest", "invalid group 'slowest'"),
        ("slowest=0", "invalid slowest '0'"),
        ("fastest=80", "invalid fastest '80'"),
        (
            "group=attribute&attribute=deploy&a=x",
            "group=attribute needs 'b'",
        ),
        (
            "group=attribute&attribute=deploy&a=x&b=x",
            "the two values to compare are the same",
        ),
        (
            "group=time&baselineStart=20&baselineEnd=10",
            "baselineStart (20µs) is after baselineEnd",
        ),
        ("traceID=0102", "unknown query parameter 'traceID'"),
    ] {
        let (status, body) = server.get(&format!("/api/analysis?{window}&{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.to_string().contains(error), "{query}: {body}");
    }
    server.hopline.shutdown().await;
}

#[tokio::test]
async fn the_log_volume_counts_every_matching_line_per_bucket_and_level() {
    let server = TestServer::start().await;
    let base = base();
    // (seconds after base, severity number, service)
    let lines: [(u64, i32, &str); 8] = [
        (10, 9, "api"),
        (11, 10, "api"),
        (12, 9, "worker"),
        (20, 17, "api"),
        (70, 13, "api"),
        (71, 14, "worker"),
        (75, 0, "api"),
        (130, 5, "api"),
    ];
    for (second, severity, service) in lines {
        let record = log_record(None, base + second * 1000 * MS, severity, "a line");
        server
            .export("/v1/logs", &logs_request(service, vec![record]))
            .await;
    }
    server.flush().await;
    let window = format!(
        "start={}&end={}&step=1m",
        base / 1000,
        (base + 3 * MINUTE) / 1000 - 1
    );
    let (status, body) = server.get(&format!("/api/logs/volume?{window}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["levels"],
        serde_json::json!([
            "unspecified",
            "trace",
            "debug",
            "info",
            "warn",
            "error",
            "fatal"
        ])
    );
    assert_eq!(
        (body["start"].as_u64(), body["step"].as_u64()),
        (Some(base), Some(MINUTE))
    );
    assert_eq!(body["total"], 8);
    let counts: Vec<&Value> = body["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| &b["counts"])
        .collect();
    assert_eq!(
        counts,
        [
            &serde_json::json!([0, 0, 0, 3, 0, 1, 0]),
            &serde_json::json!([1, 0, 0, 0, 2, 0, 0]),
            &serde_json::json!([0, 0, 1, 0, 0, 0, 0]),
        ]
    );
    assert_eq!(body["buckets"][1]["time"], base + MINUTE);
    assert_eq!(body["buckets"][1]["total"], 3);

    // The search's filters narrow it, as they narrow the lines listed.
    let (status, body) = server
        .get(&format!(
            "/api/logs/volume?{window}&service=api&minSeverity=warn"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let totals: Vec<u64> = body["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter_map(|b| b["total"].as_u64())
        .collect();
    assert_eq!(totals, [1, 1, 0]);

    for (query, error) in [
        ("step=0", "invalid step '0'"),
        ("step=soon", "invalid step 'soon'"),
        ("step=1ms&lookback=7d", "buckets; at most"),
        ("query=(", "query"),
    ] {
        let (status, body) = server.get(&format!("/api/logs/volume?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.to_string().contains(error), "{query}: {body}");
    }
    server.hopline.shutdown().await;
}

#[tokio::test]
async fn log_patterns_count_each_template_over_time_against_the_range_before() {
    let server = TestServer::start().await;
    let base = base();
    // (seconds after base, severity number, body); the range asked is minutes 1
    // and 2, the range before it minutes -1 and 0.
    let lines: [(u64, i32, &str); 9] = [
        (10, 9, "shutting down"),
        (20, 9, "cache warmed in 12ms"),
        (70, 9, "order 101 placed for 3 items"),
        (75, 9, "order 102 placed for 1 items"),
        (80, 17, r#"payment declined for user "ada""#),
        (85, 17, r#"payment declined for user "bob lee""#),
        (90, 9, "cache warmed in 3.5ms"),
        (100, 13, "cache warmed in 250µs"),
        (130, 17, "order 7 placed for 12 items"),
    ];
    for (second, severity, body) in lines {
        let record = log_record(None, base + second * 1000 * MS, severity, body);
        server
            .export("/v1/logs", &logs_request("api", vec![record]))
            .await;
    }
    server.flush().await;
    let window = format!(
        "start={}&end={}",
        (base + MINUTE) / 1000,
        (base + 3 * MINUTE) / 1000 - 1
    );
    let (status, body) = server
        .get(&format!("/api/logs/patterns?{window}&step=1m"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 7, "{body}");
    assert_eq!(body["patternCount"], 3);
    assert_eq!(body["unpatterned"], 0);
    assert_eq!(body["start"].as_u64(), Some(base + MINUTE));
    // As long as the range: `end` is its last microsecond's start.
    let length = 2 * MINUTE - 1000 + 1;
    assert_eq!(body["previousStart"].as_u64(), Some(base + MINUTE - length));
    assert_eq!(body["previousEnd"].as_u64(), Some(base + MINUTE - 1));
    let patterns = body["patterns"].as_array().expect("patterns");
    let by_template = |template: &str| -> &Value {
        patterns
            .iter()
            .find(|p| p["template"] == template)
            .unwrap_or_else(|| panic!("no pattern {template:?} in {body}"))
    };
    let order = by_template("order <num> placed for <num> items");
    assert_eq!(patterns[0]["id"], order["id"], "the most frequent first");
    assert_eq!(
        (
            &order["count"],
            &order["errors"],
            &order["previous"],
            &order["new"]
        ),
        (
            &serde_json::json!(3),
            &serde_json::json!(1),
            &serde_json::json!(0),
            &serde_json::json!(true)
        )
    );
    assert_eq!(order["counts"], serde_json::json!([2, 1]));
    assert_eq!(
        order["sample"]["body"], "order 7 placed for 12 items",
        "the newest line"
    );
    assert!((order["share"].as_f64().expect("share") - 3.0 / 7.0).abs() < 1e-9);
    let payment = by_template(r#"payment declined for user "<*>""#);
    assert_eq!(
        (&payment["count"], &payment["errors"]),
        (&serde_json::json!(2), &serde_json::json!(2))
    );
    assert_eq!(payment["errorShare"], 1.0);
    let cache = by_template("cache warmed in <duration>");
    assert_eq!(
        (&cache["count"], &cache["previous"], &cache["new"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(false)
        )
    );
    assert_eq!(cache["counts"], serde_json::json!([2, 0]));
    // "shutting down" ran before the range only: not listed.
    assert!(
        patterns.iter().all(|p| p["template"] != "shutting down"),
        "{body}"
    );

    // A pattern is searched like any field, alone or with others.
    let order_id = order["id"].as_str().expect("id");
    assert_eq!(order_id.len(), 16);
    for (query, lines) in [
        (format!("pattern:{order_id}"), 3),
        (format!("pattern:{order_id} AND severity:error"), 1),
        (format!("pattern:{order_id} OR cache"), 5),
        (format!("NOT pattern:{order_id}"), 4),
    ] {
        let (status, body) = server
            .get(&format!("/api/logs?{window}&query={}", urlencode(&query)))
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(body["total"], lines, "{query}: {body}");
    }
    // The search narrows the patterns; `limit` lists fewer.
    let (status, body) = server
        .get(&format!(
            "/api/logs/patterns?{window}&minSeverity=error&limit=1"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["total"], &body["patternCount"]),
        (&serde_json::json!(3), &serde_json::json!(2))
    );
    assert_eq!(body["patterns"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        body["patterns"][0]["template"],
        r#"payment declined for user "<*>""#
    );

    for (query, error) in [
        ("query=pattern:xyz", "'xyz' is not a pattern id"),
        ("query=pattern:", "query"),
        ("step=0", "invalid step '0'"),
        ("step=1ms&lookback=7d", "buckets; at most"),
        (
            "step=1m&lookback=2h",
            "121 buckets; at most 60 for patterns",
        ),
        ("sort=count", "unknown query parameter 'sort'"),
    ] {
        let (status, body) = server.get(&format!("/api/logs/patterns?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.to_string().contains(error), "{query}: {body}");
    }
    server.hopline.shutdown().await;
}
