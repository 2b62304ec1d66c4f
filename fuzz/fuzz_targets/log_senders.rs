//! The Elasticsearch bulk decoder and the syslog parser on any bytes: records
//! within the record limits, an outcome per action or an error, never a panic.
#![no_main]

use hopline::config::RecordLimits;
use hopline::decode::{elasticsearch, syslog};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_900_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = RecordLimits {
        max_attributes: 8,
        max_attribute_value: 64,
        max_events: 4,
        max_log_body: 64,
    };
    if let Ok((records, items)) = elasticsearch::decode_bulk(data, "fuzz", NOW, NOW, &limits) {
        let failed = items.iter().filter(|item| item.error.is_some()).count();
        assert_eq!(records.records.len() + failed, items.len());
        for record in &records.records {
            assert!(record.attributes.len() <= limits.max_attributes + 1);
        }
    }
    let record = syslog::Decoder::default().record(&String::from_utf8_lossy(data), NOW, &limits);
    assert!(record.attributes.len() <= limits.max_attributes + 1);
    assert!(record.body_text().len() <= limits.max_log_body);
});
