//! `/logs/context?service=&instance=&time=&before=&after=`: a log line among the
//! lines its service instance wrote just before and after it, as that instance's
//! own log would show them; the line (and any of the same nanosecond) marked.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{load_log_context, LogLine};
use crate::components::{ErrorBox, LogRow};
use crate::format::{plural, Time};
use crate::tags::query_string;

/// Lines each side at first, and how many more a "more" link adds.
const LINES: usize = 10;
const MORE: usize = 40;
/// The most each side (the collector's limit).
const MAX_LINES: usize = 200;

#[derive(Clone, Debug, PartialEq)]
struct Request {
    service: String,
    instance: String,
    time: String,
    before: usize,
    after: usize,
}

impl Request {
    fn pairs(&self, before: usize, after: usize) -> String {
        query_string(&[
            ("service", self.service.clone()),
            ("instance", self.instance.clone()),
            ("time", self.time.clone()),
            ("before", before.to_string()),
            ("after", after.to_string()),
        ])
    }
}

#[component]
pub fn ContextPage() -> impl IntoView {
    let query = use_query_map();
    let request = Memo::new(move |_| {
        let q = query.read();
        let get = |key: &str| q.get(key).unwrap_or_default();
        let lines = |key: &str| {
            q.get(key)
                .and_then(|n| n.parse().ok())
                .unwrap_or(LINES)
                .min(MAX_LINES)
        };
        Request {
            service: get("service"),
            instance: get("instance"),
            time: get("time"),
            before: lines("before"),
            after: lines("after"),
        }
    });
    let context = Resource::new(
        move || request.get(),
        |request| async move {
            load_log_context(request.pairs(request.before, request.after))
                .await
                .map_err(|e| crate::api::problem(&e))
        },
    );
    let row = |line: LogLine| view! { <LogRow line=line terms=Vec::new()/> };
    view! {
        <Title text=move || format!("{} · Log context", request.get().service)/>
        <section class="logs-page context-page">
            <Suspense fallback=|| view! { <p class="loading">"Reading the lines around it…"</p> }>
                {move || Suspend::new(async move {
                    let request = request.get_untracked();
                    let context = match context.await {
                        Ok(context) => context,
                        Err(message) => return view! { <ErrorBox message=message/> }.into_any(),
                    };
                    let whose = match &context.instance {
                        Some(instance) => format!("{} (instance {instance})", context.service),
                        None => context.service.clone(),
                    };
                    let earlier = (context.before.len() == request.before
                        && request.before < MAX_LINES)
                        .then(|| {
                            let more = (request.before + MORE).min(MAX_LINES);
                            let href = format!("/logs/context?{}", request.pairs(more, request.after));
                            view! { <a id="more-before" href=href>"↑ earlier lines"</a> }
                        });
                    let later = (context.after.len() == request.after
                        && request.after < MAX_LINES)
                        .then(|| {
                            let more = (request.after + MORE).min(MAX_LINES);
                            let href = format!("/logs/context?{}", request.pairs(request.before, more));
                            view! { <a id="more-after" href=href>"↓ later lines"</a> }
                        });
                    view! {
                        <h1>
                            "The lines of " {whose} " around "
                            <Time micros={context.time_ns / 1000}/>
                        </h1>
                        <p class="count" id="context-count">
                            {format!(
                                "{} before, {} after",
                                plural(context.before.len(), "line"),
                                plural(context.after.len(), "line"),
                            )}
                        </p>
                        <nav class="pager">{earlier}</nav>
                        <ol class="log-lines" id="context-before">
                            {context.before.into_iter().map(row).collect_view()}
                        </ol>
                        <ol class="log-lines at" id="context-at">
                            {context.at.into_iter().map(row).collect_view()}
                        </ol>
                        <ol class="log-lines" id="context-after">
                            {context.after.into_iter().map(row).collect_view()}
                        </ol>
                        <nav class="pager">{later}</nav>
                    }
                    .into_any()
                })}
            </Suspense>
        </section>
    }
}
