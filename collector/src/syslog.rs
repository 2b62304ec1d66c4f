//! Syslog on `--syslog-addr` (off by default): TCP and UDP on the same address.
//!
//! - TCP frames by RFC 6587, told apart message by message: octet counting
//!   (`LEN SP MSG`, as rsyslog's `TCP_Framing="octet-counted"` and
//!   `logger --octet-count` send) or a newline after each message.
//! - UDP: one message per datagram.
//! - RFC 5424 or RFC 3164 ([`crate::decode::syslog`] maps them).
//!
//! Messages are gathered for up to [`BATCH_WAIT`], [`BATCH`] messages or
//! [`BATCH_BYTES`] and go
//! OTLP's way from there (record limits, the default tenant's rate limits, queue
//! and write-ahead log). Syslog has no acknowledgement: over TCP a full queue stops
//! the reading of that connection until there is room again (the sender's own
//! buffer holds the rest), so nothing a sender wrote is dropped; over UDP a batch
//! that finds the queue full is dropped and counted
//! (`hopline_records_refused_overload_total`). A message is at most
//! [`MAX_MESSAGE`] bytes: a longer newline-framed one is cut there, a longer
//! octet count closes the connection. Connections count against
//! `--max-connections` and close after `--idle-timeout` of silence. Syslog cannot
//! carry a token: the listener takes anyone who reaches it, so a non-loopback
//! address needs `--insecure` (see `Config::check_exposure`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::config::ServerLimits;
use crate::decode::syslog::Decoder;
use crate::ingest::{IngestError, Ingester};
use crate::model::Signal;
use crate::otlp::run_blocking;

/// The longest message taken, in bytes.
pub const MAX_MESSAGE: usize = 64 << 10;
/// Messages gathered into one batch at most.
pub const BATCH: usize = 512;
/// Bytes of messages gathered into one batch at most: what a connection holds is
/// about this and its 64 KiB read buffer.
pub const BATCH_BYTES: usize = 1 << 20;
/// How long a message waits for others before its batch is sent.
pub const BATCH_WAIT: Duration = Duration::from_millis(50);

/// Listens for syslog on `addr` (TCP and UDP): the address it got, and the two
/// tasks, which end once `shutdown` is set and what they hold is sent.
pub async fn start(
    addr: SocketAddr,
    ingester: Ingester,
    limits: &ServerLimits,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    use anyhow::Context as _;
    let tcp = crate::net::bind(addr, "syslog (TCP)").await?;
    let addr = tcp.local_addr()?;
    // UDP on the port TCP got (port 0 asks for one).
    let udp = UdpSocket::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for syslog (UDP)"))?;
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tasks = vec![
        tokio::spawn(accept(
            tcp,
            ingester.clone(),
            connections,
            limits.idle_timeout,
            shutdown.clone(),
        )),
        tokio::spawn(datagrams(udp, ingester, shutdown)),
    ];
    Ok((addr, tasks))
}

async fn accept(
    listener: TcpListener,
    ingester: Ingester,
    connections: Arc<Semaphore>,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut open = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        // Finished connections are reaped as new ones come.
        while open.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                debug!(%error, "syslog: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            warn!(%peer, "syslog: too many connections (--max-connections); closed");
            continue;
        };
        let (ingester, shutdown) = (ingester.clone(), shutdown.clone());
        open.spawn(async move {
            connection(stream, peer, ingester, idle_timeout, shutdown).await;
            drop(permit);
        });
    }
    // What each connection gathered is sent before the collector stops.
    while open.join_next().await.is_some() {}
}

/// Reads one connection's messages until it closes, falls silent for
/// `idle_timeout`, breaks the framing, or the collector stops.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    ingester: Ingester,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reader = BufReader::with_capacity(64 << 10, stream);
    let mut framer = Framer::default();
    let mut batch = Batch::new(ingester, true);
    loop {
        let wait = if batch.is_empty() {
            idle_timeout
        } else {
            BATCH_WAIT
        };
        // `fill_buf` may be cancelled without losing what it read.
        let filled = tokio::select! {
            filled = tokio::time::timeout(wait, reader.fill_buf()) => filled,
            _ = shutdown.changed() => break,
        };
        let bytes = match filled {
            Err(_) if batch.is_empty() => {
                debug!(%peer, "syslog: idle connection closed");
                break;
            }
            Err(_) => {
                batch.send(&mut shutdown).await;
                continue;
            }
            Ok(Err(error)) => {
                debug!(%peer, %error, "syslog: connection failed");
                break;
            }
            Ok(Ok([])) => break,
            Ok(Ok(bytes)) => bytes,
        };
        let used = bytes.len();
        let framed = framer.push(bytes, |message| batch.push(message));
        reader.consume(used);
        if let Err(error) = framed {
            warn!(%peer, "syslog: {error}; connection closed");
            break;
        }
        if batch.is_full() {
            batch.send(&mut shutdown).await;
        }
    }
    batch.send(&mut shutdown).await;
}

async fn datagrams(socket: UdpSocket, ingester: Ingester, mut shutdown: watch::Receiver<bool>) {
    let mut batch = Batch::new(ingester, false);
    let mut buffer = vec![0u8; 65_536];
    loop {
        let wait = if batch.is_empty() {
            Duration::from_secs(3600)
        } else {
            BATCH_WAIT
        };
        let received = tokio::select! {
            received = tokio::time::timeout(wait, socket.recv_from(&mut buffer)) => received,
            _ = shutdown.changed() => break,
        };
        match received {
            Err(_) => batch.send(&mut shutdown).await,
            Ok(Err(error)) => debug!(%error, "syslog: UDP receive failed"),
            Ok(Ok((length, _peer))) => {
                let message = &buffer[..length.min(MAX_MESSAGE)];
                batch.push(String::from_utf8_lossy(message).into_owned());
                if batch.is_full() {
                    batch.send(&mut shutdown).await;
                }
            }
        }
    }
    batch.send(&mut shutdown).await;
}

/// Messages waiting to be sent together.
struct Batch {
    ingester: Ingester,
    messages: Vec<String>,
    bytes: usize,
    /// Wait for room in a full queue (TCP), or drop the batch (UDP).
    wait_for_room: bool,
}

impl Batch {
    fn new(ingester: Ingester, wait_for_room: bool) -> Batch {
        Batch {
            ingester,
            messages: Vec::new(),
            bytes: 0,
            wait_for_room,
        }
    }

    fn push(&mut self, message: String) {
        if !message.trim().is_empty() {
            self.bytes += message.len();
            self.messages.push(message);
        }
    }

    fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn is_full(&self) -> bool {
        self.messages.len() >= BATCH || self.bytes >= BATCH_BYTES
    }

    /// Makes the batch durable; over TCP, waits (not reading) while the queue
    /// is full, unless the collector is stopping.
    async fn send(&mut self, shutdown: &mut watch::Receiver<bool>) {
        if self.messages.is_empty() {
            return;
        }
        let messages = std::mem::take(&mut self.messages);
        self.bytes = 0;
        let count = messages.len();
        let messages = Arc::new(messages);
        loop {
            let error = match self.submit(Arc::clone(&messages)).await {
                Ok(()) => return,
                Err(error) => error,
            };
            let retry = matches!(
                error,
                IngestError::Overloaded { .. }
                    | IngestError::Throttled(_)
                    | IngestError::Unavailable(_)
            );
            if !retry || !self.wait_for_room || *shutdown.borrow() {
                warn!(count, %error, "syslog: messages dropped");
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(crate::ingest::RETRY_AFTER) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn submit(&self, messages: Arc<Vec<String>>) -> Result<(), IngestError> {
        self.ingester.check_capacity(Signal::Logs)?;
        let ingester = self.ingester.clone();
        let prepared = run_blocking(move || {
            let now = ingester.now();
            let mut decoder = Decoder::default();
            let mut converted = crate::decode::convert::Converted::default();
            for message in messages.iter() {
                converted
                    .records
                    .push(decoder.record(message, now, ingester.limits()));
            }
            ingester.prepare_log_records(converted, None, now)
        })
        .await
        .map_err(|e| IngestError::Unavailable(e.to_string()))??;
        self.ingester.submit(prepared).await.map(|_| ())
    }
}

/// RFC 6587 framing, fed bytes as they come.
#[derive(Default)]
struct Framer {
    state: State,
    pending: Vec<u8>,
}

#[derive(Default)]
enum State {
    /// Between messages.
    #[default]
    Start,
    /// The digits of an octet count.
    Count(usize),
    /// The bytes of an octet-counted message still to come.
    Counted(usize),
    /// A newline-terminated message.
    Line,
    /// The rest of a line past [`MAX_MESSAGE`], dropped.
    Skip,
}

impl Framer {
    /// Frames `bytes`, handing each whole message to `emit`; an error when the
    /// framing is broken beyond repair.
    fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(String)) -> Result<(), String> {
        let mut take = |pending: &mut Vec<u8>| {
            emit(String::from_utf8_lossy(pending).into_owned());
            pending.clear();
        };
        while let Some(&byte) = bytes.first() {
            match self.state {
                State::Start => {
                    self.state = match byte {
                        b'0'..=b'9' => State::Count(0),
                        b'\n' | b'\r' | b'\0' => {
                            bytes = &bytes[1..];
                            State::Start
                        }
                        _ => State::Line,
                    };
                }
                State::Count(count) => {
                    bytes = &bytes[1..];
                    match byte {
                        b'0'..=b'9' => {
                            let count = count * 10 + usize::from(byte - b'0');
                            if count > MAX_MESSAGE {
                                return Err(format!(
                                    "an octet count over {MAX_MESSAGE} bytes (the longest message taken)"
                                ));
                            }
                            self.state = State::Count(count);
                        }
                        b' ' if count > 0 => self.state = State::Counted(count),
                        _ => {
                            return Err(
                                "a message starts with digits that are no octet count (RFC 6587)"
                                    .into(),
                            )
                        }
                    }
                }
                State::Counted(remaining) => {
                    let n = remaining.min(bytes.len());
                    self.pending.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if n == remaining {
                        take(&mut self.pending);
                        self.state = State::Start;
                    } else {
                        self.state = State::Counted(remaining - n);
                    }
                }
                State::Line => {
                    let end = bytes.iter().position(|b| *b == b'\n');
                    let n = end.unwrap_or(bytes.len());
                    let room = MAX_MESSAGE - self.pending.len();
                    self.pending.extend_from_slice(&bytes[..n.min(room)]);
                    if end.is_some() {
                        take(&mut self.pending);
                        bytes = &bytes[n + 1..];
                        self.state = State::Start;
                    } else {
                        bytes = &[];
                        if self.pending.len() >= MAX_MESSAGE {
                            take(&mut self.pending);
                            self.state = State::Skip;
                        }
                    }
                }
                State::Skip => match bytes.iter().position(|b| *b == b'\n') {
                    Some(end) => {
                        bytes = &bytes[end + 1..];
                        self.state = State::Start;
                    }
                    None => bytes = &[],
                },
            }
        }
        Ok(())
    }
}

/// Says where syslog listens.
pub fn announce(addr: SocketAddr) {
    info!(%addr, "syslog listening (TCP: octet-counted or newline-framed; UDP; RFC 5424 and RFC 3164)");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(chunks: &[&[u8]]) -> Result<Vec<String>, String> {
        let mut framer = Framer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk, |m| out.push(m))?;
        }
        Ok(out)
    }

    #[test]
    fn octet_counted_and_newline_framed_messages_mix_and_split_anywhere() {
        let stream = b"11 <13>1 - a b\n<13>one line\r\n\n20 <13>two\nlines in one\n";
        let whole = frame(&[stream]).expect("framed");
        assert_eq!(
            whole,
            ["<13>1 - a b", "<13>one line\r", "<13>two\nlines in one"]
        );
        // Byte by byte gives the same.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frame(&bytes).expect("framed"), whole);
    }

    #[test]
    fn oversized_messages_are_cut_or_refused() {
        let mut long = vec![b'x'; MAX_MESSAGE + 100];
        long.extend_from_slice(b"\nnext\n");
        let messages = frame(&[&long]).expect("framed");
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].len(), MAX_MESSAGE);
        assert_eq!(messages[1], "next");

        let error = frame(&[b"99999999 <13>x"]).expect_err("too long a count");
        assert!(error.contains("octet count over 65536"), "{error}");
        let error = frame(&[b"12x <13>x"]).expect_err("no count");
        assert!(error.contains("no octet count"), "{error}");
    }
}
