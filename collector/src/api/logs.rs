//! `/api/logs`: log search with the query language, newest first.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::traces::pairs;
use super::{ApiError, ApiState};
use crate::query::{log_json, params};

pub(super) async fn search(
    State(state): State<ApiState>,
    query: Result<
        axum::extract::Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Json<Value>, ApiError> {
    let filter = params::log_search(&pairs(query)?, state.now())?;
    let limit = filter.limit;
    let (records, total) = state
        .blocking(move |store| Ok(store.logs.search_logs(&store.log_schema, &filter)?))
        .await?;
    let data: Vec<Value> = records.iter().map(log_json).collect();
    Ok(Json(
        json!({ "data": data, "total": total, "limit": limit, "errors": null }),
    ))
}
