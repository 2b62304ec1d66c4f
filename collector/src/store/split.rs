//! Splits: the unit of retention. Each index is a directory of splits, each split its
//! own tantivy index covering a bounded stretch of wall-clock time. The active split
//! takes writes; once it is older than the split duration it is sealed (immutable)
//! and a new one starts. Retention drops whole sealed splits whose newest record is
//! older than the window. Every commit stores the split's metadata, including the
//! write-ahead-log position it covers, atomically in tantivy's commit payload.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use tantivy::columnar::{BytesColumn, Column};
use tantivy::directory::{Advice, MmapDirectory};
use tantivy::index::SegmentId;
use tantivy::indexer::LogMergePolicy;
use tantivy::schema::Schema;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{
    Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, SegmentOrdinal,
    TantivyDocument,
};
use tracing::warn;

use super::error::StoreError;
use super::filter::TraceIdFilter;
use super::origin::Origins;
use super::schema;
use crate::model::TraceId;

/// Memory a split's writer may buffer before tantivy flushes a segment on its own.
pub const WRITER_MEMORY_BUDGET: usize = 96 << 20;

/// Segments of about the same size merged at once (tantivy's default is 8).
const MERGE_WIDTH: usize = 12;

/// Segments of more documents than this are merged no further (tantivy's default is
/// 10 million). At full load a commit makes a segment of 30,000 to 60,000 documents
/// and twelve of them merge into one of 360,000 to 720,000, which stays: a document
/// is rewritten once instead of twice, and no merge maps and rewrites millions of
/// documents at once. Measured on 10 million spans (three runs of each): 8.5% more
/// spans per CPU-second and an RSS peak about 260 MiB lower, for 2-3% more bytes
/// while a split is written (a segment per 360,000 or more documents; a split is
/// sealed at `--split-records`, so their number stays bounded).
const MAX_DOCS_BEFORE_MERGE: usize = 300_000;

/// How a split's writer merges: [`MERGE_WIDTH`] segments of about one size at
/// once, none larger than [`MAX_DOCS_BEFORE_MERGE`].
fn merge_policy() -> LogMergePolicy {
    let mut policy = LogMergePolicy::default();
    policy.set_min_num_segments(MERGE_WIDTH);
    policy.set_max_docs_before_merge(MAX_DOCS_BEFORE_MERGE);
    policy
}

/// What a split's last commit covers. Kept in the commit payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMeta {
    /// Highest write-ahead-log sequence number whose records are committed here.
    pub lsn: u64,
    /// Oldest and newest record timestamps (ns since the epoch).
    pub min_time: u64,
    pub max_time: u64,
    pub num_docs: u64,
    /// When the split was opened (ns since the epoch, by the store's clock).
    pub created: u64,
    /// The document layout ([`schema::FORMAT`]); absent (0) in the first one.
    #[serde(default)]
    pub format: u32,
}

impl SplitMeta {
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.num_docs > 0 && self.min_time <= end && self.max_time >= start
    }

    /// Whether every record of the split lies in `[start, end]`. Searches rely on
    /// it to leave out their time-range clause, so the writer updates the metadata
    /// before the reader sees new documents, never after.
    pub fn within(&self, start: u64, end: u64) -> bool {
        self.min_time >= start && self.max_time <= end
    }

    pub fn extend(&mut self, time: u64) {
        if self.num_docs == 0 || time < self.min_time {
            self.min_time = time;
        }
        self.max_time = self.max_time.max(time);
        self.num_docs += 1;
    }
}

pub struct Split {
    pub id: String,
    pub dir: PathBuf,
    pub index: Index,
    pub reader: IndexReader,
    /// Metadata of what is committed (and so visible to searches).
    pub meta: RwLock<SplitMeta>,
    /// The resources and scopes its documents came from.
    pub origins: Arc<Origins>,
    pub sealed: AtomicBool,
    /// In a cluster: its upload is complete and the metastore says `published`.
    pub published: AtomicBool,
    columns: Mutex<ColumnCache>,
    /// The trace ids a sealed split holds, as a filter; `None` while it is written
    /// (or when its filter could not be built): it may then hold any trace.
    trace_filter: RwLock<Option<TraceIdFilter>>,
}

/// The file a sealed split keeps its [`TraceIdFilter`] in: `crc32 (LE) | filter`.
pub const TRACE_FILTER_FILE: &str = "trace-ids.bloom";

/// The file that says a split was published (cluster mode), so that a restart
/// does not publish it again.
pub const PUBLISHED_MARKER: &str = "published";

/// Columns of this split's segments, opened once: opening a column reads its block
/// index, which for a segment of millions of records cost more than a trace lookup
/// itself. Segments are immutable; entries of segments merged away are dropped
/// when a searcher of a newer generation asks.
#[derive(Default)]
struct ColumnCache {
    generation: u64,
    columns: HashMap<(SegmentId, &'static str), Column<u64>>,
    trace_ids: HashMap<SegmentId, BytesColumn>,
}

impl ColumnCache {
    /// Drops the columns of segments that `searcher` no longer has (merged away),
    /// and what the process keeps of them (trace-id tables, rollups), the first
    /// time a searcher of a newer generation asks.
    fn follow(&mut self, searcher: &Searcher) {
        let generation = searcher.generation().generation_id();
        if generation > self.generation {
            let live: HashSet<SegmentId> = searcher
                .segment_readers()
                .iter()
                .map(|segment| segment.segment_id())
                .collect();
            let mut gone = HashSet::new();
            self.columns.retain(|(id, _), _| {
                live.contains(id) || {
                    gone.insert(*id);
                    false
                }
            });
            self.trace_ids.retain(|id, _| {
                live.contains(id) || {
                    gone.insert(*id);
                    false
                }
            });
            for segment in gone {
                super::traceids::forget(segment);
                super::red::forget(segment);
            }
            self.generation = generation;
        }
    }
}

impl std::fmt::Debug for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Split")
            .field("id", &self.id)
            .field("meta", &self.meta())
            .finish()
    }
}

impl Split {
    pub fn meta(&self) -> SplitMeta {
        self.meta.read().map(|meta| *meta).unwrap_or_default()
    }

    /// Whether its log records carry pattern ids (see [`schema::PATTERN_FORMAT`]).
    pub fn has_patterns(&self) -> bool {
        self.meta().format >= schema::PATTERN_FORMAT
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub fn is_published(&self) -> bool {
        self.published.load(Ordering::Acquire)
    }

    /// Notes on disk and in memory that the split is published.
    pub fn mark_published(&self) -> io::Result<()> {
        fs::write(self.dir.join(PUBLISHED_MARKER), b"")?;
        self.published.store(true, Ordering::Release);
        Ok(())
    }

    /// The u64 column `name` of segment `ord` of `searcher` (one of this split's).
    pub fn u64_column(
        &self,
        searcher: &Searcher,
        ord: SegmentOrdinal,
        name: &'static str,
    ) -> tantivy::Result<Column<u64>> {
        let segment = searcher.segment_reader(ord);
        let key = (segment.segment_id(), name);
        {
            let mut cache = self.columns.lock().unwrap_or_else(PoisonError::into_inner);
            cache.follow(searcher);
            if let Some(column) = cache.columns.get(&key) {
                return Ok(column.clone());
            }
        }
        let column = segment.fast_fields().u64(name)?;
        self.columns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .columns
            .insert(key, column.clone());
        Ok(column)
    }

    /// The trace id column of segment `ord` of `searcher`; `None` in splits older
    /// than [`schema::TRACE_ID_COLUMN_FORMAT`], which keep the id's halves.
    pub fn trace_id_column(
        &self,
        searcher: &Searcher,
        ord: SegmentOrdinal,
    ) -> tantivy::Result<Option<BytesColumn>> {
        if self.meta().format < schema::TRACE_ID_COLUMN_FORMAT {
            return Ok(None);
        }
        let segment = searcher.segment_reader(ord);
        let id = segment.segment_id();
        {
            let mut cache = self.columns.lock().unwrap_or_else(PoisonError::into_inner);
            cache.follow(searcher);
            if let Some(column) = cache.trace_ids.get(&id) {
                return Ok(Some(column.clone()));
            }
        }
        let Some(column) = segment.fast_fields().bytes(schema::columns::TRACE_ID)? else {
            return Ok(None);
        };
        self.columns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .trace_ids
            .insert(id, column.clone());
        Ok(Some(column))
    }

    /// A writer for this split: one indexing thread (the writer thread building
    /// documents is the other busy one) and a bounded memory budget.
    pub fn writer(&self) -> Result<IndexWriter<TantivyDocument>, StoreError> {
        let writer = self
            .index
            .writer_with_num_threads(1, WRITER_MEMORY_BUDGET)?;
        writer.set_merge_policy(Box::new(merge_policy()));
        Ok(writer)
    }

    /// Creates a new, empty split directory under `root`.
    /// Its name is `split-<created>-<seq>`, followed by `-<node>` in a cluster,
    /// where it must be unique.
    pub fn create(
        root: &Path,
        schema: Schema,
        created: u64,
        seq: u64,
        node: Option<&str>,
    ) -> Result<Split, StoreError> {
        let id = match node {
            Some(node) => format!("split-{created:020}-{seq:04}-{node}"),
            None => format!("split-{created:020}-{seq:04}"),
        };
        let dir = root.join(&id);
        fs::create_dir_all(&dir)?;
        let settings = IndexSettings {
            // Level 1: level 3 cost a quarter of the indexing CPU for the same size
            // (it sets up a larger context for every block).
            docstore_compression: Compressor::Zstd(ZstdCompressor {
                compression_level: Some(1),
            }),
            // 64 KiB blocks: a fifth fewer bytes than 16 KiB ones; a trace's ~10
            // spans still cost ~10 block decompressions (tens of µs each).
            docstore_blocksize: 64 * 1024,
            ..IndexSettings::default()
        };
        let index = Index::builder()
            .schema(schema)
            .settings(settings)
            .create_in_dir(&dir)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let origins = Arc::new(Origins::create(&dir));
        Ok(Split {
            id,
            dir,
            index,
            reader,
            meta: RwLock::new(SplitMeta {
                created,
                format: schema::FORMAT,
                ..SplitMeta::default()
            }),
            origins,
            sealed: AtomicBool::new(false),
            published: AtomicBool::new(false),
            columns: Mutex::default(),
            trace_filter: RwLock::default(),
        })
    }

    /// Opens an existing split read-only (sealed). `None` for a split that never
    /// committed anything: its directory is removed.
    pub fn open(dir: &Path) -> Result<Option<Split>, StoreError> {
        let id = dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_string();
        // A sealed split is read at random (a term, a block of a column, a
        // document), mostly long after it was written: without readahead a lookup in
        // a split that is not in the page cache reads the pages it needs, not the
        // device's readahead window around each of them (8 MiB on some virtual
        // disks, where opening a week of splits read all 18 GB of them, and a trace
        // lookup across the week took 71 ms at p99 instead of 8). The price: a scan
        // of a cold split's columns (a week-wide trace search) reads page by page.
        let directory = MmapDirectory::open_with_madvice(dir, Advice::Random)
            .map_err(tantivy::TantivyError::from)?;
        let index = Index::open(directory)?;
        let payload = index.load_metas()?.payload;
        let meta = match payload.as_deref().map(serde_json::from_str::<SplitMeta>) {
            Some(Ok(meta)) => meta,
            Some(Err(e)) => {
                return Err(StoreError::Corrupt(format!(
                    "split {id}: unreadable commit payload: {e}"
                )))
            }
            None => {
                drop(index);
                fs::remove_dir_all(dir)?;
                return Ok(None);
            }
        };
        if !(schema::OLDEST_FORMAT..=schema::FORMAT).contains(&meta.format) {
            return Err(StoreError::Format(format!(
                "split {id} has document format {}, this Hopline reads formats {} to {}: \
                 it was written by another version; move {} away to start afresh",
                meta.format,
                schema::OLDEST_FORMAT,
                schema::FORMAT,
                dir.parent().unwrap_or(dir).display()
            )));
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let origins = Origins::open(dir)?;
        let split = Split {
            id,
            dir: dir.to_path_buf(),
            index,
            reader,
            meta: RwLock::new(meta),
            origins: Arc::new(origins),
            sealed: AtomicBool::new(true),
            published: AtomicBool::new(dir.join(PUBLISHED_MARKER).exists()),
            columns: Mutex::default(),
            trace_filter: RwLock::default(),
        };
        split.check()?;
        if let Err(e) = split.load_trace_filter() {
            // Served without one: every trace lookup then looks in it.
            warn!(split = %split.id, error = %e, "cannot read or build the split's trace filter");
        }
        Ok(Some(split))
    }

    /// False only when the split certainly holds no record of trace `id`: it is
    /// sealed and its filter says so. Trace lookups skip such splits unopened.
    pub fn may_hold_trace(&self, id: &TraceId) -> bool {
        match &*self
            .trace_filter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(filter) => filter.may_contain(id),
            None => true,
        }
    }

    /// The filter of the trace ids a sealed split holds, once built or loaded.
    pub fn trace_filter(&self) -> Option<TraceIdFilter> {
        self.trace_filter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Builds the filter of the trace ids this split holds, keeps it in
    /// [`TRACE_FILTER_FILE`] and uses it from now on: when a split is sealed (it
    /// is written no more).
    pub fn seal_trace_filter(&self) -> Result<(), StoreError> {
        let field = self.index.schema().get_field("trace_id")?;
        let filter = super::search::trace_filter(self, field)?;
        let mut bytes = crc32fast::hash(filter.as_bytes()).to_le_bytes().to_vec();
        bytes.extend_from_slice(filter.as_bytes());
        let temporary = self.dir.join(format!("{TRACE_FILTER_FILE}.tmp"));
        fs::write(&temporary, &bytes)?;
        fs::rename(&temporary, self.dir.join(TRACE_FILTER_FILE))?;
        *self
            .trace_filter
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(filter);
        Ok(())
    }

    /// Reads the split's trace filter; builds it when it is missing (a split
    /// sealed by a version without filters) or damaged (its checksum fails: a
    /// wrong filter would hide traces the split holds).
    fn load_trace_filter(&self) -> Result<(), StoreError> {
        let path = self.dir.join(TRACE_FILTER_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.seal_trace_filter(),
            Err(e) => return Err(e.into()),
        };
        match bytes.split_first_chunk::<4>() {
            Some((crc, filter)) if u32::from_le_bytes(*crc) == crc32fast::hash(filter) => {
                *self
                    .trace_filter
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some(TraceIdFilter::from_bytes(filter.to_vec()));
                Ok(())
            }
            _ => {
                warn!(split = %self.id, "trace filter damaged: building it again");
                self.seal_trace_filter()
            }
        }
    }

    /// Reads a little of every file of every segment, so that a split with a
    /// missing, truncated or damaged file is found when it is opened rather than
    /// by the searches that would fail on it: every column and term dictionary is
    /// opened, the first and last stored documents are read, and every document's
    /// origin must be in the origins table.
    fn check(&self) -> Result<(), StoreError> {
        let searcher = self.reader.searcher();
        let schema = self.index.schema();
        let corrupt = |what: String| StoreError::Corrupt(format!("split {}: {what}", self.id));
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            for (field, entry) in schema.fields() {
                if entry.is_indexed() {
                    segment.inverted_index(field)?;
                }
                if entry.is_fast() && entry.field_type().value_type() == tantivy::schema::Type::U64
                {
                    segment.fast_fields().u64(entry.name())?;
                }
            }
            for doc in [0, segment.max_doc().saturating_sub(1)] {
                if doc < segment.max_doc() {
                    let _: TantivyDocument =
                        searcher.doc(tantivy::DocAddress::new(ord as SegmentOrdinal, doc))?;
                }
            }
            let origins = segment.fast_fields().u64(schema::columns::ORIGIN)?;
            if segment.max_doc() > 0 && origins.max_value() as usize >= self.origins.len() {
                return Err(corrupt(format!(
                    "documents refer to origin {}, the origins file holds {}",
                    origins.max_value(),
                    self.origins.len()
                )));
            }
        }
        Ok(())
    }
}

/// Lists the split directories under `root`, oldest first.
pub fn list_split_dirs(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.file_type()?.is_dir() && name.to_string_lossy().starts_with("split-") {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_past_the_merge_size_are_merged_no_further() {
        use tantivy::indexer::MergePolicy;
        let index = Index::create_in_ram(schema::SpanSchema::new().schema);
        let segments = |count: usize, docs: u32| -> Vec<tantivy::index::SegmentMeta> {
            (0..count)
                .map(|_| index.new_segment_meta(SegmentId::generate_random(), docs))
                .collect()
        };
        let policy = merge_policy();
        // The segments of twelve commits at full load merge into one.
        let commits = segments(MERGE_WIDTH, 30_000);
        let candidates = policy.compute_merge_candidates(&commits);
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].0.len(), MERGE_WIDTH);
        // Twelve of what that makes stay as they are; eleven of the commits' beside
        // them wait for a twelfth.
        let mut written = segments(MERGE_WIDTH, 360_000);
        written.extend(segments(MERGE_WIDTH - 1, 30_000));
        assert!(policy.compute_merge_candidates(&written).is_empty());
        // Below the size, twelve larger ones still merge.
        let candidates = policy.compute_merge_candidates(&segments(MERGE_WIDTH, 250_000));
        assert_eq!(candidates.len(), 1);
    }

    #[test]
    fn a_split_of_another_format_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let split = Split::create(dir.path(), schema::SpanSchema::new().schema, 1, 0, None)
            .expect("create");
        let mut writer = split.writer().expect("writer");
        // What the first layout wrote: no `format` in the commit payload.
        let mut meta = serde_json::to_value(split.meta()).expect("json");
        meta.as_object_mut().expect("object").remove("format");
        let mut prepared = writer.prepare_commit().expect("prepare");
        prepared.set_payload(&meta.to_string());
        prepared.commit().expect("commit");
        drop(writer);
        let error = Split::open(&split.dir).expect_err("an old split must be refused");
        let message = error.to_string();
        assert!(
            message.contains("format 0")
                && message.contains(&format!(
                    "formats {} to {}",
                    schema::OLDEST_FORMAT,
                    schema::FORMAT
                )),
            "{message}"
        );

        let current = Split::create(dir.path(), schema::SpanSchema::new().schema, 2, 1, None)
            .expect("create");
        let mut writer = current.writer().expect("writer");
        let mut prepared = writer.prepare_commit().expect("prepare");
        prepared.set_payload(&serde_json::to_string(&current.meta()).expect("json"));
        prepared.commit().expect("commit");
        drop(writer);
        let opened = Split::open(&current.dir).expect("open").expect("a split");
        assert_eq!(opened.meta().format, schema::FORMAT);
    }
}
