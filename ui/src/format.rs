//! Durations and times as people read them.

/// A duration in microseconds, in the unit that reads best: `850µs`, `12.3ms`, `1.25s`, `2m 5s`.
pub fn duration(micros: u64) -> String {
    match micros {
        0..=999 => format!("{micros}µs"),
        1_000..=999_999 => trim(format!("{:.2}", micros as f64 / 1e3)) + "ms",
        1_000_000..=59_999_999 => trim(format!("{:.2}", micros as f64 / 1e6)) + "s",
        _ => {
            let seconds = micros / 1_000_000;
            format!("{}m {}s", seconds / 60, seconds % 60)
        }
    }
}

fn trim(mut number: String) -> String {
    if number.contains('.') {
        while number.ends_with('0') {
            number.pop();
        }
        if number.ends_with('.') {
            number.pop();
        }
    }
    number
}

/// A timestamp as `<time>`: UTC when rendered on the server, then the browser's local
/// time with its UTC offset once the page is hydrated.
#[leptos::component]
pub fn Time(micros: u64) -> impl leptos::IntoView {
    use leptos::prelude::*;
    let text = RwSignal::new(timestamp(micros));
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        text.set(local_timestamp(micros));
    });
    let iso = timestamp(micros).replace(' ', "T").replace("TUTC", "Z");
    view! { <time datetime=iso>{move || text.get()}</time> }
}

/// The browser's local time: `2024-05-01 14:00:00.123 UTC+02:00`.
#[cfg(feature = "hydrate")]
fn local_timestamp(micros: u64) -> String {
    let date = js_sys::Date::new_0();
    date.set_time((micros / 1000) as f64);
    let offset = -(date.get_timezone_offset() as i64);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} UTC{}{:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes(),
        date.get_seconds(),
        date.get_milliseconds(),
        if offset < 0 { '-' } else { '+' },
        offset.abs() / 60,
        offset.abs() % 60
    )
}

/// `1 span`, `3 spans`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A timestamp in microseconds since the epoch as `2024-05-01 12:00:00.123 UTC`.
/// (The browser re-renders it in local time with its zone once hydrated.)
pub fn timestamp(micros: u64) -> String {
    let seconds = (micros / 1_000_000) as i64;
    let millis = (micros / 1000) % 1000;
    let (days, secs_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        secs_of_day / 3600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_the_unit_that_reads_best() {
        assert_eq!(duration(850), "850µs");
        assert_eq!(duration(12_300), "12.3ms");
        assert_eq!(duration(1_000), "1ms");
        assert_eq!(duration(1_250_000), "1.25s");
        assert_eq!(duration(125_000_000), "2m 5s");
    }

    #[test]
    fn timestamps_are_utc_calendar_times() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(
            timestamp(1_700_000_000_123_456),
            "2023-11-14 22:13:20.123 UTC"
        );
        assert_eq!(
            timestamp(951_782_400_000_000),
            "2000-02-29 00:00:00.000 UTC"
        );
    }
}
