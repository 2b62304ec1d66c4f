//! `/trace/{a}...{b}`: two traces compared, span path by span path, with the logs of
//! each.

use std::collections::{BTreeMap, BTreeSet};

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{load_trace, TraceView};
use crate::components::{ErrorBox, LogTable};
use crate::format;
use crate::waterfall::layout;

/// The key of a span in a comparison: its service and operation, with its ancestors'.
fn path_keys(trace: &TraceView) -> BTreeMap<String, (usize, u64)> {
    let rows = layout(&trace.spans);
    let mut stack: Vec<String> = Vec::new();
    let mut keys: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for row in rows {
        stack.truncate(row.depth);
        let span = &trace.spans[row.span];
        stack.push(format!("{}: {}", span.service, span.name));
        let entry = keys.entry(stack.join(" › ")).or_default();
        entry.0 += 1;
        entry.1 += span.duration_us;
    }
    keys
}

/// Traces `a` and `b` side by side.
#[component]
pub fn ComparePage(a: String, b: String) -> impl IntoView {
    let short = |id: &str| id.get(..7).unwrap_or(id).to_string();
    let title = format!("Compare traces {} and {}", short(&a), short(&b));
    let traces = Resource::new(
        move || (a.clone(), b.clone()),
        |(a, b)| async move { Ok::<_, ServerFnError>((load_trace(a).await?, load_trace(b).await?)) },
    );
    view! {
        <Title text=title/>
        <Suspense fallback=|| view! { <p class="loading">"Loading traces…"</p> }>
            {move || Suspend::new(async move {
                match traces.await {
                    Ok((Some(a), Some(b))) => {
                        let (ka, kb) = (path_keys(&a), path_keys(&b));
                        let all: BTreeSet<&String> = ka.keys().chain(kb.keys()).collect();
                        let rows: Vec<_> = all.into_iter().map(|key| {
                            let (ca, da) = ka.get(key).copied().unwrap_or_default();
                            let (cb, db) = kb.get(key).copied().unwrap_or_default();
                            let (class, change) = match (ca, cb) {
                                (_, 0) => ("only-a", "only in A".to_string()),
                                (0, _) => ("only-b", "only in B".to_string()),
                                _ => {
                                    let sign = if db >= da { "+" } else { "−" };
                                    ("both", format!("{sign}{}", format::duration(db.abs_diff(da))))
                                }
                            };
                            view! {
                                <tr class=class>
                                    <td>{key.clone()}</td>
                                    <td>{ca}</td>
                                    <td>{cb}</td>
                                    <td>{change}</td>
                                </tr>
                            }
                        }).collect_view();
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
                                <h2>"Logs of A"</h2><LogTable logs=a.logs.clone() spans=Vec::new()/>
                                <h2>"Logs of B"</h2><LogTable logs=b.logs.clone() spans=Vec::new()/>
                            </section>
                        }.into_any()
                    }
                    Ok(_) => view! {
                        <p class="empty">"One of the two traces is not here."</p>
                    }.into_any(),
                    Err(e) => view! { <ErrorBox message=crate::api::problem(&e)/> }.into_any(),
                }
            })}
        </Suspense>
    }
}
