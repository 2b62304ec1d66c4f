//! Loki's query API, enough for Grafana's Loki data source and `logcli`:
//! `/loki/api/v1/labels`, `/label/{name}/values`, `/series`, `/query_range`,
//! `/query` and `/status/buildinfo`, with the LogQL subset of
//! [`crate::query::loki`]. Answers have Loki's shapes (`{"status":"success",
//! "data":...}`); a query that cannot be parsed, or asks for what is not
//! supported, is a 400 with Loki's plain-text message.
//!
//! Records are read from the tenant's [`QueryService`](crate::query::service::QueryService)
//! newest first, narrowed by `service_name="..."` when the selector has it, and
//! matched here: a query reads at most [`SCAN_LIMIT`] records (label and series
//! questions [`LABEL_SAMPLE`]), and says so in a `warnings` entry when it stopped
//! there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Tenant;
use super::traces::pairs;
use super::{ApiError, ApiState};
use crate::model::{parse_rfc3339, LogRecord};
use crate::query::loki::{
    self, AggregationOp, LogQuery, MetricQuery, Query as LokiQuery, RangeFunction,
};
use crate::store::search::LogFilter;

/// Records a query reads at most.
pub(super) const SCAN_LIMIT: usize = 100_000;
/// Records a label or series question reads at most (the newest).
pub(super) const LABEL_SAMPLE: usize = 5_000;
/// The most lines a log query returns.
pub(super) const MAX_LIMIT: usize = 5_000;
/// Points a metric query returns per series at most.
const MAX_POINTS: u64 = 11_000;
/// Series a metric query returns at most (Loki's `max_query_series`).
pub(super) const MAX_SERIES: usize = 500;
/// Points a metric query returns at most, over all its series.
pub(super) const MAX_SAMPLES: usize = 1_000_000;
const PAGE: usize = 1_000;

type LokiResult = Result<Response, LokiError>;

/// A refused question: a 400 in Loki's plain text, or the query API's error.
#[derive(Debug)]
pub(super) enum LokiError {
    BadRequest(String),
    Api(ApiError),
}

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        match self {
            LokiError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{message}\n"),
            )
                .into_response(),
            LokiError::Api(error) => error.into_response(),
        }
    }
}
/// A request's query parameters, in order.
type Params = Vec<(String, String)>;

fn bad_request(message: impl std::fmt::Display) -> LokiError {
    LokiError::BadRequest(message.to_string())
}

fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

fn param<'a>(pairs: &'a Params, name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// A time as Loki takes one: nanoseconds (or seconds, up to ten digits), a
/// fractional number of seconds, or RFC 3339.
fn time(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid time '{text}': expected nanoseconds since the epoch, seconds, or RFC 3339")
    };
    if text.contains('T') {
        return parse_rfc3339(text).map_err(|_| bad());
    }
    if text.contains('.') {
        let seconds: f64 = text.parse().map_err(|_| bad())?;
        return if seconds.is_finite() && seconds >= 0.0 {
            Ok((seconds * 1e9) as u64)
        } else {
            Err(bad())
        };
    }
    let number: u64 = text.parse().map_err(|_| bad())?;
    Ok(if text.len() <= 10 {
        number.saturating_mul(1_000_000_000)
    } else {
        number
    })
}

/// A step: a duration (`15s`) or seconds.
fn step(text: &str) -> Result<u64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds > 0.0 {
            return Ok((seconds * 1e9) as u64);
        }
    }
    crate::config::parse_duration(text)
        .map(|d| d.as_nanos() as u64)
        .ok()
        .filter(|step| *step > 0)
        .ok_or_else(|| {
            format!("invalid step '{text}': expected a duration such as 15s, or seconds")
        })
}

/// `start` and `end` (default: the hour up to now), checked.
fn window(pairs: &Params, now: u64, lookback: u64) -> Result<(u64, u64), LokiError> {
    let end = param(pairs, "end")
        .map(time)
        .transpose()
        .map_err(bad_request)?
        .unwrap_or(now);
    let start = param(pairs, "start")
        .map(time)
        .transpose()
        .map_err(bad_request)?
        .unwrap_or(end.saturating_sub(lookback));
    if start > end {
        return Err(bad_request("the start of the range is after its end"));
    }
    Ok((start, end))
}

fn parse_query(text: Option<&str>) -> Result<LokiQuery, LokiError> {
    let text = text.ok_or_else(|| bad_request("query is required"))?;
    loki::parse(text).map_err(bad_request)
}

/// Why a scan stopped before the end of its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// It read its cap of records.
    Cap(usize),
    /// It ran past `--query-timeout`, counted over all its pages.
    Time,
}

/// Reads the tenant's records of `[start, end]` newest first, `service` only when
/// given, handing each to `visit` until it returns false, `cap` were read or
/// `--query-timeout` passed (each page is bounded by it too); says where it
/// stopped short.
async fn scan(
    state: &ApiState,
    service: Option<&str>,
    (start, end): (u64, u64),
    cap: usize,
    mut visit: impl FnMut(&LogRecord) -> bool,
) -> Result<Option<Cut>, LokiError> {
    let deadline = Instant::now() + state.queries.timeout();
    let mut filter = LogFilter {
        service: service.map(str::to_string),
        start,
        end,
        limit: PAGE,
        ..LogFilter::default()
    };
    let mut read = 0;
    loop {
        let page = state
            .queries
            .search_logs(filter.clone())
            .await
            .map_err(|e| LokiError::Api(e.into()))?;
        for record in &page.records {
            read += 1;
            if !visit(record) {
                return Ok(None);
            }
            if read >= cap {
                return Ok(Some(Cut::Cap(cap)));
            }
        }
        match page.next {
            Some(next) if !page.records.is_empty() => filter.after = Some(next),
            _ => return Ok(None),
        }
        if Instant::now() >= deadline {
            return Ok(Some(Cut::Time));
        }
    }
}

fn warnings(cut: Option<Cut>) -> Value {
    match cut {
        None => Value::Null,
        Some(Cut::Cap(cap)) => json!([format!(
            "Hopline read the newest {cap} records of the range and stopped there: narrow the selector or the range"
        )]),
        Some(Cut::Time) => json!([
            "Hopline ran out of time (--query-timeout) and answers from the newest records it read: narrow the selector or the range"
        ]),
    }
}

/// The label sets of the range's streams (of its newest [`LABEL_SAMPLE`]
/// records) that any of `selectors` takes, or all when there are none.
async fn streams(
    state: &ApiState,
    pairs: &Params,
    selectors: &[LogQuery],
) -> Result<BTreeSet<BTreeMap<String, String>>, LokiError> {
    let window = window(pairs, state.now(), 6 * 3600 * 1_000_000_000)?;
    let service = match selectors {
        [only] => only.service(),
        _ => None,
    };
    let mut found = BTreeSet::new();
    scan(state, service, window, LABEL_SAMPLE, |record| {
        let labels = loki::stream_labels(record);
        if selectors.is_empty() || selectors.iter().any(|s| s.selects(&labels)) {
            found.insert(labels);
        }
        true
    })
    .await?;
    Ok(found)
}

/// The optional `query` selector of the label questions.
fn selector(pairs: &Params) -> Result<Vec<LogQuery>, LokiError> {
    param(pairs, "query").map(log_query).into_iter().collect()
}

/// `GET /loki/api/v1/labels`: the label names of the range's streams.
pub(super) async fn labels(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> LokiResult {
    let pairs = pairs(query).map_err(LokiError::Api)?;
    let found = streams(&state, &pairs, &selector(&pairs)?).await?;
    let names: BTreeSet<&String> = found.iter().flat_map(BTreeMap::keys).collect();
    Ok(success(json!(names)))
}

/// `GET /loki/api/v1/label/{name}/values`.
pub(super) async fn label_values(
    Tenant(state): Tenant,
    Path(name): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> LokiResult {
    let pairs = pairs(query).map_err(LokiError::Api)?;
    let found = streams(&state, &pairs, &selector(&pairs)?).await?;
    let values: BTreeSet<&String> = found
        .iter()
        .filter_map(|labels| labels.get(&name))
        .collect();
    Ok(success(json!(values)))
}

/// `GET /loki/api/v1/series?match[]=...`: the label sets of the streams the
/// selectors take.
pub(super) async fn series(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> LokiResult {
    let pairs = pairs(query).map_err(LokiError::Api)?;
    let selectors = pairs
        .iter()
        .filter(|(key, _)| key == "match[]" || key == "match")
        .map(|(_, text)| log_query(text))
        .collect::<Result<Vec<_>, _>>()?;
    if selectors.is_empty() {
        return Err(bad_request(
            "match[] is required: a stream selector such as {service_name=\"checkout\"}",
        ));
    }
    Ok(success(json!(streams(&state, &pairs, &selectors).await?)))
}

fn log_query(text: &str) -> Result<LogQuery, LokiError> {
    match loki::parse(text).map_err(bad_request)? {
        LokiQuery::Log(query) => Ok(query),
        LokiQuery::Metric(_) | LokiQuery::Constant(_) => Err(bad_request(
            "a stream selector is expected here, not a metric query",
        )),
    }
}

/// `GET /loki/api/v1/query_range`.
pub(super) async fn query_range(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> LokiResult {
    let pairs = pairs(query).map_err(LokiError::Api)?;
    let parsed = parse_query(param(&pairs, "query"))?;
    let (start, end) = window(&pairs, state.now(), 3600 * 1_000_000_000)?;
    if let LokiQuery::Log(query) = &parsed {
        return log_lines(&state, &pairs, query, (start, end)).await;
    }
    let default_step = ((end - start) / 250).max(1_000_000_000);
    let step = param(&pairs, "step")
        .map(step)
        .transpose()
        .map_err(bad_request)?
        .unwrap_or(default_step);
    if (end - start) / step > MAX_POINTS {
        return Err(bad_request(format!(
            "exceeded maximum resolution of {MAX_POINTS} points per series: use a larger step"
        )));
    }
    let steps: Vec<u64> = (0..=(end - start) / step)
        .map(|i| start + i * step)
        .collect();
    match parsed {
        LokiQuery::Log(_) => Err(bad_request("a log query has no steps")),
        LokiQuery::Constant(value) => {
            let values: Vec<Value> = steps
                .iter()
                .map(|t| json!([seconds(*t), number(value)]))
                .collect();
            Ok(success(json!({
                "resultType": "matrix",
                "result": [{"metric": {}, "values": values}],
                "stats": {},
            })))
        }
        LokiQuery::Metric(query) => {
            let (series, cut) = metric(&state, &query, &steps).await?;
            let result: Vec<Value> = series
                .into_iter()
                .map(|(labels, points)| {
                    let values: Vec<Value> = points
                        .into_iter()
                        .map(|(t, v)| json!([seconds(t), number(v)]))
                        .collect();
                    json!({"metric": labels, "values": values})
                })
                .collect();
            Ok(success(json!({
                "resultType": "matrix",
                "result": result,
                "stats": {},
                "warnings": warnings(cut),
            })))
        }
    }
}

/// `GET /loki/api/v1/query`: a metric query at one time (`time`, default now),
/// or a log query over the hour before it.
pub(super) async fn query(
    Tenant(state): Tenant,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> LokiResult {
    let pairs = pairs(query).map_err(LokiError::Api)?;
    let parsed = parse_query(param(&pairs, "query"))?;
    let at = param(&pairs, "time")
        .map(time)
        .transpose()
        .map_err(bad_request)?
        .unwrap_or(state.now());
    match parsed {
        LokiQuery::Log(query) => {
            log_lines(
                &state,
                &pairs,
                &query,
                (at.saturating_sub(3600 * 1_000_000_000), at),
            )
            .await
        }
        LokiQuery::Constant(value) => Ok(success(json!({
            "resultType": "vector",
            "result": [{"metric": {}, "value": [seconds(at), number(value)]}],
            "stats": {},
        }))),
        LokiQuery::Metric(query) => {
            let (series, cut) = metric(&state, &query, &[at]).await?;
            let result: Vec<Value> = series
                .into_iter()
                .filter_map(|(labels, points)| {
                    let (t, v) = points.into_iter().next()?;
                    Some(json!({"metric": labels, "value": [seconds(t), number(v)]}))
                })
                .collect();
            Ok(success(json!({
                "resultType": "vector",
                "result": result,
                "stats": {},
                "warnings": warnings(cut),
            })))
        }
    }
}

/// A step's time as Loki gives it: seconds since the epoch, to the millisecond.
fn seconds(nanos: u64) -> f64 {
    (nanos / 1_000_000) as f64 / 1e3
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The lines of a log query, in streams: the newest `limit` (`direction=backward`,
/// the default) or the oldest (`forward`).
async fn log_lines(
    state: &ApiState,
    pairs: &Params,
    query: &LogQuery,
    window: (u64, u64),
) -> LokiResult {
    let started = Instant::now();
    let limit = match param(pairs, "limit") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| *limit > 0)
            .ok_or_else(|| bad_request(format!("invalid limit '{text}'")))?
            .min(MAX_LIMIT),
        None => 100,
    };
    let forward = match param(pairs, "direction") {
        None => false,
        // Grafana's "scan" reads as backward does here.
        Some(d) if d.eq_ignore_ascii_case("backward") || d.eq_ignore_ascii_case("scan") => false,
        Some(d) if d.eq_ignore_ascii_case("forward") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "invalid direction '{other}': backward or forward"
            )))
        }
    };
    let mut lines: Vec<(BTreeMap<String, String>, u64, String)> = Vec::new();
    let cut = scan(state, query.service(), window, SCAN_LIMIT, |record| {
        if let Some(mut labels) = query.evaluate(record) {
            // As Loki gives structured metadata with a line: Grafana's derived
            // fields link a line to its trace by this label.
            if let Some(trace_id) = record.trace_id {
                labels.insert("trace_id".into(), trace_id.to_hex());
            }
            lines.push((
                labels,
                record.time_unix_nano,
                record.body_text().into_owned(),
            ));
            // Newest first: backward stops at the limit; forward reads on.
            if !forward && lines.len() >= limit {
                return false;
            }
        }
        true
    })
    .await?;
    if forward {
        lines.reverse();
        lines.truncate(limit);
    }
    let returned = lines.len();
    let mut streams: BTreeMap<BTreeMap<String, String>, Vec<Value>> = BTreeMap::new();
    for (labels, time, line) in lines {
        streams
            .entry(labels)
            .or_default()
            .push(json!([time.to_string(), line]));
    }
    let result: Vec<Value> = streams
        .into_iter()
        .map(|(stream, values)| json!({"stream": stream, "values": values}))
        .collect();
    Ok(success(json!({
        "resultType": "streams",
        "result": result,
        "stats": {"summary": {
            "totalEntriesReturned": returned,
            "execTime": started.elapsed().as_secs_f64(),
        }},
        "warnings": warnings(cut),
    })))
}

/// A metric query's answer: each series' labels and its points (time, value).
type Series = Vec<(BTreeMap<String, String>, Vec<(u64, f64)>)>;

/// One series' value at one step, folded over the streams of its group.
#[derive(Debug, Clone, Copy)]
struct Fold {
    sum: f64,
    count: u32,
    min: f64,
    max: f64,
}

impl Fold {
    const EMPTY: Fold = Fold {
        sum: 0.0,
        count: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn value(&self, op: Option<AggregationOp>) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        Some(match op {
            None | Some(AggregationOp::Sum) => self.sum,
            Some(AggregationOp::Count) => f64::from(self.count),
            Some(AggregationOp::Min) => self.min,
            Some(AggregationOp::Max) => self.max,
            Some(AggregationOp::Avg) => self.sum / f64::from(self.count),
        })
    }
}

/// A metric query's series at `steps`: per step, the records of the range
/// before it (`(t - range, t]`) counted, or their rate per second, per stream,
/// then folded into the aggregation's groups. At most [`MAX_SERIES`] series and
/// [`MAX_SAMPLES`] points in all, as Loki bounds a query's series.
async fn metric(
    state: &ApiState,
    query: &MetricQuery,
    steps: &[u64],
) -> Result<(Series, Option<Cut>), LokiError> {
    let range = u64::try_from(query.range.as_nanos()).unwrap_or(u64::MAX);
    let (first, last) = (
        steps.first().copied().unwrap_or(0),
        steps.last().copied().unwrap_or(0),
    );
    let window = (first.saturating_sub(range).saturating_add(1), last);
    // Each stream's record times (at most SCAN_LIMIT in all).
    let mut streams: BTreeMap<BTreeMap<String, String>, Vec<u64>> = BTreeMap::new();
    let cut = scan(state, query.query.service(), window, SCAN_LIMIT, |record| {
        if let Some(labels) = query.query.evaluate(record) {
            streams
                .entry(labels)
                .or_default()
                .push(record.time_unix_nano);
        }
        true
    })
    .await?;
    let op = query.aggregation.as_ref().map(|a| a.op);
    // Each stream's series: its own labels, or its group's.
    let streams: Vec<(BTreeMap<String, String>, Vec<u64>)> = streams
        .into_iter()
        .map(|(labels, times)| match &query.aggregation {
            Some(aggregation) => (aggregation.grouping.apply(&labels), times),
            None => (labels, times),
        })
        .collect();
    let mut index: BTreeMap<&BTreeMap<String, String>, usize> = BTreeMap::new();
    for (labels, _) in &streams {
        let next = index.len();
        index.entry(labels).or_insert(next);
    }
    if index.len() > MAX_SERIES {
        return Err(bad_request(format!(
            "maximum of series ({MAX_SERIES}) reached for a single query: {} series; group by fewer labels or narrow the selector",
            index.len()
        )));
    }
    if index.len().saturating_mul(steps.len()) > MAX_SAMPLES {
        return Err(bad_request(format!(
            "the query would return {} series of {} points, more than {MAX_SAMPLES} points in all: use a larger step or fewer series",
            index.len(),
            steps.len()
        )));
    }
    let seconds = Duration::from_nanos(range).as_secs_f64();
    let mut folds = vec![vec![Fold::EMPTY; steps.len()]; index.len()];
    for (labels, times) in &streams {
        let folds = &mut folds[index[labels]];
        let mut times = times.clone();
        times.sort_unstable();
        for (at, &t) in steps.iter().enumerate() {
            let from = times.partition_point(|&time| time <= t.saturating_sub(range));
            let to = times.partition_point(|&time| time <= t);
            if to > from {
                let count = (to - from) as f64;
                folds[at].add(match query.function {
                    RangeFunction::CountOverTime => count,
                    RangeFunction::Rate => count / seconds,
                });
            }
        }
    }
    let mut series: Series = index
        .into_iter()
        .map(|(labels, at)| {
            let points = steps
                .iter()
                .zip(&folds[at])
                .filter_map(|(&t, fold)| Some((t, fold.value(op)?)))
                .collect();
            (labels.clone(), points)
        })
        .collect();
    series.retain(|(_, points): &(_, Vec<_>)| !points.is_empty());
    Ok((series, cut))
}

/// `GET /loki/api/v1/index/stats`: Grafana's query editor asks it for the size of
/// a query; Hopline keeps no such index, and says nothing is known.
pub(super) async fn index_stats() -> Response {
    Json(json!({"streams": 0, "chunks": 0, "bytes": 0, "entries": 0})).into_response()
}

/// `GET /loki/api/v1/status/buildinfo`: what Grafana asks to learn the version.
pub(super) async fn buildinfo() -> Response {
    Json(json!({
        "version": "3.4.0",
        "revision": "hopline",
        "branch": "hopline",
        "buildUser": "hopline",
        "buildDate": "",
        "goVersion": ""
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_come_as_nanoseconds_seconds_or_rfc3339() {
        assert_eq!(time("1700000000"), Ok(1_700_000_000_000_000_000));
        assert_eq!(time("1700000000000000000"), Ok(1_700_000_000_000_000_000));
        assert_eq!(time("1700000000.5"), Ok(1_700_000_000_500_000_000));
        assert_eq!(time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000_000_000));
        assert!(time("soon").is_err());
        assert_eq!(step("15s"), Ok(15_000_000_000));
        assert_eq!(step("60"), Ok(60_000_000_000));
        assert!(step("0").is_err());
    }
}
