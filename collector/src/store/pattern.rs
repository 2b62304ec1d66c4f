//! Log patterns: the template of a log body, with its variable parts masked, and
//! the pattern id every log record carries in a column (a hash of its template).
//!
//! The template is what a Drain-style parser keeps of a line before it clusters:
//! the words stay, and what varies between two lines of the same statement
//! (numbers, ids, hex, IPs, quoted strings, durations, sizes, times, e-mail
//! addresses, path segments and values with digits) becomes a placeholder. The
//! masking is a pure function of the line, so the id of a line is the same on
//! every node, after every restart and merge, and can be searched as a term
//! (`pattern:<id>`) like any field; no tree of clusters has to be shared.
//!
//! Bounded: the first [`MAX_TOKENS`] tokens make the template, a token longer than
//! [`MAX_TOKEN_BYTES`] is a variable, and a quoted string is looked for in the
//! next [`MAX_QUOTED_BYTES`] only, so a line costs time linear in what is read.

use std::fmt::{self, Write};

/// Tokens (runs between white space) that make a template; the rest of a line is
/// summed up as `…`.
pub const MAX_TOKENS: usize = 64;
/// A token longer than this is a variable (a payload, a key, a blob).
pub const MAX_TOKEN_BYTES: usize = 128;
/// How far a quote looks for its closing quote.
pub const MAX_QUOTED_BYTES: usize = 256;

/// The placeholder of a variable that has no more precise kind.
pub const ANY: &str = "<*>";

/// The template of a log body: `order 8812 took 12.5ms` gives
/// `order <num> took <duration>`.
pub fn template(body: &str) -> String {
    let mut out = String::with_capacity(body.len().min(256));
    // Writing to a String cannot fail.
    let _ = mask(body, &mut out);
    out
}

/// The pattern id of a log body: the FNV-1a hash (64 bits) of its template,
/// computed without building it.
pub fn pattern_id(body: &str) -> u64 {
    let mut hash = Fnv(FNV_OFFSET);
    let _ = mask(body, &mut hash);
    hash.0
}

/// The pattern id of a template (what [`pattern_id`] gives for its lines).
pub fn template_id(template: &str) -> u64 {
    let mut hash = Fnv(FNV_OFFSET);
    let _ = hash.write_str(template);
    hash.0
}

/// A pattern id as queries and answers spell it: 16 hex digits.
pub fn format_id(id: u64) -> String {
    format!("{id:016x}")
}

/// The id in `pattern:<id>`: 16 hex digits (fewer are taken as leading zeros).
pub fn parse_id(text: &str) -> Option<u64> {
    (!text.is_empty() && text.len() <= 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

struct Fnv(u64);

impl Write for Fnv {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Ok(())
    }
}

/// Writes the template of `body` to `out`: tokens separated by one space, each
/// masked, a run of the same placeholder written once (lists of any length give
/// one template).
fn mask(body: &str, out: &mut impl Write) -> fmt::Result {
    let mut rest = body;
    let mut tokens = 0;
    let mut last_placeholder: Option<&'static str> = None;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(());
        }
        if tokens == MAX_TOKENS {
            return out.write_str(" …");
        }
        let end = token_end(rest);
        let (token, after) = rest.split_at(end);
        rest = after;
        let masked = Masked::of(token);
        if let Masked::Placeholder(placeholder) = masked {
            if last_placeholder == Some(placeholder) {
                continue;
            }
            last_placeholder = Some(placeholder);
        } else {
            last_placeholder = None;
        }
        if tokens > 0 {
            out.write_char(' ')?;
        }
        masked.write(token, out)?;
        tokens += 1;
    }
}

/// Where the token at the start of `text` ends: at white space outside a quoted
/// string (a quote opens one at the start of a token or after `=` or `:`).
fn token_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte.is_ascii_whitespace() {
            return at;
        }
        if is_quote(byte) && (at == 0 || matches!(bytes[at - 1], b'=' | b':')) {
            let window = &bytes[at + 1..bytes.len().min(at + 1 + MAX_QUOTED_BYTES)];
            if let Some(close) = window.iter().position(|&b| b == byte) {
                at += close + 2;
                continue;
            }
        }
        at += 1;
    }
    bytes.len()
}

fn is_quote(byte: u8) -> bool {
    matches!(byte, b'"' | b'\'' | b'`')
}

/// What a token becomes in the template.
enum Masked {
    /// The whole token is one variable.
    Placeholder(&'static str),
    /// Parts of it are: written piece by piece.
    Mixed,
    /// Nothing varies.
    Verbatim,
}

impl Masked {
    fn of(token: &str) -> Masked {
        if token.len() > MAX_TOKEN_BYTES {
            return Masked::Placeholder(ANY);
        }
        let (_, core, _) = split_punctuation(token);
        if core.is_empty() {
            return Masked::Verbatim;
        }
        if let Some(kind) = value_kind(core) {
            return if core.len() == token.len() {
                Masked::Placeholder(kind)
            } else {
                Masked::Mixed
            };
        }
        let quoted_value = core
            .as_bytes()
            .windows(2)
            .any(|pair| matches!(pair[0], b'=' | b':') && is_quote(pair[1]));
        if quoted_value || core.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
            Masked::Mixed
        } else if core.bytes().any(|b| b.is_ascii_whitespace()) {
            // A quoted string with more after it (`"a b"c`): what it holds varies.
            Masked::Placeholder(ANY)
        } else {
            Masked::Verbatim
        }
    }

    fn write(&self, token: &str, out: &mut impl Write) -> fmt::Result {
        match self {
            Masked::Placeholder(placeholder) => out.write_str(placeholder),
            Masked::Verbatim => out.write_str(token),
            Masked::Mixed => {
                let (before, core, after) = split_punctuation(token);
                out.write_str(before)?;
                write_core(core, out)?;
                out.write_str(after)
            }
        }
    }
}

/// A token's leading brackets and trailing punctuation, kept as they are, and
/// what lies between.
fn split_punctuation(token: &str) -> (&str, &str, &str) {
    let start = token
        .find(|c: char| !matches!(c, '(' | '[' | '{' | '<'))
        .unwrap_or(token.len());
    let (before, rest) = token.split_at(start);
    let core = rest.trim_end_matches([')', ']', '}', '>', ',', ';', ':', '.', '!', '?']);
    (before, core, &rest[core.len()..])
}

fn is_quoted(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 2 && is_quote(bytes[0]) && bytes[bytes.len() - 1] == bytes[0]
}

/// A token's core with its variable parts masked: `key=value` keeps the key,
/// paths and URLs keep their constant segments.
fn write_core(core: &str, out: &mut impl Write) -> fmt::Result {
    if let Some(kind) = value_kind(core) {
        return out.write_str(kind);
    }
    if let Some((key, value)) = core.split_once(['=', ':']) {
        if is_key(key) {
            out.write_str(key)?;
            out.write_str(&core[key.len()..=key.len()])?;
            return write_core(value, out);
        }
    }
    if core.contains(['/', '?', '&', ',']) {
        return write_path(core, out);
    }
    out.write_str(ANY)
}

/// A path, URL or list: separators kept, each segment masked on its own.
fn write_path(text: &str, out: &mut impl Write) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(['/', '?', '&', ',', '=']) {
        write_segment(&rest[..at], out)?;
        out.write_str(&rest[at..=at])?;
        rest = &rest[at + 1..];
    }
    write_segment(rest, out)
}

fn write_segment(segment: &str, out: &mut impl Write) -> fmt::Result {
    if segment.is_empty() {
        return Ok(());
    }
    match value_kind(segment) {
        Some(kind) => out.write_str(kind),
        None if segment.bytes().any(|b| b.is_ascii_digit()) => out.write_str(ANY),
        None => out.write_str(segment),
    }
}

/// A name before `=` or `:` that is kept: letters first, then letters, digits,
/// `_ - .`, at most 64 bytes (`user_id`, `http.status_code`).
fn is_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The placeholder of a value that is wholly one kind of variable.
fn value_kind(value: &str) -> Option<&'static str> {
    if is_quoted(value) {
        return Some("\"<*>\"");
    }
    if value.contains('@') {
        return is_email(value).then_some("<email>");
    }
    if !value.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    if is_number(value) {
        return Some("<num>");
    }
    if let Some(unit) = number_prefix(value).and_then(|n| value.get(n..)) {
        if DURATION_UNITS.contains(&unit) {
            return Some("<duration>");
        }
        if SIZE_UNITS
            .iter()
            .any(|size| size.eq_ignore_ascii_case(unit))
        {
            return Some("<size>");
        }
    }
    if is_uuid(value) {
        return Some("<uuid>");
    }
    if is_ip(value) {
        return Some("<ip>");
    }
    if is_hex(value) {
        return Some("<hex>");
    }
    if is_time(value) {
        return Some("<time>");
    }
    None
}

const DURATION_UNITS: [&str; 13] = [
    "ns", "us", "µs", "μs", "ms", "s", "sec", "secs", "m", "min", "mins", "h", "d",
];
const SIZE_UNITS: [&str; 9] = ["b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib"];

/// The length of the number at the start of `text` (sign, digits, one fraction),
/// when there is one.
fn number_prefix(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    at += digits;
    if bytes.get(at) == Some(&b'.') {
        let fraction = bytes[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if fraction > 0 {
            at += 1 + fraction;
        }
    }
    Some(at)
}

fn is_number(text: &str) -> bool {
    let Some(mut at) = number_prefix(text) else {
        return false;
    };
    let bytes = text.as_bytes();
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(at + 1), Some(b'-' | b'+')));
        let digits = bytes[(at + 1 + sign).min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            at += 1 + sign + digits;
        }
    }
    if bytes.get(at) == Some(&b'%') {
        at += 1;
    }
    at == bytes.len()
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// An IPv4 address (with an optional port) or an IPv6 one.
fn is_ip(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if host.contains('.') => (host, Some(port)),
        _ => (text, None),
    };
    if port.is_some_and(|port| port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let mut octets = 0;
    let ipv4 = host.split('.').all(|o| {
        octets += 1;
        !o.is_empty() && o.len() <= 3 && o.bytes().all(|b| b.is_ascii_digit())
    });
    if ipv4 && octets == 4 {
        return true;
    }
    (text.contains("::") || text.matches(':').count() == 7)
        && text.len() <= 45
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
}

/// Hex of at least 6 digits (`0x` optional): ids, hashes, addresses.
fn is_hex(text: &str) -> bool {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    (digits.len() >= 6 || digits.len() < text.len())
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A date, time or timestamp: digits with `- : . T Z +` between them.
fn is_time(text: &str) -> bool {
    text.bytes().filter(|b| b.is_ascii_digit()).count() >= 4
        && text.contains([':', '-'])
        && text.bytes().all(|b| {
            b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b'T' | b'Z' | b'+' | b'/')
        })
}

fn is_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn masks(body: &str, expected: &str) {
        assert_eq!(template(body), expected, "template of {body:?}");
        assert_eq!(pattern_id(body), template_id(expected), "id of {body:?}");
    }

    #[test]
    fn numbers_ids_and_times_are_masked_and_words_kept() {
        masks(
            "order 8812 placed for 3 items",
            "order <num> placed for <num> items",
        );
        masks(
            "took 12.5ms (budget 250 ms)",
            "took <duration> (budget <num> ms)",
        );
        masks("retrying in 2s", "retrying in <duration>");
        masks("cache at 97.5% of 512MiB", "cache at <num> of <size>");
        masks(
            "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
            "trace <hex> span <hex>",
        );
        masks(
            "request 123e4567-e89b-12d3-a456-426614174000 done",
            "request <uuid> done",
        );
        masks("pointer 0x7ffd5e8c", "pointer <hex>");
        masks(
            "at 2026-12-04T12:00:01.123Z and 12:00:02",
            "at <time> and <time>",
        );
        masks("user not found", "user not found");
        masks("", "");
    }

    #[test]
    fn addresses_paths_and_pairs_keep_their_constant_parts() {
        masks(
            "connected to 10.0.3.17:5672 from 192.168.1.1",
            "connected to <ip> from <ip>",
        );
        masks("listening on ::1 port 4317", "listening on <ip> port <num>");
        masks(
            "GET /users/123/orders?page=2&sort=new",
            "GET /users/<num>/orders?page=<num>&sort=new",
        );
        masks(
            "calling http://10.0.0.1:8080/path/42",
            "calling http://<ip>/path/<num>",
        );
        masks(
            "mail to ada@example.com rejected",
            "mail to <email> rejected",
        );
        masks(
            "user_id=42 status=ok latency_ms=17",
            "user_id=<num> status=ok latency_ms=<num>",
        );
        masks("http.status_code:404,", "http.status_code:<num>,");
        masks("item ORD-1234 and SKU 7A", "item <*> and SKU <*>");
    }

    #[test]
    fn quoted_strings_are_one_variable_whatever_they_hold() {
        masks(
            r#"unknown user "alice smith" (name="bob jones")"#,
            r#"unknown user "<*>" (name="<*>")"#,
        );
        masks("can't find 'x y z'", "can't find \"<*>\"");
        // An unclosed quote is an ordinary character.
        masks(r#"bad "input 5"#, r#"bad "input <num>"#);
        // A quoted string with more after it is one variable too.
        masks(r#"got "a b"c end"#, "got <*> end");
    }

    #[test]
    fn lists_of_any_length_share_a_template() {
        assert_eq!(template("values 1 2 3 end"), "values <num> end");
        assert_eq!(pattern_id("values 1 2 3 end"), pattern_id("values 7 end"));
        assert_ne!(pattern_id("values 7 end"), pattern_id("values end"));
    }

    #[test]
    fn lines_of_one_statement_share_an_id_and_others_do_not() {
        let a = pattern_id("payment 991 declined: card expired after 3 tries");
        let b = pattern_id("payment 12 declined: card expired after 1 tries");
        let c = pattern_id("payment 12 accepted");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(parse_id(&format_id(a)), Some(a));
        assert_eq!(parse_id("xyz"), None);
        assert_eq!(parse_id("12345678901234567"), None);
    }

    #[test]
    fn any_text_gives_a_template_whose_id_is_the_lines() {
        // Pseudo-random lines over the characters the masker looks at, and
        // others of several UTF-8 lengths: no panic, no endless loop, and the id
        // computed without the template is the template's.
        let alphabet: Vec<char> = "aZ09 .:-=/?&,'\"`@()[]{}<>!;_xµé\t\n\u{b}\u{a0}\u{2003}😀"
            .chars()
            .collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let line: String = (0..len)
                .map(|i| alphabet[((state >> (i % 50)) as usize + i * 7) % alphabet.len()])
                .collect();
            let t = template(&line);
            assert_eq!(pattern_id(&line), template_id(&t), "{line:?}");
            assert!(t.split(' ').count() <= MAX_TOKENS + 1, "{line:?}");
        }
    }

    #[test]
    fn long_lines_and_tokens_stay_bounded() {
        let long = "word ".repeat(1_000);
        let t = template(&long);
        assert!(t.ends_with(" …"), "{t}");
        assert_eq!(t.split(' ').count(), MAX_TOKENS + 1);
        let blob = "a".repeat(10_000);
        assert_eq!(template(&format!("key {blob} end")), "key <*> end");
        // A quote that never closes is looked for in a window only.
        let quotes = "\"".repeat(100_000);
        assert_eq!(template(&quotes), ANY);
        // Multi-line bodies (stack traces): newlines are white space.
        assert_eq!(
            template("panic at main.rs:12\n  frame 0x1f2e3d4c\n"),
            "panic at main.rs:<num> frame <hex>"
        );
        // Not ASCII: kept whole, never cut inside a character.
        assert_eq!(
            template("größe 5µs überschritten"),
            "größe <duration> überschritten"
        );
    }
}
