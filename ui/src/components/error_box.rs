//! What a page shows when a query failed, or when nothing has been sent yet.

use leptos::prelude::*;

/// Shown where a query failed: the API's message.
#[component]
pub(crate) fn ErrorBox(message: String) -> impl IntoView {
    view! { <p class="error">{message}</p> }
}

pub(crate) const NO_DATA_HINT: &str = concat!(
    "No services have sent data yet. Point an OpenTelemetry SDK or Collector at this host: ",
    "OTEL_EXPORTER_OTLP_ENDPOINT=http://<host>:4318 (OTLP/HTTP) or :4317 (gRPC)."
);
