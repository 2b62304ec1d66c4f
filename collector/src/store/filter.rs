//! A Bloom filter of a split's trace ids: a trace lookup skips every split whose
//! filter says "not here" without opening it. A sealed split keeps its filter in a
//! file of its own ([`super::split::Split`] loads it when it opens), and in
//! cluster mode in the metastore, so that search nodes skip splits without fetching
//! them. Sized for about 1% false positives (10 bits and 7 probes per id).

use crate::model::TraceId;

const BITS_PER_ID: usize = 10;
const PROBES: u64 = 7;

/// The filter's bytes: a bit array; empty for a split without trace ids.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TraceIdFilter(Vec<u8>);

/// Two independent 64-bit hashes of an id. Ids are meant to be random, but some
/// senders put zeros in the high half (64-bit ids), so both halves are mixed.
fn hashes(id: &TraceId) -> (u64, u64) {
    let (hi, lo) = id.0.split_at(8);
    let hi = u64::from_le_bytes(hi.try_into().unwrap_or_default());
    let lo = u64::from_le_bytes(lo.try_into().unwrap_or_default());
    (mix(hi ^ mix(lo)), mix(lo.rotate_left(32) ^ hi) | 1)
}

/// SplitMix64's finaliser.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl TraceIdFilter {
    pub fn build(ids: &[TraceId]) -> TraceIdFilter {
        let mut filter = TraceIdFilter::with_room(ids.len());
        ids.iter().for_each(|id| filter.insert(id));
        filter
    }

    /// An empty filter sized for `ids` ids (an id inserted twice counts once in
    /// it, so an upper bound does).
    pub fn with_room(ids: usize) -> TraceIdFilter {
        if ids == 0 {
            return TraceIdFilter::default();
        }
        TraceIdFilter(vec![0u8; (ids * BITS_PER_ID).div_ceil(8).max(8)])
    }

    /// Adds `id`; a filter made for no ids takes none.
    pub fn insert(&mut self, id: &TraceId) {
        let m = (self.0.len() * 8) as u64;
        if m == 0 {
            return;
        }
        let (h1, h2) = hashes(id);
        for i in 0..PROBES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.0[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }

    pub fn from_bytes(bytes: Vec<u8>) -> TraceIdFilter {
        TraceIdFilter(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// False only when `id` is certainly not in the split.
    pub fn may_contain(&self, id: &TraceId) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let m = (self.0.len() * 8) as u64;
        let (h1, h2) = hashes(id);
        (0..PROBES).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.0[(bit / 8) as usize] & (1 << (bit % 8)) != 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64, high: bool) -> TraceId {
        let mut bytes = [0u8; 16];
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        if high {
            bytes[..8].copy_from_slice(&mix(n).to_be_bytes());
        }
        TraceId(bytes)
    }

    #[test]
    fn every_member_is_found_and_few_others_are() {
        for high in [true, false] {
            let members: Vec<TraceId> = (0..10_000).map(|n| id(n, high)).collect();
            let filter = TraceIdFilter::build(&members);
            assert!(members.iter().all(|m| filter.may_contain(m)));
            let false_positives = (1_000_000..1_100_000)
                .filter(|&n| filter.may_contain(&id(n, high)))
                .count();
            // About 1% by design; 2% would mean the hashing is off.
            assert!(
                false_positives < 2_000,
                "{false_positives} of 100000 (64-bit ids: {})",
                !high
            );
        }
        let empty = TraceIdFilter::build(&[]);
        assert!(!empty.may_contain(&id(1, true)));
        let again =
            TraceIdFilter::from_bytes(TraceIdFilter::build(&[id(7, true)]).as_bytes().to_vec());
        assert!(again.may_contain(&id(7, true)));
    }
}
