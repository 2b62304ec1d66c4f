//! The index writer: one thread per index owns the active split's `IndexWriter`.
//!
//! It takes batches from the write-ahead log (in log order), builds documents, and
//! commits every `commit_interval`: that commit is what makes records searchable and
//! what lets the log drop its segments. It also seals splits that have grown old and
//! enforces retention. tantivy is synchronous, so none of this runs on the async
//! runtime.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tantivy::{IndexWriter, TantivyDocument};
use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tracing::{debug, error, info, warn};

use super::origin::{OriginIds, MAX_ORIGINS_PER_SPLIT};
use super::schema::Scratch;
use super::split::{Split, SplitMeta};
use super::{Records, SignalIndex, Store, StoreError};
use crate::metrics::{Metrics, Signal};
use crate::model::Clock;

/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(30);

/// The nice value of the writer thread. Indexing and merging are throughput work; a
/// trace lookup or a log search is what somebody waits for. On two busy cores a
/// query at the same priority waits behind them for tens of milliseconds; with the
/// writer below it, the scheduler runs the query first. tantivy's indexing and merge
/// threads are started by the writer thread and inherit its value.
const WRITER_NICE: i32 = 10;

pub enum WriterMsg {
    /// Durable records, with their log sequence number and the queue capacity they hold.
    Batch {
        lsn: u64,
        records: Records,
        permit: Option<OwnedSemaphorePermit>,
    },
    /// Commit now, and answer when the records sent before are searchable.
    Flush(oneshot::Sender<Result<(), String>>),
    /// Commit and seal the active split now.
    Seal(oneshot::Sender<Result<(), String>>),
}

#[derive(Clone)]
pub struct WriterSettings {
    pub commit_interval: Duration,
    pub split_duration: Duration,
    pub retention: Duration,
}

/// Handle to a running writer thread.
pub struct WriterHandle {
    pub tx: mpsc::Sender<WriterMsg>,
    thread: JoinHandle<()>,
}

impl WriterHandle {
    /// Waits for the thread, which commits what it has once every sender is dropped.
    pub fn join(self) {
        drop(self.tx);
        if self.thread.join().is_err() {
            error!("index writer thread panicked");
        }
    }
}

/// Called after every commit with the highest log sequence number it covers.
pub type OnCommit = Arc<dyn Fn(Signal, u64) + Send + Sync>;

pub fn spawn(
    store: &Store,
    signal: Signal,
    settings: WriterSettings,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    on_commit: OnCommit,
) -> Result<WriterHandle, StoreError> {
    let index = Arc::clone(store.index(signal));
    let task = WriterTask {
        last_lsn: index.committed_lsn(),
        committed_lsn: index.committed_lsn(),
        index,
        store: store.clone(),
        active: None,
        settings,
        clock,
        metrics,
        on_commit,
        first_uncommitted: None,
        last_retention: Instant::now(),
    };
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("hopline-index-{}", signal.as_str()))
        .spawn(move || task.run(rx))?;
    Ok(WriterHandle { tx, thread })
}

struct ActiveSplit {
    split: Arc<Split>,
    writer: IndexWriter<TantivyDocument>,
    origins: OriginIds,
    /// Metadata including uncommitted documents.
    pending: SplitMeta,
}

struct WriterTask {
    index: Arc<SignalIndex>,
    store: Store,
    active: Option<ActiveSplit>,
    settings: WriterSettings,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    on_commit: OnCommit,
    last_lsn: u64,
    committed_lsn: u64,
    /// When the oldest uncommitted batch arrived.
    first_uncommitted: Option<Instant>,
    last_retention: Instant,
}

impl WriterTask {
    fn run(mut self, rx: mpsc::Receiver<WriterMsg>) {
        let signal = self.index.signal;
        lower_thread_priority(signal);
        loop {
            let timeout = match self.first_uncommitted {
                Some(since) => self
                    .settings
                    .commit_interval
                    .saturating_sub(since.elapsed()),
                None => RETENTION_INTERVAL,
            };
            match rx.recv_timeout(timeout) {
                Ok(WriterMsg::Batch {
                    lsn,
                    records,
                    permit,
                }) => {
                    let count = records.len() as u64;
                    if let Err(e) = self.add(lsn, records) {
                        error!(index = signal.as_str(), lsn, error = %e, "cannot index batch; it stays in the write-ahead log");
                    }
                    // Replayed batches hold no queue capacity and were never counted as queued.
                    if let Some(permit) = permit {
                        self.metrics
                            .signal(signal)
                            .queued
                            .fetch_sub(count, Ordering::Relaxed);
                        drop(permit);
                    }
                }
                Ok(WriterMsg::Flush(reply)) => {
                    let _ = reply.send(self.commit().map_err(|e| e.to_string()));
                }
                Ok(WriterMsg::Seal(reply)) => {
                    let _ = reply.send(self.seal().map_err(|e| e.to_string()));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self
                .first_uncommitted
                .is_some_and(|since| since.elapsed() >= self.settings.commit_interval)
            {
                if let Err(e) = self.commit() {
                    error!(index = signal.as_str(), error = %e, "commit failed");
                }
            }
            self.maybe_seal_and_expire();
        }
        if let Err(e) = self.commit() {
            error!(index = signal.as_str(), error = %e, "final commit failed");
        }
        if let Some(active) = self.active.take() {
            if let Err(e) = active.writer.wait_merging_threads() {
                warn!(index = signal.as_str(), error = %e, "merges did not finish cleanly");
            }
        }
        debug!(index = signal.as_str(), "index writer stopped");
    }

    fn add(&mut self, lsn: u64, records: Records) -> Result<(), StoreError> {
        let store = self.store.clone();
        self.last_lsn = self.last_lsn.max(lsn);
        let last_lsn = self.last_lsn;
        let active = self.active_split()?;
        let count = records.len() as u64;
        let pending = &mut active.pending;
        index_records(
            &active.writer,
            &store,
            &mut active.origins,
            &records,
            |time| pending.extend(time),
        )?;
        active.pending.lsn = last_lsn;
        let full = active.origins.len() >= MAX_ORIGINS_PER_SPLIT;
        self.metrics
            .signal(self.index.signal)
            .indexed
            .fetch_add(count, Ordering::Relaxed);
        self.first_uncommitted.get_or_insert_with(Instant::now);
        if full {
            info!(
                index = self.index.signal.as_str(),
                origins = MAX_ORIGINS_PER_SPLIT,
                "split holds the most distinct resources and scopes a split takes; sealing it"
            );
            // The batch is indexed either way; a failed seal is retried by the next
            // batch, which finds the split still full.
            if let Err(e) = self.seal() {
                error!(index = self.index.signal.as_str(), error = %e, "cannot seal split");
            }
        }
        Ok(())
    }

    fn active_split(&mut self) -> Result<&mut ActiveSplit, StoreError> {
        if self.active.is_none() {
            let schema = match self.index.signal {
                Signal::Spans => self.store.span_schema.schema.clone(),
                Signal::Logs => self.store.log_schema.schema.clone(),
            };
            let split = Arc::new(
                self.index
                    .create_split(schema, self.clock.now_unix_nanos())?,
            );
            let writer = split.writer()?;
            let origins = OriginIds::new(Arc::clone(&split.origins));
            let pending = split.meta();
            debug!(index = self.index.signal.as_str(), split = %split.id, "opened split");
            self.index.add_split(Arc::clone(&split));
            self.active = Some(ActiveSplit {
                split,
                writer,
                origins,
                pending,
            });
        }
        self.active.as_mut().ok_or(StoreError::WriterStopped)
    }

    /// Commits the active split, makes it searchable and tells the log.
    fn commit(&mut self) -> Result<(), StoreError> {
        let Some(active) = self.active.as_mut() else {
            self.first_uncommitted = None;
            return Ok(());
        };
        if self.first_uncommitted.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let payload = serde_json::to_string(&active.pending)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The origins the new documents refer to are on disk before they are.
        active.origins.save()?;
        let mut prepared = active.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        // The metadata first: a search may find it wider than what its searcher
        // sees, never narrower (see `SplitMeta::within`).
        if let Ok(mut meta) = active.split.meta.write() {
            *meta = active.pending;
        }
        active.split.reader.reload()?;
        self.metrics
            .signal(self.index.signal)
            .commit_seconds
            .observe(started.elapsed());
        self.first_uncommitted = None;
        self.committed_lsn = active.pending.lsn;
        (self.on_commit)(self.index.signal, self.committed_lsn);
        Ok(())
    }

    /// Commits and seals the active split; the next batch opens a new one.
    fn seal(&mut self) -> Result<(), StoreError> {
        self.commit()?;
        let Some(active) = self.active.take() else {
            return Ok(());
        };
        active.writer.wait_merging_threads()?;
        let meta = active.split.meta();
        if meta.num_docs == 0 {
            self.index.remove_split(&active.split.id);
            std::fs::remove_dir_all(&active.split.dir)?;
            return Ok(());
        }
        active.split.sealed.store(true, Ordering::Release);
        info!(index = self.index.signal.as_str(), split = %active.split.id, docs = meta.num_docs, "sealed split");
        Ok(())
    }

    fn maybe_seal_and_expire(&mut self) {
        let now = self.clock.now_unix_nanos();
        let split_nanos = self.settings.split_duration.as_nanos() as u64;
        let due = self
            .active
            .as_ref()
            .is_some_and(|active| now.saturating_sub(active.pending.created) >= split_nanos);
        if due {
            if let Err(e) = self.seal() {
                error!(index = self.index.signal.as_str(), error = %e, "cannot seal split");
            }
        }
        if self.last_retention.elapsed() >= RETENTION_INTERVAL {
            self.last_retention = Instant::now();
            let cutoff = now.saturating_sub(self.settings.retention.as_nanos() as u64);
            if let Err(e) = self.index.enforce_retention(cutoff) {
                error!(index = self.index.signal.as_str(), error = %e, "retention failed");
            }
        }
    }
}

/// Builds the documents of `records` and hands them to `writer`, numbering their
/// origins in `origins` and telling `on_record` each record's timestamp: the
/// indexing hot path, also what the benchmark's raw-tantivy baseline runs.
/// Lowers the calling thread's priority to [`WRITER_NICE`] (never raises it).
#[cfg(target_os = "linux")]
fn lower_thread_priority(signal: Signal) {
    use rustix::process::{getpriority_process, setpriority_process};
    // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value alone.
    let thread = Some(rustix::thread::gettid());
    let result = getpriority_process(thread).and_then(|nice| {
        if nice < WRITER_NICE {
            setpriority_process(thread, WRITER_NICE)?;
        }
        Ok(nice.max(WRITER_NICE))
    });
    match result {
        Ok(nice) => debug!(index = signal.as_str(), nice, "index writer priority"),
        Err(e) => {
            warn!(index = signal.as_str(), error = %e, "cannot lower the index writer's priority; queries compete with indexing")
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_thread_priority(_signal: Signal) {}

pub fn index_records(
    writer: &IndexWriter<TantivyDocument>,
    store: &Store,
    origins: &mut OriginIds,
    records: &Records,
    mut on_record: impl FnMut(u64),
) -> Result<(), StoreError> {
    let mut scratch = Scratch::default();
    let corrupt = |e: postcard::Error| StoreError::Corrupt(e.to_string());
    match records {
        Records::Spans(spans) => {
            let schema = &store.span_schema;
            for span in spans {
                let origin = origins
                    .id(&span.service_name, &span.resource, &span.scope)
                    .map_err(corrupt)?;
                let doc = schema
                    .document(span, origin, &mut scratch)
                    .map_err(corrupt)?;
                writer.add_document(doc)?;
                on_record(span.start_time_unix_nano);
            }
        }
        Records::Logs(logs) => {
            let schema = &store.log_schema;
            for record in logs {
                let origin = origins
                    .id(&record.service_name, &record.resource, &record.scope)
                    .map_err(corrupt)?;
                let doc = schema
                    .document(record, origin, &mut scratch)
                    .map_err(corrupt)?;
                writer.add_document(doc)?;
                on_record(record.time_unix_nano);
            }
        }
    }
    Ok(())
}
