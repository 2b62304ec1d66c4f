//! Receiving request bodies, for both transports, so that no client can make the
//! collector hold more than it allows:
//!
//! - size: at most `--max-request-size`, compressed or decompressed (a gzip bomb
//!   stops there);
//! - memory: every byte received or decompressed counts against one budget shared
//!   by all requests in flight (`--max-inflight-bytes`), taken as the bytes arrive
//!   (a client that announces 16 MiB and sends 16 KiB holds 16 KiB); a request that
//!   finds the budget spent is refused with 503 / `Unavailable` and a retry delay;
//! - time: the whole body must arrive within `--request-timeout`.
//!
//! The budget is held until the request is answered ([`Received`]).

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{run_blocking, OtlpError};
use crate::config::ServerLimits;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The budget is counted in KiB: a semaphore permit per KiB.
const UNIT: usize = 1024;
/// Decompression proceeds in steps of this much, each taking its budget first.
const INFLATE_STEP: usize = 256 << 10;

/// Bytes of request bodies being received and decoded, over every OTLP listener.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_bytes: usize,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let units = (bytes / UNIT).max(1);
        Self {
            units: Arc::new(Semaphore::new(units)),
            total_bytes: units * UNIT,
        }
    }

    /// Bytes not taken by requests in flight.
    pub fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }

    /// Bytes taken by requests in flight.
    pub fn in_use(&self) -> usize {
        self.total_bytes - self.available()
    }

    /// Adds `bytes` to what `held` holds, or refuses when the budget is spent.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> Result<(), OtlpError> {
        let have = held.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
        let want = bytes.div_ceil(UNIT);
        if want <= have {
            return Ok(());
        }
        let more = u32::try_from(want - have).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.units)
            .try_acquire_many_owned(more)
            .map_err(|_| OtlpError::Overloaded {
                message: format!(
                    "too many request bytes in flight (the {} MiB of --max-inflight-bytes are taken); retry later",
                    self.total_bytes >> 20
                ),
                retry_after: crate::ingest::RETRY_AFTER,
            })?;
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A received body and the budget it holds until dropped.
#[derive(Debug)]
pub struct Received {
    /// The request: an OTLP/HTTP body, or a gRPC message, decompressed.
    pub bytes: Bytes,
    /// For gRPC: the message framed as an uncompressed gRPC message (the same
    /// buffer as `bytes`, five bytes longer).
    pub grpc_frame: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

/// What bounds a body.
#[derive(Clone, Debug)]
pub struct BodyLimits {
    pub max_size: usize,
    pub timeout: Duration,
    pub budget: BodyBudget,
}

impl BodyLimits {
    pub fn new(server: &ServerLimits) -> Self {
        Self {
            max_size: server.max_request_size,
            timeout: server.request_timeout,
            budget: BodyBudget::new(server.max_inflight_bytes),
        }
    }

    fn too_large(&self, what: &str) -> OtlpError {
        OtlpError::TooLarge(format!(
            "{what} exceeds the {}-byte limit (--max-request-size)",
            self.max_size
        ))
    }
}

/// Reads a body of at most `max` bytes within the time limit, under the budget.
async fn collect<B>(
    body: B,
    max: usize,
    limits: &BodyLimits,
    held: &mut Option<OwnedSemaphorePermit>,
) -> Result<Bytes, OtlpError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut buffer = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                OtlpError::Decode(format!("cannot read the request body: {}", e.into()))
            })?;
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            if buffer.len() + data.remaining() > max {
                return Err(limits.too_large("request body"));
            }
            limits.budget.take(held, buffer.len() + data.remaining())?;
            while data.has_remaining() {
                let chunk = data.chunk();
                buffer.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
        Ok(buffer.freeze())
    };
    tokio::time::timeout(limits.timeout, read)
        .await
        .map_err(|_| {
            OtlpError::Timeout(format!(
                "the request body did not arrive within {:?} (--request-timeout)",
                limits.timeout
            ))
        })?
}

/// The body of an OTLP/HTTP request, read and decompressed (`Content-Encoding`).
pub async fn read_http(
    headers: &HeaderMap,
    body: axum::body::Body,
    limits: &BodyLimits,
) -> Result<Received, OtlpError> {
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if length > limits.max_size as u64 {
            return Err(limits.too_large("request body"));
        }
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    if !matches!(encoding.as_str(), "identity" | "" | "gzip") {
        return Err(OtlpError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding '{encoding}': use gzip or none"
        )));
    }
    let mut held = None;
    let bytes = collect(body, limits.max_size, limits, &mut held).await?;
    let bytes = if encoding == "gzip" {
        let limits = limits.clone();
        let (inflated, permit) = run_blocking(move || {
            let mut held = held;
            gunzip(&bytes, &limits, &mut held, 0).map(|inflated| (inflated, held))
        })
        .await??;
        held = permit;
        inflated
    } else {
        bytes
    };
    Ok(Received {
        bytes,
        grpc_frame: Bytes::new(),
        _budget: held,
    })
}

/// The message of a unary gRPC request (the body's one length-prefixed message),
/// read and decompressed (`grpc-encoding: gzip`).
pub async fn read_grpc<B>(
    headers: &HeaderMap,
    body: B,
    limits: &BodyLimits,
) -> Result<Received, OtlpError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let mut held = None;
    let frame = collect(body, limits.max_size.saturating_add(5), limits, &mut held).await?;
    let Some((&compressed, rest)) = frame.split_first() else {
        return Err(OtlpError::Decode("empty gRPC request: no message".into()));
    };
    let length = rest
        .get(..4)
        .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
        .ok_or_else(|| OtlpError::Decode("truncated gRPC message header".into()))?;
    if rest.len() - 4 != length {
        return Err(OtlpError::Decode(format!(
            "the gRPC message announces {length} bytes and {} came (one message per export)",
            rest.len() - 4
        )));
    }
    let grpc_frame = match compressed {
        0 => frame,
        1 => {
            let encoding = headers
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity");
            if encoding != "gzip" {
                return Err(OtlpError::UnsupportedMediaType(format!(
                    "unsupported grpc-encoding '{encoding}': use gzip or none"
                )));
            }
            let limits = limits.clone();
            let (inflated, permit) = run_blocking(move || {
                let mut held = held;
                gunzip(&frame[5..], &limits, &mut held, 5).map(|inflated| (inflated, held))
            })
            .await??;
            held = permit;
            inflated
        }
        other => {
            return Err(OtlpError::Decode(format!(
                "invalid gRPC compressed flag {other}"
            )))
        }
    };
    Ok(Received {
        bytes: grpc_frame.slice(5..),
        grpc_frame,
        _budget: held,
    })
}

/// Decompresses at most `limits.max_size` bytes, taking the budget step by step: a
/// gzip bomb stops at the limit, and many at once at the budget. With `grpc_header`
/// 5, the output starts with the header of an uncompressed gRPC message.
fn gunzip(
    compressed: &[u8],
    limits: &BodyLimits,
    held: &mut Option<OwnedSemaphorePermit>,
    grpc_header: usize,
) -> Result<Bytes, OtlpError> {
    let mut decoder = flate2::read::GzDecoder::new(compressed);
    let mut out =
        Vec::with_capacity(grpc_header + compressed.len().saturating_mul(4).min(limits.max_size));
    out.resize(grpc_header, 0);
    loop {
        let inflated = out.len() - grpc_header;
        if inflated > limits.max_size {
            return Err(limits.too_large("decompressed body"));
        }
        let step = INFLATE_STEP.min(limits.max_size + 1 - inflated);
        limits
            .budget
            .take(held, compressed.len() + out.len() + step)?;
        let read = (&mut decoder)
            .take(step as u64)
            .read_to_end(&mut out)
            .map_err(|e| OtlpError::Decode(format!("invalid gzip body: {e}")))?;
        if read == 0 {
            if grpc_header == 5 {
                let length = (out.len() - 5) as u32;
                out[1..5].copy_from_slice(&length.to_be_bytes());
            }
            return Ok(Bytes::from(out));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn limits(max_size: usize, budget: usize) -> BodyLimits {
        BodyLimits {
            max_size,
            timeout: Duration::from_secs(5),
            budget: BodyBudget::new(budget),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).expect("compress");
        encoder.finish().expect("finish")
    }

    #[test]
    fn gunzip_stops_a_bomb_at_the_limit() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        let mut held = None;
        match gunzip(&bomb, &limits(1 << 20, 64 << 20), &mut held, 0) {
            Err(OtlpError::TooLarge(message)) => {
                assert!(message.contains("decompressed"), "{message}")
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let mut held = None;
        let small = gzip(b"hello");
        let out = gunzip(&small, &limits(1 << 20, 64 << 20), &mut held, 0).expect("inflate");
        assert_eq!(&out[..], b"hello");
    }

    #[test]
    fn decompression_takes_the_budget_as_it_goes() {
        let budget = limits(16 << 20, 4 << 20);
        // Another request holds most of the budget: a body that inflates past what
        // is left is refused, and the budget is whole again afterwards.
        let mut other = None;
        budget.budget.take(&mut other, 3 << 20).expect("take");
        let mut held = None;
        let bomb = gzip(&vec![7u8; 8 << 20]);
        match gunzip(&bomb, &budget, &mut held, 0) {
            Err(OtlpError::Overloaded { message, .. }) => {
                assert!(message.contains("max-inflight-bytes"), "{message}")
            }
            other => panic!("expected Overloaded, got {other:?}"),
        }
        drop(held);
        drop(other);
        assert_eq!(budget.budget.available(), 4 << 20);
    }

    #[tokio::test]
    async fn a_body_holds_what_arrived_not_what_it_announced_and_gives_it_back() {
        let budget = limits(16 << 20, 1 << 20);
        let body = axum::body::Body::from(vec![1u8; 300 << 10]);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "307200".parse().expect("value"));
        let received = read_http(&headers, body, &budget).await.expect("read");
        assert_eq!(received.bytes.len(), 300 << 10);
        assert_eq!(budget.budget.available(), (1 << 20) - (300 << 10));
        // Over the budget: refused, whatever the limit on one body.
        let refused = read_http(
            &HeaderMap::new(),
            axum::body::Body::from(vec![1u8; 900 << 10]),
            &budget,
        )
        .await
        .expect_err("over budget");
        assert!(
            matches!(refused, OtlpError::Overloaded { .. }),
            "{refused:?}"
        );
        drop(received);
        assert_eq!(budget.budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_refused() {
        let (tx, body) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
        let body = http_body_util::StreamBody::new(tokio_stream_of(body));
        let mut slow = limits(1 << 20, 1 << 20);
        slow.timeout = Duration::from_millis(200);
        let sender = tokio::spawn(async move {
            let _ = tx
                .send(Ok(http_body::Frame::data(Bytes::from_static(b"partial"))))
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tx);
        });
        let error = collect(body, 1 << 20, &slow, &mut None)
            .await
            .expect_err("timeout");
        assert!(matches!(error, OtlpError::Timeout(_)), "{error:?}");
        sender.abort();
    }

    /// A stream over an mpsc receiver (without tokio-stream).
    fn tokio_stream_of<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test]
    async fn a_grpc_message_is_unframed_and_inflated() {
        let budget = limits(1 << 20, 4 << 20);
        let payload = b"an export request".to_vec();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        let received = read_grpc(&HeaderMap::new(), axum::body::Body::from(frame), &budget)
            .await
            .expect("plain");
        assert_eq!(&received.bytes[..], &payload[..]);

        let compressed = gzip(&payload);
        let mut frame = vec![1u8];
        frame.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        frame.extend_from_slice(&compressed);
        let mut headers = HeaderMap::new();
        headers.insert("grpc-encoding", "gzip".parse().expect("value"));
        let received = read_grpc(&headers, axum::body::Body::from(frame.clone()), &budget)
            .await
            .expect("gzip");
        assert_eq!(&received.bytes[..], &payload[..]);
        assert_eq!(received.grpc_frame[0], 0, "as an uncompressed message");
        assert_eq!(
            &received.grpc_frame[1..5],
            &(payload.len() as u32).to_be_bytes()
        );
        assert_eq!(&received.grpc_frame[5..], &payload[..]);

        // A message that announces more than it sends, or two messages.
        let mut short = vec![0u8];
        short.extend_from_slice(&(16u32 << 20).to_be_bytes());
        short.extend_from_slice(&[0; 100]);
        let error = read_grpc(&HeaderMap::new(), axum::body::Body::from(short), &budget)
            .await
            .expect_err("short");
        assert!(error.to_string().contains("announces"), "{error}");
    }
}
