//! Trace outlines: a trace's shape read from its columns (ids, times, service,
//! error flag), without its documents but the root span's. Enough to summarise
//! a trace for a result list, as Jaeger's `/api/v3/trace-summaries` does, and
//! mergeable across the nodes that each hold part of a trace.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocAddress, SegmentOrdinal};

use super::error::StoreError;
use super::schema::{columns, SpanSchema};
use super::search::{span_at, Cancel, SpanColumnReaders, CHECK_EVERY};
use super::SignalIndex;
use crate::model::TraceId;

/// One span as its columns say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutlineSpan {
    pub span_id: u64,
    /// 0 for a root span.
    pub parent_id: u64,
    pub start: u64,
    pub end: u64,
    /// Its service, an index into [`TraceOutline::services`].
    pub service: u32,
    pub error: bool,
}

/// The spans of one trace as columns, deduplicated by span id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceOutline {
    pub services: Vec<String>,
    pub spans: Vec<OutlineSpan>,
    /// The names of the spans that may be the root: those without a parent and
    /// the earliest, by span id.
    pub names: Vec<(u64, String)>,
}

/// A service's share of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpans {
    pub name: String,
    pub spans: u64,
    pub errors: u64,
}

/// What a result list shows of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    pub id: TraceId,
    /// Service and name of the root span: the earliest span without a parent,
    /// else the earliest span.
    pub root_service: String,
    pub root_name: String,
    /// Earliest start and latest end of its spans, ns.
    pub start: u64,
    pub end: u64,
    pub spans: u64,
    pub errors: u64,
    /// Spans whose parent is not in the trace.
    pub orphans: u64,
    /// Services in order of their first span.
    pub services: Vec<ServiceSpans>,
}

impl TraceOutline {
    /// Adds what another part of the data holds of the same trace.
    pub fn merge(&mut self, other: TraceOutline) {
        let mut seen: HashSet<u64> = self.spans.iter().map(|span| span.span_id).collect();
        let mut index: HashMap<String, u32> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i as u32))
            .collect();
        for span in other.spans {
            if !seen.insert(span.span_id) {
                continue;
            }
            let name = other
                .services
                .get(span.service as usize)
                .cloned()
                .unwrap_or_default();
            let service = *index.entry(name.clone()).or_insert_with(|| {
                self.services.push(name);
                (self.services.len() - 1) as u32
            });
            self.spans.push(OutlineSpan { service, ..span });
        }
        for (id, name) in other.names {
            if !self.names.iter().any(|(known, _)| *known == id) {
                self.names.push((id, name));
            }
        }
    }

    /// The span a summary names the trace by: the earliest without a parent,
    /// else the earliest.
    fn root(&self) -> Option<&OutlineSpan> {
        let earliest = |roots_only: bool| {
            self.spans
                .iter()
                .filter(|span| !roots_only || span.parent_id == 0)
                .min_by_key(|span| (span.start, span.span_id))
        };
        earliest(true).or_else(|| earliest(false))
    }

    /// The ids of the spans whose names [`Self::summary`] may need.
    fn root_candidates(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .spans
            .iter()
            .filter(|span| span.parent_id == 0)
            .map(|span| span.span_id)
            .collect();
        if let Some(root) = self.root() {
            ids.push(root.span_id);
        }
        ids
    }

    /// The summary of trace `id`, or `None` when it has no spans.
    pub fn summary(&self, id: TraceId) -> Option<TraceSummary> {
        let root = self.root()?;
        let service_name = |i: u32| self.services.get(i as usize).cloned().unwrap_or_default();
        let ids: HashSet<u64> = self.spans.iter().map(|span| span.span_id).collect();
        let mut spans: Vec<&OutlineSpan> = self.spans.iter().collect();
        spans.sort_by_key(|span| (span.start, span.span_id));
        let mut services: Vec<ServiceSpans> = Vec::new();
        let mut place: HashMap<u32, usize> = HashMap::new();
        for span in &spans {
            let at = *place.entry(span.service).or_insert_with(|| {
                services.push(ServiceSpans {
                    name: service_name(span.service),
                    spans: 0,
                    errors: 0,
                });
                services.len() - 1
            });
            services[at].spans += 1;
            services[at].errors += u64::from(span.error);
        }
        Some(TraceSummary {
            id,
            root_service: service_name(root.service),
            root_name: self
                .names
                .iter()
                .find(|(span, _)| *span == root.span_id)
                .map(|(_, name)| name.clone())
                .unwrap_or_default(),
            start: spans.iter().map(|span| span.start).min().unwrap_or(0),
            end: spans.iter().map(|span| span.end).max().unwrap_or(0),
            spans: spans.len() as u64,
            errors: spans.iter().filter(|span| span.error).count() as u64,
            orphans: spans
                .iter()
                .filter(|span| span.parent_id != 0 && !ids.contains(&span.parent_id))
                .count() as u64,
            services,
        })
    }
}

/// The columns an outline reads, for one segment.
struct OutlineColumns {
    ids: SpanColumnReaders,
    error: Option<Column<u64>>,
    service: Option<StrColumn>,
}

impl SignalIndex {
    /// The outline of a trace from every split: its spans' columns, and the
    /// names of the spans that may be its root (read from their documents).
    pub(super) fn outline(
        &self,
        schema: &SpanSchema,
        trace_id: TraceId,
        cancel: &Cancel,
    ) -> Result<TraceOutline, StoreError> {
        let mut outline = TraceOutline::default();
        let mut services: HashMap<String, u32> = HashMap::new();
        let mut seen: HashSet<u64> = HashSet::new();
        // Where each span's document is, to read the names of root candidates.
        let mut places: HashMap<u64, (usize, DocAddress)> = HashMap::new();
        let documents = self.trace_documents(schema, trace_id, cancel)?;
        for (i, (split, searcher, addresses)) in documents.iter().enumerate() {
            let mut segment: Option<(SegmentOrdinal, OutlineColumns)> = None;
            for (n, &address) in addresses.iter().enumerate() {
                if n.is_multiple_of(CHECK_EVERY) {
                    cancel.check()?;
                }
                let readers = match &segment {
                    Some((ord, readers)) if *ord == address.segment_ord => readers,
                    _ => {
                        let ord = address.segment_ord;
                        let fast = searcher.segment_reader(ord).fast_fields();
                        let readers = OutlineColumns {
                            ids: SpanColumnReaders::open(split, searcher, ord, Some(trace_id))?,
                            error: split.u64_column(searcher, ord, columns::ERROR).ok(),
                            service: fast.str(columns::SERVICE)?,
                        };
                        &segment.insert((ord, readers)).1
                    }
                };
                let doc = address.doc_id;
                let columns = readers.ids.get(doc);
                if !seen.insert(columns.span_id) {
                    continue;
                }
                let mut name = String::new();
                if let Some(service) = &readers.service {
                    if let Some(ord) = service.term_ords(doc).next() {
                        service.ord_to_str(ord, &mut name)?;
                    }
                }
                let service = *services.entry(name.clone()).or_insert_with(|| {
                    outline.services.push(name);
                    (outline.services.len() - 1) as u32
                });
                outline.spans.push(OutlineSpan {
                    span_id: columns.span_id,
                    parent_id: columns.parent_id,
                    start: columns.start,
                    end: columns.start.saturating_add(columns.duration),
                    service,
                    error: readers.error.as_ref().and_then(|c| c.first(doc)) == Some(1),
                });
                places.insert(columns.span_id, (i, address));
            }
        }
        for span_id in outline.root_candidates() {
            if outline.names.iter().any(|(known, _)| *known == span_id) {
                continue;
            }
            let Some(&(i, address)) = places.get(&span_id) else {
                continue;
            };
            cancel.check()?;
            let (split, searcher, _) = &documents[i];
            let readers =
                SpanColumnReaders::open(split, searcher, address.segment_ord, Some(trace_id))?;
            let span = span_at(schema, split, searcher, &readers, address)?;
            outline.names.push((span_id, span.name.to_string()));
        }
        Ok(outline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(span_id: u64, parent_id: u64, start: u64, service: u32, error: bool) -> OutlineSpan {
        OutlineSpan {
            span_id,
            parent_id,
            start,
            end: start + 10,
            service,
            error,
        }
    }

    #[test]
    fn parts_of_a_trace_merge_into_one_summary() {
        let mut here = TraceOutline {
            services: vec!["gateway".into(), "orders".into()],
            spans: vec![span(1, 0, 100, 0, false), span(2, 1, 110, 1, true)],
            names: vec![(1, "GET /".into())],
        };
        // Another node holds a copy of span 2, a span of another service, and an
        // orphan whose parent never came.
        let there = TraceOutline {
            services: vec!["email".into(), "orders".into()],
            spans: vec![
                span(2, 1, 110, 1, true),
                span(3, 2, 120, 0, false),
                span(4, 99, 130, 1, true),
            ],
            names: vec![],
        };
        here.merge(there);
        let summary = here.summary(TraceId([7; 16])).expect("spans");
        assert_eq!(summary.root_service, "gateway");
        assert_eq!(summary.root_name, "GET /");
        assert_eq!((summary.start, summary.end), (100, 140));
        assert_eq!((summary.spans, summary.errors, summary.orphans), (4, 2, 1));
        let services: Vec<(&str, u64, u64)> = summary
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.spans, s.errors))
            .collect();
        assert_eq!(
            services,
            [("gateway", 1, 0), ("orders", 2, 2), ("email", 1, 0)]
        );
    }

    #[test]
    fn a_trace_without_a_root_is_named_by_its_earliest_span() {
        let outline = TraceOutline {
            services: vec!["a".into(), "b".into()],
            spans: vec![span(5, 9, 300, 0, false), span(6, 9, 200, 1, false)],
            names: vec![(6, "late".into())],
        };
        let summary = outline.summary(TraceId([1; 16])).expect("spans");
        assert_eq!(
            (summary.root_service.as_str(), summary.root_name.as_str()),
            ("b", "late")
        );
        assert_eq!(summary.orphans, 2);
        assert_eq!(TraceOutline::default().summary(TraceId([1; 16])), None);
    }
}
