//! Faults: damaged files on disk, a full disk, `kill -9` in a loop. Each test works
//! on a fresh data directory of its own and is bounded in time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::common::*;

/// The split directories of one index, oldest first.
fn split_dirs(data_dir: &Path, index: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data_dir.join("index").join(index))
        .expect("index dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("split-"))
        })
        .collect();
    dirs.sort();
    dirs
}

/// The first file of a split whose name ends with `suffix`.
fn file_ending(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("split dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

fn truncate(path: &Path, keep: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    file.set_len(keep).expect("truncate");
}

fn trace_of(n: u8) -> [u8; 16] {
    [n; 16]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_splits_are_quarantined_and_the_others_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    // Six sealed splits of spans and of logs, one trace each.
    let server = TestServer::start_with(|config| config.data_dir = data_dir.clone()).await;
    let now = now_nanos();
    for n in 1..=6u8 {
        let spans = vec![span(trace_of(n), 1, None, "op", now, 1000)];
        let response = server
            .post_protobuf("/v1/traces", &traces_request("splitty", spans))
            .await;
        assert_eq!(response.status(), 200);
        let logs = vec![log_record(Some(trace_of(n)), now, 9, "a line")];
        let response = server
            .post_protobuf("/v1/logs", &logs_request("splitty", logs))
            .await;
        assert_eq!(response.status(), 200);
        server.hopline.seal().await.expect("seal");
    }
    let TestServer {
        hopline, dir: _, ..
    } = server;
    hopline.shutdown().await;

    // A different fault in five of the six span splits, and in one log split.
    let spans = split_dirs(&data_dir, "spans");
    assert_eq!(spans.len(), 6);
    std::fs::remove_file(file_ending(&spans[0], ".store")).expect("delete .store");
    truncate(&file_ending(&spans[1], ".idx"), 10);
    truncate(&file_ending(&spans[2], ".term"), 3);
    std::fs::remove_file(spans[3].join("meta.json")).expect("delete meta.json");
    truncate(&spans[4].join("origins"), 0);
    let logs = split_dirs(&data_dir, "logs");
    std::fs::remove_file(file_ending(&logs[0], ".store")).expect("delete .store");

    // It starts, serves the sixth trace and the other logs, and says what it moved.
    let server = TestServer::start_with(|config| config.data_dir = data_dir.clone()).await;
    let (status, body) = server
        .get(&format!("/api/traces/{}", hex(&trace_of(6))))
        .await;
    assert_eq!(status, 200, "{body}");
    for n in 1..=5u8 {
        let (status, _) = server
            .get(&format!("/api/traces/{}", hex(&trace_of(n))))
            .await;
        assert_eq!(status, 404, "trace {n} was in a quarantined split");
    }
    let (status, body) = server.get("/api/logs?query=service:splitty&start=0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 5, "{body}");
    let (status, health) = server.get("/health").await;
    assert_eq!(
        status, 200,
        "past problems do not make it unhealthy: {health}"
    );
    let problems = health["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 6, "{health}");
    for split in spans[..5].iter().chain(&logs[..1]) {
        let name = split
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        assert!(
            problems
                .iter()
                .any(|p| p.as_str().is_some_and(|p| p.contains(&name))),
            "{name} not reported: {health}"
        );
        let moved = split
            .parent()
            .expect("index")
            .join("quarantine")
            .join(&name);
        assert!(moved.is_dir(), "{} was not moved aside", moved.display());
    }
    assert_eq!(split_dirs(&data_dir, "spans").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_wal_frame_loses_that_frame_alone_and_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing is committed to the index: every batch lives in the log alone.
    let collector = spawn_collector(dir.path(), &["--commit-interval", "1h"]);
    let client = reqwest::Client::new();
    let now = now_nanos();
    let batches = 400u32;
    for batch in 0..batches {
        let logs = vec![log_record(
            Some(trace_of(7)),
            now + u64::from(batch),
            9,
            &format!("line {batch} {}", "x".repeat(200)),
        )];
        let response = client
            .post(format!("{}/v1/logs", collector.http))
            .header("content-type", "application/x-protobuf")
            .body(prost::Message::encode_to_vec(&logs_request("walled", logs)))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
    }
    let mut collector = collector;
    collector.child.kill().expect("kill -9");
    collector.child.wait().expect("wait");

    // Flip one byte in the middle of the segment that holds the batches.
    let wal = dir.path().join("wal");
    let segment = std::fs::read_dir(&wal)
        .expect("wal dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .max_by_key(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&segment, &bytes).expect("write");

    let restarted = spawn_collector(dir.path(), &[]);
    let api = restarted.api.clone();
    let total = eventually(Duration::from_secs(20), || {
        let (client, api) = (client.clone(), api.clone());
        async move {
            let body: serde_json::Value = client
                .get(format!(
                    "{api}/api/logs?query=service:walled&start=0&limit=1"
                ))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            body["total"]
                .as_u64()
                .filter(|&n| n == u64::from(batches) - 1)
        }
    })
    .await;
    assert_eq!(
        total,
        Some(u64::from(batches) - 1),
        "one frame, and only one, is lost"
    );
    let metrics = client
        .get(format!("{api}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("hopline_wal_damaged_regions_total 1"),
        "{metrics}"
    );
    let health: serde_json::Value = client
        .get(format!("{api}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert!(health["problems"][0]
        .as_str()
        .is_some_and(|p| p.contains("damaged")));
    assert!(
        restarted
            .log()
            .iter()
            .any(|line| line.contains("ERROR") && line.contains("damaged")),
        "the damage is logged as an error"
    );
    let copy = wal.join("damaged").join(segment.file_name().expect("name"));
    assert_eq!(std::fs::read(copy).expect("a copy is kept"), bytes);
}

/// A tmpfs of a few MiB mounted for one test (root only), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` when this process may not mount (not root): the caller skips, except
    /// where `HOPLINE_REQUIRE_ROOT` says the run must cover it.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted && std::env::var_os("HOPLINE_REQUIRE_ROOT").is_some() {
            panic!("cannot mount a tmpfs, and HOPLINE_REQUIRE_ROOT is set");
        }
        mounted.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "cannot resize the tmpfs");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_what_it_cannot_fsync_and_resumes_by_itself() {
    let Some(disk) = SmallDisk::mount("6m") else {
        eprintln!(
            "skipped: mounting a small tmpfs needs root (set HOPLINE_REQUIRE_ROOT to require it)"
        );
        return;
    };
    let data_dir = disk.path().join("data");
    let server = TestServer::start_with(|config| config.data_dir = data_dir.clone()).await;
    let per_batch = 50u64;
    let batch = |n: u32| {
        let now = now_nanos();
        let records = (0..per_batch)
            .map(|i| {
                log_record(
                    Some([(n % 251) as u8 + 1; 16]),
                    now + i,
                    9,
                    &format!(
                        "batch {n} line {i} {:x}",
                        now.wrapping_mul(u64::from(n) + i)
                    ),
                )
            })
            .collect();
        logs_request("filler", records)
    };

    // Fill the disk: exports are acknowledged until they cannot be made durable.
    // A full queue (the index is slower than this sender) is waited out, as a
    // client does.
    let send = |n: u32| {
        let request = batch(n);
        let server = &server;
        async move {
            loop {
                let response = server.post_protobuf("/v1/logs", &request).await;
                match response.status().as_u16() {
                    200 => return Ok(()),
                    503 => {
                        let retry = response.headers().get("retry-after").cloned();
                        let body = response.bytes().await.expect("body");
                        let message = String::from_utf8_lossy(&body).to_string();
                        if message.contains("No space left") {
                            return Err((message, retry));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
        }
    };
    let mut acknowledged = 0u64;
    let mut refusal = None;
    for n in 0..100_000u32 {
        match send(n).await {
            Ok(()) => acknowledged += 1,
            Err(refused) => {
                refusal = Some(refused);
                break;
            }
        }
    }
    let (message, retry_after) = refusal.expect("the disk never filled");
    assert!(acknowledged > 10, "only {acknowledged} batches fit");
    assert!(message.contains("No space left on device"), "{message}");
    assert!(retry_after.is_some(), "503 without Retry-After");

    // Queries keep answering, and /health says what is wrong.
    let (status, body) = server.get("/api/services").await;
    assert_eq!(status, 200, "{body}");
    let (status, health) = server.get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "degraded");
    assert!(
        health["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("No space left"))),
        "{health}"
    );

    // Space returns: ingest resumes without a restart.
    disk.resize("64m");
    let resumed = eventually(Duration::from_secs(60), || {
        let sent = send(1_000_000);
        async move { sent.await.ok() }
    })
    .await;
    assert!(
        resumed.is_some(),
        "ingest did not resume after space returned"
    );
    acknowledged += 1;
    // What the disk refused may take a moment to clear (a commit waiting for its
    // retry): refusals are waited out here.
    for n in 0..20u32 {
        let sent = eventually(Duration::from_secs(30), || {
            let sent = send(2_000_000 + n);
            async move { sent.await.ok() }
        })
        .await;
        assert!(
            sent.is_some(),
            "batch {n} refused long after space returned"
        );
        acknowledged += 1;
    }

    // Every acknowledged record is there exactly once, now and after a restart.
    let count = |server: &TestServer| {
        let url = server.api_url("/api/logs?query=service:filler&start=0&limit=1");
        let http = server.http.clone();
        async move {
            let body: serde_json::Value = http
                .get(url)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            body["total"].as_u64().expect("total")
        }
    };
    let found = eventually(Duration::from_secs(30), || {
        let server = &server;
        async move {
            server.flush().await;
            let n = count(server).await;
            (n == acknowledged * per_batch).then_some(n)
        }
    })
    .await;
    if found.is_none() {
        let metrics = metrics_text(&server).await;
        let lines: Vec<&str> = metrics
            .lines()
            .filter(|l| l.contains("signal=\"logs\"") && !l.contains("bucket"))
            .collect();
        let now = count(&server).await;
        let TestServer { hopline, .. } = server;
        hopline.shutdown().await;
        let again = TestServer::start_with(|config| config.data_dir = data_dir.clone()).await;
        panic!(
            "{acknowledged} batches acknowledged, {} records expected: {now} found, {} after a restart; {lines:#?}",
            acknowledged * per_batch,
            count(&again).await
        );
    }
    let (status, health) = server.get("/health").await;
    assert_eq!(status, 200, "{health}");
    let TestServer { hopline, .. } = server;
    hopline.shutdown().await;
    let server = TestServer::start_with(|config| config.data_dir = data_dir.clone()).await;
    assert_eq!(count(&server).await, acknowledged * per_batch);
    let TestServer { hopline, .. } = server;
    hopline.shutdown().await;
    drop(disk);
}

/// Batch `n`: a trace of a gateway span and nine api spans below it (nine calls
/// gateway -> api in the service map), and ten log lines.
fn killable_batch(n: u32) -> (ExportTraceServiceRequest, ExportLogsServiceRequest) {
    let mut trace = [0x5a; 16];
    trace[..4].copy_from_slice(&n.to_be_bytes());
    let now = now_nanos();
    let root = span(trace, 1, None, "GET /", now, 10_000);
    let children = (2..=10u8)
        .map(|i| span(trace, i, Some(1), "GET /item", now + u64::from(i), 1000))
        .collect();
    let mut spans = traces_request("gateway", vec![root]);
    spans
        .resource_spans
        .extend(traces_request("api", children).resource_spans);
    let logs = (0..10)
        .map(|i| log_record(Some(trace), now + i, 9, &format!("batch {n} line {i}")))
        .collect();
    (spans, logs_request("killable", logs))
}

/// Span and log counts as the API gives them: calls gateway -> api, log lines.
async fn killable_counts(client: &reqwest::Client, api: &str) -> Option<(u64, u64)> {
    let end_ms = now_nanos() / 1_000_000 + 60_000;
    let deps: serde_json::Value = client
        .get(format!(
            "{api}/api/dependencies?endTs={end_ms}&lookback=3600000"
        ))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let calls = deps["data"]
        .as_array()?
        .iter()
        .find(|edge| edge["parent"] == "gateway" && edge["child"] == "api")
        .and_then(|edge| edge["callCount"].as_u64())
        .unwrap_or(0);
    let logs: serde_json::Value = client
        .get(format!(
            "{api}/api/logs?query=service:killable&start=0&limit=1"
        ))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some((calls, logs["total"].as_u64()?))
}

/// What the senders know: batches whose spans or logs were acknowledged, and those
/// in flight when the collector was killed (durable or not, nobody knows).
#[derive(Default)]
struct Ledger {
    spans: std::collections::BTreeSet<u32>,
    logs: std::collections::BTreeSet<u32>,
    in_flight: std::collections::BTreeSet<(u32, &'static str)>,
}

/// Settles the batches that were in flight at the kill: those the restarted
/// collector has are durable (acknowledged or not), the others were never written.
async fn settle(ledger: &std::sync::Mutex<Ledger>, client: &reqwest::Client, api: &str) {
    let in_flight = std::mem::take(&mut ledger.lock().expect("lock").in_flight);
    for (n, kind) in in_flight {
        let mut trace = [0x5a; 16];
        trace[..4].copy_from_slice(&n.to_be_bytes());
        let trace = hex(&trace);
        let present = if kind == "spans" {
            client
                .get(format!("{api}/api/traces/{trace}"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        } else {
            let body: serde_json::Value = client
                .get(format!("{api}/api/logs?traceID={trace}&start=0"))
                .send()
                .await
                .expect("logs")
                .json()
                .await
                .expect("json");
            body["total"].as_u64().unwrap_or(0) > 0
        };
        if present {
            let mut ledger = ledger.lock().expect("lock");
            if kind == "spans" {
                ledger.spans.insert(n);
            } else {
                ledger.logs.insert(n);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_twenty_times_under_load_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::Client::new();
    let ledger = std::sync::Arc::new(std::sync::Mutex::new(Ledger::default()));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    for cycle in 0..=20u64 {
        let mut collector = spawn_collector(dir.path(), &["--commit-interval", "100ms"]);
        // Once the log is replayed (what was acknowledged is searchable, and the
        // rest of the log a moment later): every batch whose spans (logs) are
        // durable is there exactly once (nine calls, ten lines each), and nothing
        // else.
        let acknowledged = {
            let ledger = ledger.lock().expect("lock");
            (ledger.spans.len() as u64 * 9, ledger.logs.len() as u64 * 10)
        };
        let counts = eventually(Duration::from_secs(30), || {
            let (client, api) = (client.clone(), collector.api.clone());
            async move {
                killable_counts(&client, &api)
                    .await
                    .filter(|c| c.0 >= acknowledged.0 && c.1 >= acknowledged.1)
            }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        settle(&ledger, &client, &collector.api).await;
        let expected = {
            let ledger = ledger.lock().expect("lock");
            (ledger.spans.len() as u64 * 9, ledger.logs.len() as u64 * 10)
        };
        let found = eventually(Duration::from_secs(30), || {
            let (client, api) = (client.clone(), collector.api.clone());
            async move {
                let counts = killable_counts(&client, &api).await?;
                (counts == expected).then_some(counts)
            }
        })
        .await;
        let problems: Vec<String> = collector
            .log()
            .into_iter()
            .filter(|line| line.contains("ERROR") || line.contains("WARN"))
            .collect();
        assert_eq!(
            found,
            Some(expected),
            "after restart {cycle}: {counts:?} found, {expected:?} expected; the collector said {problems:#?}"
        );
        if cycle == 20 {
            assert!(
                expected.1 > 1000,
                "only {} batches were acknowledged",
                expected.1 / 10
            );
            break;
        }
        // Two senders, killed after a while that differs per cycle (so that some
        // kills land in a commit, some in a merge).
        let mut senders = Vec::new();
        for _ in 0..2 {
            let (client, url) = (client.clone(), collector.http.clone());
            let (ledger, next) = (ledger.clone(), next.clone());
            senders.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let (spans, logs) = killable_batch(n);
                    for (path, kind, body) in [
                        ("/v1/traces", "spans", prost::Message::encode_to_vec(&spans)),
                        ("/v1/logs", "logs", prost::Message::encode_to_vec(&logs)),
                    ] {
                        ledger.lock().expect("lock").in_flight.insert((n, kind));
                        let sent = client
                            .post(format!("{url}{path}"))
                            .header("content-type", "application/x-protobuf")
                            .body(body)
                            .send()
                            .await;
                        if !matches!(sent, Ok(r) if r.status() == 200) {
                            return;
                        }
                        let mut ledger = ledger.lock().expect("lock");
                        ledger.in_flight.remove(&(n, kind));
                        if kind == "spans" {
                            ledger.spans.insert(n);
                        } else {
                            ledger.logs.insert(n);
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + (cycle * 137) % 1500)).await;
        collector.child.kill().expect("kill -9");
        collector.child.wait().expect("wait");
        for sender in senders {
            let _ = sender.await;
        }
    }
}
