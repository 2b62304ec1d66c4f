//! Protobuf export requests decoded straight into the model.
//!
//! prost builds the generated OTLP messages first: a `String` or a `Vec` for every
//! key, value and id, about 25 allocations for a span with ten attributes, which
//! [`convert`](super::convert) then takes apart. Decoding was half of what receiving
//! a span cost. Here the request is read once: strings are slices of the request
//! buffer ([`Str`], checked as UTF-8), ids go into their fixed arrays, and every
//! span and log record goes through the same checks as OTLP/JSON's conversion, so
//! both accept and reject the same records for the same reasons. The tests hold
//! this decoder equal to prost's plus `convert` on requests of every shape, and
//! check that every truncation of a request is refused or decoded as prost does.
//!
//! The wire format: <https://protobuf.dev/programming-guides/encoding/>. Fields
//! may come in any order and repeat (a repeated message field appends, a scalar's
//! last value wins, a message field merges); unknown fields are skipped, groups
//! included. A known field with another wire type, a length past the end of its
//! message, a varint of more than ten bytes, a string that is not UTF-8 or values
//! nested deeper than [`MAX_DEPTH`] refuse the whole request, naming the field.

use std::ops::Range;
use std::sync::Arc;

use prost::bytes::Bytes;

use super::convert::{
    check_severity, check_span_times, link_ids, log_ids, log_times, service_name, span_ids,
    Converted,
};
use super::limits::Limit;
use crate::config::RecordLimits;
use crate::model::{
    AnyValue, Detach, DetachedOrigins, KeyValue, LogRecord, Resource, Scope, Span, SpanEvent,
    SpanKind, SpanLink, StatusCode, Str,
};

/// How deeply attribute values (arrays and maps) and unknown groups may nest.
pub const MAX_DEPTH: usize = 32;

/// Why a request could not be decoded: the field, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

type Result<T> = std::result::Result<T, DecodeError>;

/// The spans of an `ExportTraceServiceRequest`, checked as [`super::convert`] checks
/// them; `now_nanos` is the receipt time.
pub fn decode_traces(
    request: &Bytes,
    now_nanos: u64,
    limits: &RecordLimits,
) -> Result<Converted<Span>> {
    const NAMES: Names = Names {
        request: "ExportTraceServiceRequest",
        resources: "ExportTraceServiceRequest.resource_spans",
        resource: "ResourceSpans",
        resource_field: "ResourceSpans.resource",
        scopes: "ResourceSpans.scope_spans",
        scope: "ScopeSpans",
        scope_field: "ScopeSpans.scope",
        records: "ScopeSpans.spans",
    };
    decode(request, now_nanos, limits, &NAMES, span)
}

/// The log records of an `ExportLogsServiceRequest`, as [`decode_traces`].
pub fn decode_logs(
    request: &Bytes,
    now_nanos: u64,
    limits: &RecordLimits,
) -> Result<Converted<LogRecord>> {
    const NAMES: Names = Names {
        request: "ExportLogsServiceRequest",
        resources: "ExportLogsServiceRequest.resource_logs",
        resource: "ResourceLogs",
        resource_field: "ResourceLogs.resource",
        scopes: "ResourceLogs.scope_logs",
        scope: "ScopeLogs",
        scope_field: "ScopeLogs.scope",
        records: "ScopeLogs.log_records",
    };
    decode(request, now_nanos, limits, &NAMES, log_record)
}

/// The messages of one signal's request (request > resource > scope > record) and
/// the fields that hold them, as errors name them.
struct Names {
    request: &'static str,
    resources: &'static str,
    resource: &'static str,
    resource_field: &'static str,
    scopes: &'static str,
    scope: &'static str,
    scope_field: &'static str,
    records: &'static str,
}

/// Decodes one record, or says why it is rejected.
type RecordFn<T> = fn(
    &Bytes,
    Range<usize>,
    &Arc<Resource>,
    &Arc<Scope>,
    &Str,
    u64,
    &RecordLimits,
) -> Result<std::result::Result<T, String>>;

fn decode<T: Detach + Limit>(
    request: &Bytes,
    now_nanos: u64,
    limits: &RecordLimits,
    names: &Names,
    record: RecordFn<T>,
) -> Result<Converted<T>> {
    let mut out = Converted::default();
    // The bytes of the records accepted: the part of the request they keep alive.
    let mut kept = 0;
    let mut fields = Fields::new(request, 0..request.len(), names.request);
    while let Some((number, value)) = fields.next()? {
        if number != 1 {
            continue;
        }
        let range = value.len(names.resources)?;
        // The resource may come after the records it applies to: read it first.
        let (resource, service) = origin_resource(request, range.clone(), names, limits)?;
        let mut fields = Fields::new(request, range, names.resource);
        while let Some((number, value)) = fields.next()? {
            if number != 2 {
                continue;
            }
            let range = value.len(names.scopes)?;
            let scope = origin_scope(request, range.clone(), names, limits)?;
            let mut fields = Fields::new(request, range, names.scope);
            while let Some((number, value)) = fields.next()? {
                if number != 2 {
                    continue;
                }
                let range = value.len(names.records)?;
                let len = range.len();
                match record(
                    request, range, &resource, &scope, &service, now_nanos, limits,
                )? {
                    Ok(mut record) => {
                        // A record that was cut must not pin the request's
                        // buffer with what is left of it.
                        if record.limit(limits) {
                            record.detach(&mut DetachedOrigins::default());
                        }
                        out.records.push(record);
                        kept += len;
                    }
                    Err(reason) => out.reject(reason),
                }
            }
        }
    }
    // Records wait in the queue until indexed, holding the buffer their strings
    // share. When they are a small part of it (the rest rejected records or
    // fields Hopline does not read), they get their own copies instead: the queue
    // bounds records, and this bounds what each record holds.
    if kept < request.len() / 2 {
        let mut origins = DetachedOrigins::default();
        for record in &mut out.records {
            record.detach(&mut origins);
        }
    }
    Ok(out)
}

/// One field's value as the wire types it.
enum Value {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// Length-delimited: the range of the payload in the request.
    Len(Range<usize>),
}

impl Value {
    fn wire_type(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "fixed64",
            Value::Fixed32(_) => "fixed32",
            Value::Len(_) => "length-delimited",
        }
    }

    fn mismatch(&self, field: &str, expected: &str) -> DecodeError {
        DecodeError(format!(
            "{field}: wire type {}, expected {expected}",
            self.wire_type()
        ))
    }

    fn varint(self, field: &str) -> Result<u64> {
        match self {
            Value::Varint(v) => Ok(v),
            other => Err(other.mismatch(field, "varint")),
        }
    }

    fn fixed64(self, field: &str) -> Result<u64> {
        match self {
            Value::Fixed64(v) => Ok(v),
            other => Err(other.mismatch(field, "fixed64")),
        }
    }

    fn fixed32(self, field: &str) -> Result<u32> {
        match self {
            Value::Fixed32(v) => Ok(v),
            other => Err(other.mismatch(field, "fixed32")),
        }
    }

    fn len(self, field: &str) -> Result<Range<usize>> {
        match self {
            Value::Len(range) => Ok(range),
            other => Err(other.mismatch(field, "length-delimited")),
        }
    }

    /// An `int32` or enum: the low 32 bits, as protobuf's own decoders take them.
    fn int32(self, field: &str) -> Result<i32> {
        Ok(self.varint(field)? as i32)
    }

    fn uint32(self, field: &str) -> Result<u32> {
        Ok(self.varint(field)? as u32)
    }
}

/// The fields of one message: `range` of `buf`.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    message: &'static str,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8], range: Range<usize>, message: &'static str) -> Self {
        Self {
            buf,
            pos: range.start,
            end: range.end,
            message,
        }
    }

    fn error(&self, what: impl std::fmt::Display) -> DecodeError {
        DecodeError(format!("{}: {what}", self.message))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf[..self.end].get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            // The tenth byte may only carry the 64th bit.
            if i == 9 && byte > 1 {
                return Err(self.error("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 64 bits"))
    }

    fn take(&mut self, n: usize) -> Result<Range<usize>> {
        if self.end - self.pos < n {
            return Err(self.error(format_args!(
                "a field of {n} bytes runs past the end of the message ({} left)",
                self.end - self.pos
            )));
        }
        let range = self.pos..self.pos + n;
        self.pos += n;
        Ok(range)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let range = self.take(N)?;
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(&self.buf[range]);
        Ok(bytes)
    }

    /// A field's number and wire type.
    fn key(&mut self) -> Result<(u32, u8)> {
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(self.error(format_args!("invalid field number {number}")));
        }
        Ok((number as u32, (key & 7) as u8))
    }

    /// The next field, skipping groups (a proto2 encoding no OTLP field uses).
    fn next(&mut self) -> Result<Option<(u32, Value)>> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            let (number, wire_type) = self.key()?;
            let value = match wire_type {
                0 => Value::Varint(self.varint()?),
                1 => Value::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
                2 => {
                    let len = self.varint()?;
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    Value::Len(self.take(len)?)
                }
                3 => {
                    self.skip_group(number)?;
                    continue;
                }
                4 => return Err(self.error(format_args!("end of group {number} without a start"))),
                5 => Value::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
                other => return Err(self.error(format_args!("invalid wire type {other}"))),
            };
            return Ok(Some((number, value)));
        }
    }

    fn skip_group(&mut self, number: u32) -> Result<()> {
        let mut open = vec![number];
        while let Some(&innermost) = open.last() {
            if self.pos >= self.end {
                return Err(self.error(format_args!("group {innermost} is not closed")));
            }
            let (number, wire_type) = self.key()?;
            match wire_type {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8)?;
                }
                2 => {
                    let len = self.varint()?;
                    self.take(usize::try_from(len).unwrap_or(usize::MAX))?;
                }
                3 if open.len() < MAX_DEPTH => open.push(number),
                3 => return Err(self.error(format!("groups nested deeper than {MAX_DEPTH}"))),
                4 if number == innermost => {
                    open.pop();
                }
                4 => {
                    return Err(self.error(format_args!(
                        "end of group {number} inside group {innermost}"
                    )))
                }
                5 => {
                    self.take(4)?;
                }
                other => return Err(self.error(format_args!("invalid wire type {other}"))),
            }
        }
        Ok(())
    }
}

/// A string field: a slice of the request, if it is UTF-8.
fn string(buf: &Bytes, range: Range<usize>, field: &str) -> Result<Str> {
    Str::try_from(buf.slice(range))
        .map_err(|e| DecodeError(format!("{field}: invalid UTF-8 ({e})")))
}

/// A string field the model keeps as `String` (rare and usually empty).
fn owned_string(buf: &Bytes, range: Range<usize>, field: &str) -> Result<String> {
    std::str::from_utf8(&buf[range])
        .map(str::to_owned)
        .map_err(|e| DecodeError(format!("{field}: invalid UTF-8 ({e})")))
}

/// The resource (field 1) of a `ResourceSpans` or `ResourceLogs`, and its service.
fn origin_resource(
    buf: &Bytes,
    range: Range<usize>,
    names: &Names,
    limits: &RecordLimits,
) -> Result<(Arc<Resource>, Str)> {
    let mut resource = Resource::default();
    let mut resource_dropped = 0u32;
    let mut fields = Fields::new(buf, range, names.resource);
    while let Some((number, value)) = fields.next()? {
        if number != 1 {
            continue;
        }
        let range = value.len(names.resource_field)?;
        let mut fields = Fields::new(buf, range, "Resource");
        while let Some((number, value)) = fields.next()? {
            match number {
                1 => push_attribute(
                    &mut resource.attributes,
                    &mut resource_dropped,
                    buf,
                    value.len("Resource.attributes")?,
                    limits,
                )?,
                2 => {
                    resource.dropped_attributes_count =
                        value.uint32("Resource.dropped_attributes_count")?
                }
                _ => {}
            }
        }
    }
    let service = service_name(&resource.attributes);
    resource.dropped_attributes_count = resource
        .dropped_attributes_count
        .saturating_add(resource_dropped);
    if resource.limit(limits) {
        resource = resource.detached();
    }
    Ok((Arc::new(resource), service))
}

/// The scope (field 1) of a `ScopeSpans` or `ScopeLogs`.
fn origin_scope(
    buf: &Bytes,
    range: Range<usize>,
    names: &Names,
    limits: &RecordLimits,
) -> Result<Arc<Scope>> {
    let mut scope = Scope::default();
    let mut dropped = 0u32;
    let mut fields = Fields::new(buf, range, names.scope);
    while let Some((number, value)) = fields.next()? {
        if number != 1 {
            continue;
        }
        let range = value.len(names.scope_field)?;
        let mut fields = Fields::new(buf, range, "InstrumentationScope");
        while let Some((number, value)) = fields.next()? {
            match number {
                1 => {
                    let field = "InstrumentationScope.name";
                    scope.name = string(buf, value.len(field)?, field)?;
                }
                2 => {
                    let field = "InstrumentationScope.version";
                    scope.version = owned_string(buf, value.len(field)?, field)?;
                }
                3 => push_attribute(
                    &mut scope.attributes,
                    &mut dropped,
                    buf,
                    value.len("InstrumentationScope.attributes")?,
                    limits,
                )?,
                _ => {}
            }
        }
    }
    if scope.limit(limits) {
        scope = scope.detached();
    }
    Ok(Arc::new(scope))
}

/// A span, or why it is rejected.
fn span(
    buf: &Bytes,
    range: Range<usize>,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
    service: &Str,
    now_nanos: u64,
    limits: &RecordLimits,
) -> Result<std::result::Result<Span, String>> {
    let (mut trace_id, mut span_id, mut parent_span_id) = (0..0, 0..0, 0..0);
    let mut name = Str::new();
    let mut trace_state = String::new();
    let (mut kind, mut flags) = (0, 0);
    let (mut start, mut end) = (0, 0);
    let mut attributes = Vec::new();
    let mut dropped_attributes_count = 0;
    let mut events = Vec::new();
    let mut dropped_events_count = 0;
    // Links keep their raw ids until the span's own are checked.
    let mut links: Vec<(Range<usize>, Range<usize>, SpanLink)> = Vec::new();
    let mut dropped_links_count = 0;
    let (mut status_code, mut status_message) = (0, String::new());
    // Beyond the limits: counted, not decoded.
    let (mut over_attributes, mut over_events, mut over_links) = (0u32, 0u32, 0u32);
    let mut fields = Fields::new(buf, range, "Span");
    while let Some((number, value)) = fields.next()? {
        match number {
            1 => trace_id = value.len("Span.trace_id")?,
            2 => span_id = value.len("Span.span_id")?,
            3 => {
                trace_state = owned_string(buf, value.len("Span.trace_state")?, "Span.trace_state")?
            }
            4 => parent_span_id = value.len("Span.parent_span_id")?,
            5 => name = string(buf, value.len("Span.name")?, "Span.name")?,
            6 => kind = value.int32("Span.kind")?,
            7 => start = value.fixed64("Span.start_time_unix_nano")?,
            8 => end = value.fixed64("Span.end_time_unix_nano")?,
            9 => push_attribute(
                &mut attributes,
                &mut over_attributes,
                buf,
                value.len("Span.attributes")?,
                limits,
            )?,
            10 => dropped_attributes_count = value.uint32("Span.dropped_attributes_count")?,
            11 => {
                let range = value.len("Span.events")?;
                if events.len() < limits.max_events {
                    events.push(event(buf, range, limits)?);
                } else {
                    over_events += 1;
                }
            }
            12 => dropped_events_count = value.uint32("Span.dropped_events_count")?,
            13 => {
                let range = value.len("Span.links")?;
                if links.len() < limits.max_events {
                    links.push(link(buf, range, limits)?);
                } else {
                    over_links += 1;
                }
            }
            14 => dropped_links_count = value.uint32("Span.dropped_links_count")?,
            15 => {
                let range = value.len("Span.status")?;
                let mut fields = Fields::new(buf, range, "Status");
                while let Some((number, value)) = fields.next()? {
                    match number {
                        2 => {
                            status_message =
                                owned_string(buf, value.len("Status.message")?, "Status.message")?
                        }
                        3 => status_code = value.int32("Status.code")?,
                        _ => {}
                    }
                }
            }
            16 => flags = value.fixed32("Span.flags")?,
            _ => {}
        }
    }
    let checked = span_ids(&name, &buf[trace_id], &buf[span_id], &buf[parent_span_id])
        .and_then(|ids| check_span_times(&name, start, end, now_nanos).map(|()| ids))
        .and_then(|ids| {
            let links = links
                .into_iter()
                .map(|(trace_id, span_id, mut link)| {
                    (link.trace_id, link.span_id) = link_ids(&name, &buf[trace_id], &buf[span_id])?;
                    Ok(link)
                })
                .collect::<std::result::Result<Vec<_>, String>>()?;
            Ok((ids, links))
        });
    let ((trace_id, span_id, parent_span_id), links) = match checked {
        Ok(checked) => checked,
        Err(reason) => return Ok(Err(reason)),
    };
    Ok(Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state,
        flags,
        name,
        kind: SpanKind::from_otlp(kind),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        dropped_attributes_count: dropped_attributes_count.saturating_add(over_attributes),
        events,
        dropped_events_count: dropped_events_count.saturating_add(over_events),
        links,
        dropped_links_count: dropped_links_count.saturating_add(over_links),
        status_code: StatusCode::from_otlp(status_code),
        status_message,
        service_name: service.clone(),
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    }))
}

fn event(buf: &Bytes, range: Range<usize>, limits: &RecordLimits) -> Result<SpanEvent> {
    let mut event = SpanEvent {
        time_unix_nano: 0,
        name: Str::new(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    };
    let mut over = 0u32;
    let mut fields = Fields::new(buf, range, "Span.Event");
    while let Some((number, value)) = fields.next()? {
        match number {
            1 => event.time_unix_nano = value.fixed64("Span.Event.time_unix_nano")?,
            2 => event.name = string(buf, value.len("Span.Event.name")?, "Span.Event.name")?,
            3 => push_attribute(
                &mut event.attributes,
                &mut over,
                buf,
                value.len("Span.Event.attributes")?,
                limits,
            )?,
            4 => {
                event.dropped_attributes_count =
                    value.uint32("Span.Event.dropped_attributes_count")?
            }
            _ => {}
        }
    }
    event.dropped_attributes_count = event.dropped_attributes_count.saturating_add(over);
    Ok(event)
}

/// A link, with the ranges of its trace and span ids (checked by the caller).
fn link(
    buf: &Bytes,
    range: Range<usize>,
    limits: &RecordLimits,
) -> Result<(Range<usize>, Range<usize>, SpanLink)> {
    let (mut trace_id, mut span_id) = (0..0, 0..0);
    let mut link = SpanLink {
        trace_id: crate::model::TraceId([0; 16]),
        span_id: crate::model::SpanId([0; 8]),
        trace_state: String::new(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        flags: 0,
    };
    let mut over = 0u32;
    let mut fields = Fields::new(buf, range, "Span.Link");
    while let Some((number, value)) = fields.next()? {
        match number {
            1 => trace_id = value.len("Span.Link.trace_id")?,
            2 => span_id = value.len("Span.Link.span_id")?,
            3 => {
                let field = "Span.Link.trace_state";
                link.trace_state = owned_string(buf, value.len(field)?, field)?;
            }
            4 => push_attribute(
                &mut link.attributes,
                &mut over,
                buf,
                value.len("Span.Link.attributes")?,
                limits,
            )?,
            5 => {
                link.dropped_attributes_count =
                    value.uint32("Span.Link.dropped_attributes_count")?
            }
            6 => link.flags = value.fixed32("Span.Link.flags")?,
            _ => {}
        }
    }
    link.dropped_attributes_count = link.dropped_attributes_count.saturating_add(over);
    Ok((trace_id, span_id, link))
}

/// A log record, or why it is rejected.
fn log_record(
    buf: &Bytes,
    range: Range<usize>,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
    service: &Str,
    now_nanos: u64,
    limits: &RecordLimits,
) -> Result<std::result::Result<LogRecord, String>> {
    let (mut time, mut observed) = (0, 0);
    let mut severity_number = 0;
    let mut severity_text = Str::new();
    let mut body = AnyValue::Empty;
    let mut attributes = Vec::new();
    let mut dropped_attributes_count = 0;
    let mut flags = 0;
    let (mut trace_id, mut span_id) = (0..0, 0..0);
    let mut event_name = String::new();
    let mut over = 0u32;
    let mut fields = Fields::new(buf, range, "LogRecord");
    while let Some((number, value)) = fields.next()? {
        match number {
            1 => time = value.fixed64("LogRecord.time_unix_nano")?,
            2 => severity_number = value.int32("LogRecord.severity_number")?,
            3 => {
                let field = "LogRecord.severity_text";
                severity_text = string(buf, value.len(field)?, field)?;
            }
            5 => merge_any_value(&mut body, buf, value.len("LogRecord.body")?, 0, limits)?,
            6 => push_attribute(
                &mut attributes,
                &mut over,
                buf,
                value.len("LogRecord.attributes")?,
                limits,
            )?,
            7 => dropped_attributes_count = value.uint32("LogRecord.dropped_attributes_count")?,
            8 => flags = value.fixed32("LogRecord.flags")?,
            9 => trace_id = value.len("LogRecord.trace_id")?,
            10 => span_id = value.len("LogRecord.span_id")?,
            11 => observed = value.fixed64("LogRecord.observed_time_unix_nano")?,
            12 => {
                let field = "LogRecord.event_name";
                event_name = owned_string(buf, value.len(field)?, field)?;
            }
            _ => {}
        }
    }
    let checked = log_times(time, observed, now_nanos).and_then(|times| {
        let ids = log_ids(&buf[trace_id], &buf[span_id])?;
        check_severity(severity_number)?;
        Ok((times, ids))
    });
    let ((time, observed), (trace_id, span_id)) = match checked {
        Ok(checked) => checked,
        Err(reason) => return Ok(Err(reason)),
    };
    Ok(Ok(LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        severity_number,
        severity_text,
        body,
        attributes,
        dropped_attributes_count: dropped_attributes_count.saturating_add(over),
        flags,
        trace_id,
        span_id,
        event_name,
        service_name: service.clone(),
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    }))
}

/// Decodes an attribute into `attributes` while they are under the limit; counts
/// it in `over` otherwise (it is still checked to be well-formed).
fn push_attribute(
    attributes: &mut Vec<KeyValue>,
    over: &mut u32,
    buf: &Bytes,
    range: Range<usize>,
    limits: &RecordLimits,
) -> Result<()> {
    if attributes.len() < limits.max_attributes {
        attributes.push(key_value(buf, range, 0, limits)?);
    } else {
        *over = over.saturating_add(1);
    }
    Ok(())
}

fn key_value(
    buf: &Bytes,
    range: Range<usize>,
    depth: usize,
    limits: &RecordLimits,
) -> Result<KeyValue> {
    let mut key = Str::new();
    let mut value = AnyValue::Empty;
    let mut fields = Fields::new(buf, range, "KeyValue");
    while let Some((number, field)) = fields.next()? {
        match number {
            1 => key = string(buf, field.len("KeyValue.key")?, "KeyValue.key")?,
            2 => merge_any_value(&mut value, buf, field.len("KeyValue.value")?, depth, limits)?,
            _ => {}
        }
    }
    Ok(KeyValue { key, value })
}

/// Reads an `AnyValue` message into `value`. A message field that repeats merges:
/// a second array appends to the first, as protobuf's decoders do. Arrays and maps
/// keep one element past the attribute limit, so that cutting them
/// ([`super::limits`]) is noticed, and skip the rest.
fn merge_any_value(
    value: &mut AnyValue,
    buf: &Bytes,
    range: Range<usize>,
    depth: usize,
    limits: &RecordLimits,
) -> Result<()> {
    if depth >= MAX_DEPTH {
        return Err(DecodeError(format!(
            "AnyValue: values nested deeper than {MAX_DEPTH}"
        )));
    }
    let mut fields = Fields::new(buf, range, "AnyValue");
    while let Some((number, field)) = fields.next()? {
        match number {
            1 => {
                *value = AnyValue::Str(string(
                    buf,
                    field.len("AnyValue.string_value")?,
                    "AnyValue.string_value",
                )?)
            }
            2 => *value = AnyValue::Bool(field.varint("AnyValue.bool_value")? != 0),
            3 => *value = AnyValue::Int(field.varint("AnyValue.int_value")? as i64),
            4 => *value = AnyValue::Double(f64::from_bits(field.fixed64("AnyValue.double_value")?)),
            5 => {
                let range = field.len("AnyValue.array_value")?;
                if !matches!(value, AnyValue::Array(_)) {
                    *value = AnyValue::Array(Vec::new());
                }
                if let AnyValue::Array(values) = value {
                    let mut fields = Fields::new(buf, range, "ArrayValue");
                    while let Some((number, field)) = fields.next()? {
                        if number == 1 {
                            let range = field.len("ArrayValue.values")?;
                            if values.len() <= limits.max_attributes {
                                let mut element = AnyValue::Empty;
                                merge_any_value(&mut element, buf, range, depth + 1, limits)?;
                                values.push(element);
                            }
                        }
                    }
                }
            }
            6 => {
                let range = field.len("AnyValue.kvlist_value")?;
                if !matches!(value, AnyValue::Map(_)) {
                    *value = AnyValue::Map(Vec::new());
                }
                if let AnyValue::Map(entries) = value {
                    let mut fields = Fields::new(buf, range, "KeyValueList");
                    while let Some((number, field)) = fields.next()? {
                        if number == 1 {
                            let range = field.len("KeyValueList.values")?;
                            if entries.len() <= limits.max_attributes {
                                entries.push(key_value(buf, range, depth + 1, limits)?);
                            }
                        }
                    }
                }
            }
            7 => *value = AnyValue::Bytes(buf[field.len("AnyValue.bytes_value")?].to_vec()),
            // A string-table reference (profiles only) carries no value of its own.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as PV;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue as PValue, ArrayValue, InstrumentationScope, KeyValue as PKeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as PLogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as PSpan, Status};
    use prost::Message;

    use super::*;
    use crate::decode::convert::{convert_logs, convert_traces};

    const NOW: u64 = 1_700_000_000 * 1_000_000_000;

    /// A small deterministic generator: the requests differ in shape, not by run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }

        /// An id: usually valid, sometimes empty, short or all zeros.
        fn id(&mut self, len: usize) -> Vec<u8> {
            match self.below(12) {
                0 => Vec::new(),
                1 => self.bytes(len - 1),
                2 => vec![0; len],
                _ => self.bytes(len),
            }
        }

        fn text(&mut self) -> String {
            const WORDS: [&str; 6] = ["GET /users", "", "héllo wörld", "order.id", "🚀", "x"];
            WORDS[self.below(WORDS.len() as u64) as usize].repeat(1 + self.below(3) as usize)
        }

        fn value(&mut self, depth: usize) -> Option<PValue> {
            let value = match self.below(if depth > 2 { 6 } else { 9 }) {
                0 => return None,
                1 => None,
                2 => Some(PV::StringValue(self.text())),
                3 => Some(PV::BoolValue(self.below(2) == 1)),
                4 => Some(PV::IntValue(self.next() as i64)),
                5 => Some(PV::DoubleValue(self.below(1000) as f64 / 7.0)),
                6 => {
                    let len = self.below(5) as usize;
                    Some(PV::BytesValue(self.bytes(len)))
                }
                7 => Some(PV::ArrayValue(ArrayValue {
                    values: (0..self.below(4))
                        .map(|_| self.value(depth + 1).unwrap_or_default())
                        .collect(),
                })),
                _ => Some(PV::KvlistValue(KeyValueList {
                    values: self.attributes(depth + 1),
                })),
            };
            Some(PValue { value })
        }

        fn attributes(&mut self, depth: usize) -> Vec<PKeyValue> {
            (0..self.below(5))
                .map(|_| PKeyValue {
                    key: self.text(),
                    value: self.value(depth),
                    ..Default::default()
                })
                .collect()
        }

        fn time(&mut self) -> u64 {
            match self.below(10) {
                0 => 0,
                1 => 1_000,
                _ => NOW - self.below(1_000_000_000_000),
            }
        }

        fn resource(&mut self) -> Option<PResource> {
            let mut attributes = self.attributes(0);
            if self.below(3) > 0 {
                attributes.push(PKeyValue {
                    key: "service.name".into(),
                    value: Some(PValue {
                        value: Some(PV::StringValue(self.text())),
                    }),
                    ..Default::default()
                });
            }
            (self.below(5) > 0).then(|| PResource {
                attributes,
                dropped_attributes_count: self.below(3) as u32,
                ..Default::default()
            })
        }

        fn scope(&mut self) -> Option<InstrumentationScope> {
            (self.below(4) > 0).then(|| InstrumentationScope {
                name: self.text(),
                version: self.text(),
                attributes: self.attributes(0),
                dropped_attributes_count: 0,
            })
        }

        fn span(&mut self) -> PSpan {
            let start = self.time();
            PSpan {
                trace_id: self.id(16),
                span_id: self.id(8),
                trace_state: self.text(),
                parent_span_id: self.id(8),
                flags: self.below(512) as u32,
                name: self.text(),
                kind: self.below(7) as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start
                    .saturating_add(self.below(2_000_000))
                    .saturating_sub(if self.below(10) == 0 { 1_000_000 } else { 0 }),
                attributes: self.attributes(0),
                dropped_attributes_count: self.below(3) as u32,
                events: (0..self.below(3))
                    .map(|_| Event {
                        time_unix_nano: self.time(),
                        name: self.text(),
                        attributes: self.attributes(0),
                        dropped_attributes_count: self.below(2) as u32,
                    })
                    .collect(),
                dropped_events_count: self.below(2) as u32,
                links: (0..self.below(3))
                    .map(|_| Link {
                        trace_id: self.id(16),
                        span_id: self.id(8),
                        trace_state: self.text(),
                        attributes: self.attributes(0),
                        dropped_attributes_count: self.below(2) as u32,
                        flags: self.below(512) as u32,
                    })
                    .collect(),
                dropped_links_count: self.below(2) as u32,
                status: (self.below(2) == 0).then(|| Status {
                    message: self.text(),
                    code: self.below(4) as i32,
                }),
            }
        }

        fn traces(&mut self) -> ExportTraceServiceRequest {
            ExportTraceServiceRequest {
                resource_spans: (0..self.below(3))
                    .map(|_| ResourceSpans {
                        resource: self.resource(),
                        scope_spans: (0..self.below(3))
                            .map(|_| ScopeSpans {
                                scope: self.scope(),
                                spans: (0..self.below(5)).map(|_| self.span()).collect(),
                                schema_url: self.text(),
                            })
                            .collect(),
                        schema_url: self.text(),
                    })
                    .collect(),
            }
        }

        fn log(&mut self) -> PLogRecord {
            PLogRecord {
                time_unix_nano: self.time(),
                observed_time_unix_nano: self.time(),
                severity_number: self.below(27) as i32 - 1,
                severity_text: self.text(),
                body: self.value(0),
                attributes: self.attributes(0),
                dropped_attributes_count: self.below(2) as u32,
                flags: self.below(512) as u32,
                trace_id: if self.below(2) == 0 {
                    Vec::new()
                } else {
                    self.id(16)
                },
                span_id: if self.below(2) == 0 {
                    Vec::new()
                } else {
                    self.id(8)
                },
                event_name: self.text(),
            }
        }

        fn logs(&mut self) -> ExportLogsServiceRequest {
            ExportLogsServiceRequest {
                resource_logs: (0..self.below(3))
                    .map(|_| ResourceLogs {
                        resource: self.resource(),
                        scope_logs: (0..self.below(3))
                            .map(|_| ScopeLogs {
                                scope: self.scope(),
                                log_records: (0..self.below(5)).map(|_| self.log()).collect(),
                                schema_url: self.text(),
                            })
                            .collect(),
                        schema_url: self.text(),
                    })
                    .collect(),
            }
        }
    }

    /// What a decoder makes of protobuf bytes: records, rejections and reasons, or
    /// nothing when it refuses them.
    type Outcome<T> = Option<(Vec<T>, u64, String)>;

    fn outcome<T: Clone>(converted: Option<Converted<T>>) -> Outcome<T> {
        converted.map(|c| (c.records.clone(), c.rejected, c.error_message()))
    }

    /// One signal's two decoders: prost + `convert`, and this module's.
    struct Decoders<T> {
        name: &'static str,
        prost: fn(&[u8]) -> Outcome<T>,
        here: fn(&[u8]) -> Outcome<T>,
    }

    const SPANS: Decoders<Span> = Decoders {
        name: "spans",
        prost: |bytes| {
            let request = ExportTraceServiceRequest::decode(bytes).ok();
            outcome(request.map(|request| convert_traces(request, NOW, &RecordLimits::default())))
        },
        here: |bytes| {
            outcome(
                decode_traces(
                    &Bytes::copy_from_slice(bytes),
                    NOW,
                    &RecordLimits::default(),
                )
                .ok(),
            )
        },
    };

    const LOGS: Decoders<LogRecord> = Decoders {
        name: "logs",
        prost: |bytes| {
            let request = ExportLogsServiceRequest::decode(bytes).ok();
            outcome(request.map(|request| convert_logs(request, NOW, &RecordLimits::default())))
        },
        here: |bytes| {
            outcome(
                decode_logs(
                    &Bytes::copy_from_slice(bytes),
                    NOW,
                    &RecordLimits::default(),
                )
                .ok(),
            )
        },
    };

    impl<T: Clone + PartialEq + std::fmt::Debug> Decoders<T> {
        /// Decodes `bytes` with both, which must agree; prost's outcome.
        fn agree(&self, bytes: &[u8]) -> Outcome<T> {
            let expected = (self.prost)(bytes);
            assert_eq!((self.here)(bytes), expected, "{}", self.name);
            expected
        }

        /// Every prefix of `bytes` decodes alike; so does every corruption prost
        /// accepts, and none panics. (A corruption prost refuses may be accepted
        /// here: fields Hopline does not read, such as `schema_url`, are skipped
        /// without looking inside.)
        fn agree_on_damage(&self, bytes: &[u8], rng: &mut Rng) {
            for len in 0..bytes.len() {
                self.agree(&bytes[..len]);
            }
            for _ in 0..3_000 {
                let mut corrupt = bytes.to_vec();
                let at = rng.below(corrupt.len() as u64) as usize;
                corrupt[at] ^= 1 << rng.below(8);
                let here = (self.here)(&corrupt);
                if let Some(expected) = (self.prost)(&corrupt) {
                    assert_eq!(here, Some(expected), "{}: byte {at} changed", self.name);
                }
            }
        }
    }

    #[test]
    fn requests_of_every_shape_decode_as_prost_and_convert_do() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut spans, mut rejected_spans, mut logs, mut rejected_logs) = (0, 0, 0, 0);
        for _ in 0..400 {
            let (records, rejected, _) = SPANS
                .agree(&rng.traces().encode_to_vec())
                .expect("prost decodes its own");
            spans += records.len();
            rejected_spans += rejected;
            let (records, rejected, _) = LOGS
                .agree(&rng.logs().encode_to_vec())
                .expect("prost decodes its own");
            logs += records.len();
            rejected_logs += rejected;
        }
        // The generator reaches both outcomes, often.
        assert!(
            spans > 100 && rejected_spans > 100,
            "{spans} {rejected_spans}"
        );
        assert!(logs > 100 && rejected_logs > 100, "{logs} {rejected_logs}");
    }

    #[test]
    fn every_truncation_and_corruption_is_refused_or_decoded_as_prost_does() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let traces = loop {
            let traces = rng.traces().encode_to_vec();
            if traces.len() >= 300 {
                break traces;
            }
        };
        SPANS.agree_on_damage(&traces, &mut rng);
        let logs = loop {
            let logs = rng.logs().encode_to_vec();
            if logs.len() >= 300 {
                break logs;
            }
        };
        LOGS.agree_on_damage(&logs, &mut rng);
    }

    fn span_request(span: PSpan) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn error(bytes: &[u8]) -> String {
        decode_traces(
            &Bytes::copy_from_slice(bytes),
            NOW,
            &RecordLimits::default(),
        )
        .expect_err("refused")
        .to_string()
    }

    #[test]
    fn strings_are_slices_of_the_request() {
        let bytes = Bytes::from(span_request(PSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /users/{id}".into(),
            start_time_unix_nano: NOW,
            end_time_unix_nano: NOW,
            attributes: Rng(7).attributes(0),
            ..Default::default()
        }));
        let spans = decode_traces(&bytes, NOW, &RecordLimits::default())
            .expect("decodes")
            .records;
        // (An empty string is no slice: `Bytes` makes it without a buffer.)
        let inside = |s: &Str| {
            if s.is_empty() {
                return true;
            }
            let at = s.as_ptr() as usize;
            let start = bytes.as_ptr() as usize;
            at >= start && at + s.len() <= start + bytes.len()
        };
        assert!(inside(&spans[0].name));
        assert!(spans[0].attributes.iter().all(|kv| inside(&kv.key)));
    }

    #[test]
    fn records_keeping_little_of_their_request_get_their_own_strings() {
        let span = PSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /users/{id}".into(),
            start_time_unix_nano: NOW,
            end_time_unix_nano: NOW,
            attributes: Rng(7).attributes(0),
            ..Default::default()
        };
        let mut bytes = span_request(span);
        // An unknown field of 64 KiB after the span: the span alone would pin it.
        bytes.extend_from_slice(&[15 << 3 | 2, 0x80, 0x80, 0x04]);
        bytes.resize(bytes.len() + (64 << 10), b'x');
        let bytes = Bytes::from(bytes);
        let decoded = decode_traces(&bytes, NOW, &RecordLimits::default()).expect("decodes");
        let span = &decoded.records[0];
        let within = |s: &str| {
            let (at, start) = (s.as_ptr() as usize, bytes.as_ptr() as usize);
            at >= start && at < start + bytes.len()
        };
        assert!(!within(&span.name) && !span.attributes.is_empty());
        assert!(span.attributes.iter().all(|kv| !within(&kv.key)));
        // Still the same span as without the field.
        let plain = decode_traces(
            &Bytes::from(span_request(PSpan {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                name: "GET /users/{id}".into(),
                start_time_unix_nano: NOW,
                end_time_unix_nano: NOW,
                attributes: Rng(7).attributes(0),
                ..Default::default()
            })),
            NOW,
            &RecordLimits::default(),
        )
        .expect("decodes");
        assert_eq!(decoded.records, plain.records);
    }

    #[test]
    fn malformed_requests_are_refused_naming_the_field() {
        // A span whose name is not UTF-8.
        let mut bytes = span_request(PSpan {
            name: "ab".into(),
            ..Default::default()
        });
        let at = bytes.windows(2).position(|w| w == b"ab").expect("name");
        bytes[at] = 0xff;
        assert!(
            error(&bytes).contains("Span.name: invalid UTF-8"),
            "{}",
            error(&bytes)
        );

        // The start time sent as a varint instead of fixed64.
        let mut span = PSpan::default().encode_to_vec();
        span.extend_from_slice(&[7 << 3, 0x01]);
        let mut scope = vec![2 << 3 | 2, span.len() as u8];
        scope.extend_from_slice(&span);
        let mut resource = vec![2 << 3 | 2, scope.len() as u8];
        resource.extend_from_slice(&scope);
        let mut request = vec![1 << 3 | 2, resource.len() as u8];
        request.extend_from_slice(&resource);
        assert!(
            error(&request)
                .contains("Span.start_time_unix_nano: wire type varint, expected fixed64"),
            "{}",
            error(&request)
        );

        // The request's resource_spans sent as a varint.
        assert!(
            error(&[1 << 3, 1])
                .contains("ExportTraceServiceRequest.resource_spans: wire type varint"),
            "{}",
            error(&[1 << 3, 1])
        );

        // Field number 0, a varint of eleven bytes, a length past the end, wire type 7.
        assert!(error(&[0 << 3]).contains("invalid field number 0"));
        assert!(error(&[
            1 << 3,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x01
        ])
        .contains("varint longer than 64 bits"));
        assert!(error(&[1 << 3 | 2, 5, 0]).contains("runs past the end"));
        assert!(error(&[1 << 3 | 7]).contains("invalid wire type 7"));
        assert!(error(&[9 << 3 | 4]).contains("end of group 9 without a start"));
    }

    #[test]
    fn unknown_fields_and_groups_are_skipped() {
        let mut bytes = vec![
            // field 9, varint; field 10, a group holding a fixed32 and a nested group
            9 << 3,
            0x96,
            0x01,
            10 << 3 | 3,
            1 << 3 | 5,
            1,
            2,
            3,
            4,
            11 << 3 | 3,
            11 << 3 | 4,
            10 << 3 | 4,
        ];
        bytes.extend_from_slice(&span_request(PSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: NOW,
            end_time_unix_nano: NOW,
            ..Default::default()
        }));
        let converted =
            decode_traces(&Bytes::from(bytes), NOW, &RecordLimits::default()).expect("decodes");
        assert_eq!(converted.records.len(), 1);
        assert!(error(&[10 << 3 | 3, 1 << 3, 1]).contains("group 10 is not closed"));
        assert!(error(&[10 << 3 | 3, 11 << 3 | 4]).contains("end of group 11 inside group 10"));
    }

    #[test]
    fn values_nested_too_deep_are_refused() {
        let mut value = PValue {
            value: Some(PV::StringValue("leaf".into())),
        };
        for _ in 0..MAX_DEPTH {
            value = PValue {
                value: Some(PV::ArrayValue(ArrayValue {
                    values: vec![value],
                })),
            };
        }
        let bytes = span_request(PSpan {
            attributes: vec![PKeyValue {
                key: "deep".into(),
                value: Some(value),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(
            error(&bytes).contains("nested deeper than 32"),
            "{}",
            error(&bytes)
        );
    }
}
