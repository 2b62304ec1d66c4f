//! The query service: the one seam between the query API (and the pages) and
//! storage, as Jaeger's `QueryService` sits over its span reader. Every method
//! takes typed filters and returns the model; handlers only parse, call and render.
//!
//! [`LocalQueries`] answers from this process's own indexes. A distributed
//! implementation answers the same calls from many nodes; the API cannot tell.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{watch, Semaphore};

use super::params::TraceSearch;
use super::tail::{self, Tail};
use super::QueryError;
use crate::config::QueryLimits;
use crate::metrics::Metrics;
use crate::model::{Clock, LogRecord, Span, SpanKind, TraceId};
use crate::store::outline::{TraceOutline, TraceSummary};
use crate::store::red::{MetricsQuery, SpanMetrics};
use crate::store::search::{
    Cancel, DependencyLink, LogCursor, LogFilter, LogPatterns, LogVolume, Stop, TraceCursor,
    TraceFilter, TraceHits, TraceOrder, TracePlace, MAX_MATCHING_TRACES,
};
use crate::store::Store;

pub type QueryResult<'a, T> = BoxFuture<'a, Result<T, QueryError>>;

/// An operation (span name) of a service, with its kind in Jaeger's words
/// (`server`, `client`, ...; empty when unspecified).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub name: String,
    pub span_kind: String,
}

/// One trace as a lookup returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub id: TraceId,
    /// The earliest spans by start time, at most `--max-spans-per-trace`, in
    /// start order.
    pub spans: Vec<Span>,
    /// How many spans the trace has in all.
    pub total: usize,
}

impl Trace {
    /// Whether spans were left out (`total` is more than were returned).
    pub fn is_cut(&self) -> bool {
        self.total > self.spans.len()
    }
}

/// The traces a search returns, in its order, how many matched in all (`None`:
/// more than [`MAX_MATCHING_TRACES`]), and where the page ended when more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct TracePage {
    pub traces: Vec<Trace>,
    pub total: Option<usize>,
    pub next: Option<TraceCursor>,
}

/// A page of a trace search by id: its traces' ids, in order, how many matched
/// in all (`None`: more than [`MAX_MATCHING_TRACES`]), and where the page ended
/// when more follow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceIds {
    pub ids: Vec<TraceId>,
    pub total: Option<usize>,
    pub next: Option<TraceCursor>,
}

/// The page of `hits` that `filter` asks for: its first `filter.limit` traces
/// after `filter.after` in `filter.order`; or why that order cannot be had.
pub fn first_traces(mut hits: TraceHits, filter: &TraceFilter) -> Result<TraceIds, QueryError> {
    if hits.total.is_none() && (filter.order != TraceOrder::Newest || filter.after.is_some()) {
        return Err(QueryError::BadRequest(format!(
            "more than {MAX_MATCHING_TRACES} traces match in this time range, too many to sort \
             or page through: only the most recent can be listed; narrow the search (a shorter \
             range, a service, an operation, tags)"
        )));
    }
    let order = filter.order;
    let mut places: Vec<(TracePlace, TraceId)> = hits
        .hits
        .drain(..)
        .map(|hit| (order.place(&hit), hit.id))
        .filter(|(place, _)| filter.after.is_none_or(|after| *place > after.last))
        .collect();
    let more = places.len() > filter.limit && hits.total.is_some();
    // Only the page is sorted: a search may match 200,000 traces.
    if places.len() > filter.limit {
        places.select_nth_unstable(filter.limit);
        places.truncate(filter.limit);
    }
    places.sort_unstable();
    let next = match places.last() {
        Some((last, _)) if more => Some(TraceCursor {
            order,
            start_min: filter.start_min,
            start_max: filter.start_max,
            last: *last,
        }),
        _ => None,
    };
    Ok(TraceIds {
        ids: places.into_iter().map(|(_, id)| id).collect(),
        total: hits.total,
        next,
    })
}

/// Summaries of the traces a search selects, in its order, and how many matched
/// in all (`None`: more than [`MAX_MATCHING_TRACES`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryPage {
    pub summaries: Vec<TraceSummary>,
    pub total: Option<usize>,
}

/// A page of log records, newest first, how many matched in all, and where the
/// next page starts (none when this one is the last, or was asked by `offset`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub records: Vec<LogRecord>,
    pub total: u64,
    pub next: Option<LogCursor>,
}

/// What the API and the pages ask of storage. Same answers whichever
/// implementation is behind it.
pub trait QueryService: Send + Sync + 'static {
    /// Every service that has spans, in name order.
    fn services(&self) -> QueryResult<'_, Vec<String>>;

    /// The operations of `service`, in name order; only those of `kind` if given.
    fn operations(
        &self,
        service: String,
        kind: Option<SpanKind>,
    ) -> QueryResult<'_, Vec<Operation>>;

    /// The traces a search names, in its order (the filter's), each cut to the
    /// span cap; ids without spans are left out.
    fn find_traces(&self, search: TraceSearch) -> QueryResult<'_, TracePage>;

    /// The ids of the traces `filter` selects, in its order, from columns (no
    /// trace is loaded).
    fn trace_ids(&self, filter: TraceFilter) -> QueryResult<'_, TraceIds>;

    /// Summaries of the traces `filter` selects, in its order, read from columns
    /// (no trace is loaded whole).
    fn trace_summaries(&self, filter: TraceFilter) -> QueryResult<'_, SummaryPage>;

    /// One trace, or `None` when no span of it is stored.
    fn trace(&self, id: TraceId) -> QueryResult<'_, Option<Trace>>;

    /// Calls between services among the spans that started in `[start, end]` (ns).
    fn dependencies(&self, start: u64, end: u64) -> QueryResult<'_, Vec<DependencyLink>>;

    /// Requests, errors and durations per service (or operation) in time
    /// buckets, from the spans.
    fn span_metrics(&self, query: MetricsQuery) -> QueryResult<'_, SpanMetrics>;

    /// Log records matching `filter`, newest first.
    fn search_logs(&self, filter: LogFilter) -> QueryResult<'_, LogPage>;

    /// How many log records match `filter`, per bucket of `volume` (empty) and
    /// level.
    fn log_volume(&self, filter: LogFilter, volume: LogVolume) -> QueryResult<'_, LogVolume>;

    /// The body patterns of the log records matching `filter`, counted over the
    /// buckets of `patterns` (empty) and against the range before.
    fn log_patterns(
        &self,
        filter: LogFilter,
        patterns: LogPatterns,
    ) -> QueryResult<'_, LogPatterns>;

    /// Follows `filter` from now on: new lines as they become searchable, each
    /// once. Refused when `--max-tails` are open.
    fn tail_logs(&self, filter: LogFilter) -> Result<Tail, QueryError>;

    /// How long one question may take (`--query-timeout`): also the bound of
    /// what is built of several calls (the analysis of many traces).
    fn timeout(&self) -> Duration;
}

/// Spans one search answer holds in all: past it, the traces that follow are cut
/// harder (each keeps at least its earliest span), so that a search cannot make
/// an answer of millions of spans.
pub const MAX_SPANS_PER_SEARCH: usize = 100_000;

/// What a query may cost: how many run at once, how long one may take, how many
/// tails are open.
#[derive(Clone)]
pub struct QueryGate {
    slots: Arc<Semaphore>,
    pub(super) tails: Arc<Semaphore>,
    pub limits: QueryLimits,
}

impl QueryGate {
    pub fn new(limits: QueryLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_concurrent)),
            tails: Arc::new(Semaphore::new(limits.max_tails)),
            limits,
        }
    }
}

/// The query service over this process's own indexes (one tenant's store).
#[derive(Clone)]
pub struct LocalQueries {
    store: Store,
    gate: QueryGate,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Becomes true when the server stops: tails end then.
    shutdown: watch::Receiver<bool>,
}

impl LocalQueries {
    pub fn new(
        store: Store,
        gate: QueryGate,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            gate,
            metrics,
            clock,
            shutdown,
        }
    }

    /// Runs a search on the blocking pool (tantivy searches are synchronous): when
    /// one of `--max-concurrent-queries` is free (waiting up to `--query-timeout`
    /// for it), stopped at `--query-timeout` or as soon as the caller's future is
    /// dropped (the client hung up).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store, &Cancel) -> Result<T, QueryError> + Send + 'static,
    ) -> Result<T, QueryError> {
        let timeout = self.gate.limits.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let cancel = Cancel::with_deadline(deadline.into_std());
        let mut guard = StopOnDrop(Some((cancel.clone(), Arc::clone(&self.metrics))));
        let slot =
            tokio::time::timeout_at(deadline, Arc::clone(&self.gate.slots).acquire_owned()).await;
        let Ok(Ok(slot)) = slot else {
            self.metrics.queries_refused.fetch_add(1, Ordering::Relaxed);
            return Err(QueryError::TooMany {
                running: self.gate.limits.max_concurrent,
                waited: timeout,
            });
        };
        let store = self.store.clone();
        let task_cancel = cancel.clone();
        // The slot is held until the work itself ends, not only this future.
        let result = tokio::task::spawn_blocking(move || {
            let result = work(&store, &task_cancel);
            drop(slot);
            result
        })
        .await;
        guard.0 = None;
        if cancel.stopped() == Some(Stop::TimedOut) {
            self.metrics.query_timed_out();
        }
        result?
    }
}

impl LocalQueries {
    /// The traces `filter` selects, unordered, with what orders them: what a
    /// cluster merges across nodes.
    pub async fn find_trace_hits(&self, filter: TraceFilter) -> Result<TraceHits, QueryError> {
        self.blocking(move |store, cancel| Ok(store.find_traces(&filter, cancel)?))
            .await
    }

    /// The outlines of these traces (those with spans here): what a cluster
    /// merges across nodes into summaries.
    pub async fn trace_outlines(
        &self,
        ids: Vec<TraceId>,
    ) -> Result<Vec<(TraceId, TraceOutline)>, QueryError> {
        self.blocking(move |store, cancel| {
            let mut outlines = Vec::with_capacity(ids.len());
            for id in ids {
                let outline = store.outline(id, cancel)?;
                if !outline.spans.is_empty() {
                    outlines.push((id, outline));
                }
            }
            Ok(outlines)
        })
        .await
    }
}

/// Stops a search when dropped armed: the future it lives in was dropped because
/// the client went away.
struct StopOnDrop(Option<(Cancel, Arc<Metrics>)>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some((cancel, metrics)) = self.0.take() {
            cancel.stop(Stop::ClientGone);
            metrics.query_client_gone();
        }
    }
}

/// Loads traces, in the order given, skipping ids with no spans: each cut to
/// `max_spans`, and all together to [`MAX_SPANS_PER_SEARCH`].
fn load_traces(
    store: &Store,
    ids: &[TraceId],
    max_spans: usize,
    cancel: &Cancel,
) -> Result<Vec<Trace>, QueryError> {
    let mut traces = Vec::with_capacity(ids.len());
    let mut budget = MAX_SPANS_PER_SEARCH;
    for &id in ids {
        let cap = max_spans.min(budget).max(1);
        let found = store.trace(id, cap, cancel)?;
        if !found.spans.is_empty() {
            budget = budget.saturating_sub(found.spans.len());
            traces.push(Trace {
                id,
                spans: found.spans,
                total: found.total,
            });
        }
    }
    Ok(traces)
}

fn search_traces(
    store: &Store,
    filter: &TraceFilter,
    max_spans: usize,
    cancel: &Cancel,
) -> Result<TracePage, QueryError> {
    let page = first_traces(store.find_traces(filter, cancel)?, filter)?;
    Ok(TracePage {
        traces: load_traces(store, &page.ids, max_spans, cancel)?,
        total: page.total,
        next: page.next,
    })
}

impl QueryService for LocalQueries {
    fn services(&self) -> QueryResult<'_, Vec<String>> {
        Box::pin(self.blocking(|store, cancel| Ok(store.services(cancel)?.into_iter().collect())))
    }

    fn operations(
        &self,
        service: String,
        kind: Option<SpanKind>,
    ) -> QueryResult<'_, Vec<Operation>> {
        Box::pin(self.blocking(move |store, cancel| {
            Ok(store
                .operations(&service, cancel)?
                .into_iter()
                .filter(|(_, k)| kind.is_none_or(|kind| kind.as_jaeger() == k))
                .map(|(name, span_kind)| Operation { name, span_kind })
                .collect())
        }))
    }

    fn find_traces(&self, search: TraceSearch) -> QueryResult<'_, TracePage> {
        let max_spans = self.gate.limits.max_spans_per_trace;
        Box::pin(self.blocking(move |store, cancel| match search {
            TraceSearch::Ids(ids) => {
                let traces = load_traces(store, &ids, max_spans, cancel)?;
                Ok(TracePage {
                    total: Some(traces.len()),
                    traces,
                    next: None,
                })
            }
            TraceSearch::Filter(filter) => search_traces(store, &filter, max_spans, cancel),
        }))
    }

    fn trace_ids(&self, filter: TraceFilter) -> QueryResult<'_, TraceIds> {
        Box::pin(self.blocking(move |store, cancel| {
            first_traces(store.find_traces(&filter, cancel)?, &filter)
        }))
    }

    fn trace_summaries(&self, filter: TraceFilter) -> QueryResult<'_, SummaryPage> {
        Box::pin(self.blocking(move |store, cancel| {
            let TraceIds { ids, total, .. } =
                first_traces(store.find_traces(&filter, cancel)?, &filter)?;
            let mut summaries = Vec::new();
            for id in ids {
                summaries.extend(store.outline(id, cancel)?.summary(id));
            }
            Ok(SummaryPage { summaries, total })
        }))
    }

    fn trace(&self, id: TraceId) -> QueryResult<'_, Option<Trace>> {
        let max_spans = self.gate.limits.max_spans_per_trace;
        Box::pin(
            self.blocking(move |store, cancel| {
                Ok(load_traces(store, &[id], max_spans, cancel)?.pop())
            }),
        )
    }

    fn dependencies(&self, start: u64, end: u64) -> QueryResult<'_, Vec<DependencyLink>> {
        Box::pin(self.blocking(move |store, cancel| Ok(store.dependencies(start, end, cancel)?)))
    }

    fn span_metrics(&self, query: MetricsQuery) -> QueryResult<'_, SpanMetrics> {
        Box::pin(self.blocking(move |store, cancel| Ok(store.span_metrics(&query, cancel)?)))
    }

    fn search_logs(&self, filter: LogFilter) -> QueryResult<'_, LogPage> {
        Box::pin(self.blocking(move |store, cancel| {
            let (records, total, next) = store.search_logs(&filter, cancel)?;
            Ok(LogPage {
                records,
                total,
                next,
            })
        }))
    }

    fn log_volume(&self, filter: LogFilter, volume: LogVolume) -> QueryResult<'_, LogVolume> {
        Box::pin(self.blocking(move |store, cancel| Ok(store.log_volume(&filter, volume, cancel)?)))
    }

    fn log_patterns(
        &self,
        filter: LogFilter,
        patterns: LogPatterns,
    ) -> QueryResult<'_, LogPatterns> {
        Box::pin(
            self.blocking(move |store, cancel| Ok(store.log_patterns(&filter, patterns, cancel)?)),
        )
    }

    fn tail_logs(&self, filter: LogFilter) -> Result<Tail, QueryError> {
        tail::spawn(
            self.clone(),
            &self.gate,
            Arc::clone(&self.clock),
            self.shutdown.clone(),
            filter,
        )
    }

    fn timeout(&self) -> Duration {
        self.gate.limits.timeout
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::store::search::TraceHit;

    /// A hit with the figures every order reads; few distinct values, so that
    /// most places are ties of the figure and of `newest`.
    fn hit(n: u64) -> TraceHit {
        TraceHit {
            id: TraceId::from_halves(n % 7 + 1, n),
            newest: 1_000 + n % 5,
            oldest: 900 + n % 3,
            first_start: 800,
            last_end: 800 + (n % 4) * 10,
            spans: (n % 3) as u32 + 1,
            errors: (n % 2) as u32,
        }
    }

    const ORDERS: [TraceOrder; 6] = [
        TraceOrder::Newest,
        TraceOrder::Oldest,
        TraceOrder::Longest,
        TraceOrder::Shortest,
        TraceOrder::MostSpans,
        TraceOrder::MostErrors,
    ];

    fn filter(order: TraceOrder, limit: usize) -> TraceFilter {
        TraceFilter {
            start_min: 0,
            start_max: 10_000,
            limit,
            order,
            ..TraceFilter::default()
        }
    }

    #[test]
    fn cursor_pages_hold_every_trace_once_in_order_through_ties() {
        let all: Vec<TraceHit> = (0..103).map(hit).collect();
        for order in ORDERS {
            let mut expected = all.clone();
            order.sort(&mut expected);
            let expected: Vec<TraceId> = expected.iter().map(|hit| hit.id).collect();
            let mut paged = Vec::new();
            let mut filter = filter(order, 10);
            loop {
                let hits = TraceHits {
                    hits: all.clone(),
                    total: Some(all.len()),
                };
                let page = first_traces(hits, &filter).expect("a page");
                assert_eq!(page.total, Some(103));
                assert!(page.ids.len() <= 10);
                paged.extend(page.ids);
                // Through its text, as a client passes it back.
                match page.next {
                    Some(next) => filter.after = TraceCursor::decode(&next.encode()),
                    None => break,
                }
                assert!(filter.after.is_some(), "a cursor reads back");
            }
            assert_eq!(paged, expected, "{order:?}");
        }
    }

    #[test]
    fn traces_arriving_between_pages_neither_repeat_nor_hide_those_listed() {
        for order in ORDERS {
            let mut stored: Vec<TraceHit> = (0..60).map(hit).collect();
            let mut filter = filter(order, 7);
            let mut seen = Vec::new();
            let mut round = 0;
            loop {
                let hits = TraceHits {
                    hits: stored.clone(),
                    total: Some(stored.len()),
                };
                let page = first_traces(hits, &filter).expect("a page");
                seen.extend(page.ids);
                let Some(next) = page.next else { break };
                filter.after = Some(next);
                // Ingest goes on: new traces land on both sides of the cursor.
                for n in 0..3 {
                    stored.push(hit(1_000 + round * 3 + n));
                }
                round += 1;
            }
            let unique: HashSet<TraceId> = seen.iter().copied().collect();
            assert_eq!(unique.len(), seen.len(), "{order:?}: a trace came twice");
            for first in (0..60).map(hit) {
                assert!(
                    unique.contains(&first.id),
                    "{order:?}: {first:?} was skipped"
                );
            }
        }
    }

    #[test]
    fn over_the_cap_only_the_newest_first_page_is_had() {
        let hits = || TraceHits {
            hits: (0..5).map(hit).collect(),
            total: None,
        };
        let page = first_traces(hits(), &filter(TraceOrder::Newest, 3)).expect("newest");
        assert_eq!((page.ids.len(), page.next), (3, None));
        assert!(first_traces(hits(), &filter(TraceOrder::Longest, 3)).is_err());
        let mut paged = filter(TraceOrder::Newest, 3);
        paged.after = Some(TraceCursor {
            order: TraceOrder::Newest,
            start_min: 0,
            start_max: 10_000,
            last: TraceOrder::Newest.place(&hit(1)),
        });
        let Err(QueryError::BadRequest(message)) = first_traces(hits(), &paged) else {
            panic!("a cursor over the cap is refused")
        };
        assert!(message.contains("narrow the search"), "{message}");
    }

    #[test]
    fn malformed_cursors_are_refused() {
        let good = TraceCursor {
            order: TraceOrder::Longest,
            start_min: 5,
            start_max: 9,
            last: TraceOrder::Longest.place(&hit(4)),
        };
        assert_eq!(TraceCursor::decode(&good.encode()), Some(good));
        let text = good.encode();
        for bad in [
            "",
            "longest",
            &text[..text.len() - 1],
            &format!("{text}-1"),
            &text.replacen("longest", "widest", 1),
            &text.replacen("-5-9-", "-9-5-", 1),
        ] {
            assert_eq!(TraceCursor::decode(bad), None, "{bad}");
        }
    }
}
