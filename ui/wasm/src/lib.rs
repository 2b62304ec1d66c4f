//! The wasm entry point: hydrates the page the collector rendered.

// The pages' view types nest deeply (a form of a dozen fields in a page in the
// app): hydrating them needs more than the default query depth.
#![recursion_limit = "256"]

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(hopline_ui::App);
}
