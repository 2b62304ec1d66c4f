//! The limit Hopline is measured against: the same documents, built by the same code
//! with the same schema and split settings, indexed by tantivy in this process with
//! no network, no write-ahead log and one final commit (merges included).

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use hopline::decode::convert::{convert_logs, convert_traces};
use hopline::model::{Clock, Signal, SystemClock};
use hopline::store::origin::OriginIds;
use hopline::store::split::Split;
use hopline::store::writer::index_records;
use hopline::store::{Records, Store};

use crate::process;
use crate::stats::thousands;
use crate::workload::{Workload, BATCH};

/// What indexing `records` records cost.
#[derive(Debug, Clone, Copy)]
pub struct RawResult {
    pub records: u64,
    pub wall: Duration,
    /// CPU time of converting, building documents and indexing (the request
    /// generator's own CPU time left out).
    pub cpu: Duration,
    /// Bytes of the index after its merges finished.
    pub bytes: u64,
}

impl RawResult {
    pub fn per_cpu_second(&self) -> f64 {
        self.records as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// Indexes `count` spans (or log records) of `workload` into a fresh split under `dir`.
pub fn index(workload: Workload, logs: bool, count: u64, dir: &Path) -> anyhow::Result<RawResult> {
    let store = Store::open(dir, &Default::default()).context("cannot open the raw index")?;
    let clock = SystemClock;
    let schema = store.schema(if logs { Signal::Logs } else { Signal::Spans });
    let split = Split::create(&dir.join("raw"), schema, clock.now_unix_nanos(), 0, None)
        .context("cannot create the raw split")?;
    let mut writer = split.writer()?;
    let mut origins = OriginIds::new(Arc::clone(&split.origins));
    // The same key budget as the collector's splits.
    let mut scratch = hopline::store::schema::Scratch::with_max_keys(10_000);

    // Requests are generated on their own thread, whose CPU time is subtracted.
    let cpu_before = process::cpu_time("self")?;
    let (tx, rx) = mpsc::sync_channel(16);
    let generator = std::thread::spawn(move || {
        let mut first = 0;
        while first < count {
            let batch = BATCH.min(count - first);
            let request = if logs {
                Err(workload.logs(first, batch))
            } else {
                Ok(workload.spans(first, batch))
            };
            if tx.send(request).is_err() {
                break;
            }
            first += BATCH;
        }
        process::cpu_time("thread-self")
    });

    let what = if logs { "log records" } else { "spans" };
    let started = Instant::now();
    let mut indexed = 0u64;
    let mut last_report = Instant::now();
    for request in rx {
        let records = match request {
            Ok(spans) => Records::Spans(
                convert_traces(
                    spans,
                    clock.now_unix_nanos(),
                    &hopline::config::RecordLimits::default(),
                )
                .records,
            ),
            Err(logs) => Records::Logs(
                convert_logs(
                    logs,
                    clock.now_unix_nanos(),
                    &hopline::config::RecordLimits::default(),
                )
                .records,
            ),
        };
        index_records(
            &writer,
            &store,
            &mut origins,
            &mut scratch,
            &records,
            |_| {},
        )?;
        indexed += records.len() as u64;

        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  raw tantivy: {} of {} {what} ({:.0}/s)",
                thousands(indexed),
                thousands(count),
                indexed as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    origins.save()?;
    writer.commit()?;
    writer.wait_merging_threads()?;
    let wall = started.elapsed();
    let generator_cpu = generator
        .join()
        .map_err(|_| anyhow::anyhow!("the request generator panicked"))??;
    let cpu = process::cpu_time("self")?.saturating_sub(cpu_before + generator_cpu);
    Ok(RawResult {
        records: indexed,
        wall,
        cpu,
        bytes: hopline::store::dir_size(&split.dir),
    })
}
