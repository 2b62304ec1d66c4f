//! `/trace/{a}...{b}`: two traces compared, span path by span path, with the logs of
//! each.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{load_trace, TraceView};
use crate::components::{ErrorBox, LogTable, NotFound};
use crate::format;
use crate::waterfall::{layout, shape};
use hopline_tree::PATH_SEPARATOR;

/// What a comparison knows of one span path in one trace.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct PathStats {
    count: usize,
    /// Summed durations, µs.
    total_us: u64,
    errors: usize,
}

/// Each span's key in a comparison (its service and operation, with its
/// ancestors'), in tree order, with what the trace's spans on that path add up to.
fn path_keys(trace: &TraceView) -> Vec<(String, PathStats)> {
    let labels: Vec<String> = trace
        .spans
        .iter()
        .map(|span| format!("{}: {}", span.service, span.name))
        .collect();
    let keys = hopline_tree::path_keys(&shape(&trace.spans), &labels);
    let mut order: Vec<(String, PathStats)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in layout(&trace.spans) {
        let span = &trace.spans[row.span];
        let key = &keys[row.span];
        let i = *index.entry(key.clone()).or_insert_with(|| {
            order.push((key.clone(), PathStats::default()));
            order.len() - 1
        });
        let stats = &mut order[i].1;
        stats.count += 1;
        stats.total_us += span.duration_us;
        stats.errors += usize::from(span.error);
    }
    order
}

/// The paths of both traces in tree order: A's, with each path only B has put
/// after its parent's subtree.
fn merged_paths(
    a: Vec<(String, PathStats)>,
    b: Vec<(String, PathStats)>,
) -> Vec<(String, Option<PathStats>, Option<PathStats>)> {
    let mut rows: Vec<(String, Option<PathStats>, Option<PathStats>)> = a
        .into_iter()
        .map(|(key, stats)| (key, Some(stats), None))
        .collect();
    for (key, stats) in b {
        if let Some(row) = rows.iter_mut().find(|row| row.0 == key) {
            row.2 = Some(stats);
            continue;
        }
        let at = match key.rsplit_once(PATH_SEPARATOR) {
            Some((parent, _)) => {
                let prefix = format!("{parent}{PATH_SEPARATOR}");
                rows.iter()
                    .rposition(|row| row.0 == parent || row.0.starts_with(&prefix))
                    .map_or(rows.len(), |i| i + 1)
            }
            None => rows.len(),
        };
        rows.insert(at, (key, None, Some(stats)));
    }
    rows
}

fn side(stats: Option<PathStats>) -> String {
    match stats {
        None => "—".to_string(),
        Some(s) => {
            let errors = if s.errors > 0 {
                format!(" · ⚠ {}", s.errors)
            } else {
                String::new()
            };
            format!("{}× {}{errors}", s.count, format::duration(s.total_us))
        }
    }
}

/// Traces `a` and `b` side by side.
#[component]
pub fn ComparePage(a: String, b: String) -> impl IntoView {
    let short = |id: &str| id.get(..7).unwrap_or(id).to_string();
    let title = format!("Compare traces {} and {}", short(&a), short(&b));
    let (a_id, b_id) = (a.clone(), b.clone());
    let traces = Resource::new(
        move || (a.clone(), b.clone()),
        |(a, b)| async move { Ok::<_, ServerFnError>((load_trace(a).await?, load_trace(b).await?)) },
    );
    view! {
        <Title text=title/>
        <Suspense fallback=|| view! { <p class="loading">"Loading traces…"</p> }>
            {move || {
                let (a_id, b_id) = (a_id.clone(), b_id.clone());
                Suspend::new(async move {
                match traces.await {
                    Ok((Some(a), Some(b))) => {
                        let rows = merged_paths(path_keys(&a), path_keys(&b))
                            .into_iter()
                            .map(|(key, sa, sb)| {
                                let (mut class, change) = match (sa, sb) {
                                    (Some(_), None) => ("only-a".to_string(), "only in A".to_string()),
                                    (None, Some(_)) => ("only-b".to_string(), "only in B".to_string()),
                                    (Some(x), Some(y)) => {
                                        let sign = if y.total_us >= x.total_us { "+" } else { "−" };
                                        let change = format::duration(y.total_us.abs_diff(x.total_us));
                                        ("both".to_string(), format!("{sign}{change}"))
                                    }
                                    (None, None) => (String::new(), String::new()),
                                };
                                let errors = |s: Option<PathStats>| s.map_or(0, |s| s.errors);
                                if errors(sa) != errors(sb) {
                                    class.push_str(" errors-differ");
                                }
                                view! {
                                    <tr class=class>
                                        <td>{key}</td>
                                        <td class="num">{side(sa)}</td>
                                        <td class="num">{side(sb)}</td>
                                        <td class="num">{change}</td>
                                    </tr>
                                }
                            })
                            .collect_view();
                        let a_duration = format!(" ({})", format::duration(a.duration_us()));
                        let b_duration = format!(" ({})", format::duration(b.duration_us()));
                        view! {
                            <section class="compare">
                                <h1>"Trace comparison"</h1>
                                <p>
                                    "A: "<a href=format!("/trace/{}", a.id)>{a.id.clone()}</a>
                                    {a_duration}
                                    " · B: "<a href=format!("/trace/{}", b.id)>{b.id.clone()}</a>
                                    {b_duration}
                                </p>
                                <table class="diff"><tbody>
                                    <tr>
                                        <th>"Span path"</th>
                                        <th>"A"</th>
                                        <th>"B"</th>
                                        <th>"Difference"</th>
                                    </tr>
                                    {rows}
                                </tbody></table>
                                <p class="legend">
                                    "Each row is a span path (service: operation under its \
                                     ancestors), in tree order: how many spans, their summed \
                                     time and errors (⚠) in A and in B."
                                </p>
                                <h2>"Logs of A"</h2><LogTable logs=a.logs.clone() spans=Vec::new()/>
                                <h2>"Logs of B"</h2><LogTable logs=b.logs.clone() spans=Vec::new()/>
                            </section>
                        }.into_any()
                    }
                    Ok((a, b)) => {
                        let missing: Vec<String> = [("A", &a_id, a.is_none()), ("B", &b_id, b.is_none())]
                            .into_iter()
                            .filter(|(_, _, missing)| *missing)
                            .map(|(name, id, _)| format!("{name} ({id})"))
                            .collect();
                        view! {
                            <NotFound
                                title="A trace to compare is missing".to_string()
                                message=format!(
                                    "Trace {} is not here: it may not have arrived yet, or it is \
                                     older than the retention window.",
                                    missing.join(" and trace ")
                                )
                            />
                        }.into_any()
                    }
                    Err(e) => view! { <ErrorBox message=crate::api::problem(&e)/> }.into_any(),
                }
                })
            }}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(count: usize) -> PathStats {
        PathStats {
            count,
            total_us: 10 * count as u64,
            errors: 0,
        }
    }

    #[test]
    fn paths_only_b_has_sit_under_their_parent_in_tree_order() {
        let a = vec![
            ("g: GET".to_string(), stats(1)),
            ("g: GET › o: POST".to_string(), stats(1)),
            ("g: GET › o: POST › db: SELECT".to_string(), stats(1)),
            ("g: GET › u: GET".to_string(), stats(1)),
        ];
        let b = vec![
            ("g: GET".to_string(), stats(1)),
            ("g: GET › o: POST".to_string(), stats(1)),
            ("g: GET › o: POST › db: SELECT".to_string(), stats(14)),
            ("g: GET › o: POST › mq: publish".to_string(), stats(1)),
            ("x: orphan".to_string(), stats(1)),
        ];
        let rows = merged_paths(a, b);
        let keys: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "g: GET",
                "g: GET › o: POST",
                "g: GET › o: POST › db: SELECT",
                "g: GET › o: POST › mq: publish",
                "g: GET › u: GET",
                "x: orphan",
            ]
        );
        assert_eq!(rows[2].2.map(|s| s.count), Some(14));
        assert_eq!((rows[4].1.is_some(), rows[4].2.is_none()), (true, true));
        assert_eq!(side(rows[3].2), "1× 10µs");
        assert_eq!(side(None), "—");
    }
}
