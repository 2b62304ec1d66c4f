//! `--week`: a week of data on one box. Seeds 168 hourly splits of each signal
//! through the collector's own split writer ([`build_split`]: the documents,
//! commits and merge of the janitor), with the standard workload's timestamps
//! moved an hour back per split, then starts the collector on them and measures
//! what a user of a full week notices: start-up to the first answer, trace by id
//! anywhere in the week, a rare term searched over the whole week.
//!
//! Seeding writes at raw-tantivy speed, far faster than sending the week over
//! OTLP; the splits are the ones the collector would have sealed. A directory
//! given with `--dir` keeps them, and a later `--week` on it measures without
//! seeding again.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use hopline::config::RecordLimits;
use hopline::decode::convert::{convert_logs, convert_traces};
use hopline::health::Health;
use hopline::model::Signal;
use hopline::store::writer::build_split;
use hopline::store::{Records, Store};
use serde::{Deserialize, Serialize};

use crate::collector::Collector;
use crate::queries::{self, timed_get};
use crate::stats::{mib, millis, thousands, Samples};
use crate::workload::{self, mix, Workload, BATCH, SERVICES};

/// Hourly splits in a week.
pub const HOURS: u64 = 168;
const HOUR: u64 = 3_600_000_000_000;

/// What was seeded, kept beside the data so that a later run measures the same
/// records.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seed {
    pub nonce: u64,
    /// The start of the first hour, ns since the epoch.
    pub week_start: u64,
    pub spans: u64,
    pub logs: u64,
}

impl Seed {
    /// The workload of hour `hour`: its timestamps start at that hour.
    fn workload(&self, hour: u64) -> Workload {
        Workload {
            nonce: self.nonce,
            now: self.week_start + hour * HOUR,
        }
    }
}

/// Writes `count` records of `signal` as [`HOURS`] sealed splits under the
/// collector's data directory, an hour of records each, printing progress.
fn seed_signal(seed: Seed, signal: Signal, count: u64, store: &Store) -> anyhow::Result<()> {
    let root = store.of(signal).root().to_path_buf();
    let limits = RecordLimits::default();
    let started = Instant::now();
    let what = match signal {
        Signal::Spans => "spans",
        Signal::Logs => "log records",
    };
    for hour in 0..HOURS {
        let (first, end) = (count * hour / HOURS, count * (hour + 1) / HOURS);
        let workload = seed.workload(hour);
        // A split is named by when it was made: the end of its hour.
        let created = seed.week_start + (hour + 1) * HOUR;
        let received = created;
        build_split(store, signal, &root, created, 0, None, |add| {
            let mut n = first;
            while n < end {
                let batch = BATCH.min(end - n);
                let records = match signal {
                    Signal::Spans => Records::Spans(
                        convert_traces(workload.spans(n, batch), received, &limits).records,
                    ),
                    Signal::Logs => Records::Logs(
                        convert_logs(workload.logs(n, batch), received, &limits).records,
                    ),
                };
                add(&records)?;
                n += batch;
            }
            Ok(())
        })
        .with_context(|| format!("cannot seed hour {hour} of the {what}"))?;
        if (hour + 1) % 12 == 0 || hour + 1 == HOURS {
            eprintln!(
                "  week: {what}, {} of {HOURS} hours seeded ({} records, {:.0} s)",
                hour + 1,
                thousands(end),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Seeds `dir/data` with a week of `spans` spans and `logs` log records, both
/// signals at once, unless it holds the same seed already; returns the seed and
/// how long seeding took (`None`: reused).
pub fn seed(dir: &Path, spans: u64, logs: u64) -> anyhow::Result<(Seed, Option<Duration>)> {
    let data_dir = dir.join("data");
    let seed_file = dir.join("week-seed.json");
    if let Ok(text) = std::fs::read_to_string(&seed_file) {
        let seed: Seed = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a week seed", seed_file.display()))?;
        anyhow::ensure!(
            seed.spans == spans && seed.logs == logs,
            "{} holds a week of {} spans and {} log records: pass those counts, or another --dir",
            dir.display(),
            thousands(seed.spans),
            thousands(seed.logs)
        );
        eprintln!(
            "week: measuring the week already seeded in {}",
            dir.display()
        );
        return Ok((seed, None));
    }
    anyhow::ensure!(
        !data_dir.exists(),
        "{} exists but holds no week seed: use an empty --dir",
        data_dir.display()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let seed = Seed {
        nonce: now,
        // The hour before this one is the week's last.
        week_start: now - HOURS * HOUR,
        spans,
        logs,
    };
    eprintln!(
        "week: seeding {} spans and {} log records as {HOURS} hourly splits each ...",
        thousands(spans),
        thousands(logs)
    );
    let started = Instant::now();
    let store = Store::open(&data_dir.join("index"), &Health::default())
        .context("cannot open the data directory to seed")?;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let spans = scope.spawn(|| seed_signal(seed, Signal::Spans, seed.spans, &store));
        seed_signal(seed, Signal::Logs, seed.logs, &store)?;
        spans
            .join()
            .map_err(|_| anyhow::anyhow!("seeding the spans panicked"))?
    })?;
    std::fs::write(&seed_file, serde_json::to_string(&seed)?)?;
    Ok((seed, Some(started.elapsed())))
}

/// One start of the collector on the week.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// Until `/health` answered.
    pub healthy: Duration,
    /// Until a trace of the week's first hour came back whole.
    pub first_answer: Duration,
}

/// Everything `--week` measured.
#[derive(Debug)]
pub struct WeekReport {
    pub seed: Seed,
    pub seeding: Option<Duration>,
    pub starts: Vec<Start>,
    pub trace_by_id: Samples,
    pub incomplete: u64,
    pub log_rare: Samples,
    pub missed: u64,
    pub trace_search: Samples,
    pub span_splits: usize,
    pub log_splits: usize,
    pub span_bytes: u64,
    pub log_bytes: u64,
    /// After the queries: resident, and of it anonymous.
    pub rss: u64,
    pub anon: u64,
}

/// Starts the collector on the week and waits for a trace of the first hour.
async fn start(binary: &Path, dir: &Path, seed: Seed) -> anyhow::Result<(Collector, Start)> {
    let started = Instant::now();
    // Retention longer than the week: the oldest split is seven days old.
    let collector = Collector::start(binary, dir, None, &["--retention", "30d"]).await?;
    let healthy = started.elapsed();
    let id = queries::hex(&workload::trace_id(seed.nonce, 0));
    let url = format!("{}/api/traces/{id}", collector.api);
    loop {
        let (_, status, json) = timed_get(&collector, &url).await?;
        let spans = json["data"][0]["spans"].as_array().map_or(0, Vec::len) as u64;
        if status == 200 && spans == workload::SPANS_PER_TRACE {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the first trace of the week is not whole 300 s after start ({status}, {spans} spans)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_answer = started.elapsed();
    Ok((
        collector,
        Start {
            healthy,
            first_answer,
        },
    ))
}

/// Seeds (or reuses) the week in `dir`, then measures it: two starts of the
/// collector, `queries` lookups of each kind.
pub async fn week(
    binary: &Path,
    dir: &Path,
    spans: u64,
    logs: u64,
    queries: usize,
) -> anyhow::Result<WeekReport> {
    let (seed, seeding) = tokio::task::block_in_place(|| seed(dir, spans, logs))?;
    let mut starts = Vec::new();
    let (first, start_one) = start(binary, dir, seed).await?;
    starts.push(start_one);
    first.stop().await?;
    // The second start is the one a restart sees: the splits' files are in the
    // page cache either way (seeding or the first start read them).
    let (collector, start_two) = start(binary, dir, seed).await?;
    starts.push(start_two);
    eprintln!(
        "week: collector up in {} / {}, first answer in {} / {}",
        millis(starts[0].healthy),
        millis(start_two.healthy),
        millis(starts[0].first_answer),
        millis(start_two.first_answer)
    );

    eprintln!("week: {queries} lookups of each kind ...");
    let whole = Workload {
        nonce: seed.nonce,
        now: seed.week_start,
    };
    let (trace_by_id, incomplete) =
        queries::trace_by_id(&collector, whole, seed.spans, queries).await?;
    let (mut log_rare, mut missed) = (Samples::default(), 0);
    let (mut trace_search, lookback) = (Samples::default(), "lookback=8d");
    for i in 0..queries as u64 {
        let n = mix(i ^ seed.nonce) % seed.logs.max(1);
        let url = format!(
            "{}/api/logs?query={}&limit=100&{lookback}",
            collector.api,
            Workload::log_request_id(n)
        );
        let (elapsed, status, json) = timed_get(&collector, &url).await?;
        if status != 200 || json["total"].as_u64() != Some(1) {
            missed += 1;
        }
        log_rare.push(elapsed);

        let url = format!(
            "{}/api/traces?service={}&tags=%7B%22http.response.status_code%22%3A%22500%22%7D&limit=20&{lookback}",
            collector.api,
            workload::service_name(i % SERVICES)
        );
        let (elapsed, status, json) = timed_get(&collector, &url).await?;
        anyhow::ensure!(
            status == 200 && json["data"].as_array().is_some_and(|d| !d.is_empty()),
            "trace search over the week failed or found nothing ({status})"
        );
        trace_search.push(elapsed);
    }
    let memory = collector.memory()?;
    let (span_bytes, log_bytes) = collector.index_bytes();
    let count = |signal: &str| {
        std::fs::read_dir(dir.join("data").join("index").join(signal))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| entry.path().join("meta.json").is_file())
                    .count()
            })
            .unwrap_or(0)
    };
    let report = WeekReport {
        seed,
        seeding,
        starts,
        trace_by_id,
        incomplete,
        log_rare,
        missed,
        trace_search,
        span_splits: count("spans"),
        log_splits: count("logs"),
        span_bytes,
        log_bytes,
        rss: memory.rss,
        anon: memory.anon,
    };
    collector.stop().await?;
    Ok(report)
}

impl WeekReport {
    pub fn markdown(&self) -> String {
        let seed = &self.seed;
        let starts = |f: fn(&Start) -> Duration| {
            self.starts
                .iter()
                .map(|start| millis(f(start)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let rows = [
            (
                "a week of data".to_string(),
                format!(
                    "{} spans in {} splits, {} log records in {} splits; {}",
                    thousands(seed.spans),
                    self.span_splits,
                    thousands(seed.logs),
                    self.log_splits,
                    match self.seeding {
                        Some(took) => format!("seeded in {:.0} s", took.as_secs_f64()),
                        None => "seeded by an earlier run".into(),
                    }
                ),
                String::new(),
            ),
            (
                "bytes on disk per span / per log record".into(),
                format!(
                    "{:.0} / {:.0} ({} / {})",
                    self.span_bytes as f64 / seed.spans.max(1) as f64,
                    self.log_bytes as f64 / seed.logs.max(1) as f64,
                    mib(self.span_bytes),
                    mib(self.log_bytes)
                ),
                String::new(),
            ),
            (
                "start-up: `/health` answers, first start / restart".into(),
                starts(|start| start.healthy),
                String::new(),
            ),
            (
                "start-up to first answer (a trace of the first hour, whole), first start / restart"
                    .into(),
                format!("**{}**", starts(|start| start.first_answer)),
                "<= 5 s".into(),
            ),
            (
                "`GET /api/traces/{id}`, traces anywhere in the week".into(),
                format!(
                    "{} ({} incomplete)",
                    self.trace_by_id.summary(),
                    self.incomplete
                ),
                "p99 <= 20 ms".into(),
            ),
            (
                "log search, rare term, over the week (`lookback=8d`), top 100 + total".into(),
                format!("{} ({} missed)", self.log_rare.summary(), self.missed),
                "p99 <= 50 ms".into(),
            ),
            (
                "trace search, `service` + `http.response.status_code=500`, over the week".into(),
                self.trace_search.summary(),
                String::new(),
            ),
            (
                "memory after the lookups: RSS / anonymous".into(),
                format!("{} / {}", mib(self.rss), mib(self.anon)),
                String::new(),
            ),
        ];
        let mut out = String::from("| figure | measured | target |\n| --- | --- | --- |\n");
        for (figure, measured, target) in rows {
            out.push_str(&format!("| {figure} | {measured} | {target} |\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_week_is_one_split_an_hour_and_is_seeded_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (seeded, took) = seed(dir.path(), 3_360, 1_680).expect("seeded");
        assert!(took.is_some());
        let store =
            Store::open(&dir.path().join("data").join("index"), &Health::default()).expect("store");
        for (signal, per_hour) in [(Signal::Spans, 20), (Signal::Logs, 10)] {
            let mut hours: Vec<(u64, u64)> = store
                .of(signal)
                .splits()
                .iter()
                .map(|split| {
                    let meta = split.meta();
                    assert_eq!(meta.num_docs, per_hour, "{signal:?}");
                    let hour = (meta.min_time - seeded.week_start) / HOUR;
                    assert_eq!(
                        (meta.max_time - seeded.week_start) / HOUR,
                        hour,
                        "{signal:?}: a split holds one hour"
                    );
                    (hour, meta.num_docs)
                })
                .collect();
            hours.sort_unstable();
            let expected: Vec<(u64, u64)> = (0..HOURS).map(|hour| (hour, per_hour)).collect();
            assert_eq!(hours, expected, "{signal:?}: every hour once");
        }
        drop(store);

        let (again, took) = seed(dir.path(), 3_360, 1_680).expect("reused");
        assert_eq!(
            (again, took),
            (seeded, None),
            "the same week is measured again"
        );
        let other = seed(dir.path(), 100, 100).expect_err("other counts");
        assert!(
            other.to_string().contains("holds a week of 3,360 spans"),
            "{other}"
        );
    }
}
