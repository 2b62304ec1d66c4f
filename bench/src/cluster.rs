//! `--cluster N`: cluster mode on this machine, over the PostgreSQL and the
//! S3-compatible store given, with 1, 2, ... N ingest nodes and one search node:
//! spans per CPU-second of the ingest nodes together (so that two cores do not
//! hide the scaling), what publishing costs per record, and trace by id through
//! the search node with a cold split cache (splits fetched from object storage)
//! and then a warm one. The largest cluster then takes `--logs` log records
//! too, and log search runs through the search node over them once they are
//! all in object storage. Each size gets a database and an object prefix of its
//! own, dropped and left behind respectively at the end.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use prost::Message;

use crate::collector::Collector;
use crate::queries;
use crate::stats::{millis, thousands, Samples};
use crate::workload::{Workload, BATCH};

/// Where the cluster keeps its metadata and splits.
#[derive(Debug, Clone)]
pub struct Engines {
    /// A PostgreSQL URL whose user may create databases: each size gets one.
    pub metastore: String,
    /// `s3://bucket/prefix`: each size gets a prefix below it.
    pub object_store: String,
    pub s3_endpoint: Option<String>,
}

/// What one size of cluster measured.
pub struct Row {
    ingest_nodes: usize,
    spans: u64,
    seconds: f64,
    ingest_cpu: Duration,
    /// CPU of the ingest nodes from the end of the load until all was published.
    publish_cpu: Duration,
    published_records: u64,
    published_splits: u64,
    publish_micros: u64,
    cold: Samples,
    warm: Samples,
    incomplete: u64,
    logs: Option<LogRow>,
}

/// The log phase of the largest cluster.
pub struct LogRow {
    records: u64,
    seconds: f64,
    ingest_cpu: Duration,
    published_splits: u64,
    /// The first search after publishing: every split fetched from object storage.
    first: Duration,
    rare: Samples,
    common: Samples,
    filtered: Samples,
    /// Rare-term searches that did not find their one record.
    missed: u64,
}

/// The database URL `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("cannot run psql (the cluster benchmark makes a database per size with it)")?;
    if !output.status.success() {
        bail!(
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// One `--cluster` run.
pub struct Run<'a> {
    pub binary: &'a Path,
    pub dir: &'a Path,
    pub engines: &'a Engines,
    /// Clusters of 1, 2, ... this many ingest nodes.
    pub max_nodes: usize,
    /// Spans sent to each.
    pub spans: u64,
    /// Log records sent to the largest cluster after its spans.
    pub logs: u64,
    pub connections: usize,
    /// Trace lookups of each kind (cold, warm).
    pub queries: usize,
    pub workload: Workload,
}

/// Measures clusters of 1..=`max_nodes` ingest nodes, `spans` spans each.
pub async fn cluster(run: &Run<'_>) -> anyhow::Result<Vec<Row>> {
    let engines = run.engines;
    let mut rows = Vec::new();
    for nodes in 1..=run.max_nodes {
        let database = format!("hopline_bench_{:x}_{nodes}", run.workload.nonce);
        psql(&engines.metastore, &format!("CREATE DATABASE {database}"))?;
        let result = size(run, nodes, &with_database(&engines.metastore, &database)).await;
        if let Err(e) = psql(
            &engines.metastore,
            &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        ) {
            eprintln!("cluster: could not drop {database}: {e:#}");
        }
        rows.push(result?);
    }
    Ok(rows)
}

/// One cluster of `nodes` ingest nodes and a search node, on the database at
/// `metastore`.
async fn size(run: &Run<'_>, nodes: usize, metastore: &str) -> anyhow::Result<Row> {
    let Run {
        binary,
        engines,
        spans,
        connections,
        queries,
        workload,
        ..
    } = *run;
    let dir = run.dir.join(format!("cluster-{nodes}"));
    let object_store = format!(
        "{}/bench-{:x}-{nodes}",
        engines.object_store.trim_end_matches('/'),
        workload.nonce
    );
    let node_args = |role: &str, id: &str| {
        let mut args = vec![
            "--role".to_string(),
            role.into(),
            "--node-id".into(),
            id.into(),
            "--metastore".into(),
            metastore.into(),
            "--object-store".into(),
            object_store.clone(),
            "--publish-interval".into(),
            "5s".into(),
        ];
        if let Some(endpoint) = &engines.s3_endpoint {
            args.extend(["--s3-endpoint".into(), endpoint.clone()]);
        }
        args
    };
    let start = |role: &'static str, id: String| {
        let args = node_args(role, &id);
        let node_dir = dir.join(&id);
        async move {
            std::fs::create_dir_all(&node_dir)?;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Collector::start(binary, &node_dir, None, &args).await
        }
    };
    let mut ingest = Vec::new();
    for i in 0..nodes {
        ingest.push(Arc::new(start("ingest", format!("ingest-{i}")).await?));
    }
    let search = start("search", "search-0".to_string()).await?;
    eprintln!(
        "cluster of {nodes} ingest node(s) and a search node: sending {} spans over {connections} connections",
        thousands(spans)
    );

    let cpu_before = cpu(&ingest)?;
    let started = Instant::now();
    load(&ingest, Signal::Spans, spans, connections, workload).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_loaded = cpu(&ingest)?;
    let published = until_published(&ingest, spans, &dir).await?;
    let publish_cpu = cpu(&ingest)?.saturating_sub(cpu_loaded);
    eprintln!(
        "cluster of {nodes}: {} spans published in {} splits; trace by id through the search node, cold then warm",
        thousands(published.records),
        published.splits
    );
    // The search node fetches a split from object storage at its first lookup
    // there (cold), and reads it from its cache after (warm).
    let (cold, incomplete) = queries::trace_by_id(&search, workload, spans, queries).await?;
    let (warm, incomplete_warm) = queries::trace_by_id(&search, workload, spans, queries).await?;

    let logs = if nodes == run.max_nodes && run.logs > 0 {
        Some(log_phase(run, &ingest, &search, spans, &dir).await?)
    } else {
        None
    };

    search.stop().await?;
    for node in ingest {
        if let Some(node) = Arc::into_inner(node) {
            node.stop().await?;
        }
    }
    Ok(Row {
        ingest_nodes: nodes,
        spans,
        seconds,
        ingest_cpu: cpu_loaded.saturating_sub(cpu_before),
        publish_cpu,
        published_records: published.records,
        published_splits: published.splits,
        publish_micros: published.micros,
        cold,
        warm,
        incomplete: incomplete + incomplete_warm,
        logs,
    })
}

/// The CPU time of `nodes` together.
fn cpu(nodes: &[Arc<Collector>]) -> anyhow::Result<Duration> {
    nodes.iter().map(|node| node.cpu()).sum()
}

/// `run.logs` log records into the cluster after its spans; once all are in
/// object storage, log search through the search node (the first search
/// fetches every split, the rest read the cache).
async fn log_phase(
    run: &Run<'_>,
    ingest: &[Arc<Collector>],
    search: &Collector,
    spans: u64,
    dir: &Path,
) -> anyhow::Result<LogRow> {
    let records = run.logs;
    eprintln!(
        "cluster of {}: sending {} log records over {} connections",
        ingest.len(),
        thousands(records),
        run.connections
    );
    let before = Published::of(ingest).await?;
    let cpu_before = cpu(ingest)?;
    let started = Instant::now();
    load(ingest, Signal::Logs, records, run.connections, run.workload).await?;
    let seconds = started.elapsed().as_secs_f64();
    let ingest_cpu = cpu(ingest)?.saturating_sub(cpu_before);
    let published = until_published(ingest, spans + records, dir).await?;
    eprintln!(
        "cluster of {}: {} log records published in {} splits; log search through the search node",
        ingest.len(),
        thousands(published.records - before.records),
        published.splits - before.splits
    );
    let (first, ..) = queries::log_search(search, records, 1).await?;
    let (rare, common, filtered, missed) =
        queries::log_search(search, records, run.queries).await?;
    Ok(LogRow {
        records,
        seconds,
        ingest_cpu,
        published_splits: published.splits - before.splits,
        first: first.quantile(0.0).unwrap_or_default(),
        rare,
        common,
        filtered,
        missed,
    })
}

/// What the ingest nodes together count as published.
struct Published {
    records: u64,
    splits: u64,
    micros: u64,
}

impl Published {
    async fn of(nodes: &[Arc<Collector>]) -> anyhow::Result<Published> {
        let mut published = Published {
            records: 0,
            splits: 0,
            micros: 0,
        };
        for node in nodes {
            published.records += node.metric_value("hopline_published_records_total").await?;
            published.splits += node.metric_value("hopline_published_splits_total").await?;
            published.micros += node
                .metric_value("hopline_publish_microseconds_total")
                .await?;
        }
        Ok(published)
    }
}

/// Waits until the ingest nodes have published `records` records in all.
async fn until_published(
    nodes: &[Arc<Collector>],
    records: u64,
    dir: &Path,
) -> anyhow::Result<Published> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let published = Published::of(nodes).await?;
        if published.records >= records {
            return Ok(published);
        }
        if Instant::now() > deadline {
            bail!(
                "the ingest nodes published {} of {} records within 300 s; see their logs under {}",
                published.records,
                records,
                dir.display()
            );
        }
    }
}

/// What the senders send.
#[derive(Debug, Clone, Copy)]
enum Signal {
    Spans,
    Logs,
}

impl Signal {
    fn path(self) -> &'static str {
        match self {
            Signal::Spans => "/v1/traces",
            Signal::Logs => "/v1/logs",
        }
    }

    /// Records `first .. first + count` as an OTLP protobuf request.
    fn encode(self, workload: &Workload, first: u64, count: u64) -> Vec<u8> {
        match self {
            Signal::Spans => workload.spans(first, count).encode_to_vec(),
            Signal::Logs => workload.logs(first, count).encode_to_vec(),
        }
    }
}

/// Sends `records` records of `signal` over `connections` connections, spread
/// over the ingest nodes, and waits for every acknowledgement.
async fn load(
    ingest: &[Arc<Collector>],
    signal: Signal,
    records: u64,
    connections: usize,
    workload: Workload,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..connections.max(1))
        .map(|c| {
            let node = Arc::clone(&ingest[c % ingest.len()]);
            let next = Arc::clone(&next);
            tokio::spawn(async move { send(&node, signal, &next, records, workload).await })
        })
        .collect();
    for sender in senders {
        sender.await.context("a sender failed")??;
    }
    Ok(())
}

/// Sends batches of the workload's records to `node` (OTLP/HTTP, protobuf,
/// gzip) until `records` were taken by all senders; retries what is refused
/// for now (503, 429).
async fn send(
    node: &Collector,
    signal: Signal,
    next: &AtomicU64,
    records: u64,
    workload: Workload,
) -> anyhow::Result<()> {
    let url = format!("{}{}", node.otlp_http, signal.path());
    loop {
        let first = next.fetch_add(BATCH, Ordering::Relaxed);
        if first >= records {
            return Ok(());
        }
        let count = BATCH.min(records - first);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&signal.encode(&workload, first, count))?;
        let body = encoder.finish()?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answer = node
                .http
                .post(&url, "application/x-protobuf", Some("gzip"), body.clone())
                .await?;
            match answer.status {
                200 => break,
                429 | 503 if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                status => bail!("{url} answered {status}: {}", answer.text()),
            }
        }
    }
}

/// The rows as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| ingest nodes | spans | acknowledged per second | spans per CPU-second of the ingest nodes, ingesting | CPU after the load until all was published, per 1,000 spans | publishing (summary, upload, metastore), wall time per 1,000 spans | splits published | trace by id p50 / p99, cold cache | warm cache |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in rows {
        let per_thousand = |d: Duration| {
            format!(
                "{:.1} ms",
                d.as_secs_f64() * 1e3 * 1000.0 / row.published_records.max(1) as f64
            )
        };
        let quantiles = |samples: &Samples| {
            format!(
                "{} / {} (n={})",
                samples.quantile(0.5).map_or("-".into(), millis),
                samples.quantile(0.99).map_or("-".into(), millis),
                samples.len()
            )
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | **{:.0}** | {} | {} | {} | {} | {} |\n",
            row.ingest_nodes,
            thousands(row.spans),
            row.spans as f64 / row.seconds.max(1e-9),
            row.spans as f64 / row.ingest_cpu.as_secs_f64().max(1e-9),
            per_thousand(row.publish_cpu),
            per_thousand(Duration::from_micros(row.publish_micros)),
            row.published_splits,
            quantiles(&row.cold),
            quantiles(&row.warm),
        ));
    }
    let incomplete: u64 = rows.iter().map(|row| row.incomplete).sum();
    out.push_str(&format!(
        "\ntrace lookups that lacked spans: {incomplete} (the cluster must answer every trace whole)\n"
    ));
    for (row, logs) in rows
        .iter()
        .filter_map(|row| Some((row, row.logs.as_ref()?)))
    {
        out.push_str(&format!(
            "\nLog search through the search node, {} ingest node(s), over {} log records in {} published splits \
             (sent at {:.0} per second, **{:.0} per CPU-second** of the ingest nodes):\n\n\
             | search | time |\n| --- | --- |\n\
             | the first, every split fetched from object storage | {} |\n\
             | a rare term (one record) | {} |\n\
             | a common word (a tenth of the records) | {} |\n\
             | service + severity + word | {} |\n\n\
             rare-term searches that missed their record: {}\n",
            row.ingest_nodes,
            thousands(logs.records),
            logs.published_splits,
            logs.records as f64 / logs.seconds.max(1e-9),
            logs.records as f64 / logs.ingest_cpu.as_secs_f64().max(1e-9),
            millis(logs.first),
            logs.rare.summary(),
            logs.common.summary(),
            logs.filtered.summary(),
            logs.missed,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_gets_a_database_of_its_own_in_the_same_server() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b_1"),
            "postgres://postgres@127.0.0.1:5432/b_1"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432?sslmode=disable", "b_2"),
            "postgres://u:p@db:5432/b_2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://db/x/y?a=b", "b_3"),
            "postgresql://db/b_3?a=b"
        );
    }
}
