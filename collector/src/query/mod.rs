//! Reading: API parameters -> store filters, and stored records -> API JSON.
//! Pure functions, no HTTP types; `api` calls them and maps [`QueryError`].

pub mod jaeger;
pub mod logql;
pub mod otlp_json;
pub mod params;

use serde_json::{json, Value};

use crate::model::{attributes_to_json, LogRecord};

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Cannot be answered now (too many queries, out of time); retry later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::store::StoreError> for QueryError {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::search::Stop;
        match error {
            crate::store::StoreError::Cancelled(Stop::TimedOut) => QueryError::Unavailable(
                "the query ran out of time (--query-timeout) and was stopped: narrow it (a shorter time range, a service, more specific terms)".into(),
            ),
            crate::store::StoreError::Cancelled(Stop::ClientGone) => {
                QueryError::Unavailable("the query was stopped: its client went away".into())
            }
            other => QueryError::Internal(other.to_string()),
        }
    }
}

/// One log record as `/api/logs` returns it.
pub fn log_json(record: &LogRecord) -> Value {
    json!({
        "timeUnixNano": record.time_unix_nano.to_string(),
        "observedTimeUnixNano": record.observed_time_unix_nano.to_string(),
        "severityNumber": record.severity_number,
        "severityText": if record.severity_text.is_empty() { record.level().to_uppercase() } else { record.severity_text.to_string() },
        "body": match &record.body { crate::model::AnyValue::Str(s) => Value::String(s.to_string()), other => other.to_json() },
        "serviceName": record.service_name,
        "traceID": record.trace_id.map(|id| id.to_hex()),
        "spanID": record.span_id.map(|id| id.to_hex()),
        "eventName": record.event_name,
        "attributes": attributes_to_json(&record.attributes),
        "resource": attributes_to_json(&record.resource.attributes),
        "scope": { "name": record.scope.name, "version": record.scope.version },
    })
}
