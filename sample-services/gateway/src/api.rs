//! The proxy: `/api/users[/*]` and `/api/orders[/*]` passed on to a healthy replica
//! of their upstream through its circuit breaker, and `GET /health`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use serde_json::json;
use telemetry::http::error_response;
use tracing::{info, warn, Instrument};

use crate::breaker::{self, Admission, Breaker};

const MAX_BODY: usize = 1 << 20;

struct Replica {
    /// Base URL with the host replaced by a resolved address.
    url: String,
    healthy: AtomicBool,
}

/// An upstream service: its replicas, its circuit breaker and its counters.
pub(crate) struct Upstream {
    name: &'static str,
    /// `/api/users` -> `/users`
    public_prefix: &'static str,
    upstream_prefix: &'static str,
    /// The configured base URLs, before resolution into replicas.
    pub(crate) urls: Vec<String>,
    replicas: RwLock<Vec<Arc<Replica>>>,
    next: AtomicUsize,
    breaker: Mutex<Breaker>,
    calls: AtomicU64,
    refused: AtomicU64,
}

impl Upstream {
    pub(crate) fn new(
        name: &'static str,
        public_prefix: &'static str,
        upstream_prefix: &'static str,
        urls: &str,
        breaker: Breaker,
    ) -> Self {
        let urls: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        let replicas = urls
            .iter()
            .map(|url| {
                Arc::new(Replica {
                    url: url.clone(),
                    healthy: AtomicBool::new(true),
                })
            })
            .collect();
        Self {
            name,
            public_prefix,
            upstream_prefix,
            urls,
            replicas: RwLock::new(replicas),
            next: AtomicUsize::new(0),
            breaker: Mutex::new(breaker),
            calls: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The next healthy replica, round robin; any replica when none is healthy (the
    /// health view may lag, and the breaker then decides).
    fn pick(&self) -> Option<Arc<Replica>> {
        let replicas = self.replicas.read().ok()?;
        if replicas.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..replicas.len())
            .map(|i| &replicas[(start + i) % replicas.len()])
            .find(|replica| replica.healthy.load(Ordering::Relaxed))
            .or_else(|| replicas.get(start % replicas.len()))
            .cloned()
    }

    fn admit(&self, span: &tracing::Span) -> Admission {
        let Ok(mut breaker) = self.breaker.lock() else {
            return Admission::Allowed;
        };
        let (admission, change) = breaker.admit(Instant::now());
        self.log_change(change, span);
        admission
    }

    fn record(&self, success: bool, span: &tracing::Span) {
        let Ok(mut breaker) = self.breaker.lock() else {
            return;
        };
        let change = breaker.record(success, Instant::now());
        self.log_change(change, span);
    }

    /// A breaker transition: a warning in the request's span (so it shows in its trace).
    fn log_change(&self, change: Option<(breaker::State, breaker::State)>, span: &tracing::Span) {
        if let Some((from, to)) = change {
            span.in_scope(|| {
                warn!(
                    upstream = self.name,
                    from = from.as_str(),
                    to = to.as_str(),
                    "circuit breaker state changed"
                )
            });
        }
    }

    /// Re-resolves the URLs into replicas and checks each one's `/health`.
    pub(crate) async fn refresh(&self, client: &reqwest::Client) {
        let mut resolved = Vec::new();
        for url in &self.urls {
            resolved.extend(resolve(url).await);
        }
        let previous: Vec<Arc<Replica>> =
            self.replicas.read().map(|r| r.clone()).unwrap_or_default();
        let mut replicas = Vec::with_capacity(resolved.len());
        for url in resolved {
            let replica = previous
                .iter()
                .find(|r| r.url == url)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(Replica {
                        url: url.clone(),
                        healthy: AtomicBool::new(true),
                    })
                });
            let healthy = matches!(
                client.get(format!("{url}/health")).timeout(Duration::from_secs(1)).send().await,
                Ok(response) if response.status().is_success()
            );
            if replica.healthy.swap(healthy, Ordering::Relaxed) != healthy {
                if healthy {
                    info!(upstream = self.name, replica = %url, "replica healthy again");
                } else {
                    warn!(upstream = self.name, replica = %url, "replica failed its health check");
                }
            }
            replicas.push(replica);
        }
        if let Ok(mut current) = self.replicas.write() {
            *current = replicas;
        }
    }
}

/// `http://name:3001` -> one URL per address the name resolves to (itself if it
/// cannot be resolved right now).
async fn resolve(url: &str) -> Vec<String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return vec![url.to_string()];
    };
    let host_port = rest.split('/').next().unwrap_or(rest);
    if host_port.parse::<SocketAddr>().is_ok() {
        return vec![url.to_string()];
    }
    match tokio::net::lookup_host(host_port).await {
        Ok(addrs) => {
            let mut urls: Vec<String> = addrs.map(|addr| format!("http://{addr}")).collect();
            urls.sort();
            urls.dedup();
            if urls.is_empty() {
                vec![url.to_string()]
            } else {
                urls
            }
        }
        Err(_) => vec![url.to_string()],
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) users: Arc<Upstream>,
    pub(crate) orders: Arc<Upstream>,
    pub(crate) client: reqwest::Client,
}

async fn proxy(upstream: Arc<Upstream>, client: reqwest::Client, request: Request) -> Response {
    let path = request.uri().path();
    let rest = path.strip_prefix(upstream.public_prefix).unwrap_or("");
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let target_path = format!("{}{rest}{query}", upstream.upstream_prefix);
    let method = request.method().clone();
    let span = tracing::info_span!(
        "proxy",
        otel.name = %format!("{method} {}", upstream.name),
        otel.kind = "client",
        http.request.method = %method,
        url.full = tracing::field::Empty,
        server.address = upstream.name,
        http.response.status_code = tracing::field::Empty,
        circuit_breaker.state = tracing::field::Empty,
    );
    if upstream.admit(&span) == Admission::Refused {
        upstream.refused.fetch_add(1, Ordering::Relaxed);
        span.record("circuit_breaker.state", "open");
        telemetry::mark_error(&span, "circuit breaker open");
        span.in_scope(|| warn!(upstream = upstream.name, "refused: circuit breaker open"));
        let mut response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} is unavailable: circuit breaker open", upstream.name),
        );
        response
            .headers_mut()
            .insert("x-circuit-breaker", HeaderValue::from_static("open"));
        return response;
    }
    let Some(replica) = upstream.pick() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} has no replicas configured", upstream.name),
        );
    };
    let url = format!("{}{target_path}", replica.url);
    span.record("url.full", url.as_str());
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let body = match to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes"),
            )
        }
    };
    upstream.calls.fetch_add(1, Ordering::Relaxed);
    let result = async {
        let mut headers = reqwest::header::HeaderMap::new();
        telemetry::http::inject(&mut headers);
        if let Some(content_type) = content_type {
            headers.insert(reqwest::header::CONTENT_TYPE, content_type);
        }
        client
            .request(method, &url)
            .headers(headers)
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
    }
    .instrument(span.clone())
    .await;
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            upstream.record(false, &span);
            telemetry::mark_error(&span, e.to_string());
            let status = if e.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            span.in_scope(|| warn!(upstream = upstream.name, replica = %replica.url, error = %e, "upstream call failed"));
            return error_response(status, format!("{} unreachable: {e}", upstream.name));
        }
    };
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    span.in_scope(|| info!(upstream = upstream.name, replica = %replica.url, status = status.as_u16(), "proxied"));
    upstream.record(!status.is_server_error(), &span);
    if status.is_client_error() || status.is_server_error() {
        telemetry::mark_error(&span, format!("HTTP {}", status.as_u16()));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .cloned();
    let bytes = response.bytes().await.unwrap_or_default();
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(content_type) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    out
}

pub(crate) async fn proxy_users(State(state): State<AppState>, request: Request) -> Response {
    proxy(Arc::clone(&state.users), state.client.clone(), request).await
}

pub(crate) async fn proxy_orders(State(state): State<AppState>, request: Request) -> Response {
    proxy(Arc::clone(&state.orders), state.client.clone(), request).await
}

pub(crate) async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let describe = |upstream: &Upstream| {
        let replicas: Vec<_> = upstream
            .replicas
            .read()
            .map(|r| {
                r.iter()
                    .map(|r| json!({ "url": r.url, "healthy": r.healthy.load(Ordering::Relaxed) }))
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "breaker": upstream.breaker.lock().map(|b| b.state().as_str()).unwrap_or("unknown"),
            "calls": upstream.calls.load(Ordering::Relaxed),
            "refused": upstream.refused.load(Ordering::Relaxed),
            "replicas": replicas,
        })
    };
    Json(json!({
        "status": "ok",
        "upstreams": { state.users.name: describe(&state.users), state.orders.name: describe(&state.orders) },
    }))
}
