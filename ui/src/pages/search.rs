//! `/search?service=&operation=&tags=&minDuration=&maxDuration=&lookback=&start=&end=&limit=&sort=&cursor=&from=`
//!
//! `cursor` (the API's `nextCursor`) is a later page of the search, in the
//! window of its first; `from` counts the traces of the pages before it.
//!
//! `lookback=custom` with `start`/`end` (µs, as Jaeger's UI writes them) is an
//! absolute range; the form sends it as `from`/`to` local times and `tz`, the
//! browser's offset from UTC in minutes. The service is optional (every
//! service's spans are searched). `/search?traceID=` goes to that trace (two ids:
//! their comparison), as the trace-id box in the top bar does.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_query_map;

use crate::api::{list_operations, list_services, search_traces, TraceResults, TraceSummary};
use crate::components::{
    custom_range, ErrorBox, LookbackSelect, RangeInputs, ServiceColours, NO_DATA_HINT,
    SEARCH_LOOKBACKS,
};
use crate::format::{self, plural, Time};
use crate::tags::{parse_logfmt, query_string, to_json};

/// The orders the collector sorts every match in (`sort=` of `/api/traces`).
const SORTS: [(&str, &str); 6] = [
    ("recent", "Most recent"),
    ("oldest", "Oldest first"),
    ("longest", "Longest first"),
    ("shortest", "Shortest first"),
    ("spans", "Most spans"),
    ("errors", "Most errors"),
];

/// How the operation picker names a pattern of span names: `pattern:<id>`.
const PATTERN: &str = "pattern:";

#[derive(Clone, Debug, PartialEq)]
struct Form {
    service: String,
    operation: String,
    tags: String,
    min_duration: String,
    max_duration: String,
    lookback: String,
    /// The custom range, µs since the epoch (empty unless `lookback` is `custom`).
    start: String,
    end: String,
    limit: String,
    sort: String,
    /// A later page: where the page before ended (empty: the first page).
    cursor: String,
    /// How many traces the pages before this one held.
    from: usize,
}

impl Form {
    /// The search as URL pairs, tags as typed (logfmt); the sort is left out.
    fn pairs(&self) -> [(&'static str, String); 9] {
        [
            ("service", self.service.clone()),
            ("operation", self.operation.clone()),
            ("tags", self.tags.clone()),
            ("minDuration", self.min_duration.clone()),
            ("maxDuration", self.max_duration.clone()),
            ("lookback", self.lookback.clone()),
            ("start", self.start.clone()),
            ("end", self.end.clone()),
            ("limit", self.limit.clone()),
        ]
    }

    /// The `/api/traces` query string (tags as the API's JSON), or why the form
    /// cannot be searched.
    fn api_query(&self) -> Result<String, String> {
        let tags = parse_logfmt(&self.tags).map_err(|e| format!("tags: {e}"))?;
        let mut pairs = with_pattern(self.pairs().to_vec());
        for (key, value) in &mut pairs {
            if *key == "tags" {
                *value = if tags.is_empty() {
                    String::new()
                } else {
                    to_json(&tags)
                };
            }
        }
        let rest = [("sort", self.sort.clone()), ("cursor", self.cursor.clone())];
        Ok(format!("{}&{}", query_string(&pairs), query_string(&rest)))
    }

    /// Every trace of this search, in its order, as a download in `format`
    /// (`ndjson` or `csv`).
    fn download_href(&self, format: &str) -> String {
        let all = Form {
            limit: String::new(),
            cursor: String::new(),
            ..self.clone()
        };
        let query = all.api_query().unwrap_or_default();
        format!("/api/traces/export?{query}&format={format}")
    }

    /// The page after this one, which ended at `cursor` after `shown` traces.
    fn next_href(&self, cursor: &str, shown: usize) -> String {
        let rest = [
            ("sort", self.sort.clone()),
            ("cursor", cursor.to_string()),
            ("from", (self.from + shown).to_string()),
        ];
        format!(
            "/search?{}&{}",
            query_string(&self.pairs()),
            query_string(&rest)
        )
    }

    /// The document's title: what is searched.
    fn title(&self) -> String {
        let what = [&self.service, &self.operation, &self.tags]
            .into_iter()
            .filter(|part| !part.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        if what.is_empty() {
            "Search: all services".to_string()
        } else {
            format!("Search: {what}")
        }
    }
}

/// A search's pairs as the API takes them: an operation picked as a pattern of
/// span names (`pattern:<id>`) is searched by its id, `operationPattern`.
fn with_pattern(mut pairs: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let pattern = pairs
        .iter_mut()
        .find(|(key, value)| *key == "operation" && value.starts_with(PATTERN))
        .map(|(_, value)| std::mem::take(value)[PATTERN.len()..].to_string());
    pairs.extend(pattern.map(|id| ("operationPattern", id)));
    pairs
}

/// Where `/search?traceID=` goes: one id's trace, or two ids' comparison.
fn trace_jump(ids: &[String]) -> Option<String> {
    let ids: Vec<&str> = ids
        .iter()
        .map(|id| id.trim())
        .filter(|id| !id.is_empty())
        .collect();
    match ids.as_slice() {
        [] => None,
        [one] => Some(format!("/trace/{}", crate::tags::encode(one))),
        [a, b, ..] => Some(format!(
            "/trace/{}...{}",
            crate::tags::encode(a),
            crate::tags::encode(b)
        )),
    }
}

#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let jump = trace_jump(
        &query
            .read_untracked()
            .get_all("traceID")
            .unwrap_or_default(),
    );
    if let Some(path) = jump {
        return view! { <Redirect path=path/> }.into_any();
    }
    search_page(query).into_any()
}

fn search_page(query: Memo<leptos_router::params::ParamsMap>) -> impl IntoView {
    let form = Memo::new(move |_| {
        let q = query.read();
        let get = |key: &str, default: &str| q.get(key).unwrap_or_else(|| default.to_string());
        let lookback = get("lookback", "1h");
        // With a preset, `end` is where the search was pinned (see `pin_end`).
        let (start, end) = if lookback == "custom" {
            custom_range(&q)
        } else {
            (String::new(), q.get("end").unwrap_or_default())
        };
        Form {
            service: get("service", ""),
            operation: get("operation", ""),
            tags: get("tags", ""),
            min_duration: get("minDuration", ""),
            max_duration: get("maxDuration", ""),
            lookback,
            start,
            end,
            limit: get("limit", "20"),
            sort: get("sort", "recent"),
            cursor: get("cursor", ""),
            from: q
                .get("from")
                .and_then(|from| from.parse().ok())
                .unwrap_or(0),
        }
    });
    let services = Resource::new(|| (), |_| list_services());
    // The service chosen in the form, before it is submitted: the operation picker follows it.
    let chosen = RwSignal::new(form.get_untracked().service);
    Effect::new(move |_| chosen.set(form.get().service));
    let operations = Resource::new(move || chosen.get(), list_operations);
    let lookback = Signal::derive(move || form.get().lookback);
    let results = Resource::new(
        move || form.get(),
        |form| async move {
            match form.api_query() {
                Ok(query) => search_traces(query)
                    .await
                    .map_err(|e| crate::api::problem(&e)),
                Err(message) => {
                    #[cfg(feature = "ssr")]
                    crate::ssr::set_status(400);
                    Err(message)
                }
            }
        },
    );

    view! {
        <Title text=move || form.get().title()/>
        <section class="search">
            <form class="filters" method="get" action="/search">
                <Suspense fallback=|| view! { <p>"Loading services…"</p> }>
                    {move || Suspend::new(async move {
                        let form = form.get_untracked();
                        let services = services.await.unwrap_or_default();
                        if services.is_empty() {
                            return view! { <p class="empty">{NO_DATA_HINT}</p> }.into_any();
                        }
                        view! {
                            <label>"Service"
                                <select name="service" id="service"
                                    on:change=move |ev| chosen.set(event_target_value(&ev))>
                                    <option value="">"all services"</option>
                                    {services.into_iter().map(|s| {
                                        let selected = s == form.service;
                                        view! {
                                            <option value=s.clone() selected=selected>
                                                {s.clone()}
                                            </option>
                                        }
                                    }).collect_view()}
                                </select>
                            </label>
                        }.into_any()
                    })}
                </Suspense>
                <Transition fallback=|| view! {
                    <label>"Operation"<select name="operation" id="operation"></select></label>
                }>
                    {move || Suspend::new(async move {
                        let form = form.get_untracked();
                        let crate::api::Operations { names, patterns } =
                            operations.await.unwrap_or_default();
                        // The URL's operation, while the URL's service is the chosen one.
                        let current = if chosen.get_untracked() == form.service {
                            form.operation
                        } else {
                            String::new()
                        };
                        view! {
                            <label>"Operation"
                                <select name="operation" id="operation">
                                    <option value="">"all"</option>
                                    {(!patterns.is_empty()).then(|| view! {
                                        <optgroup label="Patterns of names">
                                            {patterns.into_iter().map(|p| {
                                                let value = format!("{PATTERN}{}", p.id);
                                                let selected = value == current;
                                                view! {
                                                    <option value=value selected=selected>
                                                        {format!("{} ({} operations)", p.template, p.operations)}
                                                    </option>
                                                }
                                            }).collect_view()}
                                        </optgroup>
                                    })}
                                    {names.into_iter().map(|o| {
                                        let selected = o == current;
                                        view! {
                                            <option value=o.clone() selected=selected>
                                                {o.clone()}
                                            </option>
                                        }
                                    }).collect_view()}
                                </select>
                            </label>
                        }
                    })}
                </Transition>
                <label>"Tags"
                    <input
                        name="tags"
                        id="tags"
                        placeholder="http.response.status_code=500 error=true"
                        value=move || form.get().tags
                    />
                </label>
                <label>"Min duration"
                    <input
                        name="minDuration"
                        placeholder="150ms"
                        value=move || form.get().min_duration
                    />
                </label>
                <label>"Max duration"
                    <input
                        name="maxDuration"
                        placeholder="1.5s"
                        value=move || form.get().max_duration
                    />
                </label>
                <label>"Time"<LookbackSelect options=SEARCH_LOOKBACKS selected=lookback/></label>
                <RangeInputs
                    start=Signal::derive(move || form.get().start)
                    end=Signal::derive(move || form.get().end)
                />
                <label>"Limit"
                    <input
                        name="limit"
                        type="number"
                        min="1"
                        max="1500"
                        value=move || form.get().limit
                    />
                </label>
                <input type="hidden" name="sort" value=move || form.get().sort/>
                <button type="submit" id="find">"Find traces"</button>
            </form>
            <Suspense fallback=|| view! { <p class="loading">"Searching…"</p> }>
                {move || Suspend::new(async move {
                    let form = form.get_untracked();
                    match results.await {
                        Ok(results) => view! { <Results results=results form=form/> }.into_any(),
                        Err(message) => view! { <ErrorBox message=message/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Results(results: TraceResults, form: Form) -> impl IntoView {
    // The window the server pinned this search to: the address and every link
    // below keep it, so Back, a sort or a later page shows these traces.
    let form = match results.end.clone() {
        Some(end) => {
            #[cfg(feature = "hydrate")]
            {
                let end = end.clone();
                Effect::new(move |_| place::pin(&end));
            }
            Form { end, ..form }
        }
        None => form,
    };
    let traces = results.traces;
    if traces.is_empty() {
        return view! {
            <p class="empty">"No traces match. Widen the time range or drop a filter."</p>
        }
        .into_any();
    }
    // Back from a trace returns to the same place in the results: the scroll
    // position is kept per address when a result is opened, and put back once
    // the results are drawn again (after the router's own scrolling).
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        set_timeout(place::restore_scroll, std::time::Duration::from_millis(80));
    });
    let remember = move |_: leptos::ev::MouseEvent| {
        #[cfg(feature = "hydrate")]
        place::remember_scroll();
    };
    let base = query_string(&form.pairs());
    // The same traces, analysed (as many as the analysis takes, not this page's limit).
    let search: Vec<(&str, String)> = with_pattern(form.pairs().to_vec())
        .into_iter()
        .filter(|(key, _)| *key != "limit")
        .collect();
    let analyse = format!("/analyse?{}", query_string(&search));
    let shown = traces.len();
    let (from, to) = (form.from + 1, form.from + shown);
    let first = (!form.cursor.is_empty()).then(|| {
        let href = format!(
            "/search?{base}&{}",
            query_string(&[("sort", form.sort.clone())])
        );
        view! { <a id="first-page" href=href>"← first page"</a> }
    });
    let next = results.next.as_ref().map(|cursor| {
        view! { <a id="next-page" rel="next" href=form.next_href(cursor, shown)>"next page →"</a> }
    });
    let pager = (first.is_some() || next.is_some()).then(|| {
        view! {
            <nav class="pager" aria-label="pages of matching traces">
                {first}
                <span id="trace-range">{format!("traces {from}–{to} of {}", results.total)}</span>
                {next}
            </nav>
        }
    });
    view! {
        <div class="scatter-box" on:click=remember>
            <Scatter traces=traces.clone()/>
        </div>
        <div class="sorts">
            <span class="matched">
                {if results.capped {
                    format!("{shown} shown; more than {} traces match", results.total)
                } else if results.total as usize == shown {
                    plural(shown, "trace")
                } else if form.cursor.is_empty() {
                    format!("{shown} of {} traces", results.total)
                } else {
                    format!("traces {from}–{to} of {}", results.total)
                }}
            </span>
            {SORTS.iter().map(|(key, label)| {
                let class = if form.sort == *key { "sort active" } else { "sort" };
                view! { <a class=class href=format!("/search?{base}&sort={key}")>{*label}</a> }
            }).collect_view()}
            <a class="analyse" id="analyse-link" href=analyse>"Analyse these traces"</a>
            <span class="downloads">
                "Download all: "
                <a id="download-ndjson" download href=form.download_href("ndjson")>"NDJSON"</a>
                " · "
                <a id="download-csv" download href=form.download_href("csv")>"CSV"</a>
            </span>
        </div>
        <form class="compare-form" method="get" action="/search">
        <p class="compare-hint">
            "Tick two traces to compare them: "
            <button type="submit" id="compare">"Compare"</button>
        </p>
        <ol class="results" on:click=remember>
            {traces.into_iter().map(|t| {
                let colours = ServiceColours::assign(t.services.iter().map(|(s, _)| s.as_str()));
                view! {
                    <li class="result">
                        <input
                            type="checkbox"
                            name="traceID"
                            value=t.id.clone()
                            class="pick"
                            aria-label=format!("compare trace {}", t.id)
                        />
                        <a class="trace-link" href=format!("/trace/{}", t.id)>
                            <span class="title">{format!("{}: {}", t.root_service, t.root_name)}</span>
                            <span class="duration">{format::duration(t.duration_us)}</span>
                        </a>
                        <div class="meta">
                            <span>{plural(t.span_count, "span")}</span>
                            {(t.errors > 0).then(|| view! {
                                <span class="errors">{format!("⚠ {}", plural(t.errors, "error"))}</span>
                            })}
                            {(t.orphans > 0).then(|| view! {
                                <span class="orphans">
                                    {format!(
                                        "{} {} a parent that is not in this trace",
                                        plural(t.orphans, "span"),
                                        if t.orphans == 1 { "has" } else { "have" },
                                    )}
                                </span>
                            })}
                            {t.services.into_iter().map(|(service, n)| view! {
                                <span
                                    class="service-chip"
                                    style=format!("border-color:{}", colours.of(&service))
                                >
                                    {format!("{service} ({n})")}
                                </span>
                            }).collect_view()}
                            <Time micros=t.start_us/>
                        </div>
                    </li>
                }
            }).collect_view()}
        </ol>
        </form>
        {pager}
    }
    .into_any()
}

/// Where the scatter plot puts things: time left to right, durations on a log
/// scale (a 750 ms outlier does not flatten the rest), in a `w` x `h` box with
/// room for the axes' labels left of and below the plot.
struct Plot {
    w: f64,
    h: f64,
    left: f64,
    bottom: f64,
    t0: u64,
    t1: u64,
    log_min: f64,
    log_max: f64,
}

impl Plot {
    const TOP: f64 = 12.0;
    const RIGHT: f64 = 14.0;

    fn new(traces: &[TraceSummary]) -> Plot {
        let t0 = traces.iter().map(|t| t.start_us).min().unwrap_or(0);
        let t1 = traces
            .iter()
            .map(|t| t.start_us)
            .max()
            .unwrap_or(t0)
            .max(t0 + 1);
        let d = |t: &TraceSummary| (t.duration_us.max(1) as f64).log10();
        let log_min = traces.iter().map(d).fold(f64::INFINITY, f64::min);
        let log_max = traces.iter().map(d).fold(f64::NEG_INFINITY, f64::max);
        let (log_min, log_max) = if log_min.is_finite() && log_max > log_min {
            (log_min, log_max)
        } else {
            let at = if log_min.is_finite() { log_min } else { 0.0 };
            (at - 0.5, at + 0.5)
        };
        Plot {
            w: 1300.0,
            h: 200.0,
            left: 64.0,
            bottom: 28.0,
            t0,
            t1,
            log_min,
            log_max,
        }
    }

    fn x(&self, micros: u64) -> f64 {
        let share = micros.saturating_sub(self.t0) as f64 / (self.t1 - self.t0) as f64;
        self.left + share * (self.w - self.left - Self::RIGHT)
    }

    fn y(&self, duration_us: u64) -> f64 {
        let share =
            ((duration_us.max(1) as f64).log10() - self.log_min) / (self.log_max - self.log_min);
        self.h - self.bottom - share * (self.h - self.bottom - Self::TOP)
    }

    /// Durations to label: the powers of ten inside the range, else its ends.
    fn duration_ticks(&self) -> Vec<u64> {
        let ticks: Vec<u64> = (0..=12)
            .map(|p| 10u64.pow(p))
            .filter(|&d| {
                let l = (d as f64).log10();
                l >= self.log_min - 1e-9 && l <= self.log_max + 1e-9
            })
            .collect();
        if ticks.len() >= 2 {
            ticks
        } else {
            vec![
                10f64.powf(self.log_min).round() as u64,
                10f64.powf(self.log_max).round() as u64,
            ]
        }
    }

    /// Five times along the axis, as UTC clock times (with the date past a day).
    fn time_ticks(&self) -> Vec<(u64, String)> {
        let long = self.t1 - self.t0 > 86_400_000_000;
        (0..5)
            .map(|i| {
                let t = self.t0 + (self.t1 - self.t0) / 4 * i;
                let text = format::timestamp(t);
                let label = if long { &text[5..16] } else { &text[11..19] };
                (t, label.to_string())
            })
            .collect()
    }
}

/// Duration over time: one focusable plot (arrow keys move between its dots in
/// time order, Enter opens one); each dot also opens its trace when clicked.
#[component]
fn Scatter(traces: Vec<TraceSummary>) -> impl IntoView {
    let plot = Plot::new(&traces);
    let mut traces = traces;
    traces.sort_by_key(|t| (t.start_us, t.id.clone()));
    let focused = RwSignal::new(None::<usize>);
    let described: Vec<String> = traces
        .iter()
        .map(|t| {
            format!(
                "{}: {}, {}, {}",
                t.root_service,
                t.root_name,
                format::duration(t.duration_us),
                plural(t.errors, "error")
            )
        })
        .collect();
    let ids: Vec<String> = traces.iter().map(|t| t.id.clone()).collect();
    let navigate = leptos_router::hooks::use_navigate();
    let on_key = move |event: leptos::ev::KeyboardEvent| {
        let last = ids.len().saturating_sub(1);
        if ids.is_empty() {
            return;
        }
        match event.key().as_str() {
            "ArrowRight" | "ArrowUp" => {
                focused.update(|f| *f = Some(f.map_or(0, |i| (i + 1).min(last))))
            }
            "ArrowLeft" | "ArrowDown" => {
                focused.update(|f| *f = Some(f.map_or(last, |i| i.saturating_sub(1))))
            }
            "Home" => focused.set(Some(0)),
            "End" => focused.set(Some(last)),
            "Enter" => match focused.get_untracked() {
                Some(i) => navigate(&format!("/trace/{}", ids[i]), Default::default()),
                None => return,
            },
            _ => return,
        }
        event.prevent_default();
    };
    let axis_y = plot.h - plot.bottom;
    view! {
        <svg
            class="scatter"
            viewBox=format!("0 0 {} {}", plot.w, plot.h)
            tabindex="0"
            role="group"
            aria-label="trace durations over time: arrow keys move between traces, Enter opens one"
            on:keydown=on_key
        >
            <line x1=plot.left y1=axis_y x2=plot.w - Plot::RIGHT y2=axis_y class="axis"/>
            <line x1=plot.left y1=Plot::TOP x2=plot.left y2=axis_y class="axis"/>
            {plot.duration_ticks().into_iter().map(|d| {
                let y = plot.y(d);
                view! {
                    <line x1=plot.left - 4.0 y1=y x2=plot.w - Plot::RIGHT y2=y class="grid"/>
                    <text x=plot.left - 7.0 y=y + 4.0 class="label ytick">{format::duration(d)}</text>
                }
            }).collect_view()}
            {plot.time_ticks().into_iter().map(|(t, label)| {
                let x = plot.x(t);
                view! {
                    <line x1=x y1=axis_y x2=x y2=axis_y + 4.0 class="axis"/>
                    <text x=x y=axis_y + 17.0 class="label xtick">{label}</text>
                }
            }).collect_view()}
            {traces.into_iter().enumerate().map(|(rank, t)| {
                let (x, y) = (plot.x(t.start_us), plot.y(t.duration_us));
                let r = 3.0 + (t.span_count as f64).sqrt().min(8.0);
                let error = t.errors > 0;
                let class = move || {
                    let mut class = String::from("dot");
                    if error { class.push_str(" error"); }
                    if focused.get() == Some(rank) { class.push_str(" focused"); }
                    class
                };
                let title = format!(
                    "{}: {} ({})",
                    t.root_service,
                    t.root_name,
                    format::duration(t.duration_us)
                );
                view! {
                    <a href=format!("/trace/{}", t.id) tabindex="-1" data-trace=t.id.clone()>
                        <circle cx=x cy=y r=r class=class>
                            <title>{title}</title>
                        </circle>
                    </a>
                }
            }).collect_view()}
        </svg>
        <p class="scatter-focus" aria-live="polite">
            {move || focused.get().and_then(|i| described.get(i).cloned())}
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_picked_as_operation_is_searched_by_its_id() {
        let pairs = vec![
            ("service", "users".to_string()),
            ("operation", "pattern:00ab".to_string()),
        ];
        assert_eq!(
            with_pattern(pairs),
            vec![
                ("service", "users".to_string()),
                ("operation", String::new()),
                ("operationPattern", "00ab".to_string()),
            ]
        );
        let plain = vec![("operation", "GET /health".to_string())];
        assert_eq!(with_pattern(plain.clone()), plain);
    }
}

/// The results page's place in the browser's history: its pinned address, and its
/// scroll position across Back (kept in the session's storage).
#[cfg(feature = "hydrate")]
mod place {
    /// Adds `end` to the address, in place (no new history entry, no navigation),
    /// unless it has one: a page the server rendered for `lookback=1h` becomes the
    /// address of the window it showed.
    pub(super) fn pin(end: &str) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let location = window.location();
        let (Ok(path), Ok(search)) = (location.pathname(), location.search()) else {
            return;
        };
        let Some(pinned) = crate::api::pinned_query(search.trim_start_matches('?'), end) else {
            return;
        };
        let pinned = format!("{path}?{pinned}");
        if let Ok(history) = window.history() {
            // The router's own state rides along, so it still knows the entry.
            let state = history.state().unwrap_or(wasm_bindgen::JsValue::NULL);
            let _ = history.replace_state_with_url(&state, "", Some(&pinned));
        }
    }

    /// The session's storage and this address's key in it.
    fn place() -> Option<(web_sys::Window, web_sys::Storage, String)> {
        let window = web_sys::window()?;
        let storage = window.session_storage().ok()??;
        let href = window.location().href().ok()?;
        Some((window, storage, format!("hopline-scroll {href}")))
    }

    pub(super) fn remember_scroll() {
        if let Some((window, storage, key)) = place() {
            if let Ok(y) = window.scroll_y() {
                let _ = storage.set_item(&key, &y.to_string());
            }
        }
    }

    pub(super) fn restore_scroll() {
        let Some((window, storage, key)) = place() else {
            return;
        };
        if let Some(y) = storage
            .get_item(&key)
            .ok()
            .flatten()
            .and_then(|y| y.parse::<f64>().ok())
        {
            window.scroll_to_with_x_and_y(0.0, y);
        }
    }
}
