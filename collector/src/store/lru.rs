//! What is worked out once per immutable segment and kept for the next question
//! (a segment's trace-id table, its service-health rollup): within a budget of
//! bytes, the least recently used going first, and dropped with its segment when
//! a merge removes it.

use std::collections::HashMap;
use std::hash::Hash;

/// Values by key, at most `budget` bytes of them as their makers count them.
#[derive(Debug)]
pub(super) struct Lru<K, V> {
    entries: HashMap<K, Entry<V>>,
    bytes: usize,
    budget: usize,
    /// Stamps uses: the smallest stamp goes first.
    clock: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    bytes: usize,
    used: u64,
}

impl<K: Eq + Hash + Copy, V: Clone> Lru<K, V> {
    pub(super) fn new(budget: usize) -> Lru<K, V> {
        Lru {
            entries: HashMap::new(),
            bytes: 0,
            budget,
            clock: 0,
        }
    }

    pub(super) fn get(&mut self, key: &K) -> Option<V> {
        self.clock += 1;
        let entry = self.entries.get_mut(key)?;
        entry.used = self.clock;
        Some(entry.value.clone())
    }

    /// Keeps `value` (of `bytes`), leaving out the least recently used to stay
    /// within the budget; a value larger than all of it is not kept.
    pub(super) fn insert(&mut self, key: K, value: V, bytes: usize) {
        if bytes > self.budget {
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.bytes;
        }
        while self.bytes + bytes > self.budget {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(key, _)| *key)
            else {
                break;
            };
            if let Some(gone) = self.entries.remove(&oldest) {
                self.bytes -= gone.bytes;
            }
        }
        self.clock += 1;
        let used = self.clock;
        self.entries.insert(key, Entry { value, bytes, used });
        self.bytes += bytes;
    }

    /// Drops every value whose key `gone` says is of something that no longer is.
    pub(super) fn forget(&mut self, gone: impl Fn(&K) -> bool) {
        let mut freed = 0;
        self.entries.retain(|key, entry| {
            let keep = !gone(key);
            if !keep {
                freed += entry.bytes;
            }
            keep
        });
        self.bytes -= freed;
    }

    /// The bytes held, as counted.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bytes of every entry, added up (what [`Self::bytes`] must say).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.entries.values().map(|entry| entry.bytes).sum()
    }
}
