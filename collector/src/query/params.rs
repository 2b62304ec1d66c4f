//! Query-string parameters of the query API -> store filters. Every endpoint names
//! the parameters it takes; anything else is refused with the list, so a typo
//! (`serivce=`) is a clear 400 rather than a silently ignored filter.

use std::time::Duration;

use super::analysis::{AnalysisRequest, Grouping, DEFAULT_ANALYSED_TRACES, MAX_ANALYSED_TRACES};
use super::context::{ContextRequest, DEFAULT_CONTEXT_LINES, MAX_CONTEXT_LINES};
use super::{logql, red, QueryError};
use crate::config::parse_duration;
pub use crate::model::parse_rfc3339;
use crate::model::{severity_number_of, SpanId, SpanKind, TraceId};
use crate::store::pattern;
use crate::store::search::{
    LogCursor, LogFilter, LogPatterns, LogVolume, TraceCursor, TraceFilter, TraceOrder,
};

pub const DEFAULT_TRACE_LIMIT: usize = 20;
pub const MAX_TRACE_LIMIT: usize = 1500;
pub const DEFAULT_LOG_LIMIT: usize = 100;
pub const MAX_LOG_LIMIT: usize = 5000;
/// Search window when neither `start` nor `lookback` is given.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(2 * 24 * 3600);

/// Raw `key=value` pairs of a query string, checked against the accepted names.
pub struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    pub fn new(pairs: &'a [(String, String)], accepted: &[&str]) -> Result<Self, QueryError> {
        for (key, _) in pairs {
            if !accepted.contains(&key.as_str()) {
                return Err(QueryError::BadRequest(format!(
                    "unknown query parameter '{key}' (accepted: {})",
                    accepted.join(", ")
                )));
            }
        }
        Ok(Self { pairs })
    }

    /// The last non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> impl Iterator<Item = &'a str> + '_ {
        let key = key.to_string();
        self.pairs
            .iter()
            .filter(move |(k, v)| *k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, QueryError> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(key, v, "expected a non-negative integer"))
            })
            .transpose()
    }

    pub fn duration(&self, key: &str) -> Result<Option<Duration>, QueryError> {
        self.get(key)
            .map(|v| parse_duration(v).map_err(|e| bad(key, v, &e)))
            .transpose()
    }

    pub fn limit(&self, default: usize, max: usize) -> Result<usize, QueryError> {
        match self.u64("limit")? {
            None | Some(0) => Ok(default),
            Some(n) => Ok((n as usize).min(max)),
        }
    }
}

fn bad(key: &str, value: &str, why: &str) -> QueryError {
    QueryError::BadRequest(format!("invalid {key} '{value}': {why}"))
}

/// `cursor=`: where the previous page of a search ended, as its answer gave it.
fn cursor<T>(params: &Params<'_>, decode: fn(&str) -> Option<T>) -> Result<Option<T>, QueryError> {
    params
        .get("cursor")
        .map(|text| {
            decode(text)
                .ok_or_else(|| bad("cursor", text, "expected the nextCursor of a previous page"))
        })
        .transpose()
}

pub fn parse_trace_id(text: &str) -> Result<TraceId, QueryError> {
    TraceId::from_hex(text)
        .map_err(|e| QueryError::BadRequest(format!("malformed trace id '{text}': {e}")))
}

fn parse_span_id(text: &str) -> Result<SpanId, QueryError> {
    SpanId::from_hex(text)
        .map_err(|e| QueryError::BadRequest(format!("malformed span id '{text}': {e}")))
}

/// `[start, end]` in ns from `start`/`end` in µs and `lookback` (`1h`, or Jaeger
/// UI's `custom`).
/// `start`, `end` (µs) and `lookback` alone, as a range in ns.
pub fn time_range(pairs: &[(String, String)], now_nanos: u64) -> Result<(u64, u64), QueryError> {
    time_window(
        &Params::new(pairs, &["start", "end", "lookback"])?,
        now_nanos,
    )
}

pub(super) fn time_window(params: &Params<'_>, now_nanos: u64) -> Result<(u64, u64), QueryError> {
    let end = params
        .u64("end")?
        .map_or(now_nanos, |us| us.saturating_mul(1000));
    let start = match params.u64("start")? {
        Some(us) => us.saturating_mul(1000),
        None => {
            let lookback = match params.get("lookback") {
                Some("custom") | None => DEFAULT_LOOKBACK,
                Some(text) => parse_duration(text).map_err(|e| bad("lookback", text, &e))?,
            };
            end.saturating_sub(lookback.as_nanos() as u64)
        }
    };
    if start > end {
        return Err(QueryError::BadRequest(format!(
            "start ({}µs) is after end ({}µs)",
            start / 1000,
            end / 1000
        )));
    }
    Ok((start, end))
}

/// Tags given as a JSON object (`tags` of Jaeger's v1 API, `query.attributes` of
/// api_v3): `{"http.status_code":"500","error":true}`; values that are not strings
/// match as their JSON text.
fn json_tags(params: &Params<'_>, key: &str) -> Result<Vec<(String, String)>, QueryError> {
    let Some(json) = params.get(key) else {
        return Ok(Vec::new());
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| {
            bad(
                key,
                json,
                &format!("expected a JSON object such as {{\"http.status_code\":\"500\"}}: {e}"),
            )
        })?;
    Ok(object
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => (key, text),
            other => (key, other.to_string()),
        })
        .collect())
}

pub const TRACE_SEARCH_PARAMS: &[&str] = &[
    "service",
    "operation",
    "tags",
    "tag",
    "start",
    "end",
    "lookback",
    "minDuration",
    "maxDuration",
    "limit",
    "spanKind",
    "traceID",
    "prettyPrint",
    "raw",
    "uiFind",
    "sort",
    "cursor",
    "operationPattern",
];

/// `sort=` (default: newest first); with a `cursor`, the cursor's order, which
/// a `sort` given too must name.
fn trace_order(
    params: &Params<'_>,
    cursor: Option<&TraceCursor>,
) -> Result<TraceOrder, QueryError> {
    let Some(word) = params.get("sort") else {
        return Ok(cursor.map_or(TraceOrder::Newest, |cursor| cursor.order));
    };
    let order = TraceOrder::from_word(word).ok_or_else(|| {
        bad(
            "sort",
            word,
            "expected recent, oldest, longest (or duration), shortest, spans or errors",
        )
    })?;
    match cursor {
        Some(cursor) if cursor.order != order => Err(QueryError::BadRequest(format!(
            "sort={word} with a cursor of sort={}: a cursor pages on in the order it was made in",
            cursor.order.word()
        ))),
        _ => Ok(order),
    }
}

/// What `/api/traces` asks for: explicit trace ids, or a search.
// One per request, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum TraceSearch {
    Ids(Vec<TraceId>),
    Filter(TraceFilter),
}

/// `/api/traces?service=&operation=&tags=&tag=&start=&end=&lookback=&minDuration=&maxDuration=&limit=`
pub fn trace_search(pairs: &[(String, String)], now_nanos: u64) -> Result<TraceSearch, QueryError> {
    let params = Params::new(pairs, TRACE_SEARCH_PARAMS)?;
    let ids: Vec<TraceId> = params
        .all("traceID")
        .map(parse_trace_id)
        .collect::<Result<_, _>>()?;
    if ids.len() > MAX_TRACE_LIMIT {
        return Err(QueryError::BadRequest(format!(
            "{} traceID parameters; at most {MAX_TRACE_LIMIT} are taken at once",
            ids.len()
        )));
    }
    if !ids.is_empty() {
        return Ok(TraceSearch::Ids(ids));
    }
    Ok(TraceSearch::Filter(trace_filter(
        &params,
        now_nanos,
        (DEFAULT_TRACE_LIMIT, MAX_TRACE_LIMIT),
    )?))
}

/// The search filter of `/api/traces` (and of what builds on it): `limit` is
/// `(default, max)`.
fn trace_filter(
    params: &Params<'_>,
    now_nanos: u64,
    limit: (usize, usize),
) -> Result<TraceFilter, QueryError> {
    // Without a service, every service's spans are searched.
    let service = params.get("service").filter(|service| !service.is_empty());
    let cursor = cursor(params, TraceCursor::decode)?;
    // A cursor's window is the first page's: a sliding lookback would shift
    // traces across the pages.
    let (start_min, start_max) = match &cursor {
        Some(cursor) => (cursor.start_min, cursor.start_max),
        None => time_window(params, now_nanos)?,
    };
    let mut tags = json_tags(params, "tags")?;
    for tag in params.all("tag") {
        let (key, value) = tag
            .split_once(':')
            .ok_or_else(|| bad("tag", tag, "expected key:value"))?;
        tags.push((key.to_string(), value.to_string()));
    }
    let span_kind = params
        .get("spanKind")
        .map(|kind| {
            SpanKind::from_jaeger(kind).ok_or_else(|| {
                bad(
                    "spanKind",
                    kind,
                    "expected server, client, producer, consumer or internal",
                )
            })
        })
        .transpose()?;
    let filter = TraceFilter {
        service: service.map(str::to_string),
        operation: params
            .get("operation")
            .filter(|op| *op != "all")
            .map(str::to_string),
        span_kind,
        tags,
        start_min,
        start_max,
        duration_min: params.duration("minDuration")?.map(|d| d.as_nanos() as u64),
        duration_max: params.duration("maxDuration")?.map(|d| d.as_nanos() as u64),
        limit: params.limit(limit.0, limit.1)?,
        order: trace_order(params, cursor.as_ref())?,
        after: cursor,
        operation_pattern: params
            .get("operationPattern")
            .map(|id| {
                pattern::parse_id(id).ok_or_else(|| {
                    bad(
                        "operationPattern",
                        id,
                        "expected the id of a pattern of span names (16 hex digits)",
                    )
                })
            })
            .transpose()?,
        operations: Vec::new(),
    };
    if filter.operation.is_some() && filter.operation_pattern.is_some() {
        return Err(QueryError::BadRequest(
            "operation and operationPattern: search by one or the other".into(),
        ));
    }
    if let (Some(min), Some(max)) = (filter.duration_min, filter.duration_max) {
        if min > max {
            return Err(QueryError::BadRequest(
                "minDuration is greater than maxDuration".into(),
            ));
        }
    }
    Ok(filter)
}

/// `/api/logs/volume?<the log search's filters>&step=`: the search's filters, and
/// its range cut into empty buckets of `step` (a duration; default: the range in
/// about 60, rounded to a whole 1 s, 5 s, 10 s, 30 s, 1, 5, 10, 30 min, 1, 3, 6,
/// 12 h or days), aligned to the step.
pub fn log_volume(
    pairs: &[(String, String)],
    now_nanos: u64,
) -> Result<(LogFilter, LogVolume), QueryError> {
    let (steps, rest): (Vec<_>, Vec<_>) = pairs.iter().cloned().partition(|(key, _)| key == "step");
    let filter = log_search(&rest, now_nanos)?;
    let steps = Params::new(&steps, &["step"])?;
    let (first, step, points) = log_buckets(&steps, &filter, red::DEFAULT_POINTS)?;
    let buckets = red::buckets(points, 1, step)?;
    Ok((filter, LogVolume::new(first, step, buckets)))
}

/// The buckets of a log histogram over `filter`'s range: `step=` (a duration), or
/// the range in about `points` rounded to a nice step; the first bucket's start
/// (aligned to the step), the step, and how many buckets cover the range.
fn log_buckets(
    params: &Params<'_>,
    filter: &LogFilter,
    points: u64,
) -> Result<(u64, u64, u64), QueryError> {
    let span = filter.end.saturating_sub(filter.start).max(1);
    let step = match params.duration("step")? {
        Some(step) if step.is_zero() => return Err(bad("step", "0", "expected more than 0")),
        Some(step) => step.as_nanos().min(u128::from(u64::MAX)) as u64,
        None => red::nice_step(span.div_ceil(points)),
    };
    let first = filter.start - filter.start % step;
    Ok((first, step, (filter.end - first) / step + 1))
}

/// Patterns `/api/logs/patterns` lists by default, and at most.
pub const DEFAULT_PATTERNS: usize = 50;
pub const MAX_PATTERNS_LISTED: usize = 500;

/// Points of a pattern's sparkline, by default and at most (each of up to
/// 10,000 patterns counts its lines per bucket).
const PATTERN_POINTS: u64 = 30;
pub const MAX_PATTERN_BUCKETS: usize = 60;

/// `/api/logs/patterns?<the log search's filters>&limit=&step=`: the search's
/// filters, and the empty pattern count: its range in buckets of `step` (default:
/// about 30), compared with the range of the same length before it, `limit`
/// patterns listed (default [`DEFAULT_PATTERNS`], at most [`MAX_PATTERNS_LISTED`]).
pub fn log_patterns(
    pairs: &[(String, String)],
    now_nanos: u64,
) -> Result<(LogFilter, LogPatterns), QueryError> {
    const OWN: [&str; 2] = ["limit", "step"];
    let (own, rest): (Vec<_>, Vec<_>) = pairs
        .iter()
        .cloned()
        .partition(|(key, _)| OWN.contains(&key.as_str()));
    let filter = log_search(&rest, now_nanos)?;
    let params = Params::new(&own, &OWN)?;
    let limit = params.limit(DEFAULT_PATTERNS, MAX_PATTERNS_LISTED)?;
    let (first, step, buckets) = log_buckets(&params, &filter, PATTERN_POINTS)?;
    if buckets > MAX_PATTERN_BUCKETS as u64 {
        return Err(QueryError::BadRequest(format!(
            "step {:?} makes {buckets} buckets; at most {MAX_PATTERN_BUCKETS} for patterns: \
             a longer step or a shorter range",
            std::time::Duration::from_nanos(step)
        )));
    }
    let buckets = buckets as usize;
    // The range before, as long as this one; none before the epoch's first ns.
    let span = filter.end.saturating_sub(filter.start).max(1);
    let previous = match filter.start.checked_sub(1) {
        Some(previous_end) => (filter.start.saturating_sub(span + 1), previous_end),
        None => (1, 0),
    };
    let patterns = LogPatterns::new(first, step, buckets, previous, limit);
    Ok((filter, patterns))
}

/// `/api/analysis`: a trace search (its parameters, `limit` up to
/// [`MAX_ANALYSED_TRACES`]) and how to split its traces in two groups.
pub const ANALYSIS_PARAMS: &[&str] = &[
    "service",
    "operation",
    "tags",
    "tag",
    "start",
    "end",
    "lookback",
    "minDuration",
    "maxDuration",
    "spanKind",
    "limit",
    "group",
    "fastest",
    "slowest",
    "attribute",
    "a",
    "b",
    "baselineStart",
    "baselineEnd",
];

/// `/api/analysis?service=&operation=&...&group=duration|attribute|time&...`
pub fn analysis(pairs: &[(String, String)], now_nanos: u64) -> Result<AnalysisRequest, QueryError> {
    let params = Params::new(pairs, ANALYSIS_PARAMS)?;
    let filter = trace_filter(
        &params,
        now_nanos,
        (DEFAULT_ANALYSED_TRACES, MAX_ANALYSED_TRACES),
    )?;
    let percent = |key: &str, default: u32| -> Result<u32, QueryError> {
        match params.u64(key)? {
            None => Ok(default),
            Some(n @ 1..=50) => Ok(n as u32),
            Some(n) => Err(bad(
                key,
                &n.to_string(),
                "expected a percentage from 1 to 50",
            )),
        }
    };
    let grouping = match params.get("group").unwrap_or("duration") {
        "duration" => Grouping::Duration {
            fastest: percent("fastest", 50)?,
            slowest: percent("slowest", 5)?,
        },
        "attribute" => {
            let need = |key: &str| {
                params.get(key).map(str::to_string).ok_or_else(|| {
                    QueryError::BadRequest(format!(
                        "group=attribute needs '{key}': the attribute key and its two values \
                         (attribute=service.version&a=1.4&b=1.5)"
                    ))
                })
            };
            let (key, a, b) = (need("attribute")?, need("a")?, need("b")?);
            if a == b {
                return Err(bad("b", &b, "the two values to compare are the same"));
            }
            Grouping::Attribute { key, a, b }
        }
        "time" => {
            // The range before the search's, as long as it, unless given.
            let length = filter.start_max - filter.start_min;
            let start = params
                .u64("baselineStart")?
                .map(|us| us.saturating_mul(1000))
                .unwrap_or(filter.start_min.saturating_sub(length.saturating_add(1)));
            let end = params
                .u64("baselineEnd")?
                .map(|us| us.saturating_mul(1000))
                .unwrap_or(filter.start_min.saturating_sub(1));
            if start > end {
                return Err(QueryError::BadRequest(format!(
                    "baselineStart ({}µs) is after baselineEnd ({}µs)",
                    start / 1000,
                    end / 1000
                )));
            }
            Grouping::Baseline { start, end }
        }
        other => {
            return Err(bad(
                "group",
                other,
                "expected duration (the fastest against the slowest), attribute (two values \
                 of one attribute) or time (the range against a baseline range)",
            ))
        }
    };
    Ok(AnalysisRequest { filter, grouping })
}

/// api_v3 search parameters, each in the proto's snake_case and in the
/// camelCase the Jaeger UI sends (grpc-gateway takes both).
pub const V3_SEARCH_PARAMS: &[(&str, &str)] = &[
    ("query.service_name", "query.serviceName"),
    ("query.operation_name", "query.operationName"),
    ("query.attributes", "query.attributes"),
    ("query.start_time_min", "query.startTimeMin"),
    ("query.start_time_max", "query.startTimeMax"),
    ("query.duration_min", "query.durationMin"),
    ("query.duration_max", "query.durationMax"),
    ("query.num_traces", "query.numTraces"),
    ("query.search_depth", "query.searchDepth"),
    ("query.raw_traces", "query.rawTraces"),
];

/// `/api/v3/traces?query.service_name=&query.start_time_min=RFC3339&...` and
/// `/api/v3/trace-summaries` (where the service may be left out: all services).
pub fn v3_trace_search(
    pairs: &[(String, String)],
    now_nanos: u64,
    service_required: bool,
) -> Result<TraceFilter, QueryError> {
    let known: Vec<&str> = V3_SEARCH_PARAMS
        .iter()
        .flat_map(|(snake, camel)| [*snake, *camel])
        .collect();
    let params = Params::new(pairs, &known)?;
    // The name the caller used for a parameter (snake_case when neither).
    let key = |snake: &'static str| -> &'static str {
        V3_SEARCH_PARAMS
            .iter()
            .find(|(s, _)| *s == snake)
            .map(|&(s, camel)| {
                if params.get(s).is_none() && params.get(camel).is_some() {
                    camel
                } else {
                    s
                }
            })
            .unwrap_or(snake)
    };
    let service = params
        .get(key("query.service_name"))
        .filter(|service| !service.is_empty());
    if service.is_none() && service_required {
        return Err(QueryError::BadRequest(
            "parameter 'query.service_name' is required".into(),
        ));
    }
    let time = |key: &str| -> Result<Option<u64>, QueryError> {
        params
            .get(key)
            .map(|v| parse_rfc3339(v).map_err(|e| bad(key, v, &e)))
            .transpose()
    };
    let start_max = time(key("query.start_time_max"))?.unwrap_or(now_nanos);
    let start_min = time(key("query.start_time_min"))?
        .unwrap_or_else(|| start_max.saturating_sub(DEFAULT_LOOKBACK.as_nanos() as u64));
    if start_min > start_max {
        return Err(QueryError::BadRequest(format!(
            "{} is after {}",
            key("query.start_time_min"),
            key("query.start_time_max")
        )));
    }
    let tags = json_tags(&params, "query.attributes")?;
    let limit = match params
        .u64(key("query.search_depth"))?
        .or(params.u64(key("query.num_traces"))?)
    {
        None | Some(0) => DEFAULT_TRACE_LIMIT,
        Some(n) => (n as usize).min(MAX_TRACE_LIMIT),
    };
    let nanos = |d: Duration| d.as_nanos() as u64;
    let filter = TraceFilter {
        service: service.map(str::to_string),
        operation: params
            .get(key("query.operation_name"))
            .filter(|op| !op.is_empty())
            .map(str::to_string),
        span_kind: None,
        tags,
        start_min,
        start_max,
        duration_min: params.duration(key("query.duration_min"))?.map(nanos),
        duration_max: params.duration(key("query.duration_max"))?.map(nanos),
        limit,
        order: TraceOrder::Newest,
        ..TraceFilter::default()
    };
    if let (Some(min), Some(max)) = (filter.duration_min, filter.duration_max) {
        if min > max {
            return Err(QueryError::BadRequest(format!(
                "{} is greater than {}",
                key("query.duration_min"),
                key("query.duration_max")
            )));
        }
    }
    Ok(filter)
}

/// `/api/logs/context?service=&instance=&time=&before=&after=`: the lines of one
/// service (instance) around `time` (ns, as a line's `timeUnixNano`).
pub fn log_context(pairs: &[(String, String)]) -> Result<ContextRequest, QueryError> {
    let params = Params::new(pairs, &["service", "instance", "time", "before", "after"])?;
    let service = params
        .get("service")
        .ok_or_else(|| QueryError::BadRequest("parameter 'service' is required".into()))?;
    let time = params
        .u64("time")?
        .ok_or_else(|| QueryError::BadRequest("parameter 'time' (ns) is required".into()))?;
    let lines = |key: &str| -> Result<usize, QueryError> {
        match params.u64(key)? {
            None => Ok(DEFAULT_CONTEXT_LINES),
            Some(n) if n as usize <= MAX_CONTEXT_LINES => Ok(n as usize),
            Some(n) => Err(bad(
                key,
                &n.to_string(),
                &format!("at most {MAX_CONTEXT_LINES} lines each side"),
            )),
        }
    };
    Ok(ContextRequest {
        service: service.to_string(),
        instance: params.get("instance").map(str::to_string),
        time,
        before: lines("before")?,
        after: lines("after")?,
    })
}

pub const LOG_SEARCH_PARAMS: &[&str] = &[
    "query",
    "service",
    "traceID",
    "spanID",
    "minSeverity",
    "start",
    "end",
    "lookback",
    "limit",
    "offset",
    "cursor",
];

/// How far back log pages go by `offset`: `offset` + `limit` at most (a `cursor`
/// goes on to the end).
pub const MAX_LOG_DEPTH: usize = 10_000;

/// `/api/logs?query=&service=&traceID=&spanID=&minSeverity=&start=&end=&limit=`
pub fn log_search(pairs: &[(String, String)], now_nanos: u64) -> Result<LogFilter, QueryError> {
    let params = Params::new(pairs, LOG_SEARCH_PARAMS)?;
    let expr = match params.get("query") {
        Some(query) => logql::parse(query).map_err(|e| QueryError::BadRequest(e.to_string()))?,
        None => None,
    };
    let min_severity = params
        .get("minSeverity")
        .map(|text| {
            text.parse::<i32>()
                .ok()
                .filter(|n| (0..=24).contains(n))
                .or_else(|| severity_number_of(text))
                .ok_or_else(|| {
                    bad(
                        "minSeverity",
                        text,
                        "expected 1-24 or trace, debug, info, warn, error, fatal",
                    )
                })
        })
        .transpose()?;
    let (start, end) = time_window(&params, now_nanos)?;
    let limit = params.limit(DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT)?;
    let offset = params.u64("offset")?.unwrap_or(0) as usize;
    if offset.saturating_add(limit) > MAX_LOG_DEPTH {
        return Err(QueryError::BadRequest(format!(
            "offset {offset} with limit {limit} goes past the {MAX_LOG_DEPTH} newest matching lines \
             a search pages through by offset: page with the cursor each page returns"
        )));
    }
    let after = cursor(&params, LogCursor::decode)?;
    if after.is_some() && offset > 0 {
        return Err(QueryError::BadRequest(
            "cursor and offset: page by one or the other".into(),
        ));
    }
    Ok(LogFilter {
        expr,
        service: params.get("service").map(str::to_string),
        trace_id: params.get("traceID").map(parse_trace_id).transpose()?,
        span_id: params.get("spanID").map(parse_span_id).transpose()?,
        min_severity,
        start,
        end,
        limit,
        offset,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NOW: u64 = 1_700_000_000_000_000_000;

    #[test]
    fn trace_search_reads_jaeger_ui_parameters() {
        let query = pairs(&[
            ("service", "gateway"),
            ("operation", "GET /api/orders"),
            (
                "tags",
                r#"{"http.response.status_code":"500","error":true}"#,
            ),
            ("tag", "region:eu"),
            ("minDuration", "150ms"),
            ("maxDuration", "1.5s"),
            ("lookback", "1h"),
            ("limit", "5"),
        ]);
        let TraceSearch::Filter(filter) = trace_search(&query, NOW).expect("valid") else {
            panic!("filter")
        };
        assert_eq!(filter.service.as_deref(), Some("gateway"));
        assert_eq!(
            filter.tags,
            vec![
                // A JSON object's keys come in sorted order.
                ("error".into(), "true".into()),
                ("http.response.status_code".into(), "500".into()),
                ("region".into(), "eu".into()),
            ]
        );
        assert_eq!(filter.duration_min, Some(150_000_000));
        assert_eq!(filter.duration_max, Some(1_500_000_000));
        assert_eq!(filter.start_max - filter.start_min, 3600 * 1_000_000_000);
        assert_eq!(filter.limit, 5);
        assert_eq!(filter.order, TraceOrder::Newest);
    }

    #[test]
    fn trace_search_takes_any_service_and_an_order() {
        let Ok(TraceSearch::Filter(filter)) = trace_search(
            &pairs(&[("tags", r#"{"error":"true"}"#), ("sort", "duration")]),
            NOW,
        ) else {
            panic!("not a filter");
        };
        assert_eq!(filter.service, None);
        assert_eq!(filter.order, TraceOrder::Longest);
        for (word, order) in [
            ("recent", TraceOrder::Newest),
            ("oldest", TraceOrder::Oldest),
            ("LONGEST_FIRST", TraceOrder::Longest),
            ("shortest", TraceOrder::Shortest),
            ("spans", TraceOrder::MostSpans),
            ("errors", TraceOrder::MostErrors),
        ] {
            let Ok(TraceSearch::Filter(filter)) =
                trace_search(&pairs(&[("service", "a"), ("sort", word)]), NOW)
            else {
                panic!("not a filter");
            };
            assert_eq!(filter.order, order, "{word}");
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (
                &[("service", "a"), ("serivce", "b")],
                "unknown query parameter 'serivce'",
            ),
            (
                &[("operation", "x"), ("sort", "loudest")],
                "invalid sort 'loudest'",
            ),
            (
                &[("service", "a"), ("minDuration", "fast")],
                "invalid minDuration 'fast'",
            ),
            (&[("service", "a"), ("tags", "{oops")], "invalid tags"),
            (
                &[("service", "a"), ("start", "20"), ("end", "10")],
                "is after end",
            ),
            (&[("traceID", "xyz")], "malformed trace id 'xyz'"),
        ];
        for (query, message) in cases {
            let error = trace_search(&pairs(query), NOW)
                .expect_err(message)
                .to_string();
            assert!(error.contains(message), "{error}");
        }
    }

    #[test]
    fn log_search_takes_severity_names_or_numbers() {
        let filter = log_search(
            &pairs(&[("minSeverity", "warn"), ("query", "timeout")]),
            NOW,
        )
        .expect("valid");
        assert_eq!(filter.min_severity, Some(13));
        assert!(filter.expr.is_some());
        let filter = log_search(&pairs(&[("minSeverity", "17")]), NOW).expect("valid");
        assert_eq!(filter.min_severity, Some(17));
        let error = log_search(&pairs(&[("query", "(oops")]), NOW)
            .expect_err("malformed")
            .to_string();
        assert!(error.contains("column 6"), "{error}");
    }

    #[test]
    fn rfc3339_times_parse_with_fractions_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Ok(1_000_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.5Z"),
            Ok(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Ok(1_700_000_000_000_000_000)
        );
        assert!(parse_rfc3339("yesterday").is_err());
        // A multi-byte character where the offset's digits go is an error, not a
        // panic at a byte that is no character boundary.
        assert!(parse_rfc3339("2023-11-15T00:13:20+0\u{e9}00").is_err());
        assert!(parse_rfc3339("2023-11-15T00:13:20+\u{e9}:00").is_err());
    }
}
