//! The MCP server with the official Python SDK (`mcp` on PyPI) as the client:
//! over streamable HTTP at `/mcp` with a query token, and over stdio through
//! `hopline mcp`, it lists every tool and calls each; tenants stay apart; and
//! `/mcp` refuses what it must (no token, another site's page, an oversized or
//! malformed body).

use opentelemetry_proto::tonic::trace::v1::Status;
use serde_json::Value;

use crate::common::*;
use crate::senders::{python, run_python};

const INGEST: &str = "mcp-ingest-default-0123456789";
const QUERY: &str = "mcp-query-default-0123456789";
const OTHER_INGEST: &str = "mcp-ingest-other-0123456789";
const OTHER_QUERY: &str = "mcp-query-other-0123456789";

const FAST: [u8; 16] = [0x0f; 16];
const SLOW: [u8; 16] = [0x5e; 16];
const MS: u64 = 1_000_000;

/// Connects over HTTP and over stdio, lists the tools and makes the calls of
/// argv[4] (`[[name, arguments], ...]`) on each; prints what came back.
const CLIENT: &str = r#"
import asyncio, json, sys
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

url, token, hopline, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])

async def run(session):
    await session.initialize()
    listed = await session.list_tools()
    out = {"tools": sorted(tool.name for tool in listed.tools), "calls": []}
    for name, arguments in calls:
        result = await session.call_tool(name, arguments)
        text = "".join(block.text for block in result.content if block.type == "text")
        out["calls"].append({"name": name, "error": bool(result.is_error), "text": text})
    return out

async def main():
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client:
        async with streamable_http_client(url + "/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                over_http = await run(session)
    server = StdioServerParameters(command=hopline, args=["mcp", "--url", url, "--token", token])
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            over_stdio = await run(session)
    print(json.dumps({"http": over_http, "stdio": over_stdio}))

asyncio.run(main())
"#;

fn failing(
    mut span: opentelemetry_proto::tonic::trace::v1::Span,
    message: &str,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    span.status = Some(Status {
        code: 2,
        message: message.into(),
    });
    span
}

async fn start() -> TestServer {
    let tokens = tempfile::NamedTempFile::new().expect("tokens file");
    std::fs::write(
        tokens.path(),
        format!(
            r#"
ingest_tokens = ["{INGEST}"]
query_tokens = ["{QUERY}"]

[[tenants]]
name = "mcp-other"
ingest_tokens = ["{OTHER_INGEST}"]
query_tokens = ["{OTHER_QUERY}"]
"#
        ),
    )
    .expect("write tokens");
    let server = TestServer::start_with(|config| {
        *config = config
            .clone()
            .with_tokens_file(tokens.path())
            .expect("valid tokens file");
    })
    .await
    .with_token(INGEST, QUERY);
    let base = now_nanos() - 60_000 * MS;
    // The same request twice: fast, then slow with a failing, retried query.
    server
        .export(
            "/v1/traces",
            &traces_request(
                "mcp-gateway",
                vec![
                    span(FAST, 1, None, "GET /order", base, 30 * MS),
                    span(SLOW, 1, None, "GET /order", base + 1_000 * MS, 130 * MS),
                ],
            ),
        )
        .await;
    server
        .export(
            "/v1/traces",
            &traces_request(
                "mcp-orders",
                vec![
                    span(FAST, 2, Some(1), "load order", base + 5 * MS, 20 * MS),
                    span(SLOW, 2, Some(1), "load order", base + 1_005 * MS, 115 * MS),
                    failing(
                        span(
                            SLOW,
                            3,
                            Some(2),
                            "SELECT orders",
                            base + 1_010 * MS,
                            100 * MS,
                        ),
                        "deadlock detected",
                    ),
                ],
            ),
        )
        .await;
    server
        .export(
            "/v1/logs",
            &logs_request(
                "mcp-orders",
                vec![log_record(
                    Some(SLOW),
                    base + 1_050 * MS,
                    17,
                    "deadlock detected, retrying",
                )],
            ),
        )
        .await;
    // Another tenant's service, which the default tenant's token must not see.
    let other = server
        .http
        .post(server.otlp_url("/v1/traces"))
        .bearer_auth(OTHER_INGEST)
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&traces_request(
            "mcp-secret",
            vec![span([0x77; 16], 1, None, "secret work", base, 10 * MS)],
        )))
        .send()
        .await
        .expect("export");
    assert_eq!(other.status(), 200);
    server.flush().await;
    server
}

fn call<'a>(calls: &'a Value, name: &str) -> &'a Value {
    calls
        .as_array()
        .expect("calls")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no call of {name}: {calls}"))
}

/// A call's answer, parsed; it must not be an error.
fn answer(calls: &Value, name: &str) -> Value {
    let call = call(calls, name);
    assert_eq!(call["error"], false, "{name}: {call}");
    serde_json::from_str(call["text"].as_str().expect("text"))
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {call}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_lists_and_calls_every_tool_over_http_and_stdio() {
    let Some(python) = python() else { return };
    let server = start().await;
    let url = format!("http://{}", server.hopline.http_addr);
    let (slow, fast) = (hex(&SLOW), hex(&FAST));
    let calls = serde_json::json!([
        ["list_services", {}],
        ["list_operations", {"service": "mcp-orders"}],
        ["find_traces", {"service": "mcp-gateway", "sort": "longest", "lookback": "2h"}],
        ["get_trace", {"trace_id": slow}],
        ["compare_traces", {"trace_a": fast, "trace_b": slow}],
        ["search_logs", {"service": "mcp-orders", "query": "deadlock", "lookback": "2h"}],
        ["service_map", {"lookback": "2h"}],
        ["service_health", {"lookback": "2h"}],
        ["get_trace", {"trace_id": "not-a-trace-id"}],
    ]);
    let url_clone = url.clone();
    let output = tokio::task::spawn_blocking(move || {
        run_python(
            &python,
            CLIENT,
            &[
                &url_clone,
                QUERY,
                env!("CARGO_BIN_EXE_hopline"),
                &calls.to_string(),
            ],
        )
    })
    .await
    .expect("python");
    for transport in ["http", "stdio"] {
        let out = &output[transport];
        assert_eq!(
            out["tools"],
            serde_json::json!([
                "compare_traces",
                "find_traces",
                "get_trace",
                "list_operations",
                "list_services",
                "search_logs",
                "service_health",
                "service_map"
            ]),
            "{transport}"
        );
        let calls = &out["calls"];
        let services = answer(calls, "list_services");
        assert_eq!(
            services["services"],
            serde_json::json!(["mcp-gateway", "mcp-orders"]),
            "{transport}: another tenant's service shows"
        );
        let operations = answer(calls, "list_operations").to_string();
        assert!(operations.contains("SELECT orders"), "{operations}");

        let found = answer(calls, "find_traces");
        assert_eq!(found["traces"][0]["trace_id"], slow, "{transport}: {found}");
        assert_eq!(found["traces"][0]["duration_ms"], 130.0);
        assert_eq!(found["traces"][0]["errors"], 1);
        assert_eq!(found["traces"][1]["trace_id"], fast);
        let link = found["traces"][0]["link"].as_str().expect("link");
        assert_eq!(link, format!("{url}/trace/{slow}"));

        let trace = answer(calls, "get_trace");
        assert_eq!(
            trace["critical_path"][0]["operation"], "SELECT orders",
            "{trace}"
        );
        assert_eq!(trace["errors"][0]["message"], "deadlock detected");
        assert_eq!(trace["root"]["service"], "mcp-gateway");
        assert_eq!(trace["spans"], 3);

        let compared = answer(calls, "compare_traces");
        assert_eq!(
            compared["paths"][0]["operation"], "SELECT orders",
            "{compared}"
        );
        assert_eq!(compared["paths"][0]["in"], "only in b");
        assert_eq!(compared["link"], format!("{url}/trace/{fast}...{slow}"));

        let logs = answer(calls, "search_logs");
        assert_eq!(
            logs["lines"][0]["body"], "deadlock detected, retrying",
            "{logs}"
        );
        assert_eq!(logs["lines"][0]["trace_id"], slow);

        let map = answer(calls, "service_map").to_string();
        assert!(
            map.contains(r#""parent":"mcp-gateway""#) && map.contains(r#""child":"mcp-orders""#),
            "{map}"
        );
        let health = answer(calls, "service_health");
        let gateway = health["services"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|row| row["service"] == "mcp-gateway")
            .unwrap_or_else(|| panic!("{health}"));
        assert_eq!(gateway["figures"]["calls"], 2, "{health}");

        // A bad argument is the tool's error, which the model reads.
        let bad = &calls[8];
        assert_eq!(bad["error"], true, "{bad}");
        assert!(
            bad["text"]
                .as_str()
                .expect("text")
                .contains("malformed trace id"),
            "{bad}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_takes_the_query_token_and_tenant_and_refuses_hostile_requests() {
    let server = start().await;
    let url = server.api_url("/mcp");
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_services","arguments":{}}}"#;
    let post = |token: Option<&str>, body: String, origin: Option<&str>| {
        let mut request = server
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    // No token, or an ingest token: refused before MCP reads a byte.
    for token in [None, Some(INGEST)] {
        let response = post(token, list.into(), None).await.expect("request");
        assert!(
            [401, 403].contains(&response.status().as_u16()),
            "{token:?}: {}",
            response.status()
        );
    }
    // The other tenant's token sees the other tenant's services only.
    let response = post(Some(OTHER_QUERY), list.into(), None)
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let text = body["result"]["content"][0]["text"].as_str().expect("text");
    assert_eq!(text, r#"{"services":["mcp-secret"]}"#, "{body}");
    // A page of another site, which a browser lets post with a signed-in cookie.
    let response = post(Some(QUERY), list.into(), Some("https://evil.example"))
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    // One byte larger than a request may be (1 MiB), then not JSON-RPC at all.
    // Just one byte over: the server reads the whole body before it refuses, so
    // its answer cannot race the client's writing (past a few hundred KiB left
    // unread, the client's write met a closed connection now and then).
    let (head, tail) = (
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_logs","arguments":{"query":""#,
        r#""}}}"#,
    );
    let limit = hopline::api::mcp::MAX_REQUEST_BYTES;
    let huge = format!(
        "{head}{}{tail}",
        "a".repeat(limit + 1 - head.len() - tail.len())
    );
    assert_eq!(huge.len(), limit + 1);
    let response = post(Some(QUERY), huge, None).await.expect("request");
    assert_eq!(response.status(), 413);
    for garbage in [
        "{",
        "[]",
        r#"{"jsonrpc":"2.0","id":1,"method":"no/such"}"#,
        "\u{0}\u{1}",
    ] {
        let response = post(Some(QUERY), garbage.into(), None)
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert!(
            (400..500).contains(&status) || text.contains("\"error\""),
            "{garbage:?}: {status} {text}"
        );
    }
    // A tool's arguments of the wrong shape: a JSON-RPC error, not a crash.
    let wrong = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_trace","arguments":{"trace_id":7}}}"#;
    let response = post(Some(QUERY), wrong.into(), None)
        .await
        .expect("request");
    let text = response.text().await.expect("body");
    assert!(
        text.contains("\"error\"") || text.contains("\"isError\":true"),
        "{text}"
    );
    // Still answering.
    let response = post(Some(QUERY), list.into(), None).await.expect("request");
    assert_eq!(response.status(), 200);
}
