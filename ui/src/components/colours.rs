//! Service colours.

/// The colour of a service, the same on every page.
pub(crate) fn service_colour(service: &str) -> String {
    let hash = service.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!("hsl({}, 55%, 52%)", hash % 360)
}
