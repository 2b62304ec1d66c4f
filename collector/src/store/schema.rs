//! The two index schemas, declared once, with why each field is what it is.
//!
//! Every field a query filters, sorts or aggregates on is indexed or a fast field;
//! the whole record is kept once, as the `postcard` bytes of the model type, in the
//! zstd doc store (`payload`), to rebuild any API answer. Raw-tokenised fields carry
//! no field norms and no positions: nothing here is scored.

use tantivy::schema::{
    BytesOptions, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::TantivyDocument;

use crate::model::{AnyValue, KeyValue, LogRecord, Span, StatusCode};

/// Tag terms longer than this are not indexed (a SQL statement, a stack trace):
/// they would bloat the term dictionary and nobody types them into a tag search.
pub const MAX_TAG_TERM_LEN: usize = 256;

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

fn stored_bytes() -> BytesOptions {
    BytesOptions::default().set_stored()
}

/// The span index.
#[derive(Debug, Clone)]
pub struct SpanSchema {
    pub schema: Schema,
    /// Term lookups of one trace (`/api/traces/{id}`).
    pub trace_id: Field,
    /// The trace id again, as two columns: trace search groups matching spans by
    /// trace without touching the doc store.
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
    /// `key=value` of every span and resource attribute, plus `span.kind=...`,
    /// `error=true` and `otel.status_code=...`: Jaeger's tag search.
    pub tags: Field,
    pub payload: Field,
}

impl SpanSchema {
    pub fn new() -> Self {
        let mut builder = Schema::builder();
        let trace_id = builder.add_bytes_field("trace_id", bytes_term());
        let trace_hi = builder.add_u64_field("trace_hi", fast_u64());
        let trace_lo = builder.add_u64_field("trace_lo", fast_u64());
        let span_id = builder.add_u64_field("span_id", fast_u64());
        let parent_id = builder.add_u64_field("parent_id", fast_u64());
        let service = builder.add_text_field("service", raw_text_fast());
        let name = builder.add_text_field("name", raw_text());
        let operation = builder.add_text_field("operation", raw_text());
        let start = builder.add_u64_field("start", fast_u64());
        let duration = builder.add_u64_field("duration", fast_u64());
        let error = builder.add_u64_field("error", fast_u64());
        let tags = builder.add_text_field("tags", raw_text());
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
            payload,
        }
    }

    pub fn document(&self, span: &Span, payload: Vec<u8>) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        let (hi, lo) = span.trace_id.halves();
        doc.add_bytes(self.trace_id, &span.trace_id.0[..]);
        doc.add_u64(self.trace_hi, hi);
        doc.add_u64(self.trace_lo, lo);
        doc.add_u64(self.span_id, span.span_id.as_u64());
        doc.add_u64(
            self.parent_id,
            span.parent_span_id.map_or(0, |id| id.as_u64()),
        );
        doc.add_text(self.service, &span.service_name);
        doc.add_text(self.name, &span.name);
        doc.add_text(
            self.operation,
            operation_term(&span.service_name, span.kind.as_jaeger(), &span.name),
        );
        doc.add_u64(self.start, span.start_time_unix_nano);
        doc.add_u64(self.duration, span.duration_nanos());
        doc.add_u64(self.error, u64::from(span.status_code == StatusCode::Error));
        let mut add_tag = |key: &str, value: &str| {
            if key.len() + value.len() < MAX_TAG_TERM_LEN {
                doc.add_text(self.tags, tag_term(key, value));
            }
        };
        for kv in span.attributes.iter().chain(&span.resource.attributes) {
            add_tag(&kv.key, &kv.value.to_search_text());
        }
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
        doc.add_bytes(self.payload, &payload[..]);
        doc
    }
}

impl Default for SpanSchema {
    fn default() -> Self {
        Self::new()
    }
}

/// The term of the `operation` field: `service \0 kind \0 name`.
pub fn operation_term(service: &str, kind: &str, name: &str) -> String {
    format!("{service}\0{kind}\0{name}")
}

/// The term of a tag: `key=value`.
pub fn tag_term(key: &str, value: &str) -> String {
    format!("{key}={value}")
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
    /// `key=value` of every record and resource attribute: `attributes.KEY:value`.
    pub attributes: Field,
    pub trace_id: Field,
    pub span_id: Field,
    pub payload: Field,
}

impl LogSchema {
    pub fn new() -> Self {
        let mut builder = Schema::builder();
        let time = builder.add_u64_field("time", fast_u64());
        let severity = builder.add_u64_field("severity", fast_u64());
        let level = builder.add_text_field("level", raw_text());
        let service = builder.add_text_field("service", raw_text_fast());
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
        let span_id = builder.add_bytes_field("span_id", bytes_term());
        let payload = builder.add_bytes_field("payload", stored_bytes());
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
            payload,
        }
    }

    pub fn document(&self, record: &LogRecord, payload: Vec<u8>) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_u64(self.time, record.time_unix_nano);
        doc.add_u64(self.severity, record.severity_number.max(0) as u64);
        let level = record.level();
        if !level.is_empty() {
            doc.add_text(self.level, &level);
        }
        doc.add_text(self.service, &record.service_name);
        doc.add_text(self.body, record.body_text());
        add_attribute_terms(&mut doc, self.attributes, &record.attributes);
        add_attribute_terms(&mut doc, self.attributes, &record.resource.attributes);
        if let Some(trace_id) = record.trace_id {
            doc.add_bytes(self.trace_id, &trace_id.0[..]);
        }
        if let Some(span_id) = record.span_id {
            doc.add_bytes(self.span_id, &span_id.0[..]);
        }
        doc.add_bytes(self.payload, &payload[..]);
        doc
    }
}

impl Default for LogSchema {
    fn default() -> Self {
        Self::new()
    }
}

fn add_attribute_terms(doc: &mut TantivyDocument, field: Field, attributes: &[KeyValue]) {
    for kv in attributes {
        let value = match &kv.value {
            AnyValue::Str(s) => s.clone(),
            other => other.to_search_text(),
        };
        if kv.key.len() + value.len() < MAX_TAG_TERM_LEN {
            doc.add_text(field, tag_term(&kv.key, &value));
        }
    }
}
