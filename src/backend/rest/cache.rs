//! Answers kept for a while and shared by the workers (the prefix of an
//! origin address, the DNS servers of a site), so that most jobs need not
//! ask again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Entries kept before old ones are swept.
const MAX_ENTRIES: usize = 4096;

/// A map whose entries last `ttl`, or `miss_ttl` when they hold `None`
/// (nothing found: asked again sooner).
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    miss_ttl: Duration,
    map: Mutex<HashMap<K, (Instant, Option<V>)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration, miss_ttl: Duration) -> Self {
        TtlCache {
            ttl,
            miss_ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (Instant, Option<V>)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of `key` while it lasts: `Some(None)` is a cached miss.
    pub(crate) fn get(&self, key: &K) -> Option<Option<V>> {
        let map = self.lock();
        let (at, value) = map.get(key)?;
        let ttl = if value.is_some() {
            self.ttl
        } else {
            self.miss_ttl
        };
        (at.elapsed() < ttl).then(|| value.clone())
    }

    pub(crate) fn put(&self, key: K, value: Option<V>) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_and_misses_last_their_time() {
        let c = TtlCache::new(Duration::from_secs(60), Duration::ZERO);
        assert_eq!(c.get(&1), None);
        c.put(1, Some("a"));
        c.put(2, None);
        assert_eq!(c.get(&1), Some(Some("a")));
        // A miss kept for no time is asked again.
        assert_eq!(c.get(&2), None);
        let c = TtlCache::new(Duration::from_secs(60), Duration::from_secs(60));
        c.put(2, None::<&str>);
        assert_eq!(c.get(&2), Some(None));
        for k in 0..MAX_ENTRIES + 10 {
            c.put(k, Some("x"));
        }
        assert!(c.lock().len() <= MAX_ENTRIES);
    }
}
