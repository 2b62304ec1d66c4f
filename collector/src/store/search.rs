//! Searches over committed splits. Everything here is synchronous and CPU- or
//! I/O-bound: callers run it on the blocking pool.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tantivy::collector::{Collector, DocSetCollector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, EnableScoring, Occur, PhraseQuery, Query, RangeQuery,
    TermQuery, TermSetQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::tokenizer::{TextAnalyzer, TokenizerManager};
use tantivy::{
    BitSet, DocAddress, DocId, DocSet, Score, Searcher, SegmentOrdinal, SegmentReader,
    TantivyDocument, Term, TERMINATED,
};

use super::error::StoreError;
use super::filter::TraceIdFilter;
use super::origin::{Origin, Origins};
use super::pattern;
use super::red::Latencies;
use super::schema::{columns, LogSchema, SpanColumns, SpanSchema};
use super::split::Split;
use super::terms::{operation_term, tag_term};
use super::traceids::TraceIdColumn;
use super::{Records, SignalIndex};
use crate::model::{LogRecord, Signal, Span, SpanId, SpanKind, TraceId};

/// Why a search stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Whoever asked went away (the HTTP client hung up).
    ClientGone,
    /// It ran past its time limit.
    TimedOut,
}

/// Lets a search be stopped from outside: searches check it between splits,
/// segments and every few hundred documents, and return [`StoreError::Cancelled`].
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    /// 0: go on; otherwise a [`Stop`] + 1.
    stop: AtomicU8,
    deadline: Option<Instant>,
}

impl Cancel {
    /// A search that stops by itself at `deadline`.
    pub fn with_deadline(deadline: Instant) -> Self {
        Cancel(Arc::new(CancelState {
            stop: AtomicU8::new(0),
            deadline: Some(deadline),
        }))
    }

    pub fn stop(&self, why: Stop) {
        let code = match why {
            Stop::ClientGone => 1,
            Stop::TimedOut => 2,
        };
        let _ = self
            .0
            .stop
            .compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether, and why, the search should stop now.
    pub fn stopped(&self) -> Option<Stop> {
        match self.0.stop.load(Ordering::Relaxed) {
            1 => Some(Stop::ClientGone),
            2 => Some(Stop::TimedOut),
            _ => self
                .0
                .deadline
                .filter(|deadline| Instant::now() >= *deadline)
                .map(|_| Stop::TimedOut),
        }
    }

    /// `Err` once the search should stop.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.stopped() {
            Some(why) => Err(StoreError::Cancelled(why)),
            None => Ok(()),
        }
    }
}

/// The most log records of one time a cursor page orders (their keys are read).
pub const MAX_TIES: usize = 50_000;

/// How often (in documents) long loops look at their [`Cancel`].
pub(super) const CHECK_EVERY: usize = 256;

/// The spans of one trace as a lookup returns them.
#[derive(Debug, Default)]
pub struct TraceSpans {
    /// The earliest spans by start time, at most the lookup's cap, in start order.
    pub spans: Vec<Span>,
    /// How many span documents the trace has in all (before the cap).
    pub total: usize,
}

impl TraceSpans {
    pub fn is_cut(&self) -> bool {
        self.total > self.spans.len()
    }
}

/// Which spans select a trace: every given criterion must hold for one span.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TraceFilter {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub span_kind: Option<SpanKind>,
    pub tags: Vec<(String, String)>,
    /// Span start range, ns since the epoch, inclusive.
    pub start_min: u64,
    pub start_max: u64,
    pub duration_min: Option<u64>,
    pub duration_max: Option<u64>,
    pub limit: usize,
    /// Which of the matching traces come first.
    pub order: TraceOrder,
    /// Where the previous page ended: this page holds the traces after it.
    #[serde(default)]
    pub after: Option<TraceCursor>,
    /// A [pattern](super::pattern) of span names (`GET /users/<num>`), by id:
    /// the span's name is one of `operations`, the names of that pattern (the
    /// query layer finds them; none found, nothing matches).
    #[serde(default)]
    pub operation_pattern: Option<u64>,
    #[serde(default)]
    pub operations: Vec<String>,
}

/// How a trace search orders the traces that match, all of them in the window,
/// before the first `limit` are taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TraceOrder {
    /// By the start of the trace's newest matching span, newest first.
    #[default]
    Newest,
    /// By the start of the trace's oldest matching span, oldest first.
    Oldest,
    /// By the trace's duration, longest first.
    Longest,
    /// By the trace's duration, shortest first.
    Shortest,
    /// By the trace's span count, most first.
    MostSpans,
    /// By the trace's spans with an error status, most first.
    MostErrors,
}

impl TraceOrder {
    /// Whether the order needs what a trace is as a whole (its duration, spans,
    /// errors), not only its matching spans.
    pub fn needs_whole_traces(self) -> bool {
        !matches!(self, TraceOrder::Newest | TraceOrder::Oldest)
    }

    /// Where `hit` stands in this order: hits sort by it, smallest first. Ties of
    /// the order's figure go to the newer trace, then the smaller id, so no two
    /// traces share a place.
    pub fn place(self, hit: &TraceHit) -> TracePlace {
        let desc = |value: u64| u64::MAX - value;
        let (figure, newest) = match self {
            TraceOrder::Newest => (desc(hit.newest), 0),
            TraceOrder::Oldest => (hit.oldest, 0),
            TraceOrder::Longest => (desc(hit.duration()), desc(hit.newest)),
            TraceOrder::Shortest => (hit.duration(), desc(hit.newest)),
            TraceOrder::MostSpans => (desc(u64::from(hit.spans)), desc(hit.newest)),
            TraceOrder::MostErrors => (desc(u64::from(hit.errors)), desc(hit.newest)),
        };
        TracePlace {
            figure,
            newest,
            id: hit.id,
        }
    }

    /// Sorts `hits` into this order.
    pub fn sort(self, hits: &mut [TraceHit]) {
        hits.sort_by_cached_key(|hit| self.place(hit));
    }

    /// The order a word of `sort=` names: the pages' words, Jaeger UI's sort
    /// keys and the words people use, in any case.
    pub fn from_word(word: &str) -> Option<TraceOrder> {
        Some(match word.to_ascii_lowercase().as_str() {
            "recent" | "newest" | "most_recent" => TraceOrder::Newest,
            "oldest" => TraceOrder::Oldest,
            "longest" | "duration" | "longest_first" => TraceOrder::Longest,
            "shortest" | "shortest_first" => TraceOrder::Shortest,
            "spans" | "most_spans" => TraceOrder::MostSpans,
            "errors" | "most_errors" => TraceOrder::MostErrors,
            _ => return None,
        })
    }

    /// The word of `sort=` that names this order.
    pub fn word(self) -> &'static str {
        match self {
            TraceOrder::Newest => "recent",
            TraceOrder::Oldest => "oldest",
            TraceOrder::Longest => "longest",
            TraceOrder::Shortest => "shortest",
            TraceOrder::MostSpans => "spans",
            TraceOrder::MostErrors => "errors",
        }
    }
}

/// A trace's place in a [`TraceOrder`]: smaller comes first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TracePlace {
    figure: u64,
    newest: u64,
    id: TraceId,
}

/// Where a page of a trace search ended: its order, its time window (pinned by
/// the first page, so a relative `lookback` does not slide under the pages) and
/// the place of its last trace. The next page holds the traces placed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TraceCursor {
    pub order: TraceOrder,
    pub start_min: u64,
    pub start_max: u64,
    pub last: TracePlace,
}

impl TraceCursor {
    /// The cursor as a client passes it back (`cursor=`): opaque to them.
    pub fn encode(&self) -> String {
        format!(
            "{}-{}-{}-{:016x}-{:016x}-{}",
            self.order.word(),
            self.start_min,
            self.start_max,
            self.last.figure,
            self.last.newest,
            self.last.id.to_hex()
        )
    }

    pub fn decode(text: &str) -> Option<TraceCursor> {
        let mut parts = text.split('-');
        let order = TraceOrder::from_word(parts.next()?)?;
        let start_min = parts.next()?.parse().ok()?;
        let start_max = parts.next()?.parse().ok()?;
        let mut hex = || {
            let part = parts.next().filter(|part| part.len() == 16)?;
            u64::from_str_radix(part, 16).ok()
        };
        let (figure, newest) = (hex()?, hex()?);
        let id = TraceId::from_hex(parts.next().filter(|id| id.len() == 32)?).ok()?;
        (parts.next().is_none() && start_min <= start_max).then_some(TraceCursor {
            order,
            start_min,
            start_max,
            last: TracePlace { figure, newest, id },
        })
    }
}

/// What a search knows of one matching trace, read from columns only: enough to
/// order it. The whole-trace figures count the trace's spans that started in the
/// search's window, and are filled only for orders that need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TraceHit {
    pub id: TraceId,
    /// The start of its newest and of its oldest matching span, ns.
    pub newest: u64,
    pub oldest: u64,
    /// The earliest start and the latest end of its spans, ns.
    pub first_start: u64,
    pub last_end: u64,
    pub spans: u32,
    pub errors: u32,
}

impl TraceHit {
    fn new(id: TraceId, start: u64) -> Self {
        TraceHit {
            id,
            newest: start,
            oldest: start,
            first_start: u64::MAX,
            last_end: 0,
            spans: 0,
            errors: 0,
        }
    }

    /// The trace's duration, ns (0 when its spans were not read).
    pub fn duration(&self) -> u64 {
        self.last_end.saturating_sub(self.first_start)
    }

    /// Adds what another part of the data knows of the same trace.
    pub fn merge(&mut self, other: &TraceHit) {
        self.newest = self.newest.max(other.newest);
        self.oldest = self.oldest.min(other.oldest);
        self.first_start = self.first_start.min(other.first_start);
        self.last_end = self.last_end.max(other.last_end);
        self.spans = self.spans.saturating_add(other.spans);
        self.errors = self.errors.saturating_add(other.errors);
    }
}

/// The traces a search matched.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TraceHits {
    /// Every matching trace, unordered; or, when more than
    /// [`MAX_MATCHING_TRACES`] match, only the `limit` newest.
    pub hits: Vec<TraceHit>,
    /// How many traces matched in all; `None` when more than
    /// [`MAX_MATCHING_TRACES`] did.
    pub total: Option<usize>,
}

/// Matching traces a search holds at once to count and order them (about 80 bytes
/// each: the hit, and its place in the map): past it, a search answers only newest
/// first, without a total.
pub const MAX_MATCHING_TRACES: usize = 200_000;

/// Matching traces by id (its halves), hashed with a fast keyed
/// hash: a trace search inserts every matching span.
type TraceMap<V> = HashMap<(u64, u64), V, foldhash::fast::RandomState>;

/// The traces a search matched, in the order it found them, and where each one
/// is. The map holds 4-byte places rather than the hits: it is looked up for every
/// matching span and grows as it goes, and growing it moved whole hits (7% of an
/// idle trace search's CPU went to rehashing).
#[derive(Default)]
struct Matches {
    places: TraceMap<u32>,
    hits: Vec<TraceHit>,
}

impl Matches {
    fn get_mut(&mut self, key: &(u64, u64)) -> Option<&mut TraceHit> {
        let &place = self.places.get(key)?;
        self.hits.get_mut(place as usize)
    }
}

/// The documents a search reads columns for at once (tantivy hands matches over
/// in buffers of this size).
const BLOCK: usize = tantivy::COLLECT_BLOCK_BUFFER_LEN;

/// The levels a log volume histogram stacks, by severity number: 0 (none given),
/// 1-4, 5-8, 9-12, 13-16, 17-20, 21-24.
pub const VOLUME_LEVELS: [&str; 7] = [
    "unspecified",
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "fatal",
];

/// Log records per time bucket and level: the volume histogram of a log search.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogVolume {
    /// The first bucket's start and every bucket's length, ns.
    pub start: u64,
    pub step: u64,
    /// Per bucket, records per [`VOLUME_LEVELS`].
    pub counts: Vec<[u64; VOLUME_LEVELS.len()]>,
}

impl LogVolume {
    /// `buckets` empty buckets of `step` from `start`.
    pub fn new(start: u64, step: u64, buckets: usize) -> Self {
        LogVolume {
            start,
            step,
            counts: vec![[0; VOLUME_LEVELS.len()]; buckets],
        }
    }

    /// Adds what another part of the data counted over the same buckets.
    pub fn merge(&mut self, other: &LogVolume) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }
}

/// The [`VOLUME_LEVELS`] index of a severity number.
pub fn volume_level(severity: u64) -> usize {
    match severity {
        0 => 0,
        n => (n.min(24) as usize - 1) / 4 + 1,
    }
}

/// Distinct patterns a pattern count keeps apart; records of more are counted as
/// `uncounted`.
pub const MAX_PATTERNS: usize = 10_000;

/// The lowest severity number counted as an error (OTLP's ERROR).
pub const ERROR_SEVERITY: u64 = 17;

/// The body patterns of a log search (see [`super::pattern`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogPatterns {
    /// The first bucket's start, every bucket's length (ns) and their number.
    pub start: u64,
    pub step: u64,
    pub buckets: usize,
    /// The range compared with, ns, inclusive: it ends where the search's starts.
    pub previous_start: u64,
    pub previous_end: u64,
    /// How many of the most frequent patterns get a sample record.
    pub limit: usize,
    /// Every pattern counted, most frequent first once finished.
    pub patterns: Vec<PatternCount>,
    /// Matching records of splits older than patterns (none of them has one).
    pub unpatterned: u64,
    /// Matching records whose pattern was not counted: [`MAX_PATTERNS`] others were.
    pub uncounted: u64,
}

/// One pattern of a [`LogPatterns`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatternCount {
    pub id: u64,
    pub count: u64,
    /// Records of severity ERROR or above.
    pub errors: u64,
    /// Records in the range before.
    pub previous: u64,
    /// Records per bucket.
    pub counts: Vec<u64>,
    /// Its newest record, for the most frequent patterns.
    pub sample: Option<LogRecord>,
}

impl PatternCount {
    fn new(id: u64, buckets: usize) -> Self {
        PatternCount {
            id,
            count: 0,
            errors: 0,
            previous: 0,
            counts: vec![0; buckets],
            sample: None,
        }
    }
}

impl LogPatterns {
    pub fn new(
        start: u64,
        step: u64,
        buckets: usize,
        (previous_start, previous_end): (u64, u64),
        limit: usize,
    ) -> Self {
        LogPatterns {
            start,
            step,
            buckets,
            previous_start,
            previous_end,
            limit,
            patterns: Vec::new(),
            unpatterned: 0,
            uncounted: 0,
        }
    }

    /// Adds what other parts of the data counted with the same request (each
    /// part's patterns, in any order), keeping the newest sample of each and at
    /// most [`MAX_PATTERNS`] patterns, then orders them, most frequent first.
    pub fn merge(mut self, parts: impl IntoIterator<Item = LogPatterns>) -> Self {
        let mut by_id: HashMap<u64, PatternCount> = HashMap::new();
        let mine = std::mem::take(&mut self.patterns);
        let add = |by_id: &mut HashMap<u64, PatternCount>, count: PatternCount, this: &mut Self| {
            let full = by_id.len() >= MAX_PATTERNS;
            match by_id.entry(count.id) {
                Entry::Occupied(entry) => {
                    let sum = entry.into_mut();
                    sum.count += count.count;
                    sum.errors += count.errors;
                    sum.previous += count.previous;
                    for (a, b) in sum.counts.iter_mut().zip(&count.counts) {
                        *a += b;
                    }
                    let newer = match (&sum.sample, &count.sample) {
                        (Some(a), Some(b)) => b.time_unix_nano > a.time_unix_nano,
                        (None, Some(_)) => true,
                        _ => false,
                    };
                    if newer {
                        sum.sample = count.sample;
                    }
                }
                Entry::Vacant(_) if full => this.uncounted += count.count,
                Entry::Vacant(entry) => {
                    entry.insert(count);
                }
            }
        };
        for count in mine {
            add(&mut by_id, count, &mut self);
        }
        for part in parts {
            self.unpatterned += part.unpatterned;
            self.uncounted += part.uncounted;
            for count in part.patterns {
                add(&mut by_id, count, &mut self);
            }
        }
        self.patterns = by_id.into_values().collect();
        self.patterns
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
        self
    }
}

/// A parsed log query: what `query=` says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LogExpr {
    /// A word or `field:value`: one term (or, for body text that tokenises into
    /// several words, those words in sequence).
    Term {
        field: LogField,
        text: String,
    },
    /// `"several words"` or `field:"several words"`.
    Phrase {
        field: LogField,
        text: String,
    },
    And(Vec<LogExpr>),
    Or(Vec<LogExpr>),
    Not(Box<LogExpr>),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogField {
    Body,
    Service,
    Severity,
    TraceId,
    SpanId,
    /// A body's [`pattern`](super::pattern) id, in hex.
    Pattern,
    Attribute(String),
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogFilter {
    pub expr: Option<LogExpr>,
    pub service: Option<String>,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub min_severity: Option<i32>,
    /// Time range, ns since the epoch, inclusive.
    pub start: u64,
    pub end: u64,
    pub limit: usize,
    /// Matching records skipped before the `limit` returned (newest first): a
    /// later page of the same search, with `end` pinned.
    pub offset: usize,
    /// Where the previous page ended: this page holds the records after it.
    #[serde(default)]
    pub after: Option<LogCursor>,
}

/// A place in a log search's order, newest first: by time, then by the records'
/// [`log_key`](super::schema::log_key), then past `seen` identical records. A page
/// that starts after one never repeats or skips a record of the pages before,
/// however splits were merged or records arrived meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogCursor {
    pub time: u64,
    pub key: u64,
    /// How many records of this time and key the pages so far held.
    pub seen: u32,
}

impl LogCursor {
    /// The cursor as a client passes it back (`cursor=`): opaque to them.
    pub fn encode(&self) -> String {
        format!("{}-{:016x}-{}", self.time, self.key, self.seen)
    }

    pub fn decode(text: &str) -> Option<LogCursor> {
        let mut parts = text.split('-');
        let time = parts.next()?.parse().ok()?;
        let key = parts.next().filter(|key| key.len() == 16)?;
        let key = u64::from_str_radix(key, 16).ok()?;
        let seen = parts.next()?.parse().ok()?;
        parts
            .next()
            .is_none()
            .then_some(LogCursor { time, key, seen })
    }
}

/// The page after `cursor` (at most `limit` records, newest first) and the
/// cursor of its last record when more follow. `records`, in any order, must
/// hold every match that can be on the page and one more when there is one;
/// records at or before the cursor are dropped here.
pub fn log_page(
    records: Vec<LogRecord>,
    cursor: Option<&LogCursor>,
    limit: usize,
) -> Result<(Vec<LogRecord>, Option<LogCursor>), StoreError> {
    let mut keyed = Vec::with_capacity(records.len());
    for record in records {
        let key =
            super::schema::log_key(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        keyed.push(((record.time_unix_nano, key), record));
    }
    keyed.sort_by_key(|(place, _)| Reverse(*place));
    let mut skip = 0;
    if let Some(cursor) = cursor {
        let at = (cursor.time, cursor.key);
        keyed.retain(|(place, _)| {
            *place < at
                || (*place == at && {
                    skip += 1;
                    skip > cursor.seen
                })
        });
    }
    let more = keyed.len() > limit;
    keyed.truncate(limit);
    let next = match keyed.last() {
        Some((last, _)) if more => {
            let on_page = keyed.iter().filter(|(place, _)| place == last).count() as u32;
            let before = cursor
                .filter(|cursor| (cursor.time, cursor.key) == *last)
                .map_or(0, |cursor| cursor.seen);
            Some(LogCursor {
                time: last.0,
                key: last.1,
                seen: before + on_page,
            })
        }
        _ => None,
    };
    Ok((keyed.into_iter().map(|(_, record)| record).collect(), next))
}

/// A call between two services in the service map.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
    /// Calls whose callee span, or the caller's span it descends from (the
    /// client span), has an error status.
    pub error_count: u64,
    /// How long the calls took: the durations of the callee's spans.
    pub latencies: Latencies,
}

pub(super) fn u64_range(field: Field, min: Option<u64>, max: Option<u64>) -> Box<dyn Query> {
    let bound = |value: Option<u64>| match value {
        Some(v) => Bound::Included(Term::from_field_u64(field, v)),
        None => Bound::Unbounded,
    };
    Box::new(RangeQuery::new(bound(min), bound(max)))
}

fn u64_exact(field: Field, value: u64) -> Box<dyn Query> {
    u64_range(field, Some(value), Some(value))
}

fn text_term(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::Basic,
    ))
}

fn bytes_term(field: Field, bytes: &[u8]) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_bytes(field, bytes),
        IndexRecordOption::Basic,
    ))
}

/// Documents with the attribute term `term` (`key=value`) of their own in `field`,
/// or from their resource: the origins whose resource has it.
fn attribute_term(
    field: Field,
    origin_field: Field,
    origins: &Origins,
    term: &str,
) -> Box<dyn Query> {
    let own = text_term(field, term);
    let ids = origins.with_resource_term(term);
    if ids.is_empty() {
        return own;
    }
    let from_resource = Box::new(TermSetQuery::new(
        ids.into_iter()
            .map(|id| Term::from_field_u64(origin_field, id)),
    ));
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, own),
        (Occur::Should, from_resource),
    ]))
}

/// The origin numbered `id` of a split, or why it cannot be had.
pub(super) fn origin_of(split: &Split, id: u64) -> Result<Arc<Origin>, StoreError> {
    split.origins.get(id).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "split {}: a document refers to origin {id}, the split has {}",
            split.id,
            split.origins.len()
        ))
    })
}

pub(super) fn all_of(clauses: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    if clauses.is_empty() {
        return Box::new(AllQuery);
    }
    Box::new(BooleanQuery::new(
        clauses.into_iter().map(|q| (Occur::Must, q)).collect(),
    ))
}

pub(super) fn stored_payload(
    searcher: &Searcher,
    address: DocAddress,
    field: Field,
) -> Result<Vec<u8>, StoreError> {
    let doc: TantivyDocument = searcher.doc(address)?;
    doc.get_first(field)
        .and_then(|value| value.as_bytes().map(<[u8]>::to_vec))
        .ok_or_else(|| StoreError::Corrupt("document without payload".into()))
}

impl SignalIndex {
    /// The spans of a trace, deduplicated by span id: the `max_spans` earliest by
    /// start time, and how many there are in all. Only the spans returned are read
    /// from the document store; the rest are counted from the index and columns.
    pub(super) fn trace(
        &self,
        schema: &SpanSchema,
        trace_id: TraceId,
        max_spans: usize,
        cancel: &Cancel,
    ) -> Result<TraceSpans, StoreError> {
        // (start, split, address) of every span document of the trace.
        let mut hits: Vec<(u64, usize, DocAddress)> = Vec::new();
        let documents = self.trace_documents(schema, trace_id, cancel)?;
        for (i, (split, searcher, addresses)) in documents.iter().enumerate() {
            let mut start: Option<(SegmentOrdinal, Column<u64>)> = None;
            for (n, &address) in addresses.iter().enumerate() {
                if n.is_multiple_of(CHECK_EVERY) {
                    cancel.check()?;
                }
                let column = match &start {
                    Some((ord, column)) if *ord == address.segment_ord => column,
                    _ => {
                        let column =
                            split.u64_column(searcher, address.segment_ord, columns::START)?;
                        &start.insert((address.segment_ord, column)).1
                    }
                };
                hits.push((column.first(address.doc_id).unwrap_or(0), i, address));
            }
        }
        let total = hits.len();
        if hits.len() > max_spans {
            hits.select_nth_unstable_by_key(max_spans, |hit| (hit.0, hit.1, hit.2));
            hits.truncate(max_spans);
        }
        // Read in index order: neighbouring documents share doc store blocks.
        hits.sort_by_key(|&(_, split, address)| (split, address));
        let mut spans = Vec::with_capacity(hits.len());
        let mut seen = HashSet::new();
        let mut columns: Option<(usize, SegmentOrdinal, SpanColumnReaders)> = None;
        for (n, (_, i, address)) in hits.into_iter().enumerate() {
            if n.is_multiple_of(CHECK_EVERY) {
                cancel.check()?;
            }
            let (split, searcher, _) = &documents[i];
            let readers = match &columns {
                Some((split, ord, readers)) if *split == i && *ord == address.segment_ord => {
                    readers
                }
                _ => {
                    let readers = SpanColumnReaders::open(
                        split,
                        searcher,
                        address.segment_ord,
                        Some(trace_id),
                    )?;
                    &columns.insert((i, address.segment_ord, readers)).2
                }
            };
            let span = span_at(schema, split, searcher, readers, address)?;
            if seen.insert(span.span_id) {
                spans.push(span);
            }
        }
        spans.sort_by_key(|span| (span.start_time_unix_nano, span.span_id));
        Ok(TraceSpans { spans, total })
    }

    /// Every split (its searcher kept, so the addresses stay valid) with the
    /// addresses of trace `trace_id`'s span documents in it, in index order.
    pub(super) fn trace_documents(
        &self,
        schema: &SpanSchema,
        trace_id: TraceId,
        cancel: &Cancel,
    ) -> Result<Vec<TraceDocuments>, StoreError> {
        let query = TermQuery::new(
            Term::from_field_bytes(schema.trace_id, &trace_id.0),
            IndexRecordOption::Basic,
        );
        let mut documents = Vec::new();
        for split in self.splits() {
            cancel.check()?;
            if !split.may_hold_trace(&trace_id) {
                continue;
            }
            let searcher = split.reader.searcher();
            let mut addresses: Vec<DocAddress> = searcher
                .search(&query, &DocSetCollector)?
                .into_iter()
                .collect();
            addresses.sort();
            documents.push((split, searcher, addresses));
        }
        Ok(documents)
    }

    /// The traces with a span matching `filter`: every one of them (up to
    /// [`MAX_MATCHING_TRACES`]) with what its matching spans say, and with the
    /// whole-trace figures when `filter.order` needs them.
    pub(super) fn find_traces(
        &self,
        schema: &SpanSchema,
        filter: &TraceFilter,
        cancel: &Cancel,
    ) -> Result<TraceHits, StoreError> {
        self.find_traces_up_to(schema, filter, MAX_MATCHING_TRACES, cancel)
    }

    /// [`Self::find_traces`], holding at most `cap` traces.
    fn find_traces_up_to(
        &self,
        schema: &SpanSchema,
        filter: &TraceFilter,
        cap: usize,
        cancel: &Cancel,
    ) -> Result<TraceHits, StoreError> {
        // Resource attributes are matched through each split's own origins; a split
        // wholly inside the time range needs no range clause.
        let query_of = |split: &Split, within: bool| {
            let mut clauses: Vec<Box<dyn Query>> = Vec::new();
            if let Some(service) = &filter.service {
                clauses.push(text_term(schema.service, service));
            }
            if let Some(operation) = &filter.operation {
                clauses.push(text_term(schema.name, operation));
            }
            if filter.operation_pattern.is_some() {
                let names = filter
                    .operations
                    .iter()
                    .map(|name| Term::from_field_text(schema.name, name));
                clauses.push(Box::new(TermSetQuery::new(names)));
            }
            if let Some(kind) = filter.span_kind {
                clauses.push(text_term(
                    schema.tags,
                    &tag_term("span.kind", kind.as_jaeger()),
                ));
            }
            for (key, value) in &filter.tags {
                let term = tag_term(key, value);
                clauses.push(attribute_term(
                    schema.tags,
                    schema.origin,
                    &split.origins,
                    &term,
                ));
            }
            if !within {
                clauses.push(u64_range(
                    schema.start,
                    Some(filter.start_min),
                    Some(filter.start_max),
                ));
            }
            if filter.duration_min.is_some() || filter.duration_max.is_some() {
                clauses.push(u64_range(
                    schema.duration,
                    filter.duration_min,
                    filter.duration_max,
                ));
            }
            Some(all_of(clauses))
        };
        let (segments, _) = self.candidates(
            (filter.start_min, filter.start_max),
            columns::START,
            false,
            cancel,
            query_of,
        )?;
        let mut matches = Matches::default();
        let mut over = false;
        let mut visited = 0;
        for candidate in &segments {
            cancel.check()?;
            candidate.for_each_trace_key(|_, (hi, lo), start| {
                let Matches { places, hits } = &mut matches;
                match places.entry((hi, lo)) {
                    Entry::Occupied(place) => {
                        if let Some(hit) = hits.get_mut(*place.get() as usize) {
                            hit.newest = hit.newest.max(start);
                            hit.oldest = hit.oldest.min(start);
                        }
                    }
                    Entry::Vacant(slot) if hits.len() < cap => {
                        slot.insert(hits.len() as u32);
                        hits.push(TraceHit::new(TraceId::from_halves(hi, lo), start));
                    }
                    Entry::Vacant(_) => over = true,
                }
            })?;
            if over {
                break;
            }
            visited += 1;
        }
        if over {
            // What the segments read in full found stands; the one cut short
            // is read again.
            let Matches { places, hits } = matches;
            let seen = places
                .into_iter()
                .filter_map(|(key, place)| Some((key, hits.get(place as usize)?.newest)))
                .collect();
            return Ok(TraceHits {
                hits: newest_traces(&segments[visited..], filter.limit, seen, cancel)?,
                total: None,
            });
        }
        if filter.order.needs_whole_traces() {
            self.whole_traces(
                schema,
                (filter.start_min, filter.start_max),
                &mut matches,
                cancel,
            )?;
        }
        Ok(TraceHits {
            total: Some(matches.hits.len()),
            hits: matches.hits,
        })
    }

    /// Fills in the whole-trace figures of `matches` from every span that started
    /// in `[start, end]`.
    fn whole_traces(
        &self,
        schema: &SpanSchema,
        (start, end): (u64, u64),
        matches: &mut Matches,
        cancel: &Cancel,
    ) -> Result<(), StoreError> {
        let (segments, _) =
            self.candidates((start, end), columns::START, false, cancel, |_, within| {
                Some(if within {
                    Box::new(AllQuery)
                } else {
                    u64_range(schema.start, Some(start), Some(end))
                })
            })?;
        for candidate in &segments {
            cancel.check()?;
            let durations = candidate.column(columns::DURATION)?;
            let errors = candidate.column(columns::ERROR)?;
            candidate.for_each_trace_key(|doc, key, start| {
                let Some(hit) = matches.get_mut(&key) else {
                    return;
                };
                let end = start.saturating_add(durations.first(doc).unwrap_or(0));
                hit.first_start = hit.first_start.min(start);
                hit.last_end = hit.last_end.max(end);
                hit.spans = hit.spans.saturating_add(1);
                hit.errors = hit
                    .errors
                    .saturating_add(u32::from(errors.first(doc).unwrap_or(0) != 0));
            })?;
        }
        Ok(())
    }

    /// Every service name.
    pub(super) fn services(
        &self,
        field: Field,
        cancel: &Cancel,
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut services = BTreeSet::new();
        for split in self.splits() {
            cancel.check()?;
            for_each_term(&split, field, |term| {
                services.insert(term.to_string());
            })?;
        }
        Ok(services)
    }

    /// The span names of a service, with their kinds.
    pub(super) fn operations(
        &self,
        schema: &SpanSchema,
        service: &str,
        cancel: &Cancel,
    ) -> Result<BTreeSet<(String, String)>, StoreError> {
        let prefix = format!("{service}\0");
        let mut operations = BTreeSet::new();
        for split in self.splits() {
            cancel.check()?;
            for_each_term(&split, schema.operation, |term| {
                if let Some(rest) = term.strip_prefix(&prefix) {
                    if let Some((kind, name)) = rest.split_once('\0') {
                        operations.insert((name.to_string(), kind.to_string()));
                    }
                }
            })?;
        }
        debug_assert!(operation_term("a", "b", "c").starts_with("a\0"));
        Ok(operations)
    }

    /// Calls between services among the spans that started in `[start, end]`: a
    /// span whose parent belongs to another service is one call parent -> child.
    pub(super) fn dependencies(
        &self,
        schema: &SpanSchema,
        start: u64,
        end: u64,
        cancel: &Cancel,
    ) -> Result<Vec<DependencyLink>, StoreError> {
        let query = u64_range(schema.start, Some(start), Some(end));
        let mut services: Vec<String> = Vec::new();
        let mut service_ids: HashMap<String, u32> = HashMap::new();
        // Each span's service and error flag.
        let mut span_service: HashMap<(u64, u64, u64), (u32, bool)> = HashMap::new();
        // Every span with a parent: a call, if the parent is of another service.
        struct Child {
            trace: (u64, u64),
            parent: u64,
            service: u32,
            error: bool,
            duration: u64,
        }
        let mut children: Vec<Child> = Vec::new();
        for split in self.splits() {
            cancel.check()?;
            if !split.meta().overlaps(start, end) {
                continue;
            }
            let rows = split.reader.searcher().search(
                &query,
                &SpanEdgeCollector {
                    cancel: cancel.clone(),
                    format: split.meta().format,
                },
            )?;
            cancel.check()?;
            for row in rows {
                let id = *service_ids.entry(row.service.clone()).or_insert_with(|| {
                    services.push(row.service.clone());
                    (services.len() - 1) as u32
                });
                span_service.insert((row.trace.0, row.trace.1, row.span_id), (id, row.error));
                if row.parent_id != 0 {
                    children.push(Child {
                        trace: row.trace,
                        parent: row.parent_id,
                        service: id,
                        error: row.error,
                        duration: row.duration,
                    });
                }
            }
        }
        let mut counts: HashMap<(u32, u32), (u64, u64, Latencies)> = HashMap::new();
        for child in children {
            let ((hi, lo), error) = (child.trace, child.error);
            if let Some(&(parent_service, parent_error)) = span_service.get(&(hi, lo, child.parent))
            {
                if parent_service != child.service {
                    // Failed as the callee saw it, or as the caller did (a client
                    // span that got a 404 while the server span is not an error).
                    let count = counts.entry((parent_service, child.service)).or_default();
                    count.0 += 1;
                    count.1 += u64::from(error || parent_error);
                    count.2.add(child.duration);
                }
            }
        }
        let mut links: Vec<DependencyLink> = counts
            .into_iter()
            .map(
                |((parent, child), (call_count, error_count, latencies))| DependencyLink {
                    parent: services[parent as usize].clone(),
                    child: services[child as usize].clone(),
                    call_count,
                    error_count,
                    latencies,
                },
            )
            .collect();
        links.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
        Ok(links)
    }

    /// A page of the log records matching `filter`, newest first; how many
    /// matched in all; and, when more follow, where the page ended (pages after
    /// the first by `offset` have none).
    pub(super) fn search_logs(
        &self,
        schema: &LogSchema,
        filter: &LogFilter,
        cancel: &Cancel,
    ) -> Result<(Vec<LogRecord>, u64, Option<LogCursor>), StoreError> {
        let (start, end) = (filter.start, filter.end);
        if filter.offset > 0 {
            let wanted = filter.limit.saturating_add(filter.offset);
            let (mut records, total) =
                self.newest_logs(schema, filter, (start, end), wanted, true, cancel)?;
            records.drain(..filter.offset.min(records.len()));
            records.truncate(filter.limit);
            return Ok((records, total, None));
        }
        let cursor = filter.after.as_ref();
        // Every record that may be on the page: all of the cursor's time, the
        // newest older ones, and all of the oldest time among those when it may
        // reach into the page (their order needs their keys).
        let ties_at = |time: u64| -> Result<Vec<LogRecord>, StoreError> {
            let (ties, _) =
                self.newest_logs(schema, filter, (time, time), MAX_TIES + 1, false, cancel)?;
            if ties.len() > MAX_TIES {
                return Err(StoreError::TooBig(format!(
                    "more than {MAX_TIES} matching lines have the time {time} ns: page with offset, \
                     or narrow the search"
                )));
            }
            Ok(ties)
        };
        let (mut records, mut total) = (Vec::new(), 0);
        let mut upper = Some(end);
        if let Some(cursor) = cursor {
            total = self
                .newest_logs(schema, filter, (start, end), 0, true, cancel)?
                .1;
            if (start..=end).contains(&cursor.time) {
                records = ties_at(cursor.time)?;
            }
            upper = cursor.time.checked_sub(1).map(|time| time.min(end));
        }
        let seen = cursor.map_or(0, |cursor| cursor.seen as usize);
        let wanted = filter.limit.saturating_add(seen).saturating_add(1).max(2);
        if let Some(upper) = upper.filter(|upper| start <= *upper) {
            let (mut older, count) = self.newest_logs(
                schema,
                filter,
                (start, upper),
                wanted,
                cursor.is_none(),
                cancel,
            )?;
            if cursor.is_none() {
                total = count;
            }
            let time = |n: usize| older.get(n).map(|record| record.time_unix_nano);
            if older.len() >= wanted && time(wanted - 2) == time(wanted - 1) {
                if let Some(oldest) = time(wanted - 1) {
                    older.retain(|record| record.time_unix_nano != oldest);
                    older.extend(ties_at(oldest)?);
                }
            }
            records.extend(older);
        }
        let (records, next) = log_page(records, cursor, filter.limit)?;
        Ok((records, total, next))
    }

    /// The segments with log records matching `filter` in `[start, end]`, newest
    /// first, and, when `count`, how many records match in all.
    fn log_segments(
        &self,
        schema: &LogSchema,
        filter: &LogFilter,
        (start, end): (u64, u64),
        count: bool,
        cancel: &Cancel,
    ) -> Result<(Vec<CandidateSegment>, u64), StoreError> {
        let mut analyzer = body_analyzer();
        // Resource attributes are matched through each split's own origins; a split
        // wholly inside the time range needs no range clause.
        let query_of = |split: &Split, within: bool| {
            let mut clauses: Vec<Box<dyn Query>> = Vec::new();
            if let Some(expr) = &filter.expr {
                clauses.push(log_expr_query(expr, schema, split, &mut analyzer));
            }
            if let Some(service) = &filter.service {
                clauses.push(text_term(schema.service, service));
            }
            if let Some(trace_id) = filter.trace_id {
                if !split.may_hold_trace(&trace_id) {
                    return None;
                }
                clauses.push(bytes_term(schema.trace_id, &trace_id.0));
            }
            if let Some(span_id) = filter.span_id {
                clauses.push(u64_exact(schema.span_id, span_id.as_u64()));
            }
            if let Some(min) = filter.min_severity {
                clauses.push(u64_range(schema.severity, Some(min.max(0) as u64), None));
            }
            if !within {
                clauses.push(u64_range(schema.time, Some(start), Some(end)));
            }
            Some(all_of(clauses))
        };
        // Every matching segment counts (a single term's count is its document
        // frequency). Columns come from the split's cache: opening one reads its
        // block index.
        self.candidates((start, end), columns::TIME, count, cancel, query_of)
    }

    /// How many log records match `filter` (in `[filter.start, filter.end]`), per
    /// bucket of `volume` and per level ([`VOLUME_LEVELS`]), read from the time
    /// and severity columns.
    pub(super) fn log_volume(
        &self,
        schema: &LogSchema,
        filter: &LogFilter,
        mut volume: LogVolume,
        cancel: &Cancel,
    ) -> Result<LogVolume, StoreError> {
        let (segments, _) =
            self.log_segments(schema, filter, (filter.start, filter.end), false, cancel)?;
        let step = volume.step.max(1);
        for candidate in &segments {
            cancel.check()?;
            let time = candidate.column(columns::TIME)?;
            let severity = candidate.column(columns::SEVERITY)?;
            candidate.for_each_doc(|doc| {
                let at = time.first(doc).unwrap_or(0).saturating_sub(volume.start) / step;
                if let Some(cell) = volume.counts.get_mut(at as usize) {
                    cell[volume_level(severity.first(doc).unwrap_or(0))] += 1;
                }
            })?;
        }
        Ok(volume)
    }

    /// The `limit` newest log records matching `filter` in `range` (in time
    /// order only), and, when `count`, how many matched there in all.
    fn newest_logs(
        &self,
        schema: &LogSchema,
        filter: &LogFilter,
        (start, end): (u64, u64),
        limit: usize,
        count: bool,
        cancel: &Cancel,
    ) -> Result<(Vec<LogRecord>, u64), StoreError> {
        // The newest hits are looked for in the segments with the newest records
        // first, and a segment whose newest record is older than the `limit`-th hit
        // so far cannot hold one: records arrive roughly in time order, so a common
        // word is read from the recent segments only.
        let (segments, total) = self.log_segments(schema, filter, (start, end), count, cancel)?;
        if limit == 0 {
            return Ok((Vec::new(), total));
        }
        // The `limit` newest hits: (time, candidate, doc), oldest on top.
        let mut newest: BinaryHeap<Reverse<(u64, usize, DocId)>> = BinaryHeap::new();
        for_each_newest_first(
            &segments,
            cancel,
            &mut newest,
            |newest| {
                (newest.len() >= limit)
                    .then(|| newest.peek().map(|Reverse(hit)| hit.0))
                    .flatten()
            },
            |newest, i, candidate| {
                let time = candidate.column(columns::TIME)?;
                candidate.for_each_doc(|doc| {
                    let hit = (time.first(doc).unwrap_or(0), i, doc);
                    if newest.len() < limit {
                        newest.push(Reverse(hit));
                    } else if newest
                        .peek()
                        .is_some_and(|Reverse(oldest)| hit.0 > oldest.0)
                    {
                        newest.pop();
                        newest.push(Reverse(hit));
                    }
                })
            },
        )?;
        let mut hits: Vec<(u64, usize, DocId)> =
            newest.into_iter().map(|Reverse(hit)| hit).collect();
        hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut records = Vec::with_capacity(hits.len());
        for (n, (time, i, doc_id)) in hits.into_iter().enumerate() {
            if n.is_multiple_of(CHECK_EVERY) {
                cancel.check()?;
            }
            records.push(segments[i].log_record(schema, doc_id, time)?);
        }
        Ok((records, total))
    }

    /// The body patterns of the log records matching `filter`: per pattern id, its
    /// records per bucket of `patterns`, its errors, its records in the range
    /// before (`patterns.previous_start` to `patterns.previous_end`), and for the
    /// `patterns.limit` most frequent, their newest record. Read from the time,
    /// severity and pattern columns; at most [`MAX_PATTERNS`] distinct ones are
    /// counted, the records of others are `uncounted`.
    pub(super) fn log_patterns(
        &self,
        schema: &LogSchema,
        filter: &LogFilter,
        mut patterns: LogPatterns,
        cancel: &Cancel,
    ) -> Result<LogPatterns, StoreError> {
        let (segments, _) =
            self.log_segments(schema, filter, (filter.start, filter.end), false, cancel)?;
        let step = patterns.step.max(1);
        let buckets = patterns.buckets;
        // Per pattern: its count and its newest record's (time, segment, doc).
        let mut found: HashMap<u64, (PatternCount, (u64, usize, DocId))> = HashMap::new();
        for (i, candidate) in segments.iter().enumerate() {
            cancel.check()?;
            if !candidate.split.has_patterns() {
                candidate.for_each_doc(|_| patterns.unpatterned += 1)?;
                continue;
            }
            let time = candidate.column(columns::TIME)?;
            let severity = candidate.column(columns::SEVERITY)?;
            candidate.for_each_pattern(schema, cancel, |doc, id| {
                let at = time.first(doc).unwrap_or(0);
                let room = found.len() < MAX_PATTERNS;
                let count = match found.entry(id) {
                    Entry::Occupied(entry) => {
                        let (count, newest) = entry.into_mut();
                        if at > newest.0 {
                            *newest = (at, i, doc);
                        }
                        count
                    }
                    Entry::Vacant(_) if !room => {
                        patterns.uncounted += 1;
                        return;
                    }
                    Entry::Vacant(entry) => {
                        &mut entry
                            .insert((PatternCount::new(id, buckets), (at, i, doc)))
                            .0
                    }
                };
                count.count += 1;
                if severity.first(doc).unwrap_or(0) >= ERROR_SEVERITY {
                    count.errors += 1;
                }
                let bucket = at.saturating_sub(patterns.start) / step;
                if let Some(cell) = count.counts.get_mut(bucket as usize) {
                    *cell += 1;
                }
            })?;
        }
        // The range before. Patterns found there alone are kept too (with no
        // records in the range): across a cluster, another node may have found
        // them in the range.
        if patterns.previous_start <= patterns.previous_end {
            let range = (patterns.previous_start, patterns.previous_end);
            let (before, _) = self.log_segments(schema, filter, range, false, cancel)?;
            for candidate in before.iter().filter(|c| c.split.has_patterns()) {
                cancel.check()?;
                candidate.for_each_pattern(schema, cancel, |_, id| {
                    let room = found.len() < MAX_PATTERNS;
                    match found.entry(id) {
                        Entry::Occupied(entry) => entry.into_mut().0.previous += 1,
                        Entry::Vacant(entry) if room => {
                            let mut count = PatternCount::new(id, buckets);
                            count.previous = 1;
                            entry.insert((count, (0, usize::MAX, 0)));
                        }
                        Entry::Vacant(_) => {}
                    }
                })?;
            }
        }
        let mut counted: Vec<(PatternCount, (u64, usize, DocId))> = found.into_values().collect();
        counted.sort_by(|a, b| b.0.count.cmp(&a.0.count).then(a.0.id.cmp(&b.0.id)));
        for (n, (count, (time, i, doc))) in counted.iter_mut().enumerate() {
            if n >= patterns.limit || count.count == 0 {
                break;
            }
            cancel.check()?;
            count.sample = Some(segments[*i].log_record(schema, *doc, *time)?);
        }
        patterns.patterns = counted.into_iter().map(|(count, _)| count).collect();
        Ok(patterns)
    }
}

pub(super) fn for_each_term(
    split: &Split,
    field: Field,
    mut each: impl FnMut(&str),
) -> Result<(), StoreError> {
    for_each_term_bytes(split, field, |bytes| {
        if let Ok(term) = std::str::from_utf8(bytes) {
            each(term);
        }
    })
}

fn for_each_term_bytes(
    split: &Split,
    field: Field,
    mut each: impl FnMut(&[u8]),
) -> Result<(), StoreError> {
    let searcher = split.reader.searcher();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(field)?;
        let mut stream = inverted.terms().stream()?;
        while stream.advance() {
            each(stream.key());
        }
    }
    Ok(())
}

/// What a search needs to skip a split without opening it: read from the
/// split's term dictionaries once, when it is published.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitSummary {
    pub services: Vec<String>,
    /// Log levels present (`error`, `warn`, ...); empty for spans.
    pub levels: Vec<String>,
    /// The trace ids it holds, as a filter.
    pub trace_filter: TraceIdFilter,
}

/// The summary of `split`, one of `signal`'s, read with `trace_id`, `service`
/// and (for logs) `level` fields.
pub(super) fn summarize(
    split: &Split,
    trace_id: Field,
    service: Field,
    level: Option<Field>,
) -> Result<SplitSummary, StoreError> {
    let mut services = BTreeSet::new();
    for_each_term(split, service, |term| {
        services.insert(term.to_string());
    })?;
    let mut levels = BTreeSet::new();
    if let Some(level) = level {
        for_each_term(split, level, |term| {
            levels.insert(term.to_string());
        })?;
    }
    Ok(SplitSummary {
        services: services.into_iter().collect(),
        levels: levels.into_iter().collect(),
        trace_filter: match split.trace_filter() {
            Some(filter) => filter,
            None => trace_filter(split, trace_id)?,
        },
    })
}

/// The filter of the trace ids in `split`'s `trace_id` terms, filled straight from
/// the term dictionaries (sized by their term counts: no list of ids is held).
pub(super) fn trace_filter(split: &Split, trace_id: Field) -> Result<TraceIdFilter, StoreError> {
    let mut terms = 0;
    for segment in split.reader.searcher().segment_readers() {
        terms += segment.inverted_index(trace_id)?.terms().num_terms();
    }
    let mut filter = TraceIdFilter::with_room(terms);
    for_each_term_bytes(split, trace_id, |bytes| {
        if let Ok(id) = <[u8; 16]>::try_from(bytes) {
            filter.insert(&TraceId(id));
        }
    })?;
    Ok(filter)
}

/// The analyzer the `body` field was indexed with.
fn body_analyzer() -> TextAnalyzer {
    TokenizerManager::default()
        .get("default")
        .unwrap_or_default()
}

fn analyze(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while let Some(token) = stream.next() {
        tokens.push(token.text.clone());
    }
    tokens
}

fn body_query(field: Field, analyzer: &mut TextAnalyzer, text: &str) -> Box<dyn Query> {
    let terms: Vec<Term> = analyze(analyzer, text)
        .iter()
        .map(|t| Term::from_field_text(field, t))
        .collect();
    match terms.len() {
        0 => Box::new(EmptyQuery),
        1 => Box::new(TermQuery::new(terms[0].clone(), IndexRecordOption::Basic)),
        _ => Box::new(PhraseQuery::new(terms)),
    }
}

fn log_expr_query(
    expr: &LogExpr,
    schema: &LogSchema,
    split: &Split,
    analyzer: &mut TextAnalyzer,
) -> Box<dyn Query> {
    let origins = &split.origins;
    match expr {
        LogExpr::Term { field, text } | LogExpr::Phrase { field, text } => match field {
            LogField::Body => body_query(schema.body, analyzer, text),
            LogField::Service => text_term(schema.service, text),
            LogField::Severity => text_term(schema.level, &text.to_ascii_lowercase()),
            LogField::Attribute(key) => attribute_term(
                schema.attributes,
                schema.origin,
                origins,
                &tag_term(key, text),
            ),
            LogField::TraceId => match TraceId::from_hex(text) {
                Ok(id) => bytes_term(schema.trace_id, &id.0),
                Err(_) => Box::new(EmptyQuery),
            },
            LogField::SpanId => match SpanId::from_hex(text) {
                Ok(id) => u64_exact(schema.span_id, id.as_u64()),
                Err(_) => Box::new(EmptyQuery),
            },
            // Records of splits older than patterns have none.
            LogField::Pattern => match pattern::parse_id(text) {
                Some(id) if split.has_patterns() => u64_exact(schema.pattern, id),
                _ => Box::new(EmptyQuery),
            },
        },
        LogExpr::And(parts) => Box::new(BooleanQuery::new(
            parts
                .iter()
                .map(|part| (Occur::Must, log_expr_query(part, schema, split, analyzer)))
                .collect(),
        )),
        LogExpr::Or(parts) => Box::new(BooleanQuery::new(
            parts
                .iter()
                .map(|part| (Occur::Should, log_expr_query(part, schema, split, analyzer)))
                .collect(),
        )),
        LogExpr::Not(inner) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
            (
                Occur::MustNot,
                log_expr_query(inner, schema, split, analyzer),
            ),
        ])),
    }
}

/// A segment that may hold some of the newest hits of a search.
struct CandidateSegment {
    /// Its newest record's time or span's start (an upper bound).
    newest: u64,
    ord: SegmentOrdinal,
    split: Arc<Split>,
    searcher: Arc<Searcher>,
    weight: Arc<dyn Weight>,
}

impl CandidateSegment {
    /// One of the segment's columns (from its split's cache).
    fn column(&self, name: &'static str) -> Result<Column<u64>, StoreError> {
        Ok(self.split.u64_column(&self.searcher, self.ord, name)?)
    }

    /// The log record of document `doc_id` (its time read already).
    fn log_record(
        &self,
        schema: &LogSchema,
        doc_id: DocId,
        time: u64,
    ) -> Result<LogRecord, StoreError> {
        let (split, searcher) = (&self.split, &self.searcher);
        // A hit's address is only valid in the searcher that found it: the
        // reader moves on with every commit and merge.
        let address = DocAddress::new(self.ord, doc_id);
        let payload = stored_payload(searcher, address, schema.payload)?;
        let column = |name| -> Result<u64, StoreError> {
            let column = split.u64_column(searcher, address.segment_ord, name)?;
            Ok(column.first(address.doc_id).unwrap_or(0))
        };
        let origin = origin_of(split, column(columns::ORIGIN)?)?;
        let span_id = column(columns::SPAN_ID)?;
        schema
            .record(&payload, time, span_id, &origin)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Calls `each` with every live document of the segment that matches and its
    /// log pattern id, pattern by pattern: the segment's pattern terms are few,
    /// and their postings hold every document once.
    fn for_each_pattern(
        &self,
        schema: &LogSchema,
        cancel: &Cancel,
        mut each: impl FnMut(DocId, u64),
    ) -> Result<(), StoreError> {
        let segment = self.searcher.segment_reader(self.ord);
        let mut matching = BitSet::with_max_value(segment.max_doc());
        let mut any = false;
        self.for_each_doc(|doc| {
            matching.insert(doc);
            any = true;
        })?;
        if !any {
            return Ok(());
        }
        let inverted = segment.inverted_index(schema.pattern)?;
        let mut terms = inverted.terms().stream()?;
        while terms.advance() {
            cancel.check()?;
            // A u64 term's value: its 8 bytes, big-endian.
            let key = terms.key();
            let Ok(value) = <[u8; 8]>::try_from(&key[key.len().saturating_sub(8)..]) else {
                continue;
            };
            let id = u64::from_be_bytes(value);
            let mut postings =
                inverted.read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if matching.contains(doc) {
                    each(doc, id);
                }
                doc = postings.advance();
            }
        }
        Ok(())
    }

    /// Calls `each` with every live document of the segment that matches.
    fn for_each_doc(&self, mut each: impl FnMut(DocId)) -> Result<(), StoreError> {
        self.for_each_block(|docs| docs.iter().for_each(|&doc| each(doc)))
    }

    /// Calls `each` with the live documents of the segment that match, a block
    /// (of at most [`BLOCK`]) at a time, in order.
    fn for_each_block(&self, mut each: impl FnMut(&[DocId])) -> Result<(), StoreError> {
        let segment = self.searcher.segment_reader(self.ord);
        let alive = segment.alive_bitset();
        let mut live = Vec::with_capacity(BLOCK);
        self.weight.for_each_no_score(segment, &mut |docs| {
            for block in docs.chunks(BLOCK) {
                match alive {
                    None => each(block),
                    Some(alive) => {
                        live.clear();
                        live.extend(block.iter().copied().filter(|&doc| alive.is_alive(doc)));
                        each(&live);
                    }
                }
            }
        })?;
        Ok(())
    }

    /// Calls `each` with every live matching span document, its trace id (as its
    /// halves) and its start. The columns are read a block of documents at a
    /// time: per document, through `Column::first`, they cost more than the rest
    /// of a trace search's pass.
    fn for_each_trace_key(
        &self,
        mut each: impl FnMut(DocId, (u64, u64), u64),
    ) -> Result<(), StoreError> {
        let traces = TraceIdColumn::open(&self.split, &self.searcher, self.ord)?;
        let start = self.column(columns::START)?;
        let (mut keys, mut starts) = ([None; BLOCK], [None; BLOCK]);
        self.for_each_block(|docs| {
            let n = docs.len();
            keys[..n].fill(None);
            starts[..n].fill(None);
            traces.first_vals(docs, &mut keys[..n]);
            start.first_vals(docs, &mut starts[..n]);
            for (i, &doc) in docs.iter().enumerate() {
                if let Some(key) = keys[i] {
                    each(doc, key, starts[i].unwrap_or(0));
                }
            }
        })
    }
}

/// Visits `segments` (newest first) with `visit`, and stops at the first whose
/// newest record is older than `floor(state)`: the search has enough hits newer
/// than anything it holds.
fn for_each_newest_first<S>(
    segments: &[CandidateSegment],
    cancel: &Cancel,
    state: &mut S,
    floor: impl Fn(&S) -> Option<u64>,
    mut visit: impl FnMut(&mut S, usize, &CandidateSegment) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for (i, candidate) in segments.iter().enumerate() {
        cancel.check()?;
        if floor(state).is_some_and(|floor| candidate.newest < floor) {
            break;
        }
        visit(state, i, candidate)?;
    }
    Ok(())
}

/// The `limit` traces with the newest matching spans, given the newest matching
/// span of each trace in the segments before `segments` (`newest`), reading no
/// further than needed: once `limit` traces are found, a segment whose newest
/// span is older than the limit-th of them can change nothing.
fn newest_traces(
    segments: &[CandidateSegment],
    limit: usize,
    mut newest: TraceMap<u64>,
    cancel: &Cancel,
) -> Result<Vec<TraceHit>, StoreError> {
    let limit = limit.max(1);
    for_each_newest_first(
        segments,
        cancel,
        &mut newest,
        |newest| {
            if newest.len() < limit {
                return None;
            }
            let mut starts: Vec<u64> = newest.values().copied().collect();
            let (_, floor, _) = starts.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
            Some(*floor)
        },
        |newest, _, candidate| {
            candidate.for_each_trace_key(|_, key, start| {
                let entry = newest.entry(key).or_insert(start);
                *entry = (*entry).max(start);
            })
        },
    )?;
    let mut hits: Vec<TraceHit> = newest
        .into_iter()
        .map(|((hi, lo), start)| TraceHit::new(TraceId::from_halves(hi, lo), start))
        .collect();
    TraceOrder::Newest.sort(&mut hits);
    hits.truncate(limit);
    Ok(hits)
}

impl SignalIndex {
    /// The segments of the splits that overlap `[start, end]`, with the weight of
    /// the query `query_of` builds for each split (from the split's origins, and
    /// whether the split lies wholly inside the range), newest first by `newest`
    /// (a column); with `count`, segments without a match are left out, and the
    /// matches counted.
    fn candidates(
        &self,
        (start, end): (u64, u64),
        newest: &'static str,
        count: bool,
        cancel: &Cancel,
        mut query_of: impl FnMut(&Split, bool) -> Option<Box<dyn Query>>,
    ) -> Result<(Vec<CandidateSegment>, u64), StoreError> {
        let mut segments = Vec::new();
        let mut total = 0u64;
        for split in self.splits() {
            cancel.check()?;
            // The searcher before the metadata: the metadata is then at least as
            // new, so `within` holds for every document the searcher sees.
            let searcher = Arc::new(split.reader.searcher());
            let meta = split.meta();
            if !meta.overlaps(start, end) {
                continue;
            }
            // None: the split cannot hold a match (its trace filter says so).
            let Some(query) = query_of(&split, meta.within(start, end)) else {
                continue;
            };
            let weight: Arc<dyn Weight> =
                Arc::from(query.weight(EnableScoring::disabled_from_searcher(&searcher))?);
            for (ord, segment) in searcher.segment_readers().iter().enumerate() {
                if count {
                    let matches = weight.count(segment)?;
                    if matches == 0 {
                        continue;
                    }
                    total += u64::from(matches);
                }
                let ord = ord as SegmentOrdinal;
                segments.push(CandidateSegment {
                    newest: split.u64_column(&searcher, ord, newest)?.max_value(),
                    ord,
                    split: Arc::clone(&split),
                    searcher: Arc::clone(&searcher),
                    weight: Arc::clone(&weight),
                });
            }
        }
        segments.sort_by_key(|segment| Reverse(segment.newest));
        Ok((segments, total))
    }
}

/// Every record of `split` (one of `signal`'s, its documents read with
/// `span_schema` or `log_schema`), in batches of at most `batch`, to `each`:
/// what merging splits reads.
pub(super) fn scan(
    split: &Split,
    signal: Signal,
    span_schema: &SpanSchema,
    log_schema: &LogSchema,
    batch: usize,
    cancel: &Cancel,
    mut each: impl FnMut(Records) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let searcher = split.reader.searcher();
    let corrupt = |e: postcard::Error| StoreError::Corrupt(e.to_string());
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let ord = ord as SegmentOrdinal;
        let alive: Vec<DocId> = segment.doc_ids_alive().collect();
        for docs in alive.chunks(batch.max(1)) {
            cancel.check()?;
            let records = match signal {
                Signal::Spans => {
                    let readers = SpanColumnReaders::open(split, &searcher, ord, None)?;
                    let mut spans = Vec::with_capacity(docs.len());
                    for &doc in docs {
                        let payload = stored_payload(
                            &searcher,
                            DocAddress::new(ord, doc),
                            span_schema.payload,
                        )?;
                        let columns = readers.get(doc);
                        let origin = origin_of(split, columns.origin)?;
                        spans.push(
                            span_schema
                                .span(&payload, columns, &origin)
                                .map_err(corrupt)?,
                        );
                    }
                    Records::Spans(spans)
                }
                Signal::Logs => {
                    let time = split.u64_column(&searcher, ord, columns::TIME)?;
                    let span_id = split.u64_column(&searcher, ord, columns::SPAN_ID)?;
                    let origin = split.u64_column(&searcher, ord, columns::ORIGIN)?;
                    let mut logs = Vec::with_capacity(docs.len());
                    for &doc in docs {
                        let payload = stored_payload(
                            &searcher,
                            DocAddress::new(ord, doc),
                            log_schema.payload,
                        )?;
                        let origin = origin_of(split, origin.first(doc).unwrap_or(0))?;
                        logs.push(
                            log_schema
                                .record(
                                    &payload,
                                    time.first(doc).unwrap_or(0),
                                    span_id.first(doc).unwrap_or(0),
                                    &origin,
                                )
                                .map_err(corrupt)?,
                        );
                    }
                    Records::Logs(logs)
                }
            };
            each(records)?;
        }
    }
    Ok(())
}

/// A split, its searcher (the addresses are valid in it alone), and the
/// addresses of one trace's span documents there.
pub(super) type TraceDocuments = (Arc<Split>, Searcher, Vec<DocAddress>);

/// The span whose document is at `address`, its columns read with `readers`
/// (opened for that segment).
pub(super) fn span_at(
    schema: &SpanSchema,
    split: &Split,
    searcher: &Searcher,
    readers: &SpanColumnReaders,
    address: DocAddress,
) -> Result<Span, StoreError> {
    let payload = stored_payload(searcher, address, schema.payload)?;
    let columns = readers.get(address.doc_id);
    let origin = origin_of(split, columns.origin)?;
    schema
        .span(&payload, columns, &origin)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The columns a span document keeps its ids and times in, for one segment.
pub(super) struct SpanColumnReaders {
    trace: TraceIdColumn,
    span: Column<u64>,
    parent: Column<u64>,
    start: Column<u64>,
    duration: Column<u64>,
    origin: Column<u64>,
}

impl SpanColumnReaders {
    /// `trace`: every document read is of that trace (else the trace ids are read
    /// from the columns).
    pub(super) fn open(
        split: &Split,
        searcher: &Searcher,
        ord: SegmentOrdinal,
        trace: Option<TraceId>,
    ) -> tantivy::Result<SpanColumnReaders> {
        let column = |name| split.u64_column(searcher, ord, name);
        Ok(SpanColumnReaders {
            trace: match trace {
                Some(id) => TraceIdColumn::Known(id.halves()),
                None => TraceIdColumn::open(split, searcher, ord)?,
            },
            span: column(columns::SPAN_ID)?,
            parent: column(columns::PARENT_ID)?,
            start: column(columns::START)?,
            duration: column(columns::DURATION)?,
            origin: column(columns::ORIGIN)?,
        })
    }

    pub(super) fn get(&self, doc: DocId) -> SpanColumns {
        let (trace_hi, trace_lo) = self.trace.get(doc).unwrap_or((0, 0));
        SpanColumns {
            trace_hi,
            trace_lo,
            span_id: self.span.first(doc).unwrap_or(0),
            parent_id: self.parent.first(doc).unwrap_or(0),
            start: self.start.first(doc).unwrap_or(0),
            duration: self.duration.first(doc).unwrap_or(0),
            origin: self.origin.first(doc).unwrap_or(0),
        }
    }
}

/// One span's place in the call graph, read from columns.
struct EdgeRow {
    trace: (u64, u64),
    span_id: u64,
    parent_id: u64,
    service: String,
    error: bool,
    duration: u64,
}

/// Reads the call graph's columns from a split of document format `format`;
/// collects nothing once its [`Cancel`] says stop.
struct SpanEdgeCollector {
    cancel: Cancel,
    format: u32,
}

struct SpanEdgeSegment {
    cancel: Cancel,
    seen: usize,
    trace: TraceIdColumn,
    span: Column<u64>,
    parent: Column<u64>,
    duration: Column<u64>,
    /// Absent in splits written before the column existed.
    error: Option<Column<u64>>,
    service: Option<StrColumn>,
    /// trace hi, lo, span, parent, service ordinal, error, duration.
    rows: Vec<(u64, u64, u64, u64, u64, bool, u64)>,
}

impl Collector for SpanEdgeCollector {
    type Fruit = Vec<EdgeRow>;
    type Child = SpanEdgeSegment;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SpanEdgeSegment> {
        let fast = segment.fast_fields();
        Ok(SpanEdgeSegment {
            cancel: self.cancel.clone(),
            seen: 0,
            trace: TraceIdColumn::of_segment(segment, self.format)?,
            span: fast.u64(columns::SPAN_ID)?,
            parent: fast.u64(columns::PARENT_ID)?,
            duration: fast.u64(columns::DURATION)?,
            error: fast.u64(columns::ERROR).ok(),
            service: fast.str(columns::SERVICE)?,
            rows: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<EdgeRow>>) -> tantivy::Result<Vec<EdgeRow>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SpanEdgeSegment {
    type Fruit = Vec<EdgeRow>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.seen += 1;
        if self.seen.is_multiple_of(CHECK_EVERY) && self.cancel.stopped().is_some() {
            // Nothing more is kept; the caller returns `Cancelled`.
            self.service = None;
        }
        let Some(service) = &self.service else { return };
        let Some(ord) = service.term_ords(doc).next() else {
            return;
        };
        let (Some((hi, lo)), Some(span)) = (self.trace.get(doc), self.span.first(doc)) else {
            return;
        };
        let parent = self.parent.first(doc).unwrap_or(0);
        let error = self.error.as_ref().and_then(|c| c.first(doc)).unwrap_or(0) == 1;
        let duration = self.duration.first(doc).unwrap_or(0);
        self.rows.push((hi, lo, span, parent, ord, error, duration));
    }

    fn harvest(self) -> Vec<EdgeRow> {
        let Some(service) = self.service else {
            return Vec::new();
        };
        let mut names: HashMap<u64, String> = HashMap::new();
        let mut rows = Vec::with_capacity(self.rows.len());
        for (hi, lo, span_id, parent_id, ord, error, duration) in self.rows {
            let name = names.entry(ord).or_insert_with(|| {
                let mut name = String::new();
                let _ = service.ord_to_str(ord, &mut name);
                name
            });
            rows.push(EdgeRow {
                trace: (hi, lo),
                span_id,
                parent_id,
                service: name.clone(),
                error,
                duration,
            });
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Signal;
    use crate::model::{AnyValue, LogRecord, Resource, Scope, Str};
    use crate::store::origin::OriginIds;
    use crate::store::writer::index_records;
    use crate::store::SignalIndex;
    use crate::store::{schema, Records, Store};

    fn record(time: u64, body: &str, resource: &Arc<Resource>, scope: &Arc<Scope>) -> LogRecord {
        LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: time,
            severity_number: 9,
            severity_text: Str::new(),
            body: AnyValue::Str(body.into()),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            service_name: "checkout".into(),
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
        }
    }

    fn span(trace: u64, n: u64, start: u64, error: bool, resource: &Arc<Resource>) -> Span {
        Span {
            trace_id: TraceId::from_halves(7, trace),
            span_id: SpanId((n + 1).to_be_bytes()),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 10,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status_code: if error {
                crate::model::StatusCode::Error
            } else {
                crate::model::StatusCode::Unset
            },
            status_message: String::new(),
            service_name: "checkout".into(),
            resource: Arc::clone(resource),
            scope: Arc::new(Scope::default()),
        }
    }

    /// Indexes `batches` into a new split of `index`, one commit (segment) each.
    fn add_split(store: &Store, index: &SignalIndex, created: u64, batches: Vec<Records>) {
        let schema = match index.signal {
            crate::model::Signal::Spans => store.span_schema.schema.clone(),
            crate::model::Signal::Logs => store.log_schema.schema.clone(),
        };
        let split = Arc::new(index.create_split(schema, created).expect("split"));
        index.add_split(Arc::clone(&split));
        let mut writer = split.writer().expect("writer");
        let mut origins = OriginIds::new(Arc::clone(&split.origins));
        let mut meta = split.meta();
        for records in batches {
            index_records(
                &writer,
                store,
                &mut origins,
                &mut Default::default(),
                &records,
                |t| meta.extend(t),
            )
            .expect("index");
            origins.save().expect("save origins");
            let mut prepared = writer.prepare_commit().expect("prepare");
            prepared.set_payload(&serde_json::to_string(&meta).expect("meta"));
            prepared.commit().expect("commit");
            *split.meta.write().expect("meta") = meta;
            split.reader.reload().expect("reload");
        }
        assert!(split.reader.searcher().segment_readers().len() > 1);
    }

    #[test]
    fn trace_lookups_skip_the_sealed_splits_whose_filter_rules_the_trace_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &Default::default()).expect("store");
        let resource = Arc::new(Resource::default());
        // Traces 0-19 in the first split, 20-39 in the second, two segments each.
        for s in 0..2u64 {
            let batches = (0..2u64)
                .map(|half| {
                    let first = s * 20 + half * 10;
                    Records::Spans(
                        (first..first + 10)
                            .map(|t| span(t, t, 1_000 + t, false, &resource))
                            .collect(),
                    )
                })
                .collect();
            add_split(&store, &store.spans, s + 1, batches);
        }
        let splits = store.spans.splits();
        let cancel = Cancel::default();
        let id = |t: u64| TraceId::from_halves(7, t);
        let lookups = |t: u64| {
            store
                .spans
                .trace_documents(&store.span_schema, id(t), &cancel)
                .expect("lookup")
                .len()
        };
        // Being written, a split may hold any trace.
        assert!(splits.iter().all(|split| split.may_hold_trace(&id(1_000))));
        assert_eq!(lookups(3), 2);

        for split in &splits {
            split.sealed.store(true, Ordering::Release);
            split.seal_trace_filter().expect("filter");
        }
        assert_eq!(lookups(3), 1, "trace 3 is looked up in its split alone");
        assert_eq!(lookups(25), 1);
        let ruled_out = (1_000..1_200)
            .filter(|&t| splits.iter().all(|split| !split.may_hold_trace(&id(t))))
            .count();
        assert!(
            ruled_out > 190,
            "only {ruled_out} of 200 absent traces ruled out"
        );
        for t in 0..40 {
            let found = store.spans.trace(&store.span_schema, id(t), 100, &cancel);
            assert_eq!(found.expect("trace").spans.len(), 1, "trace {t}");
        }

        // The filter is kept with the split, checked when it opens, and built
        // again when it is damaged or missing.
        let first = &splits[0].dir;
        let file = first.join(crate::store::split::TRACE_FILTER_FILE);
        let reopened = || Split::open(first).expect("open").expect("a split");
        assert!(!reopened().may_hold_trace(&id(25)));
        let mut bytes = std::fs::read(&file).expect("filter file");
        for byte in &mut bytes[4..] {
            *byte = 0;
        }
        std::fs::write(&file, &bytes).expect("damage");
        let repaired = reopened();
        assert!(
            repaired.may_hold_trace(&id(3)),
            "a damaged filter hid a trace"
        );
        assert!(!repaired.may_hold_trace(&id(25)));
        std::fs::remove_file(&file).expect("remove");
        assert!(reopened().may_hold_trace(&id(3)));
        assert!(file.exists(), "the missing filter was not written again");
    }

    #[test]
    fn trace_search_returns_the_newest_traces_across_segments_and_splits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &Default::default()).expect("store");
        let resource = Arc::new(Resource::default());
        // Traces of 3 spans each, their spans spread over segments and splits;
        // every fourth trace has an error span. A trace's newest span decides.
        let mut newest_start: HashMap<u64, u64> = HashMap::new();
        let mut n = 0;
        for s in 0..3u64 {
            let batches = (0..3u64)
                .map(|c| {
                    let spans = (0..40u64)
                        .map(|i| {
                            let trace = (i + c * 13 + s * 7) % 60;
                            let start = 1_000 + i * 100 + (s * 3 + c) * 7;
                            n += 1;
                            let error = trace % 4 == 0;
                            if error {
                                let entry = newest_start.entry(trace).or_insert(start);
                                *entry = (*entry).max(start);
                            }
                            span(trace, n, start, error, &resource)
                        })
                        .collect();
                    Records::Spans(spans)
                })
                .collect();
            add_split(&store, &store.spans, s + 1, batches);
        }
        let mut expected: Vec<(u64, u64)> = newest_start.into_iter().collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for limit in [1, 3, 10, 100] {
            let filter = TraceFilter {
                tags: vec![("error".into(), "true".into())],
                start_min: 0,
                start_max: u64::MAX,
                limit,
                ..TraceFilter::default()
            };
            let want: Vec<TraceId> = expected
                .iter()
                .take(limit)
                .map(|(trace, _)| TraceId::from_halves(7, *trace))
                .collect();
            // Every match counted and ordered; and, holding fewer traces than
            // match, the newest found by reading only the newest segments.
            for cap in [MAX_MATCHING_TRACES, 5] {
                let mut found = store
                    .spans
                    .find_traces_up_to(&store.span_schema, &filter, cap, &Cancel::default())
                    .expect("search");
                let total = (cap > expected.len()).then_some(expected.len());
                assert_eq!(found.total, total, "limit {limit}, cap {cap}");
                TraceOrder::Newest.sort(&mut found.hits);
                let found: Vec<TraceId> = found.hits.iter().take(limit).map(|hit| hit.id).collect();
                assert_eq!(found, want, "limit {limit}, cap {cap}");
            }
        }
    }

    /// Indexes `spans` into a new split of the store's span index as a version
    /// before [`schema::TRACE_ID_COLUMN_FORMAT`] wrote them: the trace id a term,
    /// and its halves two columns.
    fn add_format_3_split(store: &Store, created: u64, spans: &[Span]) -> Arc<Split> {
        let schema = &store.span_schema;
        let index = &store.spans;
        let split = Arc::new(
            index
                .create_split(SpanSchema::format_3().schema, created)
                .expect("split"),
        );
        index.add_split(Arc::clone(&split));
        let mut writer = split.writer().expect("writer");
        let mut origins = OriginIds::new(Arc::clone(&split.origins));
        let mut meta = split.meta();
        meta.format = schema::TRACE_ID_COLUMN_FORMAT - 1;
        let mut scratch = Default::default();
        for span in spans {
            let origin = origins
                .id(&span.service_name, &span.resource, &span.scope)
                .expect("origin");
            let mut doc = schema.document(span, origin, &mut scratch).expect("doc");
            let (hi, lo) = span.trace_id.halves();
            doc.add_u64(schema.trace_hi, hi);
            doc.add_u64(schema.trace_lo, lo);
            writer.add_document(doc).expect("add");
            meta.extend(span.start_time_unix_nano);
        }
        origins.save().expect("save origins");
        let mut prepared = writer.prepare_commit().expect("prepare");
        prepared.set_payload(&serde_json::to_string(&meta).expect("meta"));
        prepared.commit().expect("commit");
        *split.meta.write().expect("meta") = meta;
        split.reader.reload().expect("reload");
        split
    }

    #[test]
    fn spans_of_splits_older_than_the_trace_id_column_are_read_beside_newer_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &Default::default()).expect("store");
        let gateway = Arc::new(Resource::default());
        // Trace t (0..40) has a gateway span in the old split and a checkout span
        // under it in the new one; the traces' ids differ in both halves.
        let id = |t: u64| TraceId::from_halves(1_000 + t, 2_000 + t);
        let mut old = Vec::new();
        let mut new = Vec::new();
        for t in 0..40u64 {
            let mut root = span(t, 2 * t, 1_000 + t, false, &gateway);
            root.trace_id = id(t);
            root.service_name = "gateway".into();
            let mut child = span(t, 2 * t + 1, 1_000 + t, t % 4 == 0, &gateway);
            child.trace_id = id(t);
            child.parent_span_id = Some(root.span_id);
            new.push(child);
            old.push(root);
        }
        let old_split = add_format_3_split(&store, 1, &old);
        add_split(
            &store,
            &store.spans,
            2,
            new.chunks(20)
                .map(|spans| Records::Spans(spans.to_vec()))
                .collect(),
        );
        let cancel = Cancel::default();

        // Trace search groups the spans of both splits by trace.
        let filter = TraceFilter {
            start_min: 0,
            start_max: u64::MAX,
            limit: 5,
            order: TraceOrder::MostSpans,
            ..TraceFilter::default()
        };
        let hits = store.find_traces(&filter, &cancel).expect("search");
        assert_eq!(hits.total, Some(40));
        assert!(hits.hits.iter().all(|hit| hit.spans == 2), "{hits:?}");
        let mut ids: Vec<TraceId> = hits.hits.iter().map(|hit| hit.id).collect();
        ids.sort();
        assert_eq!(ids, (0..40).map(id).collect::<Vec<_>>());
        let failing = TraceFilter {
            tags: vec![("error".into(), "true".into())],
            ..filter
        };
        let hits = store.find_traces(&failing, &cancel).expect("search");
        assert_eq!(hits.total, Some(10));

        // A trace is read whole, with its id, from both.
        let trace = store.trace(id(7), 100, &cancel).expect("trace");
        assert_eq!(trace.spans.len(), 2);
        assert!(trace.spans.iter().all(|span| span.trace_id == id(7)));
        assert_eq!(
            store.outline(id(7), &cancel).expect("outline").spans.len(),
            2
        );

        // The service map joins a child in the new split to its parent in the old.
        let links = store.dependencies(0, u64::MAX, &cancel).expect("links");
        let links: Vec<(&str, &str, u64, u64)> = links
            .iter()
            .map(|l| (&*l.parent, &*l.child, l.call_count, l.error_count))
            .collect();
        assert_eq!(links, [("gateway", "checkout", 40, 10)]);

        // A merge reads the old split's spans back whole.
        let mut scanned = Vec::new();
        store
            .scan(Signal::Spans, &old_split, &cancel, |records| {
                if let Records::Spans(spans) = records {
                    scanned.extend(spans);
                }
                Ok(())
            })
            .expect("scan");
        scanned.sort_by_key(|span| span.span_id);
        assert_eq!(scanned, old);
    }

    #[test]
    fn trace_search_orders_every_match_by_whole_traces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &Default::default()).expect("store");
        let resource = Arc::new(Resource::default());
        // Trace t (0..30) has t % 5 + 1 spans, one each 100 ns from 1_000 + t,
        // the last of them failing when t % 3 == 0; its spans go to two splits.
        // A search for failing spans matches traces 0, 3, ..., 27; their order
        // by duration, spans and errors comes from all their spans.
        let mut n = 0;
        let mut splits: [Vec<Span>; 2] = Default::default();
        for t in 0..30u64 {
            let count = t % 5 + 1;
            for i in 0..count {
                n += 1;
                let error = t % 3 == 0 && i == count - 1;
                splits[(i % 2) as usize].push(span(t, n, 1_000 + t + i * 100, error, &resource));
            }
        }
        for (created, mut spans) in splits.into_iter().enumerate() {
            let second = spans.split_off(spans.len() / 2);
            let batches = vec![Records::Spans(spans), Records::Spans(second)];
            add_split(&store, &store.spans, created as u64 + 1, batches);
        }
        let search = |order| {
            let filter = TraceFilter {
                tags: vec![("error".into(), "true".into())],
                start_min: 0,
                start_max: u64::MAX,
                limit: 3,
                order,
                ..TraceFilter::default()
            };
            let mut found = store
                .spans
                .find_traces(&store.span_schema, &filter, &Cancel::default())
                .expect("search");
            assert_eq!(found.total, Some(10));
            order.sort(&mut found.hits);
            found
                .hits
                .iter()
                .take(3)
                .map(|hit| (hit.id.0[15] as u64, hit.duration(), hit.spans, hit.errors))
                .collect::<Vec<_>>()
        };
        // 4 spans (t % 5 == 3: 3, 18) last 310 ns; 5 spans (24, 9) 410 ns; ties
        // go to the newer trace.
        let longest = search(TraceOrder::Longest);
        assert_eq!(
            longest,
            vec![(24, 410, 5, 1), (9, 410, 5, 1), (18, 310, 4, 1)]
        );
        assert_eq!(search(TraceOrder::MostSpans), longest);
        let shortest: Vec<u64> = search(TraceOrder::Shortest).iter().map(|t| t.0).collect();
        assert_eq!(shortest, vec![15, 0, 21]);
        let oldest: Vec<u64> = search(TraceOrder::Oldest).iter().map(|t| t.0).collect();
        assert_eq!(oldest, vec![0, 15, 6]);
        let errors = search(TraceOrder::MostErrors);
        assert!(errors.iter().all(|t| t.3 == 1), "{errors:?}");
    }

    #[test]
    fn patterns_are_counted_and_searched_and_older_splits_say_they_have_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &Default::default()).expect("store");
        let resource = Arc::new(Resource::default());
        let scope = Arc::new(Scope::default());
        let logs = |lines: &[(u64, &str)]| {
            Records::Logs(
                lines
                    .iter()
                    .map(|(time, body)| record(*time, body, &resource, &scope))
                    .collect(),
            )
        };
        add_split(
            &store,
            &store.logs,
            1,
            vec![
                logs(&[(1_000, "order 1 placed"), (1_001, "order 2 placed")]),
                logs(&[(1_002, "cache warm")]),
            ],
        );
        add_split(
            &store,
            &store.logs,
            2,
            vec![
                logs(&[(2_000, "order 3 placed"), (2_001, "order 44 placed")]),
                logs(&[(2_002, "cache warm"), (2_003, "order 5 placed")]),
            ],
        );
        // The first split as a version before patterns wrote it.
        let splits = store.logs.splits();
        let old = splits.iter().min_by_key(|split| &split.id).expect("split");
        old.meta.write().expect("meta").format = crate::store::schema::PATTERN_FORMAT - 1;

        let all = LogFilter {
            start: 0,
            end: 10_000,
            limit: 10,
            ..LogFilter::default()
        };
        let counted = store
            .log_patterns(
                &all,
                LogPatterns::new(0, 5_000, 2, (1, 0), 1),
                &Cancel::default(),
            )
            .expect("patterns");
        assert_eq!((counted.unpatterned, counted.uncounted), (3, 0));
        let summary: Vec<(u64, u64, bool)> = counted
            .patterns
            .iter()
            .map(|p| (p.id, p.count, p.sample.is_some()))
            .collect();
        let order = pattern::pattern_id("order 7 placed");
        let cache = pattern::pattern_id("cache warm");
        assert_eq!(summary, [(order, 3, true), (cache, 1, false)]);
        assert_eq!(counted.patterns[0].counts, [3, 0]);
        assert_eq!(
            counted.patterns[0]
                .sample
                .as_ref()
                .map(|r| r.time_unix_nano),
            Some(2_003),
            "the newest line"
        );

        let term = LogExpr::Term {
            field: LogField::Pattern,
            text: pattern::format_id(order),
        };
        let search = |expr: LogExpr| {
            let filter = LogFilter {
                expr: Some(expr),
                ..all.clone()
            };
            let (_, total, _) = store
                .logs
                .search_logs(&store.log_schema, &filter, &Cancel::default())
                .expect("search");
            total
        };
        assert_eq!(search(term.clone()), 3);
        assert_eq!(search(LogExpr::Not(Box::new(term))), 4);
    }

    #[test]
    fn cursor_pages_hold_every_record_once_through_ties_and_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &Default::default()).expect("store");
        let resource = Arc::new(Resource::default());
        let scope = Arc::new(Scope::default());
        // 3 splits of 2 segments; only 4 distinct times, so most records tie, and
        // every body comes twice (identical records) in different segments.
        let mut all: Vec<(u64, String)> = Vec::new();
        for s in 0..3u64 {
            let batches = (0..2u64)
                .map(|c| {
                    let records = (0..20u64)
                        .map(|i| {
                            let time = 1_000 + (i % 4) * 10;
                            let body = format!("line {} {}", s, i % 10);
                            all.push((time, body.clone()));
                            let _ = c;
                            record(time, &body, &resource, &scope)
                        })
                        .collect();
                    Records::Logs(records)
                })
                .collect();
            add_split(&store, &store.logs, s + 1, batches);
        }
        for limit in [1, 3, 7, 50, 200] {
            let mut cursor = None;
            let mut got: Vec<(u64, String)> = Vec::new();
            for page in 0.. {
                assert!(page <= all.len(), "limit {limit}: pages do not end");
                let filter = LogFilter {
                    start: 0,
                    end: u64::MAX,
                    limit,
                    after: cursor,
                    ..LogFilter::default()
                };
                let (records, total, next) = store
                    .logs
                    .search_logs(&store.log_schema, &filter, &Cancel::default())
                    .expect("search");
                assert_eq!(total, all.len() as u64);
                assert!(records.len() <= limit);
                assert!(next.is_none() || records.len() == limit);
                got.extend(
                    records
                        .iter()
                        .map(|r| (r.time_unix_nano, r.body_text().to_string())),
                );
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let times: Vec<u64> = got.iter().map(|g| g.0).collect();
            assert!(
                times.windows(2).all(|w| w[0] >= w[1]),
                "limit {limit}: newest first"
            );
            let (mut got, mut want) = (got, all.clone());
            got.sort();
            want.sort();
            assert_eq!(got, want, "limit {limit}: every record once");
        }
        // A cursor the client mangled is refused by its parser, not searched.
        assert!(LogCursor::decode("12-00000000000000zz-0").is_none());
        assert!(LogCursor::decode("12-0000000000000001").is_none());
        let cursor = LogCursor {
            time: 5,
            key: u64::MAX,
            seen: 2,
        };
        assert_eq!(LogCursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn log_search_returns_the_newest_hits_across_segments_and_splits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &Default::default()).expect("store");
        let resource = Arc::new(Resource::default());
        let scope = Arc::new(Scope::default());
        // Three splits of three commits (segments) each; times interleave across
        // them, so segments overlap in time and the newest hits are spread out.
        let mut expected = Vec::new();
        for s in 0..3u64 {
            let batches = (0..3u64)
                .map(|c| {
                    let records = (0..50u64)
                        .map(|i| {
                            let time = 1_000 + (i * 9 + c * 3 + s) * 10;
                            let body = if i % 5 == 0 { "needle found" } else { "hay" };
                            if i % 5 == 0 {
                                expected.push(time);
                            }
                            record(time, body, &resource, &scope)
                        })
                        .collect();
                    Records::Logs(records)
                })
                .collect();
            add_split(&store, &store.logs, s + 1, batches);
        }
        expected.sort_unstable_by(|a, b| b.cmp(a));
        for limit in [1, 7, 40, 500] {
            let filter = LogFilter {
                expr: Some(LogExpr::Term {
                    field: LogField::Body,
                    text: "needle".into(),
                }),
                start: 0,
                end: u64::MAX,
                limit,
                ..LogFilter::default()
            };
            let (records, total, _) = store
                .logs
                .search_logs(&store.log_schema, &filter, &Cancel::default())
                .expect("search");
            assert_eq!(total, expected.len() as u64);
            let times: Vec<u64> = records.iter().map(|r| r.time_unix_nano).collect();
            let want: Vec<u64> = expected.iter().copied().take(limit).collect();
            assert_eq!(times, want, "limit {limit}");
            assert!(records.iter().all(|r| r.service_name == "checkout"));
        }
    }

    #[test]
    fn service_health_from_segment_rollups_equals_the_scan_of_every_span() {
        use crate::store::red::MetricsQuery;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &Default::default()).expect("store");
        let resource = Arc::new(Resource::default());
        const MINUTE: u64 = 60_000_000_000;
        let base = 1_700_000_040 * 1_000_000_000; // a whole minute
                                                  // 3,000 spans over ten minutes: three operations, durations spread over
                                                  // three octaves, one in seven failing, one in four a child span; two
                                                  // splits of two segments each.
        let mut batches: Vec<Vec<Span>> = vec![Vec::new(); 4];
        for n in 0..3_000u64 {
            let start = base + n * (10 * MINUTE / 3_000);
            let mut one = span(n, n, start, n % 7 == 0, &resource);
            one.name = ["GET /", "POST /orders", "GET /health"][(n % 3) as usize].into();
            one.kind = SpanKind::Internal;
            one.end_time_unix_nano = start + 1_000_000 + (n * 7_919 % 7_000_000);
            if n % 4 == 0 {
                one.parent_span_id = Some(SpanId(9u64.to_be_bytes()));
            }
            batches[(n % 4) as usize].push(one);
        }
        let mut batches = batches.into_iter().map(Records::Spans);
        for created in 1..=2 {
            let two = batches.by_ref().take(2).collect();
            add_split(&store, &store.spans, created, two);
        }
        let ask = |step: u64, buckets: usize, by_operation: bool, roots: bool| {
            let query = MetricsQuery {
                services: Vec::new(),
                // No kind: the service has no server spans, its roots count.
                kinds: if roots {
                    Vec::new()
                } else {
                    vec![SpanKind::Internal]
                },
                by_operation,
                start: base,
                step,
                buckets,
            };
            store
                .span_metrics(&query, &Cancel::default())
                .expect("metrics")
        };
        let rolled_up = || {
            store.spans.splits().iter().all(|split| {
                split
                    .reader
                    .searcher()
                    .segment_readers()
                    .iter()
                    .all(|segment| crate::store::red::rolled_up(segment.segment_id()))
            })
        };
        // Half-minute buckets are no whole cells of a rollup: scanned.
        let scanned = ask(MINUTE / 2, 20, true, false);
        assert!(!rolled_up(), "a scan made rollups");
        let from_rollups = ask(MINUTE, 10, true, false);
        assert!(rolled_up(), "no rollup was made");
        assert_eq!(from_rollups.series.len(), 3);
        for (rolled, scanned) in from_rollups.series.iter().zip(&scanned.series) {
            assert_eq!(rolled.operation, scanned.operation);
            for (i, cell) in rolled.cells.iter().enumerate() {
                let mut pair = scanned.cells[2 * i].clone();
                pair.merge(&scanned.cells[2 * i + 1]);
                assert_eq!((cell.calls, cell.errors), (pair.calls, pair.errors));
                assert!(cell.calls > 0);
                for q in [0.5, 0.95, 0.99] {
                    assert_eq!(cell.latencies.quantile(q), pair.latencies.quantile(q));
                }
            }
        }
        // The whole range in one bucket, by the same rollups: every span, or
        // the roots only (every fourth span is a child), as a scan counts them.
        let all = ask(10 * MINUTE, 1, false, false);
        assert_eq!(all.series[0].cells[0].calls, 3_000);
        let roots = ask(10 * MINUTE, 1, false, true);
        assert_eq!(roots.series[0].cells[0].calls, 2_250);
        let scanned_roots = ask(MINUTE / 2, 20, false, true);
        let calls: u64 = scanned_roots.series[0].cells.iter().map(|c| c.calls).sum();
        assert_eq!(calls, 2_250);
        let client = MetricsQuery {
            services: Vec::new(),
            kinds: vec![SpanKind::Client],
            by_operation: false,
            start: base,
            step: 10 * MINUTE,
            buckets: 1,
        };
        assert!(store
            .span_metrics(&client, &Cancel::default())
            .expect("metrics")
            .series
            .is_empty());
    }

    #[test]
    fn a_stopped_search_returns_cancelled_and_a_trace_lookup_reads_only_its_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &Default::default()).expect("store");
        let resource = Arc::new(Resource::default());
        // One trace of 500 spans over two splits.
        for s in 0..2u64 {
            let batches = (0..2u64)
                .map(|b| {
                    let first = s * 250 + b * 125;
                    let spans = (first..first + 125)
                        .map(|i| span(9, i + 1, 10_000 - i, false, &resource))
                        .collect();
                    Records::Spans(spans)
                })
                .collect();
            add_split(&store, &store.spans, s + 1, batches);
        }
        let id = TraceId::from_halves(7, 9);
        let all = store
            .spans
            .trace(&store.span_schema, id, usize::MAX, &Cancel::default())
            .expect("trace");
        assert_eq!(
            (all.spans.len(), all.total, all.is_cut()),
            (500, 500, false)
        );
        let cut = store
            .spans
            .trace(&store.span_schema, id, 40, &Cancel::default())
            .expect("trace");
        assert_eq!((cut.spans.len(), cut.total, cut.is_cut()), (40, 500, true));
        // The earliest 40 by start time, in start order.
        let starts: Vec<u64> = cut.spans.iter().map(|s| s.start_time_unix_nano).collect();
        let earliest: Vec<u64> = all
            .spans
            .iter()
            .take(40)
            .map(|s| s.start_time_unix_nano)
            .collect();
        assert_eq!(starts, earliest);

        let stopped = Cancel::default();
        stopped.stop(Stop::ClientGone);
        let error = store
            .spans
            .trace(&store.span_schema, id, usize::MAX, &stopped)
            .expect_err("stopped");
        assert!(
            matches!(error, StoreError::Cancelled(Stop::ClientGone)),
            "{error}"
        );
        let filter = TraceFilter {
            start_max: u64::MAX,
            limit: 10,
            ..TraceFilter::default()
        };
        assert!(store
            .spans
            .find_traces(&store.span_schema, &filter, &stopped)
            .is_err());
        assert!(store
            .spans
            .dependencies(&store.span_schema, 0, u64::MAX, &stopped)
            .is_err());
        let late = Cancel::with_deadline(Instant::now());
        assert_eq!(late.stopped(), Some(Stop::TimedOut));
    }
}
