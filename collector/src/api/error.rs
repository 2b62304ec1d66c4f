//! Errors of the query API, mapped to a status once: Jaeger's envelope
//! `{"data":null,"errors":[{"code":N,"msg":"..."}]}` with the same HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::query::QueryError;
use crate::store::search::Stop;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// What the client is told.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 401 with `WWW-Authenticate: Bearer`: no credential, or an unknown one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// 403: a known credential that may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 503 with a `Retry-After`: the query may be answered later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::BadRequest(message) => ApiError::bad_request(message),
            QueryError::NotFound(message) => ApiError::not_found(message),
            QueryError::TooMany { .. } => ApiError::unavailable(error.to_string()),
            QueryError::Unavailable(message) => ApiError::unavailable(message),
            QueryError::Store(StoreError::Cancelled(Stop::TimedOut)) => ApiError::unavailable(
                "the query ran out of time (--query-timeout) and was stopped: narrow it (a shorter time range, a service, more specific terms)",
            ),
            QueryError::Store(StoreError::Cancelled(Stop::ClientGone)) => {
                ApiError::unavailable("the query was stopped: its client went away")
            }
            QueryError::Store(StoreError::TooBig(message)) => ApiError::bad_request(message),
            QueryError::Store(_) | QueryError::Worker(_) => ApiError::internal(format!("{error:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.message, "query failed");
            "internal error; see the collector's log".to_string()
        } else {
            self.message
        };
        let body = json!({
            "data": null,
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": [{ "code": self.status.as_u16(), "msg": message }],
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
