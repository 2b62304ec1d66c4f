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
