//! `hopline`: parse the configuration, start the collector, run until SIGINT or
//! SIGTERM, then shut down in order (commit what was acknowledged).

use std::process::ExitCode;

use clap::Parser;
use hopline::api::mcp::StdioBridge;
use hopline::config::{Cli, Command, Config, McpArgs};
use hopline::Hopline;
use tracing::{error, info};

/// mimalloc: ingest allocates and frees many small strings on several threads,
/// where glibc's malloc spent about a quarter of the collector's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve = match cli.command {
        Some(Command::Serve(args)) => *args,
        None => cli.serve,
        Some(Command::Mcp(args)) => return mcp(args),
    };
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(filter())
        .init();
    let config = match Config::load(serve) {
        Ok(config) => config,
        Err(e) => {
            error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let hopline = match Hopline::start(config).await {
            Ok(hopline) => hopline,
            Err(e) => {
                error!("{e:#}");
                return ExitCode::FAILURE;
            }
        };
        shutdown_signal(&hopline).await;
        info!("shutting down");
        hopline.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// The async runtime, or None when it cannot start (logged).
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| error!(error = %e, "cannot start the async runtime"))
        .ok()
}

fn filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tantivy=warn,rmcp=warn"))
}

/// `hopline mcp`: MCP on stdin and stdout (the log goes to stderr), until the
/// client closes them.
fn mcp(args: McpArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter())
        .init();
    let bridge = match StdioBridge::new(
        &args.url,
        args.token.as_deref(),
        args.tenant.as_deref(),
        args.ca.as_deref(),
    ) {
        Ok(bridge) => bridge,
        Err(e) => {
            error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    info!(url = %args.url, "MCP on stdio, answering from this Hopline");
    match runtime.block_on(bridge.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for SIGINT or SIGTERM; on SIGHUP reads the tokens and TLS files again.
async fn shutdown_signal(hopline: &Hopline) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut terminate, mut hangup) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(terminate), Ok(hangup)) => (terminate, hangup),
            (Err(e), _) | (_, Err(e)) => {
                error!(error = %e, "cannot listen for SIGTERM and SIGHUP; stop with Ctrl-C");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return,
                _ = terminate.recv() => return,
                _ = hangup.recv() => {
                    info!("SIGHUP: reading the tokens and TLS files again");
                    if let Err(e) = hopline.reload() {
                        error!("{e:#}");
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
