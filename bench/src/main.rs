//! `hopline-bench`: the standard workload against a real `hopline`, measured.
//!
//! Starts the `hopline` binary built beside this one on loopback with a fresh data
//! directory, indexes the same spans with raw tantivy in this process first (the
//! limit), then loads the collector over OTLP/gRPC and OTLP/HTTP (protobuf, gzip)
//! from several connections, queries it while it ingests, and prints one Markdown
//! table. Progress goes to stderr, the table to stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hopline_bench::collector::{self, Collector};
use hopline_bench::load::{Phase, PhaseResult, Sender};
use hopline_bench::process::Memory;
use hopline_bench::queries;
use hopline_bench::raw::{self, RawResult};
use hopline_bench::stats::{mib, millis, thousands, Samples};
use hopline_bench::workload::{Signal, Workload};

/// The collector's allocator, so the raw-tantivy baseline runs on the same one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scale {
    /// 500,000 spans and 500,000 log records: about two minutes.
    Quick,
    /// 10 million of each, trace lookups at 1M and 10M spans: about 10 minutes.
    Full,
}

/// Measures Hopline on the standard workload: ingest rate and CPU cost beside raw
/// tantivy, bytes on disk, query latency under ingest, visibility delay and memory.
#[derive(Debug, Parser)]
#[command(name = "hopline-bench", version)]
struct Args {
    /// How much to send.
    #[arg(long, value_enum, default_value = "quick")]
    scale: Scale,
    /// Spans to send (overrides the scale).
    #[arg(long)]
    spans: Option<u64>,
    /// Log records to send (overrides the scale).
    #[arg(long)]
    logs: Option<u64>,
    /// Stop sending a signal after this many seconds, however many were sent.
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<u64>,
    /// Records per second to offer per signal; 0 sends as fast as acknowledged.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Concurrent connections per signal, alternately gRPC and HTTP.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// The protocol: OTLP, Zipkin v2 JSON for the spans, or Loki's JSON push or
    /// Elasticsearch bulk NDJSON for the log records (gzip'd, over HTTP on every
    /// connection), to compare the receivers' cost per record.
    #[arg(long, value_enum, default_value = "otlp")]
    sender: Sender,
    /// Queries of each kind at each checkpoint.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Records of each signal for the raw-tantivy baseline [default: as many as
    /// sent; 0 skips it].
    #[arg(long)]
    raw: Option<u64>,
    /// Only the raw-tantivy baseline: no collector.
    #[arg(long)]
    raw_only: bool,
    /// The collector binary [default: `hopline` beside this program].
    #[arg(long)]
    hopline: Option<PathBuf>,
    /// Where to put the data directories [default: a temporary directory, removed after].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Instead of the benchmark: both signals at `--rate` each for this long (e.g.
    /// `30m`), with queries, printing memory, open files, visibility and query
    /// latency each minute; then checks that everything acknowledged was indexed.
    #[arg(long, value_name = "DURATION", value_parser = hopline::config::parse_duration)]
    soak: Option<Duration>,
    /// Instead of the benchmark: the memory a hostile client can make the collector
    /// hold (a 200,000-span trace read five times at once; gRPC streams that announce
    /// 16 MiB and send 16 KiB).
    #[arg(long)]
    hostile: bool,
    /// Instead of the benchmark: a week of data. Seeds 168 hourly splits of each
    /// signal (`--spans` and `--logs`, default 100 million each) through the
    /// collector's split writer, then measures start-up to the first answer, trace by
    /// id across the week and a rare term searched over the week. With `--dir`, a
    /// later `--week` on the same directory measures without seeding again.
    #[arg(long, conflicts_with_all = ["soak", "hostile", "secure", "raw_only"])]
    week: bool,
    /// Run the collector as an exposed deployment would: a token on every request
    /// and TLS on all three listeners (to measure what they cost).
    #[arg(long)]
    secure: bool,
    /// Instead of the benchmark: cluster mode with 1, 2, ... N ingest nodes and a
    /// search node, over `--metastore` and `--object-store` (credentials from
    /// the AWS variables): `--spans` spans (default 1 million) each, their
    /// spans per CPU-second of the ingest nodes, what publishing costs, trace by
    /// id with a cold and a warm split cache; then `--logs` log records (default
    /// 1 million) into the largest cluster, and log search over them once all
    /// are in object storage.
    #[arg(long, value_name = "N", requires_all = ["metastore", "object_store"],
          conflicts_with_all = ["soak", "hostile", "secure", "raw_only", "week"])]
    cluster: Option<usize>,
    /// With --cluster: a PostgreSQL URL whose user may create databases (one is
    /// made per cluster size, and dropped after).
    #[arg(long, value_name = "URL")]
    metastore: Option<String>,
    /// With --cluster: `s3://bucket/prefix` (a prefix per run below it).
    #[arg(long, value_name = "URL")]
    object_store: Option<String>,
    /// With --cluster: the S3 endpoint, for MinIO, SeaweedFS or Ceph.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
}

struct Plan {
    span_checkpoints: Vec<u64>,
    log_checkpoints: Vec<u64>,
    raw_spans: u64,
    raw_logs: u64,
}

impl Plan {
    fn new(args: &Args) -> Plan {
        let (spans, logs, span_checkpoints) = match args.scale {
            Scale::Quick => (500_000, 500_000, vec![]),
            Scale::Full => (10_000_000, 10_000_000, vec![1_000_000]),
        };
        let spans = args.spans.unwrap_or(spans);
        let logs = args.logs.unwrap_or(logs);
        let mut span_checkpoints: Vec<u64> = span_checkpoints
            .into_iter()
            .filter(|&c| c < spans)
            .collect();
        span_checkpoints.push(spans);
        Plan {
            span_checkpoints,
            log_checkpoints: vec![logs],
            raw_spans: args.raw.unwrap_or(spans),
            raw_logs: args.raw.unwrap_or(logs),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hopline-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::new(&args);
    let binary = match &args.hopline {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("hopline"),
    };
    anyhow::ensure!(
        binary.is_file(),
        "no collector at {}: build it first (cargo build --release -p hopline -p hopline-bench) or pass --hopline",
        binary.display()
    );
    let mut temp = None;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            let made = tempfile::Builder::new()
                .prefix("hopline-bench-")
                .tempdir()?;
            let path = made.path().to_path_buf();
            temp = Some(made);
            path
        }
    };
    // Timestamps start two minutes ago, so everything sent lies in the default windows.
    let workload = Workload {
        nonce: now_nanos(),
        now: now_nanos() - 120_000_000_000,
    };

    if let (Some(max_nodes), Some(metastore), Some(object_store)) =
        (args.cluster, &args.metastore, &args.object_store)
    {
        let engines = hopline_bench::cluster::Engines {
            metastore: metastore.clone(),
            object_store: object_store.clone(),
            s3_endpoint: args.s3_endpoint.clone(),
        };
        let run = hopline_bench::cluster::Run {
            binary: &binary,
            dir: &dir,
            engines: &engines,
            max_nodes: max_nodes.max(1),
            spans: args.spans.unwrap_or(1_000_000),
            logs: args.logs.unwrap_or(1_000_000),
            connections: args.connections,
            queries: args.queries,
            workload,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let rows = runtime.block_on(hopline_bench::cluster::cluster(&run))?;
        println!("{}", hopline_bench::cluster::markdown(&rows));
        return Ok(());
    }
    if args.hostile || args.soak.is_some() {
        return run_other(&args, workload, &binary, &dir);
    }
    if args.week {
        let spans = args.spans.unwrap_or(100_000_000);
        let logs = args.logs.unwrap_or(100_000_000);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let report = runtime.block_on(hopline_bench::week::week(
            &binary,
            &dir,
            spans,
            logs,
            args.queries,
        ))?;
        println!("{}", report.markdown());
        return Ok(());
    }
    let raw_baseline = |logs: bool, count: u64| -> anyhow::Result<Option<RawResult>> {
        if count == 0 {
            return Ok(None);
        }
        let what = if logs { "log records" } else { "spans" };
        eprintln!(
            "raw tantivy: indexing {} {what} in this process ...",
            thousands(count)
        );
        let raw_dir = dir.join("raw");
        let result = raw::index(workload, logs, count, &raw_dir)?;
        std::fs::remove_dir_all(&raw_dir)?;
        eprintln!(
            "raw tantivy: {:.0} {what} per CPU-second",
            result.per_cpu_second()
        );
        Ok(Some(result))
    };
    let raw = [
        raw_baseline(false, plan.raw_spans)?,
        raw_baseline(true, plan.raw_logs)?,
    ];

    if args.raw_only {
        for (what, result) in ["spans", "log records"].iter().zip(&raw) {
            if let Some(raw) = result {
                println!(
                    "raw tantivy: {} {what}, {:.0} per CPU-second, {:.0} bytes each",
                    thousands(raw.records),
                    raw.per_cpu_second(),
                    raw.bytes as f64 / raw.records.max(1) as f64
                );
            }
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = match runtime.block_on(bench(&args, &plan, workload, &binary, &dir)) {
        Ok(report) => report,
        Err(e) => {
            if let Some(temp) = temp.take() {
                // Kept for a look at the collector's log and data.
                let kept = temp.keep();
                eprintln!(
                    "keeping {} (the collector's log is hopline.log)",
                    kept.display()
                );
            }
            return Err(e);
        }
    };
    println!("{}", report.markdown(&args, raw));
    if args.dir.is_none() {
        eprintln!("removing {}", dir.display());
    }
    Ok(())
}

/// `--hostile` or `--soak`: a collector of its own, one report.
fn run_other(
    args: &Args,
    workload: Workload,
    binary: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let collector = Arc::new(Collector::start(binary, dir, secure(args, dir)?, &[]).await?);
        let (report, lost) = match args.soak {
            Some(duration) => {
                anyhow::ensure!(
                    args.rate > 0,
                    "--soak needs a --rate (records per second of each signal)"
                );
                let report = hopline_bench::soak::soak(
                    Arc::clone(&collector),
                    workload,
                    args.connections,
                    args.rate,
                    duration,
                )
                .await?;
                let lost = report
                    .indexed
                    .iter()
                    .any(|(indexed, acked)| indexed < acked);
                (report.markdown(), lost)
            }
            None => (
                hopline_bench::hostile::hostile(Arc::clone(&collector))
                    .await?
                    .markdown(),
                false,
            ),
        };
        if let Some(collector) = Arc::into_inner(collector) {
            collector.stop().await?;
        }
        println!("{report}");
        anyhow::ensure!(!lost, "records acknowledged and not indexed");
        Ok(())
    })
}

/// Everything measured against the collector.
struct Report {
    spans: PhaseResult,
    logs: PhaseResult,
    trace_by_id: Vec<(u64, Samples, u64)>,
    trace_search: Samples,
    service_health: Samples,
    log_rare: Samples,
    log_common: Samples,
    log_filtered: Samples,
    wrong_answers: u64,
    /// Spans and logs index bytes: before shutdown, after shutdown, after a final merge.
    span_bytes: [u64; 3],
    log_bytes: [u64; 3],
    peak_rss: u64,
    rss_series: Vec<(Duration, Memory)>,
    /// What the collector's caches of segment data held at the end of the log
    /// load: trace-id tables, service-health rollups (`None`: a collector without
    /// `hopline_cache_bytes`).
    caches: Option<[u64; 2]>,
}

/// The token and certificates of `--secure`, in `dir`.
fn secure(args: &Args, dir: &std::path::Path) -> anyhow::Result<Option<collector::Secure>> {
    if !args.secure {
        return Ok(None);
    }
    let secure = collector::Secure::create(dir)?;
    eprintln!("--secure: TLS on all listeners and a bearer token on every request");
    Ok(Some(secure))
}

async fn bench(
    args: &Args,
    plan: &Plan,
    workload: Workload,
    binary: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<Report> {
    let collector = Arc::new(Collector::start(binary, dir, secure(args, dir)?, &[]).await?);
    eprintln!(
        "collector pid {} listening: OTLP/gRPC {}, OTLP/HTTP {}, API {} (log: {})",
        collector.pid,
        collector.otlp_grpc,
        collector.otlp_http,
        collector.api,
        collector.log_path.display()
    );
    let sampler = collector::RssSampler::start(Arc::clone(&collector));
    let started = Instant::now();
    let spans = span_phase(args, plan, workload, &collector).await?;
    let logs = log_phase(args, plan, workload, &collector).await?;
    let caches = cache_bytes(&collector).await;
    let before_shutdown = collector.index_bytes();
    let rss_series = sampler.stop().await;
    let peak_rss = collector.memory().map_or(0, |memory| memory.peak);
    let (after_shutdown, merged) = stop_and_merge(collector).await?;
    eprintln!(
        "benchmark finished in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Report {
        wrong_answers: spans.wrong + logs.wrong,
        spans: spans.result,
        logs: logs.result,
        trace_by_id: spans.trace_by_id,
        trace_search: spans.trace_search,
        service_health: spans.service_health,
        log_rare: logs.rare,
        log_common: logs.common,
        log_filtered: logs.filtered,
        span_bytes: [before_shutdown.0, after_shutdown.0, merged.0],
        log_bytes: [before_shutdown.1, after_shutdown.1, merged.1],
        peak_rss,
        rss_series,
        caches,
    })
}

/// The bytes of the collector's trace-id tables and service-health rollups.
async fn cache_bytes(collector: &Collector) -> Option<[u64; 2]> {
    let held = |cache| format!("hopline_cache_bytes{{cache=\"{cache}\"}}");
    Some([
        collector.metric_value(&held("trace_ids")).await.ok()?,
        collector.metric_value(&held("rollups")).await.ok()?,
    ])
}

/// What the span phase measured.
struct SpanPhase {
    result: PhaseResult,
    trace_by_id: Vec<(u64, Samples, u64)>,
    trace_search: Samples,
    service_health: Samples,
    wrong: u64,
}

/// Spans: trace lookups at each checkpoint, trace search at the last.
async fn span_phase(
    args: &Args,
    plan: &Plan,
    workload: Workload,
    collector: &Arc<Collector>,
) -> anyhow::Result<SpanPhase> {
    let mut phase = Phase::start(
        Arc::clone(collector),
        Signal::Spans,
        workload,
        args.connections,
        args.rate,
        args.time_limit.map(Duration::from_secs),
        args.sender,
    )
    .await?;
    let mut trace_by_id = Vec::new();
    let mut trace_search = Samples::default();
    let mut service_health = Samples::default();
    let mut wrong = 0;
    for (i, &checkpoint) in plan.span_checkpoints.iter().enumerate() {
        let last = i + 1 == plan.span_checkpoints.len();
        phase.wait_acked(checkpoint, last).await?;
        let searchable = phase.wait_searchable().await?;
        eprintln!(
            "spans: {} queries by trace id at {} spans, while ingesting",
            args.queries,
            thousands(searchable)
        );
        phase.begin_queries()?;
        let (samples, incomplete) =
            queries::trace_by_id(collector, workload, searchable, args.queries).await?;
        wrong += incomplete;
        trace_by_id.push((searchable, samples, incomplete));
        if last {
            eprintln!("spans: {} trace searches, while ingesting", args.queries);
            trace_search = queries::trace_search(collector, args.queries).await?;
            eprintln!(
                "spans: {} service-health questions, while ingesting",
                args.queries
            );
            service_health = queries::service_health(collector, args.queries).await?;
        }
        phase.end_queries()?;
    }
    Ok(SpanPhase {
        result: phase.finish().await?,
        trace_by_id,
        trace_search,
        service_health,
        wrong,
    })
}

/// What the log phase measured.
struct LogPhase {
    result: PhaseResult,
    rare: Samples,
    common: Samples,
    filtered: Samples,
    wrong: u64,
}

/// Logs: the three searches at the end, while ingesting.
async fn log_phase(
    args: &Args,
    plan: &Plan,
    workload: Workload,
    collector: &Arc<Collector>,
) -> anyhow::Result<LogPhase> {
    let mut phase = Phase::start(
        Arc::clone(collector),
        Signal::Logs,
        workload,
        args.connections,
        args.rate,
        args.time_limit.map(Duration::from_secs),
        args.sender,
    )
    .await?;
    let mut searches = None;
    for (i, &checkpoint) in plan.log_checkpoints.iter().enumerate() {
        let last = i + 1 == plan.log_checkpoints.len();
        phase.wait_acked(checkpoint, last).await?;
        let searchable = phase.wait_searchable().await?;
        if last {
            eprintln!(
                "logs: {} searches of each kind at {} records, while ingesting",
                args.queries,
                thousands(searchable)
            );
            phase.begin_queries()?;
            searches = Some(queries::log_search(collector, searchable, args.queries).await?);
            phase.end_queries()?;
        }
    }
    let (rare, common, filtered, wrong) = searches.unwrap_or_default();
    Ok(LogPhase {
        result: phase.finish().await?,
        rare,
        common,
        filtered,
        wrong,
    })
}

/// Stops the collector, then merges every split into one segment: the index
/// bytes after shutdown and after the merge.
async fn stop_and_merge(collector: Arc<Collector>) -> anyhow::Result<((u64, u64), (u64, u64))> {
    eprintln!("stopping the collector (it commits and finishes its merges) ...");
    let collector = Arc::into_inner(collector)
        .ok_or_else(|| anyhow::anyhow!("the collector is still in use"))?;
    let data_dir = collector.data_dir.clone();
    let stopped_in = collector.stop().await?;
    eprintln!("collector stopped in {}", millis(stopped_in));
    let after_shutdown = collector::index_bytes(&data_dir);
    eprintln!("merging every split into one segment ...");
    collector::merge_all(&data_dir)?;
    for signal in ["spans", "logs"] {
        let parts = collector::index_parts(&data_dir, signal)?;
        let total: u64 = parts.iter().map(|(_, bytes)| bytes).sum();
        eprintln!(
            "{signal} on disk after the final merge, by part ({}):",
            mib(total)
        );
        for (part, bytes) in parts {
            eprintln!(
                "  {part:<32} {:>5.1}%  {:>9.1} MiB",
                100.0 * bytes as f64 / total.max(1) as f64,
                bytes as f64 / f64::from(1 << 20)
            );
        }
    }
    Ok((after_shutdown, collector::index_bytes(&data_dir)))
}

impl Report {
    fn markdown(&self, args: &Args, [raw_spans, raw_logs]: [Option<RawResult>; 2]) -> String {
        let mut rows: Vec<(String, String, &str)> = Vec::new();
        let mut row = |figure: &str, value: String, target: &'static str| {
            rows.push((figure.to_string(), value, target));
        };
        let spans = &self.spans;
        let logs = &self.logs;
        row(
            "spans acknowledged",
            format!(
                "{} in {:.1} s: **{:.0}/s** ({} in all, with those sent while querying; {} refused and retried)",
                thousands(spans.sustained_acked),
                spans.sustained_wall.as_secs_f64(),
                spans.acked_per_second(),
                thousands(spans.acked),
                thousands(spans.refused)
            ),
            "",
        );
        row(
            "spans indexed (acknowledged to searchable, queue drained)",
            format!(
                "{:.0}/s; queue at the end of the load {} records, drained {} later",
                spans.indexed_per_second(),
                thousands(spans.queue_at_end),
                millis(spans.drain)
            ),
            "no backlog growing",
        );
        row(
            "spans per CPU-second of `hopline`, ingesting (query windows left out)",
            format!(
                "**{:.0}** ({:.1} of {:.1} CPU-s, {:.2} cores busy); with the query windows {:.0}",
                spans.ingest_per_cpu_second(),
                spans.cpu.saturating_sub(spans.query_cpu).as_secs_f64(),
                spans.cpu.as_secs_f64(),
                spans.cores(),
                spans.per_cpu_second()
            ),
            ">= 40,000",
        );
        if let Some(raw) = raw_spans {
            row(
                "raw tantivy, same documents and schema, spans per CPU-second",
                format!(
                    "{:.0} ({} spans, {:.1} CPU-s, {:.1} s)",
                    raw.per_cpu_second(),
                    thousands(raw.records),
                    raw.cpu.as_secs_f64(),
                    raw.wall.as_secs_f64()
                ),
                "",
            );
            row(
                "`hopline` / raw tantivy",
                format!(
                    "**{:.2}**",
                    spans.ingest_per_cpu_second() / raw.per_cpu_second()
                ),
                ">= 0.8",
            );
        }
        row(
            "logs acknowledged",
            format!(
                "{} in {:.1} s: **{:.0}/s** ({} in all, with those sent while querying; {} refused and retried)",
                thousands(logs.sustained_acked),
                logs.sustained_wall.as_secs_f64(),
                logs.acked_per_second(),
                thousands(logs.acked),
                thousands(logs.refused)
            ),
            "",
        );
        row(
            "logs indexed",
            format!(
                "{:.0}/s; queue at the end of the load {} records, drained {} later",
                logs.indexed_per_second(),
                thousands(logs.queue_at_end),
                millis(logs.drain)
            ),
            "no backlog growing",
        );
        row(
            "logs per CPU-second of `hopline`, ingesting (query windows left out)",
            format!(
                "**{:.0}** ({:.1} of {:.1} CPU-s, {:.2} cores busy); with the query windows {:.0}",
                logs.ingest_per_cpu_second(),
                logs.cpu.saturating_sub(logs.query_cpu).as_secs_f64(),
                logs.cpu.as_secs_f64(),
                logs.cores(),
                logs.per_cpu_second()
            ),
            ">= 50,000",
        );
        if let Some(raw) = raw_logs {
            row(
                "raw tantivy, same documents and schema, logs per CPU-second",
                format!(
                    "{:.0} ({} records, {:.1} CPU-s, {:.1} s); `hopline` / raw: **{:.2}**",
                    raw.per_cpu_second(),
                    thousands(raw.records),
                    raw.cpu.as_secs_f64(),
                    raw.wall.as_secs_f64(),
                    logs.ingest_per_cpu_second() / raw.per_cpu_second()
                ),
                "",
            );
        }
        row(
            "export latency, spans (512 per request)",
            spans.export_latency.summary(),
            "",
        );
        row(
            "export latency, logs (512 per request)",
            logs.export_latency.summary(),
            "",
        );
        let per = |bytes: u64, count: u64| bytes as f64 / count.max(1) as f64;
        let stored_spans = spans.acked + spans.probes;
        let stored_logs = logs.acked + logs.probes;
        row(
            "bytes on disk per span: running / after shutdown / after a final merge",
            format!(
                "{:.0} / {:.0} / **{:.0}** ({} in all)",
                per(self.span_bytes[0], stored_spans),
                per(self.span_bytes[1], stored_spans),
                per(self.span_bytes[2], stored_spans),
                mib(self.span_bytes[2])
            ),
            "<= 120",
        );
        if let Some(raw) = raw_spans {
            row(
                "bytes per span, raw tantivy (one commit, merges finished)",
                format!("{:.0}", per(raw.bytes, raw.records)),
                "",
            );
        }
        row(
            "bytes on disk per log record: running / after shutdown / after a final merge",
            format!(
                "{:.0} / {:.0} / **{:.0}** ({} in all)",
                per(self.log_bytes[0], stored_logs),
                per(self.log_bytes[1], stored_logs),
                per(self.log_bytes[2], stored_logs),
                mib(self.log_bytes[2])
            ),
            "<= 100",
        );
        if let Some(raw) = raw_logs {
            row(
                "bytes per log record, raw tantivy (one commit, merges finished)",
                format!("{:.0}", per(raw.bytes, raw.records)),
                "",
            );
        }
        for (checkpoint, samples, wrong) in &self.trace_by_id {
            row(
                &format!(
                    "`GET /api/traces/{{id}}` at {} spans, under ingest",
                    thousands(*checkpoint)
                ),
                format!("{} ({wrong} incomplete)", samples.summary()),
                "p99 <= 20 ms at 10M",
            );
        }
        row(
            "trace search (`service`, `tags`, `minDuration`, limit 20), under ingest",
            self.trace_search.summary(),
            "",
        );
        row(
            "service health (`/api/service-metrics`: every service, or one per operation; the whole run), under ingest",
            self.service_health.summary(),
            "p99 <= 300 ms at 10M",
        );
        row(
            "log search, rare term, top 100 + total, under ingest",
            self.log_rare.summary(),
            "p99 <= 100 ms at 10M",
        );
        row(
            "log search, common term (10% of records)",
            self.log_common.summary(),
            "p99 <= 100 ms at 10M",
        );
        row(
            "log search, service + minSeverity=error + term",
            self.log_filtered.summary(),
            "p99 <= 100 ms at 10M",
        );
        row(
            "visibility delay, acknowledged to found by trace id, under span load",
            spans.visibility.summary(),
            "p99 <= 1.5 s",
        );
        row(
            "visibility delay, acknowledged to found by log search, under log load",
            logs.visibility.summary(),
            "p99 <= 1.5 s",
        );
        let steady =
            |window, part: fn(&Memory) -> u64| mib(steady_rss(&self.rss_series, window, part));
        row(
            "RSS: peak / steady during spans, logs (median of each load's second half)",
            format!(
                "{} / {}, {}",
                mib(self.peak_rss),
                steady(spans.window, |m| m.rss),
                steady(logs.window, |m| m.rss)
            ),
            "<= 1 GiB, flat",
        );
        row(
            "of which anonymous (heap; the rest is mapped index files): max / steady, spans, logs",
            format!(
                "{} / {}, {}",
                mib(self
                    .rss_series
                    .iter()
                    .map(|(_, m)| m.anon)
                    .max()
                    .unwrap_or(0)),
                steady(spans.window, |m| m.anon),
                steady(logs.window, |m| m.anon)
            ),
            "",
        );
        if let Some([trace_ids, rollups]) = self.caches {
            row(
                "of the heap, caches of segment data at the end: trace-id tables / service-health rollups",
                format!("{} / {}", mib(trace_ids), mib(rollups)),
                "<= 256 MiB / <= 128 MiB",
            );
        }
        if self.wrong_answers > 0 {
            row(
                "wrong answers (incomplete traces, missing log records)",
                self.wrong_answers.to_string(),
                "0",
            );
        }

        let scale = match args.scale {
            Scale::Quick => "quick",
            Scale::Full => "full",
        };
        let mut out = format!(
            "`hopline-bench --scale {scale} --connections {} --rate {}` ({} spans, {} logs)\n\n",
            args.connections,
            args.rate,
            thousands(spans.acked),
            thousands(logs.acked)
        );
        out.push_str("| figure | measured | target |\n| --- | --- | --- |\n");
        for (figure, value, target) in rows {
            out.push_str(&format!("| {figure} | {value} | {target} |\n"));
        }
        out
    }
}

/// The median of `part` of the samples in the second half of `window` (offsets
/// from the collector's start).
fn steady_rss(
    series: &[(Duration, Memory)],
    window: (Duration, Duration),
    part: fn(&Memory) -> u64,
) -> u64 {
    let middle = window.0 + (window.1.saturating_sub(window.0)) / 2;
    let mut values: Vec<u64> = series
        .iter()
        .filter(|(at, _)| *at >= middle && *at <= window.1)
        .map(|(_, memory)| part(memory))
        .collect();
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}
