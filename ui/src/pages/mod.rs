//! The pages. Each reads its state from the URL and renders on the server (and, once
//! the wasm bundle has loaded, re-renders in the browser as the URL changes). Pages
//! build on `crate::components` and never on one another; the router is
//! [`crate::app`].

// `#[component]` expands into `pub` props types, which these private modules do not export.
#[allow(unreachable_pub)]
pub(crate) mod analysis;
#[allow(unreachable_pub)]
pub(crate) mod compare;
#[allow(unreachable_pub)]
pub(crate) mod context;
#[allow(unreachable_pub)]
pub(crate) mod dependencies;
#[allow(unreachable_pub)]
pub(crate) mod logs;
#[allow(unreachable_pub)]
pub(crate) mod search;
#[allow(unreachable_pub)]
pub(crate) mod services;
#[allow(unreachable_pub)]
pub(crate) mod trace;
