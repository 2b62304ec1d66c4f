//! Who reads: every route of the UI port but `/health`, the sign-in page and the
//! assets needs a query token (`Authorization: Bearer`, or the sign-in cookie) or
//! a user named by a trusted proxy, once any is configured. The tenant found is
//! the only one the request sees: its handlers get that tenant's [`ApiState`]
//! through [`Tenant`].
//!
//! The sign-in page keeps the token in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` under TLS): scripts cannot read it and other sites cannot send it.

use std::sync::atomic::Ordering;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{ApiError, ApiState};
use crate::access::{self, Credentials, Denied, Role, TenantId};
use crate::net::PeerAddr;

/// The sign-in cookie: the query token itself.
const TOKEN_COOKIE: &str = "hopline_token";
/// The tenant chosen at sign-in, where the token reaches several.
const TENANT_COOKIE: &str = "hopline_tenant";
/// How long a sign-in lasts.
const COOKIE_MAX_AGE: u64 = 7 * 24 * 3600;

/// The state of the caller's tenant, for a handler.
pub struct Tenant(pub ApiState);

impl FromRequestParts<ApiState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &ApiState) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<TenantState>()
            .map(|scoped| Tenant(scoped.0.clone()))
            .ok_or_else(|| ApiError::internal("the request's tenant was not resolved"))
    }
}

/// Put into a request's extensions by [`authenticate`].
#[derive(Clone)]
pub(super) struct TenantState(pub(super) ApiState);

/// Routes anyone may reach: what a load balancer probes, and what signing in needs.
fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/signin" | "/signout") || path.starts_with("/pkg/")
}

/// The value of cookie `name` in a request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value.trim())
        })
}

/// The caller's tenant, from the request's token, cookie or trusted proxy header.
fn resolve(
    state: &ApiState,
    parts_headers: &HeaderMap,
    peer: Option<PeerAddr>,
) -> Result<TenantId, Denied> {
    let text = |name: &str| parts_headers.get(name).and_then(|v| v.to_str().ok());
    let proxy_header = peer.and_then(|PeerAddr(addr)| state.access.proxy_header_from(addr.ip()));
    let credentials = Credentials {
        token: text(header::AUTHORIZATION.as_str())
            .and_then(access::bearer_token)
            .or_else(|| cookie(parts_headers, TOKEN_COOKIE)),
        proxy_user: proxy_header.as_deref().and_then(text),
        org_id: text(access::ORG_ID_HEADER).or_else(|| cookie(parts_headers, TENANT_COOKIE)),
    };
    state.access.authorize(Role::Query, credentials)
}

/// Another node of the cluster asking a leaf search with `--cluster-token`: the
/// tenant it names (`X-Scope-OrgID`). `None` for any other request.
fn cluster_caller(
    state: &ApiState,
    path: &str,
    headers: &HeaderMap,
) -> Option<Result<TenantId, Denied>> {
    let secret = state.leaves.as_ref()?.cluster.settings.token.as_deref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(access::bearer_token)?;
    if path != crate::cluster::leaf::PATH
        || !access::constant_time_eq(secret.as_bytes(), given.as_bytes())
    {
        return None;
    }
    let name = headers
        .get(access::ORG_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(crate::config::DEFAULT_TENANT);
    Some(
        state
            .access
            .names()
            .iter()
            .position(|tenant| tenant == name)
            .ok_or_else(|| Denied::NotYourTenant(name.to_string())),
    )
}

/// Resolves the caller's tenant; refuses those without one: a page is sent to the
/// sign-in page, an API call gets 401 (or 403) in the API's error envelope.
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if is_public(&path) {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<PeerAddr>().copied();
    let resolved = match cluster_caller(&state, &path, request.headers()) {
        Some(resolved) => resolved,
        None => resolve(&state, request.headers(), peer),
    };
    match resolved {
        Ok(tenant) => {
            // `/metrics` shows every tenant's figures: the operator's (`default`) only.
            if path == "/metrics" && tenant != 0 {
                return ApiError::forbidden(
                    "/metrics shows every tenant: it needs a query token of the tenant 'default'",
                )
                .into_response();
            }
            let scoped = state.for_tenant(tenant);
            request.extensions_mut().insert(TenantState(scoped));
            next.run(request).await
        }
        Err(denied) => {
            state.metrics.auth_denied.fetch_add(1, Ordering::Relaxed);
            let wants_page = request.method() == Method::GET
                && !path.starts_with("/api/")
                && path != "/metrics"
                && request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|accept| accept.contains("text/html"));
            if wants_page && !denied.is_forbidden() {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .to_string();
                return Redirect::to(&format!("/signin?next={}", percent_encode(&target)))
                    .into_response();
            }
            let error = if denied.is_forbidden() {
                ApiError::forbidden(denied.to_string())
            } else if denied.is_ambiguous() {
                ApiError::bad_request(denied.to_string())
            } else {
                ApiError::unauthorized(denied.to_string())
            };
            error.into_response()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    token: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    next: String,
}

/// `GET /signin`: the form.
pub async fn sign_in_page(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<SignInQuery>,
) -> Response {
    page(
        &state,
        StatusCode::OK,
        None,
        &query.next.unwrap_or_default(),
    )
}

/// `POST /signin`: a query token (and a tenant, where it reaches several) in, the
/// cookie out, and on to the page asked for.
pub async fn sign_in(State(state): State<ApiState>, Form(form): Form<SignInForm>) -> Response {
    let token = form.token.trim();
    let tenant = form.tenant.trim();
    let credentials = Credentials {
        token: Some(token),
        proxy_user: None,
        org_id: Some(tenant).filter(|t| !t.is_empty()),
    };
    match state.access.authorize(Role::Query, credentials) {
        Ok(id) => {
            let secure = if state.tls { "; Secure" } else { "" };
            let attributes =
                format!("Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE}{secure}");
            let name = &state.access.names()[id];
            let mut response = Redirect::to(safe_next(&form.next)).into_response();
            for value in [
                format!("{TOKEN_COOKIE}={token}; {attributes}"),
                format!("{TENANT_COOKIE}={name}; {attributes}"),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(denied) => {
            state.metrics.auth_denied.fetch_add(1, Ordering::Relaxed);
            let message = match denied {
                Denied::Missing => "Enter a query token.".to_string(),
                Denied::Invalid => "That token is not a query token here.".to_string(),
                other => format!("{}.", capitalized(&other.to_string())),
            };
            page(&state, StatusCode::UNAUTHORIZED, Some(&message), &form.next)
        }
    }
}

/// `POST /signout`: the cookies cleared.
pub async fn sign_out() -> Response {
    let mut response = Redirect::to("/signin").into_response();
    for name in [TOKEN_COOKIE, TENANT_COOKIE] {
        let value = format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Only a path of this site: never `//other.example` or `https://...`.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\");
    if local && !next.chars().any(char::is_control) {
        next
    } else {
        "/search"
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The sign-in page: plain HTML, no script, the stylesheet of the UI.
fn page(state: &ApiState, status: StatusCode, error: Option<&str>, next: &str) -> Response {
    let several = state.access.names().len() > 1;
    let error = error
        .map(|message| format!(r#"<p class="error" role="alert">{}</p>"#, escape(message)))
        .unwrap_or_default();
    let tenant = if several {
        r#"<label>Tenant <small>(only if your token reaches several)</small><input name="tenant" autocomplete="off"></label>"#
    } else {
        ""
    };
    let body = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Hopline</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/pkg/hopline.css"></head>
<body><header class="top"><span class="brand">Hopline</span></header>
<main class="signin"><h1>Sign in</h1>{error}
<form method="post" action="/signin">
<label>Query token<input name="token" type="password" autocomplete="current-password" required autofocus></label>
{tenant}<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button></form>
<p class="hint">Ask whoever runs this Hopline for a query token (its <code>--tokens-file</code>).</p></main></body></html>"#,
        next = escape(safe_next(next)),
    );
    let mut response = (status, Html(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/trace/abc?x=1"), "/trace/abc?x=1");
        assert_eq!(safe_next("//evil.example/"), "/search");
        assert_eq!(safe_next("https://evil.example/"), "/search");
        assert_eq!(safe_next("/\\evil.example"), "/search");
        assert_eq!(safe_next(""), "/search");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hopline_token=abc; b=2"),
        );
        assert_eq!(cookie(&headers, TOKEN_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, TENANT_COOKIE), None);
    }

    #[test]
    fn what_goes_into_the_page_is_escaped() {
        assert_eq!(escape(r#"<script>"'&"#), "&lt;script&gt;&quot;&#39;&amp;");
        assert_eq!(percent_encode("/logs?q=a b&x"), "/logs%3Fq%3Da%20b%26x");
    }
}
