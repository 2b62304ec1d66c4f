//! `/logs?query=&service=&traceID=&minSeverity=&lookback=&start=&end=&limit=&live=&view=`:
//! log search. As on the search page, `lookback=custom` with `start`/`end` (µs),
//! or the form's `from`/`to` local times, is an absolute range; `start`/`end`
//! alone mean it too. `view=patterns` shows the body patterns of the lines
//! instead of the lines.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{
    load_log_patterns, load_log_volume, search_logs, LogLine, LogPattern, LogPatterns, LogVolume,
};
use crate::components::{
    custom_range, highlight_terms, ErrorBox, LogRow, LookbackSelect, RangeInputs, LOGS_LOOKBACKS,
};
use crate::format;
use crate::tags::query_string;

#[derive(Clone, Debug, PartialEq)]
struct Form {
    query: String,
    service: String,
    trace_id: String,
    min_severity: String,
    lookback: String,
    /// The custom range, µs since the epoch (empty unless `lookback` is `custom`);
    /// with a preset, `end` pins the window while paging.
    start: String,
    end: String,
    limit: String,
    /// Matching lines skipped: the page shown (`offset` / `limit` + 1).
    offset: usize,
    live: bool,
    /// The patterns of the lines instead of the lines (`view=patterns`).
    patterns: bool,
}

impl Form {
    /// The `/api/logs` query string, which is also the page's own.
    fn api_query(&self) -> String {
        let custom = self.lookback == "custom";
        let unless = |skip: bool, value: &String| if skip { String::new() } else { value.clone() };
        let offset = if self.offset > 0 {
            self.offset.to_string()
        } else {
            String::new()
        };
        query_string(&[
            ("query", self.query.clone()),
            ("service", self.service.clone()),
            ("traceID", self.trace_id.clone()),
            ("minSeverity", self.min_severity.clone()),
            ("lookback", unless(custom, &self.lookback)),
            ("start", unless(!custom, &self.start)),
            ("end", self.end.clone()),
            ("limit", self.limit.clone()),
            ("offset", offset),
        ])
    }

    /// The same search without what only streams it.
    fn search(&self) -> Form {
        Form {
            live: false,
            ..self.clone()
        }
    }

    /// The page of this search holding line `offset` + 1, in the window ending
    /// at `end` (µs).
    fn page_href(&self, offset: usize, end: u64) -> String {
        Form {
            offset,
            end: end.to_string(),
            live: false,
            ..self.clone()
        }
        .href()
    }

    /// This page's address.
    fn href(&self) -> String {
        let view = if self.patterns { "&view=patterns" } else { "" };
        format!("/logs?{}{view}", self.api_query())
    }

    /// This search's lines (`patterns` false) or patterns, from the first page.
    fn view_href(&self, patterns: bool) -> String {
        Form {
            offset: 0,
            live: false,
            patterns,
            ..self.clone()
        }
        .href()
    }

    /// The lines of pattern `id` among this search's.
    fn pattern_href(&self, id: &str) -> String {
        let query = match self.query.trim() {
            "" => format!("pattern:{id}"),
            query => format!("pattern:{id} AND ({query})"),
        };
        Form {
            query,
            offset: 0,
            live: false,
            patterns: false,
            ..self.clone()
        }
        .href()
    }

    /// Every line of this search, in its window ending at `end` (µs), as a
    /// download in `format` (`ndjson` or `csv`).
    fn download_href(&self, end: u64, format: &str) -> String {
        let all = Form {
            offset: 0,
            end: end.to_string(),
            limit: String::new(),
            live: false,
            ..self.clone()
        };
        format!("/api/logs/export?{}&format={format}", all.api_query())
    }

    /// This search over `[start_us, end_us]`: where a bar of the volume chart
    /// zooms to.
    fn zoom_href(&self, start_us: u64, end_us: u64) -> String {
        let zoomed = Form {
            lookback: "custom".to_string(),
            start: start_us.to_string(),
            end: end_us.to_string(),
            offset: 0,
            live: false,
            ..self.clone()
        };
        zoomed.href()
    }

    /// The document's title: what is searched.
    fn title(&self) -> String {
        let what = [&self.query, &self.service, &self.trace_id]
            .into_iter()
            .filter(|part| !part.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        if what.is_empty() {
            "Logs".to_string()
        } else {
            format!("Logs: {what}")
        }
    }
}

#[component]
pub fn LogsPage() -> impl IntoView {
    let query = use_query_map();
    let form = Memo::new(move |_| {
        let q = query.read();
        let get = |key: &str, default: &str| q.get(key).unwrap_or_else(|| default.to_string());
        let (start, end) = custom_range(&q);
        // A link with `start`/`end` and no lookback means that range.
        let lookback = match q.get("lookback") {
            Some(lookback) => lookback,
            None if !start.is_empty() || !end.is_empty() => "custom".to_string(),
            None => "1h".to_string(),
        };
        // With a preset, only a page link's `end` counts (not the form's `to`).
        let end = if lookback == "custom" {
            end
        } else {
            q.get("end").unwrap_or_default()
        };
        Form {
            query: get("query", ""),
            service: get("service", ""),
            trace_id: get("traceID", ""),
            min_severity: get("minSeverity", ""),
            lookback,
            start,
            end,
            limit: get("limit", "100"),
            offset: q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
            live: q.get("live").is_some_and(|v| v == "1"),
            patterns: q.get("view").is_some_and(|v| v == "patterns"),
        }
    });
    // Pausing or resuming the tail does not search again.
    let search = Memo::new(move |_| form.get().search());
    // The lines or the patterns, whichever the page shows.
    let results = Resource::new(
        move || Some(search.get()).filter(|form| !form.patterns),
        |form| async move {
            match form {
                Some(form) => search_logs(form.api_query()).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let patterns = Resource::new(
        move || {
            Some(Form {
                offset: 0,
                ..search.get()
            })
            .filter(|form| form.patterns)
        },
        |form| async move {
            match form {
                Some(form) => load_log_patterns(form.api_query()).await.map(Some),
                None => Ok(None),
            }
        },
    );
    // The whole search's lines per time bucket and level; paging does not change it.
    let volume = Resource::new(
        move || Form {
            offset: 0,
            ..search.get()
        },
        |form| async move { load_log_volume(form.api_query()).await },
    );
    // Live tail: while `live=1`, new matching lines stream in over server-sent events
    // (`/api/logs/tail`), newest on top, above the search's results. They stay
    // when the tail pauses, and go when the query changes. Only a browser with
    // the page hydrated streams: without one the page says so.
    let hydrated = RwSignal::new(false);
    let streaming = Memo::new(move |_| form.get().live && hydrated.get());
    Effect::new(move |_| hydrated.set(true));
    let streamed = RwSignal::new(Vec::<LogLine>::new());
    Effect::new(move |previous: Option<String>| {
        let form = form.get();
        let query = form.search().api_query();
        if previous.as_ref() != Some(&query) {
            streamed.set(Vec::new());
        }
        #[cfg(feature = "hydrate")]
        tail::follow(
            form.live
                .then(|| format!("/api/logs/tail?{}", form.api_query())),
            streamed,
        );
        query
    });
    on_cleanup(|| {
        #[cfg(feature = "hydrate")]
        tail::follow(None, RwSignal::new(Vec::new()));
    });
    let lookback = Signal::derive(move || form.get().lookback);
    let live_href = move || {
        let f = form.get();
        format!(
            "/logs?{}&live={}",
            f.api_query(),
            if f.live { 0 } else { 1 }
        )
    };
    let showing_patterns = move || form.get().patterns;
    view! {
        <Title text=move || form.get().title()/>
        <section class="logs-page">
            <form class="filters" method="get" action="/logs">
                <label class="wide">"Query"
                    <input
                        name="query"
                        id="query"
                        placeholder=r#"service:orders AND "card declined" NOT severity:debug"#
                        value=move || form.get().query
                    />
                </label>
                <label>"Service"<input name="service" value=move || form.get().service/></label>
                <label>"Trace ID"<input name="traceID" value=move || form.get().trace_id/></label>
                <label>"Min severity"
                    <select name="minSeverity">
                        {["", "debug", "info", "warn", "error", "fatal"].into_iter().map(|v| {
                            let selected = move || form.get().min_severity == v;
                            view! {
                                <option value=v selected=selected>
                                    {if v.is_empty() { "any" } else { v }}
                                </option>
                            }
                        }).collect_view()}
                    </select>
                </label>
                <label>"Time"<LookbackSelect options=LOGS_LOOKBACKS selected=lookback/></label>
                <RangeInputs
                    start=Signal::derive(move || form.get().start)
                    end=Signal::derive(move || form.get().end)
                />
                <input type="hidden" name="limit" value=move || form.get().limit/>
                // A new query keeps the tail going, and the patterns shown.
                {move || form.get().live.then(|| view! {
                    <input type="hidden" name="live" value="1"/>
                })}
                {move || showing_patterns().then(|| view! {
                    <input type="hidden" name="view" value="patterns"/>
                })}
                <button type="submit" id="search-logs">"Search logs"</button>
                <a class="live" id="live" href=live_href>
                    {move || if form.get().live { "Pause live tail" } else { "Live tail" }}
                </a>
            </form>
            {move || (form.get().live && !hydrated.get()).then(|| view! {
                <p class="notice" id="live-needs-js">
                    "The live tail streams new lines with JavaScript on; without it, \
                     reload the page to see them."
                </p>
            })}
            {move || {
                let lines = streamed.get();
                (!lines.is_empty()).then(|| view! {
                    <p class="count">{format!("{} new lines streamed", lines.len())}</p>
                    <ol class="log-lines live" id="live-lines">
                        {lines.into_iter().map(|line| view! {
                            <LogRow line=line terms=Vec::new()/>
                        }).collect_view()}
                    </ol>
                })
            }}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let form = form.get_untracked();
                    // A failed count is no reason to hide the lines: the search says why.
                    volume.await.ok().filter(|v| v.total > 0).map(|volume| view! {
                        <VolumeChart volume=volume form=form/>
                    })
                })}
            </Suspense>
            <nav class="view-switch" aria-label="show">
                <a
                    id="view-lines"
                    href=move || form.get().view_href(false)
                    aria-current=move || (!showing_patterns()).then_some("page")
                >"Lines"</a>
                <a
                    id="view-patterns"
                    href=move || form.get().view_href(true)
                    aria-current=move || showing_patterns().then_some("page")
                >"Patterns"</a>
            </nav>
            <Suspense fallback=|| view! { <p class="loading">"Searching…"</p> }>
                {move || Suspend::new(async move {
                    let form = form.get_untracked();
                    if form.patterns {
                        return match patterns.await {
                            Ok(patterns) => view! {
                                <PatternTable patterns=patterns.unwrap_or_default() form=form/>
                            }.into_any(),
                            Err(e) => view! { <ErrorBox message=crate::api::problem(&e)/> }.into_any(),
                        };
                    }
                    match results.await {
                        Ok(None) => ().into_any(),
                        Ok(Some(page)) if page.lines.is_empty() => {
                            // Until the tail brings the first line.
                            let text = move || match streamed.with(Vec::len) {
                                0 => "No log lines match.".to_string(),
                                n => format!(
                                    "{}, newest first{}",
                                    format::plural(n, "matching line"),
                                    if streaming.get() { " (live)" } else { "" }
                                ),
                            };
                            view! { <p class="empty" id="log-count">{text}</p> }.into_any()
                        }
                        Ok(Some(page)) => {
                            let terms = highlight_terms(&form.query);
                            let total = page.total;
                            // The count takes in what streamed since.
                            let count = move || {
                                let live = if streaming.get() { " (live)" } else { "" };
                                let n = total as usize + streamed.with(Vec::len);
                                format!("{}, newest first{live}", format::plural(n, "matching line"))
                            };
                            let shown = page.lines.len();
                            let limit = form.limit.parse::<usize>().unwrap_or(shown).max(1);
                            let (from, to) = (page.offset + 1, page.offset + shown);
                            let newer = (page.offset > 0).then(|| {
                                let href = form.page_href(page.offset.saturating_sub(limit), page.end);
                                view! { <a id="newer" rel="prev" href=href>"← newer"</a> }
                            });
                            let older = ((to as u64) < total).then(|| {
                                let href = form.page_href(page.offset + limit, page.end);
                                view! { <a id="older" rel="next" href=href>"older →"</a> }
                            });
                            let download = (total > 0).then(|| view! {
                                <p class="downloads">
                                    "Download all: "
                                    <a id="download-ndjson" download href=form.download_href(page.end, "ndjson")>"NDJSON"</a>
                                    " · "
                                    <a id="download-csv" download href=form.download_href(page.end, "csv")>"CSV"</a>
                                </p>
                            });
                            view! {
                                <p class="count" id="log-count">{count}</p>
                                {download}
                                <ol class="log-lines">
                                    {page.lines.into_iter().map(|line| view! {
                                        <LogRow line=line terms=terms.clone()/>
                                    }).collect_view()}
                                </ol>
                                <nav class="pager" aria-label="pages of matching lines">
                                    {newer}
                                    <span id="log-range">{format!("lines {from}–{to} of {total}")}</span>
                                    {older}
                                </nav>
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorBox message=crate::api::problem(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The search's lines per time bucket, stacked by level (errors on top), over its
/// whole range: a bar opens the search of its bucket alone.
#[component]
fn VolumeChart(volume: LogVolume, form: Form) -> impl IntoView {
    const W: f64 = 1300.0;
    const H: f64 = 64.0;
    const AXIS: f64 = 16.0;
    let n = volume.buckets.len().max(1);
    let most = volume
        .buckets
        .iter()
        .map(|counts| counts.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let width = W / n as f64;
    let bars = volume
        .buckets
        .iter()
        .enumerate()
        .filter(|(_, counts)| counts.iter().any(|&c| c > 0))
        .map(|(i, counts)| {
            let from = volume.start_us + i as u64 * volume.step_us;
            let to = from + volume.step_us.saturating_sub(1);
            let total: u64 = counts.iter().sum();
            let parts: Vec<String> = volume
                .levels
                .iter()
                .zip(counts)
                .rev()
                .filter(|(_, &c)| c > 0)
                .map(|(level, c)| format!("{c} {level}"))
                .collect();
            let label = format!(
                "{} – {}: {} ({})",
                format::clock(from),
                format::clock(to),
                format::plural(total as usize, "line"),
                parts.join(", ")
            );
            // Stacked from the bottom: unspecified, trace, ... fatal on top.
            let mut y = H;
            let rects = volume
                .levels
                .iter()
                .zip(counts)
                .filter(|(_, &c)| c > 0)
                .map(|(level, &c)| {
                    let h = (c as f64 / most as f64 * H).max(1.0);
                    y -= h;
                    view! {
                        <rect
                            class=format!("vol-{level}")
                            x=format!("{:.1}", i as f64 * width + 0.5)
                            y=format!("{y:.1}")
                            width=format!("{:.1}", (width - 1.0).max(1.0))
                            height=format!("{h:.1}")
                        />
                    }
                })
                .collect_view();
            let title = label.clone();
            view! {
                // Out of the tab order, as the service bars: the form sets any range.
                <a href=form.zoom_href(from, to) tabindex="-1" aria-label=label>
                    <title>{title}</title>
                    {rects}
                </a>
            }
        })
        .collect_view();
    let end_us = volume.start_us + n as u64 * volume.step_us;
    // Dragging across the chart zooms to the range dragged over: the ends, as
    // fractions of the chart's width, while the pointer is down.
    let drag = RwSignal::new(None::<(f64, f64)>);
    // A drag that zoomed is no click on the bar it ended on.
    let dragged = StoredValue::new(false);
    let start_us = volume.start_us;
    let span_us = end_us.saturating_sub(start_us) as f64;
    let time_at = move |fraction: f64| start_us + (fraction * span_us) as u64;
    #[cfg(feature = "hydrate")]
    let at = |ev: &leptos::ev::PointerEvent| -> f64 {
        use wasm_bindgen::JsCast;
        ev.current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .map(|svg| {
                let rect = svg.get_bounding_client_rect();
                ((f64::from(ev.client_x()) - rect.left()) / rect.width().max(1.0)).clamp(0.0, 1.0)
            })
            .unwrap_or(0.0)
    };
    let on_down = move |ev: leptos::ev::PointerEvent| {
        #[cfg(feature = "hydrate")]
        {
            let x = at(&ev);
            drag.set(Some((x, x)));
            dragged.set_value(false);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        #[cfg(feature = "hydrate")]
        if let Some((from, _)) = drag.get_untracked() {
            drag.set(Some((from, at(&ev))));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let navigate = leptos_router::hooks::use_navigate();
    let zoom_form = form.clone();
    let on_up = move |_: leptos::ev::PointerEvent| {
        if let Some((a, b)) = drag.get_untracked() {
            drag.set(None);
            // Less than a hundredth of the width is a click.
            if (a - b).abs() >= 0.01 {
                dragged.set_value(true);
                let href = zoom_form.zoom_href(time_at(a.min(b)), time_at(a.max(b)));
                navigate(&href, Default::default());
            }
        }
    };
    let on_click = move |ev: leptos::ev::MouseEvent| {
        if dragged.get_value() {
            dragged.set_value(false);
            ev.prevent_default();
        }
    };
    view! {
        <figure class="volume" id="log-volume">
            <svg
                viewBox=format!("0 0 {W} {}", H + AXIS)
                role="group"
                aria-label=format!("{} over time, by level", format::plural(volume.total as usize, "matching line"))
                on:pointerdown=on_down
                on:pointermove=on_move
                on:pointerup=on_up
                on:click=on_click
            >
                <line class="baseline" x1="0" y1=H x2=W y2=H/>
                <rect
                    class="selecting"
                    y="0"
                    height=H
                    x=move || drag.get().map_or(0.0, |(a, b)| a.min(b) * W).to_string()
                    width=move || drag.get().map_or(0.0, |(a, b)| (a - b).abs() * W).to_string()
                />
                {bars}
                <text class="axis" x="0" y=H + AXIS - 3.0>{format::clock(volume.start_us)}</text>
                <text class="axis" x=W y=H + AXIS - 3.0 text-anchor="end">{format::clock(end_us)}</text>
            </svg>
            <figcaption>
                {format!("{} per {}; a bar opens its lines, dragging across zooms in", format::plural(volume.total as usize, "line"), step_label(volume.step_us))}
            </figcaption>
        </figure>
    }
}

/// The patterns of the search's lines, the most frequent first: how many lines
/// each has, over time, how many are errors, whether it is new since the range
/// before, and its newest line; a pattern opens its lines.
#[component]
fn PatternTable(patterns: LogPatterns, form: Form) -> impl IntoView {
    if patterns.patterns.is_empty() {
        let text = if patterns.total > 0 {
            format!(
                "{} match; they were stored before this version counted patterns.",
                format::plural(patterns.total as usize, "line")
            )
        } else {
            "No log lines match.".to_string()
        };
        return view! { <p class="empty" id="pattern-count">{text}</p> }.into_any();
    }
    let fresh = patterns.patterns.iter().filter(|p| p.previous == 0).count();
    let mut summary = format!(
        "{} in {}; {} new (no line from {} to {})",
        format::plural(patterns.pattern_count as usize, "pattern"),
        format::plural(patterns.total as usize, "line"),
        fresh,
        format::clock(patterns.previous_start_us),
        format::clock(patterns.previous_end_us),
    );
    if patterns.patterns.len() < patterns.pattern_count as usize {
        summary.push_str(&format!(
            "; the {} most frequent shown",
            patterns.patterns.len()
        ));
    }
    if patterns.unpatterned > 0 {
        summary.push_str(&format!(
            "; {} stored before patterns were counted",
            format::plural(patterns.unpatterned as usize, "line")
        ));
    }
    let step = patterns.step_us;
    let rows = patterns
        .patterns
        .into_iter()
        .map(|pattern| view! { <PatternRow pattern=pattern form=form.clone() step_us=step/> })
        .collect_view();
    view! {
        <p class="count" id="pattern-count">{summary}</p>
        <table class="patterns" id="patterns">
            <thead>
                <tr>
                    <th scope="col" class="num">"Lines"</th>
                    <th scope="col" class="num">"Share"</th>
                    <th scope="col">"Over time"</th>
                    <th scope="col" class="num">"Errors"</th>
                    <th scope="col">"Pattern and its newest line"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

#[component]
fn PatternRow(pattern: LogPattern, form: Form, step_us: u64) -> impl IntoView {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let most = pattern.counts.iter().copied().max().unwrap_or(0).max(1);
    let n = pattern.counts.len().max(2) - 1;
    let points: Vec<String> = pattern
        .counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * W / n as f64,
                H - 1.0 - c as f64 / most as f64 * (H - 2.0)
            )
        })
        .collect();
    let spark_label = format!(
        "{} per {}, at most {most}",
        format::plural(pattern.count as usize, "line"),
        step_label(step_us)
    );
    let template = if pattern.template.is_empty() {
        format!("pattern {}", pattern.id)
    } else {
        pattern.template.clone()
    };
    let sample = pattern.sample.map(|line| {
        let trace = line.trace_id.clone().map(|t| {
            let href = match &line.span_id {
                Some(s) => format!("/trace/{t}?span={s}"),
                None => format!("/trace/{t}"),
            };
            view! { " " <a class="trace-link" href=href>"trace"</a> }
        });
        view! {
            <div class="sample">
                <time>{format::timestamp(line.time_ns / 1000)}</time>
                " "
                <span class="service">{line.service}</span>
                " "
                <span class="body">{line.body}</span>
                {trace}
            </div>
        }
    });
    let errors = (pattern.errors > 0).then(|| format!("{:.0}%", pattern.error_share * 100.0));
    let has_errors = pattern.errors > 0;
    view! {
        <tr class="pattern" class:has-errors=has_errors>
            <td class="num">{pattern.count}</td>
            <td class="num">{format!("{:.1}%", pattern.share * 100.0)}</td>
            <td>
                <svg class="spark" viewBox=format!("0 0 {W} {H}") role="img" aria-label=spark_label>
                    <polyline points=points.join(" ")/>
                </svg>
            </td>
            <td class="num">{errors.unwrap_or_else(|| "–".to_string())}</td>
            <td>
                <a class="template" href=form.pattern_href(&pattern.id) title=format!("pattern:{}", pattern.id)>
                    <TemplateText template=template/>
                </a>
                {(pattern.previous == 0).then(|| view! { " " <span class="new-badge">"new"</span> })}
                {sample}
            </td>
        </tr>
    }
    .into_any()
}

/// A pattern's template, its placeholders (`<num>`, `<*>`, ...) set apart.
#[component]
fn TemplateText(template: String) -> impl IntoView {
    template_parts(&template)
        .into_iter()
        .map(|(part, variable)| {
            if variable {
                view! { <span class="var">{part}</span> }.into_any()
            } else {
                part.into_any()
            }
        })
        .collect_view()
}

/// What the collector puts for a variable part of a line.
const PLACEHOLDERS: [&str; 11] = [
    "<*>",
    "\"<*>\"",
    "<num>",
    "<duration>",
    "<size>",
    "<uuid>",
    "<ip>",
    "<hex>",
    "<time>",
    "<email>",
    "…",
];

/// A template cut into its text and its placeholders (`true`).
fn template_parts(template: &str) -> Vec<(String, bool)> {
    let mut parts = Vec::new();
    let mut rest = template;
    let mut text = String::new();
    while let Some(c) = rest.chars().next() {
        match PLACEHOLDERS.iter().find(|p| rest.starts_with(**p)) {
            Some(placeholder) => {
                if !text.is_empty() {
                    parts.push((std::mem::take(&mut text), false));
                }
                parts.push((placeholder.to_string(), true));
                rest = &rest[placeholder.len()..];
            }
            None => {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !text.is_empty() {
        parts.push((text, false));
    }
    parts
}

/// A bucket's length as the API's steps come: `1m`, `5m`, `3h`, `2d`, `30s`.
fn step_label(micros: u64) -> String {
    let seconds = micros / 1_000_000;
    match seconds {
        0 => format::duration(micros),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The browser side of the live tail: one `EventSource` at a time.
#[cfg(feature = "hydrate")]
mod tail {
    use std::cell::RefCell;

    use leptos::prelude::*;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    use crate::api::{logs_from_api, LogLine};

    type OnMessage = Closure<dyn FnMut(web_sys::MessageEvent)>;

    thread_local! {
        static SOURCE: RefCell<Option<(web_sys::EventSource, OnMessage)>> =
            const { RefCell::new(None) };
    }

    /// Follows `url` (closing whatever was followed before), or stops with `None`.
    pub(super) fn follow(url: Option<String>, lines: RwSignal<Vec<LogLine>>) {
        SOURCE.with(|source| {
            if let Some((old, _)) = source.borrow_mut().take() {
                old.close();
            }
            let Some(url) = url else { return };
            let Ok(events) = web_sys::EventSource::new(&url) else {
                return;
            };
            let on_logs = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
                move |event: web_sys::MessageEvent| {
                    let Some(text) = event.data().as_string() else {
                        return;
                    };
                    let Ok(batch) = serde_json::from_str::<serde_json::Value>(&text) else {
                        return;
                    };
                    let mut fresh = logs_from_api(&serde_json::json!({ "data": batch })).lines;
                    fresh.reverse();
                    lines.update(|lines| {
                        fresh.append(lines);
                        fresh.truncate(500);
                        *lines = fresh;
                    });
                },
            );
            let _ =
                events.add_event_listener_with_callback("logs", on_logs.as_ref().unchecked_ref());
            *source.borrow_mut() = Some((events, on_logs));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_set_their_placeholders_apart() {
        assert_eq!(
            template_parts("order <num> took <duration> for \"<*>\" …"),
            vec![
                ("order ".to_string(), false),
                ("<num>".to_string(), true),
                (" took ".to_string(), false),
                ("<duration>".to_string(), true),
                (" for ".to_string(), false),
                ("\"<*>\"".to_string(), true),
                (" ".to_string(), false),
                ("…".to_string(), true),
            ]
        );
        // An angle bracket that is no placeholder is text.
        assert_eq!(
            template_parts("a <b> größe"),
            vec![("a <b> größe".to_string(), false)]
        );
    }

    #[test]
    fn a_pattern_opens_its_lines_within_the_search() {
        let form = Form {
            query: "severity:error".into(),
            service: "order-service".into(),
            trace_id: String::new(),
            min_severity: String::new(),
            lookback: "1h".into(),
            start: String::new(),
            end: String::new(),
            limit: "100".into(),
            offset: 3,
            live: false,
            patterns: true,
        };
        let href = form.pattern_href("00ff00ff00ff00ff");
        assert!(
            href.starts_with(
                "/logs?query=pattern%3A00ff00ff00ff00ff%20AND%20%28severity%3Aerror%29&"
            ),
            "{href}"
        );
        assert!(href.contains("service=order-service"), "{href}");
        assert!(
            !href.contains("view=patterns") && !href.contains("offset"),
            "{href}"
        );
        assert!(form.view_href(true).ends_with("&view=patterns"));
        assert!(!form.view_href(false).contains("view="));
    }
}
