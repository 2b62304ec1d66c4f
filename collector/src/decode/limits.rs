//! What one record may cost ([`RecordLimits`]), applied to every record as it is
//! received, by both decoders and on replay: attributes beyond the cap are dropped
//! (and added to the record's `dropped_attributes_count`, as an SDK's own limits
//! do), as are events and links beyond theirs; long strings (attribute values and
//! keys, log bodies, names, status messages) are cut at a character boundary, and
//! the record gets a `hopline.truncated` attribute naming what was cut. No SDK's
//! defaults reach these limits; a client that does gets its data stored, smaller.

use crate::config::RecordLimits;
use crate::model::{AnyValue, KeyValue, LogRecord, Resource, Scope, Span, Str};

/// The attribute that says what was cut: an array of names (`body`,
/// `attributes.KEY`, `events.attributes.KEY`, `name`, ...).
pub const TRUNCATED: &str = "hopline.truncated";

/// A record that can be brought within the limits.
pub trait Limit {
    /// Cuts what is over the limits; true when something was.
    fn limit(&mut self, limits: &RecordLimits) -> bool;
}

/// Notes what was cut, then says so on the record.
#[derive(Default)]
struct Cuts(Vec<AnyValue>);

impl Cuts {
    fn note(&mut self, what: impl Into<String>) {
        if self.0.len() < 16 {
            self.0.push(AnyValue::Str(Str::from(what.into())));
        }
    }

    /// Adds the marker when something was cut; true then.
    fn mark(self, attributes: &mut Vec<KeyValue>) -> bool {
        if self.0.is_empty() {
            return false;
        }
        attributes.push(KeyValue::new(TRUNCATED, AnyValue::Array(self.0)));
        true
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary; true when it did.
fn cut_str(text: &mut Str, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    *text = text.slice_ref(&text[..end]);
    true
}

fn cut_string(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// Cuts a value's strings and bytes to `max` bytes each, and its arrays and maps to
/// `max_items` elements; true when anything was cut.
fn cut_value(value: &mut AnyValue, max: usize, max_items: usize) -> bool {
    match value {
        AnyValue::Str(text) => cut_str(text, max),
        AnyValue::Bytes(bytes) if bytes.len() > max => {
            bytes.truncate(max);
            true
        }
        AnyValue::Array(values) => {
            let mut cut = values.len() > max_items;
            values.truncate(max_items);
            for value in values {
                cut |= cut_value(value, max, max_items);
            }
            cut
        }
        AnyValue::Map(entries) => {
            let mut cut = entries.len() > max_items;
            entries.truncate(max_items);
            for entry in entries {
                cut |= cut_str(&mut entry.key, max);
                cut |= cut_value(&mut entry.value, max, max_items);
            }
            cut
        }
        _ => false,
    }
}

/// Keeps at most the cap of attributes, counting the rest as dropped, and cuts
/// long keys and values.
fn limit_attributes(
    attributes: &mut Vec<KeyValue>,
    dropped: &mut u32,
    limits: &RecordLimits,
    prefix: &str,
    cuts: &mut Cuts,
) {
    if attributes.len() > limits.max_attributes {
        let extra = attributes.len() - limits.max_attributes;
        *dropped = dropped.saturating_add(u32::try_from(extra).unwrap_or(u32::MAX));
        attributes.truncate(limits.max_attributes);
    }
    for kv in attributes {
        let key_cut = cut_str(&mut kv.key, limits.max_attribute_value);
        if cut_value(
            &mut kv.value,
            limits.max_attribute_value,
            limits.max_attributes,
        ) || key_cut
        {
            cuts.note(format!("{prefix}{}", kv.key));
        }
    }
}

impl Limit for Span {
    fn limit(&mut self, limits: &RecordLimits) -> bool {
        let mut cuts = Cuts::default();
        let max = limits.max_attribute_value;
        limit_attributes(
            &mut self.attributes,
            &mut self.dropped_attributes_count,
            limits,
            "attributes.",
            &mut cuts,
        );
        if cut_str(&mut self.name, max) {
            cuts.note("name");
        }
        if cut_string(&mut self.status_message, max) {
            cuts.note("status.message");
        }
        if cut_string(&mut self.trace_state, max) {
            cuts.note("trace_state");
        }
        if self.events.len() > limits.max_events {
            let extra = self.events.len() - limits.max_events;
            self.dropped_events_count = self
                .dropped_events_count
                .saturating_add(u32::try_from(extra).unwrap_or(u32::MAX));
            self.events.truncate(limits.max_events);
        }
        for event in &mut self.events {
            if cut_str(&mut event.name, max) {
                cuts.note("events.name");
            }
            limit_attributes(
                &mut event.attributes,
                &mut event.dropped_attributes_count,
                limits,
                "events.attributes.",
                &mut cuts,
            );
        }
        if self.links.len() > limits.max_events {
            let extra = self.links.len() - limits.max_events;
            self.dropped_links_count = self
                .dropped_links_count
                .saturating_add(u32::try_from(extra).unwrap_or(u32::MAX));
            self.links.truncate(limits.max_events);
        }
        for link in &mut self.links {
            if cut_string(&mut link.trace_state, max) {
                cuts.note("links.trace_state");
            }
            limit_attributes(
                &mut link.attributes,
                &mut link.dropped_attributes_count,
                limits,
                "links.attributes.",
                &mut cuts,
            );
        }
        cuts.mark(&mut self.attributes)
    }
}

impl Limit for LogRecord {
    fn limit(&mut self, limits: &RecordLimits) -> bool {
        let mut cuts = Cuts::default();
        limit_attributes(
            &mut self.attributes,
            &mut self.dropped_attributes_count,
            limits,
            "attributes.",
            &mut cuts,
        );
        if cut_value(&mut self.body, limits.max_log_body, limits.max_attributes) {
            cuts.note("body");
        }
        if cut_str(&mut self.severity_text, limits.max_attribute_value) {
            cuts.note("severity_text");
        }
        if cut_string(&mut self.event_name, limits.max_attribute_value) {
            cuts.note("event_name");
        }
        cuts.mark(&mut self.attributes)
    }
}

impl Limit for Resource {
    fn limit(&mut self, limits: &RecordLimits) -> bool {
        let mut cuts = Cuts::default();
        limit_attributes(
            &mut self.attributes,
            &mut self.dropped_attributes_count,
            limits,
            "",
            &mut cuts,
        );
        cuts.mark(&mut self.attributes)
    }
}

impl Limit for Scope {
    fn limit(&mut self, limits: &RecordLimits) -> bool {
        let mut cuts = Cuts::default();
        if cut_str(&mut self.name, limits.max_attribute_value) {
            cuts.note("name");
        }
        cut_string(&mut self.version, limits.max_attribute_value);
        // A scope has no count of dropped attributes to add to.
        let mut dropped = 0;
        limit_attributes(&mut self.attributes, &mut dropped, limits, "", &mut cuts);
        cuts.mark(&mut self.attributes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{SpanEvent, SpanId, SpanKind, StatusCode, TraceId};

    fn span() -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: Str::from("op"),
            kind: SpanKind::Server,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            service_name: Str::from("svc"),
            resource: Arc::default(),
            scope: Arc::default(),
        }
    }

    fn log_record() -> LogRecord {
        LogRecord {
            time_unix_nano: 1,
            observed_time_unix_nano: 1,
            severity_number: 9,
            severity_text: Str::new(),
            body: AnyValue::Empty,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            service_name: Str::from("svc"),
            resource: Arc::default(),
            scope: Arc::default(),
        }
    }

    fn limits() -> RecordLimits {
        RecordLimits {
            max_attributes: 4,
            max_attribute_value: 8,
            max_events: 2,
            max_log_body: 10,
        }
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue::new(key, AnyValue::Str(Str::from(value)))
    }

    fn truncated(attributes: &[KeyValue]) -> Vec<String> {
        attributes
            .iter()
            .find(|kv| &*kv.key == TRUNCATED)
            .map(|kv| match &kv.value {
                AnyValue::Array(values) => values
                    .iter()
                    .map(|v| match v {
                        AnyValue::Str(s) => s.to_string(),
                        other => panic!("{other:?}"),
                    })
                    .collect(),
                other => panic!("{other:?}"),
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_span_over_every_limit_is_cut_and_says_what() {
        let mut span = span();
        span.attributes = (0..10).map(|i| kv(&format!("k{i}"), "short")).collect();
        span.attributes[1].value = AnyValue::Str(Str::from("é".repeat(10)));
        span.dropped_attributes_count = 3;
        span.events = (0..5)
            .map(|i| SpanEvent {
                time_unix_nano: i,
                name: Str::from("event"),
                attributes: vec![kv("a", "b")],
                dropped_attributes_count: 0,
            })
            .collect();
        span.limit(&limits());
        // Four kept (the last one the marker), six dropped and counted with the three
        // the SDK dropped.
        assert_eq!(span.attributes.len(), 5);
        assert_eq!(span.dropped_attributes_count, 3 + 6);
        assert_eq!(
            &*match &span.attributes[1].value {
                AnyValue::Str(s) => s.clone(),
                other => panic!("{other:?}"),
            },
            "éééé",
            "cut at a character boundary, 8 bytes"
        );
        assert_eq!(truncated(&span.attributes), vec!["attributes.k1"]);
        assert_eq!(span.events.len(), 2);
        assert_eq!(span.dropped_events_count, 3);
    }

    #[test]
    fn a_log_body_and_nested_values_are_cut() {
        let mut record = log_record();
        record.body = AnyValue::Str(Str::from("a".repeat(100)));
        record.attributes = vec![KeyValue::new(
            "list",
            AnyValue::Array((0..10).map(|_| AnyValue::Str(Str::from("x"))).collect()),
        )];
        record.limit(&limits());
        assert!(matches!(&record.body, AnyValue::Str(s) if s.len() == 10));
        match &record.attributes[0].value {
            AnyValue::Array(values) => assert_eq!(values.len(), 4),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            truncated(&record.attributes),
            vec!["attributes.list", "body"]
        );

        // Within the limits: untouched, no marker.
        let mut small = log_record();
        small.body = AnyValue::Str(Str::from("short"));
        let before = small.clone();
        small.limit(&limits());
        assert_eq!(small, before);
    }
}
