//! The Zipkin v2 decoders (JSON and protobuf) on any bytes: spans within the
//! record limits or a decode error, never a panic.
#![no_main]

use bytes::Bytes;
use hopline::config::RecordLimits;
use hopline::decode::zipkin::{decode_json, decode_protobuf};
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
        decode_protobuf(&Bytes::copy_from_slice(data), NOW, &limits),
    ];
    for spans in decoded.into_iter().flatten() {
        assert_eq!(spans.rejected, 0, "a request is taken whole or refused");
        for span in &spans.records {
            // The marker attribute may come on top of the kept ones.
            assert!(span.attributes.len() <= limits.max_attributes + 1);
            assert!(span.events.len() <= limits.max_events);
            assert!(span.name.len() <= limits.max_attribute_value);
            assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        }
    }
});
