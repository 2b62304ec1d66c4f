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

/// A latency in milliseconds (as the API gives them) as [`duration`]; `–` for
/// none.
pub fn latency_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "–".into(), |ms| duration((ms * 1000.0).round() as u64))
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

/// A timestamp to the second: `2024-05-01 12:00:00 UTC`.
pub fn clock(micros: u64) -> String {
    let text = timestamp(micros);
    match text.split_once('.') {
        Some((seconds, _)) => format!("{seconds} UTC"),
        None => text,
    }
}

/// A time in microseconds since the epoch in RFC 3339, UTC, to the second
/// (`2024-05-01T12:00:00Z`), milliseconds added when there are any.
pub fn rfc3339(micros: u64) -> String {
    let seconds = (micros / 1_000_000) as i64;
    let millis = (micros / 1000) % 1000;
    let (days, secs_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}")
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        secs_of_day / 3600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60
    )
}

/// What an `<input type="datetime-local">` holds (`2024-05-01T14:00`) for a time in
/// microseconds since the epoch, in a zone `offset_minutes` east of UTC.
pub fn datetime_local(micros: u64, offset_minutes: i64) -> String {
    let seconds = (micros / 1_000_000) as i64 + offset_minutes * 60;
    let (days, secs_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}",
        secs_of_day / 3600,
        (secs_of_day / 60) % 60
    )
}

/// The inverse of [`datetime_local`] (seconds allowed); `None` for anything else.
pub fn parse_datetime_local(text: &str, offset_minutes: i64) -> Option<u64> {
    let (date, time) = text.trim().split_once('T')?;
    let mut date_parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let mut time_parts = time.splitn(3, ':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let second: f64 = time_parts.next().map_or(Some(0.0), |s| s.parse().ok())?;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0.0..60.0).contains(&second);
    if !valid || year < 1970 {
        return None;
    }
    let seconds =
        days_from_civil(year, month as u32, day as u32) * 86_400 + hour * 3600 + minute * 60
            - offset_minutes * 60;
    let micros = seconds as f64 * 1e6 + second * 1e6;
    (micros >= 0.0).then_some(micros as u64)
}

/// `UTC`, `UTC+02:00`, `UTC-05:30`.
pub fn zone(offset_minutes: i64) -> String {
    if offset_minutes == 0 {
        return "UTC".into();
    }
    format!(
        "UTC{}{:02}:{:02}",
        if offset_minutes < 0 { '-' } else { '+' },
        offset_minutes.abs() / 60,
        offset_minutes.abs() % 60
    )
}

/// The browser's offset from UTC in minutes (east positive); 0 on the server.
pub fn browser_offset_minutes() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        -(js_sys::Date::new_0().get_timezone_offset() as i64)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0
    }
}

/// (year, month, day) -> days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn datetime_local_round_trips_in_any_zone() {
        let t = 1_700_000_000_000_000; // 2023-11-14 22:13:20 UTC
        assert_eq!(datetime_local(t, 0), "2023-11-14T22:13");
        assert_eq!(datetime_local(t, 120), "2023-11-15T00:13");
        assert_eq!(datetime_local(t, -330), "2023-11-14T16:43");
        for offset in [0, 120, -330, 840, -720] {
            let text = datetime_local(t, offset);
            assert_eq!(
                parse_datetime_local(&text, offset),
                Some(t - 20_000_000),
                "{text}"
            );
        }
        assert_eq!(
            parse_datetime_local("2000-02-29T00:00:30", 0),
            Some(951_782_430_000_000)
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-13-01T00:00",
            "2023-11-14T24:00",
            "noon",
            "1969-12-31T23:59",
        ] {
            assert_eq!(parse_datetime_local(bad, 0), None, "{bad}");
        }
        assert_eq!(zone(0), "UTC");
        assert_eq!(zone(120), "UTC+02:00");
        assert_eq!(zone(-330), "UTC-05:30");
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
