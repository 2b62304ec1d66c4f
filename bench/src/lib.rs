//! Hopline's benchmark harness. The `hopline-bench` binary puts the modules
//! together; `benches/hot_paths.rs` holds the criterion micro-benchmarks of the
//! collector's hot paths.
//!
//! - [`workload`]: the standard spans and log records, and the signal a load sends;
//! - [`collector`]: the `hopline` process under test, started, watched, stopped;
//! - [`process`]: what `/proc` says about it (CPU time, memory);
//! - [`load`]: one load phase (connections sending a signal, the accounting);
//! - [`probe`]: the visibility probe beside a load;
//! - [`queries`]: the queries measured under ingest;
//! - [`raw`]: the raw-tantivy baseline (the same documents, no collector);
//! - [`stats`]: latency samples and how figures are printed;
//! - [`soak`]: the long run (`--soak`); [`hostile`]: what attacks cost (`--hostile`);
//! - [`week`]: a week of hourly splits, seeded, then measured (`--week`).
//! - [`cluster`]: cluster mode with 1, 2, ... N ingest nodes and a search node
//!   (`--cluster`).

pub mod cluster;
pub mod collector;
pub mod hostile;
pub mod http;
pub mod load;
pub mod probe;
pub mod process;
pub mod queries;
pub mod raw;
pub mod senders;
pub mod soak;
pub mod stats;
pub mod week;
pub mod workload;
