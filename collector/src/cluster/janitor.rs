//! The janitor (`--role janitor`, or `all`): retention through the metastore.
//! Expired splits are marked first (searches stop seeing them at once), and
//! their objects deleted a grace period later, when searches that listed them
//! before the mark have ended. One janitor works at a time cluster-wide, under a
//! PostgreSQL advisory lock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info};

use super::Cluster;
use crate::model::{Clock, Signal};

/// The advisory lock's key ("hopline" in ASCII).
const LOCK: i64 = 0x0068_6f70_6c69_6e65;

/// A tenant's name and how long its data is kept.
pub struct Retention {
    pub tenant: String,
    pub keep: Duration,
}

/// Marked splits are deleted after this (longer than any search may run).
pub fn deletion_grace(query_timeout: Duration) -> Duration {
    query_timeout + Duration::from_secs(5)
}

/// How often the janitor looks: a few SQL statements when there is nothing to do.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// One round: marks what is past retention, deletes what was marked long
/// enough ago. Returns (marked, deleted), or `None` when another janitor holds
/// the lock.
pub async fn round(
    cluster: &Cluster,
    tenants: &[Retention],
    now: u64,
    grace: Duration,
) -> anyhow::Result<Option<(usize, usize)>> {
    let work = async {
        let mut marked = 0;
        for tenant in tenants {
            let cutoff = now.saturating_sub(tenant.keep.as_nanos() as u64);
            for signal in Signal::ALL {
                let rows = cluster
                    .metastore
                    .mark_expired(&tenant.tenant, signal, cutoff)
                    .await?;
                for row in &rows {
                    info!(tenant = %row.tenant, index = signal.as_str(), split = %row.id, docs = row.num_docs, "marked split past retention for deletion");
                }
                marked += rows.len();
            }
        }
        let doomed = cluster.metastore.marked(grace).await?;
        let mut deleted = Vec::new();
        for row in &doomed {
            cluster.objects.delete(row).await?;
            if let Some(cache) = &cluster.cache {
                cache.remove(&row.id);
            }
            deleted.push(row.id.clone());
        }
        cluster.metastore.delete(&deleted).await?;
        anyhow::Ok((marked, deleted.len()))
    };
    match cluster.metastore.with_lock(LOCK, work).await? {
        Some(result) => Ok(Some(result?)),
        None => Ok(None),
    }
}

/// Runs [`round`] every `every` until `shutdown`.
pub fn spawn(
    cluster: Arc<Cluster>,
    tenants: Vec<Retention>,
    clock: Arc<dyn Clock>,
    every: Duration,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = round(&cluster, &tenants, clock.now_unix_nanos(), grace).await {
                error!(error = %e, "janitor round failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    });
}
