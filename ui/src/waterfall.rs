//! The trace waterfall: spans in tree order with their depth and their place on the
//! time axis, and the critical path (what the trace's duration waits on).

use std::collections::{HashMap, HashSet};

use crate::api::SpanView;

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Index into the trace's spans.
    pub span: usize,
    pub depth: usize,
    pub children: usize,
    /// The parts of the span's bar on the critical path, as (offset, width) in
    /// percent of the trace's duration; empty when it is off the path.
    pub critical: Vec<(f64, f64)>,
    /// Where the bar starts and how wide it is, in percent of the trace's duration.
    pub offset_pct: f64,
    pub width_pct: f64,
}

/// Lays the spans out: depth-first, children by start time. Spans whose parent is not
/// in the trace (lost or not yet arrived) are shown as roots.
pub fn layout(spans: &[SpanView]) -> Vec<Row> {
    let shape = shape(spans);
    let (mut roots, mut children) = hopline_tree::children(&shape);
    let by_start =
        |list: &mut Vec<usize>| list.sort_by_key(|&i| (spans[i].start_us, spans[i].id.clone()));
    by_start(&mut roots);
    for list in children.values_mut() {
        by_start(list);
    }
    let start = spans.iter().map(|s| s.start_us).min().unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.start_us + s.duration_us)
        .max()
        .unwrap_or(start);
    let total = (end - start).max(1) as f64;

    let mut critical: HashMap<usize, Vec<(f64, f64)>> = HashMap::new();
    if let Some(root) = hopline_tree::main_root(&shape, &roots) {
        for (span, from, to) in hopline_tree::critical_path(root, &shape, &children) {
            critical.entry(span).or_default().push((
                (from - start) as f64 / total * 100.0,
                (to - from) as f64 / total * 100.0,
            ));
        }
    }

    let mut rows = Vec::with_capacity(spans.len());
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    let mut seen = HashSet::new();
    while let Some((i, depth)) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        let kids = children.get(&i).map(Vec::as_slice).unwrap_or_default();
        rows.push(Row {
            span: i,
            depth,
            children: kids.len(),
            critical: critical.remove(&i).unwrap_or_default(),
            offset_pct: (spans[i].start_us - start) as f64 / total * 100.0,
            width_pct: (spans[i].duration_us as f64 / total * 100.0).max(0.2),
        });
        for &kid in kids.iter().rev() {
            stack.push((kid, depth + 1));
        }
    }
    rows
}

/// The spans as the tree functions see them: times in µs, parents by index.
pub fn shape(spans: &[SpanView]) -> Vec<hopline_tree::Span> {
    let parents = hopline_tree::parents(
        spans.iter().map(|s| s.id.as_bytes()),
        spans.iter().map(|s| s.parent.as_deref().map(str::as_bytes)),
    );
    spans
        .iter()
        .zip(parents)
        .map(|(span, parent)| hopline_tree::Span {
            start: span.start_us,
            end: span.start_us + span.duration_us,
            parent,
        })
        .collect()
}

/// What one operation of one service took in a trace, as Jaeger's trace
/// statistics show it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperationStats {
    pub service: String,
    pub operation: String,
    pub count: usize,
    /// Summed durations, µs.
    pub total_us: u64,
    /// Summed self time (a span's duration less what its children cover), µs.
    pub self_us: u64,
    pub min_us: u64,
    pub max_us: u64,
    pub errors: usize,
}

impl OperationStats {
    pub fn avg_us(&self) -> u64 {
        self.total_us / self.count.max(1) as u64
    }
}

/// Each span's self time: its duration less the union of its children's
/// intervals (clipped to it), µs; by index into `spans`.
pub fn self_times(spans: &[SpanView]) -> Vec<u64> {
    hopline_tree::self_times(&shape(spans))
}

/// Per service and operation: count, total and self time, min, average, max,
/// errors; the most total time first.
pub fn statistics(spans: &[SpanView]) -> Vec<OperationStats> {
    let self_times = self_times(spans);
    let mut groups: HashMap<(&str, &str), OperationStats> = HashMap::new();
    for (span, self_us) in spans.iter().zip(self_times) {
        let stats = groups
            .entry((span.service.as_str(), span.name.as_str()))
            .or_insert_with(|| OperationStats {
                service: span.service.clone(),
                operation: span.name.clone(),
                min_us: u64::MAX,
                ..OperationStats::default()
            });
        stats.count += 1;
        stats.total_us += span.duration_us;
        stats.self_us += self_us;
        stats.min_us = stats.min_us.min(span.duration_us);
        stats.max_us = stats.max_us.max(span.duration_us);
        stats.errors += usize::from(span.error);
    }
    let mut rows: Vec<OperationStats> = groups.into_values().collect();
    rows.sort_by(|a, b| {
        b.total_us
            .cmp(&a.total_us)
            .then_with(|| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)))
    });
    rows
}

/// The ids of `span`'s ancestors in the trace, nearest first.
pub fn ancestors(spans: &[SpanView], span: &str) -> Vec<String> {
    let parents: HashMap<&str, &str> = spans
        .iter()
        .filter_map(|s| Some((s.id.as_str(), s.parent.as_deref()?)))
        .collect();
    let ids: HashSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut current = span;
    // Stops at a parent that is not in the trace, or at a cycle.
    while let Some(&parent) = parents.get(current) {
        if !ids.contains(parent) || !seen.insert(parent) {
            break;
        }
        out.push(parent.to_string());
        current = parent;
    }
    out
}

/// Where a bar's duration label goes so that it neither covers another bar's
/// space nor runs off the lane: right of the bar, else left of it, else (a bar
/// across nearly the whole lane) inside its right end. Positions in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LabelPlace {
    /// `left:` this.
    After(f64),
    /// `right:` this.
    Before(f64),
    /// `right:` this, on the bar.
    Inside(f64),
}

/// Room a label needs beside its bar, in percent of the lane.
const LABEL_ROOM: f64 = 12.0;

pub fn label_place(offset_pct: f64, width_pct: f64) -> LabelPlace {
    let end = offset_pct + width_pct;
    if end <= 100.0 - LABEL_ROOM {
        LabelPlace::After(end)
    } else if offset_pct >= LABEL_ROOM {
        LabelPlace::Before(100.0 - offset_pct)
    } else {
        LabelPlace::Inside((100.0 - end).max(0.0))
    }
}

/// The part of a trace's time the waterfall shows: `[from, to]` in percent of
/// the trace's duration (`view=12.5-40` in the URL).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Zoom {
    pub from: f64,
    pub to: f64,
}

impl Zoom {
    pub const ALL: Zoom = Zoom {
        from: 0.0,
        to: 100.0,
    };

    /// `12.5-40`; `None` for anything but two percentages in order, at least a
    /// hundredth of a percent apart.
    pub fn parse(text: &str) -> Option<Zoom> {
        let (from, to) = text.split_once('-')?;
        let (from, to) = (
            from.trim().parse::<f64>().ok()?,
            to.trim().parse::<f64>().ok()?,
        );
        (from.is_finite() && to.is_finite() && 0.0 <= from && from + 0.01 <= to && to <= 100.0)
            .then_some(Zoom { from, to })
    }

    /// Around `from` and `to` (either order), widened to at least one percent.
    pub fn between(a: f64, b: f64) -> Zoom {
        let (mut from, mut to) = (a.min(b).clamp(0.0, 100.0), a.max(b).clamp(0.0, 100.0));
        if to - from < 1.0 {
            let middle = (from + to) / 2.0;
            from = (middle - 0.5).clamp(0.0, 99.0);
            to = from + 1.0;
        }
        Zoom { from, to }
    }

    pub fn param(&self) -> String {
        format!("{:.2}-{:.2}", self.from, self.to)
    }

    /// A bar at `offset` and `width` (percent of the trace) in this window's
    /// percent, cut to it; `None` when it lies outside.
    pub fn place(&self, offset: f64, width: f64) -> Option<(f64, f64)> {
        let scale = 100.0 / (self.to - self.from);
        let left = (offset - self.from) * scale;
        let right = (offset + width - self.from) * scale;
        if right < 0.0 || left > 100.0 {
            return None;
        }
        let (left, right) = (left.max(0.0), right.min(100.0));
        Some((left, (right - left).max(0.2)))
    }
}

/// Rows shown at once: a trace of 10,000 spans is read a window at a time.
pub const WINDOW: usize = 1000;

/// The window of `total` visible rows to render: the one holding the selected row,
/// else the one starting at `from` (rounded down to a window boundary), else the first.
pub fn window(
    total: usize,
    selected: Option<usize>,
    from: Option<usize>,
) -> std::ops::Range<usize> {
    if total <= WINDOW {
        return 0..total;
    }
    let anchor = selected.or(from).unwrap_or(0).min(total - 1);
    let start = anchor / WINDOW * WINDOW;
    start..(start + WINDOW).min(total)
}

/// The rows left visible when the subtrees under `collapsed` span ids are folded.
pub fn visible<'a>(
    rows: &'a [Row],
    spans: &[SpanView],
    collapsed: &HashSet<String>,
) -> Vec<&'a Row> {
    let mut out = Vec::with_capacity(rows.len());
    let mut hide_below: Option<usize> = None;
    for row in rows {
        if let Some(depth) = hide_below {
            if row.depth > depth {
                continue;
            }
            hide_below = None;
        }
        if collapsed.contains(&spans[row.span].id) {
            hide_below = Some(row.depth);
        }
        out.push(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start: u64, duration: u64) -> SpanView {
        SpanView {
            id: id.into(),
            parent: parent.map(str::to_string),
            service: "svc".into(),
            name: id.into(),
            start_us: start,
            duration_us: duration,
            ..SpanView::default()
        }
    }

    #[test]
    fn rows_come_depth_first_with_children_by_start() {
        let spans = vec![
            span("c2", Some("root"), 50, 40),
            span("root", None, 0, 100),
            span("c1", Some("root"), 10, 30),
            span("g1", Some("c1"), 15, 10),
        ];
        let order: Vec<(&str, usize)> = layout(&spans)
            .iter()
            .map(|r| (spans[r.span].id.as_str(), r.depth))
            .collect();
        assert_eq!(order, vec![("root", 0), ("c1", 1), ("g1", 2), ("c2", 1)]);
        let rows = layout(&spans);
        assert_eq!(rows[0].width_pct, 100.0);
        assert_eq!(rows[3].offset_pct, 50.0);
    }

    #[test]
    fn the_critical_path_follows_what_finishes_last() {
        // root [0,100]: a [0,40] then b [45,95] in sequence; c [10,20] overlaps a.
        let spans = vec![
            span("root", None, 0, 100),
            span("a", Some("root"), 0, 40),
            span("b", Some("root"), 45, 50),
            span("c", Some("root"), 10, 10),
        ];
        let rows = layout(&spans);
        let critical: Vec<&str> = rows
            .iter()
            .filter(|r| !r.critical.is_empty())
            .map(|r| spans[r.span].id.as_str())
            .collect();
        assert_eq!(critical, vec!["root", "a", "b"]);
        // The root holds the path only where no child does: [40,45] and [95,100].
        let mut root = rows[0].critical.clone();
        root.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert_eq!(root, vec![(40.0, 5.0), (95.0, 5.0)]);
        assert_eq!(rows[1].critical, vec![(0.0, 40.0)]);
    }

    #[test]
    fn a_short_span_gets_a_short_segment() {
        // A 750 µs call whose last 80 µs is a query: the query's segment is 80 µs.
        let spans = vec![
            span("root", None, 0, 1000),
            span("call", Some("root"), 100, 750),
            span("query", Some("call"), 770, 80),
        ];
        let rows = layout(&spans);
        let width = |id: &str| -> f64 {
            let row = rows.iter().find(|r| spans[r.span].id == id).expect("row");
            row.critical.iter().map(|c| c.1).sum()
        };
        assert_eq!(width("query"), 8.0);
        assert_eq!(width("call"), 67.0);
        assert_eq!(width("root"), 25.0);
    }

    #[test]
    fn a_deep_trace_does_not_exhaust_the_stack() {
        let spans: Vec<SpanView> = (0..100_000u64)
            .map(|i| {
                let parent = (i > 0).then(|| (i - 1).to_string());
                span(&i.to_string(), parent.as_deref(), i, 200_000 - 2 * i)
            })
            .collect();
        let rows = layout(&spans);
        assert!(rows.iter().all(|r| !r.critical.is_empty()));
    }

    #[test]
    fn collapsing_hides_a_subtree() {
        let spans = vec![
            span("root", None, 0, 100),
            span("a", Some("root"), 0, 40),
            span("a1", Some("a"), 1, 10),
            span("b", Some("root"), 45, 50),
        ];
        let rows = layout(&spans);
        let collapsed: HashSet<String> = ["a".to_string()].into();
        let shown: Vec<&str> = visible(&rows, &spans, &collapsed)
            .iter()
            .map(|r| spans[r.span].id.as_str())
            .collect();
        assert_eq!(shown, vec!["root", "a", "b"]);
    }

    #[test]
    fn huge_traces_are_read_a_window_at_a_time() {
        assert_eq!(window(10, None, None), 0..10);
        assert_eq!(window(10_000, None, None), 0..1000);
        assert_eq!(
            window(10_000, Some(4321), Some(0)),
            4000..5000,
            "the selection wins"
        );
        assert_eq!(window(10_000, None, Some(9_999)), 9000..10_000);
        assert_eq!(window(2_500, None, Some(99_999)), 2000..2500);
    }

    #[test]
    fn statistics_sum_per_operation_with_self_time() {
        // root [0,100] calls "q" twice: [10,30] and [20,50] (overlapping) and "r"
        // [60,70]; the root's own time is 100 - 40 (10..50) - 10.
        let mut spans = vec![
            span("root", None, 0, 100),
            span("q1", Some("root"), 10, 20),
            span("q2", Some("root"), 20, 30),
            span("r", Some("root"), 60, 10),
        ];
        spans[1].name = "q".into();
        spans[2].name = "q".into();
        spans[2].error = true;
        let stats = statistics(&spans);
        let q = stats.iter().find(|s| s.operation == "q").expect("q");
        assert_eq!(
            (
                q.count,
                q.total_us,
                q.min_us,
                q.max_us,
                q.avg_us(),
                q.errors
            ),
            (2, 50, 20, 30, 25, 1)
        );
        let root = &stats[0];
        assert_eq!((root.operation.as_str(), root.self_us), ("root", 50));
        assert_eq!(self_times(&spans), vec![50, 20, 30, 10]);
    }

    #[test]
    fn ancestors_walk_up_to_the_root() {
        let spans = vec![
            span("root", None, 0, 100),
            span("a", Some("root"), 0, 40),
            span("a1", Some("a"), 1, 10),
            span("lost", Some("gone"), 1, 10),
        ];
        assert_eq!(
            ancestors(&spans, "a1"),
            vec!["a".to_string(), "root".to_string()]
        );
        assert!(ancestors(&spans, "lost").is_empty());
    }

    #[test]
    fn duration_labels_go_where_there_is_room() {
        assert_eq!(label_place(10.0, 30.0), LabelPlace::After(40.0));
        assert_eq!(label_place(60.0, 35.0), LabelPlace::Before(40.0));
        assert_eq!(label_place(0.0, 100.0), LabelPlace::Inside(0.0));
    }

    #[test]
    fn a_zoomed_window_cuts_and_stretches_bars() {
        assert_eq!(
            Zoom::parse("10-60"),
            Some(Zoom {
                from: 10.0,
                to: 60.0
            })
        );
        for bad in ["60-10", "-5-10", "0-101", "x-y", "10", "NaN-5", "5-5"] {
            assert_eq!(Zoom::parse(bad), None, "{bad}");
        }
        let zoom = Zoom {
            from: 50.0,
            to: 100.0,
        };
        assert_eq!(zoom.place(0.0, 100.0), Some((0.0, 100.0)));
        assert_eq!(zoom.place(60.0, 10.0), Some((20.0, 20.0)));
        assert_eq!(zoom.place(10.0, 20.0), None);
        assert_eq!(
            Zoom::between(70.0, 40.0),
            Zoom {
                from: 40.0,
                to: 70.0
            }
        );
        let narrow = Zoom::between(50.0, 50.2);
        assert!((narrow.to - narrow.from - 1.0).abs() < 1e-9, "{narrow:?}");
        assert_eq!(Zoom::parse(&zoom.param()), Some(zoom));
    }

    #[test]
    fn orphans_become_roots() {
        let spans = vec![span("x", Some("missing"), 5, 5), span("y", None, 0, 20)];
        assert_eq!(layout(&spans).iter().filter(|r| r.depth == 0).count(), 2);
    }
}
