//! `hopline`: parse the configuration, start the collector, run until SIGINT or
//! SIGTERM, then shut down in order (commit what was acknowledged).

use std::process::ExitCode;

use clap::Parser;
use hopline::config::{Cli, Config};
use hopline::Hopline;
use tracing::{error, info};

/// mimalloc: ingest allocates and frees many small strings on several threads,
/// where glibc's malloc spent about a quarter of the collector's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tantivy=warn")),
        )
        .init();
    let config = match Config::load(cli.serve_args()) {
        Ok(config) => config,
        Err(e) => {
            error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let hopline = match Hopline::start(config).await {
            Ok(hopline) => hopline,
            Err(e) => {
                error!("{e:#}");
                return ExitCode::FAILURE;
            }
        };
        shutdown_signal().await;
        info!("shutting down");
        hopline.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    error!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
