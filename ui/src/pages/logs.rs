//! `/logs?query=&service=&traceID=&minSeverity=&lookback=&limit=&live=`: log search.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::trace::severity_class;
use super::ErrorBox;
use crate::api::{search_logs, LogLine};
use crate::format::Time;
use crate::tags::query_string;

#[derive(Clone, Debug, PartialEq)]
struct Form {
    query: String,
    service: String,
    trace_id: String,
    min_severity: String,
    lookback: String,
    limit: String,
    live: bool,
}

impl Form {
    fn api_query(&self) -> String {
        query_string(&[
            ("query", self.query.clone()),
            ("service", self.service.clone()),
            ("traceID", self.trace_id.clone()),
            ("minSeverity", self.min_severity.clone()),
            ("lookback", self.lookback.clone()),
            ("limit", self.limit.clone()),
        ])
    }
}

/// The words of a query worth highlighting: not operators, not `field:` prefixes.
pub(crate) fn highlight_terms(query: &str) -> Vec<String> {
    query
        .split(|c: char| c.is_whitespace() || c == '"' || c == '(' || c == ')')
        .filter(|w| !w.is_empty() && !matches!(*w, "AND" | "OR" | "NOT"))
        .map(|w| w.rsplit(':').next().unwrap_or(w).to_lowercase())
        .filter(|w| w.len() > 1)
        .collect()
}

/// Splits `text` into (piece, highlighted) around case-insensitive matches.
pub(crate) fn highlight(text: &str, terms: &[String]) -> Vec<(String, bool)> {
    let lower = text.to_lowercase();
    if terms.is_empty() || lower.len() != text.len() {
        return vec![(text.to_string(), false)];
    }
    let mut marks = vec![false; text.len()];
    for term in terms {
        let mut from = 0;
        while let Some(at) = lower[from..].find(term.as_str()) {
            let start = from + at;
            marks[start..start + term.len()]
                .iter_mut()
                .for_each(|m| *m = true);
            from = start + term.len();
        }
    }
    let mut pieces: Vec<(String, bool)> = Vec::new();
    for (i, c) in text.char_indices() {
        let marked = marks[i];
        match pieces.last_mut() {
            Some((piece, m)) if *m == marked => piece.push(c),
            _ => pieces.push((c.to_string(), marked)),
        }
    }
    pieces
}

#[component]
pub fn LogsPage() -> impl IntoView {
    let query = use_query_map();
    let form = Memo::new(move |_| {
        let q = query.read();
        let get = |key: &str, default: &str| q.get(key).unwrap_or_else(|| default.to_string());
        Form {
            query: get("query", ""),
            service: get("service", ""),
            trace_id: get("traceID", ""),
            min_severity: get("minSeverity", ""),
            lookback: get("lookback", "1h"),
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
    let live_href = move || {
        let f = form.get();
        format!(
            "/logs?{}&live={}",
            f.api_query(),
            if f.live { 0 } else { 1 }
        )
    };
    view! {
        <section class="logs-page">
            <form class="filters" method="get" action="/logs">
                <label class="wide">"Query"<input name="query" id="query" placeholder=r#"service:orders AND "card declined" NOT severity:debug"# value=move || form.get().query/></label>
                <label>"Service"<input name="service" value=move || form.get().service/></label>
                <label>"Trace ID"<input name="traceID" value=move || form.get().trace_id/></label>
                <label>"Min severity"
                    <select name="minSeverity">
                        {["", "debug", "info", "warn", "error", "fatal"].into_iter().map(|v| {
                            let selected = move || form.get().min_severity == v;
                            view! { <option value=v selected=selected>{if v.is_empty() { "any" } else { v }}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <label>"Time"
                    <select name="lookback">
                        {["15m", "1h", "6h", "24h", "2d", "7d"].into_iter().map(|v| {
                            let selected = move || form.get().lookback == v;
                            view! { <option value=v selected=selected>{v}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <input type="hidden" name="limit" value=move || form.get().limit/>
                <button type="submit" id="search-logs">"Search logs"</button>
                <a class="live" id="live" href=live_href>{move || if form.get().live { "Pause live tail" } else { "Live tail" }}</a>
            </form>
            {move || {
                let lines = streamed.get();
                (!lines.is_empty()).then(|| view! {
                    <p class="count">{format!("{} new lines streamed", lines.len())}</p>
                    <ol class="log-lines live" id="live-lines">
                        {lines.into_iter().map(|line| view! { <LogRow line=line terms=Vec::new()/> }).collect_view()}
                    </ol>
                })
            }}
            <Suspense fallback=|| view! { <p class="loading">"Searching…"</p> }>
                {move || Suspend::new(async move {
                    let form = form.get_untracked();
                    match results.await {
                        Ok(page) if page.lines.is_empty() => view! { <p class="empty">"No log lines match."</p> }.into_any(),
                        Ok(page) => {
                            let terms = highlight_terms(&form.query);
                            view! {
                                <p class="count">{format!("{} matching lines, newest first{}", page.total, if form.live { " (live)" } else { "" })}</p>
                                <ol class="log-lines">
                                    {page.lines.into_iter().map(|line| view! { <LogRow line=line terms=terms.clone()/> }).collect_view()}
                                </ol>
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
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

    thread_local! {
        static SOURCE: RefCell<Option<(web_sys::EventSource, Closure<dyn FnMut(web_sys::MessageEvent)>)>> = const { RefCell::new(None) };
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

#[component]
fn LogRow(line: LogLine, terms: Vec<String>) -> impl IntoView {
    let pieces = highlight(&line.body, &terms);
    let trace_link = line.trace_id.clone().map(|t| {
        let href = match &line.span_id {
            Some(s) => format!("/trace/{t}?span={s}"),
            None => format!("/trace/{t}"),
        };
        view! { <a class="trace-link" href=href>"trace"</a> }
    });
    view! {
        <li class=format!("log-line sev-{}", severity_class(line.severity_number))>
            <Time micros={line.time_ns / 1000}/>
            <span class="sev">{line.severity.clone()}</span>
            <span class="svc">{line.service.clone()}</span>
            <span class="body">
                {pieces.into_iter().map(|(piece, marked)| if marked {
                    view! { <mark>{piece}</mark> }.into_any()
                } else {
                    view! { <span>{piece}</span> }.into_any()
                }).collect_view()}
            </span>
            {trace_link}
            {(!line.attributes.is_empty()).then(|| view! {
                <details class="attributes">
                    <summary>{format!("{} attributes", line.attributes.len())}</summary>
                    <table class="tags"><tbody>
                        {line.attributes.iter().map(|(k, v)| view! { <tr><th>{k.clone()}</th><td>{v.clone()}</td></tr> }).collect_view()}
                    </tbody></table>
                </details>
            })}
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_the_query_words_case_insensitively() {
        let terms = highlight_terms(r#"service:orders AND "card declined" NOT x"#);
        assert_eq!(terms, vec!["orders", "card", "declined"]);
        let pieces = highlight("Card was declined", &terms);
        assert_eq!(
            pieces,
            vec![
                ("Card".to_string(), true),
                (" was ".to_string(), false),
                ("declined".to_string(), true)
            ]
        );
    }
}
