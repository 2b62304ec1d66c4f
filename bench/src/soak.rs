//! `hopline-bench --soak DURATION`: both signals at a fixed rate for a long time,
//! with queries, and a line a minute of what a leak or a slow drift would show:
//! resident memory, open file descriptors, visibility delay, query latency. At the
//! end, every acknowledged record must have been indexed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::collector::Collector;
use crate::load::{Phase, PhaseResult, Sender};
use crate::process::Memory;
use crate::queries;
use crate::stats::{mib, millis, thousands, Samples};
use crate::workload::{Signal, Workload};

/// One minute of the soak.
#[derive(Debug, Clone)]
pub struct Minute {
    pub at: Duration,
    pub memory: Memory,
    pub fds: u64,
    pub spans_acked: u64,
    pub logs_acked: u64,
    pub visibility: Duration,
    pub trace_search: Duration,
    pub log_search: Duration,
}

/// What the soak measured.
pub struct SoakReport {
    pub minutes: Vec<Minute>,
    pub spans: PhaseResult,
    pub logs: PhaseResult,
    /// Records the collector indexed, per signal, against those acknowledged (the
    /// load's and the probes').
    pub indexed: [(u64, u64); 2],
}

/// Open file descriptors of a process.
fn open_fds(pid: &str) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64)
}

/// Sends one marked log line and waits until a search finds it.
async fn visibility(collector: &Collector, n: u64) -> anyhow::Result<Duration> {
    let marker = format!("soakprobe{n}x{}", std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let request = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": now.to_string(),
        "severityNumber": 9,
        "body": {"stringValue": format!("soak {marker}")}
    }]}]}]});
    loop {
        let response = collector
            .http
            .post(
                &format!("{}/v1/logs", collector.otlp_http),
                "application/json",
                None,
                serde_json::to_vec(&request)?,
            )
            .await?;
        if response.is_success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let acknowledged = Instant::now();
    while acknowledged.elapsed() < Duration::from_secs(60) {
        let body = collector
            .http
            .get(&format!(
                "{}/api/logs?query={marker}&limit=1",
                collector.api
            ))
            .await?
            .json()?;
        if body["total"].as_u64().is_some_and(|total| total > 0) {
            return Ok(acknowledged.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("probe {marker} was not searchable a minute after it was acknowledged")
}

/// A common-word log search, timed.
async fn log_search(collector: &Collector) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = collector
        .http
        .get(&format!(
            "{}/api/logs?query=timeout&limit=100",
            collector.api
        ))
        .await?;
    anyhow::ensure!(response.is_success(), "log search failed");
    Ok(started.elapsed())
}

fn median(samples: &Samples) -> Duration {
    samples.quantile(0.5).unwrap_or_default()
}

pub async fn soak(
    collector: Arc<Collector>,
    workload: Workload,
    connections: usize,
    rate: u64,
    duration: Duration,
) -> anyhow::Result<SoakReport> {
    let spans = Phase::start(
        Arc::clone(&collector),
        Signal::Spans,
        workload,
        connections,
        rate,
        None,
        Sender::Otlp,
    )
    .await?;
    let logs = Phase::start(
        Arc::clone(&collector),
        Signal::Logs,
        workload,
        connections,
        rate,
        None,
        Sender::Otlp,
    )
    .await?;
    let started = Instant::now();
    let mut minutes = Vec::new();
    let mut probes = 0u64;
    eprintln!(
        "soak: {} records/s of each signal for {:.0} minutes; a line a minute",
        thousands(rate),
        duration.as_secs_f64() / 60.0
    );
    eprintln!("  minute      RSS  anonymous  fds  spans acked   logs acked  visibility  trace search  log search");
    while started.elapsed() < duration {
        let next = Duration::from_secs(60 * (minutes.len() as u64 + 1));
        tokio::time::sleep(next.saturating_sub(started.elapsed())).await;
        let mut delays = Samples::default();
        for _ in 0..3 {
            probes += 1;
            delays.push(visibility(&collector, probes).await?);
        }
        let trace_search = queries::trace_search(&collector, 5).await?;
        let mut log_searches = Samples::default();
        for _ in 0..5 {
            log_searches.push(log_search(&collector).await?);
        }
        spans.check()?;
        logs.check()?;
        let minute = Minute {
            at: started.elapsed(),
            memory: collector.memory()?,
            fds: open_fds(&collector.pid),
            spans_acked: spans.acked(),
            logs_acked: logs.acked(),
            visibility: delays.quantile(1.0).unwrap_or_default(),
            trace_search: median(&trace_search),
            log_search: median(&log_searches),
        };
        eprintln!(
            "  {:>6.0} {:>8} {:>10} {:>4} {:>12} {:>12} {:>11} {:>13} {:>11}",
            minute.at.as_secs_f64() / 60.0,
            mib(minute.memory.rss),
            mib(minute.memory.anon),
            minute.fds,
            thousands(minute.spans_acked),
            thousands(minute.logs_acked),
            millis(minute.visibility),
            millis(minute.trace_search),
            millis(minute.log_search),
        );
        minutes.push(minute);
    }
    let spans = spans.finish().await.context("spans")?;
    let logs = logs.finish().await.context("logs")?;
    let indexed = [
        (
            collector
                .metric("hopline_records_indexed_total", "spans")
                .await?,
            spans.acked + spans.probes,
        ),
        (
            collector
                .metric("hopline_records_indexed_total", "logs")
                .await?,
            logs.acked + logs.probes + probes,
        ),
    ];
    Ok(SoakReport {
        minutes,
        spans,
        logs,
        indexed,
    })
}

impl SoakReport {
    /// The curve as a Markdown table, and what was lost (nothing, or it says).
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| minute | RSS | anonymous | open fds | spans acknowledged | logs acknowledged | visibility (max of 3) | trace search p50 | log search p50 |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for m in &self.minutes {
            out.push_str(&format!(
                "| {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                m.at.as_secs_f64() / 60.0,
                mib(m.memory.rss),
                mib(m.memory.anon),
                m.fds,
                thousands(m.spans_acked),
                thousands(m.logs_acked),
                millis(m.visibility),
                millis(m.trace_search),
                millis(m.log_search)
            ));
        }
        for ((indexed, acked), what) in self.indexed.iter().zip(["spans", "log records"]) {
            out.push_str(&format!(
                "\n{what}: {} acknowledged, {} indexed{}",
                thousands(*acked),
                thousands(*indexed),
                if indexed >= acked {
                    String::new()
                } else {
                    format!(" ({} MISSING)", thousands(acked - indexed))
                }
            ));
        }
        // The two loads ran side by side: the collector's CPU time is theirs together.
        let cpu = self.spans.cpu.max(self.logs.cpu).as_secs_f64().max(1e-9);
        out.push_str(&format!(
            "\nrecords (spans and logs) per CPU-second of the collector: {:.0}\n",
            (self.spans.acked + self.logs.acked) as f64 / cpu
        ));
        out
    }
}
