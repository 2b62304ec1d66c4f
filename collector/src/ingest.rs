//! Acknowledgement: the step between a decoded export request and "ok".
//!
//! [`Ingester::prepare_traces`] / [`Ingester::prepare_logs`] convert and encode (CPU
//! work, run on the blocking pool); [`Ingester::submit`] takes queue capacity, appends
//! to the write-ahead log, and returns once the records are durable and handed to
//! their index writer. A full queue is refused before anything is written, so
//! memory stays bounded and the client is told to retry.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::{oneshot, Semaphore};

use crate::metrics::{Metrics, Signal};
use crate::model::Clock;
use crate::otlp::convert::{convert_logs, convert_traces, Converted};
use crate::store::writer::WriterMsg;
use crate::store::Records;
use crate::wal::Wal;

/// How long a refused client should wait before retrying.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("ingest queue is full ({queued} {signal} waiting to be indexed); retry after {retry_after:?}")]
    Overloaded {
        signal: &'static str,
        queued: u64,
        retry_after: Duration,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("cannot encode records: {0}")]
    Encode(String),
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
    capacity: [Arc<Semaphore>; 2],
    capacity_total: u32,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

fn slot(signal: Signal) -> usize {
    match signal {
        Signal::Spans => 0,
        Signal::Logs => 1,
    }
}

impl Ingester {
    pub fn new(
        wal: Wal,
        writers: [mpsc::Sender<WriterMsg>; 2],
        queue_capacity: u64,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let capacity_total = queue_capacity.min(u32::MAX as u64 / 2) as u32;
        Self {
            wal,
            writers,
            capacity: [
                Arc::new(Semaphore::new(capacity_total as usize)),
                Arc::new(Semaphore::new(capacity_total as usize)),
            ],
            capacity_total,
            metrics,
            clock,
        }
    }

    pub fn prepare_traces(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<Prepared, IngestError> {
        let converted = convert_traces(request, self.clock.now_unix_nanos());
        self.prepare(converted, Records::Spans)
    }

    pub fn prepare_logs(&self, request: ExportLogsServiceRequest) -> Result<Prepared, IngestError> {
        let converted = convert_logs(request, self.clock.now_unix_nanos());
        self.prepare(converted, Records::Logs)
    }

    fn prepare<T>(
        &self,
        converted: Converted<T>,
        wrap: fn(Vec<T>) -> Records,
    ) -> Result<Prepared, IngestError> {
        let error_message = converted.error_message();
        let rejected = converted.rejected;
        let records = wrap(converted.records);
        let signal = self.metrics.signal(records.signal());
        signal
            .received
            .fetch_add(records.len() as u64 + rejected, Ordering::Relaxed);
        signal.rejected.fetch_add(rejected, Ordering::Relaxed);
        let payload = if records.is_empty() {
            Vec::new()
        } else {
            records
                .encode()
                .map_err(|e| IngestError::Encode(e.to_string()))?
        };
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
    pub fn check_capacity(&self, signal: Signal) -> Result<(), IngestError> {
        let available = self.capacity[slot(signal)].available_permits() as u64;
        if available * 16 >= u64::from(self.capacity_total) {
            return Ok(());
        }
        Err(IngestError::Overloaded {
            signal: signal.as_str(),
            queued: self.metrics.signal(signal).queued.load(Ordering::Relaxed),
            retry_after: RETRY_AFTER,
        })
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
        let wanted = count.min(self.capacity_total as u64) as u32;
        let signal_metrics = self.metrics.signal(signal);
        let permit = match Arc::clone(&self.capacity[slot(signal)]).try_acquire_many_owned(wanted) {
            Ok(permit) => permit,
            Err(_) => {
                signal_metrics
                    .refused_overload
                    .fetch_add(count, Ordering::Relaxed);
                return Err(IngestError::Overloaded {
                    signal: signal.as_str(),
                    queued: signal_metrics.queued.load(Ordering::Relaxed),
                    retry_after: RETRY_AFTER,
                });
            }
        };
        let writer = self.writers[slot(signal)].clone();
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
        self.wal
            .append(signal, prepared.payload, on_durable)
            .await
            .map_err(|e| {
                IngestError::Unavailable(format!("cannot make the records durable: {e}"))
            })?;
        Ok(outcome)
    }

    /// Commits both indexes now; returns once everything acknowledged before is searchable.
    pub async fn flush(&self) -> Result<(), String> {
        for writer in &self.writers {
            let (reply, done) = oneshot::channel();
            writer
                .send(WriterMsg::Flush(reply))
                .map_err(|_| "index writer stopped".to_string())?;
            done.await
                .map_err(|_| "index writer stopped".to_string())??;
        }
        Ok(())
    }

    /// Commits and seals the active split of both indexes.
    pub async fn seal(&self) -> Result<(), String> {
        for writer in &self.writers {
            let (reply, done) = oneshot::channel();
            writer
                .send(WriterMsg::Seal(reply))
                .map_err(|_| "index writer stopped".to_string())?;
            done.await
                .map_err(|_| "index writer stopped".to_string())??;
        }
        Ok(())
    }
}
