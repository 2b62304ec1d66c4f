//! Loki's query API with requests shaped as Grafana's Loki data source sends them
//! (its health check, the query editor's label lookups, log queries, and the log
//! volume histogram's metric query), over logs sent by OTLP.

use serde_json::Value;

use crate::common::*;

const MINUTE: u64 = 60 * 1_000_000_000;

struct Loki {
    server: TestServer,
    base: u64,
}

impl Loki {
    async fn start() -> Loki {
        let server = TestServer::start().await;
        let base = now_nanos() - 10 * MINUTE;
        let mut api = logs_request(
            "lk-api",
            vec![
                log_record(
                    Some([4; 16]),
                    base + 1_000_000_000,
                    17,
                    r#"{"status":503,"msg":"upstream down"}"#,
                ),
                log_record(
                    None,
                    base + 2_000_000_000,
                    13,
                    r#"level=warn duration=1.5 msg="slow call""#,
                ),
                log_record(None, base + 3_000_000_000, 9, "all good"),
            ],
        );
        api.resource_logs[0]
            .resource
            .as_mut()
            .expect("resource")
            .attributes
            .push(string_kv("k8s.namespace.name", "shop"));
        server.export("/v1/logs", &api).await;
        let other = logs_request(
            "lk-other",
            vec![log_record(None, base + 1_500_000_000, 9, "unrelated")],
        );
        server.export("/v1/logs", &other).await;
        server.flush().await;
        Loki { server, base }
    }

    fn window(&self) -> String {
        format!(
            "start={}&end={}",
            self.base - 30_000_000_000,
            self.base + 90_000_000_000
        )
    }

    async fn get(&self, path: &str, query: &str) -> (u16, Value) {
        let (status, body) = self
            .server
            .get(&format!("/loki/api/v1/{path}?{}&{query}", self.window()))
            .await;
        if status == 200 {
            assert_eq!(body["status"], "success", "{body}");
        }
        (status, body["data"].clone())
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("an array: {value}"))
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_reads_labels_lines_and_the_log_volume() {
    let loki = Loki::start().await;

    // The data source's health check (an instant `vector(1)+vector(1)` from 1 s
    // to 4 s, as Grafana's backend sends it), then the query editor's lookups.
    let (status, health) = loki
        .server
        .get(&format!(
            "/loki/api/v1/query?query={}&direction=backward&time=4000000000",
            urlencode("vector(1)+vector(1)")
        ))
        .await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"]["resultType"], "vector");
    assert_eq!(health["data"]["result"][0]["value"][1], "2");
    let (status, labels) = loki.get("labels", "").await;
    assert_eq!(status, 200);
    let labels = strings(&labels);
    for name in ["service_name", "level", "k8s_namespace_name"] {
        assert!(labels.contains(&name), "{name} in {labels:?}");
    }
    let (_, services) = loki.get("label/service_name/values", "").await;
    assert_eq!(strings(&services), ["lk-api", "lk-other"]);
    let selector = urlencode(r#"{service_name="lk-api"}"#);
    let (_, levels) = loki
        .get("label/level/values", &format!("query={selector}"))
        .await;
    assert_eq!(strings(&levels), ["error", "info", "warn"]);
    let (_, series) = loki.get("series", &format!("match[]={selector}")).await;
    assert_eq!(series.as_array().map(Vec::len), Some(3), "{series}");

    // Log queries: a parser and a numeric label filter; the oldest two lines.
    let query = urlencode(r#"{service_name="lk-api"} | json | status >= 500"#);
    let (status, data) = loki
        .get(
            "query_range",
            &format!("query={query}&limit=1000&direction=backward&step=1000ms"),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["resultType"], "streams");
    let result = data["result"].as_array().expect("streams");
    assert_eq!(result.len(), 1, "{data}");
    assert_eq!(result[0]["stream"]["status"], "503");
    assert_eq!(result[0]["stream"]["service_name"], "lk-api");
    assert_eq!(
        result[0]["stream"]["trace_id"],
        "04".repeat(16),
        "for derived fields"
    );
    assert_eq!(
        result[0]["values"][0][0],
        (loki.base + 1_000_000_000).to_string()
    );
    assert_eq!(
        result[0]["values"][0][1],
        r#"{"status":503,"msg":"upstream down"}"#
    );

    let query = urlencode(r#"{service_name="lk-api"} |~ "slow|good""#);
    let (_, data) = loki
        .get(
            "query_range",
            &format!("query={query}&limit=1&direction=forward"),
        )
        .await;
    let lines: Vec<&Value> = data["result"]
        .as_array()
        .expect("streams")
        .iter()
        .flat_map(|s| s["values"].as_array().expect("values"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0][1], r#"level=warn duration=1.5 msg="slow call""#,
        "the oldest"
    );

    // The log volume histogram: a count per level and step.
    let query = urlencode(
        r#"sum by (level) (count_over_time({service_name="lk-api"} | drop __error__[1m]))"#,
    );
    let (status, data) = loki
        .get(
            "query_range",
            &format!("query={query}&direction=backward&step=60000ms"),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["resultType"], "matrix");
    let mut counts: Vec<(String, Value)> = data["result"]
        .as_array()
        .expect("matrix")
        .iter()
        .map(|s| {
            (
                s["metric"]["level"].as_str().expect("level").to_string(),
                s["values"].clone(),
            )
        })
        .collect();
    counts.sort_by(|a, b| a.0.cmp(&b.0));
    let at = (loki.base + 30_000_000_000) as f64 / 1e9;
    for (level, values) in &counts {
        let [point] = &values.as_array().expect("points")[..] else {
            panic!("{level}: one point: {values}");
        };
        let time = point[0].as_f64().expect("seconds");
        assert!((time - at).abs() < 0.001, "{level}: at {at}: {values}");
        assert_eq!(point[1], "1", "{level}");
    }
    assert_eq!(
        counts
            .iter()
            .map(|(level, _)| level.as_str())
            .collect::<Vec<_>>(),
        ["error", "info", "warn"]
    );

    // An instant rate: three lines in the minute before.
    let query = urlencode(r#"sum(rate({service_name="lk-api"}[1m]))"#);
    let (status, data) = loki
        .server
        .get(&format!(
            "/loki/api/v1/query?query={query}&time={}",
            loki.base + 30_000_000_000
        ))
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["data"]["resultType"], "vector");
    assert_eq!(data["data"]["result"][0]["value"][1], "0.05");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_and_malformed_logql_is_a_400_that_names_it() {
    let loki = Loki::start().await;
    for (query, message) in [
        (
            r#"{service_name="lk-api"} | line_format "{{.msg}}""#,
            "| line_format is not supported",
        ),
        (
            r#"quantile_over_time(0.9, {service_name="lk-api"} | unwrap d [5m])"#,
            "quantile_over_time is not supported",
        ),
        (r#"{service_name="lk-api""#, "expected ','"),
        (r#"{service_name=~"(("}"#, "invalid regular expression"),
        ("", "query is required"),
    ] {
        let response = loki
            .server
            .http
            .get(loki.server.api_url(&format!(
                "/loki/api/v1/query_range?query={}&{}",
                urlencode(query),
                loki.window()
            )))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{query}");
        let text = response.text().await.expect("body");
        assert!(text.contains(message), "{query}: {text}");
    }
    for query in [
        "start=soon",
        "step=0&query=count_over_time(%7Ba%3D%22b%22%7D%5B1m%5D)",
        "direction=sideways&query=%7Ba%3D%22b%22%7D",
    ] {
        let response = loki
            .server
            .http
            .get(
                loki.server
                    .api_url(&format!("/loki/api/v1/query_range?{query}")),
            )
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_queries_past_the_series_or_points_bound_are_a_400() {
    let loki = Loki::start().await;
    // 600 records, each with an `id` of its own: a series each once parsed.
    let records = (0..600)
        .map(|i| {
            log_record(
                None,
                loki.base + 1_000_000 * i,
                9,
                &format!("id={i} msg=hi"),
            )
        })
        .collect();
    loki.server
        .export("/v1/logs", &logs_request("lk-many", records))
        .await;
    loki.server.flush().await;
    let get = |query: &str, step: &str| {
        let url = loki.server.api_url(&format!(
            "/loki/api/v1/query_range?query={}&step={step}&{}",
            urlencode(query),
            loki.window()
        ));
        let http = loki.server.http.clone();
        async move {
            let response = http.get(url).send().await.expect("request");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        }
    };
    // One series per id: 600, past 500.
    let (status, text) = get(
        r#"sum by (id) (count_over_time({service_name="lk-many"} | logfmt [1m]))"#,
        "10s",
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("maximum of series (500)") && text.contains("600 series"),
        "{text}"
    );
    // 100 series of 10,910 points: past a million points.
    let (status, text) = get(
        r#"sum by (id) (count_over_time({service_name="lk-many"} | logfmt | id < 100 [1m]))"#,
        "0.011",
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("100 series of 10910 points") && text.contains("1000000 points"),
        "{text}"
    );
    // Within the bounds, the same records are counted whole.
    let (status, text) = get(
        r#"sum(count_over_time({service_name="lk-many"} [5m]))"#,
        "120",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    let values = &body["data"]["result"][0]["values"];
    let total: Vec<&str> = values
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|point| point[1].as_str())
        .collect();
    assert_eq!(total, ["600"], "{body}");
}
