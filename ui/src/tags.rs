//! Tag filters as Jaeger's UI takes them: logfmt, `key=value key2="a value"`.

/// Parses logfmt into pairs; `Err` names what is wrong.
pub fn parse_logfmt(text: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        if i >= chars.len() || chars[i] != '=' {
            return Err(format!("'{key}' has no value: write key=value"));
        }
        i += 1;
        let value = if i < chars.len() && chars[i] == '"' {
            i += 1;
            let mut value = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(format!("the value of '{key}' has no closing quote")),
                    Some('\\') if i + 1 < chars.len() => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break value;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            chars[start..i].iter().collect()
        };
        if key.is_empty() {
            return Err("a tag needs a key before '='".into());
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// The pairs as the query API's `tags` parameter: a JSON object.
pub fn to_json(pairs: &[(String, String)]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// Percent-encodes a query-string value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `key=value&...` from pairs, skipping empty values: the URL of a page's state.
pub fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_with_quotes_and_escapes() {
        assert_eq!(
            parse_logfmt(r#"http.status_code=500 error=true note="two words" q="say \"hi\"""#)
                .expect("valid"),
            vec![
                ("http.status_code".into(), "500".into()),
                ("error".into(), "true".into()),
                ("note".into(), "two words".into()),
                ("q".into(), "say \"hi\"".into()),
            ]
        );
        assert!(parse_logfmt("lonely")
            .expect_err("an error")
            .contains("no value"));
        assert!(parse_logfmt("a=\"open")
            .expect_err("an error")
            .contains("closing quote"));
        assert_eq!(to_json(&[("a".into(), "1".into())]), r#"{"a":"1"}"#);
    }

    #[test]
    fn query_strings_round_trip_the_page_state() {
        let query = query_string(&[
            ("service", "order service".into()),
            ("tags", "a=\"b c\"".into()),
            ("limit", String::new()),
        ]);
        assert_eq!(query, "service=order%20service&tags=a%3D%22b%20c%22");
    }
}
