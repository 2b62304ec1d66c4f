//! Tokens, tenants and TLS: who may write, who may read what, and over what.
//!
//! Every test starts a collector with a tokens file (as an operator would) and
//! talks to it with real clients: reqwest, the generated OTLP gRPC client, the
//! OpenTelemetry SDK, and rustls for TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

use crate::common::*;

const INGEST_A: &str = "ingest-a-5f1c2d3e4b5a6978";
const QUERY_A: &str = "query-a-0a1b2c3d4e5f6a7b";
const INGEST_B: &str = "ingest-b-8c7d6e5f4a3b2c1d";
const QUERY_B: &str = "query-b-1d2c3b4a5f6e7d8c";
const INGEST_DEFAULT: &str = "ingest-default-9a8b7c6d5e4f";
const QUERY_DEFAULT: &str = "query-default-1122334455667788";

/// Two tenants beside `default`, each with its own tokens.
fn tokens_toml() -> String {
    format!(
        r#"
ingest_tokens = ["{INGEST_DEFAULT}"]
query_tokens = ["{QUERY_DEFAULT}"]

[[tenants]]
name = "tenant-a"
ingest_tokens = ["{INGEST_A}"]
query_tokens = ["{QUERY_A}"]

[[tenants]]
name = "tenant-b"
ingest_tokens = ["{INGEST_B}"]
query_tokens = ["{QUERY_B}"]
"#
    )
}

async fn start_with_tokens(
    toml: &str,
    adjust: impl FnOnce(&mut hopline::config::Config),
) -> TestServer {
    let tokens = tempfile::NamedTempFile::new().expect("tokens file");
    std::fs::write(tokens.path(), toml).expect("write tokens");
    let server = TestServer::start_with(|config| {
        *config = config
            .clone()
            .with_tokens_file(tokens.path())
            .expect("valid tokens file");
        adjust(config);
    })
    .await;
    // The file was read at start; tests that reload keep their own.
    drop(tokens);
    server
}

async fn post_as(
    server: &TestServer,
    token: Option<&str>,
    path: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = server
        .http
        .post(server.otlp_url(path))
        .header("content-type", "application/x-protobuf")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

async fn get_as(server: &TestServer, token: Option<&str>, path: &str) -> (u16, String) {
    let mut request = server.http.get(server.api_url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_query_tokens_are_required_and_kept_apart() {
    let server = start_with_tokens(&tokens_toml(), |_| {}).await;
    let now = now_nanos();
    let request = |service: &str| {
        prost::Message::encode_to_vec(&traces_request(
            service,
            vec![span([7; 16], 1, None, "op", now, 1_000)],
        ))
    };

    // OTLP/HTTP: no token, a wrong one, a query token: refused before decoding.
    let response = post_as(&server, None, "/v1/traces", request("nobody")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let response = post_as(
        &server,
        Some("ingest-a-5f1c2d3e4b5a6979"),
        "/v1/traces",
        request("wrong"),
    )
    .await;
    assert_eq!(response.status(), 401);
    let response = post_as(&server, Some(QUERY_A), "/v1/traces", request("reader")).await;
    assert_eq!(response.status(), 403);
    let body = response.text().await.expect("body");
    assert!(body.contains("may not write"), "{body}");
    // Refusals decode nothing: the records counter has not moved.
    let (_, metrics) = get_as(&server, Some(QUERY_DEFAULT), "/metrics").await;
    assert_eq!(
        metric(&metrics, "hopline_records_received_total{signal=\"spans\"}"),
        0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "hopline_auth_denied_total"), 3);

    let response = post_as(&server, Some(INGEST_A), "/v1/traces", request("writer")).await;
    assert_eq!(response.status(), 200);

    // OTLP/gRPC: the same, as `authorization` metadata.
    let endpoint = format!("http://{}", server.hopline.otlp_grpc_addr);
    let mut client = TraceServiceClient::connect(endpoint)
        .await
        .expect("connect");
    let grpc = |token: Option<&str>, service: &str| {
        let mut request = tonic::Request::new(traces_request(
            service,
            vec![span([8; 16], 1, None, "op", now, 1_000)],
        ));
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("metadata"),
            );
        }
        request
    };
    let status = client
        .export(grpc(None, "nobody"))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let status = client
        .export(grpc(Some(QUERY_A), "reader"))
        .await
        .expect_err("query token");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    client
        .export(grpc(Some(INGEST_A), "grpc-writer"))
        .await
        .expect("ingest token");

    server.flush().await;
    // Reading: no token 401, an ingest token 403, the query token sees what was written.
    let (status, _) = get_as(&server, None, "/api/services").await;
    assert_eq!(status, 401);
    let (status, body) = get_as(&server, Some(INGEST_A), "/api/services").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = get_as(&server, Some(QUERY_A), "/api/services").await;
    assert_eq!(status, 200, "{body}");
    let services: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        services["data"],
        serde_json::json!(["grpc-writer", "writer"])
    );
    // Open to probes; not to tenants other than the operator's.
    let (status, _) = get_as(&server, None, "/health").await;
    assert_eq!(status, 200);
    let (status, _) = get_as(&server, Some(QUERY_A), "/metrics").await;
    assert_eq!(status, 403);
    let (status, metrics) = get_as(&server, Some(QUERY_DEFAULT), "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &metrics,
            "hopline_tenant_records_total{tenant=\"tenant-a\",signal=\"spans\"}"
        ),
        2
    );
    server.hopline.shutdown().await;
}

/// Sends tenant `token`'s data: a trace of `service` calling `service-db` with a
/// marked operation and attribute, and a log line with a marked body.
async fn send_tenant_data(
    server: &TestServer,
    token: &str,
    service: &str,
    trace: [u8; 16],
    marker: &str,
) {
    let now = now_nanos();
    let mut root = span(
        trace,
        1,
        None,
        &format!("{marker}-operation"),
        now,
        2_000_000,
    );
    root.kind = 2;
    root.attributes
        .push(string_kv("marker", &format!("{marker}-attribute")));
    let mut client = span(trace, 2, Some(1), "call db", now + 1_000, 1_000_000);
    client.kind = 3;
    client
        .attributes
        .push(string_kv("peer.service", &format!("{service}-db")));
    let mut db = span(trace, 3, Some(2), "query", now + 2_000, 500_000);
    db.kind = 2;
    let traces = traces_request(service, vec![root, client]);
    let db_traces = traces_request(&format!("{service}-db"), vec![db]);
    let logs = logs_request(
        service,
        vec![log_record(
            Some(trace),
            now,
            17,
            &format!("{marker}-log-body failed"),
        )],
    );
    for (path, body) in [
        ("/v1/traces", prost::Message::encode_to_vec(&traces)),
        ("/v1/traces", prost::Message::encode_to_vec(&db_traces)),
        ("/v1/logs", prost::Message::encode_to_vec(&logs)),
    ] {
        let response = post_as(server, Some(token), path, body).await;
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_shows_another_tenants_data() {
    let server = start_with_tokens(&tokens_toml(), |_| {}).await;
    let trace_a = [0xa1; 16];
    let trace_b = [0xb2; 16];
    send_tenant_data(&server, INGEST_A, "shop-a", trace_a, "alpha").await;
    send_tenant_data(&server, INGEST_B, "shop-b", trace_b, "bravo").await;
    server.flush().await;
    let (a, b) = (hex(&trace_a), hex(&trace_b));
    let start = (now_nanos() / 1000 - 3_600_000_000).to_string();
    // Each route with tenant A's token: A's own data (so that the route answers at
    // all), never B's, including through B's names and ids.
    let routes: Vec<(String, Option<&str>)> = vec![
        ("/api/services".into(), Some("shop-a")),
        ("/api/services/shop-b/operations".into(), None),
        (
            "/api/services/shop-a/operations".into(),
            Some("alpha-operation"),
        ),
        ("/api/operations?service=shop-b".into(), None),
        (
            format!("/api/traces?service=shop-a&start={start}"),
            Some("alpha-attribute"),
        ),
        (format!("/api/traces?service=shop-b&start={start}"), None),
        (format!("/api/traces?service=shop-b-db&start={start}"), None),
        (format!("/api/traces/{b}"), None),
        (format!("/api/traces/{a}"), Some("alpha-operation")),
        (
            "/api/dependencies?lookback=3600000".into(),
            Some("shop-a-db"),
        ),
        ("/api/logs?query=failed".into(), Some("alpha-log-body")),
        (format!("/api/logs?query=trace_id%3D{b}"), None),
        ("/api/v3/services".into(), Some("shop-a")),
        ("/api/v3/operations?service=shop-b".into(), None),
        (
            format!(
                "/api/v3/traces?query.service_name=shop-b&query.start_time_min={}",
                rfc3339(now_nanos() - 3_600_000_000_000)
            ),
            None,
        ),
        (format!("/api/v3/traces/{b}"), None),
        (format!("/api/v3/traces/{a}"), Some("alpha-operation")),
        // The UI's pages, as tenant A's browser would ask for them.
        (
            "/search?service=shop-a&lookback=1h".into(),
            Some("alpha-operation"),
        ),
        ("/search?service=shop-b&lookback=1h".into(), None),
        (format!("/trace/{b}"), None),
        (format!("/trace/{a}"), Some("alpha-operation")),
        ("/logs?q=failed".into(), Some("alpha-log-body")),
        ("/dependencies".into(), None),
        // The analysis over every service's traces, and over B's by name.
        ("/api/analysis?lookback=1h&slowest=50".into(), None),
        ("/api/analysis?service=shop-b&lookback=1h".into(), None),
        ("/analyse?lookback=1h&slowest=50".into(), None),
        // Log patterns: A's lines only, on the API and the page.
        (
            "/api/logs/patterns?lookback=1h".into(),
            Some("alpha-log-body"),
        ),
        (
            "/logs?view=patterns&lookback=1h".into(),
            Some("alpha-log-body"),
        ),
    ];
    for (route, own) in &routes {
        let (status, body) = get_as(&server, Some(QUERY_A), route).await;
        // B's id may be echoed where the route names it; nothing else of B may be.
        for secret in ["bravo", &b] {
            if !route.contains(secret) {
                assert!(
                    !body.contains(secret),
                    "{route} showed tenant B's '{secret}': {body}"
                );
            }
        }
        if route.contains(&b) {
            assert!(status == 404 || !body.contains("shop-b"), "{route}: {body}");
        }
        if let Some(own) = own {
            assert_eq!(status, 200, "{route}: {body}");
            assert!(
                body.contains(own),
                "{route} did not show tenant A's '{own}': {body}"
            );
        }
    }
    // Asking for B by name is refused, and the live tail only follows A.
    let response = server
        .http
        .get(server.api_url("/api/services"))
        .bearer_auth(QUERY_A)
        .header("x-scope-orgid", "tenant-b")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    let mut tail = server
        .http
        .get(server.api_url("/api/logs/tail?query=tailmark"))
        .bearer_auth(QUERY_A)
        .send()
        .await
        .expect("tail");
    assert_eq!(tail.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (token, body) in [(INGEST_B, "tailmark bravo"), (INGEST_A, "tailmark alpha")] {
        let logs = logs_request("tailer", vec![log_record(None, now_nanos(), 9, body)]);
        let response = post_as(
            &server,
            Some(token),
            "/v1/logs",
            prost::Message::encode_to_vec(&logs),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains("tailmark alpha") {
        match tokio::time::timeout_at(deadline, tail.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert!(seen.contains("tailmark alpha"), "{seen}");
    assert!(!seen.contains("bravo"), "{seen}");
    drop(tail);
    // Each tenant's records live in their own splits.
    let a_store = server.hopline.tenant_store("tenant-a").expect("tenant-a");
    let b_store = server.hopline.tenant_store("tenant-b").expect("tenant-b");
    assert!(!a_store.spans.splits().is_empty() && !b_store.spans.splits().is_empty());
    assert!(server
        .hopline
        .store
        .spans
        .splits()
        .iter()
        .all(|s| s.meta().num_docs == 0));
    server.hopline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_signs_in_with_a_cookie_and_out() {
    let server = start_with_tokens(&tokens_toml(), |_| {}).await;
    send_tenant_data(&server, INGEST_A, "shop-a", [0xc3; 16], "charlie").await;
    server.flush().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = browser
        .get(server.api_url("/search?service=shop-a"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/signin?next=/search%3Fservice%3Dshop-a"
    );
    let (status, form) = get_as(&server, None, "/signin?next=/search").await;
    assert_eq!(status, 200);
    assert!(form.contains("name=\"token\""), "{form}");

    let response = browser
        .post(server.api_url("/signin"))
        .form(&[("token", INGEST_A), ("next", "/search")])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), 401, "an ingest token does not sign in");
    let response = browser
        .post(server.api_url("/signin"))
        .form(&[("token", QUERY_A), ("next", "//evil.example/")])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/search");
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect();
    let token_cookie = cookies
        .iter()
        .find(|c| c.starts_with("hopline_token="))
        .expect("token cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(token_cookie.contains(attribute), "{token_cookie}");
    }
    assert!(
        !token_cookie.contains("Secure"),
        "no TLS here: {token_cookie}"
    );
    let cookie_header: String = cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    let page = browser
        .get(server.api_url("/search?service=shop-a&lookback=1h"))
        .header("cookie", &cookie_header)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("html");
    assert!(page.contains("charlie-operation"), "{page}");
    assert!(page.contains("action=\"/signout\""), "{page}");
    let response = browser
        .post(server.api_url("/signout"))
        .header("cookie", &cookie_header)
        .send()
        .await
        .expect("sign out");
    assert_eq!(response.status(), 303);
    assert!(response
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| c.to_str().is_ok_and(|c| c.contains("Max-Age=0"))));
    server.hopline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_header_is_believed_only_from_trusted_proxies() {
    for (trusted, expected) in [("127.0.0.1/32", 200), ("10.0.0.0/8", 401)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = hopline::config::ServeArgs {
            data_dir: Some(dir.path().to_path_buf()),
            otlp_grpc_addr: Some("127.0.0.1:0".into()),
            otlp_http_addr: Some("127.0.0.1:0".into()),
            http_addr: Some("127.0.0.1:0".into()),
            auth_proxy_header: Some("X-Forwarded-Email".into()),
            trusted_proxies: Some(vec![trusted.into()]),
            ..Default::default()
        };
        args.commit_interval = Some("100ms".into());
        let config = hopline::config::Config::load(args).expect("config");
        let hopline = hopline::Hopline::start(config).await.expect("start");
        let url = format!("http://{}/api/services", hopline.http_addr);
        let client = reqwest::Client::new();
        let response = client
            .get(&url)
            .header("x-forwarded-email", "alice@example.com")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), expected, "trusted {trusted}");
        let response = client.get(&url).send().await.expect("request");
        assert_eq!(response.status(), 401, "no user, no token");
        hopline.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_rate_a_tenant_gets_429_and_nothing_is_logged() {
    let toml = format!(
        "[[tenants]]\nname = \"tenant-a\"\ningest_tokens = [\"{INGEST_A}\"]\nquery_tokens = [\"{QUERY_A}\"]\nmax_records_per_second = 5\n\n[[tenants]]\nname = \"tenant-b\"\ningest_tokens = [\"{INGEST_B}\"]\n"
    );
    let server = start_with_tokens(&toml, |_| {}).await;
    let now = now_nanos();
    let spans: Vec<_> = (1..=20)
        .map(|i| span([3; 16], i, None, "burst", now, 1_000))
        .collect();
    let body = prost::Message::encode_to_vec(&traces_request("bursty", spans));
    // One request larger than a second's worth passes, the next waits.
    let response = post_as(&server, Some(INGEST_A), "/v1/traces", body.clone()).await;
    assert_eq!(response.status(), 200);
    let wal_before = server
        .hopline
        .metrics
        .wal_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let response = post_as(&server, Some(INGEST_A), "/v1/traces", body.clone()).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    // gRPC: ResourceExhausted with google.rpc.RetryInfo.
    let endpoint = format!("http://{}", server.hopline.otlp_grpc_addr);
    let mut client = TraceServiceClient::connect(endpoint)
        .await
        .expect("connect");
    let mut request = tonic::Request::new(traces_request(
        "bursty",
        vec![span([4; 16], 1, None, "b", now, 1)],
    ));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {INGEST_A}").parse().expect("metadata"),
    );
    let status = client.export(request).await.expect_err("throttled");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        String::from_utf8_lossy(status.details()).contains("google.rpc.RetryInfo"),
        "{status:?}"
    );
    assert_eq!(
        server
            .hopline
            .metrics
            .wal_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        wal_before,
        "a throttled request touched the log"
    );
    // Another tenant is not slowed.
    let response = post_as(&server, Some(INGEST_B), "/v1/traces", body).await;
    assert_eq!(response.status(), 200);
    let metrics = server.hopline.metrics.render();
    assert_eq!(
        metric(
            &metrics,
            "hopline_tenant_throttled_total{tenant=\"tenant-a\"}"
        ),
        2,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "hopline_tenant_throttled_total{tenant=\"tenant-b\"}"
        ),
        0
    );
    server.hopline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tokens_file_is_read_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, format!("ingest_tokens = [\"{INGEST_A}\"]\n")).expect("write");
    let server = TestServer::start_with(|config| {
        *config = config.clone().with_tokens_file(&tokens).expect("tokens");
    })
    .await;
    let body = || {
        prost::Message::encode_to_vec(&traces_request(
            "rotated",
            vec![span([5; 16], 1, None, "r", now_nanos(), 1)],
        ))
    };
    assert_eq!(
        post_as(&server, Some(INGEST_A), "/v1/traces", body())
            .await
            .status(),
        200
    );
    // Rotated: the old token goes, the new one comes, without a restart.
    std::fs::write(
        &tokens,
        format!("ingest_tokens = [\"{INGEST_B}\"]   # rotated\n"),
    )
    .expect("write");
    let rotated = eventually(Duration::from_secs(10), || async {
        (post_as(&server, Some(INGEST_B), "/v1/traces", body())
            .await
            .status()
            == 200)
            .then_some(())
    })
    .await;
    assert!(rotated.is_some(), "the new token was never accepted");
    assert_eq!(
        post_as(&server, Some(INGEST_A), "/v1/traces", body())
            .await
            .status(),
        401
    );
    // A broken file keeps the running tokens, and says why.
    std::fs::write(&tokens, "ingest_tokens = [\"short\"]\n").expect("write");
    let error = server.hopline.reload().expect_err("too short");
    assert!(format!("{error:#}").contains("too short"), "{error:#}");
    assert_eq!(
        post_as(&server, Some(INGEST_B), "/v1/traces", body())
            .await
            .status(),
        200
    );
    server.hopline.shutdown().await;
}

/// A CA, and server certificates for 127.0.0.1 signed by it.
struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Hopline test CA");
        let key = rcgen::KeyPair::generate().expect("key");
        Pki {
            ca: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    /// A certificate and key, PEM; `expired`: valid only in 2020.
    fn issue(&self, name: &str, expired: bool, client: bool) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("CA");
        roots
    }
}

fn write_pair(dir: &Path, (cert, key): (String, String)) {
    // Written beside and renamed, as cert-manager and certbot do.
    std::fs::write(dir.join("cert.pem.new"), cert).expect("cert");
    std::fs::write(dir.join("key.pem.new"), key).expect("key");
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).expect("rename");
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).expect("rename");
}

/// `GET path` over TLS with rustls, trusting `roots`; the status, or why the
/// handshake failed.
async fn https_get(
    addr: std::net::SocketAddr,
    roots: rustls::RootCertStore,
    path: &str,
) -> Result<u16, String> {
    https_get_body(addr, roots, path)
        .await
        .map(|(status, _)| status)
}

async fn https_get_body(
    addr: std::net::SocketAddr,
    roots: rustls::RootCertStore,
    path: &str,
) -> Result<(u16, String), String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {answer}"))?;
    Ok((status, answer.into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_replaced_while_running_is_served() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pair(dir.path(), pki.issue("127.0.0.1", true, false));
    let server = TestServer::start_with(|config| {
        config.tls = Some(hopline::config::TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: None,
        });
    })
    .await;
    let api = server.hopline.http_addr;
    let error = https_get(api, pki.roots(), "/health")
        .await
        .expect_err("expired");
    assert!(error.to_lowercase().contains("expired"), "{error}");
    // Plain HTTP is not served on a TLS port.
    assert!(server
        .http
        .get(server.api_url("/health"))
        .send()
        .await
        .is_err());

    write_pair(dir.path(), pki.issue("127.0.0.1", false, false));
    let renewed = eventually(Duration::from_secs(10), || async {
        https_get(api, pki.roots(), "/health").await.ok()
    })
    .await;
    assert_eq!(renewed, Some(200));
    // All three listeners serve it.
    for addr in [server.hopline.otlp_http_addr, server.hopline.otlp_grpc_addr] {
        let status = https_get(addr, pki.roots(), "/v1/traces")
            .await
            .expect("TLS");
        assert!(
            status == 405 || status == 415 || status == 404 || status == 200,
            "{status}"
        );
    }
    server.hopline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_lets_only_clients_with_a_certificate_send() {
    use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithTonicConfig};
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pair(dir.path(), pki.issue("127.0.0.1", false, false));
    std::fs::write(dir.path().join("ca.pem"), pki.ca.pem()).expect("ca");
    let server = TestServer::start_with(|config| {
        config.tls = Some(hopline::config::TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: Some(dir.path().join("ca.pem")),
        });
    })
    .await;
    let endpoint = format!("https://127.0.0.1:{}", server.hopline.otlp_grpc_addr.port());
    let ca = tonic::transport::Certificate::from_pem(pki.ca.pem());
    let export = |identity: Option<tonic::transport::Identity>| {
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name("127.0.0.1");
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        let mut exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_tls_config(tls)
            .with_timeout(Duration::from_secs(5))
            .build()
            .expect("exporter");
        async move {
            use opentelemetry_sdk::trace::SpanExporter as _;
            exporter.set_resource(
                &opentelemetry_sdk::Resource::builder_empty()
                    .with_service_name("mtls-service")
                    .build(),
            );
            let span = sdk_span("mtls-op");
            exporter.export(vec![span]).await
        }
    };
    assert!(export(None).await.is_err(), "no client certificate");
    let (cert, key) = pki.issue("orders", false, true);
    let result = export(Some(tonic::transport::Identity::from_pem(cert, key))).await;
    assert!(result.is_ok(), "{result:?}");
    server.flush().await;
    // The query API needs no client certificate.
    let (status, body) = https_get_body(server.hopline.http_addr, pki.roots(), "/api/services")
        .await
        .expect("TLS");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("mtls-service"), "{body}");
    server.hopline.shutdown().await;
}

/// One finished span of service `mtls-service`, as the SDK hands it to an exporter.
fn sdk_span(name: &str) -> opentelemetry_sdk::trace::SpanData {
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::InstrumentationScope;
    let now = std::time::SystemTime::now();
    opentelemetry_sdk::trace::SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes([0x6d; 16]),
            SpanId::from_bytes([1; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Server,
        name: name.to_string().into(),
        start_time: now - Duration::from_millis(5),
        end_time: now,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("mtls").build(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_tokens_file_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, format!("ingest_tokens = [\"{INGEST_A}\"]\n")).expect("write");
    let tokens_arg = tokens.to_str().expect("utf-8 path");
    let collector = spawn_collector(&dir.path().join("data"), &["--tokens-file", tokens_arg]);
    let client = reqwest::Client::new();
    let post = |token: &'static str| {
        let (client, url) = (client.clone(), format!("{}/v1/traces", collector.http));
        async move {
            let request = traces_request("hup", vec![span([6; 16], 1, None, "h", now_nanos(), 1)]);
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/x-protobuf")
                .body(prost::Message::encode_to_vec(&request))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(INGEST_A).await, 200);
    std::fs::write(&tokens, format!("ingest_tokens = [\"{INGEST_B}\"]\n")).expect("write");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &collector.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // Read again (SIGHUP's default would have ended the process).
    let rotated = eventually(Duration::from_secs(10), || async {
        (post(INGEST_B).await == 200).then_some(())
    })
    .await;
    assert!(rotated.is_some(), "the new token was never accepted");
    assert_eq!(post(INGEST_A).await, 401);
    let log = collector.log().join("\n");
    assert!(log.contains("SIGHUP"), "{log}");
    assert!(
        !log.contains(INGEST_A) && !log.contains(INGEST_B),
        "a token was logged: {log}"
    );
}
