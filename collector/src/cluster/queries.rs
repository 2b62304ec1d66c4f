//! The query service of a cluster node: the same searches as on one box, over
//! the published splits the metastore lists for the question (those a split's
//! time range, services or trace-id filter rule out are never fetched), fetched
//! into the split cache, together with this node's own splits not yet handed
//! over. A split in both places is searched once (split ids are unique in the
//! cluster), so the answers are those of one box holding all the splits.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::watch;

use super::metastore::SplitRow;
use super::Cluster;
use crate::metrics::Metrics;
use crate::model::{Clock, Signal, SpanKind, TraceId};
use crate::query::params::TraceSearch;
use crate::query::service::{
    LocalQueries, LogPage, Operation, QueryGate, QueryResult, QueryService, Trace,
};
use crate::query::tail::{self, Tail};
use crate::query::QueryError;
use crate::store::search::{DependencyLink, LogFilter};
use crate::store::Store;

#[derive(Clone)]
pub struct ClusterQueries {
    cluster: Arc<Cluster>,
    tenant: String,
    /// This tenant's indexes on this node: its own splits (role `all`), or
    /// empty ones (role `search`) that lend their schemas.
    local: Store,
    gate: QueryGate,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
}

fn unavailable(e: impl std::fmt::Display) -> QueryError {
    QueryError::Unavailable(format!("cluster storage does not answer: {e}"))
}

impl ClusterQueries {
    pub fn new(
        cluster: Arc<Cluster>,
        tenant: String,
        local: Store,
        gate: QueryGate,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        shutdown: watch::Receiver<bool>,
    ) -> ClusterQueries {
        ClusterQueries {
            cluster,
            tenant,
            local,
            gate,
            metrics,
            clock,
            shutdown,
        }
    }

    /// The published splits of `signal` over `[start, end]` that `keep` admits.
    async fn rows(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        keep: impl Fn(&SplitRow) -> bool,
    ) -> Result<Vec<SplitRow>, QueryError> {
        let rows = self
            .cluster
            .metastore
            .published(&self.tenant, signal, start, end)
            .await
            .map_err(unavailable)?;
        Ok(rows.into_iter().filter(|row| keep(row)).collect())
    }

    /// Searches over this node's own splits of `signal` and the published ones
    /// `rows` names (fetched as needed).
    async fn over(&self, signal: Signal, rows: Vec<SplitRow>) -> Result<LocalQueries, QueryError> {
        // This node's splits first: one handed over after this listing is then
        // in the cache, never in neither place.
        let mut splits = self.local.of(signal).splits();
        let own: HashSet<String> = splits.iter().map(|split| split.id.clone()).collect();
        let rows: Vec<SplitRow> = rows
            .into_iter()
            .filter(|row| !own.contains(&row.id))
            .collect();
        if !rows.is_empty() {
            let cache = self.cluster.cache.as_ref().ok_or_else(|| {
                QueryError::Unavailable("this node does not search (--role)".into())
            })?;
            let fetch = cache.get(&rows);
            let fetched = tokio::time::timeout(self.gate.limits.timeout, fetch)
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "fetching {} splits took longer than --query-timeout",
                        rows.len()
                    ))
                })?
                .map_err(unavailable)?;
            splits.extend(fetched);
        }
        let view = match signal {
            Signal::Spans => self.local.view(splits, Vec::new()),
            Signal::Logs => self.local.view(Vec::new(), splits),
        };
        Ok(LocalQueries::new(
            view,
            self.gate.clone(),
            Arc::clone(&self.metrics),
            Arc::clone(&self.clock),
            self.shutdown.clone(),
        ))
    }

    async fn traces_by_id(&self, ids: Vec<TraceId>) -> Result<Vec<Trace>, QueryError> {
        let rows = self
            .rows(Signal::Spans, 0, u64::MAX, |row| {
                ids.iter().any(|id| row.trace_filter.may_contain(id))
            })
            .await?;
        self.over(Signal::Spans, rows)
            .await?
            .find_traces(TraceSearch::Ids(ids))
            .await
    }
}

impl QueryService for ClusterQueries {
    fn services(&self) -> QueryResult<'_, Vec<String>> {
        Box::pin(async move {
            // From the metastore's service sets: nothing is fetched.
            let rows = self.rows(Signal::Spans, 0, u64::MAX, |_| true).await?;
            let mut services: std::collections::BTreeSet<String> = self
                .over(Signal::Spans, Vec::new())
                .await?
                .services()
                .await?
                .into_iter()
                .collect();
            services.extend(rows.into_iter().flat_map(|row| row.services));
            Ok(services.into_iter().collect())
        })
    }

    fn operations(
        &self,
        service: String,
        kind: Option<SpanKind>,
    ) -> QueryResult<'_, Vec<Operation>> {
        Box::pin(async move {
            let rows = self
                .rows(Signal::Spans, 0, u64::MAX, |row| {
                    row.services.contains(&service)
                })
                .await?;
            self.over(Signal::Spans, rows)
                .await?
                .operations(service, kind)
                .await
        })
    }

    fn find_traces(&self, search: TraceSearch) -> QueryResult<'_, Vec<Trace>> {
        Box::pin(async move {
            match search {
                TraceSearch::Ids(ids) => self.traces_by_id(ids).await,
                TraceSearch::Filter(filter) => {
                    let rows = self
                        .rows(Signal::Spans, filter.start_min, filter.start_max, |row| {
                            filter
                                .service
                                .as_ref()
                                .is_none_or(|service| row.services.contains(service))
                        })
                        .await?;
                    // The traces' other spans may lie in splits the filter ruled
                    // out: they are looked up by id over every split.
                    let found = self
                        .over(Signal::Spans, rows)
                        .await?
                        .find_trace_ids(filter)
                        .await?;
                    let mut traces = self.traces_by_id(found.clone()).await?;
                    let order: std::collections::HashMap<TraceId, usize> =
                        found.iter().enumerate().map(|(i, id)| (*id, i)).collect();
                    traces.sort_by_key(|trace| order.get(&trace.id).copied().unwrap_or(usize::MAX));
                    Ok(traces)
                }
            }
        })
    }

    fn trace(&self, id: TraceId) -> QueryResult<'_, Option<Trace>> {
        Box::pin(async move { Ok(self.traces_by_id(vec![id]).await?.pop()) })
    }

    fn dependencies(&self, start: u64, end: u64) -> QueryResult<'_, Vec<DependencyLink>> {
        Box::pin(async move {
            let rows = self.rows(Signal::Spans, start, end, |_| true).await?;
            self.over(Signal::Spans, rows)
                .await?
                .dependencies(start, end)
                .await
        })
    }

    fn search_logs(&self, filter: LogFilter) -> QueryResult<'_, LogPage> {
        Box::pin(async move {
            let rows = self
                .rows(Signal::Logs, filter.start, filter.end, |row| {
                    filter
                        .service
                        .as_ref()
                        .is_none_or(|service| row.services.contains(service))
                        && filter
                            .trace_id
                            .is_none_or(|id| row.trace_filter.may_contain(&id))
                })
                .await?;
            self.over(Signal::Logs, rows)
                .await?
                .search_logs(filter)
                .await
        })
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
}
