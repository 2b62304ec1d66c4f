//! The two index schemas, declared once, with why each field is what it is.
//!
//! Every field a query filters, sorts or aggregates on is indexed or a fast field;
//! the whole record is kept once, as the `postcard` bytes of the model type, in the
//! zstd doc store (`payload`), to rebuild any API answer. Raw-tokenised fields carry
//! no field norms and no positions: nothing here is scored.

use std::sync::Arc;
use tantivy::schema::{
    BytesOptions, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};

use serde::{Deserialize, Serialize};
use tantivy::TantivyDocument;

use super::origin::Origin;
use super::pattern::pattern_id;
use super::terms::{add_attribute_terms, write_operation_term, write_tag_term, IndexedKeys};
use crate::model::{
    AnyValue, KeyValue, LogRecord, Span, SpanEvent, SpanId, SpanKind, SpanLink, StatusCode, TraceId,
};

/// The layout of documents and payloads, recorded in every split. Version 1 keeps
/// ids and timestamps in columns only: they are random bytes that do not compress,
/// and the stored copy of them cost about 40 bytes per span.
///
/// Version 2 keeps each distinct resource and scope once per split (its
/// [`origin`](super::origin) table) instead of in every record's terms and payload.
///
/// Version 3 gives every log record its body's [`pattern`](super::pattern) id
/// (a term and a column). Splits of version 2 are still read: their records have
/// no pattern until a merge writes them again.
///
/// Version 4 keeps a span's trace id in one dictionary-encoded column (16 bytes a
/// trace, an ordinal a span) instead of two u64 columns (16 bytes a span): 12 bytes
/// a span less. Splits of versions 2 and 3 are still read through their two
/// columns (see [`super::traceids`]).
pub const FORMAT: u32 = 4;

/// The oldest format this version reads.
pub const OLDEST_FORMAT: u32 = 2;

/// The first format whose log records carry a pattern id.
pub const PATTERN_FORMAT: u32 = 3;

/// The first format whose spans keep their trace id in a dictionary column.
pub const TRACE_ID_COLUMN_FORMAT: u32 = 4;

/// The names of the columns (fast fields) searches read, one constant each: the
/// schemas declare the fields with them and the searches open them by them.
pub mod columns {
    /// Spans and logs: the record's origin number (see [`super::super::origin`]).
    pub const ORIGIN: &str = "origin";
    pub const SPAN_ID: &str = "span_id";
    pub const SERVICE: &str = "service";
    /// Spans: the trace id (a dictionary column from format 4; in older splits,
    /// its halves), the parent, start, duration, error flag.
    pub const TRACE_ID: &str = "trace_id";
    pub const TRACE_HI: &str = "trace_hi";
    pub const TRACE_LO: &str = "trace_lo";
    pub const PARENT_ID: &str = "parent_id";
    pub const START: &str = "start";
    pub const DURATION: &str = "duration";
    pub const ERROR: &str = "error";
    /// Logs: the event time and severity number.
    pub const TIME: &str = "time";
    pub const SEVERITY: &str = "severity";
}

/// Exact-match text: one term per value.
fn raw_text() -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    )
}

fn raw_text_fast() -> TextOptions {
    raw_text().set_fast("raw")
}

fn fast_u64() -> NumericOptions {
    NumericOptions::default().set_fast()
}

fn bytes_term() -> BytesOptions {
    BytesOptions::default().set_indexed()
}

/// A span's trace id: a term (a trace's lookups) and a dictionary column (trace
/// search groups matching spans by it).
fn trace_id_options() -> BytesOptions {
    bytes_term().set_fast()
}

fn stored_bytes() -> BytesOptions {
    BytesOptions::default().set_stored()
}

/// A record's origin number: read per hit (column) and filtered by a resource
/// attribute search (term).
fn origin_options() -> NumericOptions {
    NumericOptions::default().set_indexed().set_fast()
}

/// The span index.
#[derive(Debug, Clone)]
pub struct SpanSchema {
    pub schema: Schema,
    /// Term lookups of one trace (`/api/traces/{id}`), and a dictionary column:
    /// trace search groups matching spans by trace without touching the doc store.
    pub trace_id: Field,
    /// The trace id's halves as two columns, in splits older than
    /// [`TRACE_ID_COLUMN_FORMAT`]; declared still, so that the fields after them
    /// keep their numbers.
    pub trace_hi: Field,
    pub trace_lo: Field,
    /// Span and parent ids as columns: the service map joins them.
    pub span_id: Field,
    pub parent_id: Field,
    /// `service.name`: filtered (term), listed (term dictionary), and read per span
    /// by the service map (column).
    pub service: Field,
    /// Span name, filtered by `operation=`.
    pub name: Field,
    /// `service \0 kind \0 name`: its term dictionary is the operations list.
    pub operation: Field,
    /// Start time in ns since the epoch: range filters and newest-first (column).
    pub start: Field,
    /// Duration in ns: `minDuration`/`maxDuration` range filters (column).
    pub duration: Field,
    /// 1 for an error status: the service map's error counts (column).
    pub error: Field,
    /// `key=value` of every span attribute, plus `span.kind=...`, `error=true` and
    /// `otel.status_code=...`: Jaeger's tag search. Resource attributes are found
    /// through `origin`.
    pub tags: Field,
    /// The number of the span's resource and scope in its split's origin table.
    pub origin: Field,
    pub payload: Field,
}

impl SpanSchema {
    pub fn new() -> Self {
        Self::with_trace_id(trace_id_options())
    }

    /// The schema of splits older than [`TRACE_ID_COLUMN_FORMAT`] (tests write them).
    #[cfg(test)]
    pub fn format_3() -> Self {
        Self::with_trace_id(bytes_term())
    }

    fn with_trace_id(trace_id_options: BytesOptions) -> Self {
        let mut builder = Schema::builder();
        let trace_id = builder.add_bytes_field(columns::TRACE_ID, trace_id_options);
        let trace_hi = builder.add_u64_field(columns::TRACE_HI, fast_u64());
        let trace_lo = builder.add_u64_field(columns::TRACE_LO, fast_u64());
        let span_id = builder.add_u64_field(columns::SPAN_ID, fast_u64());
        let parent_id = builder.add_u64_field(columns::PARENT_ID, fast_u64());
        let service = builder.add_text_field(columns::SERVICE, raw_text_fast());
        let name = builder.add_text_field("name", raw_text());
        let operation = builder.add_text_field("operation", raw_text());
        let start = builder.add_u64_field(columns::START, fast_u64());
        let duration = builder.add_u64_field(columns::DURATION, fast_u64());
        let error = builder.add_u64_field(columns::ERROR, fast_u64());
        let tags = builder.add_text_field("tags", raw_text());
        let origin = builder.add_u64_field(columns::ORIGIN, origin_options());
        let payload = builder.add_bytes_field("payload", stored_bytes());
        Self {
            schema: builder.build(),
            trace_id,
            trace_hi,
            trace_lo,
            span_id,
            parent_id,
            service,
            name,
            operation,
            start,
            duration,
            error,
            tags,
            origin,
            payload,
        }
    }

    /// The document of a span whose resource and scope are origin number `origin`:
    /// its terms, its columns, and the rest as the payload.
    pub fn document(
        &self,
        span: &Span,
        origin: u64,
        scratch: &mut Scratch,
    ) -> Result<TantivyDocument, postcard::Error> {
        SpanPayloadRef::encode(span, &mut scratch.payload)?;
        let mut doc = TantivyDocument::default();
        doc.add_bytes(self.trace_id, &span.trace_id.0[..]);
        doc.add_u64(self.span_id, span.span_id.as_u64());
        doc.add_u64(
            self.parent_id,
            span.parent_span_id.map_or(0, |id| id.as_u64()),
        );
        doc.add_text(self.service, &span.service_name);
        doc.add_text(self.name, &span.name);
        let term = &mut scratch.term;
        term.clear();
        write_operation_term(term, &span.service_name, span.kind.as_jaeger(), &span.name);
        doc.add_text(self.operation, term.as_str());
        doc.add_u64(self.start, span.start_time_unix_nano);
        doc.add_u64(self.duration, span.duration_nanos());
        doc.add_u64(self.error, u64::from(span.status_code == StatusCode::Error));
        add_attribute_terms(
            &mut doc,
            self.tags,
            term,
            &mut scratch.keys,
            &span.attributes,
        );
        let mut add_tag = |key: &str, value: &str| {
            term.clear();
            write_tag_term(term, key, |out| out.push_str(value));
            doc.add_text(self.tags, term.as_str());
        };
        if span.kind.as_jaeger() != "" {
            add_tag("span.kind", span.kind.as_jaeger());
        }
        match span.status_code {
            StatusCode::Error => {
                add_tag("error", "true");
                add_tag("otel.status_code", "ERROR");
            }
            StatusCode::Ok => add_tag("otel.status_code", "OK"),
            StatusCode::Unset => {}
        }
        doc.add_u64(self.origin, origin);
        doc.add_bytes(self.payload, &scratch.payload[..]);
        Ok(doc)
    }

    /// Rebuilds a span from its payload, its columns and its origin.
    pub fn span(
        &self,
        payload: &[u8],
        columns: SpanColumns,
        origin: &Origin,
    ) -> Result<Span, postcard::Error> {
        let stored: SpanPayload = postcard::from_bytes(payload)?;
        Ok(Span {
            trace_id: TraceId::from_halves(columns.trace_hi, columns.trace_lo),
            span_id: SpanId(columns.span_id.to_be_bytes()),
            parent_span_id: (columns.parent_id != 0)
                .then(|| SpanId(columns.parent_id.to_be_bytes())),
            trace_state: stored.trace_state,
            flags: stored.flags,
            name: stored.name.into(),
            kind: stored.kind,
            start_time_unix_nano: columns.start,
            end_time_unix_nano: columns.start.saturating_add(columns.duration),
            attributes: stored.attributes,
            dropped_attributes_count: stored.dropped_attributes_count,
            events: stored.events,
            dropped_events_count: stored.dropped_events_count,
            links: stored.links,
            dropped_links_count: stored.dropped_links_count,
            status_code: stored.status_code,
            status_message: stored.status_message,
            service_name: origin.service_name.clone(),
            resource: Arc::clone(&origin.resource),
            scope: Arc::clone(&origin.scope),
        })
    }
}

/// What the columns of a span document hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanColumns {
    pub trace_hi: u64,
    pub trace_lo: u64,
    pub span_id: u64,
    /// 0 for a root span.
    pub parent_id: u64,
    pub start: u64,
    pub duration: u64,
    pub origin: u64,
}

/// A span's payload: everything the columns do not hold. [`SpanPayload`] reads it
/// back; the two must list the same fields in the same order.
#[derive(Serialize)]
struct SpanPayloadRef<'a> {
    trace_state: &'a str,
    flags: u32,
    name: &'a str,
    kind: SpanKind,
    attributes: &'a [KeyValue],
    dropped_attributes_count: u32,
    events: &'a [SpanEvent],
    dropped_events_count: u32,
    links: &'a [SpanLink],
    dropped_links_count: u32,
    status_code: StatusCode,
    status_message: &'a str,
}

impl SpanPayloadRef<'_> {
    fn encode(span: &Span, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
        let payload = SpanPayloadRef {
            trace_state: &span.trace_state,
            flags: span.flags,
            name: &span.name,
            kind: span.kind,
            attributes: &span.attributes,
            dropped_attributes_count: span.dropped_attributes_count,
            events: &span.events,
            dropped_events_count: span.dropped_events_count,
            links: &span.links,
            dropped_links_count: span.dropped_links_count,
            status_code: span.status_code,
            status_message: &span.status_message,
        };
        out.clear();
        *out = postcard::to_extend(&payload, std::mem::take(out))?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct SpanPayload {
    trace_state: String,
    flags: u32,
    name: String,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
    events: Vec<SpanEvent>,
    dropped_events_count: u32,
    links: Vec<SpanLink>,
    dropped_links_count: u32,
    status_code: StatusCode,
    status_message: String,
}

impl Default for SpanSchema {
    fn default() -> Self {
        Self::new()
    }
}

/// Buffers one document lends to the next, so building one allocates little, and
/// the attribute keys a split indexes.
#[derive(Debug, Default)]
pub struct Scratch {
    payload: Vec<u8>,
    term: String,
    pub keys: IndexedKeys,
}

impl Scratch {
    /// Buffers for a split that indexes at most `max_keys` attribute keys.
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            keys: IndexedKeys::new(max_keys),
            ..Self::default()
        }
    }
}

/// The log index.
#[derive(Debug, Clone)]
pub struct LogSchema {
    pub schema: Schema,
    /// Event time in ns: newest-first order and time ranges (column).
    pub time: Field,
    /// Severity number 0-24: `minSeverity` (column, range).
    pub severity: Field,
    /// Level name (`error`, `warn`, ...) from the number, else the text: `severity:`.
    pub level: Field,
    pub service: Field,
    /// The body, full text (default tokenizer: words, lower-cased) with positions
    /// for phrase queries.
    pub body: Field,
    /// `key=value` of every record attribute: `attributes.KEY:value`. Resource
    /// attributes are found through `origin`.
    pub attributes: Field,
    pub trace_id: Field,
    /// The span id as a column (0: none): filtering by span always comes with its
    /// trace, so an index of unique span ids would be dead weight.
    pub span_id: Field,
    /// The number of the record's resource and scope in its split's origin table.
    pub origin: Field,
    pub payload: Field,
    /// The body's pattern id: `pattern:<id>`, and pattern counts, which walk a
    /// segment's few pattern terms and their postings. Indexed only: a column of
    /// 64-bit hashes took 8 bytes a record, and a text column (ordinals) cost a
    /// fifth of the ingest CPU. Absent from splits older than [`PATTERN_FORMAT`].
    pub pattern: Field,
}

impl LogSchema {
    pub fn new() -> Self {
        let mut builder = Schema::builder();
        let time = builder.add_u64_field(columns::TIME, fast_u64());
        let severity = builder.add_u64_field(columns::SEVERITY, fast_u64());
        let level = builder.add_text_field("level", raw_text());
        let service = builder.add_text_field(columns::SERVICE, raw_text_fast());
        let body = builder.add_text_field(
            "body",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                    .set_fieldnorms(false),
            ),
        );
        let attributes = builder.add_text_field("attributes", raw_text());
        let trace_id = builder.add_bytes_field("trace_id", bytes_term());
        let span_id = builder.add_u64_field(columns::SPAN_ID, fast_u64());
        let origin = builder.add_u64_field(columns::ORIGIN, origin_options());
        let payload = builder.add_bytes_field("payload", stored_bytes());
        // Last: the fields before it keep the numbers they have in older splits.
        let pattern = builder.add_u64_field("pattern", NumericOptions::default().set_indexed());
        Self {
            schema: builder.build(),
            time,
            severity,
            level,
            service,
            body,
            attributes,
            trace_id,
            span_id,
            origin,
            payload,
            pattern,
        }
    }

    /// The document of a log record whose resource and scope are origin number
    /// `origin`: its terms, its columns, and the rest as the payload.
    pub fn document(
        &self,
        record: &LogRecord,
        origin: u64,
        scratch: &mut Scratch,
    ) -> Result<TantivyDocument, postcard::Error> {
        LogPayloadRef::encode(record, &mut scratch.payload)?;
        let mut doc = TantivyDocument::default();
        doc.add_u64(self.time, record.time_unix_nano);
        doc.add_u64(self.severity, record.severity_number.max(0) as u64);
        let level = record.level();
        if !level.is_empty() {
            doc.add_text(self.level, &level);
        }
        doc.add_text(self.service, &record.service_name);
        let body = record.body_text();
        doc.add_u64(self.pattern, pattern_id(&body));
        doc.add_text(self.body, body);
        add_attribute_terms(
            &mut doc,
            self.attributes,
            &mut scratch.term,
            &mut scratch.keys,
            &record.attributes,
        );
        if let Some(trace_id) = record.trace_id {
            doc.add_bytes(self.trace_id, &trace_id.0[..]);
        }
        doc.add_u64(self.span_id, record.span_id.map_or(0, |id| id.as_u64()));
        doc.add_u64(self.origin, origin);
        doc.add_bytes(self.payload, &scratch.payload[..]);
        Ok(doc)
    }

    /// Rebuilds a log record from its payload, its columns and its origin.
    pub fn record(
        &self,
        payload: &[u8],
        time: u64,
        span_id: u64,
        origin: &Origin,
    ) -> Result<LogRecord, postcard::Error> {
        let stored: LogPayload = postcard::from_bytes(payload)?;
        Ok(LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: time.saturating_add_signed(stored.observed_after),
            severity_number: stored.severity_number,
            severity_text: stored.severity_text.into(),
            body: stored.body,
            attributes: stored.attributes,
            dropped_attributes_count: stored.dropped_attributes_count,
            flags: stored.flags,
            trace_id: stored.trace_id,
            span_id: (span_id != 0).then(|| SpanId(span_id.to_be_bytes())),
            event_name: stored.event_name,
            service_name: origin.service_name.clone(),
            resource: Arc::clone(&origin.resource),
            scope: Arc::clone(&origin.scope),
        })
    }
}

/// What orders log records of the same time, the same on every node and after
/// every merge: a hash (FNV-1a, 64 bits) of the record's stored form, its span id,
/// service and resource. Records with the same key and time are identical.
pub fn log_key(record: &LogRecord) -> Result<u64, postcard::Error> {
    let mut bytes = Vec::new();
    LogPayloadRef::encode(record, &mut bytes)?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |part: &[u8]| {
        for &byte in part {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&bytes);
    eat(&record.span_id.map_or(0, |id| id.as_u64()).to_le_bytes());
    eat(record.service_name.as_bytes());
    eat(&postcard::to_allocvec(&*record.resource)?);
    Ok(hash)
}

/// A log record's payload: everything the columns do not hold, and the observed
/// time as an offset from the event time (usually a byte). [`LogPayload`] reads it
/// back; the two must list the same fields in the same order.
#[derive(Serialize)]
struct LogPayloadRef<'a> {
    observed_after: i64,
    severity_number: i32,
    severity_text: &'a str,
    body: &'a AnyValue,
    attributes: &'a [KeyValue],
    dropped_attributes_count: u32,
    flags: u32,
    trace_id: Option<TraceId>,
    event_name: &'a str,
}

impl LogPayloadRef<'_> {
    fn encode(record: &LogRecord, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
        let payload = LogPayloadRef {
            observed_after: (record.observed_time_unix_nano as i64)
                .wrapping_sub(record.time_unix_nano as i64),
            severity_number: record.severity_number,
            severity_text: &record.severity_text,
            body: &record.body,
            attributes: &record.attributes,
            dropped_attributes_count: record.dropped_attributes_count,
            flags: record.flags,
            trace_id: record.trace_id,
            event_name: &record.event_name,
        };
        out.clear();
        *out = postcard::to_extend(&payload, std::mem::take(out))?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct LogPayload {
    observed_after: i64,
    severity_number: i32,
    severity_text: String,
    body: AnyValue,
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
    flags: u32,
    trace_id: Option<TraceId>,
    event_name: String,
}

impl Default for LogSchema {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use tantivy::schema::Value;

    use super::*;
    use crate::model::{Resource, Scope};

    fn origin() -> Origin {
        Origin {
            service_name: "checkout".into(),
            resource: resource(),
            scope: scope(),
        }
    }

    fn resource() -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: AnyValue::Str("checkout".into()),
            }],
            dropped_attributes_count: 1,
        })
    }

    fn scope() -> Arc<Scope> {
        Arc::new(Scope {
            name: "tracer".into(),
            version: "1.0".into(),
            attributes: Vec::new(),
        })
    }

    fn u64_of(doc: &TantivyDocument, field: Field) -> u64 {
        doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0)
    }

    fn payload_of(doc: &TantivyDocument, field: Field) -> Vec<u8> {
        doc.get_first(field)
            .and_then(|v| v.as_bytes().map(<[u8]>::to_vec))
            .unwrap_or_default()
    }

    #[test]
    fn a_span_comes_back_whole_from_payload_and_columns() {
        let schema = SpanSchema::new();
        let span = Span {
            trace_id: TraceId([0xab; 16]),
            span_id: SpanId([0x12; 8]),
            parent_span_id: Some(SpanId([0x34; 8])),
            trace_state: "vendor=1".into(),
            flags: 1,
            name: "GET /cart".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_750_000_000_123_456_789,
            end_time_unix_nano: 1_750_000_000_987_654_321,
            attributes: vec![KeyValue {
                key: "http.response.status_code".into(),
                value: AnyValue::Int(503),
            }],
            dropped_attributes_count: 2,
            events: vec![SpanEvent {
                time_unix_nano: 1_750_000_000_500_000_000,
                name: "retry".into(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
            }],
            dropped_events_count: 3,
            links: vec![SpanLink {
                trace_id: TraceId([0xcd; 16]),
                span_id: SpanId([0x56; 8]),
                trace_state: String::new(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                flags: 0,
            }],
            dropped_links_count: 4,
            status_code: StatusCode::Error,
            status_message: "upstream unavailable".into(),
            service_name: "checkout".into(),
            resource: resource(),
            scope: scope(),
        };
        let doc = schema
            .document(&span, 7, &mut Scratch::default())
            .expect("document");
        let payload = payload_of(&doc, schema.payload);
        let (trace_hi, trace_lo) = TraceId(
            payload_of(&doc, schema.trace_id)
                .try_into()
                .expect("a 16-byte trace id"),
        )
        .halves();
        // The trace id is a term and a column, once.
        assert!(doc.get_first(schema.trace_hi).is_none());
        let columns = SpanColumns {
            trace_hi,
            trace_lo,
            span_id: u64_of(&doc, schema.span_id),
            parent_id: u64_of(&doc, schema.parent_id),
            start: u64_of(&doc, schema.start),
            duration: u64_of(&doc, schema.duration),
            origin: u64_of(&doc, schema.origin),
        };
        assert_eq!(columns.origin, 7);
        assert_eq!(
            schema.span(&payload, columns, &origin()).expect("span"),
            span
        );
        // The resource is the origin's, not a copy in every payload.
        assert!(!payload.windows(8).any(|w| w == b"checkout"));
        // The random bytes live in the columns only.
        assert!(!payload.windows(8).any(|w| w == [0x12; 8] || w == [0xab; 8]));

        let root = Span {
            parent_span_id: None,
            ..span
        };
        let doc = schema
            .document(&root, 7, &mut Scratch::default())
            .expect("document");
        assert_eq!(u64_of(&doc, schema.parent_id), 0);
        let columns = SpanColumns {
            parent_id: 0,
            ..columns
        };
        let back = schema
            .span(&payload_of(&doc, schema.payload), columns, &origin())
            .expect("span");
        assert_eq!(back.parent_span_id, None);
    }

    #[test]
    fn a_log_record_comes_back_whole_from_payload_and_columns() {
        let schema = LogSchema::new();
        for (span_id, observed) in [
            (Some(SpanId([0x77; 8])), 1_750_000_000_000_000_100),
            (None, 0),
        ] {
            let record = LogRecord {
                time_unix_nano: 1_750_000_000_000_000_000,
                observed_time_unix_nano: observed,
                severity_number: 17,
                severity_text: "ERROR".into(),
                body: AnyValue::Str("payment declined".into()),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                flags: 1,
                trace_id: span_id.map(|_| TraceId([0x99; 16])),
                span_id,
                event_name: "payment.declined".into(),
                service_name: "checkout".into(),
                resource: resource(),
                scope: scope(),
            };
            let doc = schema
                .document(&record, 3, &mut Scratch::default())
                .expect("document");
            assert_eq!(u64_of(&doc, schema.origin), 3);
            let back = schema
                .record(
                    &payload_of(&doc, schema.payload),
                    u64_of(&doc, schema.time),
                    u64_of(&doc, schema.span_id),
                    &origin(),
                )
                .expect("record");
            assert_eq!(back, record);
        }
    }
}
