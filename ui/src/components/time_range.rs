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

/// The log search's presets, labelled by their values, with the custom range of
/// its `from`/`to`.
pub(crate) const LOGS_LOOKBACKS: &[(&str, &str)] = &[
    ("15m", "15m"),
    ("1h", "1h"),
    ("6h", "6h"),
    ("24h", "24h"),
    ("2d", "2d"),
    ("7d", "7d"),
    ("custom", "custom range"),
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
/// value is `selected` selected. A `selected` that is no preset (`30m` from a
/// link) is offered too, so that submitting the form again keeps it.
#[component]
pub(crate) fn LookbackSelect(
    options: &'static [(&'static str, &'static str)],
    selected: Signal<String>,
) -> impl IntoView {
    let other = move || {
        let current = selected.get();
        (!current.is_empty() && !options.iter().any(|(value, _)| *value == current)).then(|| {
            let label = format!("Last {current}");
            view! { <option value=current selected=true>{label}</option> }
        })
    };
    view! {
        <select name="lookback">
            {other}
            {options.iter().map(|&(value, label)| {
                let is_selected = move || selected.get() == value;
                view! { <option value=value selected=is_selected>{label}</option> }
            }).collect_view()}
        </select>
    }
}

/// The `from`/`to` inputs of an absolute range in the browser's local time
/// (UTC when rendered on the server), and `tz`, its offset from UTC in minutes,
/// for [`custom_range`] to read them back. `start` and `end` are µs since the epoch.
#[component]
pub(crate) fn RangeInputs(start: Signal<String>, end: Signal<String>) -> impl IntoView {
    let tz = RwSignal::new(0i64);
    Effect::new(move |_| tz.set(crate::format::browser_offset_minutes()));
    let local = move |micros: String| {
        micros
            .parse::<u64>()
            .map(|us| crate::format::datetime_local(us, tz.get()))
            .unwrap_or_default()
    };
    let zone = move || crate::format::zone(tz.get());
    view! {
        <label class="range">{move || format!("From ({})", zone())}
            <input type="datetime-local" name="from" id="from" value=move || local(start.get())/>
        </label>
        <label class="range">{move || format!("To ({})", zone())}
            <input type="datetime-local" name="to" id="to" value=move || local(end.get())/>
        </label>
        <input type="hidden" name="tz" value=move || tz.get().to_string()/>
    }
}

/// `30m`, `1h`, `7d` (a whole number and m, h, d or w) -> milliseconds, or what
/// is wrong with it.
pub(crate) fn lookback_ms(text: &str) -> Result<u64, String> {
    let wrong = || {
        format!("'{text}' is not a time window: give a number and m, h, d or w, such as 30m or 7d")
    };
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| wrong())?;
    let unit = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(wrong()),
    };
    n.checked_mul(unit).filter(|ms| *ms > 0).ok_or_else(wrong)
}

/// An absolute range from a page's URL: `start`/`end` (µs since the epoch, as
/// Jaeger's UI writes them), or the form's `from`/`to` local times with `tz`, the
/// browser's offset from UTC in minutes. Empty strings where absent.
pub(crate) fn custom_range(q: &leptos_router::params::ParamsMap) -> (String, String) {
    let tz = q
        .get("tz")
        .and_then(|tz| tz.parse::<i64>().ok())
        .unwrap_or(0);
    let pick = |micros: &str, local: &str| {
        q.get(local)
            .filter(|text| !text.is_empty())
            .and_then(|text| crate::format::parse_datetime_local(&text, tz))
            .map(|us| us.to_string())
            .or_else(|| q.get(micros))
            .unwrap_or_default()
    };
    (pick("start", "from"), pick("end", "to"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookbacks_parse_or_say_what_is_wrong() {
        assert_eq!(lookback_ms("30m"), Ok(1_800_000));
        assert_eq!(lookback_ms("7d"), Ok(604_800_000));
        assert_eq!(lookback_ms("2w"), Ok(1_209_600_000));
        for bad in ["bogus", "", "0h", "1y", "-1h", "99999999999999999999d"] {
            let error = lookback_ms(bad).expect_err(bad);
            assert!(error.contains("is not a time window"), "{error}");
        }
    }
}
