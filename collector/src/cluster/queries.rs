//! The query service of a node that searches in a cluster. Each question goes
//! to every node that holds part of the answer, and the parts merge into what
//! one box holding all the data would answer:
//!
//! - published splits (listed in the metastore, minus those a split's time
//!   range, services or trace-id filter rule out) are spread over the live
//!   search nodes by rendezvous hashing; each searches its share from its cache
//!   (a node that does not answer has its share searched here instead);
//! - every live ingest node searches its own splits not yet handed over, but
//!   for those this listing already holds (so nothing is counted twice, and a
//!   split published meanwhile is still on the node that made it: it stays
//!   there [`super::publish::grace`] after).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tracing::warn;

use super::leaf::{self, LeafAnswer, LeafQuery, LeafRequest, LeafScope, LeafServer};
use super::metastore::SplitRow;
use super::HEARTBEAT;
use crate::access::AccessControl;
use crate::model::{Signal, SpanKind, TraceId};
use crate::query::params::TraceSearch;
use crate::query::partial;
use crate::query::service::{
    first_traces, LogPage, Operation, QueryResult, QueryService, SummaryPage, Trace, TraceIds,
    TracePage,
};
use crate::query::tail::{self, Tail};
use crate::query::QueryError;
use crate::store::red::{MetricsQuery, SpanMetrics};
use crate::store::search::{
    DependencyLink, LogCursor, LogFilter, LogPatterns, LogVolume, TraceFilter,
};

/// Whether a published split of logs may hold lines `filter` matches (by its
/// services and its trace-id filter).
fn may_hold_logs(row: &SplitRow, filter: &LogFilter) -> bool {
    filter
        .service
        .as_ref()
        .is_none_or(|service| row.services.contains(service))
        && filter
            .trace_id
            .is_none_or(|id| row.trace_filter.may_contain(&id))
}

#[derive(Clone)]
pub struct ClusterQueries {
    leaves: Arc<LeafServer>,
    access: Arc<AccessControl>,
    tenant: usize,
}

fn unavailable(e: impl std::fmt::Display) -> QueryError {
    QueryError::Unavailable(format!("cluster storage does not answer: {e}"))
}

/// A node's address without the scheme, as a URL.
/// How the question spreads.
#[derive(Clone, Copy, PartialEq)]
enum Spread {
    /// Published splits over the search nodes.
    Wide,
    /// Every published split searched here (the service map joins spans across
    /// splits, so they must meet in one place).
    Here,
}

impl ClusterQueries {
    pub fn new(
        leaves: Arc<LeafServer>,
        access: Arc<AccessControl>,
        tenant: usize,
    ) -> ClusterQueries {
        ClusterQueries {
            leaves,
            access,
            tenant,
        }
    }

    fn tenant_name(&self) -> &str {
        &self.access.names()[self.tenant]
    }

    /// Asks another node.
    async fn remote(&self, address: &str, request: &LeafRequest) -> Result<LeafAnswer, String> {
        let body = postcard::to_allocvec(request).map_err(|e| e.to_string())?;
        let peers = &self.leaves.cluster.peers;
        let mut call = peers
            .http
            .post(peers.url(address, leaf::PATH))
            .timeout(self.leaves.gate.limits.timeout)
            .header("content-type", "application/octet-stream")
            .header(crate::access::ORG_ID_HEADER, self.tenant_name())
            .body(body);
        let token = match &self.leaves.cluster.settings.token {
            Some(token) => Some(token.clone()),
            None => self.access.query_token(self.tenant),
        };
        if let Some(token) = token {
            call = call.bearer_auth(token);
        }
        let response = call.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
        }
        postcard::from_bytes(&bytes).map_err(|e| format!("undecodable answer: {e}"))
    }

    /// Asks every node that holds part of the answer to `query` over `signal`'s
    /// data in `[start, end]`; `keep` rules published splits out by their
    /// metadata.
    async fn gather(
        &self,
        signal: Signal,
        (start, end): (u64, u64),
        keep: impl Fn(&SplitRow) -> bool,
        query: LeafQuery,
        spread: Spread,
    ) -> Result<Vec<LeafAnswer>, QueryError> {
        let cluster = &self.leaves.cluster;
        let me = cluster.settings.node_id.clone();
        let listed = cluster
            .metastore
            .published(self.tenant_name(), signal, start, end)
            .await
            .map_err(unavailable)?;
        let exclude: Vec<String> = listed.iter().map(|row| row.id.clone()).collect();
        let nodes = cluster
            .metastore
            .live_nodes(HEARTBEAT * 3)
            .await
            .map_err(unavailable)?;
        let mut searchers: Vec<String> = match spread {
            Spread::Wide => nodes
                .iter()
                .filter(|node| node.role == "search" || node.role == "all")
                .map(|node| node.id.clone())
                .collect(),
            Spread::Here => Vec::new(),
        };
        if !searchers.contains(&me) {
            searchers.push(me.clone());
        }
        let mut groups: HashMap<String, Vec<SplitRow>> = HashMap::new();
        for row in listed.into_iter().filter(|row| keep(row)) {
            if let Some(owner) = leaf::owner(&row.id, &searchers) {
                groups.entry(owner.clone()).or_default().push(row);
            }
        }
        let addresses: HashMap<&str, &str> = nodes
            .iter()
            .map(|node| (node.id.as_str(), node.address.as_str()))
            .collect();

        // Here: this node's own splits (but those listed) and its share.
        let mine = groups.remove(&me).unwrap_or_default();
        let here = async {
            let queries = self
                .leaves
                .queries(self.tenant, Some(&exclude), &mine, signal)
                .await?;
            leaf::answer(&queries, query.clone()).await
        };
        // Other search nodes: their shares, searched here if they fail.
        let shares = groups.into_iter().map(|(node, rows)| {
            let query = query.clone();
            let address = addresses.get(node.as_str()).map(|a| a.to_string());
            async move {
                let request = LeafRequest {
                    scope: LeafScope::Published(rows.iter().map(|row| row.id.clone()).collect()),
                    query: query.clone(),
                };
                let failure = match address {
                    Some(address) => match self.remote(&address, &request).await {
                        Ok(answer) => return Ok(answer),
                        Err(e) => e,
                    },
                    None => "no address".to_string(),
                };
                warn!(node = %node, error = %failure, splits = rows.len(), "a search node did not answer; searching its share here");
                let queries = self.leaves.queries(self.tenant, None, &rows, signal).await?;
                leaf::answer(&queries, query).await
            }
        });
        // Ingest nodes: what they have not handed over yet.
        let ingesters = nodes
            .iter()
            .filter(|node| (node.role == "ingest" || node.role == "all") && node.id != me)
            .map(|node| {
                let request = LeafRequest {
                    scope: LeafScope::Own {
                        exclude: exclude.clone(),
                    },
                    query: query.clone(),
                };
                async move {
                    match self.remote(&node.address, &request).await {
                        Ok(answer) => Ok(Some(answer)),
                        Err(e) => {
                            warn!(node = %node.id, error = %e, "an ingest node did not answer; its data not yet published is left out");
                            partial::left_out(format!(
                                "ingest node {} did not answer ({e}): the records it has not yet published are left out of this answer",
                                node.id
                            ));
                            Ok::<_, QueryError>(None)
                        }
                    }
                }
            });
        let (here, shares, ingesters) = tokio::join!(here, join_all(shares), join_all(ingesters));
        let mut answers = vec![here?];
        for share in shares {
            answers.push(share?);
        }
        for answer in ingesters {
            answers.extend(answer?);
        }
        Ok(answers)
    }

    /// The ids of the first traces `filter` selects, in its order, and how many
    /// matched.
    async fn first_trace_ids(&self, filter: &TraceFilter) -> Result<TraceIds, QueryError> {
        let answers = self
            .gather(
                Signal::Spans,
                (filter.start_min, filter.start_max),
                |row| {
                    filter
                        .service
                        .as_ref()
                        .is_none_or(|service| row.services.contains(service))
                },
                LeafQuery::FindTraces(filter.clone()),
                Spread::Wide,
            )
            .await?;
        first_traces(leaf::hits(answers)?, filter)
    }

    async fn traces_by_id(&self, ids: Vec<TraceId>) -> Result<Vec<Trace>, QueryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let answers = self
            .gather(
                Signal::Spans,
                (0, u64::MAX),
                |row| ids.iter().any(|id| row.trace_filter.may_contain(id)),
                LeafQuery::Traces(ids.clone()),
                Spread::Wide,
            )
            .await?;
        leaf::traces(answers, &ids, self.leaves.gate.limits.max_spans_per_trace)
    }
}

/// Time a whole cluster question may take: the query timeout, and a little for
/// the hops.
fn deadline(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(2)
}

impl ClusterQueries {
    async fn within<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, QueryError>>,
    ) -> Result<T, QueryError> {
        tokio::time::timeout(deadline(self.leaves.gate.limits.timeout), work)
            .await
            .map_err(|_| {
                QueryError::Unavailable("the cluster did not answer within --query-timeout".into())
            })?
    }
}

impl QueryService for ClusterQueries {
    fn services(&self) -> QueryResult<'_, Vec<String>> {
        Box::pin(self.within(async move {
            // Published splits answer from the metastore's service sets.
            let rows = self
                .leaves
                .cluster
                .metastore
                .published(self.tenant_name(), Signal::Spans, 0, u64::MAX)
                .await
                .map_err(unavailable)?;
            let mut answers = self
                .gather(
                    Signal::Spans,
                    (0, u64::MAX),
                    |_| false,
                    LeafQuery::Services,
                    Spread::Wide,
                )
                .await?;
            answers.push(LeafAnswer::Services(
                rows.into_iter().flat_map(|row| row.services).collect(),
            ));
            leaf::services(answers)
        }))
    }

    fn operations(
        &self,
        service: String,
        kind: Option<SpanKind>,
    ) -> QueryResult<'_, Vec<Operation>> {
        Box::pin(self.within(async move {
            let answers = self
                .gather(
                    Signal::Spans,
                    (0, u64::MAX),
                    |row| row.services.contains(&service),
                    LeafQuery::Operations(service.clone()),
                    Spread::Wide,
                )
                .await?;
            Ok(leaf::operations(answers)?
                .into_iter()
                .filter(|(_, k)| kind.is_none_or(|kind| kind.as_jaeger() == k))
                .map(|(name, span_kind)| Operation { name, span_kind })
                .collect())
        }))
    }

    fn find_traces(&self, search: TraceSearch) -> QueryResult<'_, TracePage> {
        Box::pin(self.within(async move {
            let (ids, page) = match search {
                TraceSearch::Ids(ids) => (ids, None),
                TraceSearch::Filter(filter) => {
                    let page = self.first_trace_ids(&filter).await?;
                    (page.ids.clone(), Some(page))
                }
            };
            // A trace's other spans may lie anywhere: looked up by id everywhere.
            let traces = self.traces_by_id(ids).await?;
            Ok(match page {
                Some(page) => TracePage {
                    total: page.total,
                    next: page.next,
                    traces,
                },
                None => TracePage {
                    total: Some(traces.len()),
                    next: None,
                    traces,
                },
            })
        }))
    }

    fn trace_ids(&self, filter: TraceFilter) -> QueryResult<'_, TraceIds> {
        Box::pin(self.within(async move { self.first_trace_ids(&filter).await }))
    }

    fn trace_summaries(&self, filter: TraceFilter) -> QueryResult<'_, SummaryPage> {
        Box::pin(self.within(async move {
            let TraceIds { ids, total, .. } = self.first_trace_ids(&filter).await?;
            if ids.is_empty() {
                return Ok(SummaryPage {
                    summaries: Vec::new(),
                    total,
                });
            }
            // A trace's other spans may lie anywhere: outlined by id everywhere.
            let answers = self
                .gather(
                    Signal::Spans,
                    (0, u64::MAX),
                    |row| ids.iter().any(|id| row.trace_filter.may_contain(id)),
                    LeafQuery::Outlines(ids.clone()),
                    Spread::Wide,
                )
                .await?;
            Ok(SummaryPage {
                summaries: leaf::summaries(answers, &ids)?,
                total,
            })
        }))
    }

    fn trace(&self, id: TraceId) -> QueryResult<'_, Option<Trace>> {
        Box::pin(self.within(async move { Ok(self.traces_by_id(vec![id]).await?.pop()) }))
    }

    fn dependencies(&self, start: u64, end: u64) -> QueryResult<'_, Vec<DependencyLink>> {
        Box::pin(self.within(async move {
            let answers = self
                .gather(
                    Signal::Spans,
                    (start, end),
                    |_| true,
                    LeafQuery::Dependencies { start, end },
                    Spread::Here,
                )
                .await?;
            leaf::dependencies(answers)
        }))
    }

    fn span_metrics(&self, query: MetricsQuery) -> QueryResult<'_, SpanMetrics> {
        Box::pin(self.within(async move {
            let answers = self
                .gather(
                    Signal::Spans,
                    (query.start, query.end().saturating_sub(1)),
                    |row| {
                        query.services.is_empty()
                            || query.services.iter().any(|s| row.services.contains(s))
                    },
                    LeafQuery::SpanMetrics(query.clone()),
                    Spread::Wide,
                )
                .await?;
            leaf::span_metrics(answers)
        }))
    }

    fn search_logs(&self, filter: LogFilter) -> QueryResult<'_, LogPage> {
        Box::pin(self.within(async move {
            let (limit, offset, cursor) = (filter.limit, filter.offset, filter.after);
            // Each node answers its newest `offset + limit` (after the cursor: all
            // records like the cursor's too, and one more than the page), and the
            // page is cut from them all.
            let seen = cursor.map_or(0, |cursor| cursor.seen as usize);
            let leaf_filter = LogFilter {
                limit: limit
                    .saturating_add(offset)
                    .saturating_add(seen)
                    .saturating_add(usize::from(offset == 0)),
                offset: 0,
                after: cursor.map(|cursor| LogCursor { seen: 0, ..cursor }),
                ..filter.clone()
            };
            let answers = self
                .gather(
                    Signal::Logs,
                    (filter.start, filter.end),
                    |row| may_hold_logs(row, &filter),
                    LeafQuery::Logs(leaf_filter),
                    Spread::Wide,
                )
                .await?;
            let (records, total, next) = leaf::logs(answers, offset, cursor.as_ref(), limit)?;
            Ok(LogPage {
                records,
                total,
                next,
            })
        }))
    }

    fn log_volume(&self, filter: LogFilter, volume: LogVolume) -> QueryResult<'_, LogVolume> {
        Box::pin(self.within(async move {
            let answers = self
                .gather(
                    Signal::Logs,
                    (filter.start, filter.end),
                    |row| may_hold_logs(row, &filter),
                    LeafQuery::LogVolume(filter.clone(), volume.clone()),
                    Spread::Wide,
                )
                .await?;
            leaf::log_volume(answers, volume)
        }))
    }

    fn log_patterns(
        &self,
        filter: LogFilter,
        patterns: LogPatterns,
    ) -> QueryResult<'_, LogPatterns> {
        Box::pin(self.within(async move {
            let answers = self
                .gather(
                    Signal::Logs,
                    (patterns.previous_start.min(filter.start), filter.end),
                    |row| may_hold_logs(row, &filter),
                    LeafQuery::LogPatterns(filter.clone(), patterns.clone()),
                    Spread::Wide,
                )
                .await?;
            leaf::log_patterns(answers, patterns)
        }))
    }

    fn tail_logs(&self, filter: LogFilter) -> Result<Tail, QueryError> {
        tail::spawn(
            self.clone(),
            &self.leaves.gate,
            Arc::clone(&self.leaves.clock),
            self.leaves.shutdown.clone(),
            filter,
        )
    }

    fn timeout(&self) -> Duration {
        self.leaves.gate.limits.timeout
    }
}
