//! Hopline's web UI, in Leptos: server-rendered by `hopline` (feature `ssr`) and
//! hydrated in the browser by the wasm bundle (`ui/wasm`, feature `hydrate`).
//!
//! Every page keeps its whole state in the URL (Jaeger UI's routes), so a link can be
//! pasted into a chat, and every page reads without JavaScript: forms are GET forms,
//! selections are links.
//!
//! - [`app`]: the HTML shell, the header and the routes (the only module that knows
//!   every page).
//! - `pages`: search, trace, trace comparison, service map, logs; each builds on the
//!   shared widgets and never on another page.
//! - `components`: the shared widgets: error box, service colours, severities, log
//!   tables and rows, the time-range picker.
//! - [`api`]: the view models and the server functions that fill them from the
//!   collector's query API.
//! - [`format`], [`waterfall`], [`tags`]: the logic, pure and unit-tested.

pub mod api;
pub mod app;
mod components;
pub mod format;
mod pages;
pub mod tags;
pub mod waterfall;

#[cfg(feature = "ssr")]
pub mod ssr;

pub use app::App;

#[cfg(feature = "ssr")]
pub use app::shell;
