//! The collector's own data model: what every stage after the receiver sees.
//!
//! No I/O, no protobuf, no tantivy, no HTTP here. Records are serialised with
//! `postcard`: whole in write-ahead-log frames, and without what the columns hold
//! as the stored copy of each document in the index (`store::schema`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A 16-byte W3C trace id. Never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id. Never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpanId(pub [u8; 8]);

/// Why an id could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected {expected} bytes, got {actual}")]
    Length { expected: usize, actual: usize },
    #[error("expected {expected} hex digits, got {actual}")]
    HexLength { expected: usize, actual: usize },
    #[error("'{0}' is not a hex digit")]
    NotHex(char),
    #[error("an all-zero id is invalid")]
    Zero,
}

macro_rules! impl_id {
    ($name:ident, $len:expr) => {
        impl $name {
            pub const LEN: usize = $len;

            /// Reads an id from raw bytes, as OTLP/protobuf carries it.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    expected: $len,
                    actual: bytes.len(),
                })?;
                if array == [0; $len] {
                    return Err(IdError::Zero);
                }
                Ok(Self(array))
            }

            /// Reads an id from lower- or upper-case hex. Shorter ids are
            /// left-padded with zeros, as Jaeger does for 64-bit trace ids.
            pub fn from_hex(text: &str) -> Result<Self, IdError> {
                if text.is_empty() || text.len() > $len * 2 {
                    return Err(IdError::HexLength {
                        expected: $len * 2,
                        actual: text.len(),
                    });
                }
                let mut array = [0u8; $len];
                let padded_start = $len * 2 - text.len();
                for (i, c) in text.chars().enumerate() {
                    let nibble = c.to_digit(16).ok_or(IdError::NotHex(c))? as u8;
                    let pos = padded_start + i;
                    array[pos / 2] |= if pos % 2 == 0 { nibble << 4 } else { nibble };
                }
                if array == [0; $len] {
                    return Err(IdError::Zero);
                }
                Ok(Self(array))
            }

            pub fn to_hex(&self) -> String {
                hex(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

impl_id!(TraceId, 16);
impl_id!(SpanId, 8);

impl TraceId {
    /// The two halves as big-endian integers (the fast-field columns).
    pub fn halves(&self) -> (u64, u64) {
        let (hi, lo) = self.0.split_at(8);
        (
            u64::from_be_bytes(hi.try_into().unwrap_or_default()),
            u64::from_be_bytes(lo.try_into().unwrap_or_default()),
        )
    }

    pub fn from_halves(hi: u64, lo: u64) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        Self(bytes)
    }
}

impl SpanId {
    pub fn as_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }
}

/// Lower-case hex of any byte string.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0xf) as usize] as char);
    }
    out
}

/// An immutable string that may share the buffer it was decoded from: the keys
/// and values of a protobuf request are slices of that request, not copies
/// (the protobuf decoder). Derefs to `str`; serializes as a string.
pub use bytestring::ByteString as Str;

/// An attribute value, typed as OTLP types it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnyValue {
    Empty,
    Str(Str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AnyValue>),
    Map(Vec<KeyValue>),
}

impl AnyValue {
    /// The value as a person would type it in a tag search: strings as they are,
    /// scalars in their usual text form, arrays and maps as JSON.
    pub fn to_search_text(&self) -> String {
        let mut out = String::new();
        self.write_search_text(&mut out);
        out
    }

    /// Appends [`AnyValue::to_search_text`] to `out`, allocating only for arrays and
    /// maps: this runs for every attribute of every record indexed.
    pub fn write_search_text(&self, out: &mut String) {
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = match self {
            AnyValue::Empty => Ok(()),
            AnyValue::Str(s) => out.write_str(s),
            AnyValue::Bool(b) => write!(out, "{b}"),
            AnyValue::Int(i) => write!(out, "{i}"),
            AnyValue::Double(d) => write!(out, "{d}"),
            AnyValue::Bytes(b) => out.write_str(&hex(b)),
            AnyValue::Array(_) | AnyValue::Map(_) => write!(out, "{}", self.to_json()),
        };
    }

    /// A plain JSON rendering (not OTLP/JSON): `{"k": 1}`, `[1, "a"]`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            AnyValue::Empty => Value::Null,
            AnyValue::Str(s) => Value::String(s.to_string()),
            AnyValue::Bool(b) => Value::Bool(*b),
            AnyValue::Int(i) => Value::from(*i),
            AnyValue::Double(d) => serde_json::Number::from_f64(*d)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(d.to_string())),
            AnyValue::Bytes(b) => Value::String(hex(b)),
            AnyValue::Array(values) => Value::Array(values.iter().map(AnyValue::to_json).collect()),
            AnyValue::Map(entries) => attributes_to_json(entries),
        }
    }
}

impl AnyValue {
    /// The value with its strings copied out of any buffer they share.
    pub fn detached(&self) -> AnyValue {
        match self {
            AnyValue::Str(s) => AnyValue::Str(Str::from(&**s)),
            AnyValue::Array(values) => {
                AnyValue::Array(values.iter().map(AnyValue::detached).collect())
            }
            AnyValue::Map(entries) => AnyValue::Map(detached(entries)),
            other => other.clone(),
        }
    }
}

/// Attributes with their strings copied out of any buffer they share: for what
/// outlives the request it was decoded from.
pub fn detached(attributes: &[KeyValue]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|kv| KeyValue {
            key: Str::from(&*kv.key),
            value: kv.value.detached(),
        })
        .collect()
}

/// Renders attributes as one JSON object, `{"key": value}`.
pub fn attributes_to_json(attributes: &[KeyValue]) -> serde_json::Value {
    serde_json::Value::Object(
        attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_json()))
            .collect(),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Str,
    pub value: AnyValue,
}

impl KeyValue {
    pub fn new(key: impl Into<Str>, value: AnyValue) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }
}

/// Finds an attribute by key.
pub fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value)
}

/// The entity that produced telemetry: its attributes (`service.name`, `host.name`, ...).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resource {
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

impl Resource {
    /// The resource with its strings copied out of any buffer they share.
    pub fn detached(&self) -> Resource {
        Resource {
            attributes: detached(&self.attributes),
            dropped_attributes_count: self.dropped_attributes_count,
        }
    }
}

/// A record whose strings can be copied out of the request buffer they share.
pub trait Detach {
    fn detach(&mut self, origins: &mut DetachedOrigins);
}

/// The copies of a request's resources and scopes, made once each while its
/// records are detached.
#[derive(Default)]
pub struct DetachedOrigins {
    resources: Vec<(Arc<Resource>, Arc<Resource>)>,
    scopes: Vec<(Arc<Scope>, Arc<Scope>)>,
}

impl DetachedOrigins {
    fn resource(&mut self, resource: &Arc<Resource>) -> Arc<Resource> {
        if let Some((_, copy)) = self
            .resources
            .iter()
            .find(|(r, _)| Arc::ptr_eq(r, resource))
        {
            return Arc::clone(copy);
        }
        let copy = Arc::new(resource.detached());
        self.resources
            .push((Arc::clone(resource), Arc::clone(&copy)));
        copy
    }

    fn scope(&mut self, scope: &Arc<Scope>) -> Arc<Scope> {
        if let Some((_, copy)) = self.scopes.iter().find(|(s, _)| Arc::ptr_eq(s, scope)) {
            return Arc::clone(copy);
        }
        let copy = Arc::new(scope.detached());
        self.scopes.push((Arc::clone(scope), Arc::clone(&copy)));
        copy
    }
}

impl Detach for Span {
    fn detach(&mut self, origins: &mut DetachedOrigins) {
        self.name = Str::from(&*self.name);
        self.service_name = Str::from(&*self.service_name);
        self.attributes = detached(&self.attributes);
        for event in &mut self.events {
            event.name = Str::from(&*event.name);
            event.attributes = detached(&event.attributes);
        }
        for link in &mut self.links {
            link.attributes = detached(&link.attributes);
        }
        self.resource = origins.resource(&self.resource);
        self.scope = origins.scope(&self.scope);
    }
}

impl Detach for LogRecord {
    fn detach(&mut self, origins: &mut DetachedOrigins) {
        self.severity_text = Str::from(&*self.severity_text);
        self.service_name = Str::from(&*self.service_name);
        self.body = self.body.detached();
        self.attributes = detached(&self.attributes);
        self.resource = origins.resource(&self.resource);
        self.scope = origins.scope(&self.scope);
    }
}

/// The instrumentation scope (library) that produced telemetry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Scope {
    pub name: Str,
    pub version: String,
    pub attributes: Vec<KeyValue>,
}

impl Scope {
    /// The scope with its strings copied out of any buffer they share.
    pub fn detached(&self) -> Scope {
        Scope {
            name: Str::from(&*self.name),
            version: self.version.clone(),
            attributes: detached(&self.attributes),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    pub fn as_otlp(self) -> i32 {
        match self {
            SpanKind::Unspecified => 0,
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    /// Jaeger's name for the kind (`span.kind` tag, `spanKind` parameter).
    pub fn as_jaeger(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    pub fn from_jaeger(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "" | "unspecified" => SpanKind::Unspecified,
            "internal" => SpanKind::Internal,
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn as_otlp(self) -> i32 {
        match self {
            StatusCode::Unset => 0,
            StatusCode::Ok => 1,
            StatusCode::Error => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub time_unix_nano: u64,
    pub name: Str,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

/// Which kind of telemetry a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Signal {
    Spans,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 2] = [Signal::Spans, Signal::Logs];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "logs",
        }
    }

    /// The signal [`Signal::as_str`] names.
    pub fn parse(name: &str) -> Option<Signal> {
        Signal::ALL
            .into_iter()
            .find(|signal| signal.as_str() == name)
    }

    /// The signal's place in per-signal arrays (`[spans, logs]`): queues, writers,
    /// the write-ahead log's checkpoints.
    pub fn ordinal(self) -> usize {
        match self {
            Signal::Spans => 0,
            Signal::Logs => 1,
        }
    }
}

/// One span, with the resource and scope it came with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub flags: u32,
    pub name: Str,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<SpanEvent>,
    pub dropped_events_count: u32,
    pub links: Vec<SpanLink>,
    pub dropped_links_count: u32,
    pub status_code: StatusCode,
    pub status_message: String,
    /// `service.name` of the resource, or `unknown_service`.
    pub service_name: Str,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

impl Span {
    pub fn duration_nanos(&self) -> u64 {
        self.end_time_unix_nano
            .saturating_sub(self.start_time_unix_nano)
    }
}

/// One structured log record, with the resource and scope it came with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When the event happened; the observed time, or the time of receipt, when
    /// the producer gave none.
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: Str,
    pub body: AnyValue,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub event_name: String,
    pub service_name: Str,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00.5Z`, `...+02:00`) to ns since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let err = || "expected an RFC 3339 time such as 2024-05-01T12:00:00Z".to_string();
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(err());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        text.get(range)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(err)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(err());
    }
    let mut rest = &text[19..];
    let mut nanos: i64 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let padded: String = fraction[..digits]
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        nanos = padded.parse().map_err(|_| err())?;
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.get(3..4) == Some(":") =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let part = |range| rest.get(range).and_then(|s: &str| s.parse::<i64>().ok());
            let (Some(hours), Some(minutes)) = (part(1..3), part(4..6)) else {
                return Err(err());
            };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return Err(err()),
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    if seconds < 0 {
        return Err("times before 1970 are not supported".into());
    }
    Ok(seconds as u64 * 1_000_000_000 + nanos as u64)
}

/// The service name OpenTelemetry SDKs report when none is configured.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The short severity name of an OTLP severity number (1-24), lower case.
pub fn severity_name(number: i32) -> Option<&'static str> {
    Some(match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => return None,
    })
}

/// The lowest severity number of a level name (`warn` -> 13), as `minSeverity` takes it.
pub fn severity_number_of(name: &str) -> Option<i32> {
    Some(match name.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" | "information" => 9,
        "warn" | "warning" => 13,
        "error" => 17,
        "fatal" | "critical" => 21,
        _ => return None,
    })
}

impl LogRecord {
    /// The record's level name: from its severity number, else from its text.
    pub fn level(&self) -> Cow<'static, str> {
        match severity_name(self.severity_number) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(self.severity_text.to_ascii_lowercase()),
        }
    }

    /// The body as text: strings as they are, anything else as JSON.
    pub fn body_text(&self) -> Cow<'_, str> {
        match &self.body {
            AnyValue::Str(s) => Cow::Borrowed(s),
            other => Cow::Owned(other.to_search_text()),
        }
    }
}

/// The source of "now", injectable so that retention and time windows are testable
/// without sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now_unix_nanos(&self) -> u64;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_nanos(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex() {
        let id = TraceId::from_hex("5B8EFFF798038103D269B633813FC60C").expect("valid");
        assert_eq!(id.to_hex(), "5b8efff798038103d269b633813fc60c");
        let (hi, lo) = id.halves();
        assert_eq!(TraceId::from_halves(hi, lo), id);
        assert_eq!(
            SpanId::from_hex("eee19b7ec3c1b174")
                .expect("valid")
                .to_hex(),
            "eee19b7ec3c1b174"
        );
    }

    #[test]
    fn short_hex_trace_ids_are_left_padded_like_jaeger() {
        let id = TraceId::from_hex("1f").expect("valid");
        assert_eq!(id.to_hex(), format!("{}1f", "0".repeat(30)));
    }

    #[test]
    fn bad_ids_say_what_is_wrong() {
        assert_eq!(TraceId::from_hex("xyz"), Err(IdError::NotHex('x')));
        assert_eq!(TraceId::from_hex(&"0".repeat(32)), Err(IdError::Zero));
        assert_eq!(
            TraceId::from_hex(&"a".repeat(33)),
            Err(IdError::HexLength {
                expected: 32,
                actual: 33
            })
        );
        assert_eq!(
            SpanId::from_bytes(&[1, 2, 3]),
            Err(IdError::Length {
                expected: 8,
                actual: 3
            })
        );
    }

    #[test]
    fn severity_levels_map_both_ways() {
        assert_eq!(severity_name(17), Some("error"));
        assert_eq!(severity_name(0), None);
        assert_eq!(severity_number_of("WARN"), Some(13));
        assert_eq!(severity_number_of("nope"), None);
    }
}
