//! What a page shows when a query failed, when what it names is not there, or
//! when nothing has been sent yet.

use leptos::prelude::*;
use leptos_meta::Title;

/// Shown where a query failed: the API's message.
#[component]
pub(crate) fn ErrorBox(message: String) -> impl IntoView {
    view! { <p class="error" role="alert">{message}</p> }
}

/// A page for something that is not here (an unknown trace, a path that is no
/// page): answered with HTTP 404, in the site's frame, with where to go next.
#[component]
pub(crate) fn NotFound(title: String, message: String) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::ssr::set_status(404);
    view! {
        <Title text=title.clone()/>
        <section class="problem">
            <h1>{title}</h1>
            <p>{message}</p>
            <p>
                <a href="/search">"Search traces"</a>
                " · "
                <a href="/logs">"Search logs"</a>
                " · "
                <a href="/dependencies">"Service map"</a>
            </p>
        </section>
    }
}

pub(crate) const NO_DATA_HINT: &str = concat!(
    "No services have sent data yet. Point an OpenTelemetry SDK or Collector at this host: ",
    "OTEL_EXPORTER_OTLP_ENDPOINT=http://<host>:4318 (OTLP/HTTP) or :4317 (gRPC)."
);
