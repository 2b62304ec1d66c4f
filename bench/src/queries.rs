//! The queries measured under ingest: trace by id, trace search, log search.

use std::time::{Duration, Instant};

use crate::stats::Samples;
use crate::workload::{self, mix, Workload, LOG_WORDS, SERVICES};
use serde_json::Value;

use crate::collector::Collector;

/// GETs `url`, returns the time to the whole JSON answer.
pub(crate) async fn timed_get(
    collector: &Collector,
    url: &str,
) -> anyhow::Result<(Duration, u16, Value)> {
    let started = Instant::now();
    let response = collector.http.get(url).await?;
    let (status, body) = (response.status, response.body);
    let elapsed = started.elapsed();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((elapsed, status, json))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET /api/traces/{id}` of `count` complete traces among the first `sent` spans;
/// returns the latencies and how many answers lacked spans.
pub async fn trace_by_id(
    collector: &Collector,
    workload: Workload,
    sent: u64,
    count: usize,
) -> anyhow::Result<(Samples, u64)> {
    let complete = workload::complete_traces(sent);
    anyhow::ensure!(complete > 0, "no complete trace among {sent} spans");
    let mut samples = Samples::default();
    let mut incomplete = 0;
    for i in 0..count as u64 {
        let trace = mix(i ^ workload.nonce) % complete;
        let id = hex(&workload::trace_id(workload.nonce, trace));
        let (elapsed, status, json) =
            timed_get(collector, &format!("{}/api/traces/{id}", collector.api)).await?;
        let spans = json["data"][0]["spans"].as_array().map_or(0, Vec::len) as u64;
        if status != 200 || spans != workload::SPANS_PER_TRACE {
            incomplete += 1;
        }
        samples.push(elapsed);
    }
    Ok((samples, incomplete))
}

/// Trace search by service, a tag and a minimum duration, 20 traces.
pub async fn trace_search(collector: &Collector, count: usize) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    for i in 0..count as u64 {
        let service = workload::service_name(i % SERVICES);
        let url = match i % 3 {
            0 => format!(
                "{}/api/traces?service={service}&tags=%7B%22http.response.status_code%22%3A%22500%22%7D&limit=20",
                collector.api
            ),
            1 => format!(
                "{}/api/traces?service={service}&minDuration=100ms&limit=20",
                collector.api
            ),
            _ => format!(
                "{}/api/traces?service={service}&tags=%7B%22http.request.method%22%3A%22POST%22%7D&minDuration=50ms&limit=20",
                collector.api
            ),
        };
        let (elapsed, status, json) = timed_get(collector, &url).await?;
        anyhow::ensure!(
            status == 200 && json["data"].is_array(),
            "trace search failed ({status}): {json}"
        );
        samples.push(elapsed);
    }
    Ok(samples)
}

/// Service health over the whole range (`/api/service-metrics`, two days back):
/// every service, then one service per operation, in turn.
pub async fn service_health(collector: &Collector, count: usize) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    for i in 0..count as u64 {
        let url = if i % 2 == 0 {
            format!("{}/api/service-metrics?lookback=2d", collector.api)
        } else {
            format!(
                "{}/api/service-metrics?lookback=2d&service={}&groupByOperation=true",
                collector.api,
                workload::service_name(i % SERVICES)
            )
        };
        let (elapsed, status, json) = timed_get(collector, &url).await?;
        anyhow::ensure!(
            status == 200 && json["series"].as_array().is_some_and(|s| !s.is_empty()),
            "service health failed or found nothing ({status}): {json}"
        );
        samples.push(elapsed);
    }
    Ok(samples)
}

/// Log searches among the first `sent` records: a rare term (one record), a common
/// word (a tenth of them), and service + severity + word. Returns the three
/// latencies and how many rare-term searches missed their record.
pub async fn log_search(
    collector: &Collector,
    sent: u64,
    count: usize,
) -> anyhow::Result<(Samples, Samples, Samples, u64)> {
    let (mut rare, mut common, mut filtered) = Default::default();
    let mut missed = 0;
    for i in 0..count as u64 {
        let n = mix(i) % sent.max(1);
        let url = format!(
            "{}/api/logs?query={}&limit=100",
            collector.api,
            Workload::log_request_id(n)
        );
        let (elapsed, status, json) = timed_get(collector, &url).await?;
        if status != 200 || json["total"].as_u64() != Some(1) {
            missed += 1;
        }
        Samples::push(&mut rare, elapsed);

        let word = LOG_WORDS[(i % LOG_WORDS.len() as u64) as usize];
        let url = format!("{}/api/logs?query={word}&limit=100", collector.api);
        let (elapsed, status, json) = timed_get(collector, &url).await?;
        anyhow::ensure!(status == 200, "log search failed ({status}): {json}");
        Samples::push(&mut common, elapsed);

        let url = format!(
            "{}/api/logs?service={}&minSeverity=error&query={word}&limit=100",
            collector.api,
            workload::service_name(i % SERVICES)
        );
        let (elapsed, status, json) = timed_get(collector, &url).await?;
        anyhow::ensure!(status == 200, "log search failed ({status}): {json}");
        Samples::push(&mut filtered, elapsed);
    }
    Ok((rare, common, filtered, missed))
}
