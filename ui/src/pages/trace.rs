//! `/trace/{id}?span=&tab=&collapsed=`: the waterfall of one trace with span details
//! and the trace's logs; `/trace/{a}...{b}`: two traces compared.

use std::collections::{BTreeMap, HashSet};

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use super::{service_colour, ErrorBox};
use crate::api::{load_trace, LogLine, SpanView, TagView, TraceView};
use crate::format::{self, Time};
use crate::tags::encode;
use crate::waterfall::{layout, visible, window, Row, WINDOW};

#[component]
pub fn TracePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    view! {
        {move || {
            let id = id();
            match id.split_once("...") {
                Some((a, b)) => view! { <Compare a=a.to_string() b=b.to_string()/> }.into_any(),
                None => view! { <OneTrace id=id/> }.into_any(),
            }
        }}
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
struct State {
    span: Option<String>,
    tab: String,
    collapsed: Vec<String>,
    /// First row of the window shown, for traces over [`WINDOW`] rows.
    from: Option<usize>,
}

impl State {
    fn href(&self, id: &str) -> String {
        let mut parts = Vec::new();
        if let Some(span) = &self.span {
            parts.push(format!("span={span}"));
        }
        if !self.tab.is_empty() && self.tab != "timeline" {
            parts.push(format!("tab={}", self.tab));
        }
        if !self.collapsed.is_empty() {
            parts.push(format!("collapsed={}", encode(&self.collapsed.join(","))));
        }
        if let (Some(from), None) = (self.from, &self.span) {
            parts.push(format!("rows={from}"));
        }
        if parts.is_empty() {
            format!("/trace/{id}")
        } else {
            format!("/trace/{id}?{}", parts.join("&"))
        }
    }
}

#[component]
fn OneTrace(id: String) -> impl IntoView {
    let query = use_query_map();
    let state = Memo::new(move |_| {
        let q = query.read();
        State {
            span: q.get("span").filter(|s| !s.is_empty()),
            tab: q.get("tab").unwrap_or_else(|| "timeline".into()),
            collapsed: q
                .get("collapsed")
                .map(|c| {
                    c.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            from: q.get("rows").and_then(|rows| rows.parse().ok()),
        }
    });
    let trace_id = id.clone();
    let trace = Resource::new(move || trace_id.clone(), load_trace);
    keyboard_navigation(id.clone(), state, trace);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading trace…"</p> }>
            {move || {
                let id = id.clone();
                Suspend::new(async move {
                    match trace.await {
                        Ok(Some(trace)) => view! { <TraceBody trace=trace state=state/> }.into_any(),
                        Ok(None) => view! {
                            <p class="empty">{format!("Trace {id} is not here: it may not have arrived yet, or it is older than the retention window.")}</p>
                        }.into_any(),
                        Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

/// Up/down move the selection, left/right collapse and expand (once hydrated).
fn keyboard_navigation(
    id: String,
    state: Memo<State>,
    trace: Resource<Result<Option<TraceView>, ServerFnError>>,
) {
    let navigate = use_navigate();
    let handle = window_event_listener(leptos::ev::keydown, move |event| {
        let Some(Ok(Some(trace))) = trace.get_untracked() else {
            return;
        };
        let current = state.get_untracked();
        let rows = layout(&trace.spans);
        let collapsed: HashSet<String> = current.collapsed.iter().cloned().collect();
        let shown: Vec<&Row> = visible(&rows, &trace.spans, &collapsed);
        let position = current
            .span
            .as_ref()
            .and_then(|s| shown.iter().position(|r| trace.spans[r.span].id == *s));
        let mut next = current.clone();
        match event.key().as_str() {
            "ArrowDown" => {
                let i = position.map_or(0, |p| (p + 1).min(shown.len().saturating_sub(1)));
                next.span = shown.get(i).map(|r| trace.spans[r.span].id.clone());
            }
            "ArrowUp" => {
                let i = position.map_or(0, |p| p.saturating_sub(1));
                next.span = shown.get(i).map(|r| trace.spans[r.span].id.clone());
            }
            "ArrowLeft" => {
                if let Some(span) = &current.span {
                    if !next.collapsed.contains(span) {
                        next.collapsed.push(span.clone());
                    }
                }
            }
            "ArrowRight" => {
                if let Some(span) = &current.span {
                    next.collapsed.retain(|c| c != span);
                }
            }
            _ => return,
        }
        event.prevent_default();
        navigate(&next.href(&id), Default::default());
    });
    on_cleanup(move || handle.remove());
}

#[component]
fn TraceBody(trace: TraceView, state: Memo<State>) -> impl IntoView {
    let summary = crate::api::TraceSummary::of(&trace);
    let rows = layout(&trace.spans);
    let depth = rows.iter().map(|r| r.depth + 1).max().unwrap_or(0);
    let id = trace.id.clone();
    let trace = StoredValue::new(trace);
    let rows = StoredValue::new(rows);
    let tab_href = {
        let id = id.clone();
        move |tab: &str| {
            State {
                tab: tab.to_string(),
                ..state.get()
            }
            .href(&id)
        }
    };
    let tab_href2 = tab_href.clone();
    view! {
        <section class="trace">
            <h1>{format!("{}: {}", summary.root_service, summary.root_name)}</h1>
            <div class="trace-meta">
                <span>"Trace "<code class="trace-id">{id.clone()}</code></span>
                <span>{format::plural(summary.span_count, "span")}</span>
                <span>{format!("depth {depth}")}</span>
                <span>{format!("duration {}", format::duration(summary.duration_us))}</span>
                <span class={if summary.errors > 0 { "errors" } else { "" }}>{format::plural(summary.errors, "error")}</span>
                <Time micros=summary.start_us/>
                <a href=format!("/logs?traceID={id}&lookback=7d")>"Search its logs"</a>
            </div>
            <div class="services">
                {summary.services.iter().map(|(service, n)| view! {
                    <span class="service-chip" style=format!("border-color:{}", service_colour(service))>{format!("{service} ({n})")}</span>
                }).collect_view()}
            </div>
            <nav class="tabs">
                <a class=move || if state.get().tab != "logs" { "tab active" } else { "tab" } href=move || tab_href("timeline")>"Timeline"</a>
                <a class=move || if state.get().tab == "logs" { "tab active" } else { "tab" } id="logs-tab" href=move || tab_href2("logs")>
                    {format!("Logs ({})", trace.with_value(|t| t.logs.len()))}
                </a>
            </nav>
            {move || {
                let state = state.get();
                if state.tab == "logs" {
                    trace.with_value(|t| view! { <TraceLogs logs=t.logs.clone() spans=t.spans.clone()/> }).into_any()
                } else {
                    trace.with_value(|t| rows.with_value(|rows| waterfall(t, rows, &state))).into_any()
                }
            }}
        </section>
    }
}

fn waterfall(trace: &TraceView, rows: &[Row], state: &State) -> impl IntoView + use<> {
    let collapsed: HashSet<String> = state.collapsed.iter().cloned().collect();
    let shown = visible(rows, &trace.spans, &collapsed);
    let selected = state
        .span
        .as_ref()
        .and_then(|s| shown.iter().position(|r| trace.spans[r.span].id == *s));
    let range = window(shown.len(), selected, state.from);
    let pager = (shown.len() > WINDOW).then(|| {
        let page = |from: usize| {
            State {
                span: None,
                from: Some(from),
                ..state.clone()
            }
            .href(&trace.id)
        };
        let previous = (range.start > 0)
            .then(|| view! { <a href=page(range.start - WINDOW)>"← previous rows"</a> });
        let next =
            (range.end < shown.len()).then(|| view! { <a href=page(range.end)>"next rows →"</a> });
        view! {
            <div class="pager">
                {previous}
                <span>{format!("rows {}–{} of {}", range.start + 1, range.end, shown.len())}</span>
                {next}
            </div>
        }
    });
    let shown: Vec<&Row> = shown[range].to_vec();
    let total = trace.duration_us();
    let ticks = [0.0, 25.0, 50.0, 75.0, 100.0];
    view! {
        <div class="waterfall" tabindex="0">
            {pager}
            <div class="ruler">
                <div class="name-col">"Service and operation"</div>
                <div class="bar-col">
                    {ticks.iter().map(|pct| view! {
                        <span class="tick" style=format!("left:{pct}%")>{format::duration((total as f64 * pct / 100.0) as u64)}</span>
                    }).collect_view()}
                </div>
            </div>
            {shown.into_iter().map(|row| {
                let span = &trace.spans[row.span];
                let selected = state.span.as_deref() == Some(span.id.as_str());
                let is_collapsed = collapsed.contains(&span.id);
                let toggle = (row.children > 0).then(|| {
                    let mut next = state.clone();
                    if is_collapsed {
                        next.collapsed.retain(|c| *c != span.id);
                    } else {
                        next.collapsed.push(span.id.clone());
                    }
                    let label = if is_collapsed { format!("▸ {}", row.children) } else { "▾".to_string() };
                    view! { <a class="toggle" href=next.href(&trace.id) aria-label="collapse or expand">{label}</a> }.into_any()
                }).unwrap_or_else(|| view! { <span class="toggle"></span> }.into_any());
                let select = State { span: if selected { None } else { Some(span.id.clone()) }, ..state.clone() }.href(&trace.id);
                let mut class = String::from("row");
                if row.critical { class.push_str(" critical"); }
                if span.error { class.push_str(" error"); }
                if selected { class.push_str(" selected"); }
                let colour = service_colour(&span.service);
                let details = selected.then(|| view! { <SpanDetails span=span.clone() trace=trace.clone()/> });
                view! {
                    <div class=class id=format!("span-{}", span.id) data-span=span.id.clone() data-depth=row.depth>
                        <div class="name-col" style=format!("padding-left:{}px", 6 + row.depth * 16)>
                            {toggle}
                            <a class="span-link" href=select>
                                <span class="svc" style=format!("color:{colour}")>{span.service.clone()}</span>
                                " "
                                <span class="op">{span.name.clone()}</span>
                            </a>
                        </div>
                        <div class="bar-col">
                            <div class="bar" style=format!("left:{:.3}%;width:{:.3}%;background:{colour}", row.offset_pct, row.width_pct)></div>
                            <span class="bar-label" style=format!("left:{:.3}%", (row.offset_pct + row.width_pct).min(92.0))>{format::duration(span.duration_us)}</span>
                        </div>
                    </div>
                    {details}
                }
            }).collect_view()}
            <p class="legend">"Critical path spans are outlined; errors are red. Keys: ↑ ↓ select, ← → collapse and expand."</p>
        </div>
    }
}

fn tag_table(tags: &[TagView]) -> impl IntoView + use<> {
    view! {
        <table class="tags"><tbody>
            {tags.iter().map(|t| view! {
                <tr><th>{t.key.clone()}</th><td class=format!("value {}", t.kind)>{t.value.clone()}</td></tr>
            }).collect_view()}
        </tbody></table>
    }
}

#[component]
fn SpanDetails(span: SpanView, trace: TraceView) -> impl IntoView {
    let logs: Vec<LogLine> = trace
        .logs
        .iter()
        .filter(|l| l.span_id.as_deref() == Some(span.id.as_str()))
        .cloned()
        .collect();
    let trace_start = trace.start_us();
    view! {
        <div class="details" id="span-details">
            <h3>{format!("{}: {}", span.service, span.name)}</h3>
            <p class="meta">
                {format!("span {} · {} · starts at +{} · {}", span.id, if span.kind.is_empty() { "span" } else { &span.kind }, format::duration(span.start_us - trace_start), format::duration(span.duration_us))}
            </p>
            <h4>"Tags"</h4>
            {tag_table(&span.tags)}
            <h4>"Process"</h4>
            {tag_table(&span.process)}
            {(!span.events.is_empty()).then(|| view! {
                <h4>"Events"</h4>
                <ul class="events">
                    {span.events.iter().map(|e| view! {
                        <li><span class="at">{format!("+{}", format::duration(e.time_us.saturating_sub(trace_start)))}</span>{tag_table(&e.fields)}</li>
                    }).collect_view()}
                </ul>
            })}
            {(!span.links.is_empty()).then(|| view! {
                <h4>"Links"</h4>
                <ul class="links">
                    {span.links.iter().map(|(t, s)| view! { <li><a href=format!("/trace/{t}?span={s}")>{format!("{t} / {s}")}</a></li> }).collect_view()}
                </ul>
            })}
            <h4>{format!("Logs in this span ({})", logs.len())}</h4>
            <LogTable logs=logs spans=Vec::new()/>
        </div>
    }
}

#[component]
fn TraceLogs(logs: Vec<LogLine>, spans: Vec<SpanView>) -> impl IntoView {
    if logs.is_empty() {
        return view! { <p class="empty">"No logs carry this trace's id."</p> }.into_any();
    }
    view! { <LogTable logs=logs spans=spans/> }.into_any()
}

/// Log lines in time order; with `spans`, each links to its span in the waterfall.
#[component]
pub(super) fn LogTable(logs: Vec<LogLine>, spans: Vec<SpanView>) -> impl IntoView {
    let ids: HashSet<String> = spans.iter().map(|s| s.id.clone()).collect();
    view! {
        <table class="logs"><tbody>
            {logs.into_iter().map(|l| {
                let span_link = l.span_id.clone().filter(|s| ids.contains(s)).map(|s| view! { <a href=format!("?span={s}")>"span"</a> });
                view! {
                    <tr class=format!("log sev-{}", severity_class(l.severity_number))>
                        <td class="time"><Time micros={l.time_ns / 1000}/></td>
                        <td class="sev">{l.severity.clone()}</td>
                        <td class="svc">{l.service.clone()}</td>
                        <td class="body">{l.body.clone()}</td>
                        <td>{span_link}</td>
                    </tr>
                }
            }).collect_view()}
        </tbody></table>
    }
}

pub(super) fn severity_class(number: i64) -> &'static str {
    match number {
        1..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=24 => "error",
        _ => "unset",
    }
}

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

#[component]
fn Compare(a: String, b: String) -> impl IntoView {
    let traces = Resource::new(
        move || (a.clone(), b.clone()),
        |(a, b)| async move { Ok::<_, ServerFnError>((load_trace(a).await?, load_trace(b).await?)) },
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading traces…"</p> }>
            {move || Suspend::new(async move {
                match traces.await {
                    Ok((Some(a), Some(b))) => {
                        let (ka, kb) = (path_keys(&a), path_keys(&b));
                        let all: std::collections::BTreeSet<&String> = ka.keys().chain(kb.keys()).collect();
                        let rows: Vec<_> = all.into_iter().map(|key| {
                            let (ca, da) = ka.get(key).copied().unwrap_or_default();
                            let (cb, db) = kb.get(key).copied().unwrap_or_default();
                            let (class, change) = match (ca, cb) {
                                (_, 0) => ("only-a", "only in A".to_string()),
                                (0, _) => ("only-b", "only in B".to_string()),
                                _ => ("both", format!("{}{}", if db >= da { "+" } else { "−" }, format::duration(db.abs_diff(da)))),
                            };
                            view! { <tr class=class><td>{key.clone()}</td><td>{ca}</td><td>{cb}</td><td>{change}</td></tr> }
                        }).collect_view();
                        view! {
                            <section class="compare">
                                <h1>"Trace comparison"</h1>
                                <p>
                                    "A: "<a href=format!("/trace/{}", a.id)>{a.id.clone()}</a>{format!(" ({})", format::duration(a.duration_us()))}
                                    " · B: "<a href=format!("/trace/{}", b.id)>{b.id.clone()}</a>{format!(" ({})", format::duration(b.duration_us()))}
                                </p>
                                <table class="diff"><tbody><tr><th>"Span path"</th><th>"A"</th><th>"B"</th><th>"Difference"</th></tr>{rows}</tbody></table>
                                <h2>"Logs of A"</h2><LogTable logs=a.logs.clone() spans=Vec::new()/>
                                <h2>"Logs of B"</h2><LogTable logs=b.logs.clone() spans=Vec::new()/>
                            </section>
                        }.into_any()
                    }
                    Ok(_) => view! { <p class="empty">"One of the two traces is not here."</p> }.into_any(),
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}
