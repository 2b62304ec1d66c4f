//! What the pages show, and the server functions that fetch it from the collector's
//! query API (Jaeger's `/api` and `/api/logs`). The conversions from the API's JSON
//! are plain functions, so they are tested without a server.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagView {
    pub key: String,
    pub value: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub time_us: u64,
    pub fields: Vec<TagView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanView {
    pub id: String,
    pub parent: Option<String>,
    pub service: String,
    pub name: String,
    pub kind: String,
    pub start_us: u64,
    pub duration_us: u64,
    pub error: bool,
    pub tags: Vec<TagView>,
    pub process: Vec<TagView>,
    pub events: Vec<EventView>,
    /// Linked spans: (trace id, span id).
    pub links: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// ns since the epoch.
    pub time_ns: u64,
    pub severity_number: i64,
    pub severity: String,
    pub body: String,
    pub service: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub attributes: Vec<(String, String)>,
    /// The `service.instance.id` of its resource, when it has one.
    #[serde(default)]
    pub instance: Option<String>,
}

impl LogLine {
    /// Where this line's context is: the lines of its service instance around it.
    pub fn context_href(&self) -> String {
        let mut pairs = vec![("service", self.service.clone())];
        if let Some(instance) = &self.instance {
            pairs.push(("instance", instance.clone()));
        }
        pairs.push(("time", self.time_ns.to_string()));
        format!("/logs/context?{}", crate::tags::query_string(&pairs))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceView {
    pub id: String,
    pub spans: Vec<SpanView>,
    pub logs: Vec<LogLine>,
    /// What the collector says about the trace (e.g. that it was cut).
    pub warnings: Vec<String>,
}

impl TraceView {
    pub fn start_us(&self) -> u64 {
        self.spans.iter().map(|s| s.start_us).min().unwrap_or(0)
    }

    pub fn duration_us(&self) -> u64 {
        let end = self
            .spans
            .iter()
            .map(|s| s.start_us + s.duration_us)
            .max()
            .unwrap_or(0);
        end.saturating_sub(self.start_us())
    }

    pub fn errors(&self) -> usize {
        self.spans.iter().filter(|s| s.error).count()
    }

    /// Span counts per service, in order of first appearance.
    pub fn services(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        let mut spans: Vec<&SpanView> = self.spans.iter().collect();
        spans.sort_by_key(|s| s.start_us);
        for span in spans {
            match counts.iter_mut().find(|(name, _)| *name == span.service) {
                Some((_, n)) => *n += 1,
                None => counts.push((span.service.clone(), 1)),
            }
        }
        counts
    }

    /// Spans whose parent is not in the trace: still arriving, or lost.
    pub fn orphans(&self) -> usize {
        let ids: std::collections::HashSet<&str> =
            self.spans.iter().map(|s| s.id.as_str()).collect();
        self.spans
            .iter()
            .filter(|s| s.parent.as_deref().is_some_and(|p| !ids.contains(p)))
            .count()
    }

    /// The root: the earliest span without a parent in the trace.
    pub fn root(&self) -> Option<&SpanView> {
        let ids: std::collections::HashSet<&str> =
            self.spans.iter().map(|s| s.id.as_str()).collect();
        self.spans
            .iter()
            .filter(|s| s.parent.as_deref().is_none_or(|p| !ids.contains(p)))
            .min_by_key(|s| s.start_us)
    }
}

/// One row of the search results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    pub id: String,
    pub root_service: String,
    pub root_name: String,
    pub span_count: usize,
    pub services: Vec<(String, usize)>,
    pub errors: usize,
    pub duration_us: u64,
    pub start_us: u64,
    /// Spans whose parent is not in the trace.
    pub orphans: usize,
}

impl TraceSummary {
    pub fn of(trace: &TraceView) -> Self {
        let root = trace.root();
        TraceSummary {
            id: trace.id.clone(),
            root_service: root.map(|s| s.service.clone()).unwrap_or_default(),
            root_name: root.map(|s| s.name.clone()).unwrap_or_default(),
            span_count: trace.spans.len(),
            services: trace.services(),
            errors: trace.errors(),
            duration_us: trace.duration_us(),
            start_us: trace.start_us(),
            orphans: trace.orphans(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    pub total: u64,
    /// Matching lines before these (newest first).
    pub offset: usize,
    /// The window's end (µs), which later pages keep.
    pub end: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub calls: u64,
    /// Calls whose callee span failed.
    pub errors: u64,
    /// The 95th percentile of the callee's span durations, ms.
    pub p95: Option<f64>,
}

/// Requests, errors and latencies of a span of time (one bucket, or a range).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub calls: u64,
    pub errors: u64,
    /// Requests per second.
    pub rate: f64,
    /// Latency quantiles in ms; `None` without requests.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Figures {
    /// The share of requests that failed, in percent; `None` without requests.
    pub fn error_percent(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.errors as f64 * 100.0 / self.calls as f64)
    }
}

/// A service's (or an operation's) health over a range, and per bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthSeries {
    pub service: String,
    pub operation: Option<String>,
    pub total: Figures,
    pub points: Vec<Figures>,
}

/// `/api/service-metrics`' answer: buckets of `step_us` from `start_us`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub start_us: u64,
    pub step_us: u64,
    pub series: Vec<HealthSeries>,
}

impl Health {
    /// The `[start, end)` of bucket `i`, µs.
    pub fn bucket(&self, i: usize) -> (u64, u64) {
        let start = self.start_us + i as u64 * self.step_us;
        (start, start + self.step_us)
    }
}

fn figures(value: &Value) -> Figures {
    Figures {
        calls: value["calls"].as_u64().unwrap_or(0),
        errors: value["errors"].as_u64().unwrap_or(0),
        rate: value["rate"].as_f64().unwrap_or(0.0),
        p50: value["p50"].as_f64(),
        p95: value["p95"].as_f64(),
        p99: value["p99"].as_f64(),
    }
}

/// `/api/service-metrics`' JSON -> [`Health`].
pub fn health_from_api(body: &Value) -> Health {
    Health {
        start_us: body["start"].as_u64().unwrap_or(0) / 1000,
        step_us: body["step"].as_u64().unwrap_or(0) / 1000,
        series: body["series"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|s| HealthSeries {
                        service: text(&s["service"]),
                        operation: s["operation"].as_str().map(str::to_string),
                        total: figures(&s["total"]),
                        points: s["points"]
                            .as_array()
                            .map(|points| points.iter().map(figures).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn tag_views(tags: &Value) -> Vec<TagView> {
    tags.as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| TagView {
                    key: text(&t["key"]),
                    value: text(&t["value"]),
                    kind: text(&t["type"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A trace in Jaeger's JSON model -> the trace view.
pub fn trace_from_jaeger(trace: &Value) -> TraceView {
    let processes = &trace["processes"];
    let spans = trace["spans"]
        .as_array()
        .map(|spans| {
            spans
                .iter()
                .map(|span| {
                    let tags = tag_views(&span["tags"]);
                    let process = &processes[span["processID"].as_str().unwrap_or_default()];
                    let references = span["references"].as_array().cloned().unwrap_or_default();
                    SpanView {
                        id: text(&span["spanID"]),
                        parent: references
                            .iter()
                            .find(|r| r["refType"] == "CHILD_OF")
                            .map(|r| text(&r["spanID"])),
                        service: text(&process["serviceName"]),
                        name: text(&span["operationName"]),
                        kind: tags
                            .iter()
                            .find(|t| t.key == "span.kind")
                            .map(|t| t.value.clone())
                            .unwrap_or_default(),
                        start_us: span["startTime"].as_u64().unwrap_or(0),
                        duration_us: span["duration"].as_u64().unwrap_or(0),
                        error: tags.iter().any(|t| t.key == "error" && t.value == "true"),
                        tags,
                        process: tag_views(&process["tags"]),
                        events: span["logs"]
                            .as_array()
                            .map(|logs| {
                                logs.iter()
                                    .map(|l| EventView {
                                        time_us: l["timestamp"].as_u64().unwrap_or(0),
                                        fields: tag_views(&l["fields"]),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        links: references
                            .iter()
                            .filter(|r| r["refType"] == "FOLLOWS_FROM")
                            .map(|r| (text(&r["traceID"]), text(&r["spanID"])))
                            .collect(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    TraceView {
        id: text(&trace["traceID"]),
        spans,
        logs: Vec::new(),
        warnings: trace["warnings"]
            .as_array()
            .map(|warnings| warnings.iter().map(text).collect())
            .unwrap_or_default(),
    }
}

/// One line of `/api/logs`' answer.
fn line_from_api(l: &Value) -> LogLine {
    LogLine {
        time_ns: text(&l["timeUnixNano"]).parse().unwrap_or(0),
        severity_number: l["severityNumber"].as_i64().unwrap_or(0),
        severity: text(&l["severityText"]),
        body: text(&l["body"]),
        service: text(&l["serviceName"]),
        trace_id: l["traceID"].as_str().map(str::to_string),
        span_id: l["spanID"].as_str().map(str::to_string),
        attributes: l["attributes"]
            .as_object()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default(),
        instance: l["resource"]["service.instance.id"]
            .as_str()
            .map(str::to_string),
    }
}

/// The lines of a service instance around one line (`/api/logs/context`), each
/// list oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogContext {
    pub service: String,
    pub instance: Option<String>,
    pub time_ns: u64,
    pub before: Vec<LogLine>,
    /// The lines at the line's own time, the line among them.
    pub at: Vec<LogLine>,
    pub after: Vec<LogLine>,
}

/// `/api/logs/context`'s answer -> the context.
pub fn context_from_api(body: &Value) -> LogContext {
    let lines = |key: &str| -> Vec<LogLine> {
        body[key]
            .as_array()
            .map(|lines| lines.iter().map(line_from_api).collect())
            .unwrap_or_default()
    };
    LogContext {
        service: text(&body["service"]),
        instance: body["instance"].as_str().map(str::to_string),
        time_ns: text(&body["time"]).parse().unwrap_or(0),
        before: lines("before"),
        at: lines("at"),
        after: lines("after"),
    }
}

/// `query` is the query string of `/api/logs/context`.
#[server(prefix = "/ui-fn")]
pub async fn load_log_context(query: String) -> Result<LogContext, ServerFnError> {
    let body = crate::ssr::get(&format!("/api/logs/context?{query}")).await?;
    Ok(context_from_api(&body))
}

/// `/api/logs`'s answer -> log lines.
pub fn logs_from_api(body: &Value) -> LogPage {
    let lines = body["data"]
        .as_array()
        .map(|lines| lines.iter().map(line_from_api).collect())
        .unwrap_or_default();
    LogPage {
        lines,
        total: body["total"].as_u64().unwrap_or(0),
        offset: body["offset"].as_u64().unwrap_or(0) as usize,
        end: body["end"].as_u64().unwrap_or(0),
    }
}

/// How many lines a log search matches per time bucket and level
/// (`/api/logs/volume`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogVolume {
    /// `unspecified`, `trace`, `debug`, `info`, `warn`, `error`, `fatal`.
    pub levels: Vec<String>,
    /// The first bucket's start and every bucket's length, µs.
    pub start_us: u64,
    pub step_us: u64,
    /// Per bucket, its lines per level (in the order of `levels`).
    pub buckets: Vec<Vec<u64>>,
    pub total: u64,
}

/// The body patterns of a log search (`/api/logs/patterns`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPatterns {
    /// The first bucket's start and every bucket's length, µs.
    pub start_us: u64,
    pub step_us: u64,
    /// The range compared with, µs.
    pub previous_start_us: u64,
    pub previous_end_us: u64,
    /// Lines matched, and distinct patterns among them.
    pub total: u64,
    pub pattern_count: u64,
    /// Lines older than patterns, and lines of patterns past the counted ones.
    pub unpatterned: u64,
    pub uncounted: u64,
    /// The most frequent first.
    pub patterns: Vec<LogPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPattern {
    pub id: String,
    /// `<num>`, `<*>` and the like stand for what varies.
    pub template: String,
    pub count: u64,
    pub share: f64,
    pub errors: u64,
    pub error_share: f64,
    /// Lines of it in the range before; none makes it new.
    pub previous: u64,
    /// Lines per bucket.
    pub counts: Vec<u64>,
    /// Its newest line.
    pub sample: Option<LogLine>,
}

/// `/api/logs/patterns`' answer -> the patterns' model.
pub fn patterns_from_api(body: &Value) -> LogPatterns {
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    LogPatterns {
        start_us: number(&body["start"]) / 1000,
        step_us: number(&body["step"]) / 1000,
        previous_start_us: number(&body["previousStart"]) / 1000,
        previous_end_us: number(&body["previousEnd"]) / 1000,
        total: number(&body["total"]),
        pattern_count: number(&body["patternCount"]),
        unpatterned: number(&body["unpatterned"]),
        uncounted: number(&body["uncounted"]),
        patterns: body["patterns"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|p| LogPattern {
                        id: text(&p["id"]),
                        template: text(&p["template"]),
                        count: number(&p["count"]),
                        share: p["share"].as_f64().unwrap_or(0.0),
                        errors: number(&p["errors"]),
                        error_share: p["errorShare"].as_f64().unwrap_or(0.0),
                        previous: number(&p["previous"]),
                        counts: p["counts"]
                            .as_array()
                            .map(|c| c.iter().map(number).collect())
                            .unwrap_or_default(),
                        sample: p["sample"].is_object().then(|| line_from_api(&p["sample"])),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `/api/logs/volume`'s answer -> the chart's model.
pub fn volume_from_api(body: &Value) -> LogVolume {
    LogVolume {
        levels: body["levels"]
            .as_array()
            .map(|all| all.iter().map(text).collect())
            .unwrap_or_default(),
        start_us: body["start"].as_u64().unwrap_or(0) / 1000,
        step_us: body["step"].as_u64().unwrap_or(0) / 1000,
        buckets: body["buckets"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|b| {
                        b["counts"]
                            .as_array()
                            .map(|c| c.iter().map(|n| n.as_u64().unwrap_or(0)).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default(),
        total: body["total"].as_u64().unwrap_or(0),
    }
}

/// One group of an analysis (`/api/analysis`): "the slowest 5%".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisGroup {
    pub label: String,
    pub traces: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub examples: Vec<String>,
}

/// What one group's traces do on one span path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathSide {
    pub traces: u64,
    pub spans_per_trace: f64,
    pub errors: u64,
    /// Time on the critical path per trace of the group, and its share of it.
    pub critical_ms: f64,
    pub critical_share: f64,
    pub self_mean_ms: f64,
    pub self_p95_ms: f64,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisPath {
    /// The path key: `service: operation` after its ancestors'.
    pub path: String,
    pub service: String,
    pub operation: String,
    pub delta_ms: f64,
    pub sides: [PathSide; 2],
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisAttribute {
    pub key: String,
    pub value: String,
    pub traces: [u64; 2],
    pub shares: [f64; 2],
}

/// `/api/analysis`'s answer: two groups of traces compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub matched: Option<u64>,
    pub groups: [AnalysisGroup; 2],
    pub findings: Vec<String>,
    pub paths: Vec<AnalysisPath>,
    pub attributes: Vec<AnalysisAttribute>,
    pub notes: Vec<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|all| all.iter().map(text).collect())
        .unwrap_or_default()
}

/// `/api/analysis`'s answer -> the page's model.
pub fn analysis_from_api(body: &Value) -> Analysis {
    let number = |v: &Value| v.as_f64().unwrap_or(0.0);
    let group = |g: &Value| AnalysisGroup {
        label: text(&g["label"]),
        traces: g["traces"].as_u64().unwrap_or(0),
        mean_ms: number(&g["durationMs"]["mean"]),
        p50_ms: number(&g["durationMs"]["p50"]),
        p95_ms: number(&g["durationMs"]["p95"]),
        examples: strings(&g["examples"]),
    };
    let side = |s: &Value| PathSide {
        traces: s["traces"].as_u64().unwrap_or(0),
        spans_per_trace: number(&s["spansPerTrace"]),
        errors: s["errors"].as_u64().unwrap_or(0),
        critical_ms: number(&s["criticalMs"]),
        critical_share: number(&s["criticalShare"]),
        self_mean_ms: number(&s["selfMeanMs"]),
        self_p95_ms: number(&s["selfP95Ms"]),
        examples: strings(&s["examples"]),
    };
    let rows = |key: &str| body[key].as_array().cloned().unwrap_or_default();
    Analysis {
        matched: body["matched"].as_u64(),
        groups: [group(&body["groups"]["a"]), group(&body["groups"]["b"])],
        findings: strings(&body["findings"]),
        paths: rows("paths")
            .iter()
            .map(|p| AnalysisPath {
                path: text(&p["path"]),
                service: text(&p["service"]),
                operation: text(&p["operation"]),
                delta_ms: number(&p["criticalDeltaMs"]),
                sides: [side(&p["a"]), side(&p["b"])],
            })
            .collect(),
        attributes: rows("attributes")
            .iter()
            .map(|a| AnalysisAttribute {
                key: text(&a["key"]),
                value: text(&a["value"]),
                traces: [
                    a["a"]["traces"].as_u64().unwrap_or(0),
                    a["b"]["traces"].as_u64().unwrap_or(0),
                ],
                shares: [number(&a["a"]["share"]), number(&a["b"]["share"])],
            })
            .collect(),
        notes: strings(&body["notes"]),
    }
}

// Server functions live under their own prefix, `/ui-fn`: `/api` is the query API's.
pub const SERVER_FN_PREFIX: &str = "/ui-fn";

/// What a failed server function says, for a person: the query API's message,
/// without the framework's wording around it.
pub fn problem(error: &ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message.clone(),
        other => other.to_string(),
    }
}

#[server(prefix = "/ui-fn")]
pub async fn list_services() -> Result<Vec<String>, ServerFnError> {
    let body = crate::ssr::get("/api/services").await?;
    Ok(body["data"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default())
}

/// A service's operations, and the patterns of their names that stand for more
/// than one (`GET /users/<num>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Operations {
    pub names: Vec<String>,
    pub patterns: Vec<OperationPattern>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationPattern {
    pub id: String,
    pub template: String,
    /// How many operations it stands for.
    pub operations: u64,
}

#[server(prefix = "/ui-fn")]
pub async fn list_operations(service: String) -> Result<Operations, ServerFnError> {
    if service.is_empty() {
        return Ok(Operations::default());
    }
    let service = crate::tags::encode(&service);
    let body = crate::ssr::get(&format!("/api/services/{service}/operations")).await?;
    let names = body["data"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    let body = crate::ssr::get(&format!("/api/operations/patterns?service={service}")).await?;
    let patterns = body["data"]
        .as_array()
        .map(|patterns| {
            patterns
                .iter()
                .map(|p| OperationPattern {
                    id: text(&p["id"]),
                    template: text(&p["template"]),
                    operations: p["operations"].as_u64().unwrap_or(0),
                })
                .filter(|p| p.operations > 1)
                .collect()
        })
        .unwrap_or_default();
    Ok(Operations { names, patterns })
}

/// A page of trace search results, in the order the collector sorted them, and
/// how many traces matched in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceResults {
    pub traces: Vec<TraceSummary>,
    pub total: u64,
    /// More matched than the collector counts (`total` is that bound).
    pub capped: bool,
    /// The `cursor` of the next page, when more follow.
    pub next: Option<String>,
    /// The end (µs since the epoch) the server pinned a preset window to, when the
    /// search named none: the page keeps it, so that Back, a sort or a later page
    /// shows these traces and not a window that has moved on.
    pub end: Option<String>,
}

/// A search over a preset lookback (`lookback=1h`, or none) that names no `end`,
/// pinned to end at `now_us`: the query with that `end`, and the end. A custom
/// range, or an end already given, is left as it is.
pub fn pin_end(query: &str, now_us: u64) -> (String, Option<String>) {
    let end = now_us.to_string();
    match pinned_query(query, &end) {
        Some(pinned) => (pinned, Some(end)),
        None => (query.to_string(), None),
    }
}

/// `query` (without its `?`) with `end=` set to `end`; `None` when it needs no pin:
/// a custom range, or an end given already.
pub fn pinned_query(query: &str, end: &str) -> Option<String> {
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    let custom = pairs.contains(&("lookback", "custom"));
    let has_end = pairs
        .iter()
        .any(|&(key, value)| key == "end" && !value.is_empty());
    if custom || has_end {
        return None;
    }
    let mut pinned: Vec<String> = pairs
        .into_iter()
        .filter(|&(key, _)| key != "end")
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    pinned.push(format!("end={end}"));
    Some(pinned.join("&"))
}

/// `/api/traces`'s answer -> results.
pub fn results_from_api(body: &Value) -> TraceResults {
    TraceResults {
        traces: body["data"]
            .as_array()
            .map(|traces| {
                traces
                    .iter()
                    .map(|t| TraceSummary::of(&trace_from_jaeger(t)))
                    .collect()
            })
            .unwrap_or_default(),
        total: body["total"].as_u64().unwrap_or(0),
        capped: body["totalCapped"].as_bool().unwrap_or(false),
        next: body["nextCursor"].as_str().map(str::to_string),
        end: None,
    }
}

/// `query` is the query string of `/api/traces`. A preset window is pinned here,
/// by the server's clock (see [`pin_end`]).
#[server(prefix = "/ui-fn")]
pub async fn search_traces(query: String) -> Result<TraceResults, ServerFnError> {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64);
    let (query, end) = pin_end(&query, now_us);
    let body = crate::ssr::get(&format!("/api/traces?{query}")).await?;
    Ok(TraceResults {
        end,
        ..results_from_api(&body)
    })
}

/// A trace and its logs; `None` when the collector has no such trace.
#[server(prefix = "/ui-fn")]
pub async fn load_trace(id: String) -> Result<Option<TraceView>, ServerFnError> {
    let Some(body) =
        crate::ssr::get_optional(&format!("/api/traces/{}", crate::tags::encode(&id))).await?
    else {
        return Ok(None);
    };
    let mut trace = trace_from_jaeger(&body["data"][0]);
    let logs = crate::ssr::get(&format!(
        "/api/logs?traceID={}&start=0&limit=1000",
        crate::tags::encode(&trace.id)
    ))
    .await?;
    trace.logs = logs_from_api(&logs).lines;
    trace.logs.sort_by_key(|l| l.time_ns);
    Ok(Some(trace))
}

/// `query` is the query string of `/api/logs`.
#[server(prefix = "/ui-fn")]
pub async fn search_logs(query: String) -> Result<LogPage, ServerFnError> {
    let body = crate::ssr::get(&format!("/api/logs?{query}")).await?;
    Ok(logs_from_api(&body))
}

/// `query` is the query string of `/api/logs/volume`.
#[server(prefix = "/ui-fn")]
pub async fn load_log_volume(query: String) -> Result<LogVolume, ServerFnError> {
    let body = crate::ssr::get(&format!("/api/logs/volume?{query}")).await?;
    Ok(volume_from_api(&body))
}

/// `query` is the query string of `/api/logs/patterns`.
#[server(prefix = "/ui-fn")]
pub async fn load_log_patterns(query: String) -> Result<LogPatterns, ServerFnError> {
    let body = crate::ssr::get(&format!("/api/logs/patterns?{query}")).await?;
    Ok(patterns_from_api(&body))
}

/// `query` is the query string of `/api/service-metrics`.
#[server(prefix = "/ui-fn")]
pub async fn load_health(query: String) -> Result<Health, ServerFnError> {
    let body = crate::ssr::get(&format!("/api/service-metrics?{query}")).await?;
    Ok(health_from_api(&body))
}

/// `query` is the query string of `/api/analysis`.
#[server(prefix = "/ui-fn")]
pub async fn load_analysis(query: String) -> Result<Analysis, ServerFnError> {
    let body = crate::ssr::get(&format!("/api/analysis?{query}")).await?;
    Ok(analysis_from_api(&body))
}

#[server(prefix = "/ui-fn")]
pub async fn load_dependencies(lookback_ms: u64) -> Result<Vec<Dependency>, ServerFnError> {
    let body = crate::ssr::get(&format!("/api/dependencies?lookback={lookback_ms}")).await?;
    Ok(body["data"]
        .as_array()
        .map(|links| {
            links
                .iter()
                .map(|l| Dependency {
                    parent: text(&l["parent"]),
                    child: text(&l["child"]),
                    calls: l["callCount"].as_u64().unwrap_or(0),
                    errors: l["errorCount"].as_u64().unwrap_or(0),
                    p95: l["p95"].as_f64(),
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_preset_window_is_pinned_to_now_and_a_given_one_is_kept() {
        assert_eq!(
            pin_end("service=a&lookback=1h&start=&end=&limit=20", 77),
            (
                "service=a&lookback=1h&start=&limit=20&end=77".to_string(),
                Some("77".to_string())
            )
        );
        assert_eq!(
            pin_end("service=a", 5),
            ("service=a&end=5".to_string(), Some("5".to_string()))
        );
        for kept in [
            "service=a&lookback=1h&end=40",
            "lookback=custom&start=1&end=",
            "lookback=custom&start=1&end=9",
        ] {
            assert_eq!(pin_end(kept, 77), (kept.to_string(), None), "{kept}");
        }
    }

    #[test]
    fn jaeger_traces_become_views_with_services_errors_and_roots() {
        let trace = json!({
            "traceID": "abc",
            "processes": {"p1": {"serviceName": "gateway", "tags": [{"key": "host.name", "type": "string", "value": "n1"}]},
                          "p2": {"serviceName": "orders", "tags": []}},
            "spans": [
                {"spanID": "1", "operationName": "GET /", "references": [], "startTime": 100, "duration": 50, "processID": "p1",
                 "tags": [{"key": "span.kind", "type": "string", "value": "server"}], "logs": []},
                {"spanID": "2", "operationName": "POST /orders", "references": [{"refType": "CHILD_OF", "traceID": "abc", "spanID": "1"}],
                 "startTime": 110, "duration": 30, "processID": "p2",
                 "tags": [{"key": "error", "type": "bool", "value": true}],
                 "logs": [{"timestamp": 120, "fields": [{"key": "event", "type": "string", "value": "retry"}]}]}
            ]
        });
        let view = trace_from_jaeger(&trace);
        assert!(view.warnings.is_empty());
        assert_eq!(view.spans[1].parent.as_deref(), Some("1"));
        assert!(view.spans[1].error);
        assert_eq!(view.spans[1].events[0].fields[0].value, "retry");
        let summary = TraceSummary::of(&view);
        assert_eq!(summary.root_service, "gateway");
        assert_eq!(
            summary.services,
            vec![("gateway".to_string(), 1), ("orders".to_string(), 1)]
        );
        assert_eq!(
            (summary.errors, summary.duration_us, summary.span_count),
            (1, 50, 2)
        );
    }

    #[test]
    fn log_lines_keep_ids_and_attributes() {
        let page = logs_from_api(&json!({"total": 7, "data": [
            {"timeUnixNano": "1700000000000000000", "severityNumber": 17, "severityText": "ERROR", "body": "boom",
             "serviceName": "orders", "traceID": "t", "spanID": null, "attributes": {"order.id": 42}}
        ]}));
        assert_eq!(page.total, 7);
        assert_eq!(page.lines[0].time_ns, 1_700_000_000_000_000_000);
        assert_eq!(
            page.lines[0].attributes,
            vec![("order.id".to_string(), "42".to_string())]
        );
        assert_eq!(page.lines[0].span_id, None);
    }
}
