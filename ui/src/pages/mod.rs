//! The pages. Each reads its state from the URL and renders on the server (and, once
//! the wasm bundle has loaded, re-renders in the browser as the URL changes).

// `#[component]` expands into `pub` props types, which these private modules do not export.
#[allow(unreachable_pub)]
mod dependencies;
#[allow(unreachable_pub)]
mod logs;
#[allow(unreachable_pub)]
mod search;
#[allow(unreachable_pub)]
mod trace;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

/// The HTML document around the app. `hydrate` is false when the wasm bundle is
/// missing: the pages are then served without scripts, readable as they are. The
/// bundle's file names come from `options.output_name`, the stylesheet's from
/// `stylesheet`: both carry a content hash when `cargo xtask ui` built them.
pub fn shell(options: LeptosOptions, hydrate: bool, stylesheet: String) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="data:,"/>
                <link rel="stylesheet" id="hopline" href=stylesheet/>
                {hydrate.then(|| view! { <HydrationScripts options=options.clone()/> })}
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Hopline"/>
        <Router>
            <header class="top">
                <a class="brand" href="/search">"Hopline"</a>
                <nav>
                    <a href="/search">"Search"</a>
                    <a href="/dependencies">"Service map"</a>
                    <a href="/logs">"Logs"</a>
                </nav>
            </header>
            <main>
                <Routes fallback=|| view! { <p class="error">"No such page."</p> }>
                    <Route path=path!("/") view=search::SearchPage ssr=SsrMode::Async/>
                    <Route path=path!("/search") view=search::SearchPage ssr=SsrMode::Async/>
                    <Route path=path!("/trace/:id") view=trace::TracePage ssr=SsrMode::Async/>
                    <Route path=path!("/dependencies") view=dependencies::DependenciesPage ssr=SsrMode::Async/>
                    <Route path=path!("/logs") view=logs::LogsPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

/// The colour of a service, the same on every page.
pub(crate) fn service_colour(service: &str) -> String {
    let hash = service.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!("hsl({}, 55%, 52%)", hash % 360)
}

/// Shown where a query failed: the API's message.
#[component]
pub(crate) fn ErrorBox(message: String) -> impl IntoView {
    view! { <p class="error">{message}</p> }
}

pub(crate) const NO_DATA_HINT: &str = "No services have sent data yet. Point an OpenTelemetry SDK or Collector at this host: OTEL_EXPORTER_OTLP_ENDPOINT=http://<host>:4318 (OTLP/HTTP) or :4317 (gRPC).";

/// `15m`, `1h`, `7d` -> milliseconds (default one hour).
pub(crate) fn lookback_ms(text: &str) -> u64 {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().unwrap_or(1);
    n * match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 3_600_000,
    }
}
