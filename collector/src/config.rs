//! Configuration: command-line flags, then `HOPLINE_*` environment variables, then an
//! optional TOML file (`--config`), then defaults. Everything is parsed and checked
//! here, once, before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./hopline-data";
pub const DEFAULT_OTLP_GRPC_ADDR: &str = "0.0.0.0:4317";
pub const DEFAULT_OTLP_HTTP_ADDR: &str = "0.0.0.0:4318";
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:16686";
pub const DEFAULT_RETENTION: &str = "7d";
pub const DEFAULT_COMMIT_INTERVAL: &str = "1s";
pub const DEFAULT_MAX_REQUEST_SIZE: &str = "16MiB";
pub const DEFAULT_SPLIT_DURATION: &str = "1h";
/// About a third of a second of indexing: under overload, what is acknowledged
/// becomes searchable within the commit interval and that.
pub const DEFAULT_QUEUE_CAPACITY: u64 = 16_384;

/// Hopline: OpenTelemetry traces and logs in, one request followed across every hop.
#[derive(Debug, Parser)]
#[command(name = "hopline", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive OTLP, index it and serve the UI and query API (the default).
    Serve(ServeArgs),
}

impl Cli {
    pub fn serve_args(self) -> ServeArgs {
        match self.command {
            Some(Command::Serve(args)) => args,
            None => self.serve,
        }
    }
}

/// The settings of `hopline serve`. Every one is also an environment variable and a
/// key of the `--config` TOML file (the flag's name with `_` for `-`).
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below; flags and environment win over it.
    #[arg(long, env = "HOPLINE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the write-ahead log and the indexes live [default: ./hopline-data]
    #[arg(long, env = "HOPLINE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address (TraceService, LogsService) [default: 0.0.0.0:4317]
    #[arg(long, env = "HOPLINE_OTLP_GRPC_ADDR", value_name = "ADDR")]
    pub otlp_grpc_addr: Option<String>,
    /// OTLP/HTTP listen address (/v1/traces, /v1/logs) [default: 0.0.0.0:4318]
    #[arg(long, env = "HOPLINE_OTLP_HTTP_ADDR", value_name = "ADDR")]
    pub otlp_http_addr: Option<String>,
    /// UI, query API, /health and /metrics listen address [default: 0.0.0.0:16686]
    #[arg(long, env = "HOPLINE_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// How long data is kept: whole splits older than this are dropped [default: 7d]
    #[arg(long, env = "HOPLINE_RETENTION", value_name = "DURATION")]
    pub retention: Option<String>,
    /// How often new data is committed to the indexes, i.e. how soon it is searchable [default: 1s]
    #[arg(long, env = "HOPLINE_COMMIT_INTERVAL", value_name = "DURATION")]
    pub commit_interval: Option<String>,
    /// Largest accepted OTLP request, compressed or decompressed [default: 16MiB]
    #[arg(long, env = "HOPLINE_MAX_REQUEST_SIZE", value_name = "SIZE")]
    pub max_request_size: Option<String>,
    /// Wall-clock span of one index split before it is sealed [default: 1h]
    #[arg(long, env = "HOPLINE_SPLIT_DURATION", value_name = "DURATION")]
    pub split_duration: Option<String>,
    /// The web UI's built assets (`cargo xtask ui`) [default: `site` beside the
    /// binary's directory, i.e. target/site for target/release/hopline]
    #[arg(long, env = "HOPLINE_UI_DIR", value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,
    /// Records accepted but not yet indexed, per signal, before receivers answer
    /// 503/Unavailable [default: 16384]
    #[arg(long, env = "HOPLINE_QUEUE_CAPACITY", value_name = "RECORDS")]
    pub queue_capacity: Option<u64>,
}

/// The `--config` file: the same keys as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    otlp_grpc_addr: Option<String>,
    otlp_http_addr: Option<String>,
    http_addr: Option<String>,
    retention: Option<String>,
    commit_interval: Option<String>,
    max_request_size: Option<String>,
    split_duration: Option<String>,
    queue_capacity: Option<u64>,
    ui_dir: Option<PathBuf>,
}

/// Validated settings of a running collector.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub retention: Duration,
    pub commit_interval: Duration,
    pub max_request_size: usize,
    pub split_duration: Duration,
    pub queue_capacity: u64,
    pub ui_dir: PathBuf,
}

impl Config {
    /// Resolves flags and environment (already merged by clap) over the TOML file
    /// over the defaults, and checks every value.
    pub fn load(args: ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let pick = |flag: Option<String>, file: Option<String>, default: &str| {
            flag.or(file).unwrap_or_else(|| default.to_string())
        };
        let config = Config {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            otlp_grpc_addr: parse_addr(
                "otlp-grpc-addr",
                &pick(
                    args.otlp_grpc_addr,
                    file.otlp_grpc_addr,
                    DEFAULT_OTLP_GRPC_ADDR,
                ),
            )?,
            otlp_http_addr: parse_addr(
                "otlp-http-addr",
                &pick(
                    args.otlp_http_addr,
                    file.otlp_http_addr,
                    DEFAULT_OTLP_HTTP_ADDR,
                ),
            )?,
            http_addr: parse_addr(
                "http-addr",
                &pick(args.http_addr, file.http_addr, DEFAULT_HTTP_ADDR),
            )?,
            retention: parse_setting(
                "retention",
                &pick(args.retention, file.retention, DEFAULT_RETENTION),
                parse_duration,
            )?,
            commit_interval: parse_setting(
                "commit-interval",
                &pick(
                    args.commit_interval,
                    file.commit_interval,
                    DEFAULT_COMMIT_INTERVAL,
                ),
                parse_duration,
            )?,
            max_request_size: parse_setting(
                "max-request-size",
                &pick(
                    args.max_request_size,
                    file.max_request_size,
                    DEFAULT_MAX_REQUEST_SIZE,
                ),
                parse_size,
            )?,
            split_duration: parse_setting(
                "split-duration",
                &pick(
                    args.split_duration,
                    file.split_duration,
                    DEFAULT_SPLIT_DURATION,
                ),
                parse_duration,
            )?,
            queue_capacity: args
                .queue_capacity
                .or(file.queue_capacity)
                .unwrap_or(DEFAULT_QUEUE_CAPACITY),
            ui_dir: args.ui_dir.or(file.ui_dir).unwrap_or_else(default_ui_dir),
        };
        config.validate()?;
        Ok(config)
    }

    /// A configuration for tests: loopback, port 0 everywhere, a short commit interval.
    pub fn for_tests(data_dir: &Path) -> Config {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Config {
            data_dir: data_dir.to_path_buf(),
            otlp_grpc_addr: loopback,
            otlp_http_addr: loopback,
            http_addr: loopback,
            retention: Duration::from_secs(7 * 24 * 3600),
            commit_interval: Duration::from_millis(100),
            max_request_size: 16 << 20,
            split_duration: Duration::from_secs(3600),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            ui_dir: default_ui_dir(),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.commit_interval < Duration::from_millis(10) {
            bail!(
                "commit-interval must be at least 10ms, got {:?}",
                self.commit_interval
            );
        }
        if self.retention < Duration::from_secs(60) {
            bail!("retention must be at least 1m, got {:?}", self.retention);
        }
        if self.split_duration < Duration::from_secs(1) {
            bail!(
                "split-duration must be at least 1s, got {:?}",
                self.split_duration
            );
        }
        if self.max_request_size < 1024 {
            bail!(
                "max-request-size must be at least 1KiB, got {} bytes",
                self.max_request_size
            );
        }
        if self.queue_capacity < 1024 {
            bail!(
                "queue-capacity must be at least 1024 records, got {}",
                self.queue_capacity
            );
        }
        Ok(())
    }
}

/// `site` beside the directory of the running binary: `target/site` for
/// `target/release/hopline`, where `cargo xtask ui` puts the bundle.
fn default_ui_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .and_then(Path::parent)
                .map(|dir| dir.join("site"))
        })
        .unwrap_or_else(|| PathBuf::from("target/site"))
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn parse_setting<T>(
    name: &str,
    value: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> anyhow::Result<T> {
    parse(value).map_err(|message| anyhow::anyhow!("invalid {name} '{value}': {message}"))
}

fn parse_addr(name: &str, value: &str) -> anyhow::Result<SocketAddr> {
    parse_setting(name, value, |v| {
        v.parse::<SocketAddr>()
            .map_err(|_| "expected HOST:PORT, such as 0.0.0.0:4317".into())
    })
}

/// Parses a duration such as `150ms`, `1.5s`, `2m`, `1h`, `7d` or `250us`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| "missing unit (one of ns, us, ms, s, m, h, d)".to_string())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{number}' is not a number"))?;
    let nanos_per_unit = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        "d" => 86400e9,
        other => {
            return Err(format!(
                "unknown unit '{other}' (one of ns, us, ms, s, m, h, d)"
            ))
        }
    };
    let nanos = value * nanos_per_unit;
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err("too large".into());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Parses a size such as `16MiB`, `512KiB`, `1GB` or `1048576`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("'{number}' is not a whole number"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit '{other}' (one of B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    value
        .checked_mul(multiplier)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(|| "too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_jaeger_writes_them() {
        assert_eq!(parse_duration("150ms"), Ok(Duration::from_millis(150)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("3 weeks")
            .unwrap_err()
            .contains("unknown unit"));
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2KB"), Ok(2000));
        assert!(parse_size("1.5MiB").is_err());
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hopline.toml");
        std::fs::write(&path, "retention = \"2d\"\ncommit_interval = \"5s\"\n").expect("write");
        let args = ServeArgs {
            config: Some(path),
            commit_interval: Some("250ms".into()),
            ..ServeArgs::default()
        };
        let config = Config::load(args).expect("valid");
        assert_eq!(config.retention, Duration::from_secs(2 * 86400));
        assert_eq!(config.commit_interval, Duration::from_millis(250));
        assert_eq!(config.http_addr.port(), 16686);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused_with_the_setting_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hopline.toml");
        std::fs::write(&path, "retenshun = \"2d\"\n").expect("write");
        let error = Config::load(ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .expect_err("unknown key");
        assert!(format!("{error:#}").contains("retenshun"), "{error:#}");

        let error = Config::load(ServeArgs {
            retention: Some("soon".into()),
            ..ServeArgs::default()
        })
        .expect_err("bad value");
        assert!(
            error.to_string().contains("invalid retention 'soon'"),
            "{error}"
        );
    }
}
