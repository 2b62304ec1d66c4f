//! The MCP server: Hopline's questions as tools for an assistant, through the
//! `rmcp` SDK. `/mcp` on the API port speaks MCP's streamable HTTP, stateless
//! (every request stands alone, so any search node answers it), behind the same
//! query token and tenant as the rest of the API; `hopline mcp` speaks MCP over
//! stdio and hands each tool call to a running Hopline's `/mcp`.
//!
//! Each tool takes the query API's parameters (checked by the same parsers) and
//! answers JSON sized for a model: a trace as a [digest](crate::query::digest)
//! (critical path, errors, slowest spans) with a link to its page, not its spans.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{Extension, ToolCallContext};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CallToolResult, ClientJsonRpcMessage,
    ClientRequest, ContentBlock, Implementation, ListToolsResult, NumberOrString,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, ServerJsonRpcMessage, ServerResult,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::TenantState;
use super::traces::{dependency_json, operations_json, operations_params};
use super::{ApiError, ApiState};
use crate::query::params::{self, TraceSearch};
use crate::query::{digest, ms, partial, red, rfc3339, QueryError};

/// Largest MCP request body.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Traces and log lines a tool lists by default, and at most.
const DEFAULT_ROWS: u32 = 10;
const MAX_TRACES: u32 = 50;
const MAX_LOG_LINES: u32 = 200;
/// Characters kept of a log line's body.
const BODY_CHARS: usize = 1_000;

const INSTRUCTIONS: &str = "Hopline holds the traces and logs of the services that report \
to it. Start with list_services, find_traces (slow or failing requests: sort by longest \
or errors) and search_logs; get_trace explains one trace (its critical path, errors and \
slowest spans); compare_traces puts a slow trace beside a fast one of the same request; \
service_map and service_health give the calls between services and their request rate, \
errors and latency. Durations take units (250ms, 1.5s); times are RFC 3339.";

/// The `/mcp` service, mounted under the API's authentication (the tools read
/// the caller's tenant from the request). Hopline checks `Host` itself
/// (`--allowed-hosts`); browsers' cross-site requests are refused by their
/// `Origin`.
pub fn service() -> StreamableHttpService<HoplineTools, NeverSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts()
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_REQUEST_BYTES);
    StreamableHttpService::new(
        || Ok(HoplineTools::new()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

fn server_config() -> ServerConfig {
    ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        .with_server_info(Implementation::new("hopline", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
}

/// The tools, answering from the tenant of the HTTP request that called them.
#[derive(Clone)]
pub struct HoplineTools {
    tool_router: ToolRouter<Self>,
}

impl Default for HoplineTools {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct OperationsArgs {
    /// The service whose operations (span names) to list.
    pub service: String,
    /// Only spans of this kind: server, client, producer, consumer or internal.
    pub span_kind: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct FindTracesArgs {
    /// Only traces with a span of this service.
    pub service: Option<String>,
    /// Only traces with a span of this name (needs service).
    pub operation: Option<String>,
    /// Span or resource attributes the span must have, e.g. {"http.response.status_code": "500", "error": "true"}.
    pub tags: Option<BTreeMap<String, String>>,
    /// Only spans at least this long, e.g. 500ms.
    pub min_duration: Option<String>,
    /// Only spans at most this long.
    pub max_duration: Option<String>,
    /// How far back to look from now, e.g. 15m, 1h, 2d (default 1h).
    pub lookback: Option<String>,
    /// Which come first: recent (default), oldest, longest, shortest, spans or errors.
    pub sort: Option<String>,
    /// How many traces, at most 50 (default 10).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TraceArgs {
    /// The trace id: 32 hexadecimal digits.
    pub trace_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CompareArgs {
    /// The first trace id, e.g. a fast one.
    pub trace_a: String,
    /// The second trace id, e.g. a slow one of the same request.
    pub trace_b: String,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct SearchLogsArgs {
    /// Hopline's log query: words and "phrases", key:value on attributes, severity:error, AND/OR/NOT.
    pub query: Option<String>,
    /// Only this service's lines.
    pub service: Option<String>,
    /// Only the lines of this trace.
    pub trace_id: Option<String>,
    /// Only lines at least this severe: trace, debug, info, warn, error or fatal.
    pub min_severity: Option<String>,
    /// How far back to look from now (default 1h).
    pub lookback: Option<String>,
    /// How many lines, newest first, at most 200 (default 10).
    pub limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct WindowArgs {
    /// How far back to look from now (default 1h).
    pub lookback: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct HealthArgs {
    /// Only this service (all when not given).
    pub service: Option<String>,
    /// One row per operation of each service instead of one per service.
    pub by_operation: Option<bool>,
    /// How far back to look from now (default 1h).
    pub lookback: Option<String>,
}

/// A tool's answer: JSON text, or the error a model can act on.
type ToolResult = Result<CallToolResult, ErrorData>;

fn answer(value: Value) -> ToolResult {
    Ok(CallToolResult::success(vec![ContentBlock::text(
        value.to_string(),
    )]))
}

/// A question Hopline refused (bad input, too costly, nothing found): a tool
/// error with the API's message, which the model reads.
fn refused(error: impl Into<ApiError>) -> ToolResult {
    Ok(CallToolResult::error(vec![ContentBlock::text(
        error.into().message().to_string(),
    )]))
}

/// The caller's tenant, which the API's authentication put on the request.
fn tenant(parts: &Parts) -> Result<ApiState, ErrorData> {
    parts
        .extensions
        .get::<TenantState>()
        .map(|scoped| scoped.0.clone())
        .ok_or_else(|| ErrorData::internal_error("the request's tenant was not resolved", None))
}

/// Where the caller reaches Hopline's pages: the scheme and `Host` it used.
fn base_url(state: &ApiState, parts: &Parts) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:16686");
    let scheme = if state.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// Query parameters from a tool's arguments: the given ones, by the API's names.
fn pairs<const N: usize>(given: [(&str, Option<String>); N]) -> Vec<(String, String)> {
    given
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_string(), value?)))
        .collect()
}

fn limit(given: Option<u32>, max: u32) -> Option<String> {
    Some(given.unwrap_or(DEFAULT_ROWS).clamp(1, max).to_string())
}

fn lookback(given: Option<String>) -> Option<String> {
    Some(given.unwrap_or_else(|| "1h".into()))
}

#[tool_router]
impl HoplineTools {
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    /// Every tool's definition (name, description, input schema).
    pub fn definitions() -> Vec<Tool> {
        Self::tool_router().list_all()
    }

    #[tool(description = "List the services that have sent traces.")]
    async fn list_services(&self, Extension(parts): Extension<Parts>) -> ToolResult {
        let state = tenant(&parts)?;
        match state.queries.services().await {
            Ok(services) => answer(json!({ "services": services })),
            Err(e) => refused(e),
        }
    }

    #[tool(description = "List the operations (span names) of a service, with their span kinds.")]
    async fn list_operations(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<OperationsArgs>,
    ) -> ToolResult {
        let state = tenant(&parts)?;
        let given = pairs([
            ("service", Some(args.service)),
            ("spanKind", args.span_kind),
        ]);
        let (service, kind) = match operations_params(&given, "service", "spanKind") {
            Ok(parsed) => parsed,
            Err(e) => return refused(e),
        };
        match state.queries.operations(service, kind).await {
            Ok(operations) => answer(json!({ "operations": operations_json(&operations) })),
            Err(e) => refused(e),
        }
    }

    #[tool(
        description = "Find traces by service, operation, attributes and duration: each with its root, start, duration, span and error counts, services and a link. Sort by longest or errors to find the slow or failing requests."
    )]
    async fn find_traces(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<FindTracesArgs>,
    ) -> ToolResult {
        let state = tenant(&parts)?;
        let tags = match args
            .tags
            .map(|tags| serde_json::to_string(&tags))
            .transpose()
        {
            Ok(tags) => tags,
            Err(e) => return refused(ApiError::bad_request(format!("tags: {e}"))),
        };
        let given = pairs([
            ("service", args.service),
            ("operation", args.operation),
            ("tags", tags),
            ("minDuration", args.min_duration),
            ("maxDuration", args.max_duration),
            ("lookback", lookback(args.lookback)),
            ("sort", args.sort),
            ("limit", limit(args.limit, MAX_TRACES)),
        ]);
        let filter = match params::trace_search(&given, state.now()) {
            Ok(TraceSearch::Filter(filter)) => filter,
            Ok(TraceSearch::Ids(_)) => unreachable!("no traceID was given"),
            Err(e) => return refused(e),
        };
        let page = match state.queries.trace_summaries(filter).await {
            Ok(page) => page,
            Err(e) => return refused(e),
        };
        let base = base_url(&state, &parts);
        let traces: Vec<Value> = page
            .summaries
            .iter()
            .map(|summary| {
                let id = summary.id.to_hex();
                json!({
                    "trace_id": id,
                    "root": format!("{}: {}", summary.root_service, summary.root_name),
                    "start": rfc3339(summary.start),
                    "duration_ms": ms(summary.end.saturating_sub(summary.start)),
                    "spans": summary.spans,
                    "errors": summary.errors,
                    "services": summary.services.iter().map(|s| &s.name).collect::<Vec<_>>(),
                    "link": format!("{base}/trace/{id}"),
                })
            })
            .collect();
        answer(json!({
            "matched": page.total.map_or(json!("more than the search counts"), |n| json!(n)),
            "traces": traces,
        }))
    }

    #[tool(
        description = "Explain one trace: its root, duration and services, the spans its critical path runs through, its errors with their messages, its slowest spans by self time, and a link to its waterfall."
    )]
    async fn get_trace(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<TraceArgs>,
    ) -> ToolResult {
        let state = tenant(&parts)?;
        let trace = match self.trace(&state, &args.trace_id).await {
            Ok(trace) => trace,
            Err(e) => return refused(e),
        };
        let link = format!("{}/trace/{}", base_url(&state, &parts), trace.id.to_hex());
        answer(digest::trace_digest(&trace, &link))
    }

    #[tool(
        description = "Compare two traces (e.g. a fast and a slow one of the same request), span path by span path: where time on the critical path, self time, span counts and errors differ, and what only one of them has."
    )]
    async fn compare_traces(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<CompareArgs>,
    ) -> ToolResult {
        let state = tenant(&parts)?;
        let (a, b) = match tokio::try_join!(
            self.trace(&state, &args.trace_a),
            self.trace(&state, &args.trace_b)
        ) {
            Ok(both) => both,
            Err(e) => return refused(e),
        };
        let link = format!(
            "{}/trace/{}...{}",
            base_url(&state, &parts),
            a.id.to_hex(),
            b.id.to_hex()
        );
        answer(digest::compare_digest(&a, &b, &link))
    }

    #[tool(
        description = "Search log lines, newest first: by query, service, trace id and minimum severity. Each line has its time, service, severity, body, attributes and trace id."
    )]
    async fn search_logs(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<SearchLogsArgs>,
    ) -> ToolResult {
        let state = tenant(&parts)?;
        let given = pairs([
            ("query", args.query),
            ("service", args.service),
            ("traceID", args.trace_id),
            ("minSeverity", args.min_severity),
            ("lookback", lookback(args.lookback)),
            ("limit", limit(args.limit, MAX_LOG_LINES)),
        ]);
        let filter = match params::log_search(&given, state.now()) {
            Ok(filter) => filter,
            Err(e) => return refused(e),
        };
        let page = match state.queries.search_logs(filter).await {
            Ok(page) => page,
            Err(e) => return refused(e),
        };
        let base = base_url(&state, &parts);
        let lines: Vec<Value> = page
            .records
            .iter()
            .map(|record| {
                let body = record.body_text();
                let body = match body.char_indices().nth(BODY_CHARS) {
                    Some((at, _)) => format!("{}…", &body[..at]),
                    None => body.into_owned(),
                };
                let attributes: BTreeMap<&str, String> = record
                    .attributes
                    .iter()
                    .map(|kv| (&*kv.key, kv.value.to_search_text()))
                    .collect();
                let mut line = json!({
                    "time": rfc3339(record.time_unix_nano),
                    "service": &*record.service_name,
                    "severity": crate::query::severity_label(record),
                    "body": body,
                    "attributes": attributes,
                });
                if let Some(trace_id) = record.trace_id {
                    line["trace_id"] = json!(trace_id.to_hex());
                    line["trace_link"] = json!(format!("{base}/trace/{}", trace_id.to_hex()));
                }
                line
            })
            .collect();
        answer(json!({ "matched": page.total, "lines": lines }))
    }

    #[tool(
        description = "The service map: which service calls which, how often, with errors and latency quantiles (ms)."
    )]
    async fn service_map(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<WindowArgs>,
    ) -> ToolResult {
        let state = tenant(&parts)?;
        let given = pairs([("lookback", lookback(args.lookback))]);
        let window = match params::time_range(&given, state.now()) {
            Ok(window) => window,
            Err(e) => return refused(e),
        };
        match state.queries.dependencies(window.0, window.1).await {
            Ok(links) => answer(json!({
                "calls": links.iter().map(dependency_json).collect::<Vec<_>>(),
            })),
            Err(e) => refused(e),
        }
    }

    #[tool(
        description = "Service health from the spans: requests per second, error rate and latency quantiles (ms) per service, or per operation."
    )]
    async fn service_health(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<HealthArgs>,
    ) -> ToolResult {
        let state = tenant(&parts)?;
        let lookback = lookback(args.lookback);
        let given = pairs([
            ("service", args.service),
            ("groupByOperation", args.by_operation.map(|b| b.to_string())),
            // One bucket: the whole range.
            ("step", lookback.clone()),
            ("lookback", lookback),
        ]);
        let request = match red::red_request(&given, state.now()) {
            Ok(request) => request,
            Err(e) => return refused(e),
        };
        let metrics = match state.queries.span_metrics(request.query.clone()).await {
            Ok(metrics) => metrics,
            Err(e) => return refused(e),
        };
        let mut body = red::red_json(&request, &metrics);
        let rows: Vec<Value> = body["series"]
            .as_array_mut()
            .map(std::mem::take)
            .unwrap_or_default()
            .into_iter()
            .map(|mut series| {
                json!({
                    "service": series["service"].take(),
                    "operation": series["operation"].take(),
                    "figures": series["total"].take(),
                })
            })
            .collect();
        answer(json!({ "services": rows }))
    }
}

impl HoplineTools {
    /// One trace by id, or why not.
    async fn trace(
        &self,
        state: &ApiState,
        id: &str,
    ) -> Result<crate::query::service::Trace, QueryError> {
        let id = params::parse_trace_id(id)?;
        state.queries.trace(id).await?.ok_or_else(|| {
            QueryError::NotFound(format!(
                "no span of trace {} is stored (wrong id, not yet sent, or past retention)",
                id.to_hex()
            ))
        })
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HoplineTools {
    fn get_info(&self) -> ServerConfig {
        server_config()
    }

    /// The tool's answer, with what the query service left out of it (a node
    /// that did not answer, in cluster mode) as a last text block.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let call = ToolCallContext::new(self, request, context);
        let (answer, notes) = partial::gathering(self.tool_router.call(call)).await;
        match answer {
            Ok(CallToolResponse::Complete(mut result)) if !notes.is_empty() => {
                result.content.push(ContentBlock::text(format!(
                    "warning, a partial answer: {}",
                    notes.join("; ")
                )));
                Ok(result.into())
            }
            other => other,
        }
    }
}

/// `hopline mcp`: MCP over stdio for an assistant on this machine, each tool
/// call handed to the `/mcp` of the Hopline at `url`.
pub struct StdioBridge {
    http: reqwest_rustls::Client,
    endpoint: String,
    headers: HeaderMap,
    tools: Vec<Tool>,
}

impl StdioBridge {
    /// `url`: the Hopline API (e.g. `http://127.0.0.1:16686`); `token` its query
    /// token; `tenant` one of the token's tenants when it reaches several; `ca`
    /// CA certificates (PEM) to trust beside the system's, for `https://`.
    pub fn new(
        url: &str,
        token: Option<&str>,
        tenant: Option<&str>,
        ca: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| anyhow::anyhow!("the token holds characters a header cannot"))?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        if let Some(tenant) = tenant {
            let value = HeaderValue::from_str(tenant)
                .map_err(|_| anyhow::anyhow!("the tenant holds characters a header cannot"))?;
            headers.insert("x-scope-orgid", value);
        }
        let url = reqwest_rustls::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("--url '{url}' is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("--url '{url}': expected http:// or https://");
        }
        let mut http =
            reqwest_rustls::Client::builder().timeout(std::time::Duration::from_secs(120));
        if let Some(path) = ca {
            let pem =
                std::fs::read(path).map_err(|e| anyhow::anyhow!("--ca {}: {e}", path.display()))?;
            for certificate in reqwest_rustls::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow::anyhow!("--ca {}: not PEM certificates: {e}", path.display())
            })? {
                http = http.add_root_certificate(certificate);
            }
        }
        Ok(Self {
            http: http.build()?,
            endpoint: format!("{}/mcp", url.as_str().trim_end_matches('/')),
            headers,
            tools: HoplineTools::definitions(),
        })
    }

    /// Serves MCP on stdin/stdout until the client closes it.
    pub async fn run(self) -> anyhow::Result<()> {
        let running = rmcp::ServiceExt::serve(self, rmcp::transport::stdio()).await?;
        running.waiting().await?;
        Ok(())
    }

    async fn forward(&self, mut params: CallToolRequestParams) -> Result<CallToolResult, String> {
        // The remote negotiates per HTTP request; this side's session metadata
        // is not its business.
        params.meta = None;
        let message = ClientJsonRpcMessage::request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            NumberOrString::Number(1),
        );
        let response = self
            .http
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&message).map_err(|e| e.to_string())?)
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.endpoint))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{}: the answer broke off: {e}", self.endpoint))?;
        if !status.is_success() {
            return Err(format!(
                "{} answered {status}: {}",
                self.endpoint,
                text.trim()
            ));
        }
        // JSON, or (should the server stream) the last `data:` event of SSE.
        let json = text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("data:"))
            .unwrap_or(&text);
        let message: ServerJsonRpcMessage = serde_json::from_str(json.trim())
            .map_err(|e| format!("{}: not an MCP answer: {e}", self.endpoint))?;
        match message.into_result() {
            Some((Ok(ServerResult::CallToolResult(result)), _)) => Ok(result),
            Some((Err(error), _)) => Err(error.message.to_string()),
            _ => Err(format!("{}: not a tool call's answer", self.endpoint)),
        }
    }
}

impl ServerHandler for StdioBridge {
    fn get_info(&self) -> ServerConfig {
        server_config()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        match self.forward(request).await {
            Ok(result) => Ok(result.into()),
            Err(message) => Err(ErrorData::internal_error(message, None)),
        }
    }
}
