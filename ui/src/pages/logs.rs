//! `/logs?query=&service=&traceID=&minSeverity=&lookback=&start=&end=&limit=&live=`:
//! log search. As on the search page, `lookback=custom` with `start`/`end` (µs),
//! or the form's `from`/`to` local times, is an absolute range; `start`/`end`
//! alone mean it too.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{search_logs, LogLine};
use crate::components::{
    custom_range, highlight_terms, ErrorBox, LogRow, LookbackSelect, LOGS_LOOKBACKS,
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
    /// The custom range, µs since the epoch (empty unless `lookback` is `custom`).
    start: String,
    end: String,
    limit: String,
    live: bool,
}

impl Form {
    fn api_query(&self) -> String {
        let custom = self.lookback == "custom";
        let range = |value: &String| if custom { value.clone() } else { String::new() };
        query_string(&[
            ("query", self.query.clone()),
            ("service", self.service.clone()),
            ("traceID", self.trace_id.clone()),
            ("minSeverity", self.min_severity.clone()),
            (
                "lookback",
                if custom {
                    String::new()
                } else {
                    self.lookback.clone()
                },
            ),
            ("start", range(&self.start)),
            ("end", range(&self.end)),
            ("limit", self.limit.clone()),
        ])
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
        Form {
            query: get("query", ""),
            service: get("service", ""),
            trace_id: get("traceID", ""),
            min_severity: get("minSeverity", ""),
            lookback,
            start,
            end,
            limit: get("limit", "100"),
            live: q.get("live").is_some_and(|v| v == "1"),
        }
    });
    let results = Resource::new(
        move || form.get(),
        |form| async move { search_logs(form.api_query()).await },
    );
    // Live tail: while `live=1`, new matching lines stream in over server-sent events
    // (`/api/logs/tail`), newest on top, above the search's results.
    let streamed = RwSignal::new(Vec::<LogLine>::new());
    Effect::new(move |_| {
        let form = form.get();
        streamed.set(Vec::new());
        #[cfg(feature = "hydrate")]
        tail::follow(
            form.live
                .then(|| format!("/api/logs/tail?{}", form.api_query())),
            streamed,
        );
        #[cfg(not(feature = "hydrate"))]
        let _ = form;
    });
    on_cleanup(|| {
        #[cfg(feature = "hydrate")]
        tail::follow(None, RwSignal::new(Vec::new()));
    });
    let lookback = Signal::derive(move || form.get().lookback);
    // The browser's zone once hydrated (the server renders UTC).
    let tz = RwSignal::new(0i64);
    Effect::new(move |_| tz.set(format::browser_offset_minutes()));
    let local = move |micros: String| {
        micros
            .parse::<u64>()
            .map(|us| format::datetime_local(us, tz.get()))
            .unwrap_or_default()
    };
    let live_href = move || {
        let f = form.get();
        format!(
            "/logs?{}&live={}",
            f.api_query(),
            if f.live { 0 } else { 1 }
        )
    };
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
                <input type="hidden" name="limit" value=move || form.get().limit/>
                <button type="submit" id="search-logs">"Search logs"</button>
                <a class="live" id="live" href=live_href>
                    {move || if form.get().live { "Pause live tail" } else { "Live tail" }}
                </a>
            </form>
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
            <Suspense fallback=|| view! { <p class="loading">"Searching…"</p> }>
                {move || Suspend::new(async move {
                    let form = form.get_untracked();
                    match results.await {
                        Ok(page) if page.lines.is_empty() => {
                            view! { <p class="empty">"No log lines match."</p> }.into_any()
                        }
                        Ok(page) => {
                            let terms = highlight_terms(&form.query);
                            let live = if form.live { " (live)" } else { "" };
                            let count =
                                format!("{} matching lines, newest first{live}", page.total);
                            view! {
                                <p class="count">{count}</p>
                                <ol class="log-lines">
                                    {page.lines.into_iter().map(|line| view! {
                                        <LogRow line=line terms=terms.clone()/>
                                    }).collect_view()}
                                </ol>
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorBox message=crate::api::problem(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
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
