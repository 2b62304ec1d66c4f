//! Acknowledgement: the step between a decoded export request and "ok".
//!
//! [`Ingester::prepare_spans`] / [`Ingester::prepare_log_records`] frame the
//! records of a decoded request (CPU work, run on the blocking pool);
//! [`Ingester::submit`] takes queue capacity, appends to the write-ahead log, and
//! returns once the records are durable and handed to their index writer. The
//! queue between acknowledgement and indexing is bounded twice, in records and in
//! bytes (a request's bytes plus [`RECORD_OVERHEAD`] per record): a full queue is
//! refused before anything is written, so memory stays bounded whatever the size
//! of the records, and the client is told to retry.
//!
//! What the log keeps of a request ([`WalPayload`]): a protobuf request as it came,
//! with the time it was received (decoding it again on replay gives the same
//! records); an OTLP/JSON request as the postcard encoding of its records.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use prost::bytes::Bytes;
use tokio::sync::{oneshot, Semaphore};

use crate::access::{AccessControl, TenantId, Throttled};
use crate::config::{Config, RecordLimits};
use crate::decode::convert::Converted;
use crate::decode::protobuf;
use crate::metrics::Metrics;
use crate::model::Signal;
use crate::model::{Clock, LogRecord, Span};
use crate::store::writer::{QueuePermit, WriterMsg};
use crate::store::{Records, StoreError};
use crate::wal::Wal;

/// How long a refused client should wait before retrying.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a record costs in the queue beyond its bytes in the request: the model's
/// structures (its strings are slices of the request).
pub const RECORD_OVERHEAD: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("ingest queue is full ({queued} {signal} waiting to be indexed and committed{cause}); retry after {retry_after:?}")]
    Overloaded {
        signal: &'static str,
        queued: u64,
        /// What keeps the queue from draining, when something does (`: ...`).
        cause: String,
        retry_after: Duration,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("cannot encode records: {0}")]
    Encode(String),
    /// Over the tenant's rate limits.
    #[error(transparent)]
    Throttled(#[from] Throttled),
}

/// Records converted from one request and encoded for the log, with what was rejected.
#[derive(Debug)]
pub struct Prepared {
    records: Records,
    payload: Vec<u8>,
    pub rejected: u64,
    pub error_message: String,
}

/// What the client is told: how many records were rejected, and why.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    pub rejected: u64,
    pub error_message: String,
}

#[derive(Clone)]
pub struct Ingester {
    wal: Wal,
    writers: [mpsc::Sender<WriterMsg>; 2],
    /// Per signal: queue capacity in records, and in KiB.
    records: [Arc<Semaphore>; 2],
    kibibytes: [Arc<Semaphore>; 2],
    records_total: u32,
    kibibytes_total: u32,
    limits: RecordLimits,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Whose records these are, and the limits they are counted against.
    access: Arc<AccessControl>,
    tenant: TenantId,
}

impl Ingester {
    /// The default tenant's ingester, with a queue of `config.queue_capacity`
    /// records and `config.queue_bytes` bytes per signal, and `config.records`'
    /// limits.
    pub fn new(
        wal: Wal,
        writers: [mpsc::Sender<WriterMsg>; 2],
        config: &Config,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        access: Arc<AccessControl>,
    ) -> Self {
        let limits = config.records;
        let records_total = config.queue_capacity.min(u32::MAX as u64 / 2) as u32;
        let kibibytes_total = (config.queue_bytes >> 10).clamp(1, u32::MAX as usize / 2) as u32;
        let semaphore = |permits: u32| Arc::new(Semaphore::new(permits as usize));
        Self {
            wal,
            writers,
            records: [semaphore(records_total), semaphore(records_total)],
            kibibytes: [semaphore(kibibytes_total), semaphore(kibibytes_total)],
            records_total,
            kibibytes_total,
            limits,
            metrics,
            clock,
            access,
            tenant: 0,
        }
    }

    /// The ingester of another tenant: its own log and writers, the same queue
    /// (what waits to be indexed is bounded for the whole process).
    pub fn for_tenant(
        &self,
        tenant: TenantId,
        wal: Wal,
        writers: [mpsc::Sender<WriterMsg>; 2],
    ) -> Self {
        Self {
            wal,
            writers,
            tenant,
            ..self.clone()
        }
    }

    /// The tenant whose records this takes.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// What one record may cost.
    pub fn limits(&self) -> &RecordLimits {
        &self.limits
    }

    /// Refused: the queue is full; says why it does not drain when something
    /// reported a problem (a failing disk).
    fn overloaded(&self, signal: Signal) -> IngestError {
        let problems = self.metrics.health.conditions();
        let free = self.records[signal.ordinal()].available_permits() as u64;
        IngestError::Overloaded {
            signal: signal.as_str(),
            queued: u64::from(self.records_total).saturating_sub(free),
            cause: if problems.is_empty() {
                String::new()
            } else {
                format!(": {}", problems.join("; "))
            },
            retry_after: RETRY_AFTER,
        }
    }

    /// The receipt time of a request being prepared now.
    pub fn now(&self) -> u64 {
        self.clock.now_unix_nanos()
    }

    /// Frames the spans of one request, converted at `received`; `protobuf` is the
    /// request as received, when it came as protobuf, for the log to keep.
    pub fn prepare_spans(
        &self,
        converted: Converted<Span>,
        protobuf: Option<&[u8]>,
        received: u64,
    ) -> Result<Prepared, IngestError> {
        self.prepare(converted, Records::Spans, protobuf, received)
    }

    /// Frames the log records of one request, as [`Ingester::prepare_spans`].
    pub fn prepare_log_records(
        &self,
        converted: Converted<LogRecord>,
        protobuf: Option<&[u8]>,
        received: u64,
    ) -> Result<Prepared, IngestError> {
        self.prepare(converted, Records::Logs, protobuf, received)
    }

    fn prepare<T>(
        &self,
        converted: Converted<T>,
        wrap: fn(Vec<T>) -> Records,
        protobuf: Option<&[u8]>,
        received: u64,
    ) -> Result<Prepared, IngestError> {
        let error_message = converted.error_message();
        let rejected = converted.rejected;
        let records = wrap(converted.records);
        let signal = self.metrics.signal(records.signal());
        signal
            .received
            .fetch_add(records.len() as u64 + rejected, Ordering::Relaxed);
        signal.rejected.fetch_add(rejected, Ordering::Relaxed);
        let payload = match protobuf {
            _ if records.is_empty() => Ok(Vec::new()),
            Some(bytes) => WalPayload::Protobuf { received, bytes }.encode(),
            None => WalPayload::Records(&records).encode(),
        }
        .map_err(|e| IngestError::Encode(e.to_string()))?;
        Ok(Prepared {
            records,
            payload,
            rejected,
            error_message,
        })
    }

    /// Refuses at once, before any decoding, when `signal`'s queue is nearly full
    /// (under a sixteenth free): under overload the CPU goes to indexing, not to
    /// decoding requests that would be refused anyway.
    /// Also refuses a tenant over its rate limits.
    pub fn check_capacity(&self, signal: Signal) -> Result<(), IngestError> {
        self.access.admit(self.tenant, self.now())?;
        let records = self.records[signal.ordinal()].available_permits() as u64;
        let kibibytes = self.kibibytes[signal.ordinal()].available_permits() as u64;
        if records * 16 >= u64::from(self.records_total)
            && kibibytes * 16 >= u64::from(self.kibibytes_total)
        {
            return Ok(());
        }
        Err(self.overloaded(signal))
    }

    /// Makes the records durable and queues them for indexing.
    pub async fn submit(&self, prepared: Prepared) -> Result<ExportOutcome, IngestError> {
        let outcome = ExportOutcome {
            rejected: prepared.rejected,
            error_message: prepared.error_message,
        };
        if prepared.records.is_empty() {
            return Ok(outcome);
        }
        let signal = prepared.records.signal();
        let count = prepared.records.len() as u64;
        let records = count.min(u64::from(self.records_total)) as u32;
        let bytes = prepared.payload.len() + prepared.records.len() * RECORD_OVERHEAD;
        let kibibytes = bytes.div_ceil(1024).clamp(1, self.kibibytes_total as usize) as u32;
        let signal_metrics = self.metrics.signal(signal);
        let permit = Arc::clone(&self.records[signal.ordinal()])
            .try_acquire_many_owned(records)
            .and_then(|records| {
                let bytes = Arc::clone(&self.kibibytes[signal.ordinal()])
                    .try_acquire_many_owned(kibibytes)?;
                Ok(QueuePermit { records, bytes })
            });
        let Ok(permit) = permit else {
            signal_metrics
                .refused_overload
                .fetch_add(count, Ordering::Relaxed);
            return Err(self.overloaded(signal));
        };
        let writer = self.writers[signal.ordinal()].clone();
        let records = prepared.records;
        let metrics = Arc::clone(&self.metrics);
        let on_durable = Box::new(move |lsn: u64| {
            metrics
                .signal(signal)
                .queued
                .fetch_add(count, Ordering::Relaxed);
            writer
                .send(WriterMsg::Batch {
                    lsn,
                    records,
                    permit: Some(permit),
                })
                .is_ok()
        });
        let payload_bytes = prepared.payload.len() as u64;
        self.wal
            .append(signal, prepared.payload, on_durable)
            .await
            .map_err(|e| {
                IngestError::Unavailable(format!("cannot make the records durable: {e}"))
            })?;
        self.access
            .charge(self.tenant, signal, count, payload_bytes, self.now());
        Ok(outcome)
    }

    /// Commits both indexes now; returns once everything acknowledged before is searchable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.ask_writers(WriterMsg::Flush).await
    }

    /// Commits and seals the active split of both indexes.
    pub async fn seal(&self) -> Result<(), StoreError> {
        self.ask_writers(WriterMsg::Seal).await
    }

    async fn ask_writers(
        &self,
        message: fn(oneshot::Sender<Result<(), StoreError>>) -> WriterMsg,
    ) -> Result<(), StoreError> {
        for writer in &self.writers {
            let (reply, done) = oneshot::channel();
            writer
                .send(message(reply))
                .map_err(|_| StoreError::WriterStopped)?;
            done.await.map_err(|_| StoreError::WriterStopped)??;
        }
        Ok(())
    }
}

/// What the write-ahead log keeps of one request: a tag byte, then the request.
pub enum WalPayload<'a> {
    /// An OTLP protobuf export request as received (tag 1): the time it was received
    /// (ns, u64 LE), then its bytes.
    Protobuf { received: u64, bytes: &'a [u8] },
    /// Converted records, postcard-encoded (tag 0): OTLP/JSON requests.
    Records(&'a Records),
}

const WAL_RECORDS: u8 = 0;
const WAL_PROTOBUF: u8 = 1;

impl WalPayload<'_> {
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        match self {
            WalPayload::Protobuf { received, bytes } => {
                let mut out = Vec::with_capacity(1 + 8 + bytes.len());
                out.push(WAL_PROTOBUF);
                out.extend_from_slice(&received.to_le_bytes());
                out.extend_from_slice(bytes);
                Ok(out)
            }
            WalPayload::Records(records) => records.encode_after(WAL_RECORDS),
        }
    }

    /// The records of a frame read back from the log, converted as when they were
    /// received.
    pub fn decode(
        signal: Signal,
        payload: Bytes,
        limits: &RecordLimits,
    ) -> Result<Records, PayloadError> {
        match payload.split_first() {
            Some((&WAL_RECORDS, rest)) => Ok(Records::decode(signal, rest)?),
            Some((&WAL_PROTOBUF, rest)) => {
                let (received, _) = rest
                    .split_first_chunk::<8>()
                    .ok_or(PayloadError::Truncated)?;
                let received = u64::from_le_bytes(*received);
                // The records' strings are slices of the frame.
                let request = payload.slice(1 + 8..);
                Ok(match signal {
                    Signal::Spans => {
                        Records::Spans(protobuf::decode_traces(&request, received, limits)?.records)
                    }
                    Signal::Logs => {
                        Records::Logs(protobuf::decode_logs(&request, received, limits)?.records)
                    }
                })
            }
            Some((tag, _)) => Err(PayloadError::UnknownTag(*tag)),
            None => Err(PayloadError::Empty),
        }
    }
}

/// Why a frame of the write-ahead log holds no records.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("empty payload")]
    Empty,
    #[error("unknown payload tag {0}")]
    UnknownTag(u8),
    #[error("truncated protobuf frame")]
    Truncated,
    #[error("bad records: {0}")]
    Records(#[from] postcard::Error),
    #[error("bad protobuf request: {0}")]
    Protobuf(#[from] protobuf::DecodeError),
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as PLogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as PSpan};
    use prost::Message;

    use super::*;
    use crate::decode::convert::{convert_logs, convert_traces};

    const RECEIVED: u64 = 1_700_000_000_000_000_000;

    fn traces() -> ExportTraceServiceRequest {
        let span = |id: u8, trace_id: Vec<u8>| PSpan {
            trace_id,
            span_id: vec![id; 8],
            name: format!("span {id}"),
            start_time_unix_nano: RECEIVED - 1_000,
            end_time_unix_nano: RECEIVED,
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    // The second has no valid trace id: rejected, then and on replay.
                    spans: vec![span(1, vec![7; 16]), span(2, vec![7; 3])],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn frame(bytes: &[u8]) -> Bytes {
        WalPayload::Protobuf {
            received: RECEIVED,
            bytes,
        }
        .encode()
        .expect("encode")
        .into()
    }

    #[test]
    fn a_protobuf_frame_replays_as_the_records_it_was_received_as() {
        let request = traces();
        let received = convert_traces(request.clone(), RECEIVED, &RecordLimits::default());
        assert_eq!((received.records.len(), received.rejected), (1, 1));
        let payload = frame(&request.encode_to_vec());
        match WalPayload::decode(Signal::Spans, payload, &RecordLimits::default()).expect("decode")
        {
            Records::Spans(spans) => assert_eq!(spans, received.records),
            other => panic!("expected spans, got {other:?}"),
        }

        // A log record without a time takes the time it was received, on replay too.
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![PLogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let payload = frame(&logs.encode_to_vec());
        match WalPayload::decode(Signal::Logs, payload, &RecordLimits::default()).expect("decode") {
            Records::Logs(records) => {
                assert_eq!(
                    records,
                    convert_logs(logs, RECEIVED, &RecordLimits::default()).records
                );
                assert_eq!(records[0].time_unix_nano, RECEIVED);
            }
            other => panic!("expected logs, got {other:?}"),
        }
    }

    #[test]
    fn a_records_frame_round_trips_and_bad_frames_are_named() {
        let records =
            Records::Spans(convert_traces(traces(), RECEIVED, &RecordLimits::default()).records);
        let payload = WalPayload::Records(&records).encode().expect("encode");
        match (
            WalPayload::decode(Signal::Spans, payload.into(), &RecordLimits::default()),
            &records,
        ) {
            (Ok(Records::Spans(back)), Records::Spans(spans)) => assert_eq!(&back, spans),
            (other, _) => panic!("expected spans, got {other:?}"),
        }
        for (payload, error) in [
            (&[][..], "empty payload"),
            (&[9, 1, 2][..], "unknown payload tag 9"),
            (&[1, 0, 0][..], "truncated protobuf frame"),
            (
                &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff][..],
                "bad protobuf request",
            ),
        ] {
            let message = WalPayload::decode(
                Signal::Spans,
                Bytes::from_static(payload),
                &RecordLimits::default(),
            )
            .expect_err("bad frame")
            .to_string();
            assert!(message.contains(error), "{message}");
        }
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_whatever_the_record_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::default());
        let (wal, _thread) =
            Wal::open(dir.path(), [0, 0], Arc::clone(&metrics), |_| {}).expect("wal");
        // Writers that never index: what is queued stays queued.
        let (spans, _spans_rx) = mpsc::channel();
        let (logs, _logs_rx) = mpsc::channel();
        let mut config = Config::for_tests(dir.path());
        config.queue_bytes = 4 << 20;
        let ingester = Ingester::new(
            wal,
            [spans, logs],
            &config,
            Arc::clone(&metrics),
            Arc::new(crate::model::SystemClock),
            Arc::new(AccessControl::new(
                crate::config::Access::open(Duration::from_secs(3600)),
                &metrics,
            )),
        );
        // One span of 1 MiB per request: the record count is nothing, the bytes fill
        // the queue after four.
        let mut request = traces();
        request.resource_spans[0].scope_spans[0].spans[0]
            .attributes
            .push(opentelemetry_proto::tonic::common::v1::KeyValue {
                key: "payload".into(),
                value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                    value: Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            "x".repeat(1 << 20),
                        ),
                    ),
                }),
                ..Default::default()
            });
        let bytes = request.encode_to_vec();
        let mut accepted = 0;
        let refusal = loop {
            let converted = crate::decode::protobuf::decode_traces(
                &Bytes::from(bytes.clone()),
                RECEIVED,
                ingester.limits(),
            )
            .expect("decode");
            let prepared = ingester
                .prepare_spans(converted, Some(&bytes), RECEIVED)
                .expect("prepare");
            match ingester.submit(prepared).await {
                Ok(_) => accepted += 1,
                Err(e) => break e,
            }
            assert!(accepted < 10, "the queue took more than its bytes");
        };
        assert_eq!(
            accepted, 3,
            "three requests of 1 MiB and a little fit in 4 MiB"
        );
        assert!(
            matches!(refusal, IngestError::Overloaded { .. }),
            "{refusal}"
        );
        assert!(refusal.to_string().contains("queue is full"), "{refusal}");
    }
}
