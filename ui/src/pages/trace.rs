//! `/trace/{id}?span=&tab=&collapsed=&rows=`: the waterfall of one trace with span
//! details and the trace's logs. (`/trace/{a}...{b}`, two traces compared, is
//! `pages::compare`; the router tells them apart.)

use std::collections::HashSet;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{load_trace, LogLine, SpanView, TagView, TraceView};
use crate::components::{ink, ErrorBox, LogTable, NotFound, ServiceColours};
use crate::format::{self, Time};
use crate::tags::encode;
use crate::waterfall::{
    ancestors, label_place, layout, statistics, visible, window, LabelPlace, Row, Zoom, WINDOW,
};

/// The views of a trace: (`tab=` value, label).
const TABS: [(&str, &str); 4] = [
    ("timeline", "Timeline"),
    ("flame", "Flame graph"),
    ("stats", "Statistics"),
    ("logs", "Logs"),
];

/// Spans drawn in the flame graph; a bigger trace shows its earliest.
const FLAME_SPANS: usize = 5_000;

#[derive(Clone, Debug, PartialEq, Default)]
struct State {
    span: Option<String>,
    tab: String,
    collapsed: Vec<String>,
    /// First row of the window shown, for traces over [`WINDOW`] rows.
    from: Option<usize>,
    /// Text to find among the spans (service, operation, tag values).
    find: String,
    /// The part of the trace's time the waterfall shows.
    zoom: Option<Zoom>,
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
        if !self.find.is_empty() {
            parts.push(format!("find={}", encode(&self.find)));
        }
        if let Some(zoom) = self.zoom {
            parts.push(format!("view={}", zoom.param()));
        }
        if parts.is_empty() {
            format!("/trace/{id}")
        } else {
            format!("/trace/{id}?{}", parts.join("&"))
        }
    }
}

/// One trace, `id`.
#[component]
pub fn TracePage(id: String) -> impl IntoView {
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
            find: q.get("find").unwrap_or_default(),
            zoom: q.get("view").and_then(|view| Zoom::parse(&view)),
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
                        Ok(Some(trace)) => {
                            view! { <TraceBody trace=trace state=state/> }.into_any()
                        }
                        Ok(None) => view! {
                            <NotFound
                                title=format!("Trace {id} not found")
                                message=format!(
                                    "Trace {id} is not here: it may not have arrived yet, \
                                     or it is older than the retention window."
                                )
                            />
                        }.into_any(),
                        Err(e) => view! { <ErrorBox message=crate::api::problem(&e)/> }.into_any(),
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
        let mut collapsed: HashSet<String> = current.collapsed.iter().cloned().collect();
        if let Some(span) = &current.span {
            for ancestor in ancestors(&trace.spans, span) {
                collapsed.remove(&ancestor);
            }
        }
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
        // One history entry for the page, not one per span stepped through.
        navigate(
            &next.href(&id),
            leptos_router::NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    });
    on_cleanup(move || handle.remove());
}

#[component]
fn TraceBody(trace: TraceView, state: Memo<State>) -> impl IntoView {
    let summary = crate::api::TraceSummary::of(&trace);
    let rows = layout(&trace.spans);
    let depth = rows.iter().map(|r| r.depth + 1).max().unwrap_or(0);
    let colours = ServiceColours::assign(summary.services.iter().map(|(s, _)| s.as_str()));
    let orphans = trace.orphans();
    let title = format!(
        "Trace {}: {} {}",
        trace.id.get(..7).unwrap_or(&trace.id),
        summary.root_service,
        summary.root_name
    );
    let id = trace.id.clone();
    let trace = StoredValue::new(trace);
    let rows = StoredValue::new(rows);
    let chip_colours = colours.clone();
    // The name column's share of the waterfall, in percent (the slider above it).
    let name_width = RwSignal::new(32u32);
    let colours = StoredValue::new(colours);
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
    view! {
        <Title text=title/>
        <section class="trace">
            <h1>{format!("{}: {}", summary.root_service, summary.root_name)}</h1>
            <div class="trace-meta">
                <span>"Trace "<code class="trace-id">{id.clone()}</code></span>
                <span>{format::plural(summary.span_count, "span")}</span>
                <span>{format!("depth {depth}")}</span>
                <span>{format!("duration {}", format::duration(summary.duration_us))}</span>
                <span class={if summary.errors > 0 { "errors" } else { "" }}>
                    {(summary.errors > 0).then_some("⚠ ")}
                    {format::plural(summary.errors, "error")}
                </span>
                <Time micros=summary.start_us/>
                <a href=format!("/logs?traceID={id}&lookback=7d")>"Search its logs"</a>
                <span class="downloads">
                    "Download: "
                    <a
                        id="download-otlp"
                        href=format!("/api/v3/traces/{id}")
                        download=format!("trace-{id}.otlp.json")
                    >
                        "OTLP JSON"
                    </a>
                    " · "
                    <a
                        id="download-jaeger"
                        href=format!("/api/traces/{id}")
                        download=format!("trace-{id}.jaeger.json")
                    >
                        "Jaeger JSON"
                    </a>
                </span>
            </div>
            {trace.with_value(|t| t.warnings.clone()).into_iter().map(|warning| view! {
                <p class="notice">{warning}</p>
            }).collect_view()}
            {(orphans > 0).then(|| view! {
                <p class="notice orphans">
                    {format!(
                        "{} {} a parent that is not in this trace: spans may still be \
                         arriving, or were lost on the way. They are shown as roots.",
                        format::plural(orphans, "span"),
                        if orphans == 1 { "has" } else { "have" },
                    )}
                </p>
            })}
            <div class="services">
                {summary.services.iter().map(|(service, n)| view! {
                    <span
                        class="service-chip"
                        style=format!("border-color:{}", chip_colours.of(service))
                    >
                        {format!("{service} ({n})")}
                    </span>
                }).collect_view()}
            </div>
            <FindSpans trace=trace rows=rows state=state/>
            <nav class="tabs">
                {TABS.iter().map(|&(tab, label)| {
                    let href = tab_href.clone();
                    let label = if tab == "logs" {
                        format!("{label} ({})", trace.with_value(|t| t.logs.len()))
                    } else {
                        label.to_string()
                    };
                    view! {
                        <a
                            class=move || if state.get().tab == tab { "tab active" } else { "tab" }
                            id=format!("{tab}-tab")
                            href=move || href(tab)
                        >
                            {label}
                        </a>
                    }
                }).collect_view()}
            </nav>
            {move || {
                let state = trace.with_value(|t| rows.with_value(|rows| found(t, rows, state.get())));
                trace.with_value(|t| {
                    rows.with_value(|rows| {
                        colours.with_value(|colours| match state.tab.as_str() {
                            "logs" => view! {
                                <TraceLogs logs=t.logs.clone() spans=t.spans.clone()/>
                            }
                            .into_any(),
                            "flame" => flame_graph(t, rows, colours, &state).into_any(),
                            "stats" => statistics_table(t).into_any(),
                            _ => waterfall(t, rows, colours, &state, name_width).into_any(),
                        })
                    })
                })
            }}
        </section>
    }
}

fn waterfall(
    trace: &TraceView,
    rows: &[Row],
    colours: &ServiceColours,
    state: &State,
    name_width: RwSignal<u32>,
) -> impl IntoView + use<> {
    // A selected span is always shown: its collapsed ancestors open.
    let mut collapsed: HashSet<String> = state.collapsed.iter().cloned().collect();
    if let Some(span) = &state.span {
        for ancestor in ancestors(&trace.spans, span) {
            collapsed.remove(&ancestor);
        }
    }
    let shown = visible(rows, &trace.spans, &collapsed);
    // Spans (indexes into the trace's) matching the text to find.
    let finding: HashSet<usize> = matching_rows(trace, rows, &state.find)
        .into_iter()
        .map(|i| rows[i].span)
        .collect();
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
    let zoom = state.zoom.unwrap_or(Zoom::ALL);
    let at = move |pct: f64| {
        (total as f64 * (zoom.from + pct / 100.0 * (zoom.to - zoom.from)) / 100.0) as u64
    };
    let minimap = minimap(trace, rows, colours, state);
    view! {
        {minimap}
        <div class="waterfall" style=move || format!("--name-col:{}%", name_width.get())>
            {pager}
            <div class="ruler">
                <div class="name-col">
                    <label for="name-width">"Service and operation"</label>
                    <input
                        type="range"
                        id="name-width"
                        min="15"
                        max="70"
                        prop:value=move || name_width.get().to_string()
                        on:input=move |ev| {
                            if let Ok(width) = event_target_value(&ev).parse() {
                                name_width.set(width);
                            }
                        }
                        aria-label="width of the name column"
                    />
                </div>
                <div class="bar-col">
                    {ticks.iter().map(|pct| view! {
                        <span class="tick" style=format!("left:{pct}%")>
                            {format::duration(at(*pct))}
                        </span>
                    }).collect_view()}
                </div>
            </div>
            {shown.into_iter().map(|row| {
                let span = &trace.spans[row.span];
                let selected = state.span.as_deref() == Some(span.id.as_str());
                let is_collapsed = collapsed.contains(&span.id);
                let toggle = if row.children > 0 {
                    let mut next = state.clone();
                    if is_collapsed {
                        next.collapsed.retain(|c| *c != span.id);
                    } else {
                        next.collapsed.push(span.id.clone());
                    }
                    let label = if is_collapsed {
                        format!("▸ {}", row.children)
                    } else {
                        "▾".to_string()
                    };
                    view! {
                        <a
                            class="toggle"
                            href=next.href(&trace.id)
                            aria-expanded=if is_collapsed { "false" } else { "true" }
                            aria-label=if is_collapsed {
                                format!("expand {} child spans", row.children)
                            } else {
                                format!("collapse {} child spans", row.children)
                            }
                        >
                            {label}
                        </a>
                    }
                    .into_any()
                } else {
                    view! { <span class="toggle"></span> }.into_any()
                };
                let select = State {
                    span: if selected { None } else { Some(span.id.clone()) },
                    ..state.clone()
                }
                .href(&trace.id);
                let mut class = String::from("row");
                if finding.contains(&row.span) { class.push_str(" match"); }
                if !row.critical.is_empty() { class.push_str(" critical"); }
                if span.error { class.push_str(" error"); }
                if selected { class.push_str(" selected"); }
                let colour = colours.of(&span.service);
                let details = selected
                    .then(|| view! { <SpanDetails span=span.clone() trace=trace.clone()/> });
                let placed = zoom.place(row.offset_pct, row.width_pct);
                let (left, width) = placed.unwrap_or((0.0, 0.0));
                let bar_style = format!(
                    "left:{left:.3}%;width:{width:.3}%;background-color:{colour}"
                );
                let (label_class, label_style) = match label_place(left, width) {
                    LabelPlace::After(left) => ("bar-label", format!("left:{left:.3}%")),
                    LabelPlace::Before(right) => ("bar-label before", format!("right:{right:.3}%")),
                    LabelPlace::Inside(right) => (
                        "bar-label inside",
                        format!("right:{right:.3}%;color:{}", ink(colour)),
                    ),
                };
                let critical: Vec<(f64, f64)> = row
                    .critical
                    .iter()
                    .filter_map(|&(offset, width)| zoom.place(offset, width))
                    .collect();
                view! {
                    <div
                        class=class
                        id=format!("span-{}", span.id)
                        data-span=span.id.clone()
                        data-depth=row.depth
                    >
                        <div
                            class="name-col"
                            style=format!("padding-left:{}px", 6 + row.depth * 16)
                        >
                            {toggle}
                            <a
                                class="span-link"
                                href=select
                                title=format!("{}: {}", span.service, span.name)
                            >
                                <span class="swatch" style=format!("background-color:{colour}")></span>
                                <span class="svc">{span.service.clone()}</span>
                                " "
                                <span class="op">{span.name.clone()}</span>
                                {span.error.then(|| view! {
                                    <span class="error-mark" title="error" aria-label="error">
                                        "⚠"
                                    </span>
                                })}
                            </a>
                        </div>
                        <div class="bar-col">
                            {placed.map(|_| view! {
                                <div class="bar" style=bar_style></div>
                                {critical.iter().map(|(offset, width)| view! {
                                    <div
                                        class="crit"
                                        style=format!("left:{offset:.3}%;width:{width:.3}%")
                                    ></div>
                                }).collect_view()}
                                <span class=label_class style=label_style>
                                    {format::duration(span.duration_us)}
                                </span>
                            })}
                        </div>
                    </div>
                    {details}
                }
            }).collect_view()}
            <p class="legend">
                "The line inside the bars is the critical path (what the trace's end \
                 waits on); ⚠ marks a span with an error. \
                 Keys: ↑ ↓ select, ← → collapse and expand."
            </p>
        </div>
    }
}

/// The spans matching `text` (case aside) in their service, operation or a tag's
/// value, as indexes into `rows` (tree order).
fn matching_rows(trace: &TraceView, rows: &[Row], text: &str) -> Vec<usize> {
    let text = text.trim().to_lowercase();
    if text.is_empty() {
        return Vec::new();
    }
    let hit = |s: &str| s.to_lowercase().contains(&text);
    rows.iter()
        .enumerate()
        .filter(|(_, row)| {
            let span = &trace.spans[row.span];
            hit(&span.service)
                || hit(&span.name)
                || span.tags.iter().chain(&span.process).any(|t| hit(&t.value))
        })
        .map(|(i, _)| i)
        .collect()
}

/// With text to find, the selection is a match: the one selected, else the
/// first.
fn found(trace: &TraceView, rows: &[Row], mut state: State) -> State {
    let matches = matching_rows(trace, rows, &state.find);
    let id = |i: usize| trace.spans[rows[i].span].id.clone();
    let selected_matches = state
        .span
        .as_ref()
        .is_some_and(|span| matches.iter().any(|&i| id(i) == *span));
    if let (false, Some(&first)) = (selected_matches, matches.first()) {
        state.span = Some(id(first));
    }
    state
}

/// The find box: `n of m` spans match, and Enter (the form) goes to the next.
#[component]
fn FindSpans(
    trace: StoredValue<TraceView>,
    rows: StoredValue<Vec<Row>>,
    state: Memo<State>,
) -> impl IntoView {
    let info = move || {
        let state = state.get();
        trace.with_value(|t| {
            rows.with_value(|rows| {
                let matches = matching_rows(t, rows, &state.find);
                let state = found(t, rows, state);
                let id = |i: usize| t.spans[rows[i].span].id.clone();
                let at = matches
                    .iter()
                    .position(|&i| state.span.as_deref() == Some(id(i).as_str()));
                let next = at
                    .map(|at| matches[(at + 1) % matches.len()])
                    .or(matches.first().copied())
                    .map(id)
                    .unwrap_or_default();
                let count = match (at, matches.len()) {
                    (_, 0) if state.find.trim().is_empty() => String::new(),
                    (_, 0) => "no span matches".to_string(),
                    (Some(at), m) => format!("{} of {m}", at + 1),
                    (None, m) => format!("{m} match"),
                };
                (count, next)
            })
        })
    };
    let id = trace.with_value(|t| t.id.clone());
    view! {
        <form class="find" method="get" action=format!("/trace/{id}") role="search">
            <input
                name="find"
                id="find"
                placeholder="Find spans: service, operation, tag value"
                aria-label="find spans by service, operation or tag value; Enter goes to the next"
                value=move || state.get().find
            />
            <input type="hidden" name="span" value=move || info().1/>
            <span id="find-count" aria-live="polite">{move || info().0}</span>
        </form>
    }
}

/// Rows drawn in the mini-map; a bigger trace shows its first.
const MINIMAP_ROWS: usize = 2_000;

/// The whole trace in little above the waterfall, with the part the waterfall
/// shows framed: drag across it to zoom there (once hydrated); the links zoom to
/// the selected span, or back out, without a script.
fn minimap(
    trace: &TraceView,
    rows: &[Row],
    colours: &ServiceColours,
    state: &State,
) -> impl IntoView + use<> {
    const HEIGHT: f64 = 44.0;
    let shown = &rows[..rows.len().min(MINIMAP_ROWS)];
    let lane = (HEIGHT / shown.len().max(1) as f64).clamp(1.0, 6.0);
    let zoom = state.zoom.unwrap_or(Zoom::ALL);
    let zoomed = |zoom: Option<Zoom>| {
        State {
            zoom,
            ..state.clone()
        }
        .href(&trace.id)
    };
    let selected = state
        .span
        .as_ref()
        .and_then(|id| rows.iter().find(|row| trace.spans[row.span].id == *id));
    let to_span = selected.map(|row| {
        let href = zoomed(Some(Zoom::between(
            row.offset_pct,
            row.offset_pct + row.width_pct,
        )));
        view! { <a id="zoom-span" href=href>"Zoom to the selected span"</a> }
    });
    let reset = state
        .zoom
        .is_some()
        .then(|| view! { <a id="zoom-reset" href=zoomed(None)>"Whole trace"</a> });
    // A drag: where it started and where the pointer is, in percent.
    let drag = RwSignal::new(None::<(f64, f64)>);
    let base = State {
        zoom: None,
        ..state.clone()
    }
    .href(&trace.id);
    let navigate = leptos_router::hooks::use_navigate();
    #[cfg(feature = "hydrate")]
    let at = |ev: &leptos::ev::PointerEvent| -> f64 {
        use wasm_bindgen::JsCast;
        let width = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .map_or(1, |e| e.client_width().max(1));
        (f64::from(ev.offset_x()) / f64::from(width) * 100.0).clamp(0.0, 100.0)
    };
    let on_down = move |ev: leptos::ev::PointerEvent| {
        #[cfg(feature = "hydrate")]
        {
            let x = at(&ev);
            drag.set(Some((x, x)));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        #[cfg(feature = "hydrate")]
        if let Some((start, _)) = drag.get_untracked() {
            drag.set(Some((start, at(&ev))));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_up = move |_: leptos::ev::PointerEvent| {
        if let Some((start, end)) = drag.get_untracked() {
            drag.set(None);
            if (end - start).abs() >= 0.5 {
                let zoom = Zoom::between(start, end);
                let separator = if base.contains('?') { '&' } else { '?' };
                navigate(
                    &format!("{base}{separator}view={}", zoom.param()),
                    Default::default(),
                );
            }
        }
    };
    view! {
        <div class="minimap-bar">
            <div
                class="minimap"
                style=format!("height:{HEIGHT}px")
                title="drag across the trace to zoom into that time"
            >
                {shown.iter().enumerate().map(|(i, row)| {
                    let span = &trace.spans[row.span];
                    view! {
                        <div
                            class="lane"
                            style=format!(
                                "top:{:.2}px;left:{:.3}%;width:{:.3}%;height:{:.2}px;background-color:{}",
                                i as f64 * lane,
                                row.offset_pct,
                                row.width_pct,
                                lane.max(1.0),
                                colours.of(&span.service),
                            )
                        ></div>
                    }
                }).collect_view()}
                <div
                    class="window"
                    style=format!("left:{:.3}%;width:{:.3}%", zoom.from, zoom.to - zoom.from)
                ></div>
                <div
                    class="selecting"
                    style=move || match drag.get() {
                        Some((a, b)) => format!("left:{:.3}%;width:{:.3}%", a.min(b), (a - b).abs()),
                        None => "display:none".to_string(),
                    }
                ></div>
                <div
                    class="hit"
                    on:pointerdown=on_down
                    on:pointermove=on_move
                    on:pointerup=on_up
                ></div>
            </div>
            <span class="zoom-links">{to_span}{reset}</span>
        </div>
    }
}

/// The trace as a flame graph: each span a box under its parent, as wide as it
/// lasted; a box opens the span in the timeline.
fn flame_graph(
    trace: &TraceView,
    rows: &[Row],
    colours: &ServiceColours,
    state: &State,
) -> impl IntoView + use<> {
    const LANE: f64 = 20.0;
    let shown = &rows[..rows.len().min(FLAME_SPANS)];
    let depth = shown.iter().map(|r| r.depth + 1).max().unwrap_or(1);
    let height = depth as f64 * LANE;
    let cut = (rows.len() > FLAME_SPANS).then(|| {
        view! {
            <p class="notice">
                {format!("The flame graph shows the first {FLAME_SPANS} of {} spans.", rows.len())}
            </p>
        }
    });
    view! {
        {cut}
        <svg
            class="flame"
            width="100%"
            height=height
            role="group"
            aria-label="flame graph of the trace's spans"
        >
            {shown.iter().map(|row| {
                let span = &trace.spans[row.span];
                let x = format!("{:.3}%", row.offset_pct);
                let width = format!("{:.3}%", row.width_pct.max(0.05));
                let y = row.depth as f64 * LANE;
                let colour = colours.of(&span.service);
                let href = State {
                    span: Some(span.id.clone()),
                    tab: "timeline".into(),
                    ..state.clone()
                }
                .href(&trace.id);
                let label = format!("{}: {}", span.service, span.name);
                let title = format!("{label} ({})", format::duration(span.duration_us));
                let class = if span.error { "frame error" } else { "frame" };
                view! {
                    <a href=href class=class data-span=span.id.clone()>
                        <title>{title}</title>
                        <svg x=x y=y width=width height=LANE - 2.0>
                            <rect width="100%" height="100%" style=format!("fill:{colour}")/>
                            <text x=3 y=13 style=format!("fill:{}", ink(colour))>{label}</text>
                        </svg>
                    </a>
                }
            }).collect_view()}
        </svg>
    }
}

/// Per service and operation: count, total, self, min, average and max time,
/// errors (Jaeger's trace statistics).
fn statistics_table(trace: &TraceView) -> impl IntoView + use<> {
    let stats = statistics(&trace.spans);
    view! {
        <table class="stats">
            <thead><tr>
                <th>"Service"</th><th>"Operation"</th><th>"Count"</th><th>"Total"</th>
                <th>"Self"</th><th>"Min"</th><th>"Avg"</th><th>"Max"</th><th>"Errors"</th>
            </tr></thead>
            <tbody>
                {stats.into_iter().map(|s| view! {
                    <tr>
                        <td>{s.service.clone()}</td>
                        <td>{s.operation.clone()}</td>
                        <td class="num">{s.count}</td>
                        <td class="num">{format::duration(s.total_us)}</td>
                        <td class="num">{format::duration(s.self_us)}</td>
                        <td class="num">{format::duration(s.min_us)}</td>
                        <td class="num">{format::duration(s.avg_us())}</td>
                        <td class="num">{format::duration(s.max_us)}</td>
                        <td class="num">{(s.errors > 0).then_some("⚠ ")}{s.errors}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

fn tag_table(tags: &[TagView]) -> impl IntoView + use<> {
    view! {
        <table class="tags"><tbody>
            {tags.iter().map(|t| view! {
                <tr>
                    <th>{t.key.clone()}</th>
                    <td class=format!("value {}", t.kind)>{t.value.clone()}</td>
                </tr>
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
                {format!(
                    "span {} · {} · starts at +{} · {}",
                    span.id,
                    if span.kind.is_empty() { "span" } else { &span.kind },
                    format::duration(span.start_us - trace_start),
                    format::duration(span.duration_us),
                )}
            </p>
            <h4>"Tags"</h4>
            {tag_table(&span.tags)}
            <h4>"Process"</h4>
            {tag_table(&span.process)}
            {(!span.events.is_empty()).then(|| view! {
                <h4>"Events"</h4>
                <ul class="events">
                    {span.events.iter().map(|e| {
                        let at = format::duration(e.time_us.saturating_sub(trace_start));
                        view! {
                            <li>
                                <span class="at">{format!("+{at}")}</span>
                                {tag_table(&e.fields)}
                            </li>
                        }
                    }).collect_view()}
                </ul>
            })}
            {(!span.links.is_empty()).then(|| view! {
                <h4>"Links"</h4>
                <ul class="links">
                    {span.links.iter().map(|(t, s)| view! {
                        <li>
                            <a href=format!("/trace/{t}?span={s}")>{format!("{t} / {s}")}</a>
                        </li>
                    }).collect_view()}
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
