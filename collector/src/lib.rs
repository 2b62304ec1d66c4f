//! Hopline's collector: OpenTelemetry traces and logs in, one request followed
//! across every hop out.
//!
//! The data's way through, one module per stage:
//!
//! ```text
//! net (the three listeners)       connection caps, header and idle timeouts
//!   -> otlp (gRPC :4317, HTTP :4318) read bodies under a byte budget; map errors to statuses
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

pub mod api;
pub mod config;
pub mod decode;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod net;
pub mod otlp;
pub mod query;
pub mod store;
pub mod wal;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::ingest::{Ingester, WalPayload};
use crate::metrics::Metrics;
use crate::model::Signal;
use crate::model::{Clock, SystemClock};
use crate::store::writer::{self, WriterHandle, WriterMsg, WriterSettings};
use crate::store::Store;
use crate::wal::{Wal, WalThread};

/// A running collector.
pub struct Hopline {
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    ingester: Ingester,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    writers: Vec<WriterHandle>,
    wal: Wal,
    wal_thread: WalThread,
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
        let index_dir = config.data_dir.join("index");
        let store = {
            let metrics = Arc::clone(&metrics);
            tokio::task::spawn_blocking(move || Store::open(&index_dir, &metrics.health))
                .await?
                .context("cannot open the indexes")?
        };

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
            retention: config.retention,
            max_indexed_keys: config.max_indexed_keys,
        };
        let mut writers = Vec::new();
        for signal in Signal::ALL {
            writers.push(
                writer::spawn(
                    &store,
                    signal,
                    settings.clone(),
                    Arc::clone(&clock),
                    Arc::clone(&metrics),
                    Arc::clone(&on_commit),
                )
                .context("cannot start index writer")?,
            );
        }
        let writer_txs = [writers[0].tx.clone(), writers[1].tx.clone()];

        let committed = [store.spans.committed_lsn(), store.logs.committed_lsn()];
        let wal_dir = config.data_dir.join("wal");
        let replay_txs = writer_txs.clone();
        let record_limits = config.records;
        let wal_metrics = Arc::clone(&metrics);
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
        .context("cannot open the write-ahead log")?;
        let _ = wal_cell.set(wal.clone());

        let ingester = Ingester::new(
            wal.clone(),
            writer_txs,
            config.queue_capacity,
            config.queue_bytes,
            config.records,
            Arc::clone(&metrics),
            Arc::clone(&clock),
        );
        let (shutdown, shutdown_rx) = watch::channel(false);

        let open_files = net::raise_open_files_limit();
        let mut server_limits = config.server.clone();
        server_limits.max_connections =
            net::connections_within(open_files, server_limits.max_connections);
        let grpc_listener = net::bind(config.otlp_grpc_addr, "OTLP/gRPC").await?;
        let http_listener = net::bind(config.otlp_http_addr, "OTLP/HTTP").await?;
        let api_listener = net::bind(config.http_addr, "UI and query API").await?;
        let otlp_grpc_addr = grpc_listener.local_addr()?;
        let otlp_http_addr = http_listener.local_addr()?;
        let http_addr = api_listener.local_addr()?;

        // One budget of request bytes in flight for both OTLP listeners.
        let body_limits = otlp::body::BodyLimits::new(&server_limits);
        {
            let budget = body_limits.budget.clone();
            metrics.set_inflight_bytes(move || budget.in_use() as u64);
        }
        let grpc_routes = otlp::grpc::OtlpGrpc::new(ingester.clone())
            .routes(body_limits.clone())
            .into_axum_router();
        let allowed_hosts = net::AllowedHosts::new(&server_limits.allowed_hosts);
        let otlp_router = otlp::http::router(ingester.clone(), body_limits).layer(
            axum::middleware::from_fn_with_state(allowed_hosts.clone(), net::origin_guard),
        );
        let mut servers = vec![
            net::serve(
                grpc_listener,
                grpc_routes,
                &server_limits,
                shutdown_rx.clone(),
                "OTLP/gRPC",
            ),
            net::serve(
                http_listener,
                otlp_router,
                &server_limits,
                shutdown_rx.clone(),
                "OTLP/HTTP",
            ),
        ];
        // The UI's server functions call the query API on this same listener.
        let loopback = match http_addr.ip() {
            ip if ip.is_unspecified() => {
                SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), http_addr.port())
            }
            _ => http_addr,
        };
        let api_router = api::router(api::ApiState {
            store: store.clone(),
            metrics: Arc::clone(&metrics),
            clock: Arc::clone(&clock),
            shutdown: shutdown_rx.clone(),
            queries: api::QueryGate::new(config.query),
        })
        .merge(api::ui::router(
            &config.ui_dir,
            format!("http://{loopback}"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            allowed_hosts,
            net::browser_guard,
        ));
        servers.push(net::serve(
            api_listener,
            api_router,
            &server_limits,
            shutdown_rx,
            "UI and query API",
        ));

        info!(%otlp_grpc_addr, "OTLP/gRPC listening (TraceService, LogsService)");
        info!(%otlp_http_addr, "OTLP/HTTP listening (POST /v1/traces, /v1/logs)");
        info!(url = %format!("http://{http_addr}/"), "UI and query API listening (/api, /api/v3, /api/logs, /health, /metrics)");
        info!(data_dir = %config.data_dir.display(), retention = ?config.retention, commit_interval = ?config.commit_interval, "ready");

        Ok(Hopline {
            otlp_grpc_addr,
            otlp_http_addr,
            http_addr,
            store,
            metrics,
            ingester,
            shutdown,
            servers,
            writers,
            wal,
            wal_thread,
        })
    }

    /// Commits both indexes now; everything acknowledged before is then searchable.
    pub async fn flush(&self) -> Result<(), store::StoreError> {
        self.ingester.flush().await
    }

    /// Commits and seals the active splits (a new split starts with the next batch).
    pub async fn seal(&self) -> Result<(), store::StoreError> {
        self.ingester.seal().await
    }

    /// Stops accepting, finishes in-flight requests, commits, and stops the threads.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        drop(self.ingester);
        let writers = self.writers;
        let wal = self.wal;
        let wal_thread = self.wal_thread;
        let joined = tokio::task::spawn_blocking(move || {
            for writer in writers {
                writer.join();
            }
            drop(wal);
            wal_thread.join();
        })
        .await;
        if joined.is_err() {
            error!("shutdown did not finish cleanly");
        }
        info!("stopped; everything acknowledged is committed");
    }
}
