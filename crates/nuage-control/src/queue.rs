//! A work queue of keys with client-go's guarantees: a key waits in the
//! queue at most once however often it is added; a key being processed is
//! never handed to a second worker at the same time (added meanwhile, it
//! comes back once the first is done); failed keys come back after an
//! exponential per-key delay, not in a hot loop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// The first retry delay of a failing key.
const BASE_DELAY: Duration = Duration::from_millis(5);
/// The longest retry delay.
const MAX_DELAY: Duration = Duration::from_secs(300);

/// A de-duplicating queue of keys shared by a controller's workers.
pub struct WorkQueue<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<K> {
    state: Mutex<State<K>>,
    ready: Notify,
}

struct State<K> {
    queue: VecDeque<K>,
    /// Keys that need processing (queued, or re-added while processing).
    dirty: HashSet<K>,
    /// Keys a worker holds now.
    processing: HashSet<K>,
    /// Consecutive failures per key, for the retry delay.
    failures: HashMap<K, u32>,
    shut_down: bool,
}

impl<K: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    failures: HashMap::new(),
                    shut_down: false,
                }),
                ready: Notify::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `key` (a no-op if it already waits).
    pub fn add(&self, key: K) {
        let mut s = self.state();
        if s.shut_down || !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.inner.ready.notify_one();
        }
    }

    /// Adds `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Adds `key` back after its failure delay (5 ms doubling to 5 min).
    pub fn add_rate_limited(&self, key: K) {
        let failures = {
            let mut s = self.state();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = BASE_DELAY
            .saturating_mul(1u32 << (failures - 1).min(20))
            .min(MAX_DELAY);
        self.add_after(key, delay);
    }

    /// Forgets `key`'s failures (after a success).
    pub fn forget(&self, key: &K) {
        self.state().failures.remove(key);
    }

    /// How many times `key` failed in a row.
    pub fn failures(&self, key: &K) -> u32 {
        self.state().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to process; `None` once the queue is shut down. Call
    /// [`done`](Self::done) when finished with it.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.inner.ready.notified();
            {
                let mut s = self.state();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    if !s.queue.is_empty() {
                        // Wake another worker for the rest.
                        self.inner.ready.notify_one();
                    }
                    return Some(key);
                }
                if s.shut_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &K) {
        let mut s = self.state();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.inner.ready.notify_one();
        }
    }

    /// Number of keys waiting.
    pub fn len(&self) -> usize {
        self.state().queue.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends the queue: `get` returns `None` once it is drained.
    pub fn shut_down(&self) {
        self.state().shut_down = true;
        self.inner.ready.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_deduplicated_and_never_processed_twice_at_once() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        // Added while processing: not handed out until done.
        q.add("a");
        assert_eq!(q.get().await.unwrap(), "b");
        assert!(q.is_empty());
        q.done(&"b");
        q.done(&a);
        assert_eq!(q.get().await.unwrap(), "a");
    }

    #[tokio::test]
    async fn failures_back_off_and_shut_down_ends_get() {
        let q = WorkQueue::new();
        q.add_rate_limited("x");
        q.add_rate_limited("x");
        assert_eq!(q.failures(&"x"), 2);
        let got = tokio::time::timeout(Duration::from_secs(5), q.get()).await;
        assert_eq!(got.unwrap(), Some("x"));
        q.forget(&"x");
        assert_eq!(q.failures(&"x"), 0);
        q.done(&"x");
        q.shut_down();
        assert_eq!(q.get().await, None);
    }
}
