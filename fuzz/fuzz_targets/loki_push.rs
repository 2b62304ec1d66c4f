//! The Loki push decoders (JSON, snappy protobuf) and the label-set parser on any
//! bytes: records within the record limits or an error, never a panic, and never
//! more decompressed than the limit allows.
#![no_main]

use hopline::config::RecordLimits;
use hopline::decode::loki::{decode_json, decode_protobuf, parse_labels};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_900_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = RecordLimits {
        max_attributes: 8,
        max_attribute_value: 64,
        max_events: 4,
        max_log_body: 64,
    };
    let decoded = [
        decode_json(data, NOW, &limits),
        decode_protobuf(data, 1 << 20, NOW, &limits),
    ];
    for records in decoded.into_iter().flatten() {
        for record in &records.records {
            // The marker attribute may come on top of the kept ones.
            assert!(record.attributes.len() <= limits.max_attributes + 1);
            assert!(record.body_text().len() <= limits.max_log_body);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(labels) = parse_labels(text) {
            assert!(labels.len() <= 128);
        }
    }
});
