//! The web UI on the API port: Leptos pages rendered here (`hopline-ui`), their
//! server functions, and the wasm bundle under `/pkg` when it has been built.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tracing::{info, warn};

use crate::access::{AccessControl, Role};

/// The UI's routes. The pages and server functions call `api` (the query API's
/// router) in process; `ui_dir` holds `pkg/` from `cargo xtask ui`. `access` says
/// whether signing in is needed, so whether pages offer to sign out.
pub fn router(ui_dir: &Path, api: Router, access: Arc<AccessControl>) -> Router {
    let pkg = ui_dir.join("pkg");
    let bundle = Bundle::find(&pkg);
    match &bundle {
        Some(bundle) => {
            info!(dir = %pkg.display(), bundle = %bundle.name, "serving the web UI with its wasm bundle")
        }
        None => warn!(
            dir = %pkg.display(),
            "web UI bundle not found: serving server-rendered pages without interactivity (build it with `cargo xtask ui`)"
        ),
    }
    let hydrate = bundle.is_some();
    let stylesheet = format!(
        "/pkg/{}",
        bundle
            .as_ref()
            .map_or(FALLBACK_STYLESHEET, |b| b.stylesheet.as_str())
    );
    let options = LeptosOptions::builder()
        .output_name(
            bundle
                .as_ref()
                .map_or_else(|| "hopline".to_string(), |b| b.name.clone()),
        )
        .site_root(ui_dir.display().to_string())
        .site_pkg_dir("pkg")
        .build();
    let routes = generate_route_list(hopline_ui::App);
    let context = move || {
        leptos::prelude::provide_context(hopline_ui::ssr::QueryApi {
            router: api.clone(),
            carry: carry_peer,
        })
    };
    let app = {
        let options = options.clone();
        move || {
            content_security_policy();
            let sign_out = access.protects(Role::Query);
            hopline_ui::shell(options.clone(), hydrate, stylesheet.clone(), sign_out)
        }
    };
    // Any other path gets the app's "no such page", as a page with status 404
    // (paths under the query API keep its JSON 404).
    let no_such_page = {
        let render = leptos_axum::render_app_async_with_context(context.clone(), app.clone());
        move |request: axum::extract::Request| {
            let render = render.clone();
            async move {
                let path = request.uri().path();
                if path.starts_with("/api/") || path.starts_with("/internal/") {
                    return super::not_found(request).await.into_response();
                }
                render(request).await
            }
        }
    };
    let pages = Router::new()
        .leptos_routes_with_context(&options, routes, context, app)
        .route("/theme", get(set_theme))
        .route("/{*path}", get(no_such_page))
        .with_state(options)
        .layer(axum::middleware::from_fn(compress_pages));
    let assets = Router::new()
        .route("/pkg/{file}", get(asset))
        .with_state(pkg);
    pages.merge(assets)
}

/// Largest page compressed; a bigger one (none is expected: answers the pages
/// read are capped at 64 MiB) goes out as it is.
const MAX_COMPRESSED_PAGE: usize = 96 << 20;

/// Whether a request's `Accept-Encoding` takes gzip.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Pages go out gzip'd to browsers that take it, like the bundle: a search page
/// of many results is mostly repeated markup (about a tenth of its size gzip'd).
async fn compress_pages(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let gzip = accepts_gzip(request.headers());
    let response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !gzip || !is_html || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(page) = axum::body::to_bytes(body, MAX_COMPRESSED_PAGE).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let compressed = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(page.len() / 4),
            flate2::Compression::new(6),
        );
        encoder.write_all(&page)?;
        encoder.finish()
    })
    .await;
    let Ok(Ok(compressed)) = compressed else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    Response::from_parts(parts, axum::body::Body::from(compressed))
}

/// `/theme?set=light|dark|system&back=/path`: keeps the viewer's choice of
/// theme in a cookie for a year (pages render it without a script), then goes
/// back to `back`, a path on this site (anything else goes to `/search`).
async fn set_theme(
    axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
) -> Response {
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    };
    let (value, max_age) = match param("set") {
        Some("light") => ("light", 31_536_000),
        Some("dark") => ("dark", 31_536_000),
        _ => ("", 0),
    };
    let back = param("back")
        .filter(|back| back.starts_with('/') && !back.starts_with("//") && !back.contains('\\'))
        .and_then(|back| HeaderValue::from_str(back).ok())
        .unwrap_or_else(|| HeaderValue::from_static("/search"));
    let cookie = format!(
        "{}={value}; Path=/; Max-Age={max_age}; SameSite=Lax",
        hopline_ui::ssr::THEME_COOKIE
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, back);
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The viewer's address, from a page request to the API request made for it.
fn carry_peer(from: &axum::http::Extensions, to: &mut axum::http::Extensions) {
    if let Some(peer) = from.get::<crate::net::PeerAddr>() {
        to.insert(*peer);
    }
}

/// A page's `Content-Security-Policy`: scripts only from this server and the
/// page's own inline scripts (Leptos gives them this response's nonce), wasm
/// compiled from them, nothing framed or framing, forms posted here only. Inline
/// `style` attributes stay allowed: the waterfall draws its bars with them.
fn content_security_policy() {
    let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    let scripts = match leptos::nonce::use_nonce() {
        Some(nonce) => format!("'self' 'nonce-{nonce}' 'wasm-unsafe-eval'"),
        None => "'self' 'wasm-unsafe-eval'".to_string(),
    };
    let policy = format!(
        "default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The stylesheet built into the binary, for pages served without a bundle.
const FALLBACK_STYLESHEET: &str = "hopline.css";

/// What `cargo xtask ui` built, from its `manifest.txt`: the content-hashed base
/// name of the wasm bundle (`<name>.js`, `<name>_bg.wasm`) and of the stylesheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub name: String,
    pub stylesheet: String,
}

impl Bundle {
    /// The bundle in `pkg`, if its manifest and files are all there.
    pub fn find(pkg: &Path) -> Option<Bundle> {
        let manifest = std::fs::read_to_string(pkg.join("manifest.txt")).ok()?;
        let value = |key: &str| {
            manifest
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim().to_string())
        };
        let bundle = Bundle {
            name: value("bundle")?,
            stylesheet: value("stylesheet")?,
        };
        let files = [
            format!("{}.js", bundle.name),
            format!("{}_bg.wasm", bundle.name),
            bundle.stylesheet.clone(),
        ];
        files
            .iter()
            .all(|file| pkg.join(file).is_file())
            .then_some(bundle)
    }
}

/// A file of the bundle (or the stylesheet, which is also built into the binary so
/// that pages look right without a bundle). Served gzip'd when `cargo xtask ui` left a
/// `.gz` beside it and the browser accepts it. Content-hashed names (`hopline-<hash>`)
/// are cached for good; anything else is revalidated by its ETag.
async fn asset(
    State(pkg): State<PathBuf>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let content_type = match file.rsplit('.').next() {
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if file.contains('/') || file.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let accepts_gzip = accepts_gzip(&headers);
    let (bytes, gzipped) = match (
        accepts_gzip,
        tokio::fs::read(pkg.join(format!("{file}.gz"))).await,
    ) {
        (true, Ok(bytes)) => (bytes, true),
        _ => match tokio::fs::read(pkg.join(&file)).await {
            Ok(bytes) => (bytes, false),
            Err(_) if file == FALLBACK_STYLESHEET => (
                include_bytes!("../../../ui/style/hopline.css").to_vec(),
                false,
            ),
            Err(_) => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    let etag = format!(
        "\"{:016x}{}\"",
        fnv1a(&bytes),
        if gzipped { "-gz" } else { "" }
    );
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str());
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        bytes.into_response()
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let cache = if file.starts_with("hopline-") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    if gzipped && !not_modified {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// FNV-1a, 64 bits: the content hash of an asset's ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
