//! Server side: how the pages and server functions reach the query API.
//!
//! They call it in process, through its router, with the credentials of the
//! request being answered (its headers, cookies and peer address): the API checks
//! them as it would the browser's own call, so a page shows exactly what its
//! viewer's token may read, and no network hop or TLS sits between the two.

use axum::body::Body;
use axum::http::{header, Request};
use leptos::prelude::ServerFnError;
use serde_json::Value;
use tower::ServiceExt;

/// The query API's router, provided by `hopline` as context to the pages and the
/// server functions of its router (one per server, so several collectors in one
/// process, as in tests, each reach their own).
#[derive(Clone)]
pub struct QueryApi {
    pub router: axum::Router,
    /// Copies what identifies the viewer from the page request's extensions (its
    /// peer address) to the API request's; nothing else, since routing state
    /// there (the page's path parameters) would confuse the API's routes.
    pub carry: fn(&axum::http::Extensions, &mut axum::http::Extensions),
}

/// Largest answer a page reads from the query API.
const MAX_ANSWER: usize = 64 << 20;

/// The request to the API for `path`, carrying the credentials of the request
/// being answered.
fn request(api: &QueryApi, path: &str) -> Result<Request<Body>, ServerFnError> {
    let mut request = Request::get(path)
        .body(Body::empty())
        .map_err(|e| ServerFnError::new(format!("bad query API path {path}: {e}")))?;
    if let Some(parts) = leptos::prelude::use_context::<axum::http::request::Parts>() {
        // What identifies the viewer: a bearer token, the sign-in cookie, the
        // tenant asked for, a trusted proxy's user header, the peer address.
        (api.carry)(&parts.extensions, request.extensions_mut());
        for (name, value) in &parts.headers {
            if name != header::CONTENT_LENGTH
                && name != header::CONTENT_TYPE
                && name != header::ACCEPT
                && name != header::ACCEPT_ENCODING
                && name != header::TRANSFER_ENCODING
            {
                request.headers_mut().append(name, value.clone());
            }
        }
    }
    Ok(request)
}

/// GET a query API path; a 404 is `None`, any other error says what the API said.
pub async fn get_optional(path: &str) -> Result<Option<Value>, ServerFnError> {
    let api = leptos::prelude::use_context::<QueryApi>()
        .ok_or_else(|| ServerFnError::new("the UI is not connected to a query API"))?;
    let request = request(&api, path)?;
    let response = api
        .router
        .oneshot(request)
        .await
        .map_err(|e| ServerFnError::new(format!("query API failed: {e}")))?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| ServerFnError::new(format!("cannot read the query API's answer: {e}")))?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.as_u16() == 404 {
        return Ok(None);
    }
    if !status.is_success() {
        // The page that shows this error answers with the API's status (a bad
        // parameter is the viewer's 400, not a 200 with an error on it).
        set_status(status.as_u16());
        let message = body["errors"][0]["msg"]
            .as_str()
            .map_or_else(|| format!("query failed (HTTP {status})"), str::to_string);
        return Err(ServerFnError::new(message));
    }
    Ok(Some(body))
}

pub async fn get(path: &str) -> Result<Value, ServerFnError> {
    get_optional(path)
        .await?
        .ok_or_else(|| ServerFnError::new(format!("not found: {path}")))
}

/// Sets the HTTP status of the page being rendered, when a page is (not when a
/// server function answers the browser: its own status carries its result).
pub fn set_status(code: u16) {
    let is_page = leptos::prelude::use_context::<axum::http::request::Parts>()
        .is_some_and(|parts| !parts.uri.path().starts_with(crate::api::SERVER_FN_PREFIX));
    if !is_page {
        return;
    }
    if let (Some(response), Ok(status)) = (
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        axum::http::StatusCode::from_u16(code),
    ) {
        response.set_status(status);
    }
}

/// The cookie `/theme` sets.
pub const THEME_COOKIE: &str = "hopline_theme";

/// The theme the viewer chose (`light` or `dark`), from the page request's
/// cookie; `None` follows the system's setting.
pub fn theme() -> Option<&'static str> {
    let parts = leptos::prelude::use_context::<axum::http::request::Parts>()?;
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, _)| *name == THEME_COOKIE)
        .and_then(|(_, value)| match value {
            "light" => Some("light"),
            "dark" => Some("dark"),
            _ => None,
        })
}
