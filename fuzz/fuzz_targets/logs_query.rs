//! The logs query language and Loki's LogQL on any text: a query or an error with
//! a column inside the text, never a panic or a stack overflow.
#![no_main]

use hopline::query::logql::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = parse(text) {
        assert!(error.column >= 1);
        assert!(error.column <= text.chars().count() + 1);
    }
    if let Err(error) = hopline::query::loki::parse(text) {
        assert!(error.column >= 1);
        assert!(error.column <= text.chars().count() + 1);
    }
});
