//! The shape of one trace, computed the same way by the collector (the analysis
//! over many traces) and by the web UI (the waterfall, the trace statistics, the
//! comparison of two traces): which span is whose child, the critical path, each
//! span's self time and its path key.
//!
//! Spans are given by index, as [`Span`]s: their time on one clock and their
//! parent's index. Nothing here recurses, so a trace nested thousands deep is
//! walked in constant stack.

use std::collections::{HashMap, HashSet};

/// A span as the tree sees it: start and end on one clock (any unit), and the
/// index of its parent when the parent is in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub parent: Option<usize>,
}

impl Span {
    pub fn duration(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// The parent's index of each span, given each span's id and its parent's id:
/// `None` for a span whose parent is not in the trace, or is itself.
pub fn parents<'a>(
    ids: impl IntoIterator<Item = &'a [u8]>,
    parent_ids: impl IntoIterator<Item = Option<&'a [u8]>>,
) -> Vec<Option<usize>> {
    let index: HashMap<&[u8], usize> = ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect();
    parent_ids
        .into_iter()
        .enumerate()
        .map(|(i, parent)| {
            parent
                .and_then(|p| index.get(p).copied())
                .filter(|&p| p != i)
        })
        .collect()
}

/// The spans without a parent in the trace, and each span's children, both in
/// index order.
pub fn children(spans: &[Span]) -> (Vec<usize>, HashMap<usize, Vec<usize>>) {
    let mut roots = Vec::new();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        match span.parent {
            Some(parent) => children.entry(parent).or_default().push(i),
            None => roots.push(i),
        }
    }
    (roots, children)
}

/// The root whose critical path stands for the trace: the longest of its roots.
pub fn main_root(spans: &[Span], roots: &[usize]) -> Option<usize> {
    roots.iter().copied().max_by_key(|&i| spans[i].duration())
}

/// The critical path under `root`, as Jaeger draws it: the segments (span, from,
/// to) that the root's end waits on. Walking back from a span's end, the child
/// that finishes last (before that point) holds the path until its own start,
/// and the span itself holds the gaps between such children. The segments add
/// up to the root's duration.
pub fn critical_path(
    root: usize,
    spans: &[Span],
    children: &HashMap<usize, Vec<usize>>,
) -> Vec<(usize, u64, u64)> {
    let mut segments = Vec::new();
    let mut visited = HashSet::new();
    // (span, the point its part of the path ends at)
    let mut work = vec![(root, spans[root].end)];
    while let Some((span, until)) = work.pop() {
        if !visited.insert(span) {
            continue;
        }
        let start = spans[span].start;
        let mut frontier = until.min(spans[span].end).max(start);
        let mut kids: Vec<usize> = children.get(&span).cloned().unwrap_or_default();
        kids.sort_by_key(|&kid| std::cmp::Reverse(spans[kid].end));
        for kid in kids {
            if frontier <= start {
                break;
            }
            // A child that started after the frontier is off the path; one that
            // ends after it (clock skew, async work) holds the path up to it.
            if spans[kid].start >= frontier {
                continue;
            }
            let kid_end = spans[kid].end.min(frontier);
            if kid_end < frontier {
                segments.push((span, kid_end, frontier));
            }
            work.push((kid, kid_end));
            frontier = spans[kid].start.max(start);
        }
        if frontier > start {
            segments.push((span, start, frontier));
        }
    }
    segments
}

/// Each span's self time: its duration less the union of its children's
/// intervals (clipped to it).
pub fn self_times(spans: &[Span]) -> Vec<u64> {
    let mut intervals: HashMap<usize, Vec<(u64, u64)>> = HashMap::new();
    for span in spans {
        if let Some(parent) = span.parent {
            intervals
                .entry(parent)
                .or_default()
                .push((span.start, span.end));
        }
    }
    spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            let mut covered = 0;
            let mut kids = intervals.remove(&i).unwrap_or_default();
            kids.sort_unstable();
            let mut reach = span.start;
            for (from, to) in kids {
                let (from, to) = (from.max(reach), to.min(span.end));
                if to > from {
                    covered += to - from;
                    reach = to;
                }
            }
            span.duration().saturating_sub(covered)
        })
        .collect()
}

/// Segments a path key holds; a span nested deeper is keyed as its ancestor at
/// this depth, then `…`, then itself, so keys stay short in any trace.
pub const MAX_PATH_DEPTH: usize = 32;

/// What separates the segments of a path key.
pub const PATH_SEPARATOR: &str = " › ";

/// Each span's path key: its label (e.g. `service: operation`) after its
/// ancestors' labels, root first, joined by [`PATH_SEPARATOR`]. Spans on the same
/// path in two traces get the same key, which is what the comparison of two
/// traces and the analysis of many line up.
pub fn path_keys(spans: &[Span], labels: &[String]) -> Vec<String> {
    let (roots, children) = children(spans);
    let mut keys = vec![String::new(); spans.len()];
    // For a span nested past MAX_PATH_DEPTH: its ancestor whose key it extends.
    let mut anchors: Vec<Option<usize>> = vec![None; spans.len()];
    // (span, depth), parents before children.
    let mut work: Vec<(usize, usize)> = roots.iter().map(|&r| (r, 0)).collect();
    let mut seen = HashSet::new();
    while let Some((span, depth)) = work.pop() {
        if !seen.insert(span) {
            continue;
        }
        let label = &labels[span];
        keys[span] = match spans[span].parent {
            None => label.clone(),
            Some(parent) if depth < MAX_PATH_DEPTH => {
                format!("{}{PATH_SEPARATOR}{label}", keys[parent])
            }
            Some(parent) => {
                let anchor = anchors[parent].unwrap_or(parent);
                anchors[span] = Some(anchor);
                format!("{}{PATH_SEPARATOR}…{PATH_SEPARATOR}{label}", keys[anchor])
            }
        };
        for &kid in children.get(&span).map(Vec::as_slice).unwrap_or_default() {
            work.push((kid, depth + 1));
        }
    }
    // Spans on a cycle of parents (no root reaches them): their label alone.
    for (key, label) in keys.iter_mut().zip(labels) {
        if key.is_empty() {
            key.clone_from(label);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, duration: u64, parent: Option<usize>) -> Span {
        Span {
            start,
            end: start + duration,
            parent,
        }
    }

    #[test]
    fn the_critical_path_follows_what_finishes_last() {
        // root [0,100]: a [0,40] then b [45,95] in sequence; c [10,20] overlaps a.
        let spans = vec![
            span(0, 100, None),
            span(0, 40, Some(0)),
            span(45, 50, Some(0)),
            span(10, 10, Some(0)),
        ];
        let (roots, kids) = children(&spans);
        let mut path = critical_path(main_root(&spans, &roots).expect("root"), &spans, &kids);
        path.sort_unstable();
        assert_eq!(
            path,
            vec![(0, 40, 45), (0, 95, 100), (1, 0, 40), (2, 45, 95)]
        );
        let total: u64 = path.iter().map(|(_, from, to)| to - from).sum();
        assert_eq!(total, 100, "the segments add up to the root's duration");
    }

    #[test]
    fn self_time_is_the_duration_less_what_children_cover() {
        // root [0,100] calls q [10,30] and q [20,50] (overlapping) and r [60,70].
        let spans = vec![
            span(0, 100, None),
            span(10, 20, Some(0)),
            span(20, 30, Some(0)),
            span(60, 10, Some(0)),
        ];
        assert_eq!(self_times(&spans), vec![50, 20, 30, 10]);
    }

    #[test]
    fn parents_are_found_by_id_and_a_missing_or_own_parent_is_none() {
        let ids: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d"];
        let parent_ids: Vec<Option<&[u8]>> = vec![None, Some(b"a"), Some(b"x"), Some(b"d")];
        assert_eq!(parents(ids, parent_ids), vec![None, Some(0), None, None]);
    }

    #[test]
    fn path_keys_join_the_labels_of_ancestors() {
        let spans = vec![
            span(0, 100, None),
            span(0, 40, Some(0)),
            span(1, 10, Some(1)),
        ];
        let labels: Vec<String> = ["gw: GET", "db: SELECT", "disk: read"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            path_keys(&spans, &labels),
            vec![
                "gw: GET",
                "gw: GET › db: SELECT",
                "gw: GET › db: SELECT › disk: read"
            ]
        );
    }

    #[test]
    fn deep_traces_get_short_keys_and_no_deep_stack() {
        let spans: Vec<Span> = (0..100_000u64)
            .map(|i| span(i, 200_000 - 2 * i, (i > 0).then(|| i as usize - 1)))
            .collect();
        let labels: Vec<String> = (0..spans.len()).map(|i| format!("s{i}")).collect();
        let keys = path_keys(&spans, &labels);
        let depth = |key: &str| key.split(PATH_SEPARATOR).count();
        assert_eq!(depth(&keys[MAX_PATH_DEPTH - 1]), MAX_PATH_DEPTH);
        assert_eq!(
            keys[99_999],
            format!("{} › … › s99999", keys[MAX_PATH_DEPTH - 1])
        );
        assert!(keys.iter().all(|key| depth(key) <= MAX_PATH_DEPTH + 2));
        let (roots, kids) = children(&spans);
        assert_eq!(critical_path(roots[0], &spans, &kids).len(), 199_999);
    }
}
