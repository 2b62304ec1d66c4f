//! Decoding OTLP requests into Hopline's records, for the receivers and for the
//! write-ahead log's replay alike (so it sits below both): protobuf straight into
//! the model ([`protobuf`]), OTLP/JSON through the generated messages
//! ([`convert`]), both with the same checks and the same per-record limits
//! ([`limits`]).

pub mod convert;
pub mod limits;
pub mod protobuf;
