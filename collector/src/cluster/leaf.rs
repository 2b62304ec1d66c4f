//! Leaf searches: what one node asks another in a cluster, over the other's
//! query API (`POST /internal/leaf`, postcard bodies, the tenant's query token).
//! A leaf answers over its own splits not yet handed over (ingest nodes: the
//! recent data), or over published splits the asking node assigned it (search
//! nodes: each split goes to one node by rendezvous hashing, so their caches
//! stay warm). The answers merge into what one box would answer.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::metastore::SplitRow;
use crate::model::{LogRecord, Span, TraceId};
use crate::query::params::TraceSearch;
use crate::query::service::{LocalQueries, QueryService, Trace, MAX_SPANS_PER_SEARCH};
use crate::query::QueryError;
use crate::store::outline::{TraceOutline, TraceSummary};
use crate::store::red::{MetricsQuery, SpanMetrics};
use crate::store::search::{
    log_page, DependencyLink, LogCursor, LogFilter, LogPatterns, LogVolume, TraceFilter, TraceHit,
    TraceHits, MAX_MATCHING_TRACES,
};

/// The route leaves answer on.
pub const PATH: &str = "/internal/leaf";

/// Largest leaf request accepted (the published splits it names).
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeafQuery {
    Services,
    /// Operations of a service, with their kinds.
    Operations(String),
    /// The traces a filter selects, with what orders them.
    FindTraces(TraceFilter),
    /// Spans of these traces.
    Traces(Vec<TraceId>),
    /// Outlines of these traces (columns only).
    Outlines(Vec<TraceId>),
    Dependencies {
        start: u64,
        end: u64,
    },
    Logs(LogFilter),
    SpanMetrics(MetricsQuery),
    /// Log records per bucket and level: the filter, and the empty buckets.
    LogVolume(LogFilter, LogVolume),
    /// Body patterns: the filter, and the empty request.
    LogPatterns(LogFilter, LogPatterns),
}

impl LeafQuery {
    /// Whose splits the question reads.
    pub fn signal(&self) -> crate::model::Signal {
        use crate::model::Signal;
        match self {
            LeafQuery::Logs(_) | LeafQuery::LogVolume(..) | LeafQuery::LogPatterns(..) => {
                Signal::Logs
            }
            LeafQuery::Services
            | LeafQuery::Operations(_)
            | LeafQuery::FindTraces(_)
            | LeafQuery::Traces(_)
            | LeafQuery::Outlines(_)
            | LeafQuery::Dependencies { .. }
            | LeafQuery::SpanMetrics(_) => Signal::Spans,
        }
    }
}

/// Which splits a leaf searches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeafScope {
    /// Its own splits, but for these (published ones the asking node searches).
    Own { exclude: Vec<String> },
    /// These published splits, by id (fetched into its cache as needed). The
    /// leaf reads their rows from the metastore itself, for the caller's tenant
    /// only: what a caller sends names splits, never where their bytes are.
    Published(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeafRequest {
    pub scope: LeafScope,
    pub query: LeafQuery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LeafAnswer {
    Services(Vec<String>),
    Operations(Vec<(String, String)>),
    Hits(TraceHits),
    Traces(Vec<(TraceId, Vec<Span>, usize)>),
    Outlines(Vec<(TraceId, TraceOutline)>),
    Dependencies(Vec<DependencyLink>),
    Logs { records: Vec<LogRecord>, total: u64 },
    SpanMetrics(SpanMetrics),
    LogVolume(LogVolume),
    LogPatterns(LogPatterns),
}

/// Answers `query` over the splits `queries` searches.
pub async fn answer(queries: &LocalQueries, query: LeafQuery) -> Result<LeafAnswer, QueryError> {
    Ok(match query {
        LeafQuery::Services => LeafAnswer::Services(queries.services().await?),
        LeafQuery::Operations(service) => LeafAnswer::Operations(
            queries
                .operations(service, None)
                .await?
                .into_iter()
                .map(|op| (op.name, op.span_kind))
                .collect(),
        ),
        LeafQuery::FindTraces(filter) => LeafAnswer::Hits(queries.find_trace_hits(filter).await?),
        LeafQuery::Traces(ids) => LeafAnswer::Traces(
            queries
                .find_traces(TraceSearch::Ids(ids))
                .await?
                .traces
                .into_iter()
                .map(|trace| (trace.id, trace.spans, trace.total))
                .collect(),
        ),
        LeafQuery::SpanMetrics(query) => {
            LeafAnswer::SpanMetrics(queries.span_metrics(query).await?)
        }
        LeafQuery::Outlines(ids) => LeafAnswer::Outlines(queries.trace_outlines(ids).await?),
        LeafQuery::LogVolume(filter, volume) => {
            LeafAnswer::LogVolume(queries.log_volume(filter, volume).await?)
        }
        LeafQuery::LogPatterns(filter, patterns) => {
            LeafAnswer::LogPatterns(queries.log_patterns(filter, patterns).await?)
        }
        LeafQuery::Dependencies { start, end } => {
            LeafAnswer::Dependencies(queries.dependencies(start, end).await?)
        }
        LeafQuery::Logs(filter) => {
            let page = queries.search_logs(filter).await?;
            LeafAnswer::Logs {
                records: page.records,
                total: page.total,
            }
        }
    })
}

fn mismatch(what: &str) -> QueryError {
    QueryError::Unavailable(format!(
        "a node of the cluster answered something other than {what}: are all nodes the same version?"
    ))
}

pub fn services(answers: Vec<LeafAnswer>) -> Result<Vec<String>, QueryError> {
    let mut all = BTreeSet::new();
    for answer in answers {
        let LeafAnswer::Services(services) = answer else {
            return Err(mismatch("services"));
        };
        all.extend(services);
    }
    Ok(all.into_iter().collect())
}

pub fn operations(answers: Vec<LeafAnswer>) -> Result<Vec<(String, String)>, QueryError> {
    let mut all = BTreeSet::new();
    for answer in answers {
        let LeafAnswer::Operations(operations) = answer else {
            return Err(mismatch("operations"));
        };
        all.extend(operations);
    }
    Ok(all.into_iter().collect())
}

/// The traces of every answer as one box would have found them: a trace's hits
/// merged, the total counted over the union (unknown when an answer's was, or
/// when the union passes [`MAX_MATCHING_TRACES`]).
pub fn hits(answers: Vec<LeafAnswer>) -> Result<TraceHits, QueryError> {
    let mut merged: HashMap<TraceId, TraceHit> = HashMap::new();
    let mut complete = true;
    for answer in answers {
        let LeafAnswer::Hits(hits) = answer else {
            return Err(mismatch("trace ids"));
        };
        complete &= hits.total.is_some();
        for hit in hits.hits {
            merged
                .entry(hit.id)
                .and_modify(|known| known.merge(&hit))
                .or_insert(hit);
        }
    }
    let total = (complete && merged.len() <= MAX_MATCHING_TRACES).then_some(merged.len());
    Ok(TraceHits {
        hits: merged.into_values().collect(),
        total,
    })
}

/// The traces `ids` names, in that order, their spans gathered from every answer:
/// each span once (by span id), the earliest `max_spans` by start, and all
/// together within [`MAX_SPANS_PER_SEARCH`], as one box cuts them.
pub fn traces(
    answers: Vec<LeafAnswer>,
    ids: &[TraceId],
    max_spans: usize,
) -> Result<Vec<Trace>, QueryError> {
    let mut found: HashMap<TraceId, (Vec<Span>, usize)> = HashMap::new();
    for answer in answers {
        let LeafAnswer::Traces(traces) = answer else {
            return Err(mismatch("traces"));
        };
        for (id, spans, total) in traces {
            let entry = found.entry(id).or_default();
            entry.0.extend(spans);
            entry.1 += total;
        }
    }
    let mut budget = MAX_SPANS_PER_SEARCH;
    let mut traces = Vec::new();
    for id in ids {
        let Some((mut spans, total)) = found.remove(id) else {
            continue;
        };
        let mut seen = HashSet::new();
        spans.sort_by_key(|span| (span.start_time_unix_nano, span.span_id));
        spans.retain(|span| seen.insert(span.span_id));
        spans.truncate(max_spans.min(budget).max(1));
        budget = budget.saturating_sub(spans.len());
        traces.push(Trace {
            id: *id,
            total: total.max(spans.len()),
            spans,
        });
    }
    Ok(traces)
}

/// Summaries of the traces `ids` names, in that order, from the parts of their
/// outlines in every answer.
pub fn summaries(
    answers: Vec<LeafAnswer>,
    ids: &[TraceId],
) -> Result<Vec<TraceSummary>, QueryError> {
    let mut found: HashMap<TraceId, TraceOutline> = HashMap::new();
    for answer in answers {
        let LeafAnswer::Outlines(outlines) = answer else {
            return Err(mismatch("trace outlines"));
        };
        for (id, outline) in outlines {
            found.entry(id).or_default().merge(outline);
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| found.get(id)?.summary(*id))
        .collect())
}

/// Requests, errors and durations, merged over the answers.
pub fn span_metrics(answers: Vec<LeafAnswer>) -> Result<SpanMetrics, QueryError> {
    let mut metrics = SpanMetrics::default();
    for answer in answers {
        let LeafAnswer::SpanMetrics(part) = answer else {
            return Err(mismatch("span metrics"));
        };
        metrics.merge(part);
    }
    Ok(metrics)
}

/// Log records per bucket and level, summed over the answers into `volume`.
pub fn log_volume(
    answers: Vec<LeafAnswer>,
    mut volume: LogVolume,
) -> Result<LogVolume, QueryError> {
    for answer in answers {
        let LeafAnswer::LogVolume(part) = answer else {
            return Err(mismatch("a log volume"));
        };
        volume.merge(&part);
    }
    Ok(volume)
}

/// Body patterns, summed over the answers into `patterns` (empty).
pub fn log_patterns(
    answers: Vec<LeafAnswer>,
    patterns: LogPatterns,
) -> Result<LogPatterns, QueryError> {
    let mut parts = Vec::with_capacity(answers.len());
    for answer in answers {
        let LeafAnswer::LogPatterns(part) = answer else {
            return Err(mismatch("log patterns"));
        };
        parts.push(part);
    }
    Ok(patterns.merge(parts))
}

/// Calls between services, summed over the answers.
pub fn dependencies(answers: Vec<LeafAnswer>) -> Result<Vec<DependencyLink>, QueryError> {
    let mut merged: HashMap<(String, String), DependencyLink> = HashMap::new();
    for answer in answers {
        let LeafAnswer::Dependencies(links) = answer else {
            return Err(mismatch("dependencies"));
        };
        for link in links {
            match merged.entry((link.parent.clone(), link.child.clone())) {
                std::collections::hash_map::Entry::Occupied(mut known) => {
                    let known = known.get_mut();
                    known.call_count += link.call_count;
                    known.error_count += link.error_count;
                    known.latencies.merge(&link.latencies);
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(link);
                }
            }
        }
    }
    let mut links: Vec<DependencyLink> = merged.into_values().collect();
    links.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
    Ok(links)
}

/// The `limit` newest records over every answer (past `offset`, or after
/// `cursor`), how many matched in all, and where the next page starts.
pub fn logs(
    answers: Vec<LeafAnswer>,
    offset: usize,
    cursor: Option<&LogCursor>,
    limit: usize,
) -> Result<(Vec<LogRecord>, u64, Option<LogCursor>), QueryError> {
    let mut all = Vec::new();
    let mut total = 0;
    for answer in answers {
        let LeafAnswer::Logs { records, total: n } = answer else {
            return Err(mismatch("log records"));
        };
        all.extend(records);
        total += n;
    }
    if offset == 0 {
        let (page, next) = log_page(all, cursor, limit)?;
        return Ok((page, total, next));
    }
    // Stable: records of the same time keep the order the answers gave them.
    all.sort_by_key(|record| std::cmp::Reverse(record.time_unix_nano));
    all.drain(..offset.min(all.len()));
    all.truncate(limit);
    Ok((all, total, None))
}

/// The node that searches `split` among `nodes`: the highest hash of the pair
/// (rendezvous hashing: a node that comes or goes moves only its own share).
pub fn owner<'a>(split: &str, nodes: &'a [String]) -> Option<&'a String> {
    nodes.iter().max_by_key(|node| {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(node.as_str(), split), &mut hasher);
        std::hash::Hasher::finish(&hasher)
    })
}

/// What answers leaf requests on this node (and the local part of its own
/// cluster searches): every tenant's own splits, and the split cache.
pub struct LeafServer {
    pub cluster: std::sync::Arc<super::Cluster>,
    /// Each tenant's indexes on this node, by tenant id.
    pub stores: Vec<crate::store::Store>,
    /// Each tenant's name, by tenant id.
    pub tenants: Vec<String>,
    pub gate: crate::query::service::QueryGate,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub clock: std::sync::Arc<dyn crate::model::Clock>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl LeafServer {
    /// Searches over `tenant`'s own splits (but `exclude`) and the published
    /// `rows` (fetched into the cache as needed).
    pub async fn queries(
        &self,
        tenant: usize,
        exclude: Option<&[String]>,
        rows: &[SplitRow],
        signal: crate::model::Signal,
    ) -> Result<LocalQueries, QueryError> {
        let store = self
            .stores
            .get(tenant)
            .ok_or_else(|| QueryError::BadRequest(format!("no tenant {tenant}")))?;
        let mut splits = match exclude {
            Some(exclude) => {
                let exclude: HashSet<&str> = exclude.iter().map(String::as_str).collect();
                store
                    .of(signal)
                    .splits()
                    .into_iter()
                    .filter(|split| !exclude.contains(split.id.as_str()))
                    .collect()
            }
            None => Vec::new(),
        };
        if !rows.is_empty() {
            let cache = self.cluster.cache.as_ref().ok_or_else(|| {
                QueryError::Unavailable(format!(
                    "node {} does not search published splits (--role {})",
                    self.cluster.settings.node_id,
                    self.cluster.role.as_str()
                ))
            })?;
            let fetched = tokio::time::timeout(self.gate.limits.timeout, cache.get(rows))
                .await
                .map_err(|_| {
                    QueryError::Unavailable(format!(
                        "fetching {} splits from object storage took longer than --query-timeout",
                        rows.len()
                    ))
                })?
                .map_err(|e| QueryError::Unavailable(format!("cannot fetch splits: {e}")))?;
            splits.extend(fetched);
        }
        let view = match signal {
            crate::model::Signal::Spans => store.view(splits, Vec::new()),
            crate::model::Signal::Logs => store.view(Vec::new(), splits),
        };
        Ok(LocalQueries::new(
            view,
            self.gate.clone(),
            std::sync::Arc::clone(&self.metrics),
            std::sync::Arc::clone(&self.clock),
            self.shutdown.clone(),
        ))
    }

    /// The name of tenant `tenant` (its id on this node).
    fn cluster_tenant_name(&self, tenant: usize) -> Result<String, QueryError> {
        self.tenants
            .get(tenant)
            .cloned()
            .ok_or_else(|| QueryError::BadRequest(format!("no tenant {tenant}")))
    }

    /// Answers a leaf request of another node.
    pub async fn serve(
        &self,
        tenant: usize,
        request: LeafRequest,
    ) -> Result<LeafAnswer, QueryError> {
        let signal = request.query.signal();
        let queries = match &request.scope {
            LeafScope::Own { exclude } => self.queries(tenant, Some(exclude), &[], signal).await?,
            LeafScope::Published(ids) => {
                let name = self.cluster_tenant_name(tenant)?;
                let rows = self
                    .cluster
                    .metastore
                    .published_by_id(&name, signal, ids)
                    .await
                    .map_err(|e| QueryError::Unavailable(format!("cannot list splits: {e}")))?;
                if rows.len() != ids.len() {
                    // Merged away or expired since the asker listed them: its
                    // answer would be wrong either way, so it asks again.
                    return Err(QueryError::Unavailable(format!(
                        "{} of the {} splits asked for are no longer published",
                        ids.len() - rows.len(),
                        ids.len()
                    )));
                }
                self.queries(tenant, None, &rows, signal).await?
            }
        };
        answer(&queries, request.query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_moves_only_the_share_of_a_node_that_leaves() {
        let nodes: Vec<String> = ["search-1", "search-2", "search-3"]
            .map(String::from)
            .to_vec();
        let splits: Vec<String> = (0..3000).map(|n| format!("split-{n}")).collect();
        let before: Vec<&String> = splits
            .iter()
            .map(|s| owner(s, &nodes).expect("owner"))
            .collect();
        for node in &nodes {
            let share = before.iter().filter(|owner| **owner == node).count();
            assert!((800..1200).contains(&share), "{node} owns {share} of 3000");
        }
        let fewer: Vec<String> = nodes[..2].to_vec();
        for (split, owner_before) in splits.iter().zip(&before) {
            let now = owner(split, &fewer).expect("owner");
            if *owner_before != "search-3" {
                assert_eq!(now, *owner_before, "{split} moved though its node stayed");
            }
        }
        assert_eq!(owner("x", &[]), None);
    }
}
