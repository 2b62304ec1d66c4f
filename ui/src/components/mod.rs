//! Widgets shared by the pages: each page builds on these and never on another page.

// As in `pages`: `#[component]` props types are as visible as their components, and
// these private modules export only what `pages` uses.
#[allow(unreachable_pub)]
mod colours;
#[allow(unreachable_pub)]
mod error_box;
#[allow(unreachable_pub)]
mod log_table;
#[allow(unreachable_pub)]
mod severity;
#[allow(unreachable_pub)]
mod time_range;

pub(crate) use colours::{ink, ServiceColours};
pub(crate) use error_box::{ErrorBox, NotFound, NO_DATA_HINT};
pub(crate) use log_table::{highlight_terms, LogRow, LogTable};
pub(crate) use severity::severity_class;
pub(crate) use time_range::{
    custom_range, lookback_ms, LookbackSelect, RangeInputs, LOGS_LOOKBACKS, MAP_LOOKBACKS,
    SEARCH_LOOKBACKS,
};
