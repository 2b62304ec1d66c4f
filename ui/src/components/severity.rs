//! Log severities.

/// The CSS class of an OpenTelemetry severity number (`sev-{class}` on log rows).
pub(crate) fn severity_class(number: i64) -> &'static str {
    match number {
        1..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=24 => "error",
        _ => "unset",
    }
}
