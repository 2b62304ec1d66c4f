//! Cluster mode (`--object-store` and `--metastore`): sealed splits go to
//! S3-compatible storage, their metadata to PostgreSQL, and any node reads them
//! from there. Nothing here is home-made consensus: the metastore's transactions
//! are the commit points, the object store holds the bytes.
//!
//! - [`publish`]: ingest nodes stage, upload and publish their sealed splits.
//! - [`cache`]: search nodes fetch published splits into a bounded disk cache.
//! - [`queries`]: the query service over published splits (and this node's own).
//! - [`janitor`]: retention through the metastore, one node at a time.

pub mod cache;
pub mod janitor;
pub mod leaf;
pub mod metastore;
pub mod objects;
pub mod publish;
pub mod queries;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{ClusterSettings, NodeRole};
use crate::health::Throttle;
use crate::metrics::Metrics;
use cache::SplitCache;
use metastore::{Metastore, NodeRow};
use objects::SplitObjects;

/// How often a node says it is alive; a node silent for three of these is
/// taken for dead.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// How this node calls the others' query API (leaf searches): over HTTPS when
/// it serves TLS itself (a cluster's nodes all do, or none do), trusting the
/// system's roots and `--cluster-ca`. Each call carries `--cluster-token`, else
/// the tenant's first query token.
pub struct Peers {
    pub http: reqwest_rustls::Client,
    scheme: &'static str,
}

impl Peers {
    pub fn new(settings: &ClusterSettings) -> anyhow::Result<Peers> {
        let mut builder = reqwest_rustls::Client::builder();
        if let Some(path) = &settings.cluster_ca {
            let pem =
                std::fs::read(path).with_context(|| format!("cluster-ca {}", path.display()))?;
            let certificates = reqwest_rustls::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("cluster-ca {}: not PEM certificates", path.display()))?;
            anyhow::ensure!(
                !certificates.is_empty(),
                "cluster-ca {}: no certificate in it",
                path.display()
            );
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        Ok(Peers {
            http: builder
                .build()
                .context("the HTTP client of leaf searches")?,
            scheme: if settings.tls { "https" } else { "http" },
        })
    }

    /// The URL of `path` on the node that advertises `address`.
    pub fn url(&self, address: &str, path: &str) -> String {
        format!("{}://{address}{path}", self.scheme)
    }
}

/// A node's handle on the cluster's engines.
pub struct Cluster {
    pub settings: ClusterSettings,
    pub role: NodeRole,
    pub metastore: Metastore,
    pub objects: SplitObjects,
    /// Published splits on this disk (nodes that search: `all`, `search`).
    pub cache: Option<SplitCache>,
    pub metrics: Arc<Metrics>,
    pub peers: Peers,
}

impl Cluster {
    /// Connects to the metastore (applying its migrations) and the bucket, and
    /// opens the split cache under `cache_dir` for roles that search. Waits up
    /// to `wait` for the metastore to answer.
    pub async fn connect(
        settings: ClusterSettings,
        role: NodeRole,
        cache_dir: &std::path::Path,
        metrics: Arc<Metrics>,
        wait: Duration,
    ) -> anyhow::Result<Cluster> {
        let peers = Peers::new(&settings)?;
        let metastore = Metastore::connect(&settings.metastore, wait)
            .await
            .with_context(|| format!("metastore {}", settings.metastore_for_log()))?;
        let objects = SplitObjects::s3(&settings).context("object store")?;
        if let Err(e) = objects.check().await {
            // Not fatal: publishing retries, and ingest goes on meanwhile.
            warn!(bucket = %objects.url, error = %e, "object storage does not answer yet; publishing retries");
        }
        let cache = match role {
            NodeRole::All | NodeRole::Search => Some(
                SplitCache::open(
                    cache_dir,
                    settings.cache_size,
                    objects.clone(),
                    Arc::clone(&metrics),
                )
                .context("split cache")?,
            ),
            NodeRole::Ingest | NodeRole::Janitor => None,
        };
        info!(
            node = %settings.node_id,
            role = role.as_str(),
            metastore = %settings.metastore_for_log(),
            object_store = %objects.url,
            publish_interval = ?settings.publish_interval,
            "cluster mode"
        );
        Ok(Cluster {
            settings,
            role,
            metastore,
            objects,
            cache,
            metrics,
            peers,
        })
    }

    /// Says every [`HEARTBEAT`] until `shutdown` that this node is alive, and
    /// reachable at `address`.
    pub fn spawn_heartbeat(self: &Arc<Self>, address: String, mut shutdown: watch::Receiver<bool>) {
        let cluster = Arc::clone(self);
        info!(node = %cluster.settings.node_id, %address, "heartbeats to the metastore");
        tokio::spawn(async move {
            let node = NodeRow {
                id: cluster.settings.node_id.clone(),
                role: cluster.role.as_str().to_string(),
                address,
            };
            let mut failing = Throttle::new(Duration::from_secs(30));
            loop {
                match cluster.metastore.heartbeat(&node).await {
                    Ok(()) => {
                        if failing.admit_recovery() {
                            info!("metastore answers again");
                        }
                        cluster.metrics.health.set("metastore", None);
                    }
                    Err(e) => {
                        if let Some(suppressed) = failing.admit() {
                            warn!(error = %e, failed_since_last_report = suppressed, "metastore does not answer");
                        }
                        cluster.metrics.health.set(
                            "metastore",
                            Some(format!("the metastore does not answer: {e}")),
                        );
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(HEARTBEAT) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        });
    }

    /// Drops from the cache, every [`HEARTBEAT`] × 6, the splits the cluster no
    /// longer publishes (merged away or past retention): searches stopped
    /// reading them when they were marked; this frees their disk.
    pub fn spawn_cache_sweeper(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(HEARTBEAT * 6) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                let Some(cache) = &cluster.cache else { return };
                let ids = cache.ids();
                if ids.is_empty() {
                    continue;
                }
                match cluster.metastore.gone(&ids).await {
                    Ok(gone) => {
                        for id in gone {
                            cache.remove(&id).await;
                        }
                    }
                    Err(e) => warn!(error = %e, "cannot sweep the split cache; retrying"),
                }
            }
        });
    }

    /// Publishes sealed splits every few seconds until `shutdown`, then once
    /// more.
    pub fn spawn_publisher(
        self: &Arc<Self>,
        tenants: Vec<publish::TenantStore>,
        grace: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut publisher = publish::Publisher::new(Arc::clone(self), tenants, grace);
        let every = (self.settings.publish_interval / 4)
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        tokio::spawn(async move {
            loop {
                publisher.round().await;
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        });
    }
}
