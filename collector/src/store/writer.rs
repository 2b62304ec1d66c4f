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
use crate::health::Throttle;
use crate::metrics::Metrics;
use crate::model::Clock;
use crate::model::Signal;

/// After a failed commit (a full disk), the next try waits this long, doubling up
/// to [`MAX_RETRY_DELAY`]; a failure is logged at most once per
/// [`FAILURE_LOG_INTERVAL`].
const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The nice value of the writer thread. Indexing and merging are throughput work; a
/// trace lookup or a log search is what somebody waits for. On two busy cores a
/// query at the same priority waits behind them for tens of milliseconds; with the
/// writer below it, the scheduler runs the query first. tantivy's indexing and merge
/// threads are started by the writer thread and inherit its value.
const WRITER_NICE: i32 = 10;

/// The ingest queue's capacity that a batch holds (in records and in bytes) until
/// it is indexed; dropping it frees the capacity.
#[derive(Debug)]
pub struct QueuePermit {
    pub records: OwnedSemaphorePermit,
    pub bytes: OwnedSemaphorePermit,
}

pub enum WriterMsg {
    /// Durable records, with their log sequence number and the queue capacity they hold.
    Batch {
        lsn: u64,
        records: Records,
        permit: Option<QueuePermit>,
    },
    /// Commit now, and answer when the records sent before are searchable.
    Flush(oneshot::Sender<Result<(), StoreError>>),
    /// Commit and seal the active split now.
    Seal(oneshot::Sender<Result<(), StoreError>>),
}

#[derive(Clone)]
pub struct WriterSettings {
    pub commit_interval: Duration,
    pub split_duration: Duration,
    /// Records after which a split is sealed, whatever its duration.
    pub split_records: u64,
    pub retention: Duration,
    /// How often retention runs (30 s; tests shorten it).
    pub retention_interval: Duration,
    /// Distinct attribute keys a split indexes.
    pub max_indexed_keys: usize,
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
    let index = Arc::clone(store.of(signal));
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
        uncommitted: Vec::new(),
        broken: false,
        retry_at: None,
        retry_delay: MIN_RETRY_DELAY,
        failing: Throttle::new(FAILURE_LOG_INTERVAL),
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
    /// Document buffers and the attribute keys the split indexes.
    scratch: Scratch,
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
    /// The batches indexed since the last commit: after a failed commit they are
    /// indexed again into a rolled-back writer (they are still in the log too).
    uncommitted: Vec<(u64, Records, Option<QueuePermit>)>,
    /// Indexing failed since the last commit: the writer is rolled back and the
    /// uncommitted batches indexed again before the next commit.
    broken: bool,
    /// While commits fail: when to try again, and the delay after that.
    retry_at: Option<Instant>,
    retry_delay: Duration,
    failing: Throttle,
}

impl WriterTask {
    fn run(mut self, rx: mpsc::Receiver<WriterMsg>) {
        let signal = self.index.signal;
        lower_thread_priority(signal);
        loop {
            let now = Instant::now();
            let timeout = match (self.retry_at, self.first_uncommitted) {
                (Some(retry_at), _) => retry_at.saturating_duration_since(now),
                (None, Some(since)) => self
                    .settings
                    .commit_interval
                    .saturating_sub(since.elapsed()),
                // Idle: wake up to seal on time (publishing in a cluster waits
                // for it) and to apply retention.
                (None, None) => self
                    .settings
                    .retention_interval
                    .min(self.settings.split_duration / 4),
            };
            match rx.recv_timeout(timeout) {
                Ok(WriterMsg::Batch {
                    lsn,
                    records,
                    permit,
                }) => {
                    // Replayed batches hold no queue capacity and were never counted as queued.
                    if permit.is_some() {
                        self.metrics
                            .signal(signal)
                            .queued
                            .fetch_sub(records.len() as u64, Ordering::Relaxed);
                    }
                    self.add(lsn, records, permit);
                }
                Ok(WriterMsg::Flush(reply)) => {
                    let failed = self.commit().err();
                    self.after_commit(failed.as_ref());
                    let _ = reply.send(failed.map_or(Ok(()), Err));
                }
                Ok(WriterMsg::Seal(reply)) => {
                    let failed = self.seal().err();
                    self.after_commit(failed.as_ref());
                    let _ = reply.send(failed.map_or(Ok(()), Err));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let may_commit = self.retry_at.is_none_or(|at| Instant::now() >= at);
            if may_commit
                && self
                    .first_uncommitted
                    .is_some_and(|since| since.elapsed() >= self.settings.commit_interval)
            {
                let failed = self.commit().err();
                self.after_commit(failed.as_ref());
            }
            if self.retry_at.is_none() {
                self.maybe_seal_and_expire();
            }
        }
        if let Err(e) = self.commit() {
            error!(index = signal.as_str(), error = %e, "final commit failed; the write-ahead log keeps what was not committed");
        }
        if let Some(active) = self.active.take() {
            if let Err(e) = active.writer.wait_merging_threads() {
                warn!(index = signal.as_str(), error = %e, "merges did not finish cleanly");
            }
        }
        debug!(index = signal.as_str(), "index writer stopped");
    }

    /// Paces commits after a failure (a full disk fails every commit until space
    /// returns): the next try waits, the log hears of it once per interval, and
    /// `/health` says so until a commit succeeds.
    fn after_commit(&mut self, failed: Option<&StoreError>) {
        let signal = self.index.signal.as_str();
        let source = format!("index {signal}");
        match failed {
            None => {
                if self.failing.admit_recovery() {
                    info!(index = signal, "index commits succeed again");
                }
                self.metrics.health.set(&source, None);
                self.retry_at = None;
                self.retry_delay = MIN_RETRY_DELAY;
            }
            Some(e) => {
                if let Some(suppressed) = self.failing.admit() {
                    error!(index = signal, error = %e, failed_since_last_report = suppressed, retry_in = ?self.retry_delay, "index commit failed; what it held stays in the write-ahead log and is indexed again");
                }
                self.metrics.health.set(
                    &source,
                    Some(format!(
                        "{signal} index commits fail ({e}); new records are not searchable until one succeeds"
                    )),
                );
                self.retry_at = Some(Instant::now() + self.retry_delay);
                self.retry_delay = (self.retry_delay * 2).min(MAX_RETRY_DELAY);
                self.broken = true;
            }
        }
    }

    /// Indexes a batch; a failure leaves the writer to be rebuilt before the next
    /// commit, the batch with it. While indexing or commits fail, the batch keeps
    /// its queue capacity until it is committed, so that a failing index stops
    /// ingest (503) instead of piling records up in memory.
    fn add(&mut self, lsn: u64, records: Records, permit: Option<QueuePermit>) {
        self.first_uncommitted.get_or_insert_with(Instant::now);
        self.last_lsn = self.last_lsn.max(lsn);
        if !self.broken {
            match self.index_batch(&records) {
                Ok(true) => {
                    info!(
                        index = self.index.signal.as_str(),
                        origins = MAX_ORIGINS_PER_SPLIT,
                        "split holds the most distinct resources and scopes a split takes; sealing it"
                    );
                    // A failed seal is retried with the next batch, which finds the
                    // split still full.
                    let failed = self.seal().err();
                    self.after_commit(failed.as_ref());
                }
                Ok(false) => {}
                Err(e) => {
                    if let Some(suppressed) = self.failing.admit() {
                        error!(index = self.index.signal.as_str(), lsn, error = %e, failed_since_last_report = suppressed, "cannot index batch; it stays in the write-ahead log and is indexed again");
                    }
                    self.broken = true;
                }
            }
        }
        self.metrics
            .signal(self.index.signal)
            .indexed
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let permit = permit.filter(|_| self.broken || self.retry_at.is_some());
        if self.first_uncommitted.is_some() {
            self.uncommitted.push((lsn, records, permit));
        }
    }

    /// Indexes a batch into the active split; true when the split is full.
    fn index_batch(&mut self, records: &Records) -> Result<bool, StoreError> {
        let store = self.store.clone();
        let last_lsn = self.last_lsn;
        let active = self.active_split()?;
        let pending = &mut active.pending;
        let result = index_records(
            &active.writer,
            &store,
            &mut active.origins,
            &mut active.scratch,
            records,
            |time| pending.extend(time),
        );
        let refused = active.scratch.keys.take_refused();
        if refused > 0 {
            self.metrics
                .signal(self.index.signal)
                .values_not_indexed
                .fetch_add(refused, Ordering::Relaxed);
        }
        result?;
        let active = self.active_split()?;
        active.pending.lsn = last_lsn;
        Ok(active.origins.len() >= MAX_ORIGINS_PER_SPLIT)
    }

    /// After a failure: throws away what the writer holds uncommitted (a rollback,
    /// or a new writer on the same split) and indexes the uncommitted batches again.
    fn rebuild(&mut self) -> Result<(), StoreError> {
        if let Some(active) = self.active.as_mut() {
            if let Err(e) = active.writer.rollback() {
                warn!(index = self.index.signal.as_str(), error = %e, "cannot roll the index writer back; starting a new one");
                let split = Arc::clone(&active.split);
                // The old writer holds the split's lock until it is dropped.
                if let Some(old) = self.active.take() {
                    drop(old.writer);
                    let writer = split.writer()?;
                    self.active = Some(ActiveSplit {
                        pending: split.meta(),
                        origins: old.origins,
                        scratch: old.scratch,
                        split,
                        writer,
                    });
                }
            }
            if let Some(active) = self.active.as_mut() {
                active.pending = active.split.meta();
            }
        }
        self.broken = false;
        let batches = std::mem::take(&mut self.uncommitted);
        for (_, records, _) in &batches {
            if let Err(e) = self.index_batch(records) {
                self.broken = true;
                self.uncommitted = batches;
                return Err(e);
            }
        }
        self.uncommitted = batches;
        Ok(())
    }

    fn active_split(&mut self) -> Result<&mut ActiveSplit, StoreError> {
        if self.active.is_none() {
            let schema = self.store.schema(self.index.signal);
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
                scratch: Scratch::with_max_keys(self.settings.max_indexed_keys),
                pending,
            });
        }
        self.active.as_mut().ok_or(StoreError::WriterStopped)
    }

    /// Commits the active split, makes it searchable and tells the log.
    fn commit(&mut self) -> Result<(), StoreError> {
        if self.broken {
            self.rebuild()?;
        }
        let Some(active) = self.active.as_mut() else {
            self.first_uncommitted = None;
            self.uncommitted.clear();
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
        self.uncommitted.clear();
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
        if let Err(e) = active.split.seal_trace_filter() {
            // Without its filter the split is searched by every trace lookup.
            warn!(index = self.index.signal.as_str(), split = %active.split.id, error = %e, "cannot build the split's trace filter");
        }
        info!(index = self.index.signal.as_str(), split = %active.split.id, docs = meta.num_docs, "sealed split");
        Ok(())
    }

    fn maybe_seal_and_expire(&mut self) {
        let now = self.clock.now_unix_nanos();
        let split_nanos = self.settings.split_duration.as_nanos() as u64;
        let due = self.active.as_ref().is_some_and(|active| {
            now.saturating_sub(active.pending.created) >= split_nanos
                || active.pending.num_docs >= self.settings.split_records
        });
        if due {
            let failed = self.seal().err();
            self.after_commit(failed.as_ref());
        }
        if self.last_retention.elapsed() >= self.settings.retention_interval {
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
    scratch: &mut Scratch,
    records: &Records,
    mut on_record: impl FnMut(u64),
) -> Result<(), StoreError> {
    let corrupt = |e: postcard::Error| StoreError::Corrupt(e.to_string());
    match records {
        Records::Spans(spans) => {
            let schema = &store.span_schema;
            for span in spans {
                let origin = origins
                    .id(&span.service_name, &span.resource, &span.scope)
                    .map_err(corrupt)?;
                let doc = schema.document(span, origin, scratch).map_err(corrupt)?;
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
                let doc = schema.document(record, origin, scratch).map_err(corrupt)?;
                writer.add_document(doc)?;
                on_record(record.time_unix_nano);
            }
        }
    }
    Ok(())
}

/// Builds one split under `root` holding every record of `sources` (all of
/// `signal`'s), committed and sealed, its segments merged into one: what the
/// janitor publishes in place of many small splits. Records keep their
/// resources and scopes (the new split numbers them anew).
pub fn merge_splits(
    store: &Store,
    signal: Signal,
    root: &std::path::Path,
    created: u64,
    node: &str,
    sources: &[Arc<Split>],
    cancel: &crate::store::search::Cancel,
) -> Result<Split, StoreError> {
    build_split(store, signal, root, created, 0, Some(node), |add| {
        sources
            .iter()
            .try_for_each(|source| store.scan(signal, source, cancel, |records| add(&records)))
    })
}

/// Builds one sealed split under `root` (named by `created`, `seq` and `node`, as
/// [`Split::create`] says) from the batches `fill` hands to the function it is
/// given: indexed, committed with their time range, merged into one segment. The
/// janitor's merges write through it, and so does the benchmark that seeds a week
/// of hourly splits.
pub fn build_split(
    store: &Store,
    signal: Signal,
    root: &std::path::Path,
    created: u64,
    seq: u64,
    node: Option<&str>,
    fill: impl FnOnce(&mut dyn FnMut(&Records) -> Result<(), StoreError>) -> Result<(), StoreError>,
) -> Result<Split, StoreError> {
    std::fs::create_dir_all(root)?;
    let split = Split::create(root, store.schema(signal), created, seq, node)?;
    let mut writer = split.writer()?;
    let mut origins = OriginIds::new(Arc::clone(&split.origins));
    let mut scratch = Scratch::with_max_keys(usize::MAX);
    let mut meta = split.meta();
    fill(&mut |records| {
        index_records(
            &writer,
            store,
            &mut origins,
            &mut scratch,
            records,
            |time| meta.extend(time),
        )
    })?;
    origins.save()?;
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(
        &serde_json::to_string(&meta).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    );
    prepared.commit()?;
    // One segment: a merged split is searched often and never written again.
    let segments = split.index.searchable_segment_ids()?;
    if segments.len() > 1 {
        writer.merge(&segments).wait()?;
    }
    writer.wait_merging_threads()?;
    if let Ok(mut current) = split.meta.write() {
        *current = meta;
    }
    split.reader.reload()?;
    split.sealed.store(true, Ordering::Release);
    if let Err(e) = split.seal_trace_filter() {
        // Without its filter the split is searched by every trace lookup.
        warn!(split = %split.id, error = %e, "cannot build the split's trace filter");
    }
    Ok(split)
}
