//! Duplicate-delivery detection in memory: the (source, body hash) of every delivery
//! stored within `store.dedup_window`, with the id and time it was stored under.
//!
//! Why not a database index: body hashes are random, so every insert into a B-tree
//! index dirties a different page, which under load doubled the bytes each group
//! commit writes (measured: a quarter of the journal's CPU per delivery). The set is
//! rebuilt from the journal's own rows at start (the newest rows within the window),
//! so a restart does not forget recent deliveries.
//!
//! Memory is bounded by [`MAX_ENTRIES`] (about 80 bytes each, ~10 MiB): beyond it the
//! oldest entries go first, so under a sustained flood the effective window shrinks.
//! A repeat that escapes is stored as a second row; the pipeline still deduplicates
//! its signals by identity.

use std::collections::{HashMap, VecDeque};

use crate::signal::Source;

/// Most remembered deliveries: the whole default window (5 min) up to ~430/s.
pub const MAX_ENTRIES: usize = 131_072;

/// The first 128 bits of the body's SHA-256 (collisions are out of reach), by source.
pub type BodyKey = (Source, [u8; 16]);

/// Parses the key from the lower-case hex digest the journal stores.
pub fn key(source: Source, body_sha256_hex: &str) -> Option<BodyKey> {
    let mut prefix = [0u8; 16];
    hex::decode_to_slice(body_sha256_hex.get(..32)?, &mut prefix).ok()?;
    Some((source, prefix))
}

/// A stored delivery: its id and receive time (µs since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub id: i64,
    pub received_us: i64,
}

#[derive(Debug)]
pub struct RecentBodies {
    window_us: i64,
    capacity: usize,
    map: HashMap<BodyKey, Seen>,
    /// Insertion order (receive time order, near enough) for expiry.
    order: VecDeque<(i64, BodyKey)>,
}

impl RecentBodies {
    pub fn new(window_us: i64, capacity: usize) -> Self {
        RecentBodies {
            window_us,
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The delivery with this key stored within the window before `now_us`.
    pub fn find(&self, key: &BodyKey, now_us: i64) -> Option<Seen> {
        self.map
            .get(key)
            .filter(|s| s.received_us >= now_us.saturating_sub(self.window_us))
            .copied()
    }

    /// Remembers a committed delivery, forgetting what left the window or overflows.
    pub fn insert(&mut self, key: BodyKey, seen: Seen) {
        self.map.insert(key, seen);
        self.order.push_back((seen.received_us, key));
        let cutoff = seen.received_us.saturating_sub(self.window_us);
        while let Some(&(at, old)) = self.order.front() {
            if at >= cutoff && self.order.len() <= self.capacity {
                break;
            }
            self.order.pop_front();
            // A later delivery of the same body may own the entry now.
            if self.map.get(&old).is_some_and(|s| s.received_us == at) {
                self.map.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn finds_within_the_window_only_and_per_source() {
        let mut r = RecentBodies::new(1_000, 100);
        let k = key(Source::Alertmanager, HASH).unwrap();
        r.insert(
            k,
            Seen {
                id: 1,
                received_us: 10_000,
            },
        );
        assert_eq!(r.find(&k, 10_500).map(|s| s.id), Some(1));
        assert_eq!(r.find(&k, 11_001), None, "outside the window");
        let other = key(Source::Argocd, HASH).unwrap();
        assert_eq!(r.find(&other, 10_500), None);
        // A later insert expires the old entry.
        let k2 = key(Source::Alertmanager, &HASH.replace('0', "f")).unwrap();
        r.insert(
            k2,
            Seen {
                id: 2,
                received_us: 20_000,
            },
        );
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn capacity_drops_the_oldest_and_reinsert_keeps_the_newest() {
        let mut r = RecentBodies::new(i64::MAX / 2, 2);
        let keys: Vec<BodyKey> = (0..3u8).map(|i| (Source::Argocd, [i; 16])).collect();
        for (i, k) in keys.iter().enumerate() {
            r.insert(
                *k,
                Seen {
                    id: i as i64,
                    received_us: i as i64,
                },
            );
        }
        assert_eq!(r.find(&keys[0], 3), None);
        assert!(r.find(&keys[2], 3).is_some());
        // Same key again later: the old queue entry must not evict the new one.
        r.insert(
            keys[2],
            Seen {
                id: 9,
                received_us: 5,
            },
        );
        r.insert(
            (Source::Argocd, [7; 16]),
            Seen {
                id: 10,
                received_us: 6,
            },
        );
        assert_eq!(r.find(&keys[2], 6).map(|s| s.id), Some(9));
        assert!(key(Source::Argocd, "xyz").is_none());
    }
}
