//! One load phase: connections sending the standard workload of one signal, a
//! visibility probe beside them, and the accounting of what was acknowledged.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stats::{mib, thousands, Samples};
use crate::workload::{Signal, Workload, BATCH};
use anyhow::Context;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use crate::collector::Collector;
use crate::probe;

/// The protocol the records are sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sender {
    /// OTLP: gRPC and HTTP/protobuf connections, half each.
    Otlp,
    /// Zipkin v2 JSON, gzip'd, to `/api/v2/spans` (spans; logs stay OTLP).
    Zipkin,
    /// Loki's JSON push, gzip'd, to `/loki/api/v1/push` (logs; spans stay OTLP).
    Loki,
    /// Elasticsearch bulk NDJSON, gzip'd, to `/_bulk` (logs; spans stay OTLP).
    Elasticsearch,
}

impl Sender {
    /// The path this sender posts `signal` to over HTTP; None for OTLP.
    fn path(self, signal: Signal) -> Option<&'static str> {
        match (self, signal) {
            (Sender::Zipkin, Signal::Spans) => Some("/api/v2/spans"),
            (Sender::Loki, Signal::Logs) => Some("/loki/api/v1/push"),
            (Sender::Elasticsearch, Signal::Logs) => Some("/logs/_bulk"),
            _ => None,
        }
    }
}

/// Counters shared by a phase's connections.
struct Shared {
    signal: Signal,
    workload: Workload,
    /// The first record of the next batch to send.
    next: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    stop: AtomicBool,
    /// The first record of the batch each connection is sending, or `u64::MAX`.
    in_flight: Vec<AtomicU64>,
    latency: Mutex<Samples>,
}

impl Shared {
    /// Every record below this is acknowledged.
    fn contiguous_acked(&self) -> u64 {
        let next = self.next.load(Ordering::SeqCst);
        self.in_flight
            .iter()
            .map(|first| first.load(Ordering::SeqCst))
            .min()
            .unwrap_or(u64::MAX)
            .min(next)
    }
}

/// What a phase measured.
#[derive(Debug, Default)]
pub struct PhaseResult {
    pub acked: u64,
    pub refused: u64,
    /// Probe records sent beside the load (they are stored too).
    pub probes: u64,
    /// Time to acknowledge the last checkpoint's records.
    pub sustained_wall: Duration,
    pub sustained_acked: u64,
    /// From the start of the load until every acknowledged record was indexed.
    pub indexed_wall: Duration,
    /// The collector's CPU time from the start of the load until it was idle again
    /// (so merges count).
    pub cpu: Duration,
    /// Of that, the CPU time of the windows in which queries ran beside the load,
    /// and the records acknowledged in them.
    pub query_cpu: Duration,
    pub query_acked: u64,
    pub idle_wall: Duration,
    pub queue_at_end: u64,
    pub drain: Duration,
    pub export_latency: Samples,
    pub visibility: Samples,
    /// Offsets from the collector's start: the load's start and the last checkpoint.
    pub window: (Duration, Duration),
}

impl PhaseResult {
    pub fn acked_per_second(&self) -> f64 {
        self.sustained_acked as f64 / self.sustained_wall.as_secs_f64().max(1e-9)
    }

    pub fn indexed_per_second(&self) -> f64 {
        self.acked as f64 / self.indexed_wall.as_secs_f64().max(1e-9)
    }

    /// Records per CPU-second, the query windows included.
    pub fn per_cpu_second(&self) -> f64 {
        self.acked as f64 / self.cpu.as_secs_f64().max(1e-9)
    }

    /// Records per CPU-second of ingest alone: the query windows left out, their
    /// CPU time and the records acknowledged in them both.
    pub fn ingest_per_cpu_second(&self) -> f64 {
        let cpu = self.cpu.saturating_sub(self.query_cpu);
        self.acked.saturating_sub(self.query_acked) as f64 / cpu.as_secs_f64().max(1e-9)
    }

    /// Average cores the collector kept busy.
    pub fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.idle_wall.as_secs_f64().max(1e-9)
    }
}

pub struct Phase {
    collector: Arc<Collector>,
    shared: Arc<Shared>,
    connections: Vec<JoinHandle<anyhow::Result<()>>>,
    probe: JoinHandle<anyhow::Result<(Samples, u64)>>,
    probe_stop: Arc<AtomicBool>,
    started: Instant,
    cpu_at_start: Duration,
    result: PhaseResult,
    last_progress: Instant,
    /// The load stops counting checkpoints after this long.
    time_limit: Option<Duration>,
    /// The collector's CPU time and the records acknowledged when queries began.
    queries_from: Option<(Duration, u64)>,
}

impl Phase {
    pub async fn start(
        collector: Arc<Collector>,
        signal: Signal,
        workload: Workload,
        connections: usize,
        rate: u64,
        time_limit: Option<Duration>,
        sender: Sender,
    ) -> anyhow::Result<Phase> {
        let connections = connections.max(1);
        let shared = Arc::new(Shared {
            signal,
            workload,
            next: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            in_flight: (0..connections).map(|_| AtomicU64::new(u64::MAX)).collect(),
            latency: Mutex::new(Samples::default()),
        });
        // At a fixed rate each connection sends a batch every `pace`.
        let pace = (rate > 0)
            .then(|| Duration::from_secs_f64(connections as f64 * BATCH as f64 / rate as f64));
        let cpu_at_start = collector.cpu()?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..connections {
            let transport = if let Some(path) = sender.path(signal) {
                Transport::Http {
                    client: collector.http.clone(),
                    url: format!("{}{path}", collector.otlp_http),
                    sender,
                }
            } else if i % 2 == 0 {
                Transport::grpc(&collector.otlp_grpc, collector.secure.as_ref()).await?
            } else {
                Transport::Http {
                    client: collector.http.clone(),
                    url: format!("{}/v1/{}", collector.otlp_http, otlp_path(signal)),
                    sender: Sender::Otlp,
                }
            };
            tasks.push(tokio::spawn(connection(
                Arc::clone(&shared),
                i,
                transport,
                pace,
            )));
        }
        let probe_stop = Arc::new(AtomicBool::new(false));
        let probe = tokio::spawn(probe::visibility_probe(
            Arc::clone(&collector),
            signal,
            workload.nonce,
            Arc::clone(&probe_stop),
        ));
        eprintln!(
            "{}: sending from {connections} connections ({})",
            signal.as_str(),
            match pace {
                Some(_) => format!("{rate} records/s offered"),
                None => "as fast as acknowledged".into(),
            }
        );
        let result = PhaseResult {
            window: (collector.origin.elapsed(), Duration::ZERO),
            ..PhaseResult::default()
        };
        Ok(Phase {
            collector,
            shared,
            connections: tasks,
            probe,
            probe_stop,
            started,
            cpu_at_start,
            result,
            last_progress: Instant::now(),
            time_limit,
            queries_from: None,
        })
    }

    async fn progress(&mut self) -> anyhow::Result<()> {
        if self.last_progress.elapsed() < Duration::from_secs(5) {
            return Ok(());
        }
        self.last_progress = Instant::now();
        let signal = self.shared.signal.as_str();
        let acked = self.shared.acked.load(Ordering::Relaxed);
        let queued = self
            .collector
            .metric("hopline_ingest_queue_depth", signal)
            .await?;
        let memory = self.collector.memory()?;
        eprintln!(
            "  {signal}: {:>5.0} s  {:>11} acknowledged ({:.0}/s), {} refused, queue {}, RSS {} (anonymous {})",
            self.started.elapsed().as_secs_f64(),
            thousands(acked),
            acked as f64 / self.started.elapsed().as_secs_f64(),
            thousands(self.shared.refused.load(Ordering::Relaxed)),
            thousands(queued),
            mib(memory.rss),
            mib(memory.anon)
        );
        Ok(())
    }

    /// Records acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::Relaxed)
    }

    /// Fails when a load connection stopped early (on an error `finish` reports).
    pub fn check(&self) -> anyhow::Result<()> {
        self.check_connections()
    }

    /// A connection ends early only on an error, which `finish` reports.
    fn check_connections(&self) -> anyhow::Result<()> {
        let stopped_early = !self.shared.stop.load(Ordering::Relaxed)
            && self.connections.iter().any(|task| task.is_finished());
        anyhow::ensure!(
            !stopped_early,
            "a load connection stopped early; see {}",
            self.collector.log_path.display()
        );
        Ok(())
    }

    /// Waits until `count` records are acknowledged; `last` marks the end of the
    /// sustained-ingest measurement.
    pub async fn wait_acked(&mut self, count: u64, last: bool) -> anyhow::Result<()> {
        while self.shared.acked.load(Ordering::Relaxed) < count {
            if self
                .time_limit
                .is_some_and(|limit| self.started.elapsed() >= limit)
            {
                eprintln!(
                    "{}: time limit reached at {} records",
                    self.shared.signal.as_str(),
                    thousands(self.shared.acked.load(Ordering::Relaxed))
                );
                break;
            }
            self.check_connections()?;
            self.progress().await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if last {
            self.result.sustained_wall = self.started.elapsed();
            self.result.sustained_acked = self.shared.acked.load(Ordering::Relaxed);
            self.result.window.1 = self.collector.origin.elapsed();
            self.result.queue_at_end = self
                .collector
                .metric("hopline_ingest_queue_depth", self.shared.signal.as_str())
                .await?;
        }
        Ok(())
    }

    /// Marks the start of queries run beside the load: until [`Phase::end_queries`],
    /// the collector's CPU time is not counted as ingest.
    pub fn begin_queries(&mut self) -> anyhow::Result<()> {
        let acked = self.shared.acked.load(Ordering::SeqCst);
        self.queries_from = Some((self.collector.cpu()?, acked));
        Ok(())
    }

    pub fn end_queries(&mut self) -> anyhow::Result<()> {
        if let Some((cpu, acked)) = self.queries_from.take() {
            self.result.query_cpu += self.collector.cpu()?.saturating_sub(cpu);
            self.result.query_acked += self
                .shared
                .acked
                .load(Ordering::SeqCst)
                .saturating_sub(acked);
        }
        Ok(())
    }

    /// Waits until every record acknowledged so far is searchable; returns how many
    /// records from the first on that is.
    pub async fn wait_searchable(&mut self) -> anyhow::Result<u64> {
        let signal = self.shared.signal.as_str();
        let contiguous = self.shared.contiguous_acked();
        // What is acknowledged is durable, so indexed or queued. The writer takes
        // the queue in order: once it has indexed as many records as were queued,
        // those acknowledged before are all in. (The queue is read first: a batch
        // indexed between the two reads is counted twice, never missed.)
        let queue = "hopline_ingest_queue_depth";
        let indexed = "hopline_records_indexed_total";
        let queued = self.collector.metric(queue, signal).await?;
        let target = self.collector.metric(indexed, signal).await? + queued;
        loop {
            if self.collector.metric(indexed, signal).await? >= target
                || self.collector.metric(queue, signal).await? == 0
            {
                break;
            }
            self.check_connections()?;
            self.progress().await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The next commit to finish covers them: the writer thread adds and
        // commits in turn, and counts a commit once its reader is reloaded.
        let commits = "hopline_index_commit_seconds_count";
        let seen = self.collector.metric(commits, signal).await?;
        while self.collector.metric(commits, signal).await? <= seen {
            self.check_connections()?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(contiguous)
    }

    /// Stops the load and the probe, waits for the queue to drain and the collector
    /// to go idle, and returns the figures.
    pub async fn finish(mut self) -> anyhow::Result<PhaseResult> {
        let signal = self.shared.signal.as_str();
        self.shared.stop.store(true, Ordering::SeqCst);
        self.probe_stop.store(true, Ordering::SeqCst);
        let stopped = Instant::now();
        for task in self.connections.drain(..) {
            task.await.context("load connection panicked")??;
        }
        let (visibility, probes) = (&mut self.probe).await.context("probe panicked")??;
        loop {
            let queued = self
                .collector
                .metric("hopline_ingest_queue_depth", signal)
                .await?;
            if queued == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.result.drain = stopped.elapsed();
        self.result.indexed_wall = self.started.elapsed();
        // Idle: under 3% of a core over a second, or a minute at most.
        let mut last_cpu = self.collector.cpu()?;
        let idle_deadline = Instant::now() + Duration::from_secs(60);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let cpu = self.collector.cpu()?;
            let busy = cpu.saturating_sub(last_cpu);
            last_cpu = cpu;
            if busy < Duration::from_millis(30) || Instant::now() > idle_deadline {
                break;
            }
        }
        self.result.cpu = last_cpu.saturating_sub(self.cpu_at_start);
        self.result.idle_wall = self.started.elapsed();
        self.result.acked = self.shared.acked.load(Ordering::SeqCst);
        self.result.refused = self.shared.refused.load(Ordering::SeqCst);
        self.result.probes = probes;
        self.result.visibility = visibility;
        self.result.export_latency = self
            .shared
            .latency
            .lock()
            .map(|samples| samples.clone())
            .unwrap_or_default();
        eprintln!(
            "{signal}: {} acknowledged, {:.0} per CPU-second of the collector",
            thousands(self.result.acked),
            self.result.per_cpu_second()
        );
        Ok(self.result)
    }
}

fn otlp_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Spans => "traces",
        Signal::Logs => "logs",
    }
}

/// A request of either signal.
enum Payload {
    Spans(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl Payload {
    fn build(signal: Signal, workload: Workload, first: u64) -> Payload {
        match signal {
            Signal::Spans => Payload::Spans(workload.spans(first, BATCH)),
            Signal::Logs => Payload::Logs(workload.logs(first, BATCH)),
        }
    }

    /// The request's bytes as `sender` sends them, gzip'd.
    fn gzip(&self, sender: Sender) -> Vec<u8> {
        let bytes = match (self, sender) {
            (Payload::Spans(request), Sender::Zipkin) => crate::senders::zipkin_json(request),
            (Payload::Logs(request), Sender::Loki) => crate::senders::loki_json(request),
            (Payload::Logs(request), Sender::Elasticsearch) => {
                crate::senders::elasticsearch_bulk(request)
            }
            (Payload::Spans(request), _) => request.encode_to_vec(),
            (Payload::Logs(request), _) => request.encode_to_vec(),
        };
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(bytes.len() / 4),
            flate2::Compression::fast(),
        );
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(&bytes);
        encoder.finish().unwrap_or_default()
    }
}

enum Transport {
    /// Boxed: the two clients are most of the enum's size.
    Grpc(Box<GrpcClients>),
    Http {
        client: crate::http::Http,
        url: String,
        /// What the body is: OTLP protobuf, or another sender's JSON.
        sender: Sender,
    },
}

struct GrpcClients {
    traces: TraceServiceClient<Channel>,
    logs: LogsServiceClient<Channel>,
    /// `authorization` metadata under `--secure`.
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

/// How one attempt went.
enum Sent {
    Accepted,
    /// Refused for overload: retry after the pause.
    Refused(Duration),
}

impl Transport {
    async fn grpc(
        url: &str,
        secure: Option<&crate::collector::Secure>,
    ) -> anyhow::Result<Transport> {
        let mut endpoint = Channel::from_shared(url.to_string())?;
        let mut authorization = None;
        if let Some(secure) = secure {
            endpoint = endpoint.tls_config(secure.grpc_tls())?;
            authorization = Some(format!("Bearer {}", secure.token).parse()?);
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        Ok(Transport::Grpc(Box::new(GrpcClients {
            traces: TraceServiceClient::new(channel.clone())
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip),
            logs: LogsServiceClient::new(channel)
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip),
            authorization,
        })))
    }

    /// gRPC encodes and compresses itself; HTTP gets the gzip bytes.
    fn wants_bytes(&self) -> Option<Sender> {
        match self {
            Transport::Http { sender, .. } => Some(*sender),
            Transport::Grpc(_) => None,
        }
    }

    async fn send(&mut self, payload: &Payload, body: &[u8]) -> anyhow::Result<Sent> {
        match self {
            Transport::Grpc(clients) => {
                let token = clients.authorization.clone();
                let result = match payload {
                    Payload::Spans(request) => {
                        let request = authorized(request.clone(), token);
                        clients.traces.export(request).await.map(|_| ())
                    }
                    Payload::Logs(request) => {
                        let request = authorized(request.clone(), token);
                        clients.logs.export(request).await.map(|_| ())
                    }
                };
                match result {
                    Ok(()) => Ok(Sent::Accepted),
                    Err(status)
                        if matches!(
                            status.code(),
                            tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                        ) =>
                    {
                        Ok(Sent::Refused(Duration::from_millis(200)))
                    }
                    Err(status) => anyhow::bail!("gRPC export failed: {status}"),
                }
            }
            Transport::Http {
                client,
                url,
                sender,
            } => {
                let content_type = match sender {
                    Sender::Otlp => "application/x-protobuf",
                    Sender::Zipkin | Sender::Loki => "application/json",
                    Sender::Elasticsearch => "application/x-ndjson",
                };
                let response = client
                    .post(url, content_type, Some("gzip"), body.to_vec())
                    .await?;
                if response.is_success() {
                    return Ok(Sent::Accepted);
                }
                if response.status == 429 || response.status == 503 {
                    return Ok(Sent::Refused(Duration::from_millis(200)));
                }
                anyhow::bail!(
                    "HTTP export failed: {} {}",
                    response.status,
                    response.text()
                )
            }
        }
    }
}

/// `message` as a request, with the `authorization` metadata of `--secure`.
fn authorized<T>(
    message: T,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// One connection: takes the next batch, sends it until it is accepted, repeats.
async fn connection(
    shared: Arc<Shared>,
    slot: usize,
    mut transport: Transport,
    pace: Option<Duration>,
) -> anyhow::Result<()> {
    let mut ticker = pace.map(|pace| {
        let mut ticker = tokio::time::interval(pace);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        let first = shared.next.fetch_add(BATCH, Ordering::SeqCst);
        shared.in_flight[slot].store(first, Ordering::SeqCst);
        let (signal, workload, wants_bytes) =
            (shared.signal, shared.workload, transport.wants_bytes());
        // Building and compressing a request is CPU work: off the async workers.
        let (payload, body) = tokio::task::spawn_blocking(move || {
            let payload = Payload::build(signal, workload, first);
            let body = match wants_bytes {
                Some(sender) => payload.gzip(sender),
                None => Vec::new(),
            };
            (payload, body)
        })
        .await?;
        loop {
            let sent = Instant::now();
            match transport.send(&payload, &body).await? {
                Sent::Accepted => {
                    shared.acked.fetch_add(BATCH, Ordering::SeqCst);
                    if let Ok(mut latency) = shared.latency.lock() {
                        latency.push(sent.elapsed());
                    }
                    break;
                }
                Sent::Refused(pause) => {
                    shared.refused.fetch_add(BATCH, Ordering::Relaxed);
                    if shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
        shared.in_flight[slot].store(u64::MAX, Ordering::SeqCst);
    }
    Ok(())
}
