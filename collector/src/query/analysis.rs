//! Why are the slow ones slow: the traces of one search split in two groups (the
//! fastest against the slowest, two values of one attribute, or the search's
//! range against a baseline range) and, span path by span path, where each
//! group's time goes: time on the critical path and its share, self time (mean
//! and p95), spans per trace (an N+1 shows here), errors; which attributes the
//! second group has more often; and the largest differences in plain words.
//!
//! It asks the [`QueryService`] only what every implementation answers (trace
//! summaries, then the traces by id, a few hundred at a time), so it works the
//! same on one box and in a cluster, and holds one batch of traces at a time.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::params::TraceSearch;
use super::service::{QueryService, Trace};
use super::QueryError;
use crate::model::{AnyValue, Span, StatusCode, TraceId};
use crate::store::outline::TraceSummary;
use crate::store::red::Latencies;
use crate::store::search::{Stop, TraceFilter, TraceOrder};
use crate::store::StoreError;

/// Traces an analysis reads when `limit` is not given, and at most.
pub const DEFAULT_ANALYSED_TRACES: usize = 1_000;
pub const MAX_ANALYSED_TRACES: usize = 5_000;
/// Spans asked for in one call to the query service (whole traces; at least one).
const SPANS_PER_BATCH: u64 = 50_000;
/// Distinct span paths followed per group; spans on paths past it are counted
/// under [`OTHER_PATHS`].
const MAX_PATHS: usize = 2_000;
const OTHER_PATHS: &str = "(other span paths)";
/// Distinct `key=value` attribute pairs counted per group; past it, pairs seen on
/// one trace only are dropped.
const MAX_ATTRIBUTES: usize = 20_000;
/// Attribute values longer than this are not compared (ids, bodies, queries).
const MAX_VALUE_CHARS: usize = 80;
/// Example traces per group and per path.
const EXAMPLES: usize = 3;
/// Rows of an answer: span paths, attributes, findings.
const MAX_PATH_ROWS: usize = 100;
const MAX_ATTRIBUTE_ROWS: usize = 10;
const MAX_FINDINGS: usize = 4;
/// An attribute is reported when its share of traces differs by this much.
const ATTRIBUTE_GAP: f64 = 0.25;

/// How the traces of a search are split in two groups, `a` then `b`.
#[derive(Debug, Clone, PartialEq)]
pub enum Grouping {
    /// The fastest `fastest` percent (`a`) against the slowest `slowest` percent
    /// (`b`).
    Duration { fastest: u32, slowest: u32 },
    /// Traces with a span (or resource) attribute `key=a` against `key=b`.
    Attribute { key: String, a: String, b: String },
    /// The traces of `[start, end]` (ns; `a`) against the search's range (`b`).
    Baseline { start: u64, end: u64 },
}

/// What `/api/analysis` asks: a trace search (up to `filter.limit` traces, the
/// newest) and how to group its traces.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisRequest {
    pub filter: TraceFilter,
    pub grouping: Grouping,
}

/// One group of traces.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupSummary {
    /// In words: "the slowest 5%", "traces with service.version=1.5".
    pub label: String,
    pub traces: usize,
    /// Trace durations, ns.
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p95_ns: u64,
    /// Its longest traces.
    pub examples: Vec<TraceId>,
}

/// What one group's traces do on one span path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PathStats {
    /// Traces of the group with a span on the path.
    pub traces: usize,
    pub spans_per_trace: f64,
    pub errors: u64,
    /// Time on the critical path, per trace of the group, ns.
    pub critical_ns: u64,
    /// That time's share of the group's critical paths (0..=1).
    pub critical_share: f64,
    /// Self time of the path's spans per trace that has them, ns: mean and p95.
    pub self_mean_ns: u64,
    pub self_p95_ns: u64,
    /// The traces that spend the most time on this path.
    pub examples: Vec<TraceId>,
}

/// One span path (service and operation after its ancestors') in both groups.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRow {
    pub key: String,
    pub service: String,
    pub operation: String,
    pub depth: usize,
    pub groups: [PathStats; 2],
}

impl PathRow {
    /// How much more time `b` spends on this path's critical segments per trace,
    /// ns (negative: less).
    pub fn critical_delta(&self) -> i64 {
        self.groups[1].critical_ns as i64 - self.groups[0].critical_ns as i64
    }
}

/// An attribute value that one group's traces carry more often.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeRow {
    pub key: String,
    pub value: String,
    /// Traces with it, per group.
    pub traces: [usize; 2],
    /// Their share of the group's traces.
    pub shares: [f64; 2],
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceAnalysis {
    /// Traces the search matched (`None`: more than a search counts).
    pub matched: Option<usize>,
    pub groups: [GroupSummary; 2],
    /// The paths whose critical time differs most between the groups first.
    pub paths: Vec<PathRow>,
    /// Attribute values the `b` group carries more often than `a`, most first.
    pub attributes: Vec<AttributeRow>,
    /// The largest differences, in plain words.
    pub findings: Vec<String>,
    /// What was left out or could not be done.
    pub notes: Vec<String>,
}

/// Runs an analysis within `--query-timeout` as a whole (each call to the
/// query service is also bounded by it); stopped when the caller leaves.
pub async fn analyse(
    queries: &dyn QueryService,
    request: AnalysisRequest,
) -> Result<TraceAnalysis, QueryError> {
    match tokio::time::timeout(queries.timeout(), run(queries, request)).await {
        Ok(result) => result,
        Err(_) => Err(QueryError::Store(StoreError::Cancelled(Stop::TimedOut))),
    }
}

async fn run(
    queries: &dyn QueryService,
    request: AnalysisRequest,
) -> Result<TraceAnalysis, QueryError> {
    let AnalysisRequest {
        mut filter,
        grouping,
    } = request;
    filter.order = TraceOrder::Newest;
    let found = queries.trace_summaries(filter.clone()).await?;
    let matched = found.total;
    let mut notes = Vec::new();
    if matched.is_none_or(|n| n > found.summaries.len()) {
        notes.push(format!(
            "{} traces matched; the newest {} were analysed (limit, at most {MAX_ANALYSED_TRACES})",
            matched.map_or(format!("more than {}", found.summaries.len()), |n| n
                .to_string()),
            found.summaries.len()
        ));
    }
    let mut groups = match &grouping {
        Grouping::Duration { fastest, slowest } => {
            let mut groups = [
                Group::new(format!("the fastest {fastest}%")),
                Group::new(format!("the slowest {slowest}%")),
            ];
            let mut summaries = found.summaries;
            summaries.sort_by_key(|s| (s.end.saturating_sub(s.start), s.id));
            let (fast, slow) = split_by_duration(summaries.len(), *fastest, *slowest);
            if summaries.len() < 2 {
                notes.push(format!(
                    "{} trace(s) matched: grouping by duration needs two at least",
                    summaries.len()
                ));
            }
            let slow_from = summaries.len() - slow;
            let (slow_part, fast_part) = (&summaries[slow_from..], &summaries[..fast]);
            load(queries, fast_part, &mut notes, |facts| groups[0].add(facts)).await?;
            load(queries, slow_part, &mut notes, |facts| groups[1].add(facts)).await?;
            groups
        }
        Grouping::Attribute { key, a, b } => {
            let mut groups = [
                Group::new(format!("traces with {key}={a}")),
                Group::new(format!("traces with {key}={b}")),
            ];
            let (mut both, mut neither) = (0, 0);
            let wanted = [(key.clone(), a.clone()), (key.clone(), b.clone())];
            load(queries, &found.summaries, &mut notes, |facts| {
                match (
                    facts.attributes.contains(&wanted[0]),
                    facts.attributes.contains(&wanted[1]),
                ) {
                    (true, false) => groups[0].add(facts),
                    (false, true) => groups[1].add(facts),
                    (true, true) => both += 1,
                    (false, false) => neither += 1,
                }
            })
            .await?;
            if both + neither > 0 {
                notes.push(format!(
                    "{neither} trace(s) have neither value of {key} and {both} have both: \
                     they are in no group"
                ));
            }
            groups
        }
        Grouping::Baseline { start, end } => {
            let mut groups = [
                Group::new("the baseline range".to_string()),
                Group::new("this range".to_string()),
            ];
            let baseline = TraceFilter {
                start_min: *start,
                start_max: *end,
                ..filter.clone()
            };
            let before = queries.trace_summaries(baseline).await?;
            load(queries, &before.summaries, &mut notes, |facts| {
                groups[0].add(facts)
            })
            .await?;
            load(queries, &found.summaries, &mut notes, |facts| {
                groups[1].add(facts)
            })
            .await?;
            groups
        }
    };
    for group in &mut groups {
        if group.attributes_pruned {
            notes.push(format!(
                "{} carry more than {MAX_ATTRIBUTES} distinct attribute values: those seen \
                 on one trace only were not counted{}",
                group.label,
                if group.attributes_full {
                    ", and past that none new"
                } else {
                    ""
                }
            ));
        }
        if group.paths.contains_key(OTHER_PATHS) {
            notes.push(format!(
                "{} have more than {MAX_PATHS} distinct span paths: the rest are counted as \
                 one row, \"{OTHER_PATHS}\"",
                group.label
            ));
        }
    }
    let excluded = match &grouping {
        Grouping::Attribute { key, .. } => Some(key.as_str()),
        _ => None,
    };
    Ok(finish(groups, matched, notes, excluded))
}

/// How many of `n` traces, sorted by duration, are the fastest `fastest`% and
/// the slowest `slowest`%: each at least one when there are two, never
/// overlapping.
fn split_by_duration(n: usize, fastest: u32, slowest: u32) -> (usize, usize) {
    if n < 2 {
        return (0, 0);
    }
    let share = |percent: u32| (n * percent as usize).div_ceil(100).max(1);
    let slow = share(slowest).min(n - 1);
    (share(fastest).min(n - slow), slow)
}

/// Reads the traces of `summaries` in batches of about [`SPANS_PER_BATCH`]
/// spans and hands each one's facts to `each`.
async fn load(
    queries: &dyn QueryService,
    summaries: &[TraceSummary],
    notes: &mut Vec<String>,
    mut each: impl FnMut(TraceFacts),
) -> Result<(), QueryError> {
    let mut cut = 0;
    let mut rest = summaries;
    while !rest.is_empty() {
        let mut spans = 0;
        let take = rest
            .iter()
            .take_while(|s| {
                spans += s.spans;
                spans <= SPANS_PER_BATCH
            })
            .count()
            .max(1);
        let (batch, after) = rest.split_at(take);
        rest = after;
        let ids = batch.iter().map(|s| s.id).collect();
        let page = queries.find_traces(TraceSearch::Ids(ids)).await?;
        let facts =
            tokio::task::spawn_blocking(move || page.traces.iter().map(facts).collect::<Vec<_>>())
                .await?;
        for trace in facts {
            cut += usize::from(trace.cut);
            each(trace);
        }
    }
    if cut > 0 {
        notes.push(format!(
            "{cut} trace(s) have more spans than --max-spans-per-trace: only their earliest \
             spans were analysed"
        ));
    }
    Ok(())
}

/// What one trace does on one span path.
#[derive(Debug, Clone, Default)]
pub(super) struct PathFacts {
    pub(super) service: String,
    pub(super) operation: String,
    depth: usize,
    pub(super) spans: u64,
    pub(super) errors: u64,
    pub(super) critical_ns: u64,
    pub(super) self_ns: u64,
}

/// One trace, reduced to what the groups add up.
pub(super) struct TraceFacts {
    id: TraceId,
    pub(super) duration_ns: u64,
    /// Its critical path's length (the main root's duration), ns.
    pub(super) critical_ns: u64,
    pub(super) paths: HashMap<String, PathFacts>,
    /// Scalar `key=value` pairs of its spans and their resources.
    attributes: HashSet<(String, String)>,
    cut: bool,
}

/// The spans as the tree sees them: times and the index of each one's parent.
pub(super) fn shape(spans: &[Span]) -> Vec<hopline_tree::Span> {
    let parents = hopline_tree::parents(
        spans.iter().map(|s| s.span_id.0.as_slice()),
        spans
            .iter()
            .map(|s| s.parent_span_id.as_ref().map(|p| p.0.as_slice())),
    );
    spans
        .iter()
        .zip(parents)
        .map(|(span, parent)| hopline_tree::Span {
            start: span.start_time_unix_nano,
            end: span.end_time_unix_nano.max(span.start_time_unix_nano),
            parent,
        })
        .collect()
}

pub(super) fn facts(trace: &Trace) -> TraceFacts {
    let spans = &trace.spans;
    let shape = shape(spans);
    let labels: Vec<String> = spans
        .iter()
        .map(|s| format!("{}: {}", s.service_name, s.name))
        .collect();
    let keys = hopline_tree::path_keys(&shape, &labels);
    let self_times = hopline_tree::self_times(&shape);
    let (roots, children) = hopline_tree::children(&shape);
    let mut critical = vec![0u64; spans.len()];
    let root = hopline_tree::main_root(&shape, &roots);
    if let Some(root) = root {
        for (span, from, to) in hopline_tree::critical_path(root, &shape, &children) {
            critical[span] += to - from;
        }
    }
    let mut paths: HashMap<String, PathFacts> = HashMap::new();
    let mut attributes = HashSet::new();
    for (i, span) in spans.iter().enumerate() {
        let path = paths.entry(keys[i].clone()).or_insert_with(|| PathFacts {
            service: span.service_name.to_string(),
            operation: span.name.to_string(),
            depth: keys[i].matches(hopline_tree::PATH_SEPARATOR).count(),
            ..PathFacts::default()
        });
        path.spans += 1;
        path.errors += u64::from(span.status_code == StatusCode::Error);
        path.critical_ns += critical[i];
        path.self_ns += self_times[i];
        for kv in span.attributes.iter().chain(&span.resource.attributes) {
            if matches!(
                kv.value,
                AnyValue::Str(_) | AnyValue::Bool(_) | AnyValue::Int(_)
            ) {
                let value = kv.value.to_search_text();
                if value.chars().count() <= MAX_VALUE_CHARS {
                    attributes.insert((kv.key.to_string(), value));
                }
            }
        }
    }
    let first = shape.iter().map(|s| s.start).min().unwrap_or(0);
    let last = shape.iter().map(|s| s.end).max().unwrap_or(0);
    TraceFacts {
        id: trace.id,
        duration_ns: last.saturating_sub(first),
        critical_ns: root.map_or(0, |r| shape[r].duration()),
        paths,
        attributes,
        cut: trace.is_cut(),
    }
}

/// What a group's traces add up to on one path.
#[derive(Debug, Default)]
struct PathTotals {
    service: String,
    operation: String,
    depth: usize,
    traces: usize,
    spans: u64,
    errors: u64,
    critical_ns: u64,
    self_sum_ns: u128,
    self_ns: Latencies,
    examples: Vec<(u64, TraceId)>,
}

struct Group {
    label: String,
    traces: usize,
    durations: Latencies,
    duration_sum_ns: u128,
    critical_sum_ns: u128,
    examples: Vec<(u64, TraceId)>,
    paths: HashMap<String, PathTotals>,
    attributes: HashMap<(String, String), usize>,
    attributes_pruned: bool,
    /// Pruning freed too little: no new values are counted.
    attributes_full: bool,
}

/// Keeps the [`EXAMPLES`] largest of `list` after adding `(value, id)`.
fn keep_top(list: &mut Vec<(u64, TraceId)>, value: u64, id: TraceId) {
    list.push((value, id));
    list.sort_unstable_by(|x, y| y.cmp(x));
    list.truncate(EXAMPLES);
}

impl Group {
    fn new(label: String) -> Self {
        Group {
            label,
            traces: 0,
            durations: Latencies::default(),
            duration_sum_ns: 0,
            critical_sum_ns: 0,
            examples: Vec::new(),
            paths: HashMap::new(),
            attributes: HashMap::new(),
            attributes_pruned: false,
            attributes_full: false,
        }
    }

    fn add(&mut self, trace: TraceFacts) {
        self.traces += 1;
        self.durations.add(trace.duration_ns);
        self.duration_sum_ns += u128::from(trace.duration_ns);
        self.critical_sum_ns += u128::from(trace.critical_ns);
        keep_top(&mut self.examples, trace.duration_ns, trace.id);
        for (key, path) in trace.paths {
            let key = if self.paths.len() >= MAX_PATHS && !self.paths.contains_key(&key) {
                OTHER_PATHS.to_string()
            } else {
                key
            };
            let totals = self.paths.entry(key).or_insert_with(|| PathTotals {
                service: path.service.clone(),
                operation: path.operation.clone(),
                depth: path.depth,
                ..PathTotals::default()
            });
            totals.traces += 1;
            totals.spans += path.spans;
            totals.errors += path.errors;
            totals.critical_ns += path.critical_ns;
            totals.self_sum_ns += u128::from(path.self_ns);
            totals.self_ns.add(path.self_ns);
            keep_top(
                &mut totals.examples,
                path.critical_ns.max(path.self_ns),
                trace.id,
            );
        }
        for pair in trace.attributes {
            if let Some(traces) = self.attributes.get_mut(&pair) {
                *traces += 1;
            } else if self.make_room() {
                self.attributes.insert(pair, 1);
            }
        }
    }

    /// Whether a new attribute value may be counted: below [`MAX_ATTRIBUTES`],
    /// or once those seen on one trace only are dropped, if that frees a quarter
    /// of them; else the values counted so far are all that will be.
    fn make_room(&mut self) -> bool {
        if self.attributes_full {
            return false;
        }
        if self.attributes.len() < MAX_ATTRIBUTES {
            return true;
        }
        self.attributes.retain(|_, traces| *traces > 1);
        self.attributes_pruned = true;
        self.attributes_full = self.attributes.len() > MAX_ATTRIBUTES / 4 * 3;
        !self.attributes_full
    }

    fn summary(&self) -> GroupSummary {
        GroupSummary {
            label: self.label.clone(),
            traces: self.traces,
            mean_ns: (self.duration_sum_ns / self.traces.max(1) as u128) as u64,
            p50_ns: self.durations.quantile(0.5).unwrap_or(0),
            p95_ns: self.durations.quantile(0.95).unwrap_or(0),
            examples: self.examples.iter().map(|&(_, id)| id).collect(),
        }
    }

    fn path(&self, key: &str) -> PathStats {
        let Some(totals) = self.paths.get(key) else {
            return PathStats::default();
        };
        let traces = self.traces.max(1);
        PathStats {
            traces: totals.traces,
            spans_per_trace: totals.spans as f64 / traces as f64,
            errors: totals.errors,
            critical_ns: totals.critical_ns / traces as u64,
            critical_share: if self.critical_sum_ns == 0 {
                0.0
            } else {
                totals.critical_ns as f64 / self.critical_sum_ns as f64
            },
            self_mean_ns: (totals.self_sum_ns / totals.traces.max(1) as u128) as u64,
            self_p95_ns: totals.self_ns.quantile(0.95).unwrap_or(0),
            examples: totals.examples.iter().map(|&(_, id)| id).collect(),
        }
    }
}

fn finish(
    groups: [Group; 2],
    matched: Option<usize>,
    mut notes: Vec<String>,
    excluded_key: Option<&str>,
) -> TraceAnalysis {
    let keys: HashSet<&String> = groups.iter().flat_map(|g| g.paths.keys()).collect();
    let mut paths: Vec<PathRow> = keys
        .into_iter()
        .map(|key| {
            let totals = groups[0]
                .paths
                .get(key)
                .or_else(|| groups[1].paths.get(key));
            PathRow {
                key: key.clone(),
                service: totals.map(|t| t.service.clone()).unwrap_or_default(),
                operation: totals.map(|t| t.operation.clone()).unwrap_or_default(),
                depth: totals.map_or(0, |t| t.depth),
                groups: [groups[0].path(key), groups[1].path(key)],
            }
        })
        .collect();
    paths.sort_by(|x, y| {
        y.critical_delta()
            .unsigned_abs()
            .cmp(&x.critical_delta().unsigned_abs())
            .then_with(|| x.key.cmp(&y.key))
    });
    if paths.len() > MAX_PATH_ROWS {
        notes.push(format!(
            "{} span paths; the {MAX_PATH_ROWS} whose time differs most are listed",
            paths.len()
        ));
        paths.truncate(MAX_PATH_ROWS);
    }

    let mut attributes: Vec<AttributeRow> = Vec::new();
    if groups.iter().all(|g| g.traces > 0) {
        let share = |g: &Group, n: usize| n as f64 / g.traces as f64;
        for (pair, &in_b) in &groups[1].attributes {
            let in_a = groups[0].attributes.get(pair).copied().unwrap_or(0);
            let shares = [share(&groups[0], in_a), share(&groups[1], in_b)];
            if Some(pair.0.as_str()) != excluded_key
                && in_b > 1
                && shares[1] - shares[0] >= ATTRIBUTE_GAP
            {
                attributes.push(AttributeRow {
                    key: pair.0.clone(),
                    value: pair.1.clone(),
                    traces: [in_a, in_b],
                    shares,
                });
            }
        }
    }
    attributes.sort_by(|x, y| {
        (y.shares[1] - y.shares[0])
            .total_cmp(&(x.shares[1] - x.shares[0]))
            .then_with(|| (&x.key, &x.value).cmp(&(&y.key, &y.value)))
    });
    attributes.truncate(MAX_ATTRIBUTE_ROWS);

    let summaries = [groups[0].summary(), groups[1].summary()];
    let findings = findings(&summaries, &paths, &attributes);
    TraceAnalysis {
        matched,
        groups: summaries,
        paths,
        attributes,
        findings,
        notes,
    }
}

/// The largest differences, in plain words: paths whose critical time differs by
/// at least a tenth of the groups' difference in mean duration (and 1 ms), then
/// the attribute that sets `b` apart most.
fn findings(
    groups: &[GroupSummary; 2],
    paths: &[PathRow],
    attributes: &[AttributeRow],
) -> Vec<String> {
    if groups.iter().any(|g| g.traces == 0) {
        return Vec::new();
    }
    let gap = groups[1].mean_ns.abs_diff(groups[0].mean_ns);
    let threshold = (gap / 10).max(1_000_000);
    let (a, b) = (&groups[0].label, &groups[1].label);
    let mut out: Vec<String> = paths
        .iter()
        .filter(|row| row.critical_delta().unsigned_abs() >= threshold && row.key != OTHER_PATHS)
        .take(MAX_FINDINGS)
        .map(|row| {
            let delta = row.critical_delta();
            let more = if delta > 0 { "more" } else { "less" };
            let mut line = format!(
                "{} spend {} {more} in {} `{}` than {a}",
                capitalised(b),
                format_duration(delta.unsigned_abs()),
                row.service,
                row.operation
            );
            let (in_a, in_b) = (row.groups[0].spans_per_trace, row.groups[1].spans_per_trace);
            if (in_b - in_a).abs() >= 0.5 && (in_b >= 1.5 * in_a || in_a >= 1.5 * in_b) {
                line.push_str(&format!(
                    ", where it appears {} per trace instead of {}",
                    times(in_b),
                    times(in_a)
                ));
            }
            line
        })
        .collect();
    if let Some(attribute) = attributes.first() {
        out.push(format!(
            "{}={} is on {:.0}% of {b} and {:.0}% of {a}",
            attribute.key,
            attribute.value,
            attribute.shares[1] * 100.0,
            attribute.shares[0] * 100.0
        ));
    }
    out
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `1 time`, `14 times`, `2.5 times`, `none`.
fn times(count: f64) -> String {
    if count < 0.05 {
        return "none".to_string();
    }
    let text = if (count - count.round()).abs() < 0.05 {
        format!("{}", count.round())
    } else {
        format!("{count:.1}")
    };
    if text == "1" {
        "once".to_string()
    } else {
        format!("{text} times")
    }
}

/// `610 ms`, `1.25 s`, `80 µs`.
fn format_duration(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.2} s", ns as f64 / 1e9)
    } else if ns >= 10_000_000 {
        format!("{} ms", (ns as f64 / 1e6).round())
    } else if ns >= 1_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{} µs", ns / 1000)
    }
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

fn group_json(group: &GroupSummary) -> Value {
    json!({
        "label": group.label,
        "traces": group.traces,
        "durationMs": { "mean": ms(group.mean_ns), "p50": ms(group.p50_ns), "p95": ms(group.p95_ns) },
        "examples": group.examples.iter().map(TraceId::to_hex).collect::<Vec<_>>(),
    })
}

fn path_json(stats: &PathStats) -> Value {
    json!({
        "traces": stats.traces,
        "spansPerTrace": (stats.spans_per_trace * 100.0).round() / 100.0,
        "errors": stats.errors,
        "criticalMs": ms(stats.critical_ns),
        "criticalShare": (stats.critical_share * 1000.0).round() / 1000.0,
        "selfMeanMs": ms(stats.self_mean_ns),
        "selfP95Ms": ms(stats.self_p95_ns),
        "examples": stats.examples.iter().map(TraceId::to_hex).collect::<Vec<_>>(),
    })
}

/// `/api/analysis`'s answer.
pub fn analysis_json(analysis: &TraceAnalysis) -> Value {
    let paths: Vec<Value> = analysis
        .paths
        .iter()
        .map(|row| {
            json!({
                "path": row.key,
                "service": row.service,
                "operation": row.operation,
                "depth": row.depth,
                "criticalDeltaMs": row.critical_delta() as f64 / 1e6,
                "a": path_json(&row.groups[0]),
                "b": path_json(&row.groups[1]),
            })
        })
        .collect();
    let attributes: Vec<Value> = analysis
        .attributes
        .iter()
        .map(|row| {
            json!({
                "key": row.key,
                "value": row.value,
                "a": { "traces": row.traces[0], "share": (row.shares[0] * 1000.0).round() / 1000.0 },
                "b": { "traces": row.traces[1], "share": (row.shares[1] * 1000.0).round() / 1000.0 },
            })
        })
        .collect();
    json!({
        "matched": analysis.matched,
        "groups": { "a": group_json(&analysis.groups[0]), "b": group_json(&analysis.groups[1]) },
        "findings": analysis.findings,
        "paths": paths,
        "attributes": attributes,
        "notes": analysis.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_and_slowest_never_overlap_and_each_has_one() {
        assert_eq!(split_by_duration(0, 50, 5), (0, 0));
        assert_eq!(split_by_duration(1, 50, 5), (0, 0));
        assert_eq!(split_by_duration(2, 50, 5), (1, 1));
        assert_eq!(split_by_duration(3, 50, 50), (1, 2));
        assert_eq!(split_by_duration(100, 50, 5), (50, 5));
        assert_eq!(split_by_duration(1000, 50, 25), (500, 250));
    }

    fn trace_with(id: u8, values: impl IntoIterator<Item = String>) -> TraceFacts {
        TraceFacts {
            id: TraceId([id; 16]),
            duration_ns: 1,
            critical_ns: 1,
            paths: HashMap::new(),
            attributes: values.into_iter().map(|v| ("k".to_string(), v)).collect(),
            cut: false,
        }
    }

    #[test]
    fn attribute_values_stay_bounded_and_shared_ones_are_kept() {
        let mut group = Group::new("g".into());
        // Every trace carries `shared` and values no other trace has.
        for n in 0..40u32 {
            let unique = (0..1000).map(move |i| format!("{n}-{i}"));
            group.add(trace_with(1, unique.chain(["shared".to_string()])));
            assert!(group.attributes.len() <= MAX_ATTRIBUTES);
        }
        assert!(group.attributes_pruned && !group.attributes_full);
        assert_eq!(
            group.attributes.get(&("k".into(), "shared".into())),
            Some(&40)
        );
        // Values on two traces each fill it for good: then nothing new counts.
        let mut group = Group::new("g".into());
        for n in 0..40u32 {
            let pair = (0..1000).map(move |i| format!("{}-{i}", n / 2));
            group.add(trace_with(1, pair));
        }
        assert!(group.attributes.len() <= MAX_ATTRIBUTES);
        group.add(trace_with(1, ["late".to_string()]));
        assert!(group.attributes_full);
        assert!(!group.attributes.contains_key(&("k".into(), "late".into())));
        group.add(trace_with(1, ["later".to_string()]));
        assert_eq!(group.attributes.len(), MAX_ATTRIBUTES);
    }

    #[test]
    fn counts_and_durations_read_as_words() {
        assert_eq!(times(0.0), "none");
        assert_eq!(times(1.0), "once");
        assert_eq!(times(14.02), "14 times");
        assert_eq!(times(2.5), "2.5 times");
        assert_eq!(format_duration(610_400_000), "610 ms");
        assert_eq!(format_duration(1_250_000_000), "1.25 s");
        assert_eq!(format_duration(2_340_000), "2.3 ms");
        assert_eq!(format_duration(80_000), "80 µs");
        assert_eq!(capitalised("the slowest 5%"), "The slowest 5%");
    }
}
