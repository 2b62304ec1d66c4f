//! The terms records are found by, built in one place for the documents that hold
//! them ([`super::schema`]), the origins table that answers for resources
//! ([`super::origin`]) and the searches that look them up ([`super::search`]):
//! `key=value` for attributes and tags, `service \0 kind \0 name` for operations.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use tantivy::schema::Field;
use tantivy::TantivyDocument;

use crate::model::KeyValue;

/// Tag terms longer than this are not indexed (a SQL statement, a stack trace):
/// they would bloat the term dictionary and nobody types them into a tag search.
pub const MAX_TAG_TERM_LEN: usize = 256;

/// The term of the `operation` field: `service \0 kind \0 name`.
pub fn operation_term(service: &str, kind: &str, name: &str) -> String {
    let mut term = String::new();
    write_operation_term(&mut term, service, kind, name);
    term
}

pub(super) fn write_operation_term(out: &mut String, service: &str, kind: &str, name: &str) {
    for (i, part) in [service, kind, name].into_iter().enumerate() {
        if i > 0 {
            out.push('\0');
        }
        out.push_str(part);
    }
}

/// The term of a tag: `key=value`.
pub fn tag_term(key: &str, value: &str) -> String {
    let mut term = String::new();
    write_tag_term(&mut term, key, |out| out.push_str(value));
    term
}

pub(super) fn write_tag_term(out: &mut String, key: &str, value: impl FnOnce(&mut String)) {
    out.push_str(key);
    out.push('=');
    value(out);
}

/// Calls `each` with the `key=value` term of every attribute, leaving out those too
/// long to be worth indexing; `term` is the buffer they are written in.
pub fn attribute_terms(term: &mut String, attributes: &[KeyValue], mut each: impl FnMut(&str)) {
    for kv in attributes {
        term.clear();
        write_tag_term(term, &kv.key, |out| kv.value.write_search_text(out));
        if term.len() <= MAX_TAG_TERM_LEN {
            each(term.as_str());
        }
    }
}

pub(super) fn add_attribute_terms(
    doc: &mut TantivyDocument,
    field: Field,
    term: &mut String,
    keys: &mut IndexedKeys,
    attributes: &[KeyValue],
) {
    for kv in attributes {
        if !keys.admit(&kv.key) {
            continue;
        }
        term.clear();
        write_tag_term(term, &kv.key, |out| kv.value.write_search_text(out));
        if term.len() <= MAX_TAG_TERM_LEN {
            doc.add_text(field, term.as_str());
        }
    }
}

/// The distinct attribute keys a split indexes, at most `max`: values of further
/// keys are stored with their records (and shown) but not searchable, so that a
/// client sending a new key with every record cannot grow the term dictionary
/// without bound.
#[derive(Debug, Default)]
pub struct IndexedKeys {
    keys: HashSet<Box<str>, BuildHasherDefault<FxHasher>>,
    /// `None`: no limit.
    max: Option<usize>,
    /// Attribute values left unindexed since [`IndexedKeys::take_refused`].
    refused: u64,
}

impl IndexedKeys {
    pub fn new(max: usize) -> Self {
        Self {
            max: Some(max),
            ..Self::default()
        }
    }

    /// Whether values of `key` are indexed (it is known, or there is room).
    pub(super) fn admit(&mut self, key: &str) -> bool {
        if self.keys.contains(key) {
            return true;
        }
        if self.max.is_some_and(|max| self.keys.len() >= max) {
            self.refused += 1;
            return false;
        }
        self.keys.insert(key.into());
        true
    }

    /// How many values were not indexed since the last call.
    pub fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }
}

/// A small, fast, non-cryptographic hasher for short keys (rustc's FxHash): the
/// key set is looked up for every attribute of every record indexed.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_past_the_budget_are_stored_but_not_indexed() {
        let mut keys = IndexedKeys::new(2);
        assert!(keys.admit("a") && keys.admit("b"));
        assert!(!keys.admit("c"), "a third key is over the budget");
        assert!(keys.admit("a"), "known keys stay indexed");
        assert!(!keys.admit("d"));
        assert_eq!(keys.take_refused(), 2);
        assert_eq!(keys.take_refused(), 0);
        let mut hasher = FxHasher::default();
        hasher.write(b"http.request.method");
        let mut other = FxHasher::default();
        other.write(b"http.request.methoe");
        assert_ne!(hasher.finish(), other.finish());
    }
}
