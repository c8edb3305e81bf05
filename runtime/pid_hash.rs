//! The hasher of the maps a supervisor keys by process (`ActorCell`, `ActorId`).
//!
//! Those maps are touched for every child at every start, stop and exit: a restart round of ten
//! children hashes a process about fifty times, a parallel shutdown of 100,000 children 300,000
//! times. std's SipHash costs about 150 instructions per hash there, most of a round's bookkeeping
//! measured by callgrind. The keys are ractor's actor ids, numbers the process hands out itself in
//! sequence, never chosen by a peer, so the flooding SipHash guards against cannot happen, and
//! rustc's Fx hash (a multiply and a rotate per word) is enough; the tests below check that it
//! spreads sequential ids over hashbrown's buckets and tags.

/// Builds the hashers of the supervisor's maps keyed by process.
pub(crate) use rustc_hash::FxBuildHasher as PidHash;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::hash::{BuildHasher, Hash};

    fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
        PidHash.hash_one(value)
    }

    /// hashbrown picks a bucket from the low bits and a tag from the top seven: ids handed out in
    /// sequence must differ in both, or a map of children degrades into long probe chains.
    #[test]
    fn sequential_actor_ids_spread_over_buckets_and_tags() {
        let n = 1u64 << 16;
        let hashes: Vec<u64> = (0..n)
            .map(|pid| hash_of(&ractor::ActorId::Local(pid)))
            .collect();
        let distinct: HashSet<u64> = hashes.iter().copied().collect();
        assert_eq!(distinct.len(), hashes.len());
        // Buckets: the low 12 bits of 65,536 sequential ids fill every one of 4,096 buckets
        // with at most a few times the mean of 16.
        let mut buckets = vec![0u32; 1 << 12];
        for h in &hashes {
            buckets[(h & 0xfff) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| b > 0 && b <= 64), "{buckets:?}");
        // Tags: every one of the 128 values of the top seven bits is used.
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tags.len(), 128);
    }

    #[test]
    fn byte_strings_of_different_lengths_differ() {
        assert_ne!(hash_of(&[1u8][..]), hash_of(&[1u8, 0][..]));
        assert_ne!(hash_of("a"), hash_of("a\0"));
        assert_ne!(hash_of(&[0u8; 8][..]), hash_of(&[0u8; 9][..]));
    }

    #[test]
    fn a_map_of_many_processes_finds_each() {
        let mut map: HashMap<ractor::ActorId, u64, PidHash> = HashMap::default();
        for pid in 0..100_000u64 {
            map.insert(ractor::ActorId::Local(pid * 7), pid);
        }
        for pid in 0..100_000u64 {
            assert_eq!(map.get(&ractor::ActorId::Local(pid * 7)), Some(&pid));
        }
        assert!(!map.contains_key(&ractor::ActorId::Local(1)));
    }
}
