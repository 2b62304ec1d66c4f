//! Hostile input, as an attacker or an unlucky neighbour service sends it: each test
//! is a finding of the hostile walk-through that once crashed, starved or bloated
//! the collector, and checks the answer it gets now.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_queries_are_refused_and_the_server_lives() {
    let server = TestServer::start().await;
    let parentheses = format!("{}a{}", "(".repeat(3000), ")".repeat(3000));
    let nots = format!("{}a", "NOT ".repeat(5000));
    let deep_json = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
    let deep_tags = format!("{{\"a\":{deep_json}}}");
    for path in [
        format!("/api/logs?query={}", urlencode(&parentheses)),
        format!("/api/logs?query={}", urlencode(&nots)),
        format!("/api/logs?query={}", urlencode(&"(".repeat(40))),
        format!("/api/logs/tail?query={}", urlencode(&parentheses)),
        format!("/api/logs/patterns?query={}", urlencode(&nots)),
        format!("/api/traces?service=a&tags={}", urlencode(&deep_tags)),
        format!(
            "/api/v3/traces?query.service_name=a&query.attributes={}",
            urlencode(&deep_tags)
        ),
    ] {
        let (status, body) = server.get(&path).await;
        assert_eq!(status, 400, "{}...: {body}", &path[..40]);
        let message = body["errors"][0]["msg"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!message.is_empty(), "{body}");
    }
    // The page too: an error in the page, not a dead process.
    let page = server
        .http
        .get(server.api_url(&format!("/logs?query={}", urlencode(&parentheses))))
        .send()
        .await
        .expect("page");
    let html = page.text().await.expect("html");
    assert!(html.contains("at most 4096"), "the page says what is wrong");
    // OTLP/JSON nested past serde's limit.
    let deep_value = format!(
        "{}{}",
        "{\"arrayValue\":{\"values\":[".repeat(5000),
        "]}}".repeat(5000)
    );
    let body = format!(
        "{{\"resourceSpans\":[{{\"scopeSpans\":[{{\"spans\":[{{\"attributes\":[{{\"key\":\"k\",\"value\":{deep_value}}}]}}]}}]}}]}}"
    );
    let response = server
        .post("/v1/traces", "application/json", body.into_bytes())
        .await;
    assert_eq!(response.status(), 400);
    let (status, _) = server.get("/api/services").await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_names_are_refused_and_pages_carry_security_headers() {
    let server = TestServer::start().await;
    let url = server.api_url("/search");
    let evil = server
        .http
        .get(&url)
        .header("host", "rebound.example:16686")
        .send()
        .await
        .expect("get");
    assert_eq!(evil.status(), 403);
    assert!(evil.text().await.expect("text").contains("--allowed-hosts"));
    for host in ["localhost:16686", "127.0.0.1"] {
        let page = server
            .http
            .get(&url)
            .header("host", host)
            .send()
            .await
            .expect("get");
        assert_eq!(page.status(), 200, "{host}");
        let headers = page.headers().clone();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        let csp = headers["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_string();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .map(str::to_string);
        let html = page.text().await.expect("html");
        // Every inline script carries the nonce the policy allows.
        if let Some(nonce) = nonce {
            let scripts = html.matches("<script").count();
            let allowed = html.matches(&format!("nonce=\"{nonce}\"")).count();
            assert_eq!(scripts, allowed, "{html}");
        }
    }
    let (status, _) = server.get("/api/services").await;
    assert_eq!(status, 200);
    // OTLP/HTTP: a browser's request to a foreign name is refused, an SDK's is not.
    let request = traces_request("x", vec![span([1; 16], 1, None, "op", now_nanos(), 1)]);
    let browser = server
        .http
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("host", "rebound.example")
        .header("origin", "http://rebound.example")
        .body(prost::Message::encode_to_vec(&request))
        .send()
        .await
        .expect("post");
    assert_eq!(browser.status(), 403);
    assert_eq!(
        server.post_protobuf("/v1/traces", &request).await.status(),
        200
    );
}

/// One trace of `spans` spans, sent in requests of 5,000.
async fn send_big_trace(server: &TestServer, trace: [u8; 16], spans: u32) {
    let now = now_nanos();
    for chunk in 0..spans.div_ceil(5000) {
        let batch = (chunk * 5000..((chunk + 1) * 5000).min(spans))
            .map(|i| {
                let mut s = span(trace, 1, None, "op", now + u64::from(i), 1000);
                s.span_id = (u64::from(i) + 1).to_be_bytes().to_vec();
                s.parent_span_id = if i == 0 {
                    Vec::new()
                } else {
                    1u64.to_be_bytes().to_vec()
                };
                s
            })
            .collect();
        server
            .export("/v1/traces", &traces_request("big", batch))
            .await;
    }
    server.flush().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_trace_is_cut_in_every_answer_and_says_so() {
    let server = TestServer::start_with(|config| config.query.max_spans_per_trace = 1000).await;
    let trace = [0x42; 16];
    send_big_trace(&server, trace, 20_000).await;
    let (status, body) = server.get(&format!("/api/traces/{}", hex(&trace))).await;
    assert_eq!(status, 200);
    let spans = body["data"][0]["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 1000);
    let warning = body["data"][0]["warnings"][0].as_str().expect("a warning");
    assert!(
        warning.contains("20000 spans") && warning.contains("1000"),
        "{warning}"
    );
    // The earliest spans: the root is there.
    assert!(spans.iter().any(|s| s["spanID"] == "0000000000000001"));
    // A search that matches it returns it cut too.
    let (status, body) = server
        .get("/api/traces?service=big&limit=20&lookback=1h")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"][0]["spans"].as_array().expect("spans").len(),
        1000
    );
    // The page too: it says the trace was cut.
    let page = server
        .http
        .get(server.api_url(&format!("/trace/{}", hex(&trace))))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("this trace has 20000 spans"),
        "the page hides the cut"
    );
    let (status, body) = server.get(&format!("/api/v3/traces/{}", hex(&trace))).await;
    assert_eq!(status, 200);
    let v3: usize = body["result"]["resourceSpans"]
        .as_array()
        .expect("resources")
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .map(|s| s["spans"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(v3, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_stop_when_their_client_leaves_or_time_runs_out_and_wait_their_turn() {
    let server = TestServer::start_with(|config| {
        config.query.max_concurrent = 1;
        config.query.timeout = Duration::from_millis(200);
        config.query.max_spans_per_trace = 100_000;
    })
    .await;
    let trace = [0x24; 16];
    send_big_trace(&server, trace, 40_000).await;
    let path = format!("/api/traces/{}", hex(&trace));

    // Too slow for its time: 503 with the reason, and counted.
    let (status, body) = server.get(&path).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["errors"][0]["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("--query-timeout"),
        "{body}"
    );
    assert!(metric(&server, "hopline_queries_timed_out_total").await >= 1.0);

    // Several at once with one slot: those that find it taken for their whole time
    // are refused as too many.
    let mut queries = Vec::new();
    for _ in 0..4 {
        let (http, url) = (server.http.clone(), server.api_url(&path));
        queries.push(tokio::spawn(async move {
            let response = http.get(url).send().await.expect("get");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("json");
            (
                status,
                body["errors"][0]["msg"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }));
    }
    let mut too_many = 0;
    for query in queries {
        let (status, message) = query.await.expect("query");
        assert_eq!(status, 503);
        too_many += usize::from(message.contains("too many queries"));
    }
    assert!(too_many >= 1, "none was told there were too many");
    assert!(metric(&server, "hopline_queries_refused_total").await >= 1.0);

    // A client that hangs up: the search stops.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = metric(&server, "hopline_queries_client_gone_total").await;
    let request = server.http.get(server.api_url(&path)).send();
    let _ = tokio::time::timeout(Duration::from_millis(100), request).await;
    let stopped =
        eventually(Duration::from_secs(20), || {
            let server = &server;
            async move {
                (metric(server, "hopline_queries_client_gone_total").await > before).then_some(())
            }
        })
        .await;
    assert!(
        stopped.is_some(),
        "the search went on after its client left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_without_slowing_others() {
    let server = TestServer::start_with(|config| {
        config.server.request_timeout = Duration::from_millis(800);
        config.server.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = server.hopline.otlp_http_addr;
    // Slowloris: headers a byte at a time.
    let slowloris = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let started = std::time::Instant::now();
        for byte in b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: " {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        started.elapsed()
    });
    // Idle: connects and sends nothing.
    let idle = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        started.elapsed()
    });
    // A body that never finishes.
    let stalled = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\nab")
            .await
            .expect("write");
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).to_string()
    });
    // Meanwhile a normal client is served at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let request = traces_request("ok", vec![span([5; 16], 1, None, "op", now_nanos(), 1)]);
    assert_eq!(
        server.post_protobuf("/v1/traces", &request).await.status(),
        200
    );
    let slow = slowloris.await.expect("slowloris");
    assert!(
        slow < Duration::from_secs(5),
        "slowloris held on for {slow:?}"
    );
    let idle = idle.await.expect("idle");
    assert!(
        idle < Duration::from_secs(5),
        "an idle connection stayed {idle:?}"
    );
    let stalled = stalled.await.expect("stalled");
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_that_announce_much_and_send_little_hold_what_they_sent() {
    let server = TestServer::start().await;
    let tcp = tokio::net::TcpStream::connect(server.hopline.otlp_grpc_addr)
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let announced = eventually(Duration::from_secs(5), || {
        let limit = client.current_max_send_streams();
        async move { (limit == 64).then_some(()) }
    })
    .await;
    assert!(
        announced.is_some(),
        "the server announces its stream limit of 64"
    );
    let mut streams = Vec::new();
    for _ in 0..30 {
        let request =
            http::Request::post("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .expect("request");
        client = client.ready().await.expect("ready");
        let (response, mut body) = client.send_request(request, false).expect("send");
        // A message of 16 MiB announced, 16 KiB sent, and the stream left open.
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(16u32 << 20).to_be_bytes());
        frame.extend_from_slice(&vec![0u8; 16 << 10]);
        body.send_data(frame.into(), false).expect("data");
        streams.push((response, body));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = metric(&server, "hopline_request_bytes_in_flight").await;
    assert!(held > 0.0, "the streams are being read");
    assert!(
        held <= 30.0 * 17.0 * 1024.0,
        "{held} bytes held for 30 x 16 KiB received"
    );
    drop(streams);
    drop(client);
    let released = eventually(Duration::from_secs(10), || {
        let server = &server;
        async move { (metric(server, "hopline_request_bytes_in_flight").await == 0.0).then_some(()) }
    })
    .await;
    assert!(
        released.is_some(),
        "what the streams held was not given back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_in_flight_budget_are_refused_with_a_retry() {
    let server = TestServer::start_with(|config| config.server.max_inflight_bytes = 4 << 20).await;
    let addr = server.hopline.otlp_http_addr;
    // Three clients each start a 3 MiB body and send it slowly.
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let head = format!(
                "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                3 << 20
            );
            stream.write_all(head.as_bytes()).await.expect("head");
            let chunk = vec![0u8; 256 << 10];
            for _ in 0..12 {
                if stream.write_all(&chunk).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).to_string()
        }));
    }
    let mut refused = 0;
    for client in clients {
        let answer = client.await.expect("client");
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("max-inflight-bytes"), "{answer}");
            assert!(
                answer.to_ascii_lowercase().contains("retry-after"),
                "{answer}"
            );
            refused += 1;
        }
    }
    assert!(refused >= 1, "three 3 MiB bodies fit a 4 MiB budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_records_are_stored_within_the_limits() {
    let server = TestServer::start().await;
    let trace = [0x77; 16];
    let mut s = span(trace, 1, None, "op", now_nanos(), 1000);
    s.attributes = (0..10_000).map(|i| int_kv(&format!("k{i}"), i)).collect();
    s.attributes[0] = string_kv("long", &"é".repeat(100_000));
    let response = server
        .post_protobuf("/v1/traces", &traces_request("wide", vec![s]))
        .await;
    assert_eq!(response.status(), 200);
    server.flush().await;
    let (status, body) = server.get(&format!("/api/v3/traces/{}", hex(&trace))).await;
    assert_eq!(status, 200);
    let span = &body["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    let attributes = span["attributes"].as_array().expect("attributes");
    assert_eq!(attributes.len(), 128 + 1, "128 kept and the marker");
    assert_eq!(span["droppedAttributesCount"], 10_000 - 128);
    let long = attributes
        .iter()
        .find(|a| a["key"] == "long")
        .and_then(|a| a["value"]["stringValue"].as_str())
        .expect("long");
    assert_eq!(long.len(), 64 << 10);
    let marker = attributes
        .iter()
        .find(|a| a["key"] == "hopline.truncated")
        .expect("marker");
    assert_eq!(
        marker["value"]["arrayValue"]["values"][0]["stringValue"],
        "attributes.long"
    );

    // A gzip bomb of 50 MB (50 KB sent) stops at the size limit.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, &vec![0u8; 50 << 20]).expect("compress");
    let bomb = encoder.finish().expect("finish");
    let response = server
        .http
        .post(server.otlp_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_services_stay_answerable() {
    let server = TestServer::start().await;
    let now = now_nanos();
    for chunk in 0..20u32 {
        let request = ExportTraceServiceRequest {
            resource_spans: (0..5000u32)
                .map(|i| {
                    let n = chunk * 5000 + i;
                    let mut trace = [0u8; 16];
                    trace[..4].copy_from_slice(&n.to_be_bytes());
                    trace[15] = 1;
                    ResourceSpans {
                        resource: Some(Resource {
                            attributes: vec![string_kv("service.name", &format!("svc-{n:06}"))],
                            ..Default::default()
                        }),
                        scope_spans: vec![ScopeSpans {
                            spans: vec![span(trace, 1, None, "op", now, 1000)],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }
                })
                .collect(),
        };
        server.export("/v1/traces", &request).await;
    }
    server.flush().await;
    let (status, body) = server.get("/api/services").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 100_000);
    let (status, body) = server
        .get("/api/traces?service=svc-054321&lookback=1h")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().expect("traces").len(), 1);
}
