//! Patterns of span names: a service whose span names carry ids
//! (`GET /users/123`, `GET /users/124`, ...) has a few patterns
//! (`GET /users/<num>`) where it has thousands of operations. The masker is the
//! log bodies' ([`crate::store::pattern`]), applied to the operation names the
//! service already lists, so nothing is stored for them.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::service::QueryService;
use super::QueryError;
use crate::model::SpanKind;
use crate::store::pattern;
use crate::store::search::TraceFilter;

/// Names one operation pattern may stand for in a search.
pub const MAX_PATTERN_OPERATIONS: usize = 10_000;
/// Example names an answer gives per pattern.
const EXAMPLES: usize = 3;

/// The span names of one pattern of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationPattern {
    pub id: u64,
    pub template: String,
    /// Distinct span names (operations) with this template.
    pub operations: usize,
    /// The first few of them, in name order.
    pub examples: Vec<String>,
}

/// The patterns of `service`'s span names (of `kind`, if given), those that stand for the most names
/// first.
pub async fn operation_patterns(
    queries: &dyn QueryService,
    service: String,
    kind: Option<SpanKind>,
) -> Result<Vec<OperationPattern>, QueryError> {
    let mut names: Vec<String> = queries
        .operations(service, kind)
        .await?
        .into_iter()
        .map(|operation| operation.name)
        .collect();
    names.dedup();
    let mut by_id: HashMap<u64, OperationPattern> = HashMap::new();
    for name in names {
        let template = pattern::template(&name);
        let id = pattern::template_id(&template);
        let entry = by_id.entry(id).or_insert_with(|| OperationPattern {
            id,
            template,
            operations: 0,
            examples: Vec::new(),
        });
        entry.operations += 1;
        if entry.examples.len() < EXAMPLES {
            entry.examples.push(name);
        }
    }
    let mut patterns: Vec<OperationPattern> = by_id.into_values().collect();
    patterns.sort_by(|a, b| {
        b.operations
            .cmp(&a.operations)
            .then_with(|| a.template.cmp(&b.template))
    });
    Ok(patterns)
}

pub fn operation_patterns_json(patterns: &[OperationPattern]) -> Value {
    json!(patterns
        .iter()
        .map(|p| json!({
            "id": pattern::format_id(p.id),
            "template": p.template,
            "operations": p.operations,
            "examples": p.examples,
        }))
        .collect::<Vec<_>>())
}

/// Fills in the span names a search's `operation_pattern` stands for: those of
/// its service, or of every service when it names none.
pub async fn resolve_operation_pattern(
    queries: &dyn QueryService,
    filter: &mut TraceFilter,
) -> Result<(), QueryError> {
    let Some(id) = filter.operation_pattern else {
        return Ok(());
    };
    let services = match &filter.service {
        Some(service) => vec![service.clone()],
        None => queries.services().await?,
    };
    let mut names = Vec::new();
    for service in services {
        for operation in queries.operations(service, None).await? {
            if pattern::pattern_id(&operation.name) == id && names.last() != Some(&operation.name) {
                names.push(operation.name);
            }
        }
        if names.len() > MAX_PATTERN_OPERATIONS {
            return Err(QueryError::BadRequest(format!(
                "operation pattern {} stands for more than {MAX_PATTERN_OPERATIONS} span names: \
                 name a service, or search by operation",
                pattern::format_id(id)
            )));
        }
    }
    names.sort_unstable();
    names.dedup();
    filter.operations = names;
    Ok(())
}
