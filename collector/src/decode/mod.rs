//! Decoding OTLP requests into Hopline's records, for the receivers and for the
//! write-ahead log's replay alike (so it sits below both): protobuf straight into
//! the model ([`protobuf`]), OTLP/JSON through the generated messages
//! ([`convert`]), both with the same checks and the same per-record limits
//! ([`limits`]); Zipkin v2 spans ([`zipkin`]), Loki pushes ([`loki`]) and
//! Elasticsearch bulk requests ([`elasticsearch`]) with those checks and limits too,
//! and syslog messages ([`syslog`]), which are never refused.

pub mod convert;
pub mod elasticsearch;
pub mod limits;
pub mod loki;
pub mod protobuf;
pub mod syslog;
pub mod zipkin;
