//! The end-to-end harness: a collector in this process, the sample services as real
//! processes (built once with cargo), each stack on its own free ports, its own
//! databases and its own RabbitMQ queue, so tests run in parallel and beside a demo.

#![allow(unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hopline::config::Config;
use hopline::Hopline;
use serde_json::Value;

/// The RabbitMQ the tests use: `AMQP_URL`, or the one on this machine.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Whether RabbitMQ answers. When `HOPLINE_E2E_REQUIRE_RABBITMQ=1` (CI sets it), its
/// absence fails the test instead of skipping it.
pub async fn rabbitmq_available() -> bool {
    let available = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .is_ok();
    if !available {
        assert!(
            std::env::var("HOPLINE_E2E_REQUIRE_RABBITMQ").as_deref() != Ok("1"),
            "RabbitMQ is required (HOPLINE_E2E_REQUIRE_RABBITMQ=1) but {} does not answer",
            amqp_url()
        );
        eprintln!("skipping: RabbitMQ does not answer at {}", amqp_url());
    }
    available
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the service binaries once per test run and returns their directory.
pub fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "gateway",
                "-p",
                "user-service",
                "-p",
                "order-service",
                "-p",
                "email-service",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the sample services failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join("target"));
        target.join("debug")
    })
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One service process; stopped (SIGTERM, so it flushes its telemetry) when dropped.
pub struct Service {
    pub name: &'static str,
    child: Option<Child>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Service {
    fn spawn(name: &'static str, env: Vec<(String, String)>, dir: &Path) -> Service {
        let log = dir.join(format!("{name}.log"));
        let mut service = Service {
            name,
            child: None,
            env,
            log,
        };
        service.start();
        service
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(binaries().join(self.name))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// SIGTERM and wait: the service shuts down and flushes its spans and logs.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A collector and the four services, wired together.
pub struct Stack {
    pub hopline: Option<Hopline>,
    pub gateway: String,
    pub user: String,
    pub email: String,
    pub queue: String,
    pub embedded_queue: bool,
    pub services: Vec<Service>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub struct StackOptions {
    pub breaker_threshold: u32,
    pub breaker_open_seconds: f64,
    /// Without RabbitMQ: order-service publishes to email-service's embedded queue.
    pub embedded_queue: bool,
    /// The services export over OTLP/gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`)
    /// instead of OTLP/HTTP.
    pub grpc: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            breaker_threshold: 5,
            breaker_open_seconds: 10.0,
            embedded_queue: false,
            grpc: false,
        }
    }
}

/// The token the sample services send with (`OTEL_EXPORTER_OTLP_HEADERS`).
pub const INGEST_TOKEN: &str = "e2e-ingest-token-0123456789";
/// The token the tests read with.
pub const QUERY_TOKEN: &str = "e2e-query-token-0123456789";

/// A client that reads the query API with [`QUERY_TOKEN`].
fn query_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_static("Bearer e2e-query-token-0123456789"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client")
}

impl Stack {
    /// Starts the stack; when a service does not become healthy (a port picked
    /// free was taken by another process before the service bound it), the
    /// attempt is torn down and the stack starts again on new ports, up to three
    /// times.
    pub async fn start(options: StackOptions) -> Stack {
        let mut attempt = 1;
        loop {
            match Self::try_start(&options).await {
                Ok(stack) => return stack,
                Err((failed, why)) if attempt < 3 => {
                    eprintln!("the stack did not start ({why}); trying again on new ports");
                    failed.tear_down().await;
                    attempt += 1;
                }
                Err((_, why)) => panic!("{why}"),
            }
        }
    }

    /// Stops the services and the collector of a stack that failed to start.
    async fn tear_down(mut self) {
        self.services.clear();
        if let Some(hopline) = self.hopline.take() {
            hopline.shutdown().await;
        }
    }

    async fn try_start(options: &StackOptions) -> Result<Stack, (Stack, String)> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::tempdir().expect("tempdir");
        // As deployed: the services send with an ingest token, the tests read with a
        // query token.
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(
            &tokens,
            format!("ingest_tokens = [\"{INGEST_TOKEN}\"]\nquery_tokens = [\"{QUERY_TOKEN}\"]\n"),
        )
        .expect("tokens file");
        let config = Config::for_tests(&dir.path().join("hopline"))
            .with_tokens_file(&tokens)
            .expect("tokens");
        let hopline = Hopline::start(config).await.expect("collector");
        let (otlp, protocol) = if options.grpc {
            (format!("http://{}", hopline.otlp_grpc_addr), "grpc")
        } else {
            (
                format!("http://{}", hopline.otlp_http_addr),
                "http/protobuf",
            )
        };
        let queue = format!(
            "e2e.{}.{}.order.created",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (user_http, user_grpc, order_http, email_http, gateway_http) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let db = |name: &str| format!("sqlite:{}", dir.path().join(format!("{name}.db")).display());
        let common = |extra: Vec<(&str, String)>| -> Vec<(String, String)> {
            let mut env = vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), otlp.clone()),
                (
                    "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
                    protocol.to_string(),
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS".to_string(),
                    format!("authorization=Bearer%20{INGEST_TOKEN}"),
                ),
                (
                    "AMQP_URL".to_string(),
                    if options.embedded_queue {
                        "embedded".to_string()
                    } else {
                        amqp_url()
                    },
                ),
                (
                    "EMAIL_SERVICE_URL".to_string(),
                    format!("http://127.0.0.1:{email_http}"),
                ),
                ("ORDER_QUEUE".to_string(), queue.clone()),
            ];
            env.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
            env
        };
        let bin_dir = binaries();
        assert!(
            bin_dir.join("gateway").exists(),
            "gateway binary missing in {}",
            bin_dir.display()
        );
        let services = vec![
            Service::spawn(
                "user-service",
                common(vec![
                    ("HTTP_ADDR", format!("127.0.0.1:{user_http}")),
                    ("GRPC_ADDR", format!("127.0.0.1:{user_grpc}")),
                    ("DATABASE_URL", db("users")),
                ]),
                dir.path(),
            ),
            Service::spawn(
                "order-service",
                common(vec![
                    ("HTTP_ADDR", format!("127.0.0.1:{order_http}")),
                    ("USER_SERVICE_GRPC", format!("http://127.0.0.1:{user_grpc}")),
                    ("DATABASE_URL", db("orders")),
                ]),
                dir.path(),
            ),
            Service::spawn(
                "email-service",
                common(vec![
                    ("HTTP_ADDR", format!("127.0.0.1:{email_http}")),
                    ("DATABASE_URL", db("emails")),
                ]),
                dir.path(),
            ),
            Service::spawn(
                "gateway",
                common(vec![
                    ("HTTP_ADDR", format!("127.0.0.1:{gateway_http}")),
                    ("USER_SERVICE_URLS", format!("http://127.0.0.1:{user_http}")),
                    (
                        "ORDER_SERVICE_URLS",
                        format!("http://127.0.0.1:{order_http}"),
                    ),
                    ("BREAKER_THRESHOLD", options.breaker_threshold.to_string()),
                    (
                        "BREAKER_OPEN_SECONDS",
                        options.breaker_open_seconds.to_string(),
                    ),
                    ("HEALTH_INTERVAL_MS", "200".to_string()),
                ]),
                dir.path(),
            ),
        ];
        let stack = Stack {
            hopline: Some(hopline),
            gateway: format!("http://127.0.0.1:{gateway_http}"),
            user: format!("http://127.0.0.1:{user_http}"),
            email: format!("http://127.0.0.1:{email_http}"),
            queue,
            embedded_queue: options.embedded_queue,
            services,
            dir,
            http: query_client(),
        };
        for url in [
            format!("{}/health", stack.user),
            format!("http://127.0.0.1:{order_http}/health"),
            format!("{}/health", stack.email),
            format!("{}/health", stack.gateway),
        ] {
            let ready = eventually(Duration::from_secs(30), || async {
                let body: Value = stack.http.get(&url).send().await.ok()?.json().await.ok()?;
                (body["status"] == "ok").then_some(())
            })
            .await;
            if ready.is_none() {
                for service in &stack.services {
                    eprintln!("--- {} ---\n{}", service.name, service.log());
                }
                return Err((stack, format!("{url} did not become healthy")));
            }
        }
        Ok(stack)
    }

    pub fn api(&self, path: &str) -> String {
        let hopline = self.hopline.as_ref().expect("collector running");
        format!("http://{}{path}", hopline.http_addr)
    }

    pub async fn get_json(&self, url: &str) -> (u16, Value) {
        match self.http.get(url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    pub fn service(&mut self, name: &str) -> &mut Service {
        self.services
            .iter_mut()
            .find(|s| s.name == name)
            .expect("service")
    }

    pub async fn shutdown(mut self) {
        for service in &mut self.services {
            service.stop();
        }
        if let Some(hopline) = self.hopline.take() {
            hopline.shutdown().await;
        }
        if self.embedded_queue {
            return;
        }
        // Leave no queues behind in the shared RabbitMQ.
        if let Ok(connection) =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await
        {
            if let Ok(channel) = connection.create_channel().await {
                for queue in [self.queue.clone(), format!("{}.dead", self.queue)] {
                    let _ = channel
                        .queue_delete(
                            queue.as_str().into(),
                            lapin::options::QueueDeleteOptions::default(),
                        )
                        .await;
                }
            }
            let _ = connection.close(0, "done".into()).await;
        }
    }
}

/// Polls `check` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A span of a Jaeger trace, flattened for assertions.
#[derive(Debug, Clone)]
pub struct SpanView {
    pub service: String,
    pub name: String,
    pub id: String,
    pub parent: Option<String>,
    pub kind: String,
    pub error: bool,
    pub tags: Value,
}

pub fn spans_of(trace: &Value) -> Vec<SpanView> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .map(|spans| {
            spans
                .iter()
                .map(|span| {
                    let tag = |key: &str| {
                        span["tags"]
                            .as_array()
                            .and_then(|tags| tags.iter().find(|t| t["key"] == key))
                            .map(|t| t["value"].clone())
                    };
                    SpanView {
                        service: processes[span["processID"].as_str().unwrap_or_default()]
                            ["serviceName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        name: span["operationName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        id: span["spanID"].as_str().unwrap_or_default().to_string(),
                        parent: span["references"]
                            .as_array()
                            .and_then(|refs| refs.iter().find(|r| r["refType"] == "CHILD_OF"))
                            .and_then(|r| r["spanID"].as_str())
                            .map(str::to_string),
                        kind: tag("span.kind")
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        error: tag("error") == Some(Value::Bool(true)),
                        tags: span["tags"].clone(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}
