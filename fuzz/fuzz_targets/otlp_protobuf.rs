//! The OTLP protobuf decoder (both signals) on any bytes: it answers with records or
//! a decode error, never a panic, and what it returns is within the record limits.
#![no_main]

use bytes::Bytes;
use hopline::config::RecordLimits;
use hopline::decode::protobuf::{decode_logs, decode_traces};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = RecordLimits {
        max_attributes: 8,
        max_attribute_value: 64,
        max_events: 4,
        max_log_body: 64,
    };
    let request = Bytes::copy_from_slice(data);
    if let Ok(spans) = decode_traces(&request, NOW, &limits) {
        for span in &spans.records {
            // The marker attribute may come on top of the kept ones.
            assert!(span.attributes.len() <= limits.max_attributes + 1);
            assert!(span.events.len() <= limits.max_events);
            assert!(span.links.len() <= limits.max_events);
            assert!(span.name.len() <= limits.max_attribute_value);
        }
    }
    if let Ok(logs) = decode_logs(&request, NOW, &limits) {
        for record in &logs.records {
            assert!(record.attributes.len() <= limits.max_attributes + 1);
        }
    }
});
