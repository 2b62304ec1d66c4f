//! The web UI on the API port: Leptos pages rendered here (`hopline-ui`), their
//! server functions, and the wasm bundle under `/pkg` when it has been built.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tracing::{info, warn};

/// The UI's routes. `api_base` is where the server functions reach the query API
/// (this same server); `ui_dir` holds `pkg/` from `cargo xtask ui`.
pub fn router(ui_dir: &Path, api_base: String) -> Router {
    let pkg = ui_dir.join("pkg");
    let hydrate = pkg.join("hopline_bg.wasm").is_file() && pkg.join("hopline.js").is_file();
    if hydrate {
        info!(dir = %pkg.display(), "serving the web UI with its wasm bundle");
    } else {
        warn!(
            dir = %pkg.display(),
            "web UI bundle not found: serving server-rendered pages without interactivity (build it with `cargo xtask ui`)"
        );
    }
    let options = LeptosOptions::builder()
        .output_name("hopline")
        .site_root(ui_dir.display().to_string())
        .site_pkg_dir("pkg")
        .build();
    let routes = generate_route_list(hopline_ui::App);
    let pages = Router::new()
        .leptos_routes_with_context(
            &options,
            routes,
            move || leptos::prelude::provide_context(hopline_ui::ssr::ApiBase(api_base.clone())),
            {
                let options = options.clone();
                move || hopline_ui::shell(options.clone(), hydrate)
            },
        )
        .with_state(options);
    let assets = Router::new()
        .route("/pkg/{file}", get(asset))
        .with_state(pkg);
    pages.merge(assets)
}

/// A file of the bundle (or the stylesheet, which is also built into the binary so
/// that pages look right without a bundle).
async fn asset(State(pkg): State<PathBuf>, UrlPath(file): UrlPath<String>) -> Response {
    let content_type = match file.rsplit('.').next() {
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if file.contains('/') || file.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let bytes = match tokio::fs::read(pkg.join(&file)).await {
        Ok(bytes) => bytes,
        Err(_) if file == "hopline.css" => include_bytes!("../../../ui/style/hopline.css").to_vec(),
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response()
}
