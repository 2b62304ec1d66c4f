//! `/analyse?service=&operation=&operationPattern=&tags=&minDuration=&maxDuration=&lookback=&start=&end=`
//! `&group=duration|attribute|time&fastest=&slowest=&attribute=&a=&b=&limit=`
//!
//! Why the slow ones are slow: the traces of a search (the search page's
//! parameters, tags as typed) in two groups, compared span path by span path
//! (`/api/analysis`): the findings in words, then a row per path with bars of
//! the time each group spends on it on the critical path, and example traces of
//! each group.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{load_analysis, Analysis, AnalysisGroup, PathSide};
use crate::components::{custom_range, ErrorBox};
use crate::format;
use crate::tags::{parse_logfmt, query_string, to_json};

/// The page's URL state: the search, then the grouping.
#[derive(Clone, Debug, PartialEq)]
struct Request {
    search: Vec<(&'static str, String)>,
    grouping: Vec<(&'static str, String)>,
}

/// The search page's parameters that select the traces.
const SEARCH_KEYS: [&str; 9] = [
    "service",
    "operation",
    "operationPattern",
    "tags",
    "minDuration",
    "maxDuration",
    "lookback",
    "start",
    "end",
];

const GROUPING_KEYS: [&str; 7] = [
    "group",
    "fastest",
    "slowest",
    "attribute",
    "a",
    "b",
    "limit",
];

impl Request {
    fn from_url(q: &leptos_router::params::ParamsMap) -> Request {
        let get = |key: &str| q.get(key).unwrap_or_default();
        // With a preset, `end` is where the search it came from was pinned.
        let (start, end) = if get("lookback") == "custom" {
            custom_range(q)
        } else {
            (String::new(), get("end"))
        };
        let search = SEARCH_KEYS
            .iter()
            .map(|&key| {
                let value = match key {
                    "start" => start.clone(),
                    "end" => end.clone(),
                    "lookback" if get(key).is_empty() => "1h".to_string(),
                    _ => get(key),
                };
                (key, value)
            })
            .collect();
        let grouping = GROUPING_KEYS.iter().map(|&key| (key, get(key))).collect();
        Request { search, grouping }
    }

    fn get(&self, key: &str) -> String {
        self.search
            .iter()
            .chain(&self.grouping)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The `/api/analysis` query string (tags as the API's JSON), or why the
    /// search cannot be run.
    fn api_query(&self) -> Result<String, String> {
        let tags = parse_logfmt(&self.get("tags")).map_err(|e| format!("tags: {e}"))?;
        let mut pairs: Vec<(&str, String)> = self.search.clone();
        for (key, value) in &mut pairs {
            if *key == "tags" {
                *value = if tags.is_empty() {
                    String::new()
                } else {
                    to_json(&tags)
                };
            }
        }
        pairs.extend(self.grouping.iter().cloned());
        Ok(query_string(&pairs))
    }

    /// What is analysed, in words.
    fn what(&self) -> String {
        let what = ["service", "operation", "tags"]
            .into_iter()
            .map(|key| self.get(key))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if what.is_empty() {
            "all services".to_string()
        } else {
            what
        }
    }
}

#[component]
pub fn AnalysisPage() -> impl IntoView {
    let query = use_query_map();
    let request = Memo::new(move |_| Request::from_url(&query.read()));
    let analysis = Resource::new(
        move || request.get(),
        |request| async move {
            match request.api_query() {
                Ok(query) => load_analysis(query)
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
    let value = move |key: &'static str| move || request.get().get(key);
    let group = move || {
        let group = request.get().get("group");
        if group.is_empty() {
            "duration".to_string()
        } else {
            group
        }
    };
    view! {
        <Title text=move || format!("Analysis: {}", request.get().what())/>
        <section class="analysis">
            <h1>"Why are the slow ones slow?"</h1>
            <p class="what">
                {move || format!("Traces of {}, ", request.get().what())}
                <a href=move || format!("/search?{}", query_string(&request.get().search))>
                    "back to the search"
                </a>
            </p>
            <form class="grouping" method="get" action="/analyse">
                {move || request.get().search.into_iter().map(|(key, value)| {
                    view! { <input type="hidden" name=key value=value/> }
                }).collect_view()}
                <label>"Compare"
                    <select name="group" id="group">
                        {[
                            ("duration", "the fastest against the slowest"),
                            ("attribute", "two values of an attribute"),
                            ("time", "this range against the one before"),
                        ].into_iter().map(|(option, label)| {
                            view! {
                                <option value=option selected=move || group() == option>{label}</option>
                            }
                        }).collect_view()}
                    </select>
                </label>
                <label>"Fastest %"
                    <input name="fastest" type="number" min="1" max="50" placeholder="50"
                        value=value("fastest")/>
                </label>
                <label>"Slowest %"
                    <input name="slowest" type="number" min="1" max="50" placeholder="5"
                        value=value("slowest")/>
                </label>
                <label>"Attribute"
                    <input name="attribute" placeholder="service.version" value=value("attribute")/>
                </label>
                <label>"A is"<input name="a" placeholder="1.4" value=value("a")/></label>
                <label>"B is"<input name="b" placeholder="1.5" value=value("b")/></label>
                <label>"Traces"
                    <input name="limit" type="number" min="1" max="5000" placeholder="1000"
                        value=value("limit")/>
                </label>
                <button type="submit" id="analyse">"Analyse"</button>
            </form>
            <Suspense fallback=|| view! { <p class="loading">"Analysing…"</p> }>
                {move || Suspend::new(async move {
                    match analysis.await {
                        Ok(analysis) => view! { <Report analysis=analysis/> }.into_any(),
                        Err(message) => view! { <ErrorBox message=message/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

fn ms(value: f64) -> String {
    format::duration((value * 1000.0).round() as u64)
}

fn trace_links(ids: &[String]) -> impl IntoView {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            view! {
                <a class="example" href=format!("/trace/{id}") title=id.clone()>
                    {format!("#{}", i + 1)}
                </a>
            }
        })
        .collect_view()
}

#[component]
fn GroupCard(group: AnalysisGroup, class: &'static str, name: &'static str) -> impl IntoView {
    view! {
        <div class=format!("group {class}")>
            <h2>{format!("{name}: {}", group.label)}</h2>
            <p>
                {format::plural(group.traces as usize, "trace")}
                {(group.traces > 0).then(|| format!(
                    " · mean {} · p50 {} · p95 {}",
                    ms(group.mean_ms),
                    ms(group.p50_ms),
                    ms(group.p95_ms)
                ))}
            </p>
            {(!group.examples.is_empty()).then(|| view! {
                <p class="examples">"Examples: "{trace_links(&group.examples)}</p>
            })}
        </div>
    }
}

/// A bar of `value` on a scale whose full width is `max`.
fn bar(class: &'static str, value: f64, max: f64) -> impl IntoView {
    let width = if max > 0.0 {
        (value / max * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    view! {
        <span class="bar-lane">
            <span class=format!("bar {class}") style=format!("width:{width:.1}%")></span>
        </span>
    }
}

/// A finding, with the names it quotes (`SELECT users`) as code.
fn finding(text: &str) -> impl IntoView {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            let part = part.to_string();
            if i % 2 == 1 {
                view! { <code>{part}</code> }.into_any()
            } else {
                part.into_any()
            }
        })
        .collect_view()
}

/// One group's time on a path's critical segments per trace, and its share.
fn critical(name: &str, side: &PathSide) -> String {
    if side.traces == 0 {
        return format!("{name} —");
    }
    format!(
        "{name} {} ({:.0}%)",
        ms(side.critical_ms),
        side.critical_share * 100.0
    )
}

fn side_cell(side: &PathSide) -> String {
    if side.traces == 0 {
        return "—".to_string();
    }
    let errors = if side.errors > 0 {
        format!(" · ⚠ {}", side.errors)
    } else {
        String::new()
    };
    format!(
        "{:.1}/trace · self {} (p95 {}){errors}",
        side.spans_per_trace,
        ms(side.self_mean_ms),
        ms(side.self_p95_ms)
    )
}

#[component]
fn Report(analysis: Analysis) -> impl IntoView {
    let [a, b] = analysis.groups.clone();
    if a.traces + b.traces == 0 {
        return view! {
            <p class="empty">"No traces match. Widen the time range or drop a filter."</p>
            {analysis.notes.into_iter().map(|n| view! { <p class="note">{n}</p> }).collect_view()}
        }
        .into_any();
    }
    let max = analysis
        .paths
        .iter()
        .flat_map(|p| p.sides.iter().map(|s| s.critical_ms))
        .fold(0.0, f64::max);
    let matched = match analysis.matched {
        Some(n) => format::plural(n as usize, "trace") + " matched",
        None => "More traces matched than a search counts".to_string(),
    };
    view! {
        <p class="matched">{matched}</p>
        <div class="groups">
            <GroupCard group=a.clone() class="a" name="A"/>
            <GroupCard group=b.clone() class="b" name="B"/>
        </div>
        {(!analysis.findings.is_empty()).then(|| view! {
            <h2>"What differs"</h2>
            <ol class="findings">
                {analysis.findings.iter().map(|f| view! { <li>{finding(f)}</li> }).collect_view()}
            </ol>
        })}
        <table class="paths">
            <thead>
                <tr>
                    <th>"Span path"</th>
                    <th>"On the critical path, per trace"</th>
                    <th class="num">"Difference"</th>
                    <th>"A: spans, self time"</th>
                    <th>"B: spans, self time"</th>
                    <th>"Examples"</th>
                </tr>
            </thead>
            <tbody>
                {analysis.paths.iter().map(|row| {
                    let (ancestors, _) = row
                        .path
                        .rsplit_once(hopline_tree::PATH_SEPARATOR)
                        .unwrap_or_default();
                    let [sa, sb] = &row.sides;
                    let sign = if row.delta_ms > 0.0 { "+" } else if row.delta_ms < 0.0 { "−" } else { "" };
                    view! {
                        <tr>
                            <td class="path" title=row.path.clone()>
                                <span class="ancestors">{ancestors.to_string()}</span>
                                <span class="op">{format!("{}: {}", row.service, row.operation)}</span>
                            </td>
                            <td class="bars">
                                <div>{bar("a", sa.critical_ms, max)}<span class="figure">{critical("A", sa)}</span></div>
                                <div>{bar("b", sb.critical_ms, max)}<span class="figure">{critical("B", sb)}</span></div>
                            </td>
                            <td class="num delta">{format!("{sign}{}", ms(row.delta_ms.abs()))}</td>
                            <td>{side_cell(sa)}</td>
                            <td>{side_cell(sb)}</td>
                            <td class="examples">
                                {(!sa.examples.is_empty()).then(|| view! { <span>"A "{trace_links(&sa.examples)}</span> })}
                                {(!sb.examples.is_empty()).then(|| view! { <span>" B "{trace_links(&sb.examples)}</span> })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <p class="legend">
            "Each row is a span path (service: operation under its ancestors). The bars \
             show the time each group's traces spend in it on the critical path (what the \
             request waits on), per trace, and its share of the whole; then spans per \
             trace, mean and p95 self time, errors (⚠)."
        </p>
        {(!analysis.attributes.is_empty()).then(|| view! {
            <h2>"Attributes B carries more often"</h2>
            <table class="attributes">
                <thead><tr><th>"Attribute"</th><th class="num">"A"</th><th class="num">"B"</th></tr></thead>
                <tbody>
                    {analysis.attributes.iter().map(|row| view! {
                        <tr>
                            <td>{format!("{}={}", row.key, row.value)}</td>
                            <td class="num">{format!("{:.0}% ({})", row.shares[0] * 100.0, row.traces[0])}</td>
                            <td class="num">{format!("{:.0}% ({})", row.shares[1] * 100.0, row.traces[1])}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        })}
        {analysis.notes.into_iter().map(|n| view! { <p class="note">{n}</p> }).collect_view()}
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_query_carries_the_search_with_tags_as_json_and_the_grouping() {
        let request = Request {
            search: vec![
                ("service", "gateway".into()),
                ("tags", "error=true".into()),
                ("lookback", "1h".into()),
                ("start", String::new()),
            ],
            grouping: vec![("slowest", "10".into()), ("a", String::new())],
        };
        assert_eq!(
            request.api_query(),
            Ok("service=gateway&tags=%7B%22error%22%3A%22true%22%7D&lookback=1h&slowest=10".into())
        );
        assert_eq!(request.what(), "gateway error=true");
        let bad = Request {
            search: vec![("tags", "=x".into())],
            grouping: Vec::new(),
        };
        assert!(bad.api_query().is_err());
    }
}
