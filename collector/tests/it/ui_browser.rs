//! The web UI in headless Chromium (Debian's package, driven by `ui/e2e/browser.mjs`
//! with playwright-core): a known three-service trace and its logs are sent over
//! OTLP, then the browser searches, opens the trace, selects a span, reads the logs
//! tab, follows a log line to its trace and checks the service map. Screenshots go
//! to `HOPLINE_SCREENSHOTS` (default `<target>/ui-screenshots`).
//!
//! Needs `node`, Chromium (`/usr/bin/chromium` or `CHROMIUM`) and `npm ci` in
//! `ui/e2e`; without them the test is skipped, unless `HOPLINE_REQUIRE_BROWSER=1`
//! (CI sets it). With the wasm bundle built (`cargo xtask ui`) it also checks
//! hydration: keyboard navigation and a clean browser console.

use std::path::{Path, PathBuf};

use crate::common::*;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn missing_prerequisite() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    for module in ["playwright-core", "axe-core"] {
        if !workspace()
            .join("ui/e2e/node_modules")
            .join(module)
            .exists()
        {
            return Some(format!(
                "ui/e2e has no node_modules/{module} (cd ui/e2e && npm ci)"
            ));
        }
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("no node on PATH".into());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_in_a_real_browser() {
    if let Some(missing) = missing_prerequisite() {
        assert!(
            std::env::var("HOPLINE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "browser tests required, but {missing}"
        );
        eprintln!("skipping the browser test: {missing}");
        return;
    }
    let site = target_dir().join("site");
    let bundle = hopline::api::ui::Bundle::find(&site.join("pkg"));
    let hydrated = bundle.is_some();
    // As deployed: tokens, so the browser signs in first.
    const INGEST: &str = "browser-ingest-token-0123456789";
    const QUERY: &str = "browser-query-token-0123456789";
    let tokens = tempfile::NamedTempFile::new().expect("tokens file");
    std::fs::write(
        tokens.path(),
        format!("ingest_tokens = [\"{INGEST}\"]\nquery_tokens = [\"{QUERY}\"]\n"),
    )
    .expect("tokens");
    let server = TestServer::start_with(|config| {
        config.ui_dir = site.clone();
        *config = config
            .clone()
            .with_tokens_file(tokens.path())
            .expect("tokens file");
    })
    .await;
    let server = server.with_token(INGEST, QUERY);

    let trace = [0x5e; 16];
    let now = now_nanos() - 5_000_000_000;
    let ms = 1_000_000;
    let mut root = span(trace, 1, None, "GET /checkout", now, 120 * ms);
    root.attributes.push(string_kv("http.route", "/checkout"));
    let mut orders = span(trace, 2, Some(1), "POST /orders", now + 5 * ms, 100 * ms);
    orders.attributes.push(string_kv("http.route", "/orders"));
    let mut charge = span(trace, 3, Some(2), "charge card", now + 10 * ms, 60 * ms);
    charge.kind = 3;
    charge
        .attributes
        .push(string_kv("payment.provider", "acme-pay"));
    charge.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        code: 2,
        message: "card declined".into(),
    });
    let mut insert = span(trace, 4, Some(2), "INSERT orders", now + 75 * ms, 20 * ms);
    insert.kind = 3;
    for (service, spans) in [
        ("frontend", vec![root]),
        ("checkout", vec![orders, insert]),
        ("payments", vec![charge]),
    ] {
        let mut request = traces_request(service, spans);
        if let Some(resource) = request.resource_spans[0].resource.as_mut() {
            resource
                .attributes
                .push(string_kv("host.name", &format!("{service}-1")));
        }
        assert_eq!(
            server.post_protobuf("/v1/traces", &request).await.status(),
            200
        );
    }
    // More frontend traces, for sorting over every match: an older, slow one
    // whose client call got a 404 (the server span is no error), two fast ones,
    // and one whose parent span never came.
    let slow = [0x51; 16];
    let mut call = span(slow, 2, Some(1), "GET /stock", now - 35_000 * ms, 700 * ms);
    call.kind = 3;
    call.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        code: 2,
        message: "404 Not Found".into(),
    });
    let extra = [
        (
            "frontend",
            vec![
                span(slow, 1, None, "GET /slow", now - 35_000 * ms, 800 * ms),
                call,
            ],
        ),
        (
            "inventory",
            vec![span(
                slow,
                3,
                Some(2),
                "GET /stock",
                now - 34_990 * ms,
                600 * ms,
            )],
        ),
        (
            "frontend",
            vec![span(
                [0x52; 16],
                1,
                None,
                "GET /fast",
                now - 3_000 * ms,
                2 * ms,
            )],
        ),
        (
            "frontend",
            vec![span(
                [0x53; 16],
                1,
                None,
                "GET /fast",
                now - 2_000 * ms,
                3 * ms,
            )],
        ),
        (
            "frontend",
            vec![span(
                [0x54; 16],
                2,
                Some(9),
                "GET /orphan",
                now - 1_000 * ms,
                5 * ms,
            )],
        ),
    ];
    for (service, spans) in extra {
        assert_eq!(
            server
                .post_protobuf("/v1/traces", &traces_request(service, spans))
                .await
                .status(),
            200
        );
    }
    let mut declined = log_record(Some(trace), now + 40 * ms, 17, "payment declined by issuer");
    declined.span_id = vec![3; 8];
    let mut started = log_record(Some(trace), now + 6 * ms, 9, "checkout started");
    started.span_id = vec![2; 8];
    let mut stored = log_record(Some(trace), now + 90 * ms, 9, "order stored");
    stored.span_id = vec![4; 8];
    assert_eq!(
        server
            .post_protobuf("/v1/logs", &logs_request("payments", vec![declined]))
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .post_protobuf("/v1/logs", &logs_request("checkout", vec![started, stored]))
            .await
            .status(),
        200
    );
    server.flush().await;

    let shots = std::env::var_os("HOPLINE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("ui-screenshots"));
    let base = format!("http://{}", server.hopline.http_addr);
    let output = tokio::process::Command::new("node")
        .current_dir(workspace().join("ui/e2e"))
        .arg("browser.mjs")
        .arg(&base)
        .arg(hex(&trace))
        .arg(&shots)
        .arg(if hydrated { "1" } else { "0" })
        .arg(server.otlp_url(""))
        .arg(QUERY)
        .arg(INGEST)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "browser checks failed:\n{stdout}");
    assert!(
        stdout.contains(if hydrated {
            "54 passed, 0 failed"
        } else {
            "43 passed, 0 failed"
        }),
        "{stdout}"
    );
    // Pages go out gzip'd to those that take it, as they are to others.
    let page = |encoding: Option<&'static str>| {
        let mut request = server
            .http
            .get(format!("{base}/search?service=frontend&lookback=1h"))
            .bearer_auth(QUERY);
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        request.send()
    };
    let plain = page(None).await.expect("page");
    assert!(!plain.headers().contains_key("content-encoding"));
    let plain = plain.bytes().await.expect("page");
    for refused in ["identity", "gzip;q=0"] {
        let response = page(Some(refused)).await.expect("page");
        assert!(
            !response.headers().contains_key("content-encoding"),
            "{refused}"
        );
    }
    let gzipped = page(Some("br, gzip")).await.expect("page");
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let gzipped = gzipped.bytes().await.expect("page");
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gzipped[..]),
        &mut unzipped,
    )
    .expect("gunzip");
    // Same page but for its nonce; a fraction of the size.
    assert!(
        unzipped.len().abs_diff(plain.len()) < 64,
        "{} vs {}",
        unzipped.len(),
        plain.len()
    );
    assert!(
        gzipped.len() * 3 < plain.len(),
        "{} of {}",
        gzipped.len(),
        plain.len()
    );
    println!(
        "search page: {} bytes, {} gzip'd",
        plain.len(),
        gzipped.len()
    );
    if let Some(bundle) = bundle {
        // The bundle has content-hashed names, is served gzip'd and kept for good.
        let page = server
            .http
            .get(format!("{base}/search"))
            .bearer_auth(QUERY)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("page");
        for name in [
            format!("/pkg/{}.js", bundle.name),
            format!("/pkg/{}", bundle.stylesheet),
        ] {
            assert!(page.contains(&name), "the page does not load {name}");
        }
        let url = format!("{base}/pkg/{}_bg.wasm", bundle.name);
        let response = server
            .http
            .get(&url)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("wasm");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/wasm");
        assert_eq!(response.headers()["content-encoding"], "gzip");
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let etag = response.headers()["etag"]
            .to_str()
            .expect("etag")
            .to_string();
        let again = server
            .http
            .get(&url)
            .header("accept-encoding", "gzip")
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("wasm");
        assert_eq!(again.status(), 304);
    }
    server.hopline.shutdown().await;
}
