//! Hopline's web UI, in Leptos: server-rendered by `hopline` (feature `ssr`) and
//! hydrated in the browser by the wasm bundle (`ui/wasm`, feature `hydrate`).
//!
//! Every page keeps its whole state in the URL (Jaeger UI's routes), so a link can be
//! pasted into a chat, and every page reads without JavaScript: forms are GET forms,
//! selections are links.
//!
//! - [`api`]: the view models and the server functions that fill them from the
//!   collector's query API.
//! - [`pages`]: search, trace (and comparison), service map, logs.
//! - [`format`], [`waterfall`], [`tags`]: the logic, pure and unit-tested.

pub mod api;
pub mod format;
pub mod pages;
pub mod tags;
pub mod waterfall;

#[cfg(feature = "ssr")]
pub mod ssr;

pub use pages::App;

#[cfg(feature = "ssr")]
pub use pages::shell;
