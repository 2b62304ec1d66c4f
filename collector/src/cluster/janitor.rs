//! The janitor (`--role janitor`, or `all`): merges and retention through the
//! metastore.
//!
//! Merges: small published splits of one hour are fetched, their records
//! indexed again into one split, which is uploaded and published in the same
//! transaction that marks the sources for deletion.
//!
//! Retention:
//! Expired splits are marked first (searches stop seeing them at once), and
//! their objects deleted a grace period later, when searches that listed them
//! before the mark have ended. One janitor works at a time cluster-wide, under a
//! PostgreSQL advisory lock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info};

use std::path::PathBuf;

use super::metastore::SplitRow;
use super::publish::describe;
use super::Cluster;
use crate::model::{Clock, Signal};
use crate::store::search::Cancel;
use crate::store::split::Split;
use crate::store::writer::merge_splits;
use crate::store::Store;

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

/// How long after publishing a split may be merged: twice the grace period of
/// the nodes that publish (nodes of a cluster share `--query-timeout`).
pub fn merge_after(query_timeout: Duration) -> Duration {
    super::publish::grace(query_timeout) * 2
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
                cache.remove(&row.id).await;
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

/// Splits are merged within buckets of this much time (by their newest record).
const MERGE_BUCKET: u64 = 3600 * 1_000_000_000;
/// A bucket is merged once it holds this many small splits, or two once it is
/// [`MERGE_SETTLED`] past its end.
const MERGE_MIN_SPLITS: usize = 8;
const MERGE_SETTLED: u64 = 10 * 60 * 1_000_000_000;
/// At most this many splits, and records, make one merged split.
const MERGE_MAX_SPLITS: usize = 64;
const MERGE_MAX_DOCS: u64 = 10_000_000;

/// What merging needs besides the cluster.
pub struct Merging {
    /// Lends its schemas (any tenant's store: they share them).
    pub store: Store,
    /// Where sources are fetched and the merged split is built.
    pub scratch: PathBuf,
    /// Splits published this recently are left alone: the node that made them
    /// may still answer for them (its grace period, [`merge_after`]).
    pub settled: Duration,
}

/// The groups of small published splits worth merging, each oldest first.
fn merge_groups(rows: Vec<SplitRow>, now: u64) -> Vec<Vec<SplitRow>> {
    let mut buckets: std::collections::BTreeMap<u64, Vec<SplitRow>> = Default::default();
    for row in rows {
        if row.num_docs < MERGE_MAX_DOCS / 2 {
            buckets
                .entry(row.max_time / MERGE_BUCKET)
                .or_default()
                .push(row);
        }
    }
    let mut groups = Vec::new();
    for (bucket, rows) in buckets {
        let settled = (bucket + 1) * MERGE_BUCKET + MERGE_SETTLED < now;
        if rows.len() < MERGE_MIN_SPLITS && !(settled && rows.len() >= 2) {
            continue;
        }
        let mut group = Vec::new();
        let mut docs = 0;
        for row in rows {
            if group.len() == MERGE_MAX_SPLITS || docs + row.num_docs > MERGE_MAX_DOCS {
                break;
            }
            docs += row.num_docs;
            group.push(row);
        }
        if group.len() >= 2 {
            groups.push(group);
        }
    }
    groups
}

/// Merges one group: fetch, build, stage, upload, then swap in one transaction.
async fn merge(
    cluster: &Cluster,
    merging: &Merging,
    signal: Signal,
    group: &[SplitRow],
    now: u64,
) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let dir = merging.scratch.join(format!("merge-{now}-{}", group[0].id));
    let result = async {
        let mut sources = Vec::with_capacity(group.len());
        for row in group {
            let target = dir.join(&row.id);
            cluster.objects.download(row, &target).await?;
            let split = tokio::task::spawn_blocking(move || Split::open(&target)).await??;
            if let Some(split) = split {
                sources.push(Arc::new(split));
            }
        }
        let store = merging.store.clone();
        let node = cluster.settings.node_id.clone();
        let out = dir.join("merged");
        let merged = tokio::task::spawn_blocking(move || {
            merge_splits(&store, signal, &out, now, &node, &sources, &Cancel::default())
        })
        .await??;
        let tenant = group[0].tenant.clone();
        let row = {
            let store = merging.store.clone();
            let node = cluster.settings.node_id.clone();
            tokio::task::spawn_blocking(move || describe(&store, signal, &merged, tenant, node).map(|row| (row, merged)))
                .await??
        };
        let (row, merged) = row;
        cluster.metastore.stage(&row).await?;
        cluster.objects.upload(&row, &merged.dir).await?;
        let ids: Vec<String> = group.iter().map(|row| row.id.clone()).collect();
        if !cluster.metastore.replace(&row.id, &ids).await? {
            cluster.metastore.abandon(&row.id).await?;
            info!(split = %row.id, "a source of this merge went meanwhile; merge given up");
            return anyhow::Ok(false);
        }
        info!(tenant = %row.tenant, index = signal.as_str(), split = %row.id, sources = ids.len(), docs = row.num_docs, bytes = row.bytes, elapsed = ?started.elapsed(), "merged splits");
        anyhow::Ok(true)
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

/// Merges the groups worth merging of every tenant; returns how many splits
/// were made.
pub async fn merge_round(
    cluster: &Cluster,
    merging: &Merging,
    tenants: &[Retention],
    now: u64,
) -> anyhow::Result<usize> {
    let mut merged = 0;
    for tenant in tenants {
        for signal in Signal::ALL {
            let rows = cluster
                .metastore
                .mergeable(&tenant.tenant, signal, merging.settled)
                .await?;
            for group in merge_groups(rows, now) {
                if merge(cluster, merging, signal, &group, now).await? {
                    merged += 1;
                }
            }
        }
    }
    Ok(merged)
}

/// Runs [`round`] and [`merge_round`] every `every` until `shutdown`.
pub fn spawn(
    cluster: Arc<Cluster>,
    tenants: Vec<Retention>,
    merging: Merging,
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
            let merges = cluster.metastore.with_lock(
                LOCK,
                merge_round(&cluster, &merging, &tenants, clock.now_unix_nanos()),
            );
            match merges.await {
                Ok(Some(Err(e))) => error!(error = %e, "merging failed; retrying"),
                Err(e) => error!(error = %e, "merging failed; retrying"),
                Ok(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Signal;

    fn row(id: &str, hour: u64, docs: u64) -> SplitRow {
        SplitRow {
            id: id.into(),
            signal: Signal::Logs,
            tenant: "default".into(),
            node: "n".into(),
            min_time: hour * MERGE_BUCKET,
            max_time: hour * MERGE_BUCKET + 1,
            num_docs: docs,
            bytes: 1,
            files: Vec::new(),
            services: Vec::new(),
            levels: Vec::new(),
            trace_filter: Default::default(),
        }
    }

    #[test]
    fn merges_full_hours_and_settled_ones_never_big_splits() {
        let now = 100 * MERGE_BUCKET;
        let mut rows: Vec<SplitRow> = (0..9).map(|n| row(&format!("busy-{n}"), 99, 10)).collect();
        rows.push(row("settled-a", 50, 10));
        rows.push(row("settled-b", 50, 10));
        rows.push(row("alone", 40, 10));
        rows.push(row("big", 50, MERGE_MAX_DOCS));
        rows.push(row("recent-a", 100, 10));
        rows.push(row("recent-b", 100, 10));
        let groups = merge_groups(rows, now);
        let ids: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|r| r.id.as_str()).collect())
            .collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert_eq!(ids[0], ["settled-a", "settled-b"]);
        assert_eq!(ids[1].len(), 9);
    }
}
