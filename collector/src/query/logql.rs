//! The log query language: words, `"phrases"`, `field:value`, `field:"a phrase"`,
//! `AND` / `OR` / `NOT` (upper case), and parentheses. Words side by side mean AND;
//! AND binds tighter than OR. Fields: `service`, `severity` (or `level`), `body`,
//! `traceID`, `spanID`, and `attributes.KEY`.
//!
//! A malformed query is an error that names the column where it broke. Queries are
//! bounded ([`MAX_QUERY_CHARS`], [`MAX_DEPTH`]) so that no query can exhaust the
//! stack of the thread that parses it or builds its search.

use crate::store::pattern;
use crate::store::search::{LogExpr, LogField};

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 4096;
/// How deeply parentheses and `NOT`s may nest.
pub const MAX_DEPTH: usize = 32;

/// A query that could not be parsed, and where (1-based column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed query at column {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Word {
        field: Option<String>,
        text: String,
        phrase: bool,
    },
}

/// Parses a query; `Ok(None)` for an empty one.
pub fn parse(query: &str) -> Result<Option<LogExpr>, ParseError> {
    let length = query.chars().count();
    if length > MAX_QUERY_CHARS {
        return Err(ParseError {
            column: MAX_QUERY_CHARS + 1,
            message: format!(
                "the query is {length} characters long; at most {MAX_QUERY_CHARS} are accepted"
            ),
        });
    }
    let tokens = tokenize(query)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end_column: length + 1,
    };
    let expr = parser.or_expr()?;
    if let Some((token, column)) = parser.tokens.get(parser.pos) {
        let message = match token {
            Token::Close => "unexpected ')' without a matching '('".to_string(),
            other => format!("unexpected {}", describe(other)),
        };
        return Err(ParseError {
            column: *column,
            message,
        });
    }
    Ok(Some(expr))
}

fn describe(token: &Token) -> String {
    match token {
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::And => "AND".into(),
        Token::Or => "OR".into(),
        Token::Not => "NOT".into(),
        Token::Word { text, .. } => format!("'{text}'"),
    }
}

fn field_of(name: &str, column: usize) -> Result<LogField, ParseError> {
    Ok(match name {
        "service" | "service.name" => LogField::Service,
        "severity" | "level" => LogField::Severity,
        "body" => LogField::Body,
        "traceID" | "traceId" | "trace_id" => LogField::TraceId,
        "spanID" | "spanId" | "span_id" => LogField::SpanId,
        "pattern" => LogField::Pattern,
        _ => match name.strip_prefix("attributes.") {
            Some(key) if !key.is_empty() => LogField::Attribute(key.to_string()),
            _ => {
                return Err(ParseError {
                    column,
                    message: format!(
                        "unknown field '{name}' (use service, severity, body, traceID, spanID, pattern or attributes.KEY; quote text that contains ':')"
                    ),
                })
            }
        },
    })
}

fn tokenize(query: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let chars: Vec<char> = query.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let column = i + 1;
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '(' || c == ')' {
            tokens.push((if c == '(' { Token::Open } else { Token::Close }, column));
            i += 1;
            continue;
        }
        if c == '"' {
            let (text, next) = read_phrase(&chars, i)?;
            tokens.push((
                Token::Word {
                    field: None,
                    text,
                    phrase: true,
                },
                column,
            ));
            i = next;
            continue;
        }
        // A bare word, possibly `field:value` or `field:"phrase"`.
        let start = i;
        while i < chars.len()
            && !chars[i].is_whitespace()
            && !matches!(chars[i], '(' | ')' | '"' | ':')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        if i < chars.len() && chars[i] == ':' {
            if word.is_empty() {
                return Err(ParseError {
                    column,
                    message: "a ':' needs a field name before it".into(),
                });
            }
            i += 1;
            let value_column = i + 1;
            if i < chars.len() && chars[i] == '"' {
                let (text, next) = read_phrase(&chars, i)?;
                tokens.push((
                    Token::Word {
                        field: Some(word),
                        text,
                        phrase: true,
                    },
                    column,
                ));
                i = next;
            } else {
                let value_start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | '"')
                {
                    i += 1;
                }
                if value_start == i {
                    return Err(ParseError {
                        column: value_column,
                        message: format!("missing value after '{word}:'"),
                    });
                }
                let text: String = chars[value_start..i].iter().collect();
                tokens.push((
                    Token::Word {
                        field: Some(word),
                        text,
                        phrase: false,
                    },
                    column,
                ));
            }
            continue;
        }
        let token = match word.as_str() {
            "AND" => Token::And,
            "OR" => Token::Or,
            "NOT" => Token::Not,
            _ => Token::Word {
                field: None,
                text: word,
                phrase: false,
            },
        };
        tokens.push((token, column));
    }
    Ok(tokens)
}

/// Reads `"..."` starting at the opening quote; `\"` and `\\` escape.
fn read_phrase(chars: &[char], open: usize) -> Result<(String, usize), ParseError> {
    let mut text = String::new();
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                text.push(chars[i + 1]);
                i += 2;
            }
            '"' => return Ok((text, i + 1)),
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    Err(ParseError {
        column: open + 1,
        message: "unterminated phrase: missing closing '\"'".into(),
    })
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    /// Parentheses and `NOT`s open around the current position.
    depth: usize,
    end_column: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(token, _)| token)
    }

    fn column(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.end_column, |(_, column)| *column)
    }

    fn or_expr(&mut self) -> Result<LogExpr, ParseError> {
        let mut parts = vec![self.and_expr()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            parts.push(self.and_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            LogExpr::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<LogExpr, ParseError> {
        let mut parts = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(Token::And) => {
                    self.pos += 1;
                    parts.push(self.unary()?);
                }
                Some(Token::Open | Token::Not | Token::Word { .. }) => parts.push(self.unary()?),
                _ => break,
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            LogExpr::And(parts)
        })
    }

    /// Enters one more level of nesting at `column`, or says that it is too deep.
    fn nest(&mut self, column: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                column,
                message: format!("parentheses and NOTs nest more than {MAX_DEPTH} deep"),
            });
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<LogExpr, ParseError> {
        if self.peek() == Some(&Token::Not) {
            self.nest(self.column())?;
            self.pos += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(LogExpr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<LogExpr, ParseError> {
        let column = self.column();
        let Some((token, _)) = self.tokens.get(self.pos).cloned() else {
            return Err(ParseError {
                column,
                message: "the query ends where a term was expected".into(),
            });
        };
        self.pos += 1;
        match token {
            Token::Open => {
                self.nest(column)?;
                if self.peek() == Some(&Token::Close) {
                    return Err(ParseError {
                        column,
                        message: "empty parentheses".into(),
                    });
                }
                let inner = self.or_expr()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(ParseError {
                        column: self.column(),
                        message: format!("expected ')' to close the '(' at column {column}"),
                    });
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Token::Word {
                field,
                text,
                phrase,
            } => {
                let field = match field {
                    Some(name) => field_of(&name, column)?,
                    None => LogField::Body,
                };
                if field == LogField::Pattern && pattern::parse_id(&text).is_none() {
                    return Err(ParseError {
                        column,
                        message: format!(
                            "'{text}' is not a pattern id (16 hex digits, as /api/logs/patterns gives them)"
                        ),
                    });
                }
                Ok(if phrase {
                    LogExpr::Phrase { field, text }
                } else {
                    LogExpr::Term { field, text }
                })
            }
            other => Err(ParseError {
                column,
                message: format!("expected a term, found {}", describe(&other)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> LogExpr {
        LogExpr::Term {
            field: LogField::Body,
            text: text.into(),
        }
    }

    #[test]
    fn words_side_by_side_mean_and_and_or_binds_looser() {
        assert_eq!(
            parse("payment failed OR timeout").expect("valid"),
            Some(LogExpr::Or(vec![
                LogExpr::And(vec![body("payment"), body("failed")]),
                body("timeout")
            ]))
        );
    }

    #[test]
    fn fields_phrases_not_and_parentheses() {
        let expr = parse(
            r#"service:orders AND (severity:error OR "card declined") NOT attributes.user.id:42"#,
        )
        .expect("valid")
        .expect("non-empty");
        assert_eq!(
            expr,
            LogExpr::And(vec![
                LogExpr::Term {
                    field: LogField::Service,
                    text: "orders".into()
                },
                LogExpr::Or(vec![
                    LogExpr::Term {
                        field: LogField::Severity,
                        text: "error".into()
                    },
                    LogExpr::Phrase {
                        field: LogField::Body,
                        text: "card declined".into()
                    },
                ]),
                LogExpr::Not(Box::new(LogExpr::Term {
                    field: LogField::Attribute("user.id".into()),
                    text: "42".into()
                })),
            ])
        );
    }

    #[test]
    fn empty_queries_match_everything() {
        assert_eq!(parse("   ").expect("valid"), None);
    }

    #[test]
    fn malformed_queries_say_where_they_broke() {
        let cases = [
            ("(timeout", 9, "expected ')'"),
            ("timeout)", 8, "unexpected ')'"),
            ("a AND", 6, "ends where a term was expected"),
            ("\"unterminated", 1, "unterminated phrase"),
            ("colour:red", 1, "unknown field 'colour'"),
            ("service:", 9, "missing value"),
            ("()", 1, "empty parentheses"),
            ("OR a", 1, "expected a term, found OR"),
        ];
        for (query, column, message) in cases {
            let error = parse(query).expect_err(query);
            assert_eq!(error.column, column, "{query}: {error}");
            assert!(error.message.contains(message), "{query}: {error}");
        }
    }

    #[test]
    fn deep_nesting_and_long_queries_are_refused_before_they_recurse() {
        // What once overflowed a runtime thread's stack and aborted the process:
        // 3,000 parentheses (now too long as well) or 5,000 NOTs.
        assert!(parse(&format!("{}a{}", "(".repeat(3000), ")".repeat(3000))).is_err());
        let parentheses = format!("{}a{}", "(".repeat(2000), ")".repeat(2000));
        let error = parse(&parentheses).expect_err("too deep");
        assert!(error.message.contains("nest more than 32"), "{error}");
        assert_eq!(error.column, MAX_DEPTH + 1);
        let nots = format!("{}a", "NOT ".repeat(1000));
        let error = parse(&nots).expect_err("too deep");
        assert!(error.message.contains("nest more than 32"), "{error}");
        let long = format!("{}a", "NOT ".repeat(5000));
        let error = parse(&long).expect_err("too long");
        assert!(error.message.contains("at most 4096"), "{error}");

        // At the limit, and nested beside each other rather than inside, is fine.
        let deepest = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&deepest).is_ok());
        let wide = vec!["(NOT a)"; 200].join(" OR ");
        assert!(parse(&wide).is_ok());
        let mixed = format!(
            "{}a{}",
            "NOT (".repeat(MAX_DEPTH / 2),
            ")".repeat(MAX_DEPTH / 2)
        );
        assert!(parse(&mixed).is_ok());
        let over = format!(
            "{}a{}",
            "NOT (".repeat(MAX_DEPTH / 2 + 1),
            ")".repeat(MAX_DEPTH / 2 + 1)
        );
        assert!(parse(&over).is_err());
    }
}
