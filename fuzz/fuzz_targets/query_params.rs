//! The query API's parameters (Jaeger v1 trace search, api_v3 trace search and
//! summaries, logs search, service health and Jaeger's SPM metrics) from any
//! query string: filters or a 400's message, never a panic.
#![no_main]

use hopline::query::params::{log_search, trace_search, v3_trace_search};
use hopline::query::red::{jaeger_metrics, red_request};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `a=b&c=d`, undecoded: the keys and values as a client may send them.
    let pairs: Vec<(String, String)> = text
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => (pair.to_string(), String::new()),
        })
        .collect();
    let _ = trace_search(&pairs, NOW);
    let _ = v3_trace_search(&pairs, NOW, true);
    let _ = v3_trace_search(&pairs, NOW, false);
    let _ = log_search(&pairs, NOW);
    let _ = red_request(&pairs, NOW);
    for metric in ["calls", "errors", "latencies"] {
        let _ = jaeger_metrics(&pairs, metric, NOW);
    }
});
