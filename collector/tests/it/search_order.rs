//! Log search pages: `offset` with the window's `end` pinned pages through every
//! match exactly once, newest first, while new lines arrive.
//!
//! Trace search over every match: `sort=` orders all the traces that match in the
//! window (not only the newest page), `total` counts them, the service is
//! optional; and the service map counts a call as failed when the caller's client
//! span failed.

use opentelemetry_proto::tonic::trace::v1::Status;

use crate::common::*;

fn ids(body: &serde_json::Value) -> Vec<String> {
    body["data"]
        .as_array()
        .map(|traces| {
            traces
                .iter()
                .map(|t| t["traceID"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A trace as sent: id, duration, spans, whether it failed.
type Sent = (String, u64, u8, bool);

#[tokio::test]
async fn sorts_count_and_span_services_over_every_match() {
    let server = TestServer::start().await;
    let ms = 1_000_000;
    let base = now_nanos() - 60_000 * ms;
    // Ten gateway traces, one a second, the newest last. Trace n lasts
    // (n * 37 % 10 + 1) * 10 ms and has n % 4 + 1 order-service spans; traces 2
    // and 7 fail in order-service. The three longest (7, 4 and 1) are not the
    // three newest (9, 8 and 7): a sort of the newest page would miss two.
    let mut expected: Vec<Sent> = Vec::new();
    for n in 0..10u8 {
        let trace = [n + 1; 16];
        let start = base + u64::from(n) * 1_000 * ms;
        let duration = (u64::from(n) * 37 % 10 + 1) * 10 * ms;
        let root = span(trace, 1, None, "GET /checkout", start, duration);
        let children: Vec<_> = (0..n % 4 + 1)
            .map(|i| {
                let mut child = span(trace, 2 + i, Some(1), "SELECT", start + ms, ms);
                if i == 0 && (n == 2 || n == 7) {
                    child.status = Some(Status {
                        code: 2,
                        message: "deadlock".into(),
                    });
                }
                child
            })
            .collect();
        server
            .export("/v1/traces", &traces_request("gateway", vec![root]))
            .await;
        server
            .export("/v1/traces", &traces_request("order-service", children))
            .await;
        expected.push((hex(&trace), duration, n % 4 + 2, n == 2 || n == 7));
    }
    server.flush().await;
    let by = |key: fn(&Sent) -> (u64, u64)| {
        let mut sorted: Vec<_> = expected.iter().enumerate().collect();
        // Ties go to the newer trace.
        sorted.sort_by_key(|(n, t)| (std::cmp::Reverse(key(t)), std::cmp::Reverse(*n)));
        sorted
            .into_iter()
            .take(3)
            .map(|(_, t)| t.0.clone())
            .collect::<Vec<_>>()
    };

    let (status, body) = server.get("/api/traces?service=gateway&limit=3").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 10, "{body}");
    let newest: Vec<String> = expected.iter().rev().take(3).map(|t| t.0.clone()).collect();
    assert_eq!(ids(&body), newest);

    for word in ["longest", "duration"] {
        let (_, body) = server
            .get(&format!("/api/traces?service=gateway&limit=3&sort={word}"))
            .await;
        assert_eq!(body["total"], 10, "{body}");
        assert_eq!(ids(&body), by(|t| (t.1, 0)), "sort={word}");
    }
    let (_, body) = server
        .get("/api/traces?service=gateway&limit=3&sort=spans")
        .await;
    assert_eq!(ids(&body), by(|t| (u64::from(t.2), 0)));
    let (_, body) = server
        .get("/api/traces?service=gateway&limit=2&sort=errors")
        .await;
    assert_eq!(
        ids(&body),
        vec![expected[7].0.clone(), expected[2].0.clone()]
    );
    let (_, body) = server
        .get("/api/traces?service=gateway&limit=2&sort=oldest")
        .await;
    assert_eq!(
        ids(&body),
        vec![expected[0].0.clone(), expected[1].0.clone()]
    );

    // Every service: the failing spans are order-service's, their traces found
    // without naming it.
    let (status, body) = server
        .get(&format!(
            "/api/traces?tags={}&limit=20",
            urlencode(r#"{"error":"true"}"#)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 2, "{body}");
    assert_eq!(
        ids(&body),
        vec![expected[7].0.clone(), expected[2].0.clone()]
    );
    let (_, body) = server.get("/api/traces?limit=20").await;
    assert_eq!(body["total"], 10, "{body}");

    let (status, body) = server.get("/api/traces?service=gateway&sort=loudest").await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("invalid sort 'loudest'")),
        "{body}"
    );
}

#[tokio::test]
async fn a_failed_client_call_counts_as_a_failed_edge() {
    let server = TestServer::start().await;
    let ms = 1_000_000;
    let start = now_nanos() - 10_000 * ms;
    // gateway's client span got a 404 (an error for a client); order-service's
    // server span is no error (a 4xx is the client's fault). One good call too.
    for (n, fails) in [(1u8, true), (2, false)] {
        let trace = [n; 16];
        let root = span(trace, 1, None, "POST /api/orders", start, 20 * ms);
        let mut call = span(trace, 2, Some(1), "POST", start + ms, 10 * ms);
        call.kind = 3;
        if fails {
            call.status = Some(Status {
                code: 2,
                message: "404 Not Found".into(),
            });
        }
        let served = span(trace, 3, Some(2), "POST /orders", start + 2 * ms, 8 * ms);
        server
            .export("/v1/traces", &traces_request("gateway", vec![root, call]))
            .await;
        server
            .export("/v1/traces", &traces_request("order-service", vec![served]))
            .await;
    }
    server.flush().await;
    let (status, body) = server.get("/api/dependencies").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        serde_json::json!([{
            "parent": "gateway", "child": "order-service", "callCount": 2, "errorCount": 1,
            "p50": 8.0, "p95": 8.0, "p99": 8.0,
        }])
    );
}

#[tokio::test]
async fn log_pages_cover_every_match_once_while_lines_arrive() {
    let server = TestServer::start().await;
    let ms = 1_000_000;
    let base = now_nanos() - 60_000 * ms;
    // 25 matching lines, one a millisecond apart, and noise that does not match.
    let records: Vec<_> = (0..25u64)
        .flat_map(|n| {
            [
                log_record(None, base + n * ms, 9, &format!("page line {n}")),
                log_record(None, base + n * ms, 9, &format!("noise {n}")),
            ]
        })
        .collect();
    server
        .export("/v1/logs", &logs_request("pager", records))
        .await;
    server.flush().await;
    let (status, first) = server
        .get("/api/logs?query=page&lookback=1h&limit=10")
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["total"].as_u64(), first["offset"].as_u64()),
        (Some(25), Some(0))
    );
    let end = first["end"].as_u64().expect("end");
    // A newer matching line arrives after the first page: later pages keep the
    // first page's window, so it shifts nothing.
    server
        .export(
            "/v1/logs",
            &logs_request(
                "pager",
                vec![log_record(None, now_nanos(), 9, "page line late")],
            ),
        )
        .await;
    server.flush().await;
    let mut seen: Vec<String> = Vec::new();
    for offset in [0, 10, 20] {
        let (status, page) = server
            .get(&format!(
                "/api/logs?query=page&lookback=1h&limit=10&offset={offset}&end={end}"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 25, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|line| line["body"].as_str().unwrap_or_default().to_string()),
        );
    }
    let expected: Vec<String> = (0..25).rev().map(|n| format!("page line {n}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_cursors_page_through_lines_of_one_time_exactly() {
    let server = TestServer::start().await;
    let base = now_nanos() - 60_000_000_000;
    // 24 matching lines at three times only, sent in four batches (segments);
    // "tie 0" and "tie 1" come twice, as identical lines.
    for batch in 0..4u64 {
        let records: Vec<_> = (0..6u64)
            .map(|n| {
                let line = batch * 6 + n;
                let body = if line < 4 {
                    format!("tie {}", line % 2)
                } else {
                    format!("tie {line}")
                };
                log_record(None, base + (line % 3) * 1_000, 9, &body)
            })
            .collect();
        server
            .export("/v1/logs", &logs_request("pager", records))
            .await;
    }
    server.flush().await;
    let mut cursor: Option<String> = None;
    let mut end = None;
    let mut got: Vec<(u64, String)> = Vec::new();
    for page in 0.. {
        assert!(page < 10, "the pages do not end");
        let mut url = "/api/logs?query=tie&lookback=1h&limit=5".to_string();
        if let (Some(cursor), Some(end)) = (&cursor, end) {
            url.push_str(&format!("&cursor={cursor}&end={end}"));
        }
        let (status, answer) = server.get(&url).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["total"], 24, "{answer}");
        end = end.or(answer["end"].as_u64());
        for line in answer["data"].as_array().expect("data") {
            let time: u64 = line["timeUnixNano"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("time");
            got.push((time, line["body"].as_str().unwrap_or_default().to_string()));
        }
        // A newer matching line after each page: outside the pinned window.
        server
            .export(
                "/v1/logs",
                &logs_request("pager", vec![log_record(None, now_nanos(), 9, "tie late")]),
            )
            .await;
        server.flush().await;
        match answer["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => {
                assert!(answer["nextCursor"].is_null(), "{answer}");
                break;
            }
        }
    }
    assert_eq!(got.len(), 24, "{got:?}");
    assert!(
        got.windows(2).all(|w| w[0].0 >= w[1].0),
        "newest first: {got:?}"
    );
    let mut bodies: Vec<String> = got.into_iter().map(|g| g.1).collect();
    bodies.sort();
    let mut want: Vec<String> = (0..24u64)
        .map(|line| {
            if line < 4 {
                format!("tie {}", line % 2)
            } else {
                format!("tie {line}")
            }
        })
        .collect();
    want.sort();
    assert_eq!(bodies, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_download_streams_every_matching_line_as_ndjson_or_csv() {
    let server = TestServer::start().await;
    let base = now_nanos() - 60_000_000_000;
    // 2,500 matching lines (more than a download's page of 1,000), ten to a
    // microsecond, and one whose body needs quoting in CSV.
    for batch in 0..5u64 {
        let records: Vec<_> = (0..500u64)
            .map(|n| {
                let line = batch * 500 + n;
                let body = if line == 7 {
                    "=cmd|' /C calc'!A0, said \"x\"\nthen".to_string()
                } else {
                    format!("download {line}")
                };
                log_record(None, base + line / 10 * 1_000, 9, &body)
            })
            .collect();
        server
            .export("/v1/logs", &logs_request("exporter", records))
            .await;
    }
    server
        .export(
            "/v1/logs",
            &logs_request(
                "other",
                vec![log_record(None, base, 9, "download elsewhere")],
            ),
        )
        .await;
    server.flush().await;
    let fetch = |query: String| {
        let url = server.api_url(&format!(
            "/api/logs/export?service=exporter&lookback=1h&{query}"
        ));
        async move {
            let response = reqwest::get(url).await.expect("export");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            (status, headers, response.text().await.expect("body"))
        }
    };

    let (status, headers, body) = fetch("format=ndjson".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert!(headers["content-disposition"]
        .to_str()
        .is_ok_and(|d| d.starts_with("attachment")));
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2_500);
    let mut bodies: Vec<&str> = lines
        .iter()
        .map(|l| l["body"].as_str().unwrap_or_default())
        .collect();
    let times: Vec<u64> = lines
        .iter()
        .map(|l| {
            l["timeUnixNano"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("time")
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    bodies.sort_unstable();
    bodies.dedup();
    assert_eq!(bodies.len(), 2_500, "every line once");

    let (status, headers, body) = fetch("format=csv&limit=1500".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        body.starts_with("time,timeUnixNano,severity,service,body,traceID,spanID,attributes\r\n")
    );
    // 1,500 rows after the header; the oldest lines, among them line 7, are
    // past the limit.
    assert_eq!(body.matches("\r\n").count(), 1_501, "{}", &body[..200]);
    assert!(!body.contains("calc"));
    let (_, _, all) = fetch("format=csv".into()).await;
    assert_eq!(all.matches("\r\n").count(), 2_501);
    assert!(
        all.contains(",\"'=cmd|' /C calc'!A0, said \"\"x\"\"\nthen\","),
        "the quoted, defused body"
    );

    for (query, why) in [
        ("format=xml", "invalid format 'xml'"),
        ("limit=many", "invalid limit 'many'"),
        ("offset=10", "offset"),
        ("query=(", "malformed query"),
    ] {
        let (status, _, body) = fetch(query.into()).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(why), "{query}: {body}");
    }
}

/// Sends `count` gateway traces from `first` on, a second apart from `base`:
/// trace n lasts (n % 6 + 1) * 10 ms (many share a duration) and has n % 3 + 1
/// spans. Returns their ids.
async fn send_traces(server: &TestServer, base: u64, first: u8, count: u8) -> Vec<String> {
    let ms = 1_000_000;
    let mut sent = Vec::new();
    for n in first..first + count {
        let trace = [n + 1; 16];
        let start = base + u64::from(n) * 1_000 * ms;
        let duration = (u64::from(n) % 6 + 1) * 10 * ms;
        let mut spans = vec![span(trace, 1, None, "GET /checkout", start, duration)];
        for i in 0..n % 3 {
            spans.push(span(trace, 2 + i, Some(1), "SELECT", start + ms, ms));
        }
        server
            .export("/v1/traces", &traces_request("gateway", spans))
            .await;
        sent.push(hex(&trace));
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_cursors_page_through_every_match_once_while_traces_arrive() {
    let server = TestServer::start().await;
    let base = now_nanos() - 600_000_000_000;
    let first = send_traces(&server, base, 0, 45).await;
    server.flush().await;
    let mut late = 45u8;
    for sort in ["recent", "longest", "spans", "oldest"] {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut url = format!("/api/traces?service=gateway&lookback=1h&limit=7&sort={sort}");
            if let Some(cursor) = &cursor {
                url.push_str(&format!("&cursor={}", urlencode(cursor)));
            }
            let (status, body) = server.get(&url).await;
            assert_eq!(status, 200, "{body}");
            seen.extend(ids(&body));
            pages += 1;
            match body["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
            // Ingest goes on between pages: new traces, some placed before
            // the cursor, some after it.
            send_traces(&server, base, late, 2).await;
            late += 2;
            server.flush().await;
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "sort={sort}: a trace came twice");
        for id in &first {
            assert!(unique.contains(id), "sort={sort}: {id} was skipped");
        }
        assert!(pages >= 7, "sort={sort}: {pages} pages of at most 7");
    }

    // Without ingest, the pages are the one sorted list, cut.
    let (_, whole) = server
        .get("/api/traces?service=gateway&lookback=1h&limit=1000&sort=longest")
        .await;
    let total = whole["total"].as_u64().expect("total") as usize;
    let mut paged = Vec::new();
    let mut url = "/api/traces?service=gateway&lookback=1h&limit=10&sort=longest".to_string();
    loop {
        let (_, body) = server.get(&url).await;
        assert_eq!(body["total"].as_u64(), Some(total as u64), "{body}");
        paged.extend(ids(&body));
        let Some(next) = body["nextCursor"].as_str() else {
            break;
        };
        // The cursor carries the order: `sort` may be left out.
        url = format!(
            "/api/traces?service=gateway&limit=10&cursor={}",
            urlencode(next)
        );
    }
    assert_eq!(paged, ids(&whole));
    assert_eq!(paged.len(), total);

    let cursor = {
        let (_, body) = server
            .get("/api/traces?service=gateway&lookback=1h&limit=3&sort=longest")
            .await;
        body["nextCursor"]
            .as_str()
            .expect("a next page")
            .to_string()
    };
    for (query, why) in [
        ("cursor=abc".to_string(), "invalid cursor 'abc'"),
        (
            format!("cursor={}&sort=recent", urlencode(&cursor)),
            "a cursor pages on in the order it was made in",
        ),
    ] {
        let (status, body) = server
            .get(&format!("/api/traces?service=gateway&{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.to_string().contains(why), "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_download_streams_every_matching_trace_as_otlp_json_or_csv() {
    let server = TestServer::start().await;
    let base = now_nanos() - 600_000_000_000;
    // 45 traces, more than a download loads at once; 90 spans in all.
    let sent = send_traces(&server, base, 0, 45).await;
    server.flush().await;
    let fetch = |query: &str| {
        let url = server.api_url(&format!(
            "/api/traces/export?service=gateway&lookback=1h&{query}"
        ));
        async move {
            let response = reqwest::get(url).await.expect("export");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            (status, headers, response.text().await.expect("body"))
        }
    };

    let (status, headers, body) = fetch("format=ndjson&sort=longest").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert!(headers["content-disposition"]
        .to_str()
        .is_ok_and(|d| d.contains("hopline-traces.ndjson")));
    let mut durations = Vec::new();
    let mut downloaded = Vec::new();
    let mut spans = 0;
    for line in body.lines() {
        let trace: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let trace_spans = trace["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .expect("OTLP/JSON spans");
        spans += trace_spans.len();
        let root = &trace_spans[0];
        let nanos = |key: &str| root[key].as_str().and_then(|t| t.parse::<u64>().ok());
        durations.push(
            nanos("endTimeUnixNano")
                .zip(nanos("startTimeUnixNano"))
                .map(|(e, s)| e - s),
        );
        downloaded.push(
            root["traceId"]
                .as_str()
                .expect("an OTLP trace id")
                .to_string(),
        );
    }
    assert_eq!(spans, 90);
    assert!(
        durations.windows(2).all(|w| w[0] >= w[1]),
        "longest first: {durations:?}"
    );
    let (mut got, mut want) = (downloaded.clone(), sent.clone());
    got.sort();
    want.sort();
    assert_eq!(got, want, "every trace once");

    // The first traces of the download are the API's first page.
    let (_, page) = server
        .get("/api/traces?service=gateway&lookback=1h&limit=5&sort=longest")
        .await;
    assert_eq!(downloaded[..5], ids(&page)[..]);

    let (status, headers, body) = fetch("format=csv&limit=10").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(body.starts_with(
        "traceID,spanID,parentSpanID,service,operation,kind,start,startUnixNano,durationNanos,\
         status,statusMessage,attributes\r\n"
    ));
    let rows: Vec<&str> = body
        .split("\r\n")
        .skip(1)
        .filter(|r| !r.is_empty())
        .collect();
    let traces: std::collections::HashSet<&str> =
        rows.iter().filter_map(|r| r.split(',').next()).collect();
    assert_eq!(traces.len(), 10, "limit counts traces");
    // The ten newest: traces 44 down to 35, with 3, 2 or 1 spans each.
    let newest_spans: usize = (35..45).map(|n| n % 3 + 1).sum();
    assert_eq!(rows.len(), newest_spans);

    for (query, why) in [
        ("format=xml", "invalid format 'xml'"),
        ("limit=all", "invalid limit 'all'"),
        ("sort=loudest", "invalid sort 'loudest'"),
        ("traceID=0102", "a download is of a search"),
    ] {
        let (status, _, body) = fetch(query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(why), "{query}: {body}");
    }
}

/// `logs_request` with a `service.instance.id` on the resource.
fn instance_logs(
    service: &str,
    instance: &str,
    records: Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>,
) -> opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
    let mut request = logs_request(service, records);
    if let Some(resource) = request.resource_logs[0].resource.as_mut() {
        resource
            .attributes
            .push(string_kv("service.instance.id", instance));
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_has_the_lines_of_its_instance_just_before_and_after_it() {
    let server = TestServer::start().await;
    let ms = 1_000_000;
    let base = now_nanos() - 3_600_000 * ms;
    // Instance a of checkout: line n at base + n ms for n < 30, then lines 30
    // to 34 a minute apart (the range after a line widens to reach them).
    // Instance b and another service write at the same times.
    let time = |n: u64| {
        if n < 30 {
            base + n * ms
        } else {
            base + 30 * ms + (n - 29) * 60_000 * ms
        }
    };
    let lines = |who: &str| {
        (0..35u64)
            .map(|n| log_record(None, time(n), 9, &format!("{who} line {n}")))
            .collect::<Vec<_>>()
    };
    for (service, instance, who) in [
        ("checkout", "a", "a"),
        ("checkout", "b", "b"),
        ("billing", "a", "billing"),
    ] {
        server
            .export("/v1/logs", &instance_logs(service, instance, lines(who)))
            .await;
    }
    server.flush().await;
    let bodies = |body: &serde_json::Value, key: &str| -> Vec<String> {
        body[key]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .map(|l| l["body"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let named = |range: std::ops::Range<u64>| -> Vec<String> {
        range.map(|n| format!("a line {n}")).collect()
    };

    let (status, body) = server
        .get(&format!(
            "/api/logs/context?service=checkout&instance=a&time={}&before=5&after=5",
            time(15)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bodies(&body, "before"), named(10..15));
    assert_eq!(bodies(&body, "at"), named(15..16));
    assert_eq!(bodies(&body, "after"), named(16..21));

    // Near the end, the lines after are minutes apart; near the start, there
    // are fewer before than asked.
    let (_, body) = server
        .get(&format!(
            "/api/logs/context?service=checkout&instance=a&time={}&before=3&after=4",
            time(28)
        ))
        .await;
    assert_eq!(bodies(&body, "after"), named(29..33));
    let (_, body) = server
        .get(&format!(
            "/api/logs/context?service=checkout&instance=a&time={}",
            time(2)
        ))
        .await;
    assert_eq!(bodies(&body, "before"), named(0..2));
    assert_eq!(bodies(&body, "after"), named(3..13), "ten by default");

    // Without an instance: the service's lines, both instances.
    let (_, body) = server
        .get(&format!(
            "/api/logs/context?service=checkout&time={}&before=2&after=0",
            time(15)
        ))
        .await;
    let mut at = bodies(&body, "at");
    at.sort();
    assert_eq!(at, vec!["a line 15", "b line 15"]);
    assert_eq!(bodies(&body, "before").len(), 2);
    assert!(bodies(&body, "after").is_empty());

    // A burst: one line, nothing for 5 ms, then 12,000 lines within 4 ms. The
    // first tenfold range past 1 ms holds more than an offset reaches, and is
    // narrowed back to the burst's oldest lines.
    let burst = base + 1_000 * ms;
    let mut records = vec![log_record(None, burst, 9, "before the burst")];
    records.extend(
        (0..12_000u64)
            .map(|n| log_record(None, burst + 5 * ms + n * 300, 9, &format!("burst {n}"))),
    );
    server
        .export("/v1/logs", &instance_logs("checkout", "c", records))
        .await;
    server.flush().await;
    let (status, body) = server
        .get(&format!(
            "/api/logs/context?service=checkout&instance=c&time={burst}&after=3"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        bodies(&body, "after"),
        vec!["burst 0", "burst 1", "burst 2"]
    );

    for (query, why) in [
        ("time=5".to_string(), "parameter 'service' is required"),
        (
            "service=checkout".to_string(),
            "parameter 'time' (ns) is required",
        ),
        (
            "service=checkout&time=soon".to_string(),
            "invalid time 'soon'",
        ),
        (
            "service=checkout&time=5&before=201".to_string(),
            "at most 200 lines each side",
        ),
        (
            "service=checkout&time=5&level=9".to_string(),
            "unknown query parameter 'level'",
        ),
    ] {
        let (status, body) = server.get(&format!("/api/logs/context?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.to_string().contains(why), "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_names_with_ids_group_into_patterns_that_search_their_traces() {
    let server = TestServer::start().await;
    let ms = 1_000_000;
    let base = now_nanos() - 60_000 * ms;
    // 40 traces of `GET /users/<id>`, and one each of two other operations.
    let mut names: Vec<String> = (1..=40)
        .map(|n| format!("GET /users/{}", 1000 + n * 7))
        .collect();
    names.push("GET /health".into());
    names.push("POST /users".into());
    for (n, name) in names.iter().enumerate() {
        let trace = [n as u8 + 1; 16];
        let root = span(trace, 1, None, name, base + n as u64 * ms, ms);
        server
            .export("/v1/traces", &traces_request("users", vec![root]))
            .await;
    }
    server
        .export(
            "/v1/traces",
            &traces_request(
                "billing",
                vec![span([99; 16], 1, None, "GET /users/5", base, ms)],
            ),
        )
        .await;
    server.flush().await;

    let (status, body) = server.get("/api/operations/patterns?service=users").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 3, "{body}");
    let first = &body["data"][0];
    assert_eq!(first["template"], "GET /users/<num>", "{body}");
    assert_eq!(first["operations"], 40);
    assert_eq!(
        first["examples"],
        serde_json::json!(["GET /users/1007", "GET /users/1014", "GET /users/1021"])
    );
    let id = first["id"].as_str().expect("an id").to_string();
    let others: Vec<&str> = (1..3)
        .map(|i| body["data"][i]["template"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(others, vec!["GET /health", "POST /users"]);

    let (status, body) = server
        .get(&format!(
            "/api/traces?service=users&operationPattern={id}&lookback=1h&limit=100"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 40, "{body}");
    // Without a service: billing's span of the same pattern too.
    let (_, body) = server
        .get(&format!(
            "/api/traces?operationPattern={id}&lookback=1h&limit=100"
        ))
        .await;
    assert_eq!(body["total"], 41, "{body}");
    // A download of the pattern's traces.
    let url = server.api_url(&format!(
        "/api/traces/export?service=users&operationPattern={id}&lookback=1h"
    ));
    let text = reqwest::get(url)
        .await
        .expect("export")
        .text()
        .await
        .expect("body");
    assert_eq!(text.lines().count(), 40);
    // A pattern no span name has finds nothing.
    let (status, body) = server
        .get("/api/traces?service=users&operationPattern=0123456789abcdef&lookback=1h")
        .await;
    assert_eq!((status, body["total"].as_u64()), (200, Some(0)), "{body}");

    for (query, why) in [
        (
            "service=users&operationPattern=xyz",
            "invalid operationPattern 'xyz'",
        ),
        (
            "service=users&operation=GET%20%2Fhealth&operationPattern=0123",
            "search by one or the other",
        ),
    ] {
        let (status, body) = server.get(&format!("/api/traces?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.to_string().contains(why), "{query}: {body}");
    }
    let (status, body) = server.get("/api/operations/patterns").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("parameter 'service' is required"),
        "{body}"
    );
}
