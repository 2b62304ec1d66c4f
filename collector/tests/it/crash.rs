//! Crash safety: `kill -9` in the middle of a stream of acknowledged exports, then a
//! restart on the same data directory finds every acknowledged span and log.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

fn trace_for(batch: u32) -> [u8; 16] {
    let mut id = [0xabu8; 16];
    id[..4].copy_from_slice(&batch.to_be_bytes());
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_record_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let collector = spawn_collector(dir.path(), &[]);
    let client = reqwest::Client::new();
    let acknowledged: Arc<Mutex<Vec<u32>>> = Arc::default();

    // Four senders stream batches (20 spans and 20 logs each) as fast as they are acknowledged.
    let mut senders = Vec::new();
    for sender in 0..4u32 {
        let (client, url, acknowledged) =
            (client.clone(), collector.http.clone(), acknowledged.clone());
        senders.push(tokio::spawn(async move {
            for n in 0..10_000u32 {
                let batch = sender * 100_000 + n;
                let trace = trace_for(batch);
                let now = now_nanos();
                let spans: Vec<_> = (1..=20u8)
                    .map(|i| span(trace, i, (i > 1).then_some(1), "op", now, 1000))
                    .collect();
                let logs: Vec<_> = (0..20)
                    .map(|i| log_record(Some(trace), now + i, 9, "batch log line"))
                    .collect();
                let spans_ok = post(
                    &client,
                    &format!("{url}/v1/traces"),
                    prost::Message::encode_to_vec(&traces_request("crashy", spans)),
                )
                .await;
                let logs_ok = spans_ok
                    && post(
                        &client,
                        &format!("{url}/v1/logs"),
                        prost::Message::encode_to_vec(&logs_request("crashy", logs)),
                    )
                    .await;
                if !logs_ok {
                    return;
                }
                acknowledged.lock().expect("lock").push(batch);
            }
        }));
    }
    // Let the stream run, then kill without warning while requests are in flight.
    let enough = eventually(Duration::from_secs(60), || {
        let count = acknowledged.lock().expect("lock").len();
        async move { (count >= 150).then_some(()) }
    })
    .await;
    assert!(enough.is_some(), "the collector acknowledged too little");
    let mut collector = collector;
    collector.child.kill().expect("kill -9");
    collector.child.wait().expect("wait");
    for sender in senders {
        let _ = sender.await;
    }
    drop(collector);
    let acknowledged = acknowledged.lock().expect("lock").clone();

    let restarted = spawn_collector(dir.path(), &[]);
    for batch in &acknowledged {
        let trace = hex(&trace_for(*batch));
        let found = eventually(Duration::from_secs(20), || {
            let (client, api, trace) = (client.clone(), restarted.api.clone(), trace.clone());
            async move {
                let trace_json: serde_json::Value = client
                    .get(format!("{api}/api/traces/{trace}"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let spans = trace_json["data"][0]["spans"].as_array()?.len();
                let logs_json: serde_json::Value = client
                    .get(format!("{api}/api/logs?traceID={trace}&start=0"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (spans == 20 && logs_json["total"] == 20).then_some(())
            }
        })
        .await;
        assert!(
            found.is_some(),
            "acknowledged batch {batch} (trace {trace}) is incomplete after restart"
        );
    }
    drop(restarted);
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> bool {
    match client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
    {
        Ok(response) => response.status() == 200,
        Err(_) => false,
    }
}
