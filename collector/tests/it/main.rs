//! Collector integration tests: real servers on loopback ports, real OTLP clients,
//! real tantivy indexes on disk in temporary directories.

#![allow(unreachable_pub)]

mod analysis;
mod bad_input;
mod cluster;
mod common;
mod crash;
mod deploy;
mod faults;
mod fuzz_seeds;
mod hostile;
mod loki_api;
mod mcp;
mod otel_sdk;
mod otlp_json;
mod retention;
mod search_order;
mod security;
mod senders;
mod tail;
mod ui_browser;
