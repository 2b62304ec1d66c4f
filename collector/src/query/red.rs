//! Service health (RED) questions and answers: Jaeger's SPM endpoints
//! (`/api/metrics/{calls,errors,latencies}`, as the Jaeger UI's Monitor tab sends
//! them) and Hopline's own `/api/service-metrics`, all three figures at once.
//! Both are cut from the same [`SpanMetrics`] buckets.

use std::time::Duration;

use serde_json::{json, Value};

use super::params::{self, Params};
use super::{rfc3339, QueryError};
use crate::model::SpanKind;
use crate::store::red::{Cell, MetricsQuery, Series, SpanMetrics, MAX_BUCKETS};

/// Which of Jaeger's three metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JaegerMetric {
    Calls,
    Errors,
    /// The quantile (0..=1).
    Latencies(f64),
}

/// A Jaeger SPM question: a point every `step` from `end - lookback` to `end`,
/// each over the `window` buckets (of `step`) that end at it (`ratePer`).
#[derive(Debug, Clone, PartialEq)]
pub struct JaegerMetricsRequest {
    pub query: MetricsQuery,
    pub metric: JaegerMetric,
    pub window: usize,
}

pub const JAEGER_METRICS_PARAMS: &[&str] = &[
    "service",
    "groupByOperation",
    "quantile",
    "endTs",
    "lookback",
    "step",
    "ratePer",
    "spanKind",
];

fn bad(key: &str, value: &str, why: &str) -> QueryError {
    QueryError::BadRequest(format!("invalid {key} '{value}': {why}"))
}

fn millis(params: &Params<'_>, key: &str, default: u64) -> Result<u64, QueryError> {
    let ms = params.u64(key)?.unwrap_or(default);
    Ok(ms.saturating_mul(1_000_000))
}

fn span_kinds(params: &Params<'_>, key: &str) -> Result<Vec<SpanKind>, QueryError> {
    params
        .all(key)
        .map(|kind| {
            SpanKind::from_jaeger(kind.trim_start_matches("SPAN_KIND_"))
                .filter(|kind| *kind != SpanKind::Unspecified)
                .ok_or_else(|| {
                    bad(
                        key,
                        kind,
                        "expected server, client, producer, consumer or internal",
                    )
                })
        })
        .collect()
}

fn boolean(params: &Params<'_>, key: &str) -> Result<bool, QueryError> {
    match params.get(key) {
        None => Ok(false),
        Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(true),
        Some("false" | "0" | "f" | "F" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(bad(key, other, "expected true or false")),
    }
}

/// How many buckets of `step` `points` points over `window` buckets each need,
/// or why that is too many.
pub(super) fn buckets(points: u64, window: u64, step: u64) -> Result<usize, QueryError> {
    let buckets = points.saturating_add(window).saturating_sub(1);
    if buckets > MAX_BUCKETS as u64 {
        return Err(QueryError::BadRequest(format!(
            "{points} points of step {} over windows of {} make {buckets} buckets; at most \
             {MAX_BUCKETS}: a longer step or a shorter lookback",
            show(step),
            show(step.saturating_mul(window)),
        )));
    }
    Ok(buckets as usize)
}

fn show(nanos: u64) -> String {
    format!("{:?}", Duration::from_nanos(nanos))
}

/// `/api/metrics/{calls,errors,latencies}?service=&endTs=&lookback=&step=&ratePer=&spanKind=&quantile=&groupByOperation=`
/// (times in ms, as Jaeger takes them; defaults: now, 1 h, 5 s, 10 min, server).
pub fn jaeger_metrics(
    pairs: &[(String, String)],
    which: &str,
    now_nanos: u64,
) -> Result<JaegerMetricsRequest, QueryError> {
    let params = Params::new(pairs, JAEGER_METRICS_PARAMS)?;
    let services: Vec<String> = params.all("service").map(str::to_string).collect();
    if services.is_empty() {
        return Err(QueryError::BadRequest(
            "parameter 'service' is required (at least one)".into(),
        ));
    }
    let metric = match which {
        "calls" => JaegerMetric::Calls,
        "errors" => JaegerMetric::Errors,
        "latencies" => {
            let text = params.get("quantile").ok_or_else(|| {
                QueryError::BadRequest("parameter 'quantile' is required (e.g. 0.95)".into())
            })?;
            let q: f64 = text
                .parse()
                .ok()
                .filter(|q: &f64| (0.0..=1.0).contains(q))
                .ok_or_else(|| bad("quantile", text, "expected a number from 0 to 1"))?;
            JaegerMetric::Latencies(q)
        }
        other => {
            return Err(QueryError::NotFound(format!(
                "no metric '{other}': calls, errors or latencies"
            )))
        }
    };
    if let Some(text) = params.get("quantile") {
        // Sent with every metric by the Jaeger UI; checked even where unused.
        text.parse::<f64>()
            .map_err(|_| bad("quantile", text, "expected a number from 0 to 1"))?;
    }
    let end = params
        .u64("endTs")?
        .map_or(now_nanos, |ms| ms.saturating_mul(1_000_000));
    let lookback = millis(&params, "lookback", 3_600_000)?;
    let step = millis(&params, "step", 5_000)?;
    let rate_per = millis(&params, "ratePer", 600_000)?;
    if step == 0 {
        return Err(bad("step", "0", "expected at least 1 ms"));
    }
    let window = rate_per.div_ceil(step).max(1);
    let points = lookback / step + 1;
    let buckets = buckets(points, window, step)?;
    let first_point = end.saturating_sub(lookback);
    let mut kinds = span_kinds(&params, "spanKind")?;
    if kinds.is_empty() {
        kinds.push(SpanKind::Server);
    }
    Ok(JaegerMetricsRequest {
        query: MetricsQuery {
            services,
            kinds,
            by_operation: boolean(&params, "groupByOperation")?,
            start: first_point.saturating_sub(window.saturating_mul(step)),
            step,
            buckets,
        },
        metric,
        window: window as usize,
    })
}

/// The cells of `series` summed over each run of `window` buckets: one per
/// point, the first covering buckets `0..window`.
fn windows(series: &Series, window: usize) -> Vec<Cell> {
    series
        .cells
        .windows(window.max(1))
        .map(|run| {
            let mut sum = Cell::default();
            for cell in run {
                sum.merge(cell);
            }
            sum
        })
        .collect()
}

/// A figure as Jaeger's JSON writes a double: `"NaN"` where there is none
/// (the Jaeger UI draws a gap there).
fn gauge(value: Option<f64>) -> Value {
    match value {
        Some(v) if v.is_finite() => json!({ "doubleValue": v }),
        _ => json!({ "doubleValue": "NaN" }),
    }
}

/// Jaeger's `MetricFamily` for `request`, from what the store counted.
pub fn jaeger_family(request: &JaegerMetricsRequest, metrics: &SpanMetrics) -> Value {
    let grouped = request.query.by_operation;
    let scope = if grouped {
        "service_operation"
    } else {
        "service"
    };
    let by = if grouped {
        "grouped by service & operation"
    } else {
        "grouped by service"
    };
    let (name, help) = match request.metric {
        JaegerMetric::Calls => (format!("{scope}_call_rate"), format!("calls/sec, {by}")),
        JaegerMetric::Errors => (
            format!("{scope}_error_rate"),
            format!("error rate, computed as a fraction of errors/sec over calls/sec, {by}"),
        ),
        JaegerMetric::Latencies(q) => (
            format!("{scope}_latencies"),
            format!("{q}th quantile latency, {by}"),
        ),
    };
    let step = request.query.step;
    let seconds = step.saturating_mul(request.window as u64) as f64 / 1e9;
    let window_end = |i: usize| {
        request
            .query
            .start
            .saturating_add(step.saturating_mul((i + request.window) as u64))
    };
    let families: Vec<Value> = metrics
        .series
        .iter()
        .map(|series| {
            let mut labels = vec![json!({ "name": "service_name", "value": series.service })];
            if let Some(operation) = &series.operation {
                labels.push(json!({ "name": "operation", "value": operation }));
            }
            let points: Vec<Value> = windows(series, request.window)
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let value = match request.metric {
                        JaegerMetric::Calls => Some(cell.calls as f64 / seconds),
                        JaegerMetric::Errors => {
                            (cell.calls > 0).then(|| cell.errors as f64 / cell.calls as f64)
                        }
                        JaegerMetric::Latencies(q) => {
                            cell.latencies.quantile(q).map(|ns| ns as f64 / 1e6)
                        }
                    };
                    json!({ "gaugeValue": gauge(value), "timestamp": rfc3339(window_end(i)) })
                })
                .collect();
            json!({ "labels": labels, "metricPoints": points })
        })
        .collect();
    json!({ "name": name, "type": "GAUGE", "help": help, "metrics": families })
}

/// Hopline's own question: requests, errors and p50/p95/p99 per service (or per
/// operation of the services given), in buckets of `step`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedRequest {
    pub query: MetricsQuery,
    /// Only this operation's series (with `service`).
    pub operation: Option<String>,
}

pub const RED_PARAMS: &[&str] = &[
    "service",
    "operation",
    "groupByOperation",
    "spanKind",
    "start",
    "end",
    "lookback",
    "step",
];

/// Buckets a range is cut into when no step is given.
pub(super) const DEFAULT_POINTS: u64 = 60;

/// `/api/service-metrics?service=&operation=&groupByOperation=&spanKind=&start=&end=&lookback=&step=`
/// (`start`/`end` in µs, `lookback` and `step` as durations: `1h`, `1m`).
pub fn red_request(pairs: &[(String, String)], now_nanos: u64) -> Result<RedRequest, QueryError> {
    let params = Params::new(pairs, RED_PARAMS)?;
    let mut pairs = pairs.to_vec();
    if params.get("start").is_none() && params.get("lookback").is_none() {
        pairs.push(("lookback".into(), "1h".into()));
    }
    let (start, end) = params::time_window(&Params::new(&pairs, RED_PARAMS)?, now_nanos)?;
    let span = end.saturating_sub(start).max(1);
    let step = match params.duration("step")? {
        Some(step) if step.is_zero() => {
            let text = params.get("step").unwrap_or_default();
            return Err(bad("step", text, "expected more than 0"));
        }
        Some(step) => step.as_nanos().min(u128::from(u64::MAX)) as u64,
        None => nice_step(span.div_ceil(DEFAULT_POINTS)),
    };
    // Buckets aligned to the step, so that the same range and step give the
    // same buckets whenever asked.
    let first = start - start % step;
    let buckets = buckets((end - first) / step + 1, 1, step)?;
    let operation = params.get("operation").map(str::to_string);
    let services: Vec<String> = params.all("service").map(str::to_string).collect();
    if operation.is_some() && services.len() != 1 {
        return Err(QueryError::BadRequest(
            "parameter 'operation' needs exactly one 'service'".into(),
        ));
    }
    Ok(RedRequest {
        query: MetricsQuery {
            services,
            kinds: span_kinds(&params, "spanKind")?,
            by_operation: operation.is_some() || boolean(&params, "groupByOperation")?,
            start: first,
            step,
            buckets,
        },
        operation,
    })
}

/// The smallest of 1 s, 5 s, 10 s, 30 s, 1, 5, 10, 30 min, 1, 3, 6, 12 h, 1 d
/// (or whole days) that is at least `nanos`.
pub(super) fn nice_step(nanos: u64) -> u64 {
    const SECOND: u64 = 1_000_000_000;
    const NICE: [u64; 13] = [
        1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200, 86_400,
    ];
    NICE.iter()
        .map(|s| s * SECOND)
        .find(|&step| step >= nanos)
        .unwrap_or_else(|| nanos.div_ceil(86_400 * SECOND) * 86_400 * SECOND)
}

/// Rate, errors and latency quantiles of one cell (or a whole series summed).
fn figures(cell: &Cell, seconds: f64) -> Value {
    let ms = |q: f64| cell.latencies.quantile(q).map(|ns| ns as f64 / 1e6);
    json!({
        "calls": cell.calls,
        "errors": cell.errors,
        "rate": cell.calls as f64 / seconds,
        "errorRate": (cell.calls > 0).then(|| cell.errors as f64 / cell.calls as f64),
        "p50": ms(0.5),
        "p95": ms(0.95),
        "p99": ms(0.99),
    })
}

/// Hopline's answer: per series, the whole range's figures and each bucket's
/// (rates per second, latencies in ms, `null` where there were no requests).
pub fn red_json(request: &RedRequest, metrics: &SpanMetrics) -> Value {
    let query = &request.query;
    let step_seconds = query.step as f64 / 1e9;
    let series: Vec<Value> = metrics
        .series
        .iter()
        .filter(|series| {
            request
                .operation
                .as_ref()
                .is_none_or(|op| series.operation.as_ref() == Some(op))
        })
        .map(|series| {
            let mut total = Cell::default();
            for cell in &series.cells {
                total.merge(cell);
            }
            let points: Vec<Value> = series
                .cells
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let mut point = figures(cell, step_seconds);
                    point["time"] = json!(query.start + i as u64 * query.step);
                    point
                })
                .collect();
            json!({
                "service": series.service,
                "operation": series.operation,
                "total": figures(&total, step_seconds * series.cells.len() as f64),
                "points": points,
            })
        })
        .collect();
    json!({
        "start": query.start,
        "end": query.end(),
        "step": query.step,
        "series": series,
    })
}
