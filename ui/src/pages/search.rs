//! `/search?service=&operation=&tags=&minDuration=&maxDuration=&lookback=&start=&end=&limit=&sort=`
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
    custom_range, ErrorBox, LookbackSelect, ServiceColours, NO_DATA_HINT, SEARCH_LOOKBACKS,
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
        let mut pairs = self.pairs();
        for (key, value) in &mut pairs {
            if *key == "tags" {
                *value = if tags.is_empty() {
                    String::new()
                } else {
                    to_json(&tags)
                };
            }
        }
        let sort = [("sort", self.sort.clone())];
        Ok(format!("{}&{}", query_string(&pairs), query_string(&sort)))
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
        let (start, end) = if lookback == "custom" {
            custom_range(&q)
        } else {
            Default::default()
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
        }
    });
    let services = Resource::new(|| (), |_| list_services());
    // The service chosen in the form, before it is submitted: the operation picker follows it.
    let chosen = RwSignal::new(form.get_untracked().service);
    Effect::new(move |_| chosen.set(form.get().service));
    let operations = Resource::new(move || chosen.get(), list_operations);
    // The browser's zone once hydrated (the server renders UTC).
    let tz = RwSignal::new(0i64);
    Effect::new(move |_| tz.set(format::browser_offset_minutes()));
    let local = move |micros: String| {
        micros
            .parse::<u64>()
            .map(|us| format::datetime_local(us, tz.get()))
            .unwrap_or_default()
    };
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
                        let operations = operations.await.unwrap_or_default();
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
                                    {operations.into_iter().map(|o| {
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
                <label class="range">{move || format!("From ({})", format::zone(tz.get()))}
                    <input
                        type="datetime-local"
                        name="from"
                        id="from"
                        value=move || local(form.get().start)
                    />
                </label>
                <label class="range">{move || format!("To ({})", format::zone(tz.get()))}
                    <input
                        type="datetime-local"
                        name="to"
                        id="to"
                        value=move || local(form.get().end)
                    />
                </label>
                <input type="hidden" name="tz" value=move || tz.get().to_string()/>
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
    let traces = results.traces;
    if traces.is_empty() {
        return view! {
            <p class="empty">"No traces match. Widen the time range or drop a filter."</p>
        }
        .into_any();
    }
    let base = query_string(&form.pairs());
    view! {
        <Scatter traces=traces.clone()/>
        <div class="sorts">
            <span class="matched">
                {if results.capped {
                    format!("{} shown; more than {} traces match", traces.len(), results.total)
                } else if results.total as usize == traces.len() {
                    plural(traces.len(), "trace")
                } else {
                    format!("{} of {} traces", traces.len(), results.total)
                }}
            </span>
            {SORTS.iter().map(|(key, label)| {
                let class = if form.sort == *key { "sort active" } else { "sort" };
                view! { <a class=class href=format!("/search?{base}&sort={key}")>{*label}</a> }
            }).collect_view()}
        </div>
        <form class="compare-form" method="get" action="/search">
        <p class="compare-hint">
            "Tick two traces to compare them: "
            <button type="submit" id="compare">"Compare"</button>
        </p>
        <ol class="results">
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
    }
    .into_any()
}

/// Duration over time; each dot opens its trace.
#[component]
fn Scatter(traces: Vec<TraceSummary>) -> impl IntoView {
    let (w, h, pad) = (1300.0, 180.0, 56.0);
    let t0 = traces.iter().map(|t| t.start_us).min().unwrap_or(0);
    let t1 = traces
        .iter()
        .map(|t| t.start_us)
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    let dmax = traces
        .iter()
        .map(|t| t.duration_us)
        .max()
        .unwrap_or(1)
        .max(1);
    view! {
        <svg
            class="scatter"
            viewBox=format!("0 0 {w} {h}")
            role="img"
            aria-label="trace durations over time"
        >
            <line x1=pad y1=h - pad x2=w - 5.0 y2=h - pad class="axis"/>
            <line x1=pad y1=5.0 x2=pad y2=h - pad class="axis"/>
            <text x=4.0 y=14.0 class="label">{format::duration(dmax)}</text>
            <text x=4.0 y=h - pad class="label">"0"</text>
            {traces.into_iter().map(|t| {
                let x = pad + (t.start_us - t0) as f64 / (t1 - t0) as f64 * (w - pad - 15.0);
                let y = h - pad - t.duration_us as f64 / dmax as f64 * (h - pad - 10.0);
                let r = 3.0 + (t.span_count as f64).sqrt().min(8.0);
                let class = if t.errors > 0 { "dot error" } else { "dot" };
                let title = format!(
                    "{}: {} ({})",
                    t.root_service,
                    t.root_name,
                    format::duration(t.duration_us)
                );
                view! {
                    <a href=format!("/trace/{}", t.id)>
                        <circle cx=x cy=y r=r class=class>
                            <title>{title}</title>
                        </circle>
                    </a>
                }
            }).collect_view()}
        </svg>
    }
}
