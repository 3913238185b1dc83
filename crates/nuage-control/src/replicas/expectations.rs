//! client-go's controller expectations: after asking for N creations or
//! for the deletion of given pods, an owner is not reconciled again (beyond
//! its status) until the informer has shown them all, so a reconcile
//! running on a cache that lags behind its own writes does not create or
//! delete a second time. A record older than [`TTL`] is ignored: a lost
//! event must not freeze an owner forever.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long expectations hold at most (Kubernetes' `ExpectationsTimeout`).
pub const TTL: Duration = Duration::from_secs(5 * 60);

struct Record {
    /// Creations asked for and not yet seen.
    adds: i64,
    /// Pods (`namespace/name`) asked to be deleted and not yet seen going.
    deletes: HashSet<String>,
    /// When the record was set.
    at: Instant,
}

impl Record {
    fn fulfilled(&self) -> bool {
        self.adds <= 0 && self.deletes.is_empty()
    }
}

/// Outstanding creations and deletions per owner key.
pub struct Expectations<K> {
    records: Mutex<HashMap<K, Record>>,
}

impl<K: Clone + Eq + Hash> Default for Expectations<K> {
    fn default() -> Self {
        Self {
            records: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Clone + Eq + Hash> Expectations<K> {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<K, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `key` may create or delete pods: nothing is outstanding, or
    /// the record has expired.
    pub fn satisfied(&self, key: &K) -> bool {
        self.records()
            .get(key)
            .is_none_or(|r| r.fulfilled() || r.at.elapsed() > TTL)
    }

    /// Expects `n` pods of `key` to appear (replacing any old record).
    pub fn expect_creations(&self, key: &K, n: usize) {
        self.records().insert(
            key.clone(),
            Record {
                adds: n as i64,
                deletes: HashSet::new(),
                at: Instant::now(),
            },
        );
    }

    /// Expects `pods` of `key` to go (replacing any old record).
    pub fn expect_deletions(&self, key: &K, pods: impl IntoIterator<Item = String>) {
        self.records().insert(
            key.clone(),
            Record {
                adds: 0,
                deletes: pods.into_iter().collect(),
                at: Instant::now(),
            },
        );
    }

    /// One pod of `key` appeared (or its creation failed, or was skipped).
    pub fn creation_observed(&self, key: &K) {
        if let Some(r) = self.records().get_mut(key) {
            r.adds -= 1;
        }
    }

    /// `n` expected creations will not happen.
    pub fn lower_creations(&self, key: &K, n: usize) {
        if let Some(r) = self.records().get_mut(key) {
            r.adds -= n as i64;
        }
    }

    /// The pod `pod` of `key` is going (or its deletion failed).
    pub fn deletion_observed(&self, key: &K, pod: &str) {
        if let Some(r) = self.records().get_mut(key) {
            r.deletes.remove(pod);
        }
    }

    /// Forgets `key` (its owner is gone).
    pub fn forget(&self, key: &K) {
        self.records().remove(key);
    }

    /// Keys whose unfulfilled record has expired: nothing else will bring
    /// them back to a reconcile.
    pub fn expired(&self) -> Vec<K> {
        self.records()
            .iter()
            .filter(|(_, r)| !r.fulfilled() && r.at.elapsed() > TTL)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_hold_the_owner_until_all_are_seen() {
        let e = Expectations::default();
        let k = "ns/web".to_string();
        assert!(e.satisfied(&k));
        e.expect_creations(&k, 2);
        assert!(!e.satisfied(&k));
        e.creation_observed(&k);
        assert!(!e.satisfied(&k));
        e.creation_observed(&k);
        assert!(e.satisfied(&k));
    }

    #[test]
    fn deletions_are_tracked_per_pod() {
        let e = Expectations::default();
        let k = "ns/web".to_string();
        e.expect_deletions(&k, ["ns/a".to_string(), "ns/b".to_string()]);
        e.deletion_observed(&k, "ns/a");
        // Seeing the same pod go twice does not count twice.
        e.deletion_observed(&k, "ns/a");
        assert!(!e.satisfied(&k));
        e.deletion_observed(&k, "ns/b");
        assert!(e.satisfied(&k));
        assert!(e.expired().is_empty());
        e.expect_creations(&k, 1);
        e.forget(&k);
        assert!(e.satisfied(&k));
    }
}
