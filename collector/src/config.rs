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
/// Loopback by default: nothing is reachable from elsewhere until it is asked for
/// (and, without tokens, confirmed with `--insecure`).
pub const DEFAULT_OTLP_GRPC_ADDR: &str = "127.0.0.1:4317";
pub const DEFAULT_OTLP_HTTP_ADDR: &str = "127.0.0.1:4318";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:16686";
/// The tenant of everything when no tenant is configured.
pub const DEFAULT_TENANT: &str = "default";
/// Shortest accepted token: 16 characters (e.g. `openssl rand -hex 16` gives 32).
pub const MIN_TOKEN_LEN: usize = 16;
pub const DEFAULT_RETENTION: &str = "7d";
/// Half a second: acknowledged records are searchable within a second (p99 0.93 s
/// at full load, docs/benchmarks.md), at no measurable cost in CPU per record.
pub const DEFAULT_COMMIT_INTERVAL: &str = "500ms";
pub const DEFAULT_MAX_REQUEST_SIZE: &str = "16MiB";
pub const DEFAULT_SPLIT_DURATION: &str = "1h";
/// Ten million records: at full load a split holds about 28 segments of 360,000
/// documents, which are merged no further (see `store::split`).
pub const DEFAULT_SPLIT_RECORDS: u64 = 10_000_000;
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
    Serve(Box<ServeArgs>),
    /// Serve MCP over stdio (for an assistant on this machine), answering each
    /// tool call from a running Hopline's `/mcp`.
    Mcp(McpArgs),
}

/// The settings of `hopline mcp`.
#[derive(Debug, Clone, Args)]
pub struct McpArgs {
    /// The Hopline to ask: its UI and API address
    #[arg(
        long,
        env = "HOPLINE_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:16686"
    )]
    pub url: String,
    /// A query token of that Hopline, when it has tokens
    #[arg(
        long,
        env = "HOPLINE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// The tenant to read, when the token reaches several (sent as X-Scope-OrgID)
    #[arg(long, env = "HOPLINE_TENANT", value_name = "TENANT")]
    pub tenant: Option<String>,
    /// CA certificates (PEM) to trust beside the system's, for an https:// URL
    #[arg(long, env = "HOPLINE_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// The settings of `hopline serve`. Every one is also an environment variable and a
/// key of the `--config` TOML file (the flag's name with `_` for `-`).
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of the settings below; flags and environment win over it.
    #[arg(long, env = "HOPLINE_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Where the write-ahead log and the indexes live [default: ./hopline-data]
    #[arg(long, env = "HOPLINE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address (TraceService, LogsService) [default: 127.0.0.1:4317]
    #[arg(long, env = "HOPLINE_OTLP_GRPC_ADDR", value_name = "ADDR")]
    pub otlp_grpc_addr: Option<String>,
    /// OTLP/HTTP listen address (/v1/traces, /v1/logs) [default: 127.0.0.1:4318]
    #[arg(long, env = "HOPLINE_OTLP_HTTP_ADDR", value_name = "ADDR")]
    pub otlp_http_addr: Option<String>,
    /// Zipkin v2 listen address (POST /api/v2/spans, JSON or protobuf), such as
    /// 0.0.0.0:9411; the OTLP/HTTP listener takes Zipkin spans too [default: off]
    #[arg(long, env = "HOPLINE_ZIPKIN_ADDR", value_name = "ADDR")]
    pub zipkin_addr: Option<String>,
    /// Syslog listen address, TCP and UDP (RFC 5424 and RFC 3164; octet-counted or
    /// newline-framed), such as 127.0.0.1:5514; syslog carries no token, so another
    /// than a loopback address needs --insecure [default: off]
    #[arg(long, env = "HOPLINE_SYSLOG_ADDR", value_name = "ADDR")]
    pub syslog_addr: Option<String>,
    /// UI, query API, /health and /metrics listen address [default: 127.0.0.1:16686]
    #[arg(long, env = "HOPLINE_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// How long data is kept: whole splits older than this are dropped [default: 7d]
    #[arg(long, env = "HOPLINE_RETENTION", value_name = "DURATION")]
    pub retention: Option<String>,
    /// How often new data is committed to the indexes, i.e. how soon it is searchable [default: 500ms]
    #[arg(long, env = "HOPLINE_COMMIT_INTERVAL", value_name = "DURATION")]
    pub commit_interval: Option<String>,
    /// Largest accepted OTLP request, compressed or decompressed [default: 16MiB]
    #[arg(long, env = "HOPLINE_MAX_REQUEST_SIZE", value_name = "SIZE")]
    pub max_request_size: Option<String>,
    /// Wall-clock span of one index split before it is sealed [default: 1h]
    #[arg(long, env = "HOPLINE_SPLIT_DURATION", value_name = "DURATION")]
    pub split_duration: Option<String>,
    /// Records of one signal in one index split before it is sealed, whatever its
    /// duration [default: 10000000]
    #[arg(long, env = "HOPLINE_SPLIT_RECORDS", value_name = "N")]
    pub split_records: Option<u64>,
    /// The web UI's built assets (`cargo xtask ui`) [default: `site` beside the
    /// binary's directory, i.e. target/site for target/release/hopline]
    #[arg(long, env = "HOPLINE_UI_DIR", value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,
    /// Records accepted but not yet indexed, per signal, before receivers answer
    /// 503/Unavailable [default: 16384]
    #[arg(long, env = "HOPLINE_QUEUE_CAPACITY", value_name = "RECORDS")]
    pub queue_capacity: Option<u64>,
    /// Bytes of records accepted but not yet indexed, per signal, before receivers
    /// answer 503/Unavailable [default: 128MiB]
    #[arg(long, env = "HOPLINE_QUEUE_BYTES", value_name = "SIZE")]
    pub queue_bytes: Option<String>,
    /// Bytes of request bodies being received at once, over both OTLP listeners;
    /// beyond it requests are refused with 503/Unavailable [default: 256MiB]
    #[arg(long, env = "HOPLINE_MAX_INFLIGHT_BYTES", value_name = "SIZE")]
    pub max_inflight_bytes: Option<String>,
    /// Open connections per listener; more wait to be accepted [default: 1024]
    #[arg(long, env = "HOPLINE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u64>,
    /// Concurrent gRPC streams per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS) [default: 64]
    #[arg(long, env = "HOPLINE_GRPC_MAX_STREAMS", value_name = "N")]
    pub grpc_max_streams: Option<u64>,
    /// Time a client has to send a request's headers, and then its whole body [default: 30s]
    #[arg(long, env = "HOPLINE_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// A connection on which nothing is sent or received for this long is closed [default: 2m]
    #[arg(long, env = "HOPLINE_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// Longest a query may run; it is then cancelled with 503 [default: 30s]
    #[arg(long, env = "HOPLINE_QUERY_TIMEOUT", value_name = "DURATION")]
    pub query_timeout: Option<String>,
    /// Queries run at once; more wait (up to the query timeout), then get 503 [default: 4]
    #[arg(long, env = "HOPLINE_MAX_CONCURRENT_QUERIES", value_name = "N")]
    pub max_concurrent_queries: Option<u64>,
    /// Spans of one trace returned by a trace lookup or search; the answer says
    /// when a trace was cut [default: 10000]
    #[arg(long, env = "HOPLINE_MAX_SPANS_PER_TRACE", value_name = "N")]
    pub max_spans_per_trace: Option<u64>,
    /// Live log tails open at once [default: 64]
    #[arg(long, env = "HOPLINE_MAX_TAILS", value_name = "N")]
    pub max_tails: Option<u64>,
    /// Attributes kept per span, event, link, log record, resource and scope;
    /// the rest are dropped and counted [default: 128]
    #[arg(long, env = "HOPLINE_MAX_ATTRIBUTES", value_name = "N")]
    pub max_attributes: Option<u64>,
    /// Longest attribute value kept; longer ones are cut and the record gets
    /// `hopline.truncated` [default: 64KiB]
    #[arg(long, env = "HOPLINE_MAX_ATTRIBUTE_VALUE", value_name = "SIZE")]
    pub max_attribute_value: Option<String>,
    /// Events and links kept per span; the rest are dropped and counted [default: 128]
    #[arg(long, env = "HOPLINE_MAX_EVENTS", value_name = "N")]
    pub max_events: Option<u64>,
    /// Longest log body kept; longer ones are cut and the record gets
    /// `hopline.truncated` [default: 256KiB]
    #[arg(long, env = "HOPLINE_MAX_LOG_BODY", value_name = "SIZE")]
    pub max_log_body: Option<String>,
    /// Distinct attribute keys indexed per split; values of further keys are
    /// stored but not searchable [default: 10000]
    #[arg(long, env = "HOPLINE_MAX_INDEXED_KEYS", value_name = "N")]
    pub max_indexed_keys: Option<u64>,
    /// Host names (or host:port) the UI and query API answer to besides the loopback
    /// names, comma-separated, against DNS rebinding (e.g. hopline.example.com);
    /// `*` for any [default: localhost, 127.0.0.1, [::1], and the --http-addr host
    /// when it is a specific address]
    #[arg(
        long,
        env = "HOPLINE_ALLOWED_HOSTS",
        value_name = "HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Option<Vec<String>>,
    /// Tokens that may send data (OTLP `Authorization: Bearer <token>`) to the tenant
    /// `default`, comma-separated; prefer --tokens-file, which stays out of `ps`
    #[arg(
        long,
        env = "HOPLINE_INGEST_TOKENS",
        value_name = "TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub ingest_tokens: Option<Vec<String>>,
    /// Tokens that may read (query API, UI, /metrics) the tenant `default`,
    /// comma-separated; prefer --tokens-file
    #[arg(
        long,
        env = "HOPLINE_QUERY_TOKENS",
        value_name = "TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub query_tokens: Option<Vec<String>>,
    /// TOML file of tokens and tenants (`ingest_tokens`, `query_tokens`,
    /// `[[tenants]]`), re-read on SIGHUP and when it changes
    #[arg(long, env = "HOPLINE_TOKENS_FILE", value_name = "FILE")]
    pub tokens_file: Option<PathBuf>,
    /// A header naming the signed-in user, set by a single sign-on proxy in front of
    /// the UI (e.g. X-Forwarded-Email from oauth2-proxy); trusted only from
    /// --trusted-proxies
    #[arg(long, env = "HOPLINE_AUTH_PROXY_HEADER", value_name = "HEADER")]
    pub auth_proxy_header: Option<String>,
    /// Addresses (CIDRs, comma-separated) whose --auth-proxy-header is believed
    #[arg(
        long,
        env = "HOPLINE_TRUSTED_PROXIES",
        value_name = "CIDRS",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<String>>,
    /// PEM certificate chain: serve TLS on all three listeners (with --tls-key);
    /// re-read on SIGHUP and when the file changes
    #[arg(long, env = "HOPLINE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "HOPLINE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: OTLP clients must present a certificate signed by one
    /// (mutual TLS on 4317 and 4318)
    #[arg(long, env = "HOPLINE_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Allow listening on a non-loopback address without tokens (anyone who reaches
    /// the port may then read or write everything)
    #[arg(long, env = "HOPLINE_INSECURE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub insecure: Option<bool>,
    /// What this process does: `all` (one box, the default), or in a cluster
    /// `ingest` (receivers, WAL, publishing), `search` (UI and query API over the
    /// published splits and the ingest nodes) or `janitor` (merges, retention)
    #[arg(long, env = "HOPLINE_ROLE", value_name = "ROLE")]
    pub role: Option<String>,
    /// Cluster mode: sealed splits go to this S3 bucket and prefix
    /// (`s3://bucket/prefix`); credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY. Needs --metastore
    #[arg(long, env = "HOPLINE_OBJECT_STORE", value_name = "URL")]
    pub object_store: Option<String>,
    /// Cluster mode: split metadata and node heartbeats in this PostgreSQL
    /// database (`postgres://user@host/db`); migrations are applied at start
    #[arg(long, env = "HOPLINE_METASTORE", value_name = "URL")]
    pub metastore: Option<String>,
    /// S3 endpoint for MinIO, SeaweedFS, Ceph... (path-style requests); plain
    /// `http://` is allowed [default: AWS_ENDPOINT_URL, else AWS's]
    #[arg(long, env = "HOPLINE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION, else us-east-1]
    #[arg(long, env = "HOPLINE_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Cluster mode: how often an ingest node seals and publishes its splits; at
    /// most this much acknowledged data lives on its disk alone [default: 30s]
    #[arg(long, env = "HOPLINE_PUBLISH_INTERVAL", value_name = "DURATION")]
    pub publish_interval: Option<String>,
    /// Cluster mode: disk a search node may use for splits fetched from object
    /// storage [default: 10GiB]
    #[arg(long, env = "HOPLINE_CACHE_SIZE", value_name = "SIZE")]
    pub cache_size: Option<String>,
    /// Cluster mode: this node's name, unique in the cluster (letters, digits,
    /// `-`) [default: the host name]
    #[arg(long, env = "HOPLINE_NODE_ID", value_name = "NAME")]
    pub node_id: Option<String>,
    /// Cluster mode: the address other nodes reach this node's query API at
    /// [default: --http-addr, with the host name for 0.0.0.0]
    #[arg(long, env = "HOPLINE_ADVERTISE_ADDR", value_name = "HOST:PORT")]
    pub advertise_addr: Option<String>,
    /// Cluster mode with --tls-cert: CA certificates (PEM) that the other nodes'
    /// certificates chain to, trusted beside the system's roots when nodes call
    /// each other over HTTPS
    #[arg(long, env = "HOPLINE_CLUSTER_CA", value_name = "FILE")]
    pub cluster_ca: Option<PathBuf>,
    /// Cluster mode: a secret the nodes share, with which they ask each other's
    /// leaf searches for any tenant (else each tenant's first query token)
    #[arg(
        long,
        env = "HOPLINE_CLUSTER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub cluster_token: Option<String>,
    /// Tenants, in the config file only (`[[tenants]]`, as in --tokens-file).
    #[arg(skip)]
    #[serde(default)]
    pub tenants: Option<Vec<TenantSpec>>,
}

/// One tenant as configured (`[[tenants]]` in `--config` or `--tokens-file`).
#[derive(Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub name: String,
    #[serde(default)]
    pub ingest_tokens: Vec<String>,
    #[serde(default)]
    pub query_tokens: Vec<String>,
    /// Users named by `--auth-proxy-header` who may read this tenant: exact, or
    /// `*@example.com` for a domain, or `*`.
    #[serde(default)]
    pub query_users: Vec<String>,
    /// How long this tenant's data is kept (default: `--retention`).
    pub retention: Option<String>,
    pub max_records_per_second: Option<u64>,
    /// Bytes written to the write-ahead log per UTC day (a protobuf request as
    /// received, decompressed), e.g. `10GiB`.
    pub max_bytes_per_day: Option<String>,
}

/// The tokens file alone: nothing else may be in it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    ingest_tokens: Vec<String>,
    #[serde(default)]
    query_tokens: Vec<String>,
    #[serde(default)]
    tenants: Vec<TenantSpec>,
}

/// A tenant, checked: its tokens, who may read it, its retention and limits.
#[derive(Clone, PartialEq)]
pub struct Tenant {
    pub name: String,
    pub ingest_tokens: Vec<String>,
    pub query_tokens: Vec<String>,
    pub query_users: Vec<String>,
    pub retention: Duration,
    pub max_records_per_second: Option<u64>,
    pub max_bytes_per_day: Option<u64>,
}

/// Who may do what: every tenant (`default` first), from the flags, the config
/// file and the tokens file. Re-read on SIGHUP from [`AccessSources`].
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    pub tenants: Vec<Tenant>,
    /// `--auth-proxy-header`, lower-case, with the networks it is believed from.
    pub proxy_header: Option<String>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Access {
    /// No token, no proxy: as before tokens existed, everything open, one tenant.
    pub fn open(retention: Duration) -> Access {
        Access {
            tenants: vec![Tenant::empty(DEFAULT_TENANT, retention)],
            proxy_header: None,
            trusted_proxies: Vec::new(),
        }
    }

    /// Whether writing needs a token.
    pub fn ingest_protected(&self) -> bool {
        self.tenants.iter().any(|t| !t.ingest_tokens.is_empty())
    }

    /// Whether reading needs a token (or a user named by the proxy).
    pub fn query_protected(&self) -> bool {
        self.proxy_header.is_some() || self.tenants.iter().any(|t| !t.query_tokens.is_empty())
    }
}

/// Never the tokens themselves: a debug print must not leak them.
impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("name", &self.name)
            .field("ingest_tokens", &self.ingest_tokens.len())
            .field("query_tokens", &self.query_tokens.len())
            .field("query_users", &self.query_users)
            .field("retention", &self.retention)
            .field("max_records_per_second", &self.max_records_per_second)
            .field("max_bytes_per_day", &self.max_bytes_per_day)
            .finish()
    }
}

impl Tenant {
    fn empty(name: &str, retention: Duration) -> Tenant {
        Tenant {
            name: name.to_string(),
            ingest_tokens: Vec::new(),
            query_tokens: Vec::new(),
            query_users: Vec::new(),
            retention,
            max_records_per_second: None,
            max_bytes_per_day: None,
        }
    }
}

/// Where [`Access`] comes from, kept to read it again.
#[derive(Clone, Default)]
pub struct AccessSources {
    flag_ingest_tokens: Vec<String>,
    flag_query_tokens: Vec<String>,
    config_file: Option<PathBuf>,
    tokens_file: Option<PathBuf>,
    proxy_header: Option<String>,
    trusted_proxies: Vec<String>,
    retention: Duration,
}

impl std::fmt::Debug for AccessSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessSources")
            .field("config_file", &self.config_file)
            .field("tokens_file", &self.tokens_file)
            .finish_non_exhaustive()
    }
}

impl AccessSources {
    /// The files tokens come from.
    pub fn files(&self) -> Vec<&Path> {
        [&self.config_file, &self.tokens_file]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect()
    }

    /// The files' modification times and sizes: a change means read them again.
    pub fn stamp(&self) -> Vec<Option<(std::time::SystemTime, u64)>> {
        self.files()
            .into_iter()
            .map(|path| {
                let meta = std::fs::metadata(path).ok()?;
                Some((meta.modified().ok()?, meta.len()))
            })
            .collect()
    }

    /// Reads the files again and checks everything.
    pub fn load(&self) -> anyhow::Result<Access> {
        let mut file = TokensFile::default();
        if let Some(path) = &self.config_file {
            let args = read_file_config(path)?;
            file.ingest_tokens = args.ingest_tokens.unwrap_or_default();
            file.query_tokens = args.query_tokens.unwrap_or_default();
            file.tenants = args.tenants.unwrap_or_default();
        }
        if let Some(path) = &self.tokens_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read tokens file {}", path.display()))?;
            let tokens: TokensFile = toml::from_str(&text)
                .with_context(|| format!("invalid tokens file {}", path.display()))?;
            file.ingest_tokens.extend(tokens.ingest_tokens);
            file.query_tokens.extend(tokens.query_tokens);
            file.tenants.extend(tokens.tenants);
        }
        let mut default = TenantSpec {
            name: DEFAULT_TENANT.into(),
            ingest_tokens: self.flag_ingest_tokens.clone(),
            query_tokens: self.flag_query_tokens.clone(),
            ..TenantSpec::default()
        };
        default.ingest_tokens.extend(file.ingest_tokens);
        default.query_tokens.extend(file.query_tokens);
        let mut specs = vec![default];
        for spec in file.tenants {
            match specs.iter_mut().find(|s| s.name == spec.name) {
                // `[[tenants]] name = "default"` sets the default tenant's limits.
                Some(existing) if spec.name == DEFAULT_TENANT => {
                    existing.ingest_tokens.extend(spec.ingest_tokens);
                    existing.query_tokens.extend(spec.query_tokens);
                    existing.query_users.extend(spec.query_users);
                    existing.retention = spec.retention;
                    existing.max_records_per_second = spec.max_records_per_second;
                    existing.max_bytes_per_day = spec.max_bytes_per_day;
                }
                Some(_) => bail!("tenant '{}' is configured twice", spec.name),
                None => specs.push(spec),
            }
        }
        let tenants = specs
            .into_iter()
            .map(|spec| self.tenant(spec))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let proxy_header = match &self.proxy_header {
            Some(name) => {
                let name = name.trim().to_ascii_lowercase();
                if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    bail!("invalid auth-proxy-header '{name}': not a header name");
                }
                if self.trusted_proxies.is_empty() {
                    bail!("auth-proxy-header needs trusted-proxies: the addresses of the proxies that set it");
                }
                Some(name)
            }
            None => None,
        };
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|cidr| parse_network(cidr))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Access {
            tenants,
            proxy_header,
            trusted_proxies,
        })
    }

    fn tenant(&self, spec: TenantSpec) -> anyhow::Result<Tenant> {
        let name = spec.name;
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_name {
            bail!("invalid tenant name '{name}': use 1 to 64 of a-z, 0-9, '-' and '_'");
        }
        for token in spec.ingest_tokens.iter().chain(&spec.query_tokens) {
            check_token(token).with_context(|| format!("tenant '{name}'"))?;
        }
        let retention = match spec.retention {
            Some(text) => parse_setting("retention", &text, parse_duration)
                .with_context(|| format!("tenant '{name}'"))?,
            None => self.retention,
        };
        if retention < Duration::from_secs(60) {
            bail!("tenant '{name}': retention must be at least 1m, got {retention:?}");
        }
        let max_bytes_per_day = match spec.max_bytes_per_day {
            Some(text) => Some(
                parse_setting("max_bytes_per_day", &text, parse_size)
                    .with_context(|| format!("tenant '{name}'"))? as u64,
            ),
            None => None,
        };
        if spec.max_records_per_second == Some(0) || max_bytes_per_day == Some(0) {
            bail!(
                "tenant '{name}': a rate limit of 0 would refuse everything; leave it out for none"
            );
        }
        if name != DEFAULT_TENANT
            && spec.ingest_tokens.is_empty()
            && spec.query_tokens.is_empty()
            && spec.query_users.is_empty()
        {
            bail!("tenant '{name}' has no ingest_tokens, query_tokens or query_users: nobody could reach it");
        }
        Ok(Tenant {
            name,
            ingest_tokens: spec.ingest_tokens,
            query_tokens: spec.query_tokens,
            query_users: spec.query_users,
            retention,
            max_records_per_second: spec.max_records_per_second,
            max_bytes_per_day,
        })
    }
}

impl std::fmt::Debug for TenantSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSpec")
            .field("name", &self.name)
            .field("ingest_tokens", &self.ingest_tokens.len())
            .field("query_tokens", &self.query_tokens.len())
            .finish_non_exhaustive()
    }
}

/// A token must be long enough not to be guessed, and plain enough to travel in a
/// header and a cookie unchanged.
fn check_token(token: &str) -> anyhow::Result<()> {
    if token.len() < MIN_TOKEN_LEN {
        bail!(
            "a token of {} characters is too short to be secret: use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 16`)",
            token.len()
        );
    }
    let plain = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if !plain {
        bail!("a token may hold only letters, digits and - . _ ~ + / =");
    }
    Ok(())
}

/// `10.0.0.0/8`, `::1/128`, or a bare address (one host).
fn parse_network(text: &str) -> anyhow::Result<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| anyhow::anyhow!("invalid trusted-proxies entry '{text}': expected a CIDR such as 10.0.0.0/8 or an address"))
}

/// TLS files: the server's certificate and key, and for mutual TLS on the OTLP
/// listeners the CAs of client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl ServeArgs {
    /// Every setting given here, else the one in `file`.
    fn or(self, file: ServeArgs) -> ServeArgs {
        macro_rules! merged {
            ($($field:ident),* $(,)?) => {
                ServeArgs { config: self.config, $($field: self.$field.or(file.$field),)* }
            };
        }
        merged!(
            data_dir,
            otlp_grpc_addr,
            otlp_http_addr,
            zipkin_addr,
            syslog_addr,
            http_addr,
            retention,
            commit_interval,
            max_request_size,
            split_duration,
            split_records,
            ui_dir,
            queue_capacity,
            queue_bytes,
            max_inflight_bytes,
            max_connections,
            grpc_max_streams,
            request_timeout,
            idle_timeout,
            query_timeout,
            max_concurrent_queries,
            max_spans_per_trace,
            max_tails,
            max_attributes,
            max_attribute_value,
            max_events,
            max_log_body,
            max_indexed_keys,
            allowed_hosts,
            ingest_tokens,
            query_tokens,
            tokens_file,
            auth_proxy_header,
            trusted_proxies,
            tls_cert,
            tls_key,
            tls_client_ca,
            insecure,
            role,
            object_store,
            metastore,
            s3_endpoint,
            s3_region,
            publish_interval,
            cache_size,
            node_id,
            advertise_addr,
            cluster_ca,
            cluster_token,
            tenants,
        )
    }
}

/// What one record may cost: beyond these, attributes, events and links are dropped
/// (and counted, as OTLP's `dropped_*_count`), long values cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    pub max_attributes: usize,
    pub max_attribute_value: usize,
    pub max_events: usize,
    pub max_log_body: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        Self {
            max_attributes: 128,
            max_attribute_value: 64 << 10,
            max_events: 128,
            max_log_body: 256 << 10,
        }
    }
}

/// What the listeners allow a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerLimits {
    pub max_request_size: usize,
    pub max_inflight_bytes: usize,
    pub max_connections: usize,
    pub grpc_max_streams: u32,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    /// Lower-case host names, or `host:port`; empty: any.
    pub allowed_hosts: Vec<String>,
}

/// What a query may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    pub timeout: Duration,
    pub max_concurrent: usize,
    pub max_spans_per_trace: usize,
    pub max_tails: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_concurrent: 4,
            max_spans_per_trace: 10_000,
            max_tails: 64,
        }
    }
}

/// Validated settings of a running collector.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    /// The Zipkin listener, when one is asked for.
    pub zipkin_addr: Option<SocketAddr>,
    /// The syslog listener (TCP and UDP), when one is asked for.
    pub syslog_addr: Option<SocketAddr>,
    pub http_addr: SocketAddr,
    pub retention: Duration,
    pub commit_interval: Duration,
    pub split_duration: Duration,
    /// Records after which a split is sealed (whatever its duration).
    pub split_records: u64,
    pub queue_capacity: u64,
    pub queue_bytes: usize,
    pub max_indexed_keys: usize,
    pub ui_dir: PathBuf,
    pub server: ServerLimits,
    pub query: QueryLimits,
    pub records: RecordLimits,
    /// Tokens and tenants as they were at start.
    pub access: Access,
    /// Where to read them again (SIGHUP).
    pub access_sources: AccessSources,
    pub tls: Option<TlsFiles>,
    /// How often the tokens and TLS files are checked for changes.
    pub reload_interval: Duration,
    /// How often each index drops what is past its retention.
    pub retention_interval: Duration,
    /// What this process does.
    pub role: NodeRole,
    /// Cluster mode (`--object-store` and `--metastore`); `None` on one box.
    pub cluster: Option<ClusterSettings>,
}

/// What a process does (`--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Everything, on one box or as one node of a cluster.
    All,
    Ingest,
    Search,
    Janitor,
}

impl NodeRole {
    pub fn parse(text: &str) -> anyhow::Result<NodeRole> {
        Ok(match text {
            "all" => NodeRole::All,
            "ingest" => NodeRole::Ingest,
            "search" => NodeRole::Search,
            "janitor" => NodeRole::Janitor,
            other => bail!("role must be all, ingest, search or janitor, got '{other}'"),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::All => "all",
            NodeRole::Ingest => "ingest",
            NodeRole::Search => "search",
            NodeRole::Janitor => "janitor",
        }
    }

    /// Whether this role takes OTLP (receivers, WAL, writers).
    pub fn ingests(self) -> bool {
        matches!(self, NodeRole::All | NodeRole::Ingest)
    }

    /// Whether this role serves the UI and the query API to users.
    pub fn serves_queries(self) -> bool {
        matches!(self, NodeRole::All | NodeRole::Search)
    }
}

/// Where a cluster keeps its data and metadata, and this node's part in it.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `s3://bucket/prefix`, parsed.
    pub bucket: String,
    pub prefix: String,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// The PostgreSQL URL (it may hold a password: never logged whole).
    pub metastore: String,
    pub publish_interval: Duration,
    pub cache_size: u64,
    pub node_id: String,
    /// Where other nodes reach this node's query API (`host:port`); by default
    /// the address it listens on (the host name for 0.0.0.0).
    pub advertise_addr: Option<String>,
    /// This node serves TLS (`--tls-cert`): so do the others, and nodes call
    /// each other over HTTPS.
    pub tls: bool,
    /// CA certificates (PEM) the other nodes' certificates chain to, beside the
    /// system's roots.
    pub cluster_ca: Option<PathBuf>,
    /// The secret nodes ask each other's leaf searches with, for any tenant.
    pub token: Option<String>,
}

impl ClusterSettings {
    /// Where other nodes reach this node, which listens on `http_addr`.
    pub fn advertised(&self, http_addr: SocketAddr) -> String {
        match &self.advertise_addr {
            Some(addr) => addr.clone(),
            None if http_addr.ip().is_unspecified() => {
                format!("{}:{}", host_name(), http_addr.port())
            }
            None => http_addr.to_string(),
        }
    }
}

impl ClusterSettings {
    /// The metastore's URL without its password, for the log.
    pub fn metastore_for_log(&self) -> String {
        match self.metastore.split_once('@') {
            Some((credentials, host)) => match credentials.rsplit_once(':') {
                Some((user, _)) if user.contains("//") => format!("{user}:***@{host}"),
                _ => format!("{credentials}@{host}"),
            },
            None => self.metastore.clone(),
        }
    }
}

/// Reads `s3://bucket/prefix` into the bucket and the prefix (without slashes
/// at either end).
pub fn parse_object_store(url: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = url.strip_prefix("s3://") else {
        bail!("object-store must be an s3:// URL (s3://bucket/prefix), got '{url}'");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("object-store '{url}' names no bucket (s3://bucket/prefix)");
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// A node name: letters, digits and `-`, at most 63 of them. It becomes part of
/// split names and object keys.
fn check_node_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty() || id.len() > 63 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        bail!("node-id must be 1 to 63 letters, digits or '-', got '{id}'");
    }
    Ok(())
}

fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    if name.is_empty() {
        "hopline".into()
    } else {
        name
    }
}

impl Config {
    /// Resolves flags and environment (already merged by clap) over the TOML file
    /// over the defaults, and checks every value.
    pub fn load(args: ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => ServeArgs::default(),
        };
        // Tokens of the command line and environment, apart: the files' are read
        // again on SIGHUP.
        let flag_ingest_tokens = args.ingest_tokens.clone().unwrap_or_default();
        let flag_query_tokens = args.query_tokens.clone().unwrap_or_default();
        let args = args.or(file);
        let text = |value: Option<String>, default: &str| value.unwrap_or_else(|| default.into());
        let duration = |name: &str, value: Option<String>, default: &str| {
            parse_setting(name, &text(value, default), parse_duration)
        };
        let size = |name: &str, value: Option<String>, default: &str| {
            parse_setting(name, &text(value, default), parse_size)
        };
        let count = |value: Option<u64>, default: usize| {
            value.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        let http_addr = parse_addr("http-addr", &text(args.http_addr, DEFAULT_HTTP_ADDR))?;
        let retention = duration("retention", args.retention, DEFAULT_RETENTION)?;
        let access_sources = AccessSources {
            flag_ingest_tokens,
            flag_query_tokens,
            config_file: args.config.clone(),
            tokens_file: args.tokens_file,
            proxy_header: args.auth_proxy_header,
            trusted_proxies: args.trusted_proxies.unwrap_or_default(),
            retention,
        };
        let access = access_sources.load()?;
        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: args.tls_client_ca,
            }),
            (None, None) if args.tls_client_ca.is_some() => {
                bail!("tls-client-ca needs tls-cert and tls-key")
            }
            (None, None) => None,
            _ => bail!("tls-cert and tls-key go together: give both, or neither"),
        };
        let records = RecordLimits::default();
        let query = QueryLimits::default();
        let role = NodeRole::parse(&text(args.role, "all"))?;
        let cluster = match (args.object_store, args.metastore) {
            (Some(object_store), Some(metastore)) => {
                let (bucket, prefix) = parse_object_store(&object_store)?;
                if !metastore.starts_with("postgres://") && !metastore.starts_with("postgresql://")
                {
                    bail!("metastore must be a postgres:// URL");
                }
                let node_id = args.node_id.unwrap_or_else(host_name);
                check_node_id(&node_id)?;
                let advertise_addr = args.advertise_addr;
                Some(ClusterSettings {
                    bucket,
                    prefix,
                    s3_endpoint: args.s3_endpoint,
                    s3_region: args.s3_region,
                    metastore,
                    publish_interval: duration("publish-interval", args.publish_interval, "30s")?,
                    cache_size: size("cache-size", args.cache_size, "10GiB")? as u64,
                    node_id,
                    advertise_addr,
                    tls: tls.is_some(),
                    cluster_ca: args.cluster_ca,
                    token: match args.cluster_token {
                        Some(token) if token.chars().count() < MIN_TOKEN_LEN => bail!(
                            "cluster-token: at least {MIN_TOKEN_LEN} characters (e.g. openssl rand -hex 16)"
                        ),
                        token => token,
                    },
                })
            }
            (None, None) if args.cluster_ca.is_some() || args.cluster_token.is_some() => {
                bail!("cluster-ca and cluster-token are for a cluster: give --object-store and --metastore")
            }
            (None, None) if role == NodeRole::All => None,
            (None, None) => bail!(
                "role {} is for a cluster: give --object-store and --metastore",
                role.as_str()
            ),
            _ => bail!("object-store and metastore go together: give both, or neither"),
        };
        let config = Config {
            data_dir: args.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            otlp_grpc_addr: parse_addr(
                "otlp-grpc-addr",
                &text(args.otlp_grpc_addr, DEFAULT_OTLP_GRPC_ADDR),
            )?,
            otlp_http_addr: parse_addr(
                "otlp-http-addr",
                &text(args.otlp_http_addr, DEFAULT_OTLP_HTTP_ADDR),
            )?,
            zipkin_addr: args
                .zipkin_addr
                .map(|addr| parse_addr("zipkin-addr", &addr))
                .transpose()?,
            syslog_addr: args
                .syslog_addr
                .map(|addr| parse_addr("syslog-addr", &addr))
                .transpose()?,
            http_addr,
            retention,
            commit_interval: duration(
                "commit-interval",
                args.commit_interval,
                DEFAULT_COMMIT_INTERVAL,
            )?,
            split_duration: duration(
                "split-duration",
                args.split_duration,
                DEFAULT_SPLIT_DURATION,
            )?,
            split_records: args.split_records.unwrap_or(DEFAULT_SPLIT_RECORDS),
            queue_capacity: args.queue_capacity.unwrap_or(DEFAULT_QUEUE_CAPACITY),
            queue_bytes: size("queue-bytes", args.queue_bytes, "128MiB")?,
            max_indexed_keys: count(args.max_indexed_keys, 10_000),
            ui_dir: args.ui_dir.unwrap_or_else(default_ui_dir),
            server: ServerLimits {
                max_request_size: size(
                    "max-request-size",
                    args.max_request_size,
                    DEFAULT_MAX_REQUEST_SIZE,
                )?,
                max_inflight_bytes: size("max-inflight-bytes", args.max_inflight_bytes, "256MiB")?,
                max_connections: count(args.max_connections, 1024),
                grpc_max_streams: args
                    .grpc_max_streams
                    .map_or(64, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                request_timeout: duration("request-timeout", args.request_timeout, "30s")?,
                idle_timeout: duration("idle-timeout", args.idle_timeout, "2m")?,
                allowed_hosts: allowed_hosts(args.allowed_hosts, http_addr),
            },
            query: QueryLimits {
                timeout: duration("query-timeout", args.query_timeout, "30s")?,
                max_concurrent: count(args.max_concurrent_queries, query.max_concurrent),
                max_spans_per_trace: count(args.max_spans_per_trace, query.max_spans_per_trace),
                max_tails: count(args.max_tails, query.max_tails),
            },
            records: RecordLimits {
                max_attributes: count(args.max_attributes, records.max_attributes),
                max_attribute_value: size(
                    "max-attribute-value",
                    args.max_attribute_value,
                    "64KiB",
                )?,
                max_events: count(args.max_events, records.max_events),
                max_log_body: size("max-log-body", args.max_log_body, "256KiB")?,
            },
            access,
            access_sources,
            tls,
            reload_interval: Duration::from_secs(5),
            retention_interval: Duration::from_secs(30),
            role,
            cluster,
        };
        let mut config = config;
        if let Some(cluster) = &config.cluster {
            // Sealed splits are what gets published: seal at least this often.
            config.split_duration = config.split_duration.min(cluster.publish_interval);
        }
        config.validate()?;
        config.check_exposure(args.insecure.unwrap_or(false))?;
        Ok(config)
    }

    /// A configuration for tests: loopback, port 0 everywhere, a short commit interval.
    pub fn for_tests(data_dir: &Path) -> Config {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Config {
            data_dir: data_dir.to_path_buf(),
            otlp_grpc_addr: loopback,
            otlp_http_addr: loopback,
            zipkin_addr: None,
            syslog_addr: None,
            http_addr: loopback,
            retention: Duration::from_secs(7 * 24 * 3600),
            commit_interval: Duration::from_millis(100),
            split_duration: Duration::from_secs(3600),
            split_records: DEFAULT_SPLIT_RECORDS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_bytes: 128 << 20,
            max_indexed_keys: 10_000,
            ui_dir: default_ui_dir(),
            server: ServerLimits {
                max_request_size: 16 << 20,
                max_inflight_bytes: 256 << 20,
                max_connections: 1024,
                grpc_max_streams: 64,
                request_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(120),
                allowed_hosts: allowed_hosts(None, loopback),
            },
            query: QueryLimits::default(),
            records: RecordLimits::default(),
            access: Access::open(Duration::from_secs(7 * 24 * 3600)),
            access_sources: AccessSources {
                retention: Duration::from_secs(7 * 24 * 3600),
                ..AccessSources::default()
            },
            tls: None,
            reload_interval: Duration::from_millis(200),
            retention_interval: Duration::from_secs(30),
            role: NodeRole::All,
            cluster: None,
        }
    }

    /// Tests: tokens and tenants as a tokens file would give them.
    pub fn with_tokens_file(mut self, path: &Path) -> anyhow::Result<Config> {
        self.access_sources.tokens_file = Some(path.to_path_buf());
        self.access = self.access_sources.load()?;
        Ok(self)
    }

    /// What is reachable from other machines without a token: a listener on a
    /// non-loopback address with nothing to check. Refused unless `insecure`; said
    /// in the log either way.
    pub fn check_exposure(&self, insecure: bool) -> anyhow::Result<()> {
        let ingest_open = !self.access.ingest_protected()
            && self.tls.as_ref().is_none_or(|tls| tls.client_ca.is_none());
        let zipkin = self
            .zipkin_addr
            .map(|addr| ("zipkin-addr", addr, ingest_open, "anyone may write"));
        let listeners = [
            (
                "otlp-grpc-addr",
                self.otlp_grpc_addr,
                ingest_open,
                "anyone may write",
            ),
            (
                "otlp-http-addr",
                self.otlp_http_addr,
                ingest_open,
                "anyone may write",
            ),
            (
                "http-addr",
                self.http_addr,
                !self.access.query_protected(),
                "anyone may read every trace and log",
            ),
        ];
        // Syslog carries no token: it is open whatever tokens there are.
        let syslog = self.syslog_addr.map(|addr| {
            (
                "syslog-addr",
                addr,
                true,
                "syslog carries no token: anyone may write",
            )
        });
        for (name, addr, open, what) in listeners.into_iter().chain(zipkin).chain(syslog) {
            if !open || addr.ip().is_loopback() {
                continue;
            }
            if !insecure {
                bail!(
                    "{name} {addr} is reachable from other machines and no token protects it ({what}): \
                     configure tokens (--tokens-file, --ingest-tokens, --query-tokens), listen on 127.0.0.1, \
                     or pass --insecure to accept it"
                );
            }
            tracing::warn!(listener = name, %addr, "--insecure: no token protects this listener; {what}");
        }
        Ok(())
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
        if self.split_records == 0 {
            bail!("split-records must be at least 1");
        }
        if self.split_duration < Duration::from_secs(1) {
            bail!(
                "split-duration must be at least 1s, got {:?}",
                self.split_duration
            );
        }
        let server = &self.server;
        if server.max_request_size < 1024 {
            bail!(
                "max-request-size must be at least 1KiB, got {} bytes",
                server.max_request_size
            );
        }
        if self.queue_capacity < 1024 {
            bail!(
                "queue-capacity must be at least 1024 records, got {}",
                self.queue_capacity
            );
        }
        if self.queue_bytes < server.max_request_size {
            bail!(
                "queue-bytes ({}) must be at least max-request-size ({}): a request of the largest size must fit",
                self.queue_bytes,
                server.max_request_size
            );
        }
        if server.max_inflight_bytes < server.max_request_size {
            bail!(
                "max-inflight-bytes ({}) must be at least max-request-size ({})",
                server.max_inflight_bytes,
                server.max_request_size
            );
        }
        let positive = [
            ("max-connections", server.max_connections),
            ("grpc-max-streams", server.grpc_max_streams as usize),
            ("max-concurrent-queries", self.query.max_concurrent),
            ("max-spans-per-trace", self.query.max_spans_per_trace),
            ("max-tails", self.query.max_tails),
            ("max-attributes", self.records.max_attributes),
            ("max-events", self.records.max_events),
        ];
        for (name, value) in positive {
            if value == 0 {
                bail!("{name} must be at least 1");
            }
        }
        let seconds = [
            ("request-timeout", server.request_timeout),
            ("idle-timeout", server.idle_timeout),
            ("query-timeout", self.query.timeout),
        ];
        for (name, value) in seconds {
            if value < Duration::from_millis(100) {
                bail!("{name} must be at least 100ms, got {value:?}");
            }
        }
        if self.records.max_attribute_value < 16 || self.records.max_log_body < 16 {
            bail!("max-attribute-value and max-log-body must be at least 16 bytes");
        }
        Ok(())
    }
}

/// The names the API answers to: those given (`*` for any), else the loopback
/// names and the address it listens on when that is a specific one.
fn allowed_hosts(given: Option<Vec<String>>, http_addr: SocketAddr) -> Vec<String> {
    match given {
        Some(hosts) if hosts.iter().any(|h| h.trim() == "*") => Vec::new(),
        // Loopback names always: no web page can make a browser send them (and
        // the UI's server functions call the API through loopback).
        Some(hosts) => hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .chain(["localhost", "127.0.0.1", "[::1]"].map(String::from))
            .collect(),
        None => {
            let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
                .map(String::from)
                .to_vec();
            let ip = http_addr.ip();
            if !ip.is_unspecified() && !ip.is_loopback() {
                hosts.push(match ip {
                    std::net::IpAddr::V4(v4) => v4.to_string(),
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                });
            }
            hosts
        }
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

fn read_file_config(path: &Path) -> anyhow::Result<ServeArgs> {
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
        assert!(parse_duration("10")
            .expect_err("an error")
            .contains("missing unit"));
        assert!(parse_duration("3 weeks")
            .expect_err("an error")
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

    #[test]
    fn listening_beyond_loopback_without_tokens_needs_insecure() {
        let exposed = || ServeArgs {
            http_addr: Some("0.0.0.0:16686".into()),
            ..ServeArgs::default()
        };
        let error = Config::load(exposed()).expect_err("open to the network");
        let message = format!("{error:#}");
        assert!(message.contains("http-addr 0.0.0.0:16686"), "{message}");
        assert!(message.contains("--insecure"), "{message}");
        assert!(Config::load(ServeArgs {
            insecure: Some(true),
            ..exposed()
        })
        .is_ok());
        // Query tokens protect the API port; the OTLP ports stay on loopback.
        assert!(Config::load(ServeArgs {
            query_tokens: Some(vec!["0123456789abcdef0123".into()]),
            ..exposed()
        })
        .is_ok());
        // ...but not the OTLP ports.
        let error = Config::load(ServeArgs {
            query_tokens: Some(vec!["0123456789abcdef0123".into()]),
            otlp_http_addr: Some("0.0.0.0:4318".into()),
            ..exposed()
        })
        .expect_err("ingest open");
        assert!(format!("{error:#}").contains("otlp-http-addr"), "{error:#}");
        // Syslog carries no token: beyond loopback it needs --insecure, tokens or not.
        let error = Config::load(ServeArgs {
            ingest_tokens: Some(vec!["0123456789abcdef0123".into()]),
            query_tokens: Some(vec!["abcdef01234567890123".into()]),
            syslog_addr: Some("0.0.0.0:5514".into()),
            ..ServeArgs::default()
        })
        .expect_err("syslog open");
        assert!(
            format!("{error:#}").contains("syslog-addr 0.0.0.0:5514"),
            "{error:#}"
        );
        assert!(Config::load(ServeArgs {
            syslog_addr: Some("127.0.0.1:5514".into()),
            ..ServeArgs::default()
        })
        .is_ok());
        // The defaults are loopback and need nothing.
        assert!(Config::load(ServeArgs::default()).is_ok());
    }

    #[test]
    fn tokens_and_tenants_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let load = |toml: &str| {
            let path = dir.path().join("tokens.toml");
            std::fs::write(&path, toml).expect("write");
            Config::load(ServeArgs {
                tokens_file: Some(path),
                ..ServeArgs::default()
            })
            .map_err(|e| format!("{e:#}"))
        };
        let error = load("ingest_tokens = [\"short\"]").expect_err("short");
        assert!(error.contains("too short"), "{error}");
        let error = load("ingest_tokens = [\"0123456789abcdef;evil\"]").expect_err("charset");
        assert!(error.contains("only letters"), "{error}");
        let error =
            load("[[tenants]]\nname = \"Shop\"\ningest_tokens = [\"0123456789abcdef0123\"]")
                .expect_err("name");
        assert!(error.contains("invalid tenant name 'Shop'"), "{error}");
        let error = load("[[tenants]]\nname = \"lonely\"").expect_err("unreachable");
        assert!(error.contains("nobody could reach it"), "{error}");
        let error = load("tenant = []").expect_err("unknown key");
        assert!(error.contains("tenant"), "{error}");
        let config = load(
            "query_tokens = [\"0123456789abcdef0123\"]\n[[tenants]]\nname = \"shop\"\ningest_tokens = [\"abcdef0123456789abcd\"]\nretention = \"2d\"\nmax_bytes_per_day = \"1GiB\"\n",
        )
        .expect("valid");
        let names: Vec<&str> = config
            .access
            .tenants
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["default", "shop"]);
        assert_eq!(
            config.access.tenants[1].retention,
            Duration::from_secs(2 * 86400)
        );
        assert_eq!(config.access.tenants[1].max_bytes_per_day, Some(1 << 30));
        assert!(config.access.query_protected() && config.access.ingest_protected());
    }
}
