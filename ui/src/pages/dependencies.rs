//! `/dependencies?lookback=`: the service map, drawn from `/api/dependencies`.

use std::collections::{BTreeMap, BTreeSet};

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{load_dependencies, Dependency};
use crate::components::{
    lookback_ms, ErrorBox, LookbackSelect, ServiceColours, MAP_LOOKBACKS, NO_DATA_HINT,
};
use crate::tags::encode;

/// Columns by call depth (callers left of callees), rows in name order.
pub(crate) fn place(links: &[Dependency]) -> BTreeMap<String, (usize, usize)> {
    let nodes: BTreeSet<&str> = links
        .iter()
        .flat_map(|l| [l.parent.as_str(), l.child.as_str()])
        .collect();
    let mut column: BTreeMap<&str, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    // Longest path from a source, bounded by the node count (cycles stop there).
    for _ in 0..nodes.len() {
        let mut changed = false;
        for link in links {
            let next = column[link.parent.as_str()] + 1;
            if link.parent != link.child && next < nodes.len() && next > column[link.child.as_str()]
            {
                column.insert(link.child.as_str(), next);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut rows_used: BTreeMap<usize, usize> = BTreeMap::new();
    column
        .into_iter()
        .map(|(node, col)| {
            let row = rows_used.entry(col).or_default();
            *row += 1;
            (node.to_string(), (col, *row - 1))
        })
        .collect()
}

#[component]
pub fn DependenciesPage() -> impl IntoView {
    let query = use_query_map();
    let lookback = Memo::new(move |_| query.read().get("lookback").unwrap_or_else(|| "1h".into()));
    let links = Resource::new(
        move || lookback.get(),
        |lookback| async move {
            let ms = match lookback_ms(&lookback) {
                Ok(ms) => ms,
                Err(message) => {
                    #[cfg(feature = "ssr")]
                    crate::ssr::set_status(400);
                    return Err(message);
                }
            };
            load_dependencies(ms)
                .await
                .map_err(|e| crate::api::problem(&e))
        },
    );
    view! {
        <Title text="Service map"/>
        <section class="dependencies">
            <form method="get" action="/dependencies" class="filters">
                <label>"Window"
                    <LookbackSelect options=MAP_LOOKBACKS selected=lookback.into()/>
                </label>
                <button type="submit">"Show"</button>
            </form>
            <Suspense fallback=|| view! { <p class="loading">"Loading the service map…"</p> }>
                {move || Suspend::new(async move {
                    match links.await {
                        Ok(links) if links.is_empty() => view! {
                            <p class="empty">
                                "No calls between services in this window. "{NO_DATA_HINT}
                            </p>
                        }.into_any(),
                        Ok(links) => view! { <Graph links=links/> }.into_any(),
                        Err(message) => view! { <ErrorBox message=message/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// `3 (2.5%)`, or `0`.
pub(crate) fn error_rate(errors: u64, calls: u64) -> String {
    if errors == 0 {
        return "0".into();
    }
    format!(
        "{errors} ({:.1}%)",
        errors as f64 * 100.0 / calls.max(1) as f64
    )
}

fn edge_label(link: &Dependency) -> String {
    let calls = crate::format::plural(link.calls as usize, "call");
    let mut label = if link.errors == 0 {
        calls
    } else {
        format!("{calls}, {} failed", error_rate(link.errors, link.calls))
    };
    if link.p95.is_some() {
        label.push_str(&format!(", p95 {}", crate::format::latency_ms(link.p95)));
    }
    label
}

#[component]
fn Graph(links: Vec<Dependency>) -> impl IntoView {
    let places = place(&links);
    let colours = ServiceColours::assign(places.keys().map(String::as_str));
    let columns = places.values().map(|(c, _)| c + 1).max().unwrap_or(1);
    let rows = places.values().map(|(_, r)| r + 1).max().unwrap_or(1);
    let (cw, rh, nw, nh) = (340.0, 90.0, 170.0, 40.0);
    let (w, h) = (columns as f64 * cw + 40.0, rows as f64 * rh + 40.0);
    let centre = |node: &str| {
        let (c, r) = places.get(node).copied().unwrap_or_default();
        (
            30.0 + c as f64 * cw + nw / 2.0,
            30.0 + r as f64 * rh + nh / 2.0,
        )
    };
    view! {
        <svg
            class="service-map"
            viewBox=format!("0 0 {w} {h}")
            role="group"
            aria-label="service map: each service opens its trace search"
        >
            <defs>
                <marker
                    id="arrow"
                    viewBox="0 0 10 10"
                    refX="10"
                    refY="5"
                    markerWidth="8"
                    markerHeight="8"
                    orient="auto-start-reverse"
                >
                    <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/>
                </marker>
            </defs>
            {links.iter().map(|l| {
                let (x1, y1) = centre(&l.parent);
                let (x2, y2) = centre(&l.child);
                let (x1, x2) = if x2 > x1 { (x1 + nw / 2.0, x2 - nw / 2.0) } else { (x1, x2) };
                view! {
                    <g
                        class={if l.errors > 0 { "edge failing" } else { "edge" }}
                        data-parent=l.parent.clone()
                        data-child=l.child.clone()
                    >
                        <line x1=x1 y1=y1 x2=x2 y2=y2 marker-end="url(#arrow)"/>
                        <text x=(x1 + x2) / 2.0 y=(y1 + y2) / 2.0 - 6.0 class="calls">
                            {(l.errors > 0).then_some("⚠ ")}
                            {edge_label(l)}
                        </text>
                    </g>
                }
            }).collect_view()}
            {places.iter().map(|(node, (c, r))| {
                let (x, y) = (30.0 + *c as f64 * cw, 30.0 + *r as f64 * rh);
                view! {
                    <a
                        href=format!("/search?service={}", encode(node))
                        class="node"
                        data-service=node.clone()
                    >
                        <rect
                            x=x
                            y=y
                            width=nw
                            height=nh
                            rx=8
                            style=format!("stroke:{}", colours.of(node))
                        />
                        <text x=x + nw / 2.0 y=y + nh / 2.0 + 5.0>{node.clone()}</text>
                    </a>
                }
            }).collect_view()}
        </svg>
        <table class="edges"><tbody>
            <tr><th>"Caller"</th><th>"Callee"</th><th>"Calls"</th><th>"Errors"</th><th>"p95"</th></tr>
            {links.into_iter().map(|l| view! {
                <tr>
                    <td>{l.parent}</td>
                    <td>{l.child}</td>
                    <td>{l.calls}</td>
                    <td>{error_rate(l.errors, l.calls)}</td>
                    <td>{crate::format::latency_ms(l.p95)}</td>
                </tr>
            }).collect_view()}
        </tbody></table>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(parent: &str, child: &str) -> Dependency {
        Dependency {
            parent: parent.into(),
            child: child.into(),
            calls: 1,
            errors: 0,
            p95: None,
        }
    }

    #[test]
    fn callers_sit_left_of_their_callees() {
        let places = place(&[
            link("gateway", "orders"),
            link("orders", "users"),
            link("gateway", "users"),
            link("orders", "email"),
        ]);
        assert_eq!(places["gateway"].0, 0);
        assert_eq!(places["orders"].0, 1);
        assert_eq!(places["users"].0, 2);
        assert_eq!(places["email"].0, 2);
        assert_ne!(places["users"].1, places["email"].1);
    }

    #[test]
    fn error_rates_read_as_counts_and_shares() {
        assert_eq!(error_rate(0, 10), "0");
        assert_eq!(error_rate(1, 8), "1 (12.5%)");
    }

    #[test]
    fn cycles_do_not_loop_forever() {
        let places = place(&[link("a", "b"), link("b", "a")]);
        assert_eq!(places.len(), 2);
    }
}
