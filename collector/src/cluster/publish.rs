//! Publishing (ingest nodes): every sealed split is staged in the metastore,
//! uploaded, then published in one statement, the commit point after which
//! searches see it. A split stays on this disk a grace period after (so that a
//! search that listed the metastore just before sees it here), then is handed
//! to the cache (`--role all`) or deleted (`--role ingest`). Failures are retried
//! every round; acknowledged records wait in the split and the log meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info};

use super::metastore::{SplitRow, SplitState};
use super::objects::SplitObjects;
use super::Cluster;
use crate::health::Throttle;
use crate::model::Signal;
use crate::store::split::Split;
use crate::store::Store;

/// How long a published split stays searchable on the node that made it:
/// longer than a search may take between listing the metastore and asking this
/// node (`--query-timeout`), so that no search misses it.
pub fn grace(query_timeout: Duration) -> Duration {
    query_timeout + Duration::from_secs(5)
}

/// Why a publish round stopped; said in the log and in `/health`.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Metastore(#[from] super::metastore::MetastoreError),
    #[error(transparent)]
    Objects(#[from] super::objects::ObjectsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Cache(#[from] super::cache::CacheError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("publish worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

/// One tenant's indexes, as the publisher sees them.
pub struct TenantStore {
    pub name: String,
    pub store: Store,
}

pub struct Publisher {
    cluster: Arc<Cluster>,
    tenants: Vec<TenantStore>,
    /// When each split still on this disk was published.
    published_at: HashMap<String, Instant>,
    grace: Duration,
    failing: Throttle,
}

impl Publisher {
    pub fn new(cluster: Arc<Cluster>, tenants: Vec<TenantStore>, grace: Duration) -> Publisher {
        Publisher {
            cluster,
            tenants,
            published_at: HashMap::new(),
            grace,
            failing: Throttle::new(Duration::from_secs(30)),
        }
    }

    /// One round: publishes what is sealed and not yet published, hands over
    /// what is past its grace. Returns how many splits were published.
    pub async fn round(&mut self) -> usize {
        let cluster = Arc::clone(&self.cluster);
        let health = &cluster.metrics.health;
        match self.publish_all().await {
            Ok(published) => {
                if self.failing.admit_recovery() {
                    info!("publishing works again");
                }
                health.set("publish", None);
                published
            }
            Err(e) => {
                let condition = format!(
                    "cannot publish splits ({e}); ingest goes on, and what is acknowledged waits on this node's disk"
                );
                if let Some(suppressed) = self.failing.admit() {
                    error!(error = %e, failed_since_last_report = suppressed, "cannot publish splits; retrying every round");
                }
                health.set("publish", Some(condition));
                0
            }
        }
    }

    async fn publish_all(&mut self) -> Result<usize, PublishError> {
        let mut published = 0;
        for tenant in 0..self.tenants.len() {
            for signal in Signal::ALL {
                let splits = self.tenants[tenant].store.of(signal).splits();
                for split in splits {
                    if !split.is_sealed() {
                        continue;
                    }
                    if !split.is_published() {
                        self.publish(tenant, signal, &split).await?;
                        published += 1;
                    }
                    let since = *self
                        .published_at
                        .entry(split.id.clone())
                        .or_insert_with(Instant::now);
                    if since.elapsed() >= self.grace {
                        self.hand_over(tenant, signal, &split).await?;
                    }
                }
            }
        }
        Ok(published)
    }

    async fn publish(
        &self,
        tenant: usize,
        signal: Signal,
        split: &Arc<Split>,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        let row = {
            let store = self.tenants[tenant].store.clone();
            let split = Arc::clone(split);
            let tenant = self.tenants[tenant].name.clone();
            let node = self.cluster.settings.node_id.clone();
            tokio::task::spawn_blocking(move || describe(&store, signal, &split, tenant, node))
                .await??
        };
        let metastore = &self.cluster.metastore;
        if !metastore.stage(&row).await? {
            // Published before a restart that came ahead of the marker.
            if metastore.state(&row.id).await? == Some(SplitState::Published) {
                split.mark_published()?;
                return Ok(());
            }
        }
        self.cluster.objects.upload(&row, &split.dir).await?;
        metastore.publish(&row.id).await?;
        split.mark_published()?;
        self.cluster
            .metrics
            .cluster
            .note_published(row.num_docs, row.bytes, started.elapsed());
        info!(tenant = %row.tenant, index = signal.as_str(), split = %row.id, docs = row.num_docs, bytes = row.bytes, elapsed = ?started.elapsed(), "published split");
        Ok(())
    }

    /// Past its grace: off this node's index, into the cache or gone (file
    /// work, on the blocking pool).
    async fn hand_over(
        &mut self,
        tenant: usize,
        signal: Signal,
        split: &Arc<Split>,
    ) -> Result<(), PublishError> {
        let store = self.tenants[tenant].store.clone();
        let cluster = Arc::clone(&self.cluster);
        let moved = Arc::clone(split);
        tokio::task::spawn_blocking(move || -> Result<(), PublishError> {
            store.of(signal).forget_published(&moved)?;
            match &cluster.cache {
                Some(cache) => cache.adopt(&moved)?,
                None => std::fs::remove_dir_all(&moved.dir)?,
            }
            Ok(())
        })
        .await??;
        self.published_at.remove(&split.id);
        Ok(())
    }
}

/// The metastore row of a sealed split: its summary, files and sizes.
pub(super) fn describe(
    store: &Store,
    signal: Signal,
    split: &Split,
    tenant: String,
    node: String,
) -> Result<SplitRow, PublishError> {
    let meta = split.meta();
    let summary = store.summarize(signal, split)?;
    let files = SplitObjects::split_files(&split.dir)?;
    Ok(SplitRow {
        id: split.id.clone(),
        signal,
        tenant,
        node,
        min_time: meta.min_time,
        max_time: meta.max_time,
        num_docs: meta.num_docs,
        bytes: files.iter().map(|(_, size)| size).sum(),
        files,
        services: summary.services,
        levels: summary.levels,
        trace_filter: summary.trace_filter,
    })
}
