//! Hopline's collector: OpenTelemetry traces and logs in, one request followed
//! across every hop out.
//!
//! The data's way through, one module per stage:
//!
//! ```text
//! net (the three listeners)       connection caps, header and idle timeouts, TLS
//!   -> access                     token -> tenant (or 401/403), the tenant's rate (429)
//!   -> otlp (gRPC :4317, HTTP :4318) read bodies under a byte budget; map errors to statuses
//!      zipkin (:9411, and :4318)  Zipkin v2 spans, read and answered with otlp's pieces
//!      loki (:4318)               Loki pushes (JSON, snappy protobuf), likewise
//!      elasticsearch (:4318)      Elasticsearch bulk requests (NDJSON), likewise
//!      syslog (TCP and UDP)       RFC 5424 / RFC 3164 lines, batched, to the default tenant
//!   -> decode                     protobuf/JSON -> model (Span, LogRecord); reject bad
//!                                 records, cut what is over the record limits
//!   -> ingest                     queue capacity (records and bytes), then
//!   -> wal                        append + group-commit fsync: now it is acknowledged
//!   -> store::writer              one thread per index: tantivy documents, commit every second
//!   -> store (splits on disk)     time-bounded tantivy indexes, dropped whole by retention
//!   -> store::search              term, range and column queries over committed splits
//!   -> query                      API parameters -> filters; records -> Jaeger / OTLP JSON
//!   -> api (HTTP :16686)          Jaeger v1 + api_v3, /api/logs, the UI, /health, /metrics
//! ```
//!
//! Beside them: [`model`] (the records and the signals), [`config`] (every setting),
//! [`metrics`] (`/metrics`), [`health`] (what `/health` reports). A module uses only
//! those above it in this list and the stages before it; see `ARCHITECTURE.md`.
//! [`Hopline::start`] wires it all and [`Hopline::shutdown`] takes it down in order,
//! committing what was acknowledged.

pub mod access;
pub mod api;
pub mod cluster;
pub mod config;
pub mod decode;
pub mod elasticsearch;
pub mod health;
pub mod ingest;
pub mod loki;
pub mod metrics;
pub mod model;
pub mod net;
pub mod otlp;
pub mod query;
pub mod store;
pub mod syslog;
pub mod wal;
pub mod zipkin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::access::{AccessControl, Role};
use crate::cluster::leaf::LeafServer;
use crate::cluster::queries::ClusterQueries;
use crate::cluster::Cluster;
use crate::config::{AccessSources, ClusterSettings, Config, NodeRole, Tenant, DEFAULT_TENANT};
use crate::ingest::{Ingester, WalPayload};
use crate::metrics::Metrics;
use crate::model::Signal;
use crate::model::{Clock, SystemClock};
use crate::net::tls::{self, Tls};
use crate::query::service::{LocalQueries, QueryGate, QueryService};
use crate::store::writer::{self, WriterHandle, WriterMsg, WriterSettings};
use crate::store::Store;
use crate::wal::{Wal, WalThread};

/// A running collector.
pub struct Hopline {
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    /// The Zipkin listener's address, when `--zipkin-addr` asked for one.
    pub zipkin_addr: Option<SocketAddr>,
    /// The syslog listener's address (TCP and UDP), when `--syslog-addr` asked for one.
    pub syslog_addr: Option<SocketAddr>,
    pub http_addr: SocketAddr,
    /// The tenant `default`'s indexes (everything, when no tenant is configured).
    pub store: Store,
    pub metrics: Arc<Metrics>,
    ingester: Ingester,
    tenants: Vec<Pipeline>,
    access: Arc<AccessControl>,
    access_sources: AccessSources,
    tls: Option<Arc<Tls>>,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
}

/// One tenant's own indexes, write-ahead log and writer threads.
struct Pipeline {
    store: Store,
    ingester: Ingester,
    writers: Vec<WriterHandle>,
    wal: Wal,
    wal_thread: WalThread,
}

/// Connects to the cluster's engines and starts this node's part (heartbeats
/// start once it listens): publishing (roles that ingest), retention (`all`, `janitor`).
async fn start_cluster(
    config: &Config,
    settings: &ClusterSettings,
    tenants: &[Pipeline],
    metrics: &Arc<Metrics>,
    clock: &Arc<dyn Clock>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Arc<Cluster>> {
    let cluster = Arc::new(
        Cluster::connect(
            settings.clone(),
            config.role,
            &config.data_dir.join("cache"),
            Arc::clone(metrics),
            Duration::from_secs(30),
        )
        .await?,
    );
    cluster.spawn_cache_sweeper(shutdown.clone());
    if config.role.ingests() {
        let stores = tenants
            .iter()
            .zip(&config.access.tenants)
            .map(|(pipeline, tenant)| cluster::publish::TenantStore {
                name: tenant.name.clone(),
                store: pipeline.store.clone(),
            })
            .collect();
        cluster.spawn_publisher(
            stores,
            cluster::publish::grace(config.query.timeout),
            shutdown.clone(),
        );
    }
    if matches!(config.role, NodeRole::All | NodeRole::Janitor) {
        let retention = config
            .access
            .tenants
            .iter()
            .map(|tenant| cluster::janitor::Retention {
                tenant: tenant.name.clone(),
                keep: tenant.retention,
            })
            .collect();
        let merging = cluster::janitor::Merging {
            store: tenants[0].store.clone(),
            scratch: config.data_dir.join("merge"),
            settled: cluster::janitor::merge_after(config.query.timeout),
        };
        cluster::janitor::spawn(
            Arc::clone(&cluster),
            retention,
            merging,
            Arc::clone(clock),
            cluster::janitor::INTERVAL,
            cluster::janitor::deletion_grace(config.query.timeout),
            shutdown.clone(),
        );
    }
    Ok(cluster)
}

/// Where a tenant's data lives: the data directory itself for `default` (as before
/// tenants existed), `tenants/<name>/` under it for the others.
fn tenant_dir(data_dir: &Path, tenant: &str) -> PathBuf {
    if tenant == DEFAULT_TENANT {
        data_dir.to_path_buf()
    } else {
        data_dir.join("tenants").join(tenant)
    }
}

impl Pipeline {
    /// Opens a tenant's indexes, starts its writers, replays its log. `queue` is
    /// the ingester whose queue every tenant shares (none for the first).
    async fn start(
        config: &Config,
        tenant: &Tenant,
        id: access::TenantId,
        queue: Option<&Ingester>,
        access: &Arc<AccessControl>,
        clock: &Arc<dyn Clock>,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<Pipeline> {
        let dir = tenant_dir(&config.data_dir, &tenant.name);
        let index_dir = dir.join("index");
        let store = {
            let metrics = Arc::clone(metrics);
            tokio::task::spawn_blocking(move || Store::open(&index_dir, &metrics.health))
                .await?
                .with_context(|| format!("cannot open the indexes of tenant '{}'", tenant.name))?
        };
        if let Some(cluster) = &config.cluster {
            store.set_node(&cluster.node_id);
        }

        // The writers report commits to the log, which only exists after replay.
        let wal_cell: Arc<OnceLock<Wal>> = Arc::new(OnceLock::new());
        let on_commit: writer::OnCommit = {
            let wal_cell = Arc::clone(&wal_cell);
            Arc::new(move |signal, lsn| {
                if let Some(wal) = wal_cell.get() {
                    wal.checkpoint(signal, lsn);
                }
            })
        };
        let settings = WriterSettings {
            commit_interval: config.commit_interval,
            split_duration: config.split_duration,
            split_records: config.split_records,
            retention: tenant.retention,
            retention_interval: config.retention_interval,
            max_indexed_keys: config.max_indexed_keys,
        };
        let mut writers = Vec::new();
        for signal in Signal::ALL {
            writers.push(
                writer::spawn(
                    &store,
                    signal,
                    settings.clone(),
                    Arc::clone(clock),
                    Arc::clone(metrics),
                    Arc::clone(&on_commit),
                )
                .context("cannot start index writer")?,
            );
        }
        let writer_txs = [writers[0].tx.clone(), writers[1].tx.clone()];

        let committed = [store.spans.committed_lsn(), store.logs.committed_lsn()];
        let wal_dir = dir.join("wal");
        let replay_txs = writer_txs.clone();
        let record_limits = config.records;
        let wal_metrics = Arc::clone(metrics);
        let (wal, wal_thread) = tokio::task::spawn_blocking(move || {
            Wal::open(&wal_dir, committed, wal_metrics, |record| {
                match WalPayload::decode(record.signal, record.payload.into(), &record_limits) {
                    Ok(records) => {
                        let tx = &replay_txs[record.signal.ordinal()];
                        let _ = tx.send(WriterMsg::Batch { lsn: record.lsn, records, permit: None });
                    }
                    Err(e) => warn!(lsn = record.lsn, error = %e, "undecodable write-ahead log frame, skipping it"),
                }
            })
        })
        .await?
        .with_context(|| format!("cannot open the write-ahead log of tenant '{}'", tenant.name))?;
        let _ = wal_cell.set(wal.clone());

        let ingester = match queue {
            Some(first) => first.for_tenant(id, wal.clone(), writer_txs),
            None => Ingester::new(
                wal.clone(),
                writer_txs,
                config,
                Arc::clone(metrics),
                Arc::clone(clock),
                Arc::clone(access),
            ),
        };
        Ok(Pipeline {
            store,
            ingester,
            writers,
            wal,
            wal_thread,
        })
    }

    /// Commits what was acknowledged and stops the threads.
    fn stop(self) {
        drop(self.ingester);
        for writer in self.writers {
            writer.join();
        }
        drop(self.wal);
        self.wal_thread.join();
    }
}

impl Hopline {
    pub async fn start(config: Config) -> anyhow::Result<Hopline> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Starts with an injected clock (tests use one to move time).
    pub async fn start_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Hopline> {
        let metrics = Arc::new(Metrics::default());
        let access = Arc::new(AccessControl::new(config.access.clone(), &metrics));
        let tls = config.tls.clone().map(Tls::load).transpose()?;

        let mut tenants: Vec<Pipeline> = Vec::new();
        for (id, tenant) in config.access.tenants.iter().enumerate() {
            let queue = tenants.first().map(|first| &first.ingester);
            let pipeline =
                Pipeline::start(&config, tenant, id, queue, &access, &clock, &metrics).await?;
            tenants.push(pipeline);
        }
        let ingester = tenants[0].ingester.clone();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let cluster = match &config.cluster {
            Some(settings) => Some(
                start_cluster(&config, settings, &tenants, &metrics, &clock, &shutdown_rx).await?,
            ),
            None => None,
        };

        let open_files = net::raise_open_files_limit();
        let mut server_limits = config.server.clone();
        server_limits.max_connections =
            net::connections_within(open_files, server_limits.max_connections);
        let grpc_listener = net::bind(config.otlp_grpc_addr, "OTLP/gRPC").await?;
        let http_listener = net::bind(config.otlp_http_addr, "OTLP/HTTP").await?;
        let api_listener = net::bind(config.http_addr, "UI and query API").await?;
        let zipkin_listener = match config.zipkin_addr {
            Some(addr) if config.role.ingests() => Some(net::bind(addr, "Zipkin").await?),
            _ => None,
        };
        let zipkin_addr = zipkin_listener
            .as_ref()
            .map(|listener| listener.local_addr())
            .transpose()?;
        let otlp_grpc_addr = grpc_listener.local_addr()?;
        let otlp_http_addr = http_listener.local_addr()?;
        let http_addr = api_listener.local_addr()?;

        // One budget of request bytes in flight for both OTLP listeners.
        let body_limits = otlp::body::BodyLimits::new(&server_limits);
        {
            let budget = body_limits.budget.clone();
            metrics.set_inflight_bytes(move || budget.in_use() as u64);
        }
        metrics.set_cache_bytes(|| store::cache_bytes().to_vec());
        let gate = otlp::IngestGate {
            access: Arc::clone(&access),
            ingesters: Arc::new(tenants.iter().map(|t| t.ingester.clone()).collect()),
            metrics: Arc::clone(&metrics),
        };
        let grpc_routes = otlp::grpc::OtlpGrpc
            .routes(body_limits.clone())
            .into_axum_router()
            .layer(axum::middleware::from_fn_with_state(
                gate.clone(),
                otlp::authenticate,
            ));
        // A node of a cluster answers to the address it advertises: the other
        // nodes call it by that name.
        if let Some(settings) = &config.cluster {
            if !server_limits.allowed_hosts.is_empty() {
                let advertised = settings.advertised(http_addr).to_ascii_lowercase();
                server_limits.allowed_hosts.push(advertised);
            }
        }
        let allowed_hosts = net::AllowedHosts::new(&server_limits.allowed_hosts);
        let ingest_layers = |router: axum::Router| {
            router
                .layer(axum::middleware::from_fn_with_state(
                    gate.clone(),
                    otlp::authenticate,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    allowed_hosts.clone(),
                    net::origin_guard,
                ))
        };
        // The OTLP/HTTP port takes Zipkin's spans, Loki's pushes and
        // Elasticsearch bulk requests too.
        let otlp_router = ingest_layers(
            otlp::http::router(body_limits.clone())
                .merge(zipkin::router(body_limits.clone()))
                .merge(loki::router(body_limits.clone()))
                .merge(elasticsearch::router(body_limits.clone())),
        );
        let zipkin_router = ingest_layers(zipkin::router(body_limits));
        let ingest_tls = tls.clone().map(|tls| (tls, tls::Listener::Ingest));
        let mut servers = Vec::new();
        let mut syslog_addr = None;
        if config.role.ingests() {
            servers.push(net::serve(
                grpc_listener,
                grpc_routes,
                &server_limits,
                ingest_tls.clone(),
                shutdown_rx.clone(),
                "OTLP/gRPC",
            ));
            servers.push(net::serve(
                http_listener,
                otlp_router,
                &server_limits,
                ingest_tls.clone(),
                shutdown_rx.clone(),
                "OTLP/HTTP",
            ));
            if let Some(addr) = config.syslog_addr {
                let (addr, tasks) = syslog::start(
                    addr,
                    tenants[0].ingester.clone(),
                    &server_limits,
                    shutdown_rx.clone(),
                )
                .await?;
                syslog_addr = Some(addr);
                servers.extend(tasks);
            }
            if let Some(listener) = zipkin_listener {
                servers.push(net::serve(
                    listener,
                    zipkin_router,
                    &server_limits,
                    ingest_tls,
                    shutdown_rx.clone(),
                    "Zipkin",
                ));
            }
        } else {
            // This role takes no OTLP: the ports close again.
            drop((grpc_listener, http_listener));
        }
        let gate = QueryGate::new(config.query);
        let leaves = cluster.as_ref().map(|cluster| {
            Arc::new(LeafServer {
                cluster: Arc::clone(cluster),
                stores: tenants.iter().map(|t| t.store.clone()).collect(),
                tenants: access.names().to_vec(),
                gate: gate.clone(),
                metrics: Arc::clone(&metrics),
                clock: Arc::clone(&clock),
                shutdown: shutdown_rx.clone(),
            })
        });
        let queries: Vec<Arc<dyn QueryService>> = tenants
            .iter()
            .enumerate()
            .map(|(id, pipeline)| match &leaves {
                Some(leaves) if config.role.serves_queries() => Arc::new(ClusterQueries::new(
                    Arc::clone(leaves),
                    Arc::clone(&access),
                    id,
                ))
                    as Arc<dyn QueryService>,
                _ => Arc::new(LocalQueries::new(
                    pipeline.store.clone(),
                    gate.clone(),
                    Arc::clone(&metrics),
                    Arc::clone(&clock),
                    shutdown_rx.clone(),
                )) as Arc<dyn QueryService>,
            })
            .collect();
        let api_state = api::ApiState {
            queries: Arc::clone(&queries[0]),
            tenants: Arc::new(queries),
            tenant: 0,
            leaves,
            stores: Arc::new(tenants.iter().map(|t| t.store.clone()).collect()),
            access: Arc::clone(&access),
            tls: tls.is_some(),
            metrics: Arc::clone(&metrics),
            clock: Arc::clone(&clock),
        };
        let api_router = api::router(api_state.clone());
        // The pages call the query API in process, as their viewer.
        let ui_router =
            api::ui::router(&config.ui_dir, api_router.clone(), Arc::clone(&access)).layer(
                axum::middleware::from_fn_with_state(api_state, api::auth::authenticate),
            );
        let api_router = api_router
            .merge(ui_router)
            .layer(axum::middleware::from_fn_with_state(
                allowed_hosts,
                net::browser_guard,
            ));
        servers.push(net::serve(
            api_listener,
            api_router,
            &server_limits,
            tls.clone().map(|tls| (tls, tls::Listener::Query)),
            shutdown_rx.clone(),
            "UI and query API",
        ));
        if let (Some(cluster), Some(settings)) = (&cluster, &config.cluster) {
            cluster.spawn_heartbeat(settings.advertised(http_addr), shutdown_rx.clone());
        }
        spawn_reloader(
            Arc::clone(&access),
            config.access_sources.clone(),
            tls.clone(),
            config.reload_interval,
            shutdown_rx,
        );

        let scheme = if tls.is_some() { "https" } else { "http" };
        let ingest_auth = if access.protects(Role::Ingest) {
            "token required"
        } else {
            "open"
        };
        let query_auth = if access.protects(Role::Query) {
            "sign-in required"
        } else {
            "open"
        };
        if config.role.ingests() {
            info!(%otlp_grpc_addr, tls = tls.is_some(), auth = ingest_auth, "OTLP/gRPC listening (TraceService, LogsService)");
            info!(%otlp_http_addr, tls = tls.is_some(), auth = ingest_auth, "OTLP/HTTP listening (POST /v1/traces, /v1/logs; Zipkin POST /api/v2/spans; Loki POST /loki/api/v1/push; Elasticsearch POST /_bulk)");
            if let Some(zipkin_addr) = zipkin_addr {
                info!(%zipkin_addr, tls = tls.is_some(), auth = ingest_auth, "Zipkin listening (POST /api/v2/spans)");
            }
            if let Some(addr) = syslog_addr {
                syslog::announce(addr);
            }
        }
        info!(url = %format!("{scheme}://{http_addr}/"), auth = query_auth, "UI and query API listening (/api, /api/v3, /api/logs, /loki/api/v1, /health, /metrics)");
        info!(role = config.role.as_str(), data_dir = %config.data_dir.display(), tenants = %access.names().join(", "), retention = ?config.retention, commit_interval = ?config.commit_interval, "ready");

        Ok(Hopline {
            otlp_grpc_addr,
            otlp_http_addr,
            zipkin_addr,
            syslog_addr,
            http_addr,
            store: tenants[0].store.clone(),
            metrics,
            ingester,
            tenants,
            access,
            access_sources: config.access_sources,
            tls,
            shutdown,
            servers,
        })
    }

    /// The indexes of tenant `name`.
    pub fn tenant_store(&self, name: &str) -> Option<&Store> {
        let id = self.access.names().iter().position(|n| n == name)?;
        Some(&self.tenants[id].store)
    }

    /// Reads the tokens and TLS files again (what SIGHUP does). On an error the
    /// running tokens and certificate stay, and the error says what was wrong.
    pub fn reload(&self) -> anyhow::Result<()> {
        reload(&self.access, &self.access_sources, self.tls.as_deref())
    }

    /// Commits every tenant's indexes now; everything acknowledged before is then
    /// searchable.
    pub async fn flush(&self) -> Result<(), store::StoreError> {
        for tenant in &self.tenants {
            tenant.ingester.flush().await?;
        }
        Ok(())
    }

    /// Commits and seals the active splits (a new split starts with the next batch).
    pub async fn seal(&self) -> Result<(), store::StoreError> {
        for tenant in &self.tenants {
            tenant.ingester.seal().await?;
        }
        Ok(())
    }

    /// Stops accepting, finishes in-flight requests, commits, and stops the threads.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        drop(self.ingester);
        let tenants = self.tenants;
        let joined = tokio::task::spawn_blocking(move || {
            for tenant in tenants {
                tenant.stop();
            }
        })
        .await;
        if joined.is_err() {
            error!("shutdown did not finish cleanly");
        }
        info!("stopped; everything acknowledged is committed");
    }
}

fn reload(
    access: &AccessControl,
    sources: &AccessSources,
    tls: Option<&Tls>,
) -> anyhow::Result<()> {
    let table = sources.load().context("tokens not reloaded")?;
    access
        .replace(table)
        .map_err(anyhow::Error::msg)
        .context("tokens not reloaded")?;
    if let Some(tls) = tls {
        tls.reload().context("TLS certificate not reloaded")?;
    }
    info!("tokens and TLS files read again");
    Ok(())
}

/// Reads the tokens file and the TLS files again when one of them changes (checked
/// every `interval`), as a renewed certificate or a rotated token is dropped in.
fn spawn_reloader(
    access: Arc<AccessControl>,
    sources: AccessSources,
    tls: Option<Arc<Tls>>,
    interval: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    if sources.files().is_empty() && tls.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut stamp = sources.stamp();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let tokens_changed = sources.stamp() != stamp;
            let tls_changed = tls.as_ref().is_some_and(|tls| tls.changed());
            if !tokens_changed && !tls_changed {
                continue;
            }
            stamp = sources.stamp();
            let (access, sources, tls) = (Arc::clone(&access), sources.clone(), tls.clone());
            let result =
                tokio::task::spawn_blocking(move || reload(&access, &sources, tls.as_deref()))
                    .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error!("{e:#}"),
                Err(e) => error!(error = %e, "reloading failed"),
            }
        }
    });
}
