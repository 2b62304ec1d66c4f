//! Retention: splits whose newest record is older than the window go, newer ones
//! stay. Time is injected, so nothing sleeps. And a split is sealed at its record
//! limit, whatever its age.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hopline::model::Clock;

use crate::common::*;

struct FakeClock(AtomicU64);

impl Clock for FakeClock {
    fn now_unix_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

const DAY: u64 = 86_400 * 1_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_splits_are_dropped_whole_and_recent_ones_kept() {
    let start = 1_735_689_600 * 1_000_000_000; // 2025-01-01
    let clock = Arc::new(FakeClock(AtomicU64::new(start)));
    let server = TestServer::start_with_clock(clock.clone()).await;
    let (old, new) = ([1u8; 16], [2u8; 16]);

    for (trace, time) in [(old, start - DAY), (new, start + 9 * DAY)] {
        clock.0.store(time + 1000, Ordering::SeqCst);
        let spans = traces_request("svc", vec![span(trace, 1, None, "op", time, 1000)]);
        assert_eq!(
            server.post_protobuf("/v1/traces", &spans).await.status(),
            200
        );
        let logs = logs_request("svc", vec![log_record(Some(trace), time, 9, "hello")]);
        assert_eq!(server.post_protobuf("/v1/logs", &logs).await.status(), 200);
        server.hopline.seal().await.expect("seal");
    }
    let store = &server.hopline.store;
    assert_eq!(store.spans.splits().len(), 2);
    assert_eq!(store.logs.splits().len(), 2);

    // Now is day 9; a 7-day window keeps the new split and drops the old one.
    let cutoff = start + 9 * DAY - 7 * DAY;
    let dropped_spans = store.spans.enforce_retention(cutoff).expect("retention");
    let dropped_logs = store.logs.enforce_retention(cutoff).expect("retention");
    assert_eq!(dropped_spans.len(), 1);
    assert_eq!(dropped_logs.len(), 1);
    assert!(!server
        .dir
        .path()
        .join("index/spans")
        .join(&dropped_spans[0])
        .exists());

    let (status, _) = server.get(&format!("/api/traces/{}", hex(&old))).await;
    assert_eq!(status, 404);
    let (status, _) = server.get(&format!("/api/traces/{}", hex(&new))).await;
    assert_eq!(status, 200);
    let (_, body) = server
        .get(&format!("/api/logs?traceID={}&start=0", hex(&old)))
        .await;
    assert_eq!(body["total"], 0);
    let (_, body) = server
        .get(&format!("/api/logs?traceID={}&start=0", hex(&new)))
        .await;
    assert_eq!(body["total"], 1);
    server.hopline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_keeps_its_data_as_long_as_its_retention_says() {
    const INGEST_SHORT: &str = "ingest-short-0123456789ab";
    const INGEST_DEFAULT: &str = "ingest-default-0123456789";
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "ingest_tokens = [\"{INGEST_DEFAULT}\"]\n[[tenants]]\nname = \"short\"\ningest_tokens = [\"{INGEST_SHORT}\"]\nretention = \"1h\"\n"
        ),
    )
    .expect("tokens");
    let start = 1_735_689_600 * 1_000_000_000; // 2025-01-01
    let clock = Arc::new(FakeClock(AtomicU64::new(start)));
    let mut config = hopline::config::Config::for_tests(&dir.path().join("data"))
        .with_tokens_file(&tokens)
        .expect("tokens file");
    config.retention_interval = std::time::Duration::from_millis(100);
    let hopline = hopline::Hopline::start_with_clock(config, clock.clone())
        .await
        .expect("start");
    let http = reqwest::Client::new();
    for token in [INGEST_SHORT, INGEST_DEFAULT] {
        let spans = traces_request("svc", vec![span([9; 16], 1, None, "op", start, 1000)]);
        let response = http
            .post(format!("http://{}/v1/traces", hopline.otlp_http_addr))
            .bearer_auth(token)
            .header("content-type", "application/x-protobuf")
            .body(prost::Message::encode_to_vec(&spans))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
    }
    hopline.seal().await.expect("seal");
    let short = hopline.tenant_store("short").expect("tenant").clone();
    assert_eq!(short.spans.splits().len(), 1);
    // Two hours on: past "short"'s hour, well within the default's 7 days.
    clock
        .0
        .store(start + 2 * 3600 * 1_000_000_000, Ordering::SeqCst);
    hopline.flush().await.expect("flush");
    let dropped = eventually(std::time::Duration::from_secs(10), || {
        let short = short.clone();
        async move {
            short
                .spans
                .splits()
                .iter()
                .all(|s| s.meta().num_docs == 0)
                .then_some(())
        }
    })
    .await;
    assert!(
        dropped.is_some(),
        "tenant short's split outlived its 1h retention"
    );
    assert!(
        hopline
            .store
            .spans
            .splits()
            .iter()
            .any(|s| s.meta().num_docs == 1),
        "the default tenant's split went with it"
    );
    hopline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_is_sealed_at_its_record_limit_and_the_next_one_takes_over() {
    let server = TestServer::start_with(|config| config.split_records = 100).await;
    let start = now_nanos();
    // Three requests of one trace of 60 spans each: the second brings the split to
    // 120 records, past the limit of 100, and the third goes to a new split.
    let traces = [[0x51u8; 16], [0x52; 16], [0x53; 16]];
    for trace in traces {
        let spans = (1..=60u8)
            .map(|id| span(trace, id, (id > 1).then_some(1), "op", start, 1000))
            .collect();
        server
            .export("/v1/traces", &traces_request("svc", spans))
            .await;
    }
    server.hopline.seal().await.expect("seal");
    let splits = server.hopline.store.spans.splits();
    let mut docs: Vec<u64> = splits.iter().map(|split| split.meta().num_docs).collect();
    docs.sort_unstable();
    assert_eq!(docs, [60, 120], "records per split");
    assert!(splits.iter().all(|split| split.is_sealed()));
    for trace in traces {
        let (status, body) = server.get(&format!("/api/traces/{}", hex(&trace))).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"][0]["spans"].as_array().map(Vec::len), Some(60));
    }
}
