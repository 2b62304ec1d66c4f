//! Service health from spans (RED: rate, errors, duration), at query time from
//! the span columns: no second database. Each service's requests are its server
//! and consumer spans (or the kinds asked for); a service that has none is
//! measured by its root spans. Spans are found per operation through the
//! `service\0kind\0name` terms, so grouping by operation costs nothing more.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tantivy::columnar::Column;
use tantivy::index::SegmentId;
use tantivy::query::{EnableScoring, Query, TermQuery, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, Searcher, SegmentOrdinal, SegmentReader, Term};

use super::error::StoreError;
use super::lru::Lru;
use super::schema::{columns, SpanSchema};
use super::search::{all_of, for_each_term, u64_range, Cancel, CHECK_EVERY};
use super::split::Split;
use super::SignalIndex;
use crate::model::SpanKind;

/// Points one series may have.
pub const MAX_BUCKETS: usize = 10_000;
/// Points of all series of one answer together (series times buckets): what an
/// answer holds is bounded by this and by the spans it counts.
pub const MAX_CELLS: usize = 500_000;

/// What to measure: spans that started in `[start, start + step * buckets)`, in
/// `buckets` buckets of `step` ns each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsQuery {
    /// Only these services (all when empty).
    pub services: Vec<String>,
    /// Span kinds that count as requests; empty: server and consumer, or the
    /// root spans of a service that has neither.
    pub kinds: Vec<SpanKind>,
    /// One series per operation rather than per service.
    pub by_operation: bool,
    pub start: u64,
    pub step: u64,
    pub buckets: usize,
}

impl MetricsQuery {
    /// The end of the last bucket (exclusive).
    pub fn end(&self) -> u64 {
        self.start
            .saturating_add(self.step.saturating_mul(self.buckets as u64))
    }
}

/// Durations of a set of spans: exact while few, then a log-scale histogram
/// whose quantiles are within 1% of the exact ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    exact: Vec<u64>,
    /// Histogram bins (see [`bucket_of`]) and their spans, in bin order: only
    /// the bins that have spans, so a cell holds no more than it counted.
    sketch: Vec<(u16, u64)>,
}

/// Durations kept exactly per cell before it turns into a histogram.
const EXACT_UP_TO: usize = 64;
/// Histogram bins per power of two: a bin is at most 1/64 of its lower bound
/// wide, so the value it stands for (its middle) is within 0.8% of any in it.
const BINS_PER_OCTAVE: u32 = 64;

/// The histogram bin of a duration: its power of two, then the next 6 bits.
fn bucket_of(nanos: u64) -> u16 {
    let value = nanos.max(1);
    let octave = 63 - value.leading_zeros();
    let fraction = if octave >= 6 {
        (value >> (octave - 6)) & 63
    } else {
        (value << (6 - octave)) & 63
    };
    (octave * BINS_PER_OCTAVE + fraction as u32) as u16
}

/// The value a histogram bin stands for: its middle.
fn value_of(bin: u16) -> u64 {
    let (octave, fraction) = (
        u32::from(bin) / BINS_PER_OCTAVE,
        f64::from(u32::from(bin) % BINS_PER_OCTAVE),
    );
    let width = 2f64.powi(octave as i32) / f64::from(BINS_PER_OCTAVE);
    (2f64.powi(octave as i32) + (fraction + 0.5) * width).round() as u64
}

impl Latencies {
    pub fn count(&self) -> u64 {
        self.exact.len() as u64 + self.sketch.iter().map(|(_, n)| n).sum::<u64>()
    }

    pub fn add(&mut self, nanos: u64) {
        if self.sketch.is_empty() && self.exact.len() < EXACT_UP_TO {
            self.exact.push(nanos);
        } else {
            self.spill();
            self.add_to_bin(bucket_of(nanos), 1);
        }
    }

    fn add_to_bin(&mut self, bin: u16, count: u64) {
        match self.sketch.binary_search_by_key(&bin, |&(b, _)| b) {
            Ok(at) => self.sketch[at].1 += count,
            Err(at) => self.sketch.insert(at, (bin, count)),
        }
    }

    /// Moves the exact values into the histogram.
    fn spill(&mut self) {
        let exact = std::mem::take(&mut self.exact);
        for nanos in exact {
            self.add_to_bin(bucket_of(nanos), 1);
        }
    }

    pub fn merge(&mut self, other: &Latencies) {
        if self.sketch.is_empty()
            && other.sketch.is_empty()
            && self.exact.len() + other.exact.len() <= EXACT_UP_TO
        {
            self.exact.extend_from_slice(&other.exact);
            return;
        }
        self.spill();
        for &nanos in &other.exact {
            self.add_to_bin(bucket_of(nanos), 1);
        }
        for &(bin, count) in &other.sketch {
            self.add_to_bin(bin, count);
        }
    }

    /// Adds the durations of a rolled-up cell ([`Packed`]), as [`Self::merge`] does.
    fn merge_packed(&mut self, exact: &[u64], bins: &[(u16, u32)]) {
        if self.sketch.is_empty()
            && bins.is_empty()
            && self.exact.len() + exact.len() <= EXACT_UP_TO
        {
            self.exact.extend_from_slice(exact);
            return;
        }
        self.spill();
        for &nanos in exact {
            self.add_to_bin(bucket_of(nanos), 1);
        }
        for &(bin, count) in bins {
            self.add_to_bin(bin, u64::from(count));
        }
    }

    /// The `q` quantile (0..=1) by nearest rank, in ns; `None` without spans.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count);
        if self.sketch.is_empty() {
            let mut sorted = self.exact.clone();
            sorted.sort_unstable();
            return sorted.get(rank as usize - 1).copied();
        }
        let mut seen = 0;
        for &(bin, n) in &self.sketch {
            seen += n;
            if seen >= rank {
                return Some(value_of(bin));
            }
        }
        self.sketch.last().map(|&(bin, _)| value_of(bin))
    }
}

/// What one bucket of one series counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub calls: u64,
    pub errors: u64,
    pub latencies: Latencies,
}

impl Cell {
    pub fn merge(&mut self, other: &Cell) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latencies.merge(&other.latencies);
    }
}

/// One service's (or operation's) buckets, in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub service: String,
    /// The span name, when grouped by operation.
    pub operation: Option<String>,
    pub cells: Vec<Cell>,
}

/// Every series a [`MetricsQuery`] finds, by service then operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanMetrics {
    pub series: Vec<Series>,
}

impl SpanMetrics {
    /// Adds what another part of the data counted for the same query.
    pub fn merge(&mut self, other: SpanMetrics) {
        let mut at: HashMap<(String, Option<String>), usize> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.service.clone(), s.operation.clone()), i))
            .collect();
        for series in other.series {
            let key = (series.service.clone(), series.operation.clone());
            match at.get(&key) {
                Some(&i) => {
                    let cells = &mut self.series[i].cells;
                    for (mine, theirs) in cells.iter_mut().zip(&series.cells) {
                        mine.merge(theirs);
                    }
                }
                None => {
                    at.insert(key, self.series.len());
                    self.series.push(series);
                }
            }
        }
        self.series
            .sort_by(|a, b| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)));
    }
}

/// The columns of one block of documents.
#[derive(Default)]
struct Block {
    starts: Vec<Option<u64>>,
    durations: Vec<Option<u64>>,
    errors: Vec<Option<u64>>,
    parents: Vec<Option<u64>>,
}

impl Block {
    fn read(
        &mut self,
        docs: &[DocId],
        starts: &Column<u64>,
        durations: &Column<u64>,
        errors: Option<&Column<u64>>,
        parents: Option<&Column<u64>>,
    ) {
        let fill = |out: &mut Vec<Option<u64>>, column: Option<&Column<u64>>| {
            out.clear();
            out.resize(docs.len(), None);
            if let Some(column) = column {
                column.first_vals(docs, out);
            }
        };
        fill(&mut self.starts, Some(starts));
        fill(&mut self.durations, Some(durations));
        fill(&mut self.errors, errors);
        fill(&mut self.parents, parents);
    }
}

/// An operation term split into its parts.
fn parts(term: &str) -> Option<(&str, &str, &str)> {
    let (service, rest) = term.split_once('\0')?;
    let (kind, name) = rest.split_once('\0')?;
    Some((service, kind, name))
}

impl SignalIndex {
    /// Counts requests, errors and durations per service (or operation) and
    /// bucket.
    pub(super) fn span_metrics(
        &self,
        schema: &SpanSchema,
        query: &MetricsQuery,
        cancel: &Cancel,
    ) -> Result<SpanMetrics, StoreError> {
        let (start, end) = (query.start, query.end().saturating_sub(1));
        let splits: Vec<_> = self
            .splits()
            .into_iter()
            .filter(|split| split.meta().overlaps(start, end))
            .collect();
        // Each split's operation terms of the services asked for.
        let wanted = |service: &str| {
            query.services.is_empty() || query.services.iter().any(|s| s == service)
        };
        let mut terms: Vec<BTreeSet<String>> = Vec::with_capacity(splits.len());
        for split in &splits {
            cancel.check()?;
            let mut here = BTreeSet::new();
            for_each_term(split, schema.operation, |term| {
                if parts(term).is_some_and(|(service, _, _)| wanted(service)) {
                    here.insert(term.to_string());
                }
            })?;
            terms.push(here);
        }
        // Which kinds count, per service: those asked for; else server and
        // consumer where the service has them, else its root spans.
        let requests = [SpanKind::Server.as_jaeger(), SpanKind::Consumer.as_jaeger()];
        let mut served: BTreeSet<&str> = BTreeSet::new();
        for term in terms.iter().flatten() {
            if let Some((service, kind, _)) = parts(term) {
                if requests.contains(&kind) {
                    served.insert(service);
                }
            }
        }
        // Term -> whether only its root spans count; terms not listed do not count.
        let counted = |term: &str| -> Option<bool> {
            let (service, kind, _) = parts(term)?;
            if !query.kinds.is_empty() {
                return query
                    .kinds
                    .iter()
                    .any(|k| k.as_jaeger() == kind)
                    .then_some(false);
            }
            if served.contains(service) {
                return requests.contains(&kind).then_some(false);
            }
            Some(true)
        };

        let keys: BTreeSet<(&str, Option<&str>)> = terms
            .iter()
            .flatten()
            .filter(|term| counted(term).is_some())
            .filter_map(|term| parts(term))
            .map(|(service, _, name)| (service, query.by_operation.then_some(name)))
            .collect();
        if keys.len().saturating_mul(query.buckets) > MAX_CELLS {
            return Err(StoreError::TooBig(format!(
                "{} series of {} points each is more than the {MAX_CELLS} points an answer \
                 holds: ask for fewer services or operations, a shorter range or a longer step",
                keys.len(),
                query.buckets
            )));
        }
        // Splits are counted on up to four threads (each its own cells), then
        // summed.
        let next = AtomicUsize::new(0);
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(splits.len().max(1));
        let count = || -> Result<Counted, StoreError> {
            let mut series = Counted::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (Some(split), Some(terms)) = (splits.get(i), terms.get(i)) else {
                    return Ok(series);
                };
                count_split(schema, query, split, terms, &counted, &mut series, cancel)?;
            }
        };
        let parts: Vec<Result<Counted, StoreError>> = if workers == 1 {
            vec![count()]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..workers).map(|_| scope.spawn(count)).collect();
                handles
                    .into_iter()
                    .map(|handle| {
                        handle.join().unwrap_or_else(|_| {
                            Err(StoreError::Corrupt("a span-metrics worker panicked".into()))
                        })
                    })
                    .collect()
            })
        };
        let mut series = Counted::new();
        for part in parts {
            for (key, cells) in part? {
                match series.entry(key) {
                    Entry::Occupied(mut known) => {
                        for (mine, theirs) in known.get_mut().iter_mut().zip(&cells) {
                            mine.merge(theirs);
                        }
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(cells);
                    }
                }
            }
        }
        // A service whose spans here are none of the kinds counted has no series.
        let mut series: Vec<Series> = series
            .into_iter()
            .filter(|(_, cells)| cells.iter().any(|cell| cell.calls > 0))
            .map(|((service, operation), cells)| Series {
                service,
                operation,
                cells,
            })
            .collect();
        series.sort_by(|a, b| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)));
        Ok(SpanMetrics { series })
    }
}

/// A series: its service, and its operation when grouped by operation.
type SeriesKey = (String, Option<String>);

/// Cells per series.
type Counted = HashMap<SeriesKey, Vec<Cell>>;

/// Adds the spans of `split` that `terms` (its operation terms) find, and
/// `counted` counts, to `series`: from each segment's rollup when the question's
/// buckets are whole cells of it, else from the columns.
fn count_split(
    schema: &SpanSchema,
    query: &MetricsQuery,
    split: &Split,
    terms: &BTreeSet<String>,
    counted: &(dyn Fn(&str) -> Option<bool> + Sync),
    series: &mut Counted,
    cancel: &Cancel,
) -> Result<(), StoreError> {
    let (start, end) = (query.start, query.end().saturating_sub(1));
    let searcher = split.reader.searcher();
    let within = split.meta().within(start, end);
    // The counted terms, each with whether only its root spans count and the
    // key of its series.
    let mut keys: Vec<(&str, bool, SeriesKey)> = Vec::new();
    for term in terms {
        let (Some(roots_only), Some((service, _, name))) = (counted(term), parts(term)) else {
            continue;
        };
        let key = (
            service.to_string(),
            query.by_operation.then(|| name.to_string()),
        );
        series
            .entry(key.clone())
            .or_insert_with(|| vec![Cell::default(); query.buckets]);
        keys.push((term.as_str(), roots_only, key));
    }
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        cancel.check()?;
        let ord = ord as SegmentOrdinal;
        if let Some(rollup) = rollup_of(schema, split, &searcher, ord, query, cancel)? {
            for (term, roots_only, key) in &keys {
                if let Some(cells) = series.get_mut(key) {
                    rollup.add_to(term, *roots_only, query, cells);
                }
            }
            continue;
        }
        for (term, roots_only, key) in &keys {
            let mut clauses: Vec<Box<dyn Query>> = vec![Box::new(TermQuery::new(
                Term::from_field_text(schema.operation, term),
                IndexRecordOption::Basic,
            ))];
            if !within {
                clauses.push(u64_range(schema.start, Some(start), Some(end)));
            }
            let weight =
                all_of(clauses).weight(EnableScoring::disabled_from_searcher(&searcher))?;
            let Some(cells) = series.get_mut(key) else {
                continue;
            };
            scan_segment(
                split,
                &searcher,
                ord,
                segment,
                &*weight,
                *roots_only,
                cancel,
                |at, error, duration, root| {
                    if *roots_only && !root {
                        return;
                    }
                    let Some(i) = at
                        .checked_sub(query.start)
                        .map(|offset| (offset / query.step) as usize)
                        .filter(|&i| i < cells.len())
                    else {
                        return;
                    };
                    let cell = &mut cells[i];
                    cell.calls += 1;
                    cell.errors += u64::from(error);
                    cell.latencies.add(duration);
                },
            )?;
        }
    }
    Ok(())
}

/// Calls `each(start, error, duration, root)` for every live span of segment
/// `ord` that `weight` matches, reading the columns a block of documents at a
/// time. The parent column is read only with `parents` (else every span is
/// called a root).
#[allow(clippy::too_many_arguments)]
fn scan_segment(
    split: &Split,
    searcher: &Searcher,
    ord: SegmentOrdinal,
    segment: &SegmentReader,
    weight: &dyn Weight,
    parents: bool,
    cancel: &Cancel,
    mut each: impl FnMut(u64, bool, u64, bool),
) -> Result<(), StoreError> {
    let column = |name| split.u64_column(searcher, ord, name);
    let starts = column(columns::START)?;
    let durations = column(columns::DURATION)?;
    let parents = if parents {
        Some(column(columns::PARENT_ID)?)
    } else {
        None
    };
    let errors = column(columns::ERROR).ok();
    let alive = segment.alive_bitset();
    let mut seen = 0usize;
    let mut stopped = false;
    let mut block = Block::default();
    weight.for_each_no_score(segment, &mut |docs| {
        seen += docs.len();
        if seen / CHECK_EVERY != (seen - docs.len()) / CHECK_EVERY {
            stopped = stopped || cancel.stopped().is_some();
        }
        if stopped {
            return;
        }
        block.read(docs, &starts, &durations, errors.as_ref(), parents.as_ref());
        for (k, &doc) in docs.iter().enumerate() {
            if alive.is_some_and(|alive| !alive.is_alive(doc)) {
                continue;
            }
            let Some(at) = block.starts[k] else {
                continue;
            };
            each(
                at,
                block.errors[k] == Some(1),
                block.durations[k].unwrap_or(0),
                block.parents[k].unwrap_or(0) == 0,
            );
        }
    })?;
    cancel.check()
}

/// The widths of a rollup's cells, in seconds: a segment takes the first that
/// cuts its time range into at most [`ROLLUP_CELLS`].
const RESOLUTIONS: [u64; 12] = [
    60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400,
];
const ROLLUP_CELLS: u64 = 64;
/// Cells (operation terms times time cells) past which a segment is not rolled
/// up but scanned for each question.
const MAX_ROLLUP_CELLS: usize = 20_000;

/// What service health needs of one segment's spans: per operation term and
/// per cell of `resolution` ns (cell `i` starts at `(first + i) * resolution`),
/// the calls, errors and durations of all its spans and of its root spans.
/// Segments never change, so a rollup is made once, on the first question that
/// can use it; a question can when its start and step are whole cells, and then
/// reads cells instead of spans.
#[derive(Debug)]
pub(super) struct SegmentRollup {
    resolution: u64,
    first: u64,
    terms: HashMap<String, Rolled>,
    /// About what it holds in memory.
    bytes: usize,
}

/// One operation term's cells: of all its spans, and of its root spans when
/// they are not all of them (`None`: every span is a root).
#[derive(Debug)]
struct Rolled {
    all: Box<[Packed]>,
    roots: Option<Box<[Packed]>>,
}

/// A rolled-up cell as it is kept: exactly sized, a bin's count in 4 bytes (a
/// segment holds fewer than 2^32 documents). A [`Cell`]'s vectors grow by doubling
/// and a bin takes 16 bytes: kept as they were built, the cells held twice the bytes
/// their bins need and up to as many again spare, and a split at full load keeps a
/// rollup per segment of 360,000 spans (see `MAX_DOCS_BEFORE_MERGE`).
#[derive(Debug)]
struct Packed {
    calls: u64,
    errors: u64,
    exact: Box<[u64]>,
    bins: Box<[(u16, u32)]>,
}

impl Packed {
    fn of(cell: Cell) -> Packed {
        Packed {
            calls: cell.calls,
            errors: cell.errors,
            exact: cell.latencies.exact.into_boxed_slice(),
            bins: cell
                .latencies
                .sketch
                .into_iter()
                .map(|(bin, count)| (bin, u32::try_from(count).unwrap_or(u32::MAX)))
                .collect(),
        }
    }

    fn add_to(&self, cell: &mut Cell) {
        cell.calls += self.calls;
        cell.errors += self.errors;
        cell.latencies.merge_packed(&self.exact, &self.bins);
    }

    fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.exact) + std::mem::size_of_val(&*self.bins)
    }
}

impl SegmentRollup {
    /// Whether `query`'s buckets are whole cells of this rollup.
    fn serves(&self, query: &MetricsQuery) -> bool {
        whole_cells(query, self.resolution)
    }

    /// Adds the cells of `term` (its root spans' only, with `roots_only`) to
    /// the question's `cells`.
    fn add_to(&self, term: &str, roots_only: bool, query: &MetricsQuery, cells: &mut [Cell]) {
        let Some(rolled) = self.terms.get(term) else {
            return;
        };
        let chosen = match (&rolled.roots, roots_only) {
            (Some(roots), true) => roots,
            _ => &rolled.all,
        };
        for (i, cell) in chosen.iter().enumerate() {
            let at = (self.first + i as u64) * self.resolution;
            let Some(bucket) = at
                .checked_sub(query.start)
                .map(|offset| (offset / query.step) as usize)
                .filter(|&bucket| bucket < cells.len())
            else {
                continue;
            };
            cell.add_to(&mut cells[bucket]);
        }
    }
}

/// Bytes the rollups of all segments may hold, in this process: past it, the
/// least recently used go.
pub const ROLLUP_BUDGET: usize = 128 << 20;

/// The rollups of every segment of the process (of every index, tenant and
/// split, and the cluster's searches over them), by segment and its deletions,
/// least recently used first out. `None`: the segment is scanned (too many cells
/// to roll up).
type Rollups = Lru<(SegmentId, u32), Option<Arc<SegmentRollup>>>;

static ROLLUPS: LazyLock<Mutex<Rollups>> = LazyLock::new(|| Mutex::new(Lru::new(ROLLUP_BUDGET)));

/// Keeps the rollup of a segment (`None`: it is scanned), counting what it holds
/// and its entry.
fn keep(rollups: &mut Rollups, key: (SegmentId, u32), rollup: Option<Arc<SegmentRollup>>) {
    let bytes = rollup.as_ref().map_or(0, |rollup| rollup.bytes) + 64;
    rollups.insert(key, rollup, bytes);
}

/// The bytes the rollups of every segment hold now.
pub(super) fn held_bytes() -> usize {
    ROLLUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .bytes()
}

/// Drops the rollups of `segment`, merged away.
pub(super) fn forget(segment: SegmentId) {
    ROLLUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .forget(|(id, _)| *id == segment);
}

/// Whether segment `id` (with no deletions) has a rollup.
#[cfg(test)]
pub(super) fn rolled_up(id: SegmentId) -> bool {
    ROLLUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(id, 0))
        .is_some_and(|rollup| rollup.is_some())
}

/// The rollup of segment `ord` if `query` can use it, made on first use.
fn rollup_of(
    schema: &SpanSchema,
    split: &Split,
    searcher: &Searcher,
    ord: SegmentOrdinal,
    query: &MetricsQuery,
    cancel: &Cancel,
) -> Result<Option<Arc<SegmentRollup>>, StoreError> {
    let segment = searcher.segment_reader(ord);
    let key = (segment.segment_id(), segment.num_deleted_docs());
    let known = ROLLUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key);
    if let Some(known) = known {
        return Ok(known.filter(|rollup| rollup.serves(query)));
    }
    // Made only for a question that can use it.
    let starts = split.u64_column(searcher, ord, columns::START)?;
    let resolution = resolution_of(&starts);
    if !whole_cells(query, resolution) {
        return Ok(None);
    }
    let rollup = roll_up(schema, split, searcher, ord, cancel)?.map(Arc::new);
    keep(
        &mut ROLLUPS.lock().unwrap_or_else(PoisonError::into_inner),
        key,
        rollup.clone(),
    );
    Ok(rollup.filter(|rollup| rollup.serves(query)))
}

/// Whether `query`'s buckets are whole cells `resolution` ns wide (so its
/// range too, which is whole buckets).
fn whole_cells(query: &MetricsQuery, resolution: u64) -> bool {
    query.start.is_multiple_of(resolution) && query.step.is_multiple_of(resolution)
}

/// The width of the cells of a segment's rollup, ns: the first of
/// [`RESOLUTIONS`] that cuts the time its spans started in into at most
/// [`ROLLUP_CELLS`].
fn resolution_of(starts: &Column<u64>) -> u64 {
    let seconds = starts.max_value().saturating_sub(starts.min_value()) / 1_000_000_000;
    let width = RESOLUTIONS
        .iter()
        .copied()
        .find(|&width| seconds / width < ROLLUP_CELLS)
        .unwrap_or(RESOLUTIONS[RESOLUTIONS.len() - 1]);
    width * 1_000_000_000
}

/// Rolls up every span of segment `ord`, per operation term and cell; `None`
/// when that makes more than [`MAX_ROLLUP_CELLS`] cells.
fn roll_up(
    schema: &SpanSchema,
    split: &Split,
    searcher: &Searcher,
    ord: SegmentOrdinal,
    cancel: &Cancel,
) -> Result<Option<SegmentRollup>, StoreError> {
    let segment = searcher.segment_reader(ord);
    let starts = split.u64_column(searcher, ord, columns::START)?;
    let (min, max) = (starts.min_value(), starts.max_value());
    let resolution = resolution_of(&starts);
    let (first, last) = (min / resolution, max / resolution);
    let width = (last - first + 1) as usize;
    // The segment's own operation terms (the split's others have no span here).
    let mut terms: Vec<String> = Vec::new();
    let inverted = segment.inverted_index(schema.operation)?;
    let mut stream = inverted.terms().stream()?;
    while stream.advance() {
        if let Ok(term) = std::str::from_utf8(stream.key()) {
            terms.push(term.to_string());
        }
    }
    if terms.len().saturating_mul(width) > MAX_ROLLUP_CELLS {
        return Ok(None);
    }
    let mut rolled = HashMap::new();
    for term in terms {
        let query = TermQuery::new(
            Term::from_field_text(schema.operation, &term),
            IndexRecordOption::Basic,
        );
        let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
        let mut cells: Vec<(Cell, Cell)> = Vec::new();
        scan_segment(
            split,
            searcher,
            ord,
            segment,
            &*weight,
            true,
            cancel,
            |at, error, duration, root| {
                if cells.is_empty() {
                    cells = vec![(Cell::default(), Cell::default()); width];
                }
                let Some((all, roots)) = cells.get_mut((at / resolution - first) as usize) else {
                    return;
                };
                let add = |cell: &mut Cell| {
                    cell.calls += 1;
                    cell.errors += u64::from(error);
                    cell.latencies.add(duration);
                };
                add(all);
                if root {
                    add(roots);
                }
            },
        )?;
        if !cells.is_empty() {
            let every_span_a_root = cells.iter().all(|(all, roots)| all.calls == roots.calls);
            let (all, roots): (Vec<Cell>, Vec<Cell>) = cells.into_iter().unzip();
            let pack =
                |cells: Vec<Cell>| -> Box<[Packed]> { cells.into_iter().map(Packed::of).collect() };
            let roots = (!every_span_a_root).then(|| pack(roots));
            rolled.insert(
                term,
                Rolled {
                    all: pack(all),
                    roots,
                },
            );
        }
    }
    let bytes = rolled
        .iter()
        .map(|(term, rolled)| {
            let cells = |cells: &[Packed]| -> usize {
                cells
                    .iter()
                    .map(|cell| std::mem::size_of::<Packed>() + cell.heap_bytes())
                    .sum()
            };
            term.len() + cells(&rolled.all) + rolled.roots.as_deref().map_or(0, cells)
        })
        .sum();
    Ok(Some(SegmentRollup {
        resolution,
        first,
        terms: rolled,
        bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_exact_while_few_and_within_one_percent_after() {
        let mut few = Latencies::default();
        for ms in [5u64, 1, 4, 2, 3] {
            few.add(ms * 1_000_000);
        }
        assert_eq!(few.quantile(0.5), Some(3_000_000));
        assert_eq!(few.quantile(0.95), Some(5_000_000));
        assert_eq!(few.quantile(0.0), Some(1_000_000));

        let mut many = Latencies::default();
        let mut other = Latencies::default();
        for n in 1..=10_000u64 {
            if n % 3 == 0 {
                other.add(n * 1_000);
            } else {
                many.add(n * 1_000);
            }
        }
        many.merge(&other);
        assert_eq!(many.count(), 10_000);
        for (q, exact) in [(0.5, 5_000_000.0), (0.95, 9_500_000.0), (0.99, 9_900_000.0)] {
            let got = many.quantile(q).expect("spans") as f64;
            assert!(
                (got - exact).abs() / exact <= 0.01,
                "p{q}: {got} against {exact}"
            );
        }
        assert_eq!(Latencies::default().quantile(0.5), None);
    }

    #[test]
    fn rollups_stay_within_their_budget_and_the_least_recently_used_go() {
        let rollup = |bytes| {
            Some(Arc::new(SegmentRollup {
                resolution: 60_000_000_000,
                first: 0,
                terms: HashMap::new(),
                bytes,
            }))
        };
        let mut cache = Lru::new(ROLLUP_BUDGET);
        let ids: Vec<SegmentId> = (0..4).map(|_| SegmentId::generate_random()).collect();
        let third = ROLLUP_BUDGET / 3;
        keep(&mut cache, (ids[0], 0), rollup(third));
        keep(&mut cache, (ids[1], 0), rollup(third));
        // Used: the second is now the least recently used.
        assert!(cache.get(&(ids[0], 0)).is_some());
        keep(&mut cache, (ids[2], 0), rollup(third));
        assert!(cache.bytes() <= ROLLUP_BUDGET);
        assert!(
            cache.get(&(ids[1], 0)).is_none(),
            "the least recently used stayed"
        );
        assert!(cache.get(&(ids[0], 0)).is_some() && cache.get(&(ids[2], 0)).is_some());
        // One larger than the budget is not kept, and drives nothing out.
        keep(&mut cache, (ids[3], 0), rollup(ROLLUP_BUDGET + 1));
        assert!(cache.get(&(ids[3], 0)).is_none());
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.held(), cache.bytes());
    }

    #[test]
    fn the_rollup_of_a_segment_merged_away_is_dropped() {
        let segment = SegmentId::generate_random();
        let rollup = Arc::new(SegmentRollup {
            resolution: 60_000_000_000,
            first: 0,
            terms: HashMap::new(),
            bytes: 1000,
        });
        let lock = || ROLLUPS.lock().unwrap_or_else(PoisonError::into_inner);
        keep(&mut lock(), (segment, 0), Some(rollup));
        assert!(rolled_up(segment));
        forget(segment);
        assert!(!rolled_up(segment));
    }

    #[test]
    fn series_of_two_parts_merge_cell_by_cell() {
        let cell = |calls, errors| Cell {
            calls,
            errors,
            latencies: Latencies::default(),
        };
        let series = |service: &str, cells| Series {
            service: service.into(),
            operation: None,
            cells,
        };
        let mut here = SpanMetrics {
            series: vec![series("b", vec![cell(1, 0), cell(2, 1)])],
        };
        here.merge(SpanMetrics {
            series: vec![
                series("b", vec![cell(3, 1), cell(0, 0)]),
                series("a", vec![cell(5, 5), cell(0, 0)]),
            ],
        });
        let got: Vec<(&str, Vec<(u64, u64)>)> = here
            .series
            .iter()
            .map(|s| {
                (
                    s.service.as_str(),
                    s.cells.iter().map(|c| (c.calls, c.errors)).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [("a", vec![(5, 5), (0, 0)]), ("b", vec![(4, 1), (2, 1)])]
        );
    }
}
