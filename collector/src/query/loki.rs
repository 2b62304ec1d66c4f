//! Loki's query language, the subset Grafana's Loki data source and `logcli`
//! need, evaluated over Hopline's log records:
//!
//! - a stream selector: `{service_name="checkout", level=~"warn|error"}` with `=`,
//!   `!=`, `=~`, `!~` (regular expressions anchored at both ends, as Loki's);
//! - line filters: `|= "text"`, `!= "text"` (substrings), `|~ "re"`, `!~ "re"`;
//! - parsers: `| json`, `| logfmt` (their fields become labels, nested JSON keys
//!   joined with `_`);
//! - label filters: `| name = "v"`, `!=`, `=~`, `!~`, and numeric `>`, `>=`, `<`,
//!   `<=`, `==`, `!=` on a number; `| drop name, ...`;
//! - metric queries: `count_over_time(<log query> [5m])`, `rate(...)`, under
//!   `sum`, `count`, `min`, `max` or `avg`, `by (...)` or `without (...)`.
//!
//! Anything else (`| line_format`, `| pattern`, `| regexp`, `| unwrap`, binary
//! operators, other functions) is refused with an error that names it.
//!
//! A record's labels, as Loki's stream labels: its resource attributes (names
//! with every character other than a letter, digit or `_` replaced by `_`, so
//! `service.name` is `service_name`), `service_name`, and `level` (its severity's
//! name). Its attributes (Loki's structured metadata) may be filtered on as
//! labels too, after the stream's.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use crate::model::LogRecord;

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 8192;
/// How many stages a pipeline may have.
const MAX_STAGES: usize = 64;

/// A query that could not be parsed, or that asks for what is not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at column {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

/// A parsed query.
#[derive(Debug, Clone)]
pub enum Query {
    Log(LogQuery),
    Metric(MetricQuery),
    /// `vector(1)+vector(1)`: constants, as Grafana's health check asks.
    Constant(f64),
}

/// A stream selector and its pipeline.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub matchers: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
}

#[derive(Debug, Clone)]
pub enum MatchOp {
    Equal(String),
    NotEqual(String),
    Regex(Regex),
    NotRegex(Regex),
}

impl MatchOp {
    fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or("");
        match self {
            MatchOp::Equal(expected) => value == expected,
            MatchOp::NotEqual(expected) => value != expected,
            MatchOp::Regex(regex) => regex.is_match(value),
            MatchOp::NotRegex(regex) => !regex.is_match(value),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Stage {
    Contains(String),
    NotContains(String),
    LineRegex(Regex),
    NotLineRegex(Regex),
    Json,
    Logfmt,
    Label(Matcher),
    Number {
        name: String,
        op: Comparison,
        value: f64,
    },
    Drop(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    Equal,
    NotEqual,
}

#[derive(Debug, Clone)]
pub struct MetricQuery {
    pub function: RangeFunction,
    pub range: Duration,
    pub query: LogQuery,
    pub aggregation: Option<Aggregation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFunction {
    CountOverTime,
    Rate,
}

#[derive(Debug, Clone)]
pub struct Aggregation {
    pub op: AggregationOp,
    /// `by (...)`: the labels kept; `without (...)`: the labels dropped.
    pub grouping: Grouping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregationOp {
    Sum,
    Count,
    Min,
    Max,
    Avg,
}

#[derive(Debug, Clone)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

impl Grouping {
    /// The series labels `labels` fall under.
    pub fn apply(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match self {
            Grouping::By(names) => labels
                .iter()
                .filter(|(name, _)| names.contains(name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Grouping::Without(names) => labels
                .iter()
                .filter(|(name, _)| !names.contains(name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// A label name as Loki allows it: `service.name` is `service_name`.
pub fn label_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A record's stream labels.
pub fn stream_labels(record: &LogRecord) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = record
        .resource
        .attributes
        .iter()
        .map(|kv| (label_name(&kv.key), kv.value.to_search_text()))
        .collect();
    labels.insert("service_name".into(), record.service_name.to_string());
    let level = record.level();
    if !level.is_empty() {
        labels.insert("level".into(), level.into_owned());
    }
    labels
}

impl LogQuery {
    /// The `service_name` an `=` matcher asks for: storage narrows by it.
    pub fn service(&self) -> Option<&str> {
        self.matchers.iter().find_map(|m| match (&*m.name, &m.op) {
            ("service_name", MatchOp::Equal(value)) => Some(value.as_str()),
            _ => None,
        })
    }

    /// Whether the selector takes `labels` (a stream's).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers
            .iter()
            .all(|m| m.op.matches(labels.get(&m.name).map(String::as_str)))
    }

    /// The record's labels after the pipeline when it passes, else None.
    pub fn evaluate(&self, record: &LogRecord) -> Option<BTreeMap<String, String>> {
        let mut labels = stream_labels(record);
        if !self.selects(&labels) {
            return None;
        }
        let line = record.body_text();
        let metadata: BTreeMap<String, String> = record
            .attributes
            .iter()
            .map(|kv| (label_name(&kv.key), kv.value.to_search_text()))
            .collect();
        for stage in &self.stages {
            let pass = match stage {
                Stage::Contains(text) => line.contains(text.as_str()),
                Stage::NotContains(text) => !line.contains(text.as_str()),
                Stage::LineRegex(regex) => regex.is_match(&line),
                Stage::NotLineRegex(regex) => !regex.is_match(&line),
                Stage::Json => {
                    parse_json(&line, &mut labels);
                    true
                }
                Stage::Logfmt => {
                    parse_logfmt(&line, &mut labels);
                    true
                }
                Stage::Label(matcher) => {
                    let value = labels
                        .get(&matcher.name)
                        .or_else(|| metadata.get(&matcher.name));
                    matcher.op.matches(value.map(String::as_str))
                }
                Stage::Number { name, op, value } => {
                    let found = labels
                        .get(name)
                        .or_else(|| metadata.get(name))
                        .and_then(|v| v.trim().parse::<f64>().ok());
                    found.is_some_and(|found| match op {
                        Comparison::Greater => found > *value,
                        Comparison::GreaterEqual => found >= *value,
                        Comparison::Less => found < *value,
                        Comparison::LessEqual => found <= *value,
                        Comparison::Equal => found == *value,
                        Comparison::NotEqual => found != *value,
                    })
                }
                Stage::Drop(names) => {
                    labels.retain(|name, _| !names.contains(name));
                    true
                }
            };
            if !pass {
                return None;
            }
        }
        Some(labels)
    }
}

/// The fields of a JSON object line as labels (nested keys joined with `_`).
fn parse_json(line: &str, labels: &mut BTreeMap<String, String>) {
    fn walk(
        prefix: &str,
        value: &serde_json::Value,
        labels: &mut BTreeMap<String, String>,
        depth: usize,
    ) {
        match value {
            serde_json::Value::Object(object) if depth < 8 => {
                for (key, value) in object {
                    let name = if prefix.is_empty() {
                        label_name(key)
                    } else {
                        format!("{prefix}_{}", label_name(key))
                    };
                    walk(&name, value, labels, depth + 1);
                }
            }
            serde_json::Value::String(text) => {
                labels.insert(prefix.to_string(), text.clone());
            }
            serde_json::Value::Null => {}
            other => {
                labels.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(value @ serde_json::Value::Object(_)) => walk("", &value, labels, 0),
        _ => {
            labels.insert("__error__".into(), "JSONParserErr".into());
        }
    }
}

/// `key=value key="a value"` pairs of a line as labels.
fn parse_logfmt(line: &str, labels: &mut BTreeMap<String, String>) {
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let value = if let Some(after) = rest.strip_prefix('=') {
            if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                rest = &quoted[end.min(quoted.len())..];
                value
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                rest = &after[end..];
                after[..end].to_string()
            }
        } else {
            String::new()
        };
        if !key.is_empty() {
            labels.insert(label_name(key), value);
        }
        rest = rest.trim_start();
    }
}

/// Parses a LogQL query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let length = text.chars().count();
    if length > MAX_QUERY_CHARS {
        return Err(ParseError {
            column: MAX_QUERY_CHARS + 1,
            message: format!(
                "the query is {length} characters long; at most {MAX_QUERY_CHARS} are accepted"
            ),
        });
    }
    let mut parser = Parser { text, pos: 0 };
    let query = parser.query()?;
    parser.skip_space();
    if parser.pos < text.len() {
        return Err(parser.error(format!("unexpected '{}'", parser.rest_word())));
    }
    Ok(query)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            column: self.text[..self.pos].chars().count() + 1,
            message: message.into(),
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn rest_word(&self) -> String {
        self.rest()
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(20)
            .collect()
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), ParseError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(format!("expected '{token}', found '{}'", self.rest_word())))
        }
    }

    fn identifier(&mut self) -> Result<String, ParseError> {
        self.skip_space();
        let end = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        if end == 0 || self.rest().starts_with(|c: char| c.is_ascii_digit()) {
            return Err(self.error(format!(
                "expected a label name, found '{}'",
                self.rest_word()
            )));
        }
        let name = self.rest()[..end].to_string();
        self.pos += end;
        Ok(name)
    }

    /// A string in double quotes (Go escapes) or backticks (raw).
    fn string(&mut self) -> Result<String, ParseError> {
        self.skip_space();
        let start = self.pos;
        if let Some(raw) = self.rest().strip_prefix('`') {
            let end = raw
                .find('`')
                .ok_or_else(|| self.error("a string in backticks is not closed"))?;
            let value = raw[..end].to_string();
            self.pos += end + 2;
            return Ok(value);
        }
        let Some(quoted) = self.rest().strip_prefix('"') else {
            return Err(self.error(format!(
                "expected a string in quotes, found '{}'",
                self.rest_word()
            )));
        };
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = start + 1 + i + 1;
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, c)) => value.push(c),
                    None => break,
                },
                c => value.push(c),
            }
        }
        Err(self.error("a string in quotes is not closed"))
    }

    /// The regular expression of the string at `at` (an error points there).
    fn regex(&mut self, pattern: &str, anchored: bool, at: usize) -> Result<Regex, ParseError> {
        let pattern = if anchored {
            format!("^(?:{pattern})$")
        } else {
            pattern.to_string()
        };
        regex::RegexBuilder::new(&pattern)
            .size_limit(1 << 20)
            .nest_limit(64)
            .build()
            .map_err(|e| {
                self.pos = at;
                self.error(format!("invalid regular expression: {e}"))
            })
    }

    /// A string, and where it starts.
    fn string_at(&mut self) -> Result<(String, usize), ParseError> {
        self.skip_space();
        let at = self.pos;
        Ok((self.string()?, at))
    }

    fn match_op(&mut self, anchored: bool) -> Result<MatchOp, ParseError> {
        self.skip_space();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| self.rest().starts_with(op))
            .ok_or_else(|| {
                self.error(format!(
                    "expected =, !=, =~ or !~, found '{}'",
                    self.rest_word()
                ))
            })?;
        self.pos += op.len();
        let (value, at) = self.string_at()?;
        Ok(match op {
            "=" => MatchOp::Equal(value),
            "!=" => MatchOp::NotEqual(value),
            "=~" => MatchOp::Regex(self.regex(&value, anchored, at)?),
            _ => MatchOp::NotRegex(self.regex(&value, anchored, at)?),
        })
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        self.skip_space();
        if self.rest().starts_with('{') {
            return Ok(Query::Log(self.log_query()?));
        }
        if self.rest().starts_with("vector") {
            return Ok(Query::Constant(self.constant()?));
        }
        Ok(Query::Metric(self.metric_query()?))
    }

    /// `vector(N)` terms joined by `+`, `-`, `*` or `/`, left to right.
    fn constant(&mut self) -> Result<f64, ParseError> {
        let mut value = self.vector()?;
        loop {
            let op = ['+', '-', '*', '/']
                .into_iter()
                .find(|op| self.eat(&op.to_string()));
            let Some(op) = op else {
                return Ok(value);
            };
            let term = self.vector()?;
            value = match op {
                '+' => value + term,
                '-' => value - term,
                '*' => value * term,
                _ => value / term,
            };
        }
    }

    fn vector(&mut self) -> Result<f64, ParseError> {
        self.expect("vector")?;
        self.expect("(")?;
        self.skip_space();
        let end = self
            .rest()
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
            .unwrap_or(self.rest().len());
        let value: f64 = self.rest()[..end]
            .parse()
            .map_err(|_| self.error(format!("expected a number, found '{}'", self.rest_word())))?;
        self.pos += end;
        self.expect(")")?;
        Ok(value)
    }

    fn log_query(&mut self) -> Result<LogQuery, ParseError> {
        self.expect("{")?;
        let mut matchers = Vec::new();
        if !self.eat("}") {
            loop {
                let name = self.identifier()?;
                let op = self.match_op(true)?;
                matchers.push(Matcher { name, op });
                if self.eat("}") {
                    break;
                }
                self.expect(",")?;
            }
        }
        if matchers.is_empty() {
            return Err(self.error(
                "a stream selector needs at least one matcher, such as {service_name=\"checkout\"}",
            ));
        }
        let mut stages = Vec::new();
        loop {
            self.skip_space();
            let stage = if self.eat("|=") {
                Stage::Contains(self.string()?)
            } else if self.eat("!=") {
                Stage::NotContains(self.string()?)
            } else if self.eat("|~") {
                let (pattern, at) = self.string_at()?;
                Stage::LineRegex(self.regex(&pattern, false, at)?)
            } else if self.eat("!~") {
                let (pattern, at) = self.string_at()?;
                Stage::NotLineRegex(self.regex(&pattern, false, at)?)
            } else if self.eat("|") {
                self.pipe_stage()?
            } else {
                break;
            };
            stages.push(stage);
            if stages.len() > MAX_STAGES {
                return Err(self.error(format!("more than {MAX_STAGES} pipeline stages")));
            }
        }
        Ok(LogQuery { matchers, stages })
    }

    fn pipe_stage(&mut self) -> Result<Stage, ParseError> {
        self.skip_space();
        let column = self.pos;
        let name = self.identifier()?;
        match name.as_str() {
            "json" => return Ok(Stage::Json),
            "logfmt" => return Ok(Stage::Logfmt),
            "drop" => {
                let mut names = vec![self.identifier()?];
                while self.eat(",") {
                    names.push(self.identifier()?);
                }
                return Ok(Stage::Drop(names));
            }
            "line_format" | "label_format" | "pattern" | "regexp" | "unpack" | "unwrap"
            | "decolorize" | "keep" | "distinct" => {
                self.pos = column;
                return Err(self.error(format!("| {name} is not supported by Hopline's LogQL")));
            }
            _ => {}
        }
        self.skip_space();
        let numeric = [">=", "<=", "==", ">", "<"]
            .into_iter()
            .find(|op| self.rest().starts_with(op));
        let number_after_not_equal = self.rest().starts_with("!=")
            && self.rest()[2..]
                .trim_start()
                .starts_with(|c: char| c.is_ascii_digit() || c == '-');
        if let Some(op) = numeric.or(number_after_not_equal.then_some("!=")) {
            self.pos += op.len();
            self.skip_space();
            let end = self
                .rest()
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
                .unwrap_or(self.rest().len());
            let value: f64 = self.rest()[..end].parse().map_err(|_| {
                self.error(format!("expected a number, found '{}'", self.rest_word()))
            })?;
            self.pos += end;
            let op = match op {
                ">" => Comparison::Greater,
                ">=" => Comparison::GreaterEqual,
                "<" => Comparison::Less,
                "<=" => Comparison::LessEqual,
                "==" => Comparison::Equal,
                _ => Comparison::NotEqual,
            };
            return Ok(Stage::Number { name, op, value });
        }
        let op = self.match_op(true)?;
        Ok(Stage::Label(Matcher { name, op }))
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        let by = if self.eat("by") {
            true
        } else if self.eat("without") {
            false
        } else {
            return Ok(None);
        };
        self.expect("(")?;
        let mut names = Vec::new();
        if !self.eat(")") {
            loop {
                names.push(self.identifier()?);
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(Some(if by {
            Grouping::By(names)
        } else {
            Grouping::Without(names)
        }))
    }

    fn metric_query(&mut self) -> Result<MetricQuery, ParseError> {
        let column = self.pos;
        let name = self.identifier()?;
        let op = match name.as_str() {
            "sum" => Some(AggregationOp::Sum),
            "count" => Some(AggregationOp::Count),
            "min" => Some(AggregationOp::Min),
            "max" => Some(AggregationOp::Max),
            "avg" => Some(AggregationOp::Avg),
            _ => None,
        };
        let Some(op) = op else {
            self.pos = column;
            return self.range_function();
        };
        let before = self.grouping()?;
        self.expect("(")?;
        let mut inner = self.range_function()?;
        self.expect(")")?;
        let after = self.grouping()?;
        if inner.aggregation.is_some() {
            self.pos = column;
            return Err(self.error("nested aggregations are not supported by Hopline's LogQL"));
        }
        inner.aggregation = Some(Aggregation {
            op,
            grouping: before.or(after).unwrap_or(Grouping::By(Vec::new())),
        });
        Ok(inner)
    }

    fn range_function(&mut self) -> Result<MetricQuery, ParseError> {
        let column = self.pos;
        let name = self.identifier()?;
        let function = match name.as_str() {
            "count_over_time" => RangeFunction::CountOverTime,
            "rate" => RangeFunction::Rate,
            other => {
                self.pos = column;
                return Err(self.error(format!(
                    "{other} is not supported by Hopline's LogQL: count_over_time, rate, and sum, count, min, max, avg over them are"
                )));
            }
        };
        self.expect("(")?;
        let query = self.log_query()?;
        self.expect("[")?;
        self.skip_space();
        let end = self
            .rest()
            .find(']')
            .ok_or_else(|| self.error("a range such as [5m] is not closed"))?;
        let text = self.rest()[..end].trim().to_string();
        let range = crate::config::parse_duration(&text)
            .map_err(|e| self.error(format!("invalid range '{text}': {e}")))?;
        if range.is_zero() {
            return Err(self.error("the range must be longer than zero"));
        }
        self.pos += end + 1;
        self.expect(")")?;
        Ok(MetricQuery {
            function,
            range,
            query,
            aggregation: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{AnyValue, KeyValue, Resource, Scope, Str};

    fn record(body: &str, severity: i32) -> LogRecord {
        LogRecord {
            time_unix_nano: 1,
            observed_time_unix_nano: 1,
            severity_number: severity,
            severity_text: Str::from_static(""),
            body: AnyValue::Str(Str::from(body)),
            attributes: vec![KeyValue::new("user.id", AnyValue::Str("u-7".into()))],
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            service_name: Str::from_static("checkout"),
            resource: Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AnyValue::Str("checkout".into())),
                    KeyValue::new("k8s.namespace.name", AnyValue::Str("shop".into())),
                ],
                dropped_attributes_count: 0,
            }),
            scope: Arc::new(Scope {
                name: Str::from_static(""),
                version: String::new(),
                attributes: Vec::new(),
            }),
        }
    }

    fn log_query(text: &str) -> LogQuery {
        match parse(text).unwrap_or_else(|e| panic!("{text}: {e}")) {
            Query::Log(query) => query,
            _ => panic!("{text}: a log query"),
        }
    }

    #[test]
    fn selectors_line_filters_parsers_and_label_filters_select_records() {
        let json = record(
            r#"{"status":503,"route":{"path":"/pay"},"msg":"upstream down"}"#,
            17,
        );
        let logfmt = record(r#"level=warn duration=1.5 msg="slow call" path=/cart"#, 13);
        for (query, json_passes, logfmt_passes) in [
            (r#"{service_name="checkout"}"#, true, true),
            (
                r#"{service_name="checkout", k8s_namespace_name=~"sh.p"}"#,
                true,
                true,
            ),
            (r#"{service_name=~"check"}"#, false, false),
            (r#"{service_name="checkout", level="error"}"#, true, false),
            (r#"{service_name="checkout"} |= "upstream""#, true, false),
            (r#"{service_name="checkout"} != "upstream""#, false, true),
            (r#"{service_name="checkout"} |~ "slow|down""#, true, true),
            (r#"{service_name="checkout"} !~ "d.wn""#, false, true),
            (
                r#"{service_name="checkout"} | json | status >= 500"#,
                true,
                false,
            ),
            (
                r#"{service_name="checkout"} | json | route_path = "/pay""#,
                true,
                false,
            ),
            (
                r#"{service_name="checkout"} | logfmt | duration > 1"#,
                false,
                true,
            ),
            (
                r#"{service_name="checkout"} | logfmt | msg = "slow call""#,
                false,
                true,
            ),
            (r#"{service_name="checkout"} | user_id = "u-7""#, true, true),
            (
                r#"{service_name="checkout"} | json | __error__ != """#,
                false,
                true,
            ),
        ] {
            let parsed = log_query(query);
            assert_eq!(
                parsed.evaluate(&json).is_some(),
                json_passes,
                "{query} on json"
            );
            assert_eq!(
                parsed.evaluate(&logfmt).is_some(),
                logfmt_passes,
                "{query} on logfmt"
            );
        }
        let labels = log_query(r#"{service_name="checkout"} | json | drop route_path"#)
            .evaluate(&json)
            .expect("passes");
        assert_eq!(labels.get("status").map(String::as_str), Some("503"));
        assert_eq!(labels.get("level").map(String::as_str), Some("error"));
        assert!(!labels.contains_key("route_path"));
        assert_eq!(
            log_query(r#"{service_name="checkout"}"#).service(),
            Some("checkout")
        );
    }

    #[test]
    fn metric_queries_as_grafana_sends_them() {
        for (text, function, grouping) in [
            (
                r#"count_over_time({service_name="a"}[5m])"#,
                RangeFunction::CountOverTime,
                None,
            ),
            (
                r#"sum by (level) (count_over_time({service_name="a"} | drop __error__[1m]))"#,
                RangeFunction::CountOverTime,
                Some(vec!["level"]),
            ),
            (
                r#"sum(rate({job="x"} |= "error" [30s])) by (service_name)"#,
                RangeFunction::Rate,
                Some(vec!["service_name"]),
            ),
        ] {
            let Query::Metric(query) = parse(text).unwrap_or_else(|e| panic!("{text}: {e}")) else {
                panic!("{text}: a metric query");
            };
            assert_eq!(query.function, function, "{text}");
            match (&query.aggregation, grouping) {
                (None, None) => {}
                (
                    Some(Aggregation {
                        grouping: Grouping::By(names),
                        ..
                    }),
                    Some(expected),
                ) => {
                    assert_eq!(names, &expected, "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn constant_vectors_answer_grafanas_health_check() {
        let Query::Constant(value) = parse("vector(1)+vector(1)").expect("parsed") else {
            panic!("a constant");
        };
        assert_eq!(value, 2.0);
        let Query::Constant(value) = parse("vector(6) / vector(2) - vector(1)").expect("parsed")
        else {
            panic!("a constant");
        };
        assert_eq!(value, 2.0);
        assert!(parse("vector(x)").is_err());
    }

    #[test]
    fn what_is_not_supported_or_malformed_is_named_with_its_column() {
        for (text, column, message) in [
            (
                r#"{app="a"} | line_format "{{.msg}}""#,
                13,
                "| line_format is not supported",
            ),
            (
                r#"quantile_over_time(0.9, {app="a"} | unwrap d [5m])"#,
                1,
                "quantile_over_time is not supported",
            ),
            (r#"{app="a""#, 9, "expected ','"),
            (r#"{}"#, 3, "at least one matcher"),
            (r#"{app=~"(("}"#, 7, "invalid regular expression"),
            (r#"{app="a"} |= "x" extra"#, 18, "unexpected 'extra'"),
            (r#"rate({app="a"})"#, 15, "expected '['"),
            (r#"rate({app="a"}[soon])"#, 16, "invalid range 'soon'"),
            (r#"{app="a"} | status > high"#, 22, "expected a number"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.message.contains(message), "{text}: {error}");
            assert_eq!(error.column, column, "{text}: {error}");
        }
        let long = format!(r#"{{app="{}"}}"#, "a".repeat(MAX_QUERY_CHARS));
        assert!(parse(&long)
            .expect_err("long")
            .message
            .contains("at most 8192"));
    }
}
