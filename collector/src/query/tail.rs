//! The live tail of a log search: the same filter asked again every second over a
//! window that overlaps the last one (lines become searchable up to a commit
//! interval after they happened), with a seen-set so that each line comes once.
//! Built on [`QueryService::search_logs`], so it works over any implementation.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use std::sync::Arc;

use super::service::{QueryGate, QueryService};
use super::QueryError;
use crate::model::{AnyValue, Clock, LogRecord};
use crate::store::search::LogFilter;

/// What a tail delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum TailEvent {
    /// New matching lines, oldest first, at most [`PAGE`].
    Lines(Vec<LogRecord>),
    /// More lines arrived in one poll than a tail delivers ([`MAX_PER_POLL`]):
    /// how many were not sent.
    Skipped(u64),
    /// The tail ends, and why.
    Closed(String),
}

/// The receiving end of a tail; the tail stops once it is dropped.
pub type Tail = mpsc::Receiver<TailEvent>;

/// How far back each poll looks.
const OVERLAP: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_secs(1);
/// Lines per search, and per [`TailEvent::Lines`].
const PAGE: usize = 1000;
/// Lines one poll delivers at most.
const MAX_PER_POLL: usize = 20_000;
/// Events waiting for a subscriber: one that falls this far behind is dropped.
pub const BUFFER: usize = 32;

/// Starts a tail of `filter` over `queries` (its own task), unless `--max-tails`
/// are open.
pub fn spawn<Q: QueryService + Clone>(
    queries: Q,
    gate: &QueryGate,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
    filter: LogFilter,
) -> Result<Tail, QueryError> {
    let Ok(open) = Arc::clone(&gate.tails).try_acquire_owned() else {
        return Err(QueryError::Unavailable(format!(
            "{} live tails are open (--max-tails); retry later",
            gate.limits.max_tails
        )));
    };
    let (events, received) = mpsc::channel(BUFFER);
    // The tail starts now, when it is asked for, not when its task first runs
    // (on a busy runtime, a line logged in between would be taken for an old one).
    let since = clock.now_unix_nanos();
    tokio::spawn(async move {
        follow(&queries, clock.as_ref(), since, filter, shutdown, events).await;
        drop(open);
    });
    Ok(received)
}

/// A line's identity for the seen-set: the hash of what a search returns of it.
fn line_key(record: &LogRecord) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    record.time_unix_nano.hash(&mut hasher);
    record.service_name.hash(&mut hasher);
    record.trace_id.map(|id| id.0).hash(&mut hasher);
    record.span_id.map(|id| id.as_u64()).hash(&mut hasher);
    record.severity_number.hash(&mut hasher);
    match &record.body {
        AnyValue::Str(text) => text.hash(&mut hasher),
        other => other.to_json().to_string().hash(&mut hasher),
    }
    hasher.finish()
}

/// Polls for the lines that happened from `since` on and sends them until the
/// subscriber goes, the server stops (`shutdown` turns true), or the subscriber
/// falls [`BUFFER`] events behind.
async fn follow(
    queries: &impl QueryService,
    clock: &dyn Clock,
    since: u64,
    mut filter: LogFilter,
    mut shutdown: watch::Receiver<bool>,
    events: mpsc::Sender<TailEvent>,
) {
    let mut seen: HashMap<u64, u64> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = events.closed() => return,
        }
        let now = clock.now_unix_nanos();
        filter.start = since.max(now.saturating_sub(OVERLAP.as_nanos() as u64));
        filter.end = now;
        filter.limit = PAGE;
        // Newest first, page by page: each page ends where the last one's oldest
        // line was (lines of that very time come again and are deduplicated).
        let mut fresh: Vec<LogRecord> = Vec::new();
        let mut skipped = 0u64;
        let mut page = filter.clone();
        loop {
            let Ok(found) = queries.search_logs(page.clone()).await else {
                break;
            };
            let full = found.records.len() == PAGE;
            let oldest = found.records.last().map(|r| r.time_unix_nano);
            for record in found.records {
                if seen
                    .insert(line_key(&record), record.time_unix_nano)
                    .is_none()
                {
                    fresh.push(record);
                }
            }
            if !(full && oldest.is_some_and(|t| t < page.end)) {
                break;
            }
            if fresh.len() >= MAX_PER_POLL {
                // What the window holds beyond the pages read, minus what was seen
                // before: a count, not exact where pages overlapped.
                skipped = found.total.saturating_sub(seen.len() as u64);
                break;
            }
            page.end = oldest.unwrap_or(page.start);
        }
        seen.retain(|_, time| *time >= filter.start);
        fresh.reverse();
        while !fresh.is_empty() {
            let rest = fresh.split_off(fresh.len().min(PAGE));
            if !deliver(
                &events,
                TailEvent::Lines(std::mem::replace(&mut fresh, rest)),
            )
            .await
            {
                return;
            }
        }
        if skipped > 0 && !deliver(&events, TailEvent::Skipped(skipped)).await {
            return;
        }
    }
}

/// Queues an event; false when the subscriber is gone or too far behind (it is
/// then told why, if it ever reads again).
async fn deliver(events: &mpsc::Sender<TailEvent>, event: TailEvent) -> bool {
    match events.try_send(event) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        Err(mpsc::error::TrySendError::Full(_)) => {
            let closed = TailEvent::Closed(format!(
                "this tail fell {BUFFER} events behind and was closed; reconnect to follow again"
            ));
            let _ = tokio::time::timeout(Duration::from_secs(5), events.send(closed)).await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_and_dropped() {
        let (events, mut received) = mpsc::channel(BUFFER);
        for _ in 0..BUFFER {
            assert!(deliver(&events, TailEvent::Skipped(1)).await);
        }
        // Full: the next one ends the tail, and a `Closed` event follows once the
        // subscriber reads again.
        let reader = tokio::spawn(async move {
            let mut last = None;
            let mut count = 0;
            while let Some(event) = received.recv().await {
                count += 1;
                last = Some(event);
            }
            (count, last)
        });
        assert!(!deliver(&events, TailEvent::Skipped(2)).await);
        drop(events);
        let (count, last) = reader.await.expect("reader");
        assert_eq!(count, BUFFER + 1);
        assert!(
            matches!(last, Some(TailEvent::Closed(why)) if why.contains("fell 32 events behind"))
        );
        let (gone, received) = mpsc::channel::<TailEvent>(1);
        drop(received);
        assert!(
            !deliver(&gone, TailEvent::Skipped(1)).await,
            "a client that left"
        );
    }
}
