//! Server side: where the query API is, and how the server functions reach it.

use std::sync::OnceLock;

use leptos::prelude::ServerFnError;
use serde_json::Value;

/// Where the query API listens (`http://127.0.0.1:16686`), provided by `hopline` as
/// context to the pages and the server functions of its router (one per server, so
/// several collectors in one process, as in tests, each read their own).
#[derive(Clone, Debug)]
pub struct ApiBase(pub String);

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// GET a query API path; a 404 is `None`, any other error says what the API said.
pub async fn get_optional(path: &str) -> Result<Option<Value>, ServerFnError> {
    let base = leptos::prelude::use_context::<ApiBase>()
        .ok_or_else(|| ServerFnError::new("the UI is not connected to a query API"))?
        .0;
    let response = client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .map_err(|e| ServerFnError::new(format!("query API unreachable: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.as_u16() == 404 {
        return Ok(None);
    }
    if !status.is_success() {
        let message = body["errors"][0]["msg"]
            .as_str()
            .unwrap_or("query failed")
            .to_string();
        return Err(ServerFnError::new(message));
    }
    Ok(Some(body))
}

pub async fn get(path: &str) -> Result<Value, ServerFnError> {
    get_optional(path)
        .await?
        .ok_or_else(|| ServerFnError::new(format!("not found: {path}")))
}
