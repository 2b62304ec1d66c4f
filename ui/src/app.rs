//! The app: the HTML document around it, the header, and the routes to the pages.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::use_params_map;
use leptos_router::{path, SsrMode};

use crate::components::NotFound;
use crate::pages::analysis::AnalysisPage;
use crate::pages::compare::ComparePage;
use crate::pages::context::ContextPage;
use crate::pages::dependencies::DependenciesPage;
use crate::pages::logs::LogsPage;
use crate::pages::search::SearchPage;
use crate::pages::services::{ServicePage, ServicesPage};
use crate::pages::trace::TracePage;

/// The HTML document around the app. `hydrate` is false when the wasm bundle is
/// missing: the pages are then served without scripts, readable as they are. The
/// bundle's file names come from `options.output_name`, the stylesheet's from
/// `stylesheet`: both carry a content hash when `cargo xtask ui` built them.
/// `sign_out`: signing in is needed here, so every page offers to sign out (a
/// form after the app, outside what the browser hydrates).
pub fn shell(
    options: LeptosOptions,
    hydrate: bool,
    stylesheet: String,
    sign_out: bool,
) -> impl IntoView {
    // The viewer's choice of theme (a cookie set by `/theme`); without one the
    // system's setting holds.
    #[cfg(feature = "ssr")]
    let theme = crate::ssr::theme();
    #[cfg(not(feature = "ssr"))]
    let theme: Option<&'static str> = None;
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="data:,"/>
                <link rel="stylesheet" id="hopline" href=stylesheet/>
                {hydrate.then(|| view! {
                    <HydrationScripts options=options.clone()/>
                })}
                <MetaTags/>
            </head>
            <body>
                <App/>
                {sign_out.then(|| view! {
                    <form class="signout" method="post" action="/signout">
                        <button type="submit">"Sign out"</button>
                    </form>
                })}
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
                <a class="brand" href="/">"Hopline"</a>
                <nav>
                    <a href="/services">"Services"</a>
                    <a href="/search">"Search"</a>
                    <a href="/dependencies">"Service map"</a>
                    <a href="/logs">"Logs"</a>
                </nav>
                <form class="trace-jump" method="get" action="/search" role="search">
                    <input
                        name="traceID"
                        id="trace-jump"
                        placeholder="Trace id"
                        aria-label="Go to a trace by its id"
                        autocomplete="off"
                        spellcheck="false"
                    />
                    <button type="submit">"Go"</button>
                </form>
                <ThemeSwitch/>
            </header>
            <main>
                <Routes fallback=|| view! {
                    <NotFound
                        title="No such page".to_string()
                        message="Hopline has no page at this address.".to_string()
                    />
                }>
                    <Route path=path!("/") view=ServicesPage ssr=SsrMode::Async/>
                    <Route path=path!("/services") view=ServicesPage ssr=SsrMode::Async/>
                    <Route path=path!("/services/:service") view=ServicePage ssr=SsrMode::Async/>
                    <Route path=path!("/search") view=SearchPage ssr=SsrMode::Async/>
                    <Route path=path!("/analyse") view=AnalysisPage ssr=SsrMode::Async/>
                    <Route path=path!("/trace/:id") view=TraceRoute ssr=SsrMode::Async/>
                    <Route path=path!("/dependencies") view=DependenciesPage ssr=SsrMode::Async/>
                    <Route path=path!("/logs") view=LogsPage ssr=SsrMode::Async/>
                    <Route path=path!("/logs/context") view=ContextPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

/// Light, dark, or the system's setting: links to `/theme`, which keeps the
/// choice in a cookie and comes back here (no script needed).
#[component]
fn ThemeSwitch() -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    let back = move || {
        let search = location.search.get();
        let here = match search.trim_start_matches('?') {
            "" => location.pathname.get(),
            query => format!("{}?{query}", location.pathname.get()),
        };
        crate::tags::encode(&here)
    };
    view! {
        <nav class="theme" aria-label="colour theme">
            {[("system", "Auto"), ("light", "Light"), ("dark", "Dark")].into_iter().map(|(set, label)| {
                view! {
                    <a
                        rel="external"
                        id=format!("theme-{set}")
                        href=move || format!("/theme?set={set}&back={}", back())
                    >
                        {label}
                    </a>
                }
            }).collect_view()}
        </nav>
    }
}

/// `/trace/{id}` is one trace, `/trace/{a}...{b}` two traces compared.
#[component]
fn TraceRoute() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    view! {
        {move || {
            let id = id();
            match id.split_once("...") {
                Some((a, b)) => {
                    view! { <ComparePage a=a.to_string() b=b.to_string()/> }.into_any()
                }
                None => view! { <TracePage id=id/> }.into_any(),
            }
        }}
    }
}
