//! The listeners: one accept loop for all three ports (OTLP/gRPC, OTLP/HTTP, the UI
//! and query API), so that every one bounds what a client can hold.
//!
//! - Connections: at most `--max-connections` per listener; beyond it new ones wait
//!   in the kernel's backlog instead of taking file descriptors from the others.
//! - Time: an HTTP/1 client has `--request-timeout` to send a request's headers
//!   (slowloris), which also closes a kept-alive connection that sends nothing;
//!   any connection on which nothing moves for `--idle-timeout` is closed.
//! - HTTP/2 (gRPC): at most `--grpc-max-streams` streams per connection, bounded
//!   header lists, keep-alive pings that find dead peers.
//! - File descriptors: the soft limit is raised to the hard one at start.
//!
//! Request bodies are bounded by the receivers, which read them under a byte budget
//! (`otlp::body`). Each request carries the peer's address ([`PeerAddr`]).

pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;
use tracing::{debug, error, info, warn};

use crate::config::ServerLimits;
use crate::health::Throttle;

/// How long shutdown waits for requests in flight before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Largest header list an HTTP/2 client may send.
const MAX_HEADER_LIST: u32 = 64 << 10;

/// The address a request came from, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Serves `router` on `listener` until `shutdown` turns true, then lets requests in
/// flight finish (for up to [`SHUTDOWN_GRACE`]). With `tls`, each connection's
/// handshake must end within `--request-timeout`.
pub fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ServerLimits,
    tls: Option<(Arc<tls::Tls>, tls::Listener)>,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
) -> JoinHandle<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.grpc_max_streams)
        .max_header_list_size(MAX_HEADER_LIST)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let idle_timeout = limits.idle_timeout;
    let handshake_timeout = limits.request_timeout;
    tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let mut failing = Throttle::new(Duration::from_secs(10));
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&connections).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = stopped(&mut shutdown) => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for some to close.
                        if let Some(suppressed) = failing.admit() {
                            warn!(server = what, error = %e, failed_since_last_report = suppressed, "cannot accept a connection");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = stopped(&mut shutdown) => break,
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let service =
                hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(PeerAddr(peer));
                    router.clone().oneshot(request.map(axum::body::Body::new))
                });
            let stream = IdleTimeout::new(stream, idle_timeout);
            let watcher = graceful.watcher();
            let builder = builder.clone();
            let acceptor = tls.as_ref().map(|(tls, listener)| tls.acceptor(*listener));
            tokio::spawn(async move {
                let result = match acceptor {
                    None => {
                        let connection = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(connection).await
                    }
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await;
                        match handshake {
                            Ok(Ok(stream)) => {
                                let connection = builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .into_owned();
                                watcher.watch(connection).await
                            }
                            Ok(Err(e)) => {
                                debug!(server = what, %peer, error = %e, "TLS handshake failed");
                                Ok(())
                            }
                            Err(_) => {
                                debug!(server = what, %peer, "TLS handshake timed out");
                                Ok(())
                            }
                        }
                    }
                };
                if let Err(e) = result {
                    debug!(server = what, %peer, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(SHUTDOWN_GRACE) => {
                warn!(server = what, "requests still running after {SHUTDOWN_GRACE:?}; closing their connections");
            }
        }
    })
}

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The names a listener answers to (`--allowed-hosts`): browsers on other sites
/// that resolve their own name to this host (DNS rebinding) send their own name as
/// `Host`, and are refused.
#[derive(Clone, Debug)]
pub struct AllowedHosts(Arc<Vec<String>>);

impl AllowedHosts {
    /// `hosts` as [`crate::config::ServerLimits::allowed_hosts`] holds them; empty:
    /// any.
    pub fn new(hosts: &[String]) -> Self {
        Self(Arc::new(hosts.to_vec()))
    }

    /// Whether a `Host` value names this server: its host part, or the whole
    /// `host:port`, is allowed.
    pub fn admits(&self, host: &str) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let host = host.trim().to_ascii_lowercase();
        let name = match host.rfind(':') {
            // `[::1]:16686` or `name:16686`; a bare IPv6 literal has no brackets.
            Some(colon) if host.starts_with('[') || !host[..colon].contains(':') => &host[..colon],
            _ => host.as_str(),
        };
        self.0
            .iter()
            .any(|allowed| *allowed == name || *allowed == host)
    }

    fn refusal(&self, host: &str) -> Response {
        let message = format!(
            "this server does not answer to the host name '{host}' (it answers to {}); add it with --allowed-hosts",
            self.0.join(", ")
        );
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response()
    }
}

/// The host a request names: its `Host` header, or for HTTP/2 its authority.
fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
}

/// For the UI and query API: refuses a `Host` that is not allowed, and sends the
/// headers that keep browsers from sniffing types, framing pages or leaking URLs
/// (trace ids) to other sites.
pub async fn browser_guard(
    axum::extract::State(hosts): axum::extract::State<AllowedHosts>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(host) = request_host(&request) {
        if !hosts.admits(&host) {
            return hosts.refusal(&host);
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    response
}

/// For OTLP/HTTP: a request that a browser sent (it has an `Origin`) to a host name
/// that is not allowed is refused; SDKs and collectors send no `Origin`.
pub async fn origin_guard(
    axum::extract::State(hosts): axum::extract::State<AllowedHosts>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if request.headers().contains_key(header::ORIGIN) {
        if let Some(host) = request_host(&request) {
            if !hosts.admits(&host) {
                return hosts.refusal(&host);
            }
        }
    }
    next.run(request).await
}

/// Binds `addr`, saying what for in the error.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}"))
}

/// A connection that fails with `TimedOut` once nothing has been read or written
/// for its timeout: hyper then closes it.
struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    last_activity: Instant,
    /// Fires at `last_activity + timeout` or earlier; checked when it does.
    timer: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            timeout,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    /// While the inner stream is pending: `Ready(Err)` once idle too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let deadline = self.last_activity + self.timeout;
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for longer than --idle-timeout",
                ));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Raises the soft limit of open files to the hard limit and returns the limit in
/// force; the listeners' connection caps are kept below it.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        if let (Some(current), hard) = (limit.current, limit.maximum) {
            if hard.is_none_or(|hard| hard > current) {
                // An unlimited hard limit is not a value the kernel takes for
                // RLIMIT_NOFILE: ask for a large finite one instead.
                limit.current = Some(hard.unwrap_or(1 << 20).min(1 << 20));
                if let Err(e) = setrlimit(Resource::Nofile, limit) {
                    error!(error = %e, "cannot raise the open files limit");
                }
            }
        }
        let limit = getrlimit(Resource::Nofile).current;
        match limit {
            Some(n) => info!(open_files = n, "open files limit"),
            None => info!("open files unlimited"),
        }
        limit
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Keeps a connection cap under the open files limit: three listeners, plus files
/// and indexes.
pub fn connections_within(limit: Option<u64>, wanted: usize) -> usize {
    const RESERVED: u64 = 512;
    let Some(limit) = limit else {
        return wanted;
    };
    let fits = (limit.saturating_sub(RESERVED) / 3).max(16) as usize;
    if wanted > fits {
        warn!(
            max_connections = wanted,
            open_files = limit,
            capped_to = fits,
            "--max-connections does not fit the open files limit; using less"
        );
    }
    wanted.min(fits)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        use rustix::process::{getrlimit, Resource};
        let raised = raise_open_files_limit();
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(raised, limit.current);
        if let (Some(current), Some(hard)) = (limit.current, limit.maximum) {
            assert_eq!(current, hard.min(1 << 20), "soft {current}, hard {hard}");
        }
        // The three listeners' caps and 512 files for the rest fit under a limit.
        assert_eq!(connections_within(Some(1024), 1024), 170);
        assert_eq!(connections_within(None, 1024), 1024);
        assert_eq!(connections_within(Some(1 << 20), 1024), 1024);
    }

    #[test]
    fn host_names_are_matched_with_or_without_their_port() {
        let hosts = AllowedHosts::new(&[
            "localhost".into(),
            "127.0.0.1".into(),
            "[::1]".into(),
            "hopline.internal:8443".into(),
        ]);
        for host in [
            "localhost",
            "LocalHost:16686",
            "127.0.0.1:16686",
            "[::1]:16686",
            "[::1]",
        ] {
            assert!(hosts.admits(host), "{host}");
        }
        assert!(hosts.admits("hopline.internal:8443"));
        for host in [
            "evil.example",
            "evil.example:16686",
            "127.0.0.1.evil.example",
            "hopline.internal",
            "hopline.internal:80",
            "localhost.:16686",
        ] {
            assert!(!hosts.admits(host), "{host}");
        }
        assert!(AllowedHosts::new(&[]).admits("anything"), "empty: any host");
    }

    #[tokio::test]
    async fn an_idle_connection_times_out_and_a_busy_one_does_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                stream.write_all(b"x").await.expect("write");
            }
            // Then silence: the server gives up on it.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        });
        let (stream, _) = listener.accept().await.expect("accept");
        let mut idle = IdleTimeout::new(stream, Duration::from_millis(200));
        let mut received = 0;
        let mut buf = [0u8; 16];
        let error = loop {
            match idle.read(&mut buf).await {
                Ok(0) => panic!("closed before timing out"),
                Ok(n) => received += n,
                Err(e) => break e,
            }
        };
        assert_eq!(
            received, 6,
            "bytes 60 ms apart keep it open past the timeout"
        );
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(idle);
        client.await.expect("client");
    }
}
