//! Storage: two tantivy indexes on local disk, spans and logs, each a set of
//! time-bounded splits (see [`split`]). One writer thread per index owns its
//! `IndexWriter` and is fed by the write-ahead log in log order ([`writer`]);
//! searches run on the blocking pool against committed splits ([`search`]).

pub mod error;
pub mod origin;
pub mod schema;
pub mod search;
pub mod split;
pub mod terms;
pub mod writer;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tracing::info;

use crate::health::Health;
use crate::model::Signal;
use crate::model::{LogRecord, Span, TraceId};
pub use error::StoreError;
use schema::{LogSchema, SpanSchema};
use search::{Cancel, DependencyLink, LogFilter, TraceFilter, TraceSpans};
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
}

impl SignalIndex {
    fn open(signal: Signal, root: PathBuf, health: &Health) -> Result<SignalIndex, StoreError> {
        std::fs::create_dir_all(&root)?;
        let mut splits = Vec::new();
        for dir in split::list_split_dirs(&root)? {
            match Split::open(&dir) {
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
        Ok(SignalIndex {
            signal,
            root,
            splits: RwLock::new(splits),
            next_seq: AtomicU64::new(0),
        })
    }

    /// The splits as they are now; searches work on such a snapshot.
    pub fn splits(&self) -> Vec<Arc<Split>> {
        self.splits
            .read()
            .map(|splits| splits.clone())
            .unwrap_or_default()
    }

    /// The highest log sequence number committed in any split.
    pub fn committed_lsn(&self) -> u64 {
        self.splits()
            .iter()
            .map(|split| split.meta().lsn)
            .max()
            .unwrap_or(0)
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
        Split::create(&self.root, schema, now, seq)
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
        Ok(Store {
            spans: Arc::new(SignalIndex::open(
                Signal::Spans,
                data_dir.join("spans"),
                health,
            )?),
            logs: Arc::new(SignalIndex::open(
                Signal::Logs,
                data_dir.join("logs"),
                health,
            )?),
            span_schema: Arc::new(SpanSchema::new()),
            log_schema: Arc::new(LogSchema::new()),
        })
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

    /// Ids of the traces with a span matching `filter`, newest first.
    pub fn find_traces(
        &self,
        filter: &TraceFilter,
        cancel: &Cancel,
    ) -> Result<Vec<TraceId>, StoreError> {
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
    ) -> Result<(Vec<LogRecord>, u64), StoreError> {
        self.logs.search_logs(&self.log_schema, filter, cancel)
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
