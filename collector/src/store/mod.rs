//! Storage: two tantivy indexes on local disk, spans and logs, each a set of
//! time-bounded splits (see [`split`]). One writer thread per index owns its
//! `IndexWriter` and is fed by the write-ahead log in log order ([`writer`]);
//! searches run on the blocking pool against committed splits ([`search`]).

pub mod error;
pub mod filter;
mod lru;
pub mod origin;
pub mod outline;
pub mod pattern;
pub mod red;
pub mod schema;
pub mod search;
pub mod split;
pub mod terms;
mod traceids;
pub mod writer;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use tracing::info;

use crate::health::Health;
use crate::model::Signal;
use crate::model::{LogRecord, Span, TraceId};
pub use error::StoreError;
use schema::{LogSchema, SpanSchema};
use search::{Cancel, DependencyLink, LogFilter, SplitSummary, TraceFilter, TraceHits, TraceSpans};
use split::Split;

/// Records of one signal, as they travel from the log to an index writer.
#[derive(Debug)]
pub enum Records {
    Spans(Vec<Span>),
    Logs(Vec<LogRecord>),
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::Spans(spans) => spans.len(),
            Records::Logs(logs) => logs.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn signal(&self) -> Signal {
        match self {
            Records::Spans(_) => Signal::Spans,
            Records::Logs(_) => Signal::Logs,
        }
    }

    /// The postcard encoding of these records, after the byte `tag`.
    pub fn encode_after(&self, tag: u8) -> Result<Vec<u8>, postcard::Error> {
        // Sized for a typical record up front: growing a buffer of half a megabyte
        // by doubling copied it several times per request.
        let mut buffer = Vec::with_capacity(1 + self.len() * 1024);
        buffer.push(tag);
        match self {
            Records::Spans(spans) => postcard::to_extend(spans, buffer),
            Records::Logs(logs) => postcard::to_extend(logs, buffer),
        }
    }

    pub fn decode(signal: Signal, payload: &[u8]) -> Result<Records, postcard::Error> {
        Ok(match signal {
            Signal::Spans => Records::Spans(postcard::from_bytes(payload)?),
            Signal::Logs => Records::Logs(postcard::from_bytes(payload)?),
        })
    }
}

/// One index (spans or logs): its directory and its splits.
#[derive(Debug)]
pub struct SignalIndex {
    pub signal: Signal,
    root: PathBuf,
    splits: RwLock<Vec<Arc<Split>>>,
    next_seq: AtomicU64,
    /// In a cluster, this node's name: the end of every split name it makes.
    node: OnceLock<String>,
    /// The log position below which every record is in a split that was
    /// published and then dropped from this disk ([`PUBLISHED_LSN_FILE`]).
    published_lsn: AtomicU64,
}

/// Splits opened at once when an index opens. On a cold page cache opening one is a
/// few dozen small random reads (each file's footer, the dictionaries, a stored
/// document or two), so a week of hourly splits opened one after the other took
/// 5-6 s per signal here; the disk serves several at once.
const OPENERS: usize = 8;

/// [`Split::open`] of every directory of `dirs`, [`OPENERS`] at a time, in the
/// order of `dirs`.
fn open_splits(dirs: &[PathBuf]) -> Vec<Result<Option<Split>, StoreError>> {
    let next = AtomicUsize::new(0);
    let opened = Mutex::new(Vec::with_capacity(dirs.len()));
    let open_the_rest = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(dir) = dirs.get(i) else { break };
        let result = Split::open(dir);
        opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((i, result));
    };
    std::thread::scope(|scope| {
        for _ in 1..OPENERS.min(dirs.len()) {
            // Without another thread this one opens them all.
            let spawned = std::thread::Builder::new()
                .name("hopline-open".into())
                .spawn_scoped(scope, open_the_rest);
            if spawned.is_err() {
                break;
            }
        }
        open_the_rest();
    });
    let mut opened = opened.into_inner().unwrap_or_else(PoisonError::into_inner);
    opened.sort_unstable_by_key(|(i, _)| *i);
    opened.into_iter().map(|(_, result)| result).collect()
}

/// Under each index's directory: the highest log position of a split that was
/// published and removed from local disk. Replay starts past it.
const PUBLISHED_LSN_FILE: &str = "published-lsn";

impl SignalIndex {
    fn open(signal: Signal, root: PathBuf, health: &Health) -> Result<SignalIndex, StoreError> {
        std::fs::create_dir_all(&root)?;
        let mut splits = Vec::new();
        let dirs = split::list_split_dirs(&root)?;
        for (dir, opened) in dirs.iter().zip(open_splits(&dirs)) {
            let dir = dir.clone();
            match opened {
                Ok(Some(split)) => splits.push(Arc::new(split)),
                Ok(None) => {}
                // Another version's split: refusing to start says what to do.
                Err(e @ StoreError::Format(_)) => return Err(e),
                Err(e) => quarantine(signal, &root, &dir, &e, health)?,
            }
        }
        let docs: u64 = splits.iter().map(|s| s.meta().num_docs).sum();
        info!(
            index = signal.as_str(),
            splits = splits.len(),
            docs,
            "opened index"
        );
        let published_lsn = match std::fs::read_to_string(root.join(PUBLISHED_LSN_FILE)) {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| {
                StoreError::Corrupt(format!("{}: {e}", root.join(PUBLISHED_LSN_FILE).display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(SignalIndex {
            signal,
            root,
            splits: RwLock::new(splits),
            next_seq: AtomicU64::new(0),
            node: OnceLock::new(),
            published_lsn: AtomicU64::new(published_lsn),
        })
    }

    /// An index over `splits` alone, for searches (nothing is written to it).
    fn view(signal: Signal, splits: Vec<Arc<Split>>) -> SignalIndex {
        SignalIndex {
            signal,
            root: PathBuf::new(),
            splits: RwLock::new(splits),
            next_seq: AtomicU64::new(0),
            node: OnceLock::new(),
            published_lsn: AtomicU64::new(0),
        }
    }

    /// The directory its splits live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Drops split `id`, published in a cluster, from this index: its log
    /// position is noted first (replay after a restart starts past it), then it is
    /// taken from the list. The caller moves or deletes its directory.
    pub fn forget_published(&self, split: &Split) -> Result<(), StoreError> {
        let lsn = split.meta().lsn;
        if lsn > self.published_lsn.load(Ordering::Acquire) {
            let path = self.root.join(PUBLISHED_LSN_FILE);
            let partial = self.root.join(format!("{PUBLISHED_LSN_FILE}.partial"));
            std::fs::write(&partial, lsn.to_string())?;
            std::fs::File::open(&partial)?.sync_all()?;
            std::fs::rename(&partial, &path)?;
            self.published_lsn.fetch_max(lsn, Ordering::AcqRel);
        }
        self.remove_split(&split.id);
        Ok(())
    }

    /// The splits as they are now; searches work on such a snapshot.
    pub fn splits(&self) -> Vec<Arc<Split>> {
        self.splits
            .read()
            .map(|splits| splits.clone())
            .unwrap_or_default()
    }

    /// The highest log sequence number committed in any split, or in one
    /// published and dropped from this disk.
    pub fn committed_lsn(&self) -> u64 {
        self.splits()
            .iter()
            .map(|split| split.meta().lsn)
            .max()
            .unwrap_or(0)
            .max(self.published_lsn.load(Ordering::Acquire))
    }

    fn add_split(&self, split: Arc<Split>) {
        if let Ok(mut splits) = self.splits.write() {
            splits.push(split);
        }
    }

    fn remove_split(&self, id: &str) {
        if let Ok(mut splits) = self.splits.write() {
            splits.retain(|split| split.id != id);
        }
    }

    fn create_split(&self, schema: tantivy::schema::Schema, now: u64) -> Result<Split, StoreError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        Split::create(
            &self.root,
            schema,
            now,
            seq,
            self.node.get().map(String::as_str),
        )
    }

    /// Drops every sealed split whose newest record is older than `cutoff` (ns since
    /// the epoch). Returns the ids of the dropped splits.
    pub fn enforce_retention(&self, cutoff: u64) -> Result<Vec<String>, StoreError> {
        let expired: Vec<Arc<Split>> = self
            .splits()
            .into_iter()
            .filter(|split| split.is_sealed() && split.meta().max_time < cutoff)
            .collect();
        let mut dropped = Vec::new();
        for split in expired {
            self.remove_split(&split.id);
            // Searches holding the split keep their mmaps; the files go with the last one.
            std::fs::remove_dir_all(&split.dir)?;
            info!(index = self.signal.as_str(), split = %split.id, docs = split.meta().num_docs, "dropped split past retention");
            dropped.push(split.id.clone());
        }
        Ok(dropped)
    }
}

/// Both indexes, each searched with its own schema.
#[derive(Debug, Clone)]
pub struct Store {
    pub spans: Arc<SignalIndex>,
    pub logs: Arc<SignalIndex>,
    span_schema: Arc<SpanSchema>,
    log_schema: Arc<LogSchema>,
}

impl Store {
    /// Opens both indexes under `data_dir`. A split that cannot be read is moved to
    /// `quarantine/` and reported to `health`; the others are served.
    pub fn open(data_dir: &Path, health: &Health) -> Result<Store, StoreError> {
        // Both indexes at once: opening is mostly waiting for the disk.
        let (spans, logs) = std::thread::scope(|scope| {
            let spans = std::thread::Builder::new()
                .name("hopline-open".into())
                .spawn_scoped(scope, || {
                    SignalIndex::open(Signal::Spans, data_dir.join("spans"), health)
                });
            let logs = SignalIndex::open(Signal::Logs, data_dir.join("logs"), health);
            let spans = match spans {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => SignalIndex::open(Signal::Spans, data_dir.join("spans"), health),
            };
            (spans, logs)
        });
        Ok(Store {
            spans: Arc::new(spans?),
            logs: Arc::new(logs?),
            span_schema: Arc::new(SpanSchema::new()),
            log_schema: Arc::new(LogSchema::new()),
        })
    }

    /// Cluster mode: every split made from now on ends in `node`'s name.
    pub fn set_node(&self, node: &str) {
        for index in [&self.spans, &self.logs] {
            let _ = index.node.set(node.to_string());
        }
    }

    /// The same indexes seeing only the given splits: what a cluster search runs
    /// over (some of this node's own splits, some fetched from object storage).
    pub fn view(&self, spans: Vec<Arc<Split>>, logs: Vec<Arc<Split>>) -> Store {
        Store {
            spans: Arc::new(SignalIndex::view(Signal::Spans, spans)),
            logs: Arc::new(SignalIndex::view(Signal::Logs, logs)),
            span_schema: Arc::clone(&self.span_schema),
            log_schema: Arc::clone(&self.log_schema),
        }
    }

    pub fn of(&self, signal: Signal) -> &Arc<SignalIndex> {
        match signal {
            Signal::Spans => &self.spans,
            Signal::Logs => &self.logs,
        }
    }

    /// The spans of a trace: the `max_spans` earliest, and how many it has in all.
    pub fn trace(
        &self,
        trace_id: TraceId,
        max_spans: usize,
        cancel: &Cancel,
    ) -> Result<TraceSpans, StoreError> {
        self.spans
            .trace(&self.span_schema, trace_id, max_spans, cancel)
    }

    /// Requests, errors and durations per service (or operation) and bucket.
    pub fn span_metrics(
        &self,
        query: &red::MetricsQuery,
        cancel: &Cancel,
    ) -> Result<red::SpanMetrics, StoreError> {
        self.spans.span_metrics(&self.span_schema, query, cancel)
    }

    /// The outline of a trace: its spans' columns, and its root's name.
    pub fn outline(
        &self,
        trace_id: TraceId,
        cancel: &Cancel,
    ) -> Result<outline::TraceOutline, StoreError> {
        self.spans.outline(&self.span_schema, trace_id, cancel)
    }

    /// The traces with a span matching `filter`, unordered, with what orders them.
    pub fn find_traces(
        &self,
        filter: &TraceFilter,
        cancel: &Cancel,
    ) -> Result<TraceHits, StoreError> {
        self.spans.find_traces(&self.span_schema, filter, cancel)
    }

    /// Every service name that has spans.
    pub fn services(&self, cancel: &Cancel) -> Result<BTreeSet<String>, StoreError> {
        self.spans.services(self.span_schema.service, cancel)
    }

    /// The span names of a service, with their kinds (Jaeger's words).
    pub fn operations(
        &self,
        service: &str,
        cancel: &Cancel,
    ) -> Result<BTreeSet<(String, String)>, StoreError> {
        self.spans.operations(&self.span_schema, service, cancel)
    }

    /// Calls between services among the spans that started in `[start, end]`.
    pub fn dependencies(
        &self,
        start: u64,
        end: u64,
        cancel: &Cancel,
    ) -> Result<Vec<DependencyLink>, StoreError> {
        self.spans
            .dependencies(&self.span_schema, start, end, cancel)
    }

    /// Log records matching `filter`, newest first, and how many matched in all.
    pub fn search_logs(
        &self,
        filter: &LogFilter,
        cancel: &Cancel,
    ) -> Result<(Vec<LogRecord>, u64, Option<search::LogCursor>), StoreError> {
        self.logs.search_logs(&self.log_schema, filter, cancel)
    }

    /// How many log records match `filter`, per bucket of `volume` and level.
    pub fn log_volume(
        &self,
        filter: &LogFilter,
        volume: search::LogVolume,
        cancel: &Cancel,
    ) -> Result<search::LogVolume, StoreError> {
        self.logs
            .log_volume(&self.log_schema, filter, volume, cancel)
    }

    /// The body patterns of the log records matching `filter`.
    pub fn log_patterns(
        &self,
        filter: &LogFilter,
        patterns: search::LogPatterns,
        cancel: &Cancel,
    ) -> Result<search::LogPatterns, StoreError> {
        self.logs
            .log_patterns(&self.log_schema, filter, patterns, cancel)
    }

    /// Every record of `split` (one of `signal`'s), in batches, to `each`.
    pub fn scan(
        &self,
        signal: Signal,
        split: &Split,
        cancel: &Cancel,
        each: impl FnMut(Records) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        search::scan(
            split,
            signal,
            &self.span_schema,
            &self.log_schema,
            4096,
            cancel,
            each,
        )
    }

    /// The tantivy schema of `signal`'s documents.
    pub fn schema(&self, signal: Signal) -> tantivy::schema::Schema {
        match signal {
            Signal::Spans => self.span_schema.schema.clone(),
            Signal::Logs => self.log_schema.schema.clone(),
        }
    }

    /// What a search needs to skip `split` (one of `signal`'s) without opening it.
    pub fn summarize(&self, signal: Signal, split: &Split) -> Result<SplitSummary, StoreError> {
        match signal {
            Signal::Spans => search::summarize(
                split,
                self.span_schema.trace_id,
                self.span_schema.service,
                None,
            ),
            Signal::Logs => search::summarize(
                split,
                self.log_schema.trace_id,
                self.log_schema.service,
                Some(self.log_schema.level),
            ),
        }
    }

    /// Disk use of each index, in bytes.
    pub fn disk_usage(&self) -> (u64, u64) {
        (dir_size(&self.spans.root), dir_size(&self.logs.root))
    }
}

/// Where splits that cannot be read are moved, under each index's directory.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Moves a split that cannot be read out of the way, says so loudly, and lets the
/// index open without it. What the write-ahead log still holds of it is replayed.
fn quarantine(
    signal: Signal,
    root: &Path,
    dir: &Path,
    error: &StoreError,
    health: &Health,
) -> Result<(), StoreError> {
    let name = dir.file_name().unwrap_or_default();
    let target = root.join(QUARANTINE_DIR).join(name);
    std::fs::create_dir_all(root.join(QUARANTINE_DIR))?;
    std::fs::rename(dir, &target)?;
    tracing::error!(
        index = signal.as_str(),
        split = %name.to_string_lossy(),
        error = %error,
        moved_to = %target.display(),
        "cannot read split; quarantined it and serving the others (what the write-ahead log still holds of it is replayed)"
    );
    health.note(format!(
        "{} split {} could not be read ({error}) and was moved to {}",
        signal.as_str(),
        name.to_string_lossy(),
        target.display()
    ));
    Ok(())
}

/// The bytes each of the process's in-memory caches of segment data holds, by
/// name: segments' trace-id tables (at most `traceids::TABLES_BUDGET`) and
/// service-health rollups (at most [`red::ROLLUP_BUDGET`]). `/metrics` shows them.
pub fn cache_bytes() -> [(&'static str, u64); 2] {
    [
        ("trace_ids", traceids::held_bytes() as u64),
        ("rollups", red::held_bytes() as u64),
    ]
}

/// Bytes of the files under `path` (0 where it cannot be read).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            Ok(_) => entry.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}
