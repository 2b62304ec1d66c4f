//! `/api/logs/tail`: new matching lines arrive as server-sent events.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_tail_streams_new_matching_lines_only() {
    let server = TestServer::start().await;
    let mut response = server
        .http
        .get(server.api_url("/api/logs/tail?query=checkout%20AND%20failed"))
        .send()
        .await
        .expect("connect");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    let now = now_nanos();
    let logs = logs_request(
        "shop",
        vec![
            log_record(None, now, 17, "checkout failed: card declined"),
            log_record(None, now, 9, "browsing the catalogue"),
        ],
    );
    assert_eq!(server.post_protobuf("/v1/logs", &logs).await.status(), 200);

    let mut received = String::new();
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            received.push_str(&String::from_utf8_lossy(&chunk));
            if received.contains("checkout failed") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no event in: {received}");
    assert!(received.contains("event: logs"), "{received}");
    assert!(
        !received.contains("catalogue"),
        "a line that does not match was streamed: {received}"
    );
    drop(response);
    let (status, body) = server.get("/api/logs/tail?colour=red").await;
    assert_eq!(status, 400, "{body}");
    // A tail still open does not hold the server up when it stops.
    let _still_open = server
        .http
        .get(server.api_url("/api/logs/tail"))
        .send()
        .await
        .expect("connect");
    let stopped = tokio::time::timeout(Duration::from_secs(10), server.hopline.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown waited for an open log tail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_delivered_whole_and_tails_are_capped() {
    let server = TestServer::start_with(|config| config.query.max_tails = 2).await;
    let mut response = server
        .http
        .get(server.api_url("/api/logs/tail?query=burst"))
        .send()
        .await
        .expect("connect");
    assert_eq!(response.status(), 200);
    // A second tail fits, a third does not.
    let second = server
        .http
        .get(server.api_url("/api/logs/tail"))
        .send()
        .await
        .expect("connect");
    assert_eq!(second.status(), 200);
    let (status, body) = server.get("/api/logs/tail").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["errors"][0]["msg"]
        .as_str()
        .unwrap_or_default()
        .contains("--max-tails"));
    drop(second);

    // 5,000 matching lines at once (once 1,000 a poll reached the tail).
    let now = now_nanos();
    for chunk in 0..5u64 {
        let records = (0..1000u64)
            .map(|i| {
                log_record(
                    None,
                    now + chunk * 1000 + i,
                    9,
                    &format!("burst line {}", chunk * 1000 + i),
                )
            })
            .collect();
        server
            .export("/v1/logs", &logs_request("bursty", records))
            .await;
    }
    let mut received = String::new();
    let all = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            received.push_str(&String::from_utf8_lossy(&chunk));
            if received.matches("burst line").count() >= 5000 {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        all,
        Ok(true),
        "{} of 5000 lines arrived",
        received.matches("burst line").count()
    );
    // Each line once.
    for n in [0, 1234, 4999] {
        assert_eq!(
            received.matches(&format!("\"burst line {n}\"")).count(),
            1,
            "line {n}"
        );
    }
    assert!(!received.contains("event: skipped"), "nothing was skipped");
}
