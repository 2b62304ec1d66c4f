//! Hopline's benchmark harness: the standard workload ([`workload`]), what `/proc`
//! says about the collector ([`process`]), and the raw-tantivy baseline ([`raw`]).
//! The `hopline-bench` binary puts them together; `benches/hot_paths.rs` holds the
//! criterion micro-benchmarks of the collector's hot paths.

pub mod collector;
pub mod load;
pub mod process;
pub mod queries;
pub mod raw;
pub mod stats;
pub mod workload;
