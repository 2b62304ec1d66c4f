//! Log lines: the table of a trace's logs, and the log search's rows with the query's
//! words highlighted.

use std::collections::HashSet;

use leptos::prelude::*;

use super::severity_class;
use crate::api::{LogLine, SpanView};
use crate::format::{plural, Time};

/// Attributes shown inline before the rest are folded away.
const INLINE_ATTRIBUTES: usize = 6;
/// Characters of a value shown in a chip (the whole value is its tooltip).
const CHIP_VALUE_CHARS: usize = 60;

/// A record's attributes: the first few inline as `key=value` chips, and all of
/// them in a fold.
#[component]
pub(crate) fn AttributeChips(attributes: Vec<(String, String)>) -> impl IntoView {
    if attributes.is_empty() {
        return ().into_any();
    }
    let chips = attributes
        .iter()
        .take(INLINE_ATTRIBUTES)
        .map(|(key, value)| {
            let shown: String = if value.chars().count() > CHIP_VALUE_CHARS {
                value.chars().take(CHIP_VALUE_CHARS).chain(['…']).collect()
            } else {
                value.clone()
            };
            view! {
                <span class="chip" title=format!("{key}={value}")>
                    <span class="key">{key.clone()}</span>"="<span class="value">{shown}</span>
                </span>
            }
        })
        .collect_view();
    let more = attributes.len().saturating_sub(INLINE_ATTRIBUTES);
    let summary = if more > 0 {
        format!(
            "{more} more ({} in all)",
            plural(attributes.len(), "attribute")
        )
    } else {
        plural(attributes.len(), "attribute")
    };
    view! {
        <span class="chips">{chips}</span>
        <details class="attributes">
            <summary>{summary}</summary>
            <table class="tags"><tbody>
                {attributes.into_iter().map(|(k, v)| view! {
                    <tr><th>{k}</th><td>{v}</td></tr>
                }).collect_view()}
            </tbody></table>
        </details>
    }
    .into_any()
}

/// Log lines in time order; with `spans`, each links to its span in the waterfall.
#[component]
pub(crate) fn LogTable(logs: Vec<LogLine>, spans: Vec<SpanView>) -> impl IntoView {
    let ids: HashSet<String> = spans.iter().map(|s| s.id.clone()).collect();
    view! {
        <table class="logs"><tbody>
            {logs.into_iter().map(|l| {
                let span_link = l
                    .span_id
                    .clone()
                    .filter(|s| ids.contains(s))
                    .map(|s| view! { <a href=format!("?span={s}")>"span"</a> });
                view! {
                    <tr class=format!("log sev-{}", severity_class(l.severity_number))>
                        <td class="time"><Time micros={l.time_ns / 1000}/></td>
                        <td class="sev">{l.severity.clone()}</td>
                        <td class="svc">{l.service.clone()}</td>
                        <td class="body">
                            {l.body.clone()}
                            <AttributeChips attributes=l.attributes.clone()/>
                        </td>
                        <td>{span_link}</td>
                    </tr>
                }
            }).collect_view()}
        </tbody></table>
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

/// One line of the log search: the query's words marked in its body, a link to its
/// trace (and span), its attributes folded away.
#[component]
pub(crate) fn LogRow(line: LogLine, terms: Vec<String>) -> impl IntoView {
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
            <a class="context-link" href=line.context_href()
                title="the lines of this service instance around this one">"context"</a>
            <AttributeChips attributes=line.attributes.clone()/>
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
