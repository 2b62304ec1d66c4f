//! The `hopline` process under test: started on free loopback ports with a fresh
//! data directory, watched through `/proc` and `/metrics`, stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{Http, TlsClient};
use crate::process;
use anyhow::{bail, Context};
use hopline::store::dir_size;
use tantivy::{Index, IndexWriter, TantivyDocument};

pub struct Collector {
    child: Mutex<Child>,
    pub pid: String,
    /// Base URL of the query API.
    pub api: String,
    /// Base URL of OTLP/HTTP.
    pub otlp_http: String,
    /// URL of OTLP/gRPC.
    pub otlp_grpc: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// When the collector was started: the origin of every offset reported.
    pub origin: Instant,
    /// Carries the token and trusts the bench's CA under `--secure`.
    pub http: Http,
    pub secure: Option<Secure>,
}

/// `--secure`: the collector with a token (both ingest and query) and TLS on all
/// three listeners, as an exposed deployment runs it; the bench's own CA.
#[derive(Clone)]
pub struct Secure {
    pub token: String,
    pub ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
    tokens: PathBuf,
}

impl Secure {
    /// A CA, a certificate for 127.0.0.1 and a tokens file, in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<Secure> {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
        let key = rcgen::KeyPair::generate()?;
        let cert =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&key, &ca)?;
        let token = format!(
            "bench-{:016x}{:016x}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15
        );
        let secure = Secure {
            token,
            ca_pem: ca.pem(),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            tokens: dir.join("tokens.toml"),
        };
        std::fs::write(&secure.cert, cert.pem())?;
        std::fs::write(&secure.key, key.serialize_pem())?;
        std::fs::write(
            &secure.tokens,
            format!(
                "ingest_tokens = [\"{0}\"]\nquery_tokens = [\"{0}\"]\n",
                secure.token
            ),
        )?;
        Ok(secure)
    }

    /// gRPC's TLS settings.
    pub fn grpc_tls(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .domain_name("127.0.0.1")
    }
}

/// Free loopback ports, found by binding port 0.
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

impl Collector {
    /// Starts `binary` on `dir/data` with free ports and `extra` arguments; returns
    /// once it answers `/health`.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        secure: Option<Secure>,
        extra: &[&str],
    ) -> anyhow::Result<Collector> {
        let data_dir = dir.join("data");
        let log_path = dir.join("hopline.log");
        let ports = free_ports(3)?;
        let [grpc, http, api] = [ports[0], ports[1], ports[2]].map(|p| format!("127.0.0.1:{p}"));
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(binary);
        if let Some(secure) = &secure {
            command
                .arg("--tls-cert")
                .arg(&secure.cert)
                .arg("--tls-key")
                .arg(&secure.key)
                .arg("--tokens-file")
                .arg(&secure.tokens);
        }
        let scheme = if secure.is_some() { "https" } else { "http" };
        let http_client = match &secure {
            Some(secure) => Http::Tls(Arc::new(TlsClient::new(&secure.ca_pem, &secure.token)?)),
            None => Http::Plain(reqwest::Client::new()),
        };
        let child = command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--otlp-grpc-addr", &grpc, "--otlp-http-addr", &http])
            .args(["--http-addr", &api])
            .args(extra)
            .env("RUST_LOG", "info,tantivy=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let collector = Collector {
            pid: child.id().to_string(),
            child: Mutex::new(child),
            api: format!("{scheme}://{api}"),
            otlp_http: format!("{scheme}://{http}"),
            otlp_grpc: format!("{scheme}://{grpc}"),
            data_dir,
            log_path,
            origin: Instant::now(),
            http: http_client,
            secure,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = collector
                .http
                .get(&format!("{}/health", collector.api))
                .await;
            if matches!(&health, Ok(answer) if answer.is_success()) {
                return Ok(collector);
            }
            if let Some(status) = collector.try_wait()? {
                bail!(
                    "the collector exited ({status}); see {}",
                    collector.log_path.display()
                );
            }
            if Instant::now() > deadline {
                bail!("the collector did not answer /health within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn try_wait(&self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let mut child = self
            .child
            .lock()
            .map_err(|_| anyhow::anyhow!("child lock poisoned"))?;
        Ok(child.try_wait()?)
    }

    pub fn cpu(&self) -> anyhow::Result<Duration> {
        process::cpu_time(&self.pid)
            .with_context(|| format!("cannot read the CPU time of process {}", self.pid))
    }

    pub fn memory(&self) -> anyhow::Result<process::Memory> {
        Ok(process::memory(&self.pid)?)
    }

    /// Bytes of the span and log indexes.
    pub fn index_bytes(&self) -> (u64, u64) {
        index_bytes(&self.data_dir)
    }

    /// A sample of `/metrics`: `name{signal="..."}`.
    pub async fn metric(&self, name: &str, signal: &str) -> anyhow::Result<u64> {
        self.metric_line(&format!("{name}{{signal=\"{signal}\"}}"))
            .await
    }

    /// A metric without labels.
    pub async fn metric_value(&self, name: &str) -> anyhow::Result<u64> {
        self.metric_line(name).await
    }

    async fn metric_line(&self, series: &str) -> anyhow::Result<u64> {
        let answer = self.http.get(&format!("{}/metrics", self.api)).await?;
        anyhow::ensure!(answer.is_success(), "/metrics answered {}", answer.status);
        let text = answer.text();
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|value| value as u64)
            .with_context(|| format!("/metrics has no {prefix}"))
    }

    /// SIGTERM, then waits for a clean exit; returns how long that took.
    pub async fn stop(self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid])
            .status()
            .context("cannot run kill")?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.pid);
        while started.elapsed() < Duration::from_secs(300) {
            if let Some(status) = self.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "the collector exited with {status}; see {}",
                    self.log_path.display()
                );
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the collector did not stop within 300 s of SIGTERM")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Bytes of the span and log indexes under a data directory.
pub fn index_bytes(data_dir: &Path) -> (u64, u64) {
    let index = data_dir.join("index");
    (
        dir_size(&index.join("spans")),
        dir_size(&index.join("logs")),
    )
}

/// Merges the segments of every split under `data_dir` into one (the collector
/// must be stopped).
pub fn merge_all(data_dir: &Path) -> anyhow::Result<()> {
    for signal in ["spans", "logs"] {
        let root = data_dir.join("index").join(signal);
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.path().join("meta.json").is_file() {
                continue;
            }
            let index = Index::open_in_dir(entry.path())?;
            let mut writer: IndexWriter<TantivyDocument> =
                index.writer_with_num_threads(1, 64 << 20)?;
            let segments = index.searchable_segment_ids()?;
            if segments.len() > 1 {
                writer.merge(&segments).wait()?;
            }
            writer.garbage_collect_files().wait()?;
            writer.wait_merging_threads()?;
        }
    }
    Ok(())
}

/// Where the bytes of a signal's index go, after [`merge_all`]: the doc store,
/// each field's terms (dictionary and postings) and columns, and the rest (the
/// splits' origin tables and tantivy's metadata), largest first.
pub fn index_parts(data_dir: &Path, signal: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let root = data_dir.join("index").join(signal);
    let mut parts: std::collections::BTreeMap<String, u64> = Default::default();
    let mut counted = 0;
    for entry in std::fs::read_dir(&root)?.flatten() {
        if !entry.path().join("meta.json").is_file() {
            continue;
        }
        let searcher = Index::open_in_dir(entry.path())?.reader()?.searcher();
        for segment in searcher.space_usage()?.segments() {
            let mut add = |part: String, bytes: u64| {
                *parts.entry(part).or_default() += bytes;
                counted += bytes;
            };
            add("doc store".into(), segment.store().total().get_bytes());
            for field in segment
                .termdict()
                .fields()
                .chain(segment.postings().fields())
                .chain(segment.positions().fields())
                .chain(segment.fieldnorms().fields())
            {
                add(
                    format!("terms {}", field.field_name()),
                    field.total().get_bytes(),
                );
            }
            for field in segment.fast_fields().fields() {
                add(
                    format!("column {}", field.field_name()),
                    field.total().get_bytes(),
                );
            }
            add("deletes".into(), segment.deletes().get_bytes());
        }
    }
    let rest = dir_size(&root).saturating_sub(counted);
    let mut parts: Vec<(String, u64)> = parts.into_iter().filter(|(_, b)| *b > 0).collect();
    parts.push(("other (origins, metadata)".into(), rest));
    parts.sort_by_key(|(name, bytes)| (std::cmp::Reverse(*bytes), name.clone()));
    Ok(parts)
}

/// Samples the collector's memory every second.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Duration, process::Memory)>>,
}

impl RssSampler {
    pub fn start(collector: Arc<Collector>) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut series = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok(memory) = collector.memory() {
                    series.push((collector.origin.elapsed(), memory));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            series
        });
        RssSampler { stop, task }
    }

    pub async fn stop(self) -> Vec<(Duration, process::Memory)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
