//! OTLP messages -> the collector's model, for requests parsed from OTLP/JSON into
//! the generated (prost) messages; protobuf requests are decoded straight into the
//! model by [`super::protobuf`]. Both use the checks at the end of this file, so a
//! record that cannot be stored is rejected, one by one and with the same reason,
//! however it came, and reported back as OTLP `partialSuccess`.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as otlp_common;
use opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use opentelemetry_proto::tonic::resource::v1 as otlp_resource;

use super::limits::Limit;
use crate::config::RecordLimits;
use crate::model::{
    AnyValue, KeyValue, LogRecord, Resource, Scope, Span, SpanEvent, SpanId, SpanKind, SpanLink,
    StatusCode, Str, TraceId, UNKNOWN_SERVICE,
};

/// Earliest timestamp accepted: 2000-01-01T00:00:00Z. Anything older is a clock
/// or encoding bug (seconds sent as nanoseconds, say), not telemetry.
pub const MIN_TIMESTAMP_NANOS: u64 = 946_684_800 * 1_000_000_000;
/// How far in the future a timestamp may lie (clock skew between hosts).
pub const MAX_FUTURE_NANOS: u64 = 24 * 3600 * 1_000_000_000;
/// How many rejection reasons a partial-success message lists.
const MAX_REASONS: usize = 3;

/// The outcome of converting one export request.
#[derive(Debug)]
pub struct Converted<T> {
    pub records: Vec<T>,
    pub rejected: u64,
    reasons: Vec<String>,
}

impl<T> Default for Converted<T> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            rejected: 0,
            reasons: Vec::new(),
        }
    }
}

impl<T> Converted<T> {
    pub(super) fn reject(&mut self, reason: String) {
        self.rejected += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason);
        }
    }

    /// The partial-success message: the first reasons, and how many more there were.
    pub fn error_message(&self) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        let mut message = self.reasons.join("; ");
        let more = self.rejected - self.reasons.len() as u64;
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
        message
    }
}

/// Converts the spans of an export request, rejecting those with invalid ids or
/// absurd timestamps.
pub fn convert_traces(
    request: ExportTraceServiceRequest,
    now_nanos: u64,
    limits: &RecordLimits,
) -> Converted<Span> {
    let mut out = Converted::default();
    for resource_spans in request.resource_spans {
        let (resource, service_name) = convert_resource(resource_spans.resource, limits);
        for scope_spans in resource_spans.scope_spans {
            let scope = Arc::new(convert_scope(scope_spans.scope, limits));
            for span in scope_spans.spans {
                match convert_span(span, &resource, &scope, &service_name, now_nanos) {
                    Ok(mut span) => {
                        let _cut = span.limit(limits);
                        out.records.push(span)
                    }
                    Err(reason) => out.reject(reason),
                }
            }
        }
    }
    out
}

/// Converts the log records of an export request.
pub fn convert_logs(
    request: ExportLogsServiceRequest,
    now_nanos: u64,
    limits: &RecordLimits,
) -> Converted<LogRecord> {
    let mut out = Converted::default();
    for resource_logs in request.resource_logs {
        let (resource, service_name) = convert_resource(resource_logs.resource, limits);
        for scope_logs in resource_logs.scope_logs {
            let scope = Arc::new(convert_scope(scope_logs.scope, limits));
            for record in scope_logs.log_records {
                match convert_log(record, &resource, &scope, &service_name, now_nanos) {
                    Ok(mut record) => {
                        let _cut = record.limit(limits);
                        out.records.push(record)
                    }
                    Err(reason) => out.reject(reason),
                }
            }
        }
    }
    out
}

fn convert_resource(
    resource: Option<otlp_resource::Resource>,
    limits: &RecordLimits,
) -> (Arc<Resource>, Str) {
    let resource = resource.unwrap_or_default();
    let attributes = convert_attributes(resource.attributes);
    let service_name = service_name(&attributes);
    let mut resource = Resource {
        attributes,
        dropped_attributes_count: resource.dropped_attributes_count,
    };
    let _cut = resource.limit(limits);
    (Arc::new(resource), service_name)
}

fn convert_scope(scope: Option<otlp_common::InstrumentationScope>, limits: &RecordLimits) -> Scope {
    let scope = scope.unwrap_or_default();
    let mut scope = Scope {
        name: scope.name.into(),
        version: scope.version,
        attributes: convert_attributes(scope.attributes),
    };
    let _cut = scope.limit(limits);
    scope
}

fn convert_span(
    span: opentelemetry_proto::tonic::trace::v1::Span,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
    service_name: &Str,
    now_nanos: u64,
) -> Result<Span, String> {
    let (trace_id, span_id, parent_span_id) = span_ids(
        &span.name,
        &span.trace_id,
        &span.span_id,
        &span.parent_span_id,
    )?;
    check_span_times(
        &span.name,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        now_nanos,
    )?;
    let mut links = Vec::with_capacity(span.links.len());
    for link in span.links {
        let (trace_id, span_id) = link_ids(&span.name, &link.trace_id, &link.span_id)?;
        links.push(SpanLink {
            trace_id,
            span_id,
            trace_state: link.trace_state,
            attributes: convert_attributes(link.attributes),
            dropped_attributes_count: link.dropped_attributes_count,
            flags: link.flags,
        });
    }
    let status = span.status.unwrap_or_default();
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: span.trace_state,
        flags: span.flags,
        name: span.name.into(),
        kind: SpanKind::from_otlp(span.kind),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: convert_attributes(span.attributes),
        dropped_attributes_count: span.dropped_attributes_count,
        events: span
            .events
            .into_iter()
            .map(|event| SpanEvent {
                time_unix_nano: event.time_unix_nano,
                name: event.name.into(),
                attributes: convert_attributes(event.attributes),
                dropped_attributes_count: event.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: span.dropped_events_count,
        links,
        dropped_links_count: span.dropped_links_count,
        status_code: StatusCode::from_otlp(status.code),
        status_message: status.message,
        service_name: service_name.clone(),
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

fn convert_log(
    record: opentelemetry_proto::tonic::logs::v1::LogRecord,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
    service_name: &Str,
    now_nanos: u64,
) -> Result<LogRecord, String> {
    let (time, observed) = log_times(
        record.time_unix_nano,
        record.observed_time_unix_nano,
        now_nanos,
    )?;
    let (trace_id, span_id) = log_ids(&record.trace_id, &record.span_id)?;
    check_severity(record.severity_number)?;
    Ok(LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        severity_number: record.severity_number,
        severity_text: record.severity_text.into(),
        body: record.body.map(convert_value).unwrap_or(AnyValue::Empty),
        attributes: convert_attributes(record.attributes),
        dropped_attributes_count: record.dropped_attributes_count,
        flags: record.flags,
        trace_id,
        span_id,
        event_name: record.event_name,
        service_name: service_name.clone(),
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

// The checks below are shared with the protobuf decoder (`super::protobuf`), so
// that a record is accepted or rejected, with the same reason, however it came.

/// The service a resource names (`service.name`), or `unknown_service`.
pub(super) fn service_name(attributes: &[KeyValue]) -> Str {
    match crate::model::attribute(attributes, "service.name") {
        Some(AnyValue::Str(name)) if !name.is_empty() => name.clone(),
        _ => Str::from_static(UNKNOWN_SERVICE),
    }
}

/// A span's trace, span and parent ids; an empty or all-zero parent is none.
pub(super) fn span_ids(
    name: &str,
    trace_id: &[u8],
    span_id: &[u8],
    parent_span_id: &[u8],
) -> Result<(TraceId, SpanId, Option<SpanId>), String> {
    let trace_id = TraceId::from_bytes(trace_id)
        .map_err(|e| format!("span '{name}': invalid traceId: {e}"))?;
    let span_id =
        SpanId::from_bytes(span_id).map_err(|e| format!("span '{name}': invalid spanId: {e}"))?;
    let parent_span_id = if parent_span_id.is_empty() || parent_span_id == [0; 8] {
        None
    } else {
        Some(
            SpanId::from_bytes(parent_span_id)
                .map_err(|e| format!("span '{name}': invalid parentSpanId: {e}"))?,
        )
    };
    Ok((trace_id, span_id, parent_span_id))
}

pub(super) fn check_span_times(
    name: &str,
    start: u64,
    end: u64,
    now_nanos: u64,
) -> Result<(), String> {
    check_timestamp(start, now_nanos)
        .map_err(|e| format!("span '{name}': startTimeUnixNano {e}"))?;
    if end < start {
        return Err(format!(
            "span '{name}': endTimeUnixNano {end} is before startTimeUnixNano {start}"
        ));
    }
    Ok(())
}

pub(super) fn link_ids(
    name: &str,
    trace_id: &[u8],
    span_id: &[u8],
) -> Result<(TraceId, SpanId), String> {
    match (TraceId::from_bytes(trace_id), SpanId::from_bytes(span_id)) {
        (Ok(trace_id), Ok(span_id)) => Ok((trace_id, span_id)),
        _ => Err(format!(
            "span '{name}': a link has an invalid traceId or spanId"
        )),
    }
}

/// A log record's time and observed time. The specification: use the observed
/// time when the event time is unknown; the receipt time when both are.
pub(super) fn log_times(time: u64, observed: u64, now_nanos: u64) -> Result<(u64, u64), String> {
    let time = match (time, observed) {
        (0, 0) => now_nanos,
        (0, observed) => observed,
        (time, _) => time,
    };
    check_timestamp(time, now_nanos).map_err(|e| format!("log record: timeUnixNano {e}"))?;
    Ok((time, if observed == 0 { now_nanos } else { observed }))
}

/// A log record's trace and span ids, each optional.
pub(super) fn log_ids(
    trace_id: &[u8],
    span_id: &[u8],
) -> Result<(Option<TraceId>, Option<SpanId>), String> {
    let trace_id = if trace_id.is_empty() {
        None
    } else {
        Some(
            TraceId::from_bytes(trace_id)
                .map_err(|e| format!("log record: invalid traceId: {e}"))?,
        )
    };
    let span_id = if span_id.is_empty() {
        None
    } else {
        Some(SpanId::from_bytes(span_id).map_err(|e| format!("log record: invalid spanId: {e}"))?)
    };
    Ok((trace_id, span_id))
}

pub(super) fn check_severity(severity_number: i32) -> Result<(), String> {
    if !(0..=24).contains(&severity_number) {
        return Err(format!(
            "log record: severityNumber {severity_number} is outside 0-24"
        ));
    }
    Ok(())
}

fn check_timestamp(nanos: u64, now_nanos: u64) -> Result<(), String> {
    if nanos == 0 {
        return Err("is missing".into());
    }
    if nanos < MIN_TIMESTAMP_NANOS {
        return Err(format!(
            "{nanos} is before the year 2000 (seconds or milliseconds sent as nanoseconds?)"
        ));
    }
    if nanos > now_nanos.saturating_add(MAX_FUTURE_NANOS) {
        return Err(format!("{nanos} is more than a day in the future"));
    }
    Ok(())
}

fn convert_attributes(attributes: Vec<otlp_common::KeyValue>) -> Vec<KeyValue> {
    attributes
        .into_iter()
        .map(|kv| KeyValue {
            key: kv.key.into(),
            value: kv.value.map(convert_value).unwrap_or(AnyValue::Empty),
        })
        .collect()
}

fn convert_value(value: otlp_common::AnyValue) -> AnyValue {
    match value.value {
        None => AnyValue::Empty,
        Some(OtlpValue::StringValue(s)) => AnyValue::Str(s.into()),
        Some(OtlpValue::BoolValue(b)) => AnyValue::Bool(b),
        Some(OtlpValue::IntValue(i)) => AnyValue::Int(i),
        Some(OtlpValue::DoubleValue(d)) => AnyValue::Double(d),
        Some(OtlpValue::BytesValue(b)) => AnyValue::Bytes(b),
        Some(OtlpValue::ArrayValue(array)) => {
            AnyValue::Array(array.values.into_iter().map(convert_value).collect())
        }
        Some(OtlpValue::KvlistValue(list)) => AnyValue::Map(convert_attributes(list.values)),
        // Deduplicated string references (profiles only) carry no value of their own.
        #[allow(unreachable_patterns)]
        Some(_) => AnyValue::Empty,
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::AnyValue as PValue;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as PSpan};

    use super::*;

    const NOW: u64 = 1_700_000_000 * 1_000_000_000;

    fn kv(key: &str, value: OtlpValue) -> otlp_common::KeyValue {
        otlp_common::KeyValue {
            key: key.into(),
            value: Some(PValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn request(spans: Vec<PSpan>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(otlp_resource::Resource {
                    attributes: vec![kv(
                        "service.name",
                        OtlpValue::StringValue("checkout".into()),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(name: &str) -> PSpan {
        PSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: name.into(),
            kind: 2,
            start_time_unix_nano: NOW - 1000,
            end_time_unix_nano: NOW,
            attributes: vec![kv("http.response.status_code", OtlpValue::IntValue(200))],
            ..Default::default()
        }
    }

    #[test]
    fn converts_a_span_with_its_resource_and_typed_attributes() {
        let converted = convert_traces(request(vec![span("GET /")]), NOW, &RecordLimits::default());
        assert_eq!(converted.rejected, 0);
        let span = &converted.records[0];
        assert_eq!(span.service_name, "checkout");
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.duration_nanos(), 1000);
        assert_eq!(span.attributes[0].value, AnyValue::Int(200));
        assert_eq!(span.parent_span_id, None);
    }

    #[test]
    fn rejects_bad_spans_one_by_one_with_reasons() {
        let mut short_id = span("short");
        short_id.trace_id = vec![1; 15];
        let mut zero_id = span("zero");
        zero_id.span_id = vec![0; 8];
        let mut ancient = span("ancient");
        ancient.start_time_unix_nano = 1_700_000_000; // seconds, not nanoseconds
        let mut backwards = span("backwards");
        backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
        let converted = convert_traces(
            request(vec![short_id, zero_id, span("good"), ancient, backwards]),
            NOW,
            &RecordLimits::default(),
        );
        assert_eq!(converted.records.len(), 1);
        assert_eq!(converted.rejected, 4);
        let message = converted.error_message();
        assert!(
            message.contains("span 'short': invalid traceId: expected 16 bytes, got 15"),
            "{message}"
        );
        assert!(
            message.contains("span 'zero': invalid spanId: an all-zero id is invalid"),
            "{message}"
        );
        assert!(message.contains("before the year 2000"), "{message}");
        assert!(message.ends_with("and 1 more"), "{message}");
    }

    #[test]
    fn logs_without_a_time_take_the_observed_time_then_now() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![opentelemetry_proto::tonic::logs::v1::ResourceLogs {
                scope_logs: vec![opentelemetry_proto::tonic::logs::v1::ScopeLogs {
                    log_records: vec![
                        opentelemetry_proto::tonic::logs::v1::LogRecord {
                            observed_time_unix_nano: NOW - 5,
                            ..Default::default()
                        },
                        opentelemetry_proto::tonic::logs::v1::LogRecord::default(),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let converted = convert_logs(request, NOW, &RecordLimits::default());
        assert_eq!(converted.rejected, 0);
        assert_eq!(converted.records[0].time_unix_nano, NOW - 5);
        assert_eq!(converted.records[1].time_unix_nano, NOW);
        assert_eq!(converted.records[1].service_name, UNKNOWN_SERVICE);
    }
}
