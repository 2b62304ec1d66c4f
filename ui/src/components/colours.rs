//! Service colours: distinct, colour-blind safe hues (Okabe and Ito's, and Paul
//! Tol's, without their reds: red means an error here), assigned so that the
//! services shown together never share one while the palette lasts.

use std::collections::HashMap;

/// The palette, in the order services are given their places.
pub(crate) const PALETTE: [&str; 10] = [
    "#0072b2", // blue
    "#e69f00", // orange
    "#009e73", // bluish green
    "#cc79a7", // reddish purple
    "#56b4e9", // sky blue
    "#332288", // indigo
    "#999933", // olive
    "#44aa99", // teal
    "#aa4499", // purple
    "#117733", // green
];

/// A service's own place in the palette: the same on every page, unless another
/// service shown beside it holds it.
fn preferred(service: &str) -> usize {
    let hash = service.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    hash as usize % PALETTE.len()
}

/// The colour of a service shown on its own.
pub(crate) fn service_colour(service: &str) -> &'static str {
    PALETTE[preferred(service)]
}

/// Text that reads on `colour` (`#rrggbb`): near-black on light colours, white
/// on dark ones, whichever contrasts more (WCAG relative luminance).
pub(crate) fn ink(colour: &str) -> &'static str {
    // Contrast with white is 1.05 / (L + .05); with #111827 (L about .012),
    // (L + .05) / .062: they are equal near L = .2.
    if luminance(colour) > 0.2 {
        "#111827"
    } else {
        "#ffffff"
    }
}

/// WCAG relative luminance of `#rrggbb`.
fn luminance(colour: &str) -> f64 {
    let channel = |at: usize| {
        let value = colour
            .get(at..at + 2)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .unwrap_or(0) as f64
            / 255.0;
        if value <= 0.04045 {
            value / 12.92
        } else {
            ((value + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
}

/// The colours of services shown together (one trace, one map): each service
/// gets its own place, or the next free one when another has taken it; only
/// past [`PALETTE`]'s size do two share.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ServiceColours(HashMap<String, &'static str>);

impl ServiceColours {
    /// Colours for `services`, in the order given (the first keeps its place).
    pub(crate) fn assign<'a>(services: impl IntoIterator<Item = &'a str>) -> Self {
        let mut taken = [false; PALETTE.len()];
        let mut colours = HashMap::new();
        for service in services {
            if colours.contains_key(service) {
                continue;
            }
            let first = preferred(service);
            let slot = (0..PALETTE.len())
                .map(|step| (first + step) % PALETTE.len())
                .find(|&slot| !taken[slot])
                .unwrap_or(first);
            taken[slot] = true;
            colours.insert(service.to_string(), PALETTE[slot]);
        }
        ServiceColours(colours)
    }

    pub(crate) fn of(&self, service: &str) -> &'static str {
        self.0
            .get(service)
            .copied()
            .unwrap_or_else(|| service_colour(service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_shown_together_never_share_a_colour_and_none_is_red() {
        let services = [
            "gateway",
            "user-service",
            "order-service",
            "email-service",
            "payments",
            "inventory",
            "search",
            "cart",
            "auth",
            "billing",
        ];
        let colours = ServiceColours::assign(services);
        let mut seen: Vec<&str> = services.iter().map(|s| colours.of(s)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), services.len());
        for colour in PALETTE {
            let red = u8::from_str_radix(&colour[1..3], 16).expect("hex");
            let green = u8::from_str_radix(&colour[3..5], 16).expect("hex");
            let blue = u8::from_str_radix(&colour[5..7], 16).expect("hex");
            // Red dominant with little green and blue reads as "error".
            assert!(
                !(red > 180 && green < 110 && blue < 110),
                "{colour} is too close to red"
            );
        }
        // Labels on each colour contrast at least 4.5:1.
        for colour in PALETTE {
            let (a, b) = (luminance(colour), luminance(ink(colour)));
            let ratio = (a.max(b) + 0.05) / (a.min(b) + 0.05);
            assert!(ratio >= 4.5, "{colour} with {}: {ratio:.2}", ink(colour));
        }
        // The first service keeps its own colour, whatever comes with it.
        assert_eq!(colours.of("gateway"), service_colour("gateway"));
    }
}
