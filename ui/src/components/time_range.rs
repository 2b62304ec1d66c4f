//! The time-range picker: the lookback presets each page offers, the `<select
//! name="lookback">` that offers them, and what a lookback means in milliseconds.

use leptos::prelude::*;

/// The trace search's presets (value, label), with the custom range of its `from`/`to`.
pub(crate) const SEARCH_LOOKBACKS: &[(&str, &str)] = &[
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("24h", "Last 24 hours"),
    ("2d", "Last 2 days"),
    ("7d", "Last 7 days"),
    ("custom", "Custom range"),
];

/// The log search's presets, labelled by their values.
pub(crate) const LOGS_LOOKBACKS: &[(&str, &str)] = &[
    ("15m", "15m"),
    ("1h", "1h"),
    ("6h", "6h"),
    ("24h", "24h"),
    ("2d", "2d"),
    ("7d", "7d"),
];

/// The service map's windows, labelled by their values.
pub(crate) const MAP_LOOKBACKS: &[(&str, &str)] = &[
    ("15m", "15m"),
    ("1h", "1h"),
    ("6h", "6h"),
    ("24h", "24h"),
    ("7d", "7d"),
];

/// `<select name="lookback">` offering `options` (value, label), with the one whose
/// value is `selected` selected.
#[component]
pub(crate) fn LookbackSelect(
    options: &'static [(&'static str, &'static str)],
    selected: Signal<String>,
) -> impl IntoView {
    view! {
        <select name="lookback">
            {options.iter().map(|&(value, label)| {
                let is_selected = move || selected.get() == value;
                view! { <option value=value selected=is_selected>{label}</option> }
            }).collect_view()}
        </select>
    }
}

/// `15m`, `1h`, `7d` -> milliseconds (default one hour).
pub(crate) fn lookback_ms(text: &str) -> u64 {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().unwrap_or(1);
    n * match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 3_600_000,
    }
}
