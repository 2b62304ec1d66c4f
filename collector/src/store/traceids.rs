//! A span's trace id, read from columns. From format 4 a span document holds an
//! ordinal into its segment's dictionary of trace ids (a few bytes a span, 16 bytes
//! a trace); older splits hold the id's two halves (16 bytes a span).
//!
//! Ordinals become ids through the segment's whole table of ids: read once, in
//! about 20 ms per million traces, and kept in a process-wide cache of
//! [`TABLES_BUDGET`] bytes, the least recently used out first. Looking the ordinals
//! up in the dictionary instead, even in order, costs a pass over it for every
//! search (docs/benchmarks.md). What reads the spans of one trace knows its id and
//! reads neither.

use std::io;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use tantivy::columnar::{BytesColumn, Column};
use tantivy::index::SegmentId;
use tantivy::{DocId, Searcher, SegmentOrdinal, SegmentReader};

use super::lru::Lru;
use super::schema::{columns, TRACE_ID_COLUMN_FORMAT};
use super::split::Split;
use crate::model::TraceId;

/// A trace id as the halves of its 16 bytes, big-endian: what searches group by.
pub(super) type TraceKey = (u64, u64);

/// A segment's trace ids in ordinal order. (A `Vec`: making an `Arc<[_]>` of it
/// would copy it.)
type Table = Arc<Vec<TraceKey>>;

/// The bytes of the tables of trace ids that segments keep at once: 16 bytes a
/// trace, so about 160 million spans' worth at 10 spans a trace, a week of the
/// benchmark's 100 million with room. A search over more reads the tables it
/// cannot keep again each time (about 1 ms per 60,000 traces), the least recently
/// used going first.
pub(super) const TABLES_BUDGET: usize = 256 << 20;

/// Documents read from the columns at once.
const CHUNK: usize = 64;

/// The trace ids of one segment's span documents.
pub(super) enum TraceIdColumn {
    /// Format 4 on: ordinals into the segment's dictionary, read as a table.
    Dictionary { ords: Column<u64>, table: Table },
    /// Formats 2 and 3: the two halves.
    Halves { hi: Column<u64>, lo: Column<u64> },
    /// Every document read is of this trace (the reader of one trace's spans).
    Known(TraceKey),
}

impl TraceIdColumn {
    /// The trace ids of segment `ord` of `searcher` (one of `split`'s).
    pub(super) fn open(
        split: &Split,
        searcher: &Searcher,
        ord: SegmentOrdinal,
    ) -> tantivy::Result<TraceIdColumn> {
        match split.trace_id_column(searcher, ord)? {
            Some(ids) => Self::dictionary(&ids, searcher.segment_reader(ord).segment_id()),
            None => Ok(TraceIdColumn::Halves {
                hi: split.u64_column(searcher, ord, columns::TRACE_HI)?,
                lo: split.u64_column(searcher, ord, columns::TRACE_LO)?,
            }),
        }
    }

    /// The trace ids of `segment`, of a split of document format `format`,
    /// without the split's cache of open columns.
    pub(super) fn of_segment(
        segment: &SegmentReader,
        format: u32,
    ) -> tantivy::Result<TraceIdColumn> {
        let fast = segment.fast_fields();
        if format >= TRACE_ID_COLUMN_FORMAT {
            if let Some(ids) = fast.bytes(columns::TRACE_ID)? {
                return Self::dictionary(&ids, segment.segment_id());
            }
        }
        Ok(TraceIdColumn::Halves {
            hi: fast.u64(columns::TRACE_HI)?,
            lo: fast.u64(columns::TRACE_LO)?,
        })
    }

    fn dictionary(ids: &BytesColumn, segment: SegmentId) -> tantivy::Result<TraceIdColumn> {
        let cached = TABLES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&segment);
        let table = match cached {
            Some(table) => table,
            None => {
                let table = read_table(ids)?;
                TABLES
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(segment, Arc::clone(&table), bytes_of(&table));
                table
            }
        };
        Ok(TraceIdColumn::Dictionary {
            ords: ids.ords().clone(),
            table,
        })
    }

    /// The trace id of document `doc` (`None`: it has none).
    pub(super) fn get(&self, doc: DocId) -> Option<TraceKey> {
        match self {
            TraceIdColumn::Dictionary { ords, table } => {
                table.get(usize::try_from(ords.first(doc)?).ok()?).copied()
            }
            TraceIdColumn::Halves { hi, lo } => Some((hi.first(doc)?, lo.first(doc)?)),
            TraceIdColumn::Known(key) => Some(*key),
        }
    }

    /// The trace ids of `docs` (ascending) into `out` (as long as `docs`).
    pub(super) fn first_vals(&self, docs: &[DocId], out: &mut [Option<TraceKey>]) {
        let mut a = [None; CHUNK];
        let mut b = [None; CHUNK];
        for (docs, out) in docs.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            let n = docs.len().min(out.len());
            a[..n].fill(None);
            match self {
                TraceIdColumn::Dictionary { ords, table } => {
                    ords.first_vals(&docs[..n], &mut a[..n]);
                    for (out, ord) in out.iter_mut().zip(&a[..n]) {
                        *out = ord
                            .and_then(|ord| usize::try_from(ord).ok())
                            .and_then(|ord| table.get(ord).copied());
                    }
                }
                TraceIdColumn::Known(key) => out[..n].fill(Some(*key)),
                TraceIdColumn::Halves { hi, lo } => {
                    b[..n].fill(None);
                    hi.first_vals(&docs[..n], &mut a[..n]);
                    lo.first_vals(&docs[..n], &mut b[..n]);
                    for (i, out) in out.iter_mut().take(n).enumerate() {
                        *out = a[i].zip(b[i]);
                    }
                }
            }
        }
    }
}

/// Drops the table of `segment`, merged away.
pub(super) fn forget(segment: SegmentId) {
    TABLES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .forget(|id| *id == segment);
}

fn key_of(bytes: &[u8]) -> Option<TraceKey> {
    Some(TraceId(bytes.try_into().ok()?).halves())
}

/// The segment's dictionary of trace ids, in ordinal order.
fn read_table(ids: &BytesColumn) -> io::Result<Table> {
    let terms = ids.num_terms().min(ids.num_rows() as usize);
    let mut table = Vec::with_capacity(terms);
    let mut stream = ids.dictionary().stream()?;
    while stream.advance() {
        let key = key_of(stream.key()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a trace id of {} bytes in a segment's dictionary",
                    stream.key().len()
                ),
            )
        })?;
        table.push(key);
    }
    Ok(Arc::new(table))
}

/// The tables of trace ids kept, by segment (segment ids are random 128-bit
/// numbers, unique across splits).
static TABLES: LazyLock<Mutex<Lru<SegmentId, Table>>> =
    LazyLock::new(|| Mutex::new(Lru::new(TABLES_BUDGET)));

/// The bytes the trace-id tables of every segment hold now.
pub(super) fn held_bytes() -> usize {
    TABLES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .bytes()
}

fn bytes_of(table: &[TraceKey]) -> usize {
    std::mem::size_of_val(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_stay_within_the_budget_and_the_least_recently_used_go() {
        let mut tables = Lru::new(TABLES_BUDGET);
        let quarter: Table = Arc::new(vec![(0, 0); TABLES_BUDGET / 4 / 16]);
        let size = bytes_of(&quarter);
        let ids: Vec<SegmentId> = (0..5).map(|_| SegmentId::generate_random()).collect();
        for &id in &ids[..4] {
            tables.insert(id, Arc::clone(&quarter), size);
        }
        assert_eq!(tables.bytes(), TABLES_BUDGET);
        // The first is used again, so the second is the least recently used.
        assert!(tables.get(&ids[0]).is_some());
        tables.insert(ids[4], Arc::clone(&quarter), size);
        assert_eq!(tables.bytes(), TABLES_BUDGET);
        assert!(tables.get(&ids[1]).is_none());
        for id in [ids[0], ids[2], ids[3], ids[4]] {
            assert!(tables.get(&id).is_some());
        }
        // A table larger than the budget is not kept, and keeps nothing out.
        let huge: Table = Arc::new(vec![(0, 0); TABLES_BUDGET / 16 + 1]);
        let id = SegmentId::generate_random();
        let huge_size = bytes_of(&huge);
        tables.insert(id, huge, huge_size);
        assert!(tables.get(&id).is_none());
        assert_eq!(tables.len(), 4);
    }

    #[test]
    fn the_table_of_a_segment_merged_away_is_dropped() {
        let segment = SegmentId::generate_random();
        let table: Table = Arc::new(vec![(1, 2); 1000]);
        let lock = || TABLES.lock().unwrap_or_else(PoisonError::into_inner);
        let size = bytes_of(&table);
        lock().insert(segment, table, size);
        assert!(lock().get(&segment).is_some());
        forget(segment);
        assert!(lock().get(&segment).is_none());
    }
}
