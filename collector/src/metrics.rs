//! The collector's own metrics, rendered in the Prometheus text format at `/metrics`.
//!
//! Plain atomics: no registry, no labels beyond the signal and the route, so the
//! hot path pays one relaxed add per batch.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::model::Signal;

/// Counters of one signal.
#[derive(Debug, Default)]
pub struct SignalMetrics {
    pub received: AtomicU64,
    pub rejected: AtomicU64,
    pub refused_overload: AtomicU64,
    pub indexed: AtomicU64,
    pub queued: AtomicU64,
    /// Attribute values stored but not indexed: their key was past a split's
    /// `--max-indexed-keys`.
    pub values_not_indexed: AtomicU64,
    pub commit_seconds: Histogram,
}

/// A latency histogram with fixed buckets, in seconds.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// What one tenant sent and was refused, for `/metrics` (label `tenant`).
#[derive(Debug, Default)]
pub struct TenantFigures {
    /// Records accepted, per signal (spans, logs).
    pub records: [AtomicU64; 2],
    /// Bytes written to the write-ahead log for it.
    pub bytes: AtomicU64,
    /// Requests refused for being over the tenant's rate limits.
    pub throttled: AtomicU64,
}

/// Reads the bytes each in-memory cache holds, by the cache's name.
type CacheProbe = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// All of the collector's metrics; shared as `Arc<Metrics>`.
#[derive(Default)]
pub struct Metrics {
    pub spans: SignalMetrics,
    pub logs: SignalMetrics,
    pub wal_bytes: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub wal_fsync_seconds: Histogram,
    /// Stretches of the write-ahead log found damaged on start, and their bytes.
    pub wal_damaged_regions: AtomicU64,
    pub wal_damaged_bytes: AtomicU64,
    /// Group commits of the log that failed (their requests were refused).
    pub wal_write_errors: AtomicU64,
    /// Queries refused because too many ran at once.
    pub queries_refused: AtomicU64,
    /// Queries stopped because their client went away, or at their time limit.
    pub queries_client_gone: AtomicU64,
    pub queries_timed_out: AtomicU64,
    /// Requests refused for a missing, wrong or misused credential.
    pub auth_denied: AtomicU64,
    /// Cluster mode: publishing and the split cache.
    pub cluster: ClusterMetrics,
    /// Per tenant, in the order they are configured.
    tenants: Mutex<Vec<(String, std::sync::Arc<TenantFigures>)>>,
    /// Problems `/health` reports.
    pub health: crate::health::Health,
    /// Reads the bytes of request bodies being received now (set by the receivers).
    inflight_bytes: std::sync::OnceLock<Box<dyn Fn() -> u64 + Send + Sync>>,
    /// Reads the bytes each in-memory cache holds, by name (set by the store's owner).
    cache_bytes: std::sync::OnceLock<CacheProbe>,
    /// Query latency per API route, keyed by the route's pattern.
    queries: Mutex<Vec<(String, Histogram)>>,
}

/// What a node of a cluster moves to and from object storage.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    pub published_splits: AtomicU64,
    pub published_records: AtomicU64,
    pub published_bytes: AtomicU64,
    /// Time spent publishing (summarising, uploading, the metastore), in µs.
    pub publish_micros: AtomicU64,
    pub fetched_splits: AtomicU64,
    pub fetched_bytes: AtomicU64,
}

impl ClusterMetrics {
    pub fn note_published(&self, records: u64, bytes: u64, took: std::time::Duration) {
        self.published_splits.fetch_add(1, Ordering::Relaxed);
        self.published_records.fetch_add(records, Ordering::Relaxed);
        self.published_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.publish_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn note_fetched(&self, bytes: u64) {
        self.fetched_splits.fetch_add(1, Ordering::Relaxed);
        self.fetched_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn signal(&self, signal: Signal) -> &SignalMetrics {
        match signal {
            Signal::Spans => &self.spans,
            Signal::Logs => &self.logs,
        }
    }

    /// Where `hopline_request_bytes_in_flight` comes from.
    pub fn set_inflight_bytes(&self, probe: impl Fn() -> u64 + Send + Sync + 'static) {
        let _ = self.inflight_bytes.set(Box::new(probe));
    }

    /// Sets what reads the bytes of the in-memory caches (`hopline_cache_bytes`).
    pub fn set_cache_bytes(
        &self,
        probe: impl Fn() -> Vec<(&'static str, u64)> + Send + Sync + 'static,
    ) {
        let _ = self.cache_bytes.set(Box::new(probe));
    }

    /// The figures of tenant `name`, registered once.
    pub fn register_tenant(&self, name: &str) -> std::sync::Arc<TenantFigures> {
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, figures)) = tenants.iter().find(|(n, _)| n == name) {
            return std::sync::Arc::clone(figures);
        }
        let figures = std::sync::Arc::new(TenantFigures::default());
        tenants.push((name.to_string(), std::sync::Arc::clone(&figures)));
        figures
    }

    /// Counts a query stopped because its client went away.
    pub fn query_client_gone(&self) {
        self.queries_client_gone.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a query stopped at its time limit.
    pub fn query_timed_out(&self) {
        self.queries_timed_out.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_query(&self, route: &str, elapsed: Duration) {
        let Ok(mut queries) = self.queries.lock() else {
            return;
        };
        match queries.iter().find(|(name, _)| name == route) {
            Some((_, histogram)) => histogram.observe(elapsed),
            None => {
                let histogram = Histogram::default();
                histogram.observe(elapsed);
                queries.push((route.to_string(), histogram));
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // name, help, and the counter of a signal's metrics.
        type Counter = (&'static str, &'static str, fn(&SignalMetrics) -> &AtomicU64);
        let counters: [Counter; 5] = [
            (
                "hopline_records_received_total",
                "records received over OTLP",
                |m| &m.received,
            ),
            (
                "hopline_records_rejected_total",
                "records rejected as invalid (partial success)",
                |m| &m.rejected,
            ),
            (
                "hopline_records_refused_overload_total",
                "records refused because the ingest queue was full",
                |m| &m.refused_overload,
            ),
            (
                "hopline_records_indexed_total",
                "records added to the index",
                |m| &m.indexed,
            ),
            (
                "hopline_attribute_values_not_indexed_total",
                "attribute values stored but not searchable: their key came after a split's --max-indexed-keys distinct keys",
                |m| &m.values_not_indexed,
            ),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for signal in Signal::ALL {
                let value = get(self.signal(signal)).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{signal=\"{}\"}} {value}", signal.as_str());
            }
        }
        let _ = writeln!(
            out,
            "# HELP hopline_ingest_queue_depth records acknowledged but not yet indexed\n# TYPE hopline_ingest_queue_depth gauge"
        );
        for signal in Signal::ALL {
            let value = self.signal(signal).queued.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "hopline_ingest_queue_depth{{signal=\"{}\"}} {value}",
                signal.as_str()
            );
        }
        if let Some(probe) = self.inflight_bytes.get() {
            let _ = writeln!(
                out,
                "# HELP hopline_request_bytes_in_flight bytes of OTLP request bodies being received and decoded (bounded by --max-inflight-bytes)\n# TYPE hopline_request_bytes_in_flight gauge\nhopline_request_bytes_in_flight {}",
                probe()
            );
        }
        if let Some(probe) = self.cache_bytes.get() {
            let _ = writeln!(
                out,
                "# HELP hopline_cache_bytes bytes held in memory by the process's caches of segment data (trace-id tables, service-health rollups; each within its budget, see the README)\n# TYPE hopline_cache_bytes gauge"
            );
            for (cache, bytes) in probe() {
                let _ = writeln!(out, "hopline_cache_bytes{{cache=\"{cache}\"}} {bytes}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP hopline_index_commit_seconds time to commit an index\n# TYPE hopline_index_commit_seconds histogram"
        );
        for signal in Signal::ALL {
            self.signal(signal).commit_seconds.render(
                &mut out,
                "hopline_index_commit_seconds",
                &format!("signal=\"{}\"", signal.as_str()),
            );
        }
        let _ = writeln!(
            out,
            "# HELP hopline_wal_bytes_total bytes appended to the write-ahead log\n# TYPE hopline_wal_bytes_total counter\nhopline_wal_bytes_total {}",
            self.wal_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hopline_wal_fsyncs_total group-commit fsyncs of the write-ahead log\n# TYPE hopline_wal_fsyncs_total counter\nhopline_wal_fsyncs_total {}",
            self.wal_fsyncs.load(Ordering::Relaxed)
        );
        for (name, help, value) in [
            (
                "hopline_wal_damaged_regions_total",
                "stretches of the write-ahead log that failed their checksum on start (acknowledged records may be lost there)",
                &self.wal_damaged_regions,
            ),
            (
                "hopline_wal_damaged_bytes_total",
                "bytes of those stretches",
                &self.wal_damaged_bytes,
            ),
            (
                "hopline_queries_refused_total",
                "queries refused because --max-concurrent-queries were running for longer than --query-timeout",
                &self.queries_refused,
            ),
            (
                "hopline_queries_client_gone_total",
                "queries stopped because their client went away",
                &self.queries_client_gone,
            ),
            (
                "hopline_queries_timed_out_total",
                "queries stopped at --query-timeout",
                &self.queries_timed_out,
            ),
            (
                "hopline_wal_write_errors_total",
                "group commits of the write-ahead log that failed (their requests were refused)",
                &self.wal_write_errors,
            ),
            (
                "hopline_published_splits_total",
                "splits uploaded to object storage and published in the metastore (cluster mode)",
                &self.cluster.published_splits,
            ),
            (
                "hopline_published_records_total",
                "records in those splits",
                &self.cluster.published_records,
            ),
            (
                "hopline_published_bytes_total",
                "bytes of those splits",
                &self.cluster.published_bytes,
            ),
            (
                "hopline_publish_microseconds_total",
                "time spent publishing them (summary, upload, metastore)",
                &self.cluster.publish_micros,
            ),
            (
                "hopline_cache_fetched_splits_total",
                "splits fetched from object storage into the split cache",
                &self.cluster.fetched_splits,
            ),
            (
                "hopline_cache_fetched_bytes_total",
                "bytes of those splits",
                &self.cluster.fetched_bytes,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hopline_wal_fsync_seconds time of one group-commit fsync\n# TYPE hopline_wal_fsync_seconds histogram"
        );
        self.wal_fsync_seconds
            .render(&mut out, "hopline_wal_fsync_seconds", "");
        let _ = writeln!(
            out,
            "# HELP hopline_query_seconds query API latency by route\n# TYPE hopline_query_seconds histogram"
        );
        if let Ok(queries) = self.queries.lock() {
            for (route, histogram) in queries.iter() {
                histogram.render(
                    &mut out,
                    "hopline_query_seconds",
                    &format!("route=\"{route}\""),
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hopline_auth_denied_total requests refused for a missing, invalid or misused token\n# TYPE hopline_auth_denied_total counter\nhopline_auth_denied_total {}",
            self.auth_denied.load(Ordering::Relaxed)
        );
        if let Ok(tenants) = self.tenants.lock() {
            let _ = writeln!(
                out,
                "# HELP hopline_tenant_records_total records accepted per tenant\n# TYPE hopline_tenant_records_total counter"
            );
            for (name, figures) in tenants.iter() {
                for signal in Signal::ALL {
                    let _ = writeln!(
                        out,
                        "hopline_tenant_records_total{{tenant=\"{name}\",signal=\"{}\"}} {}",
                        signal.as_str(),
                        figures.records[signal.ordinal()].load(Ordering::Relaxed)
                    );
                }
            }
            type Figure = (&'static str, &'static str, fn(&TenantFigures) -> &AtomicU64);
            let figures: [Figure; 2] = [
                (
                    "hopline_tenant_bytes_total",
                    "bytes written to the write-ahead log per tenant (a protobuf request as received, decompressed)",
                    |f| &f.bytes,
                ),
                (
                    "hopline_tenant_throttled_total",
                    "requests refused (429) for being over the tenant's rate limits",
                    |f| &f.throttled,
                ),
            ];
            for (metric, help, value) in figures {
                let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
                for (name, tenant) in tenants.iter() {
                    let _ = writeln!(
                        out,
                        "{metric}{{tenant=\"{name}\"}} {}",
                        value(tenant).load(Ordering::Relaxed)
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms_in_prometheus_text() {
        let metrics = Metrics::default();
        metrics.spans.received.fetch_add(7, Ordering::Relaxed);
        metrics.observe_query("/api/traces", Duration::from_millis(3));
        let text = metrics.render();
        assert!(
            text.contains("hopline_records_received_total{signal=\"spans\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("hopline_query_seconds_bucket{route=\"/api/traces\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hopline_query_seconds_bucket{route=\"/api/traces\",le=\"0.0025\"} 0"),
            "{text}"
        );
        assert!(text.contains("hopline_wal_fsync_seconds_count 0"), "{text}");
        assert!(!text.contains("hopline_cache_bytes"), "{text}");
        metrics.set_cache_bytes(|| vec![("trace_ids", 4096), ("rollups", 0)]);
        let text = metrics.render();
        assert!(
            text.contains("hopline_cache_bytes{cache=\"trace_ids\"} 4096\nhopline_cache_bytes{cache=\"rollups\"} 0\n"),
            "{text}"
        );
    }
}
