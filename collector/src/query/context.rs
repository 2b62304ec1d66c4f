//! A log line's context: the lines just before and after it from the same
//! service instance, in time order, as that instance's own log file would show
//! them around the line.
//!
//! It asks the [`QueryService`] only log searches, so it works the same on one
//! box and in a cluster. The lines before are one search (newest first, then
//! turned); the lines after are the oldest of a range that starts at the line
//! and widens tenfold until it holds enough of them.

use super::service::QueryService;
use super::QueryError;
use crate::model::LogRecord;
use crate::store::search::{LogExpr, LogField, LogFilter};

/// Lines on each side when the request does not say, and at most.
pub const DEFAULT_CONTEXT_LINES: usize = 10;
pub const MAX_CONTEXT_LINES: usize = 200;
/// Lines that may share the line's own timestamp (all are shown as "at").
const MAX_AT: usize = 200;
/// How far from the line its context is looked for: a day each way.
const REACH: u64 = 86_400_000_000_000;
/// The first range after the line: 1 ms, then tenfold.
const FIRST_STEP: u64 = 1_000_000;
/// Matching lines a range after the line may hold before it is halved: the
/// oldest of them are read by offset, which goes this deep.
const MAX_AFTER_RANGE: u64 = super::params::MAX_LOG_DEPTH as u64;

/// Whose lines, around which time, how many each side.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRequest {
    pub service: String,
    /// The `service.instance.id` of the line's resource, when it has one.
    pub instance: Option<String>,
    /// The line's time, ns since the epoch.
    pub time: u64,
    pub before: usize,
    pub after: usize,
}

/// The lines around one, each list oldest first.
#[derive(Debug, Default, PartialEq)]
pub struct LogContext {
    pub before: Vec<LogRecord>,
    /// The lines of the instance at the line's own time (the line among them).
    pub at: Vec<LogRecord>,
    pub after: Vec<LogRecord>,
}

pub async fn log_context(
    queries: &dyn QueryService,
    request: &ContextRequest,
) -> Result<LogContext, QueryError> {
    let time = request.time;
    let filter = |start: u64, end: u64, limit: usize| LogFilter {
        service: Some(request.service.clone()),
        expr: request.instance.as_ref().map(|instance| LogExpr::Term {
            field: LogField::Attribute("service.instance.id".to_string()),
            text: instance.clone(),
        }),
        start,
        end,
        limit,
        ..LogFilter::default()
    };
    let mut at = queries
        .search_logs(filter(time, time, MAX_AT))
        .await?
        .records;
    at.reverse();
    let mut context = LogContext {
        at,
        ..LogContext::default()
    };
    if request.before > 0 {
        if let Some(end) = time.checked_sub(1) {
            let start = time.saturating_sub(REACH);
            let page = queries
                .search_logs(filter(start, end, request.before))
                .await?;
            context.before = page.records;
            context.before.reverse();
        }
    }
    let (Some(first), true) = (time.checked_add(1), request.after > 0) else {
        return Ok(context);
    };
    let wanted = request.after as u64;
    let last = time.saturating_add(REACH);
    // Widen [first, first + step] tenfold until it holds `wanted` lines or
    // reaches `last`.
    let count = |end: u64| async move {
        Ok::<_, QueryError>(queries.search_logs(filter(first, end, 1)).await?.total)
    };
    let (mut short, mut step) = (None, FIRST_STEP);
    let (mut end, mut total) = loop {
        let end = first.saturating_add(step).min(last);
        let total = count(end).await?;
        if total >= wanted || end == last {
            break (end, total);
        }
        short = Some(end);
        step = step.saturating_mul(10);
    };
    // Too many to reach the oldest by offset: the end moves back, by halves,
    // towards the last range that held too few.
    let mut low = short.unwrap_or(first);
    while total > MAX_AFTER_RANGE {
        if end - low <= 1 {
            return Err(QueryError::BadRequest(format!(
                "more than {MAX_AFTER_RANGE} lines of this instance at {end} ns: \
                 their context cannot be read"
            )));
        }
        let middle = low + (end - low) / 2;
        match count(middle).await? {
            n if n >= wanted => (end, total) = (middle, n),
            _ => low = middle,
        }
    }
    if total == 0 {
        return Ok(context);
    }
    // The oldest `wanted` of the `total` lines in the range.
    let take = wanted.min(total);
    let mut page_filter = filter(first, end, take as usize);
    page_filter.offset = (total - take) as usize;
    let mut after = queries.search_logs(page_filter).await?.records;
    after.reverse();
    context.after = after;
    Ok(context)
}
