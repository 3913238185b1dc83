//! Pods that fit nowhere wait here (kube-scheduler's unschedulable pods)
//! until the cluster changes in a way that could make room — a node added
//! or changed, a pod gone or finished — or five minutes pass; they then go
//! back to the queue after their back-off (1 s doubling to 10 s since their
//! last attempt), so that a stream of cluster events never makes a hot
//! loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

/// The first retry delay of a pod that did not fit.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A parked pod is retried after this even if nothing changed.
pub const MAX_PARKED: Duration = Duration::from_secs(300);

struct Parked {
    /// The pod as it was when it did not fit.
    pod: Arc<Pod>,
    at: Instant,
}

/// The parked pods and every pod's consecutive failures.
#[derive(Default)]
pub struct Unschedulable {
    parked: HashMap<String, Parked>,
    /// Pod key → (failed attempts in a row, the last one's time).
    failures: HashMap<String, (u32, Instant)>,
}

/// The back-off after `attempts` failures.
pub fn backoff(attempts: u32) -> Duration {
    INITIAL_BACKOFF
        .saturating_mul(1 << attempts.saturating_sub(1).min(10))
        .min(MAX_BACKOFF)
}

impl Unschedulable {
    /// Counts a failed attempt for `key`; returns the back-off before the
    /// next one.
    pub fn failed(&mut self, key: &str, now: Instant) -> Duration {
        let e = self.failures.entry(key.to_string()).or_insert((0, now));
        e.0 += 1;
        e.1 = now;
        backoff(e.0)
    }

    /// Parks `pod` (it just failed; call [`failed`](Self::failed) too).
    pub fn park(&mut self, key: &str, pod: Arc<Pod>, now: Instant) {
        self.parked.insert(key.to_string(), Parked { pod, at: now });
    }

    /// Forgets `key` (bound, or deleted).
    pub fn remove(&mut self, key: &str) {
        self.parked.remove(key);
        self.failures.remove(key);
    }

    /// Whether `key` is parked and `pod` is the same as far as fitting
    /// goes (its own status update, for one, changes nothing).
    pub fn parked_unchanged(&self, key: &str, pod: &Pod) -> bool {
        self.parked
            .get(key)
            .is_some_and(|p| p.pod.spec == pod.spec && p.pod.metadata.labels == pod.metadata.labels)
    }

    /// How long `key` still has to wait from `now` before its next attempt.
    fn remaining(&self, key: &str, now: Instant) -> Duration {
        match self.failures.get(key) {
            Some((n, at)) => (*at + backoff(*n)).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    /// Unparks every pod (the cluster changed): each with the delay it
    /// still has to wait.
    pub fn unpark_all(&mut self, now: Instant) -> Vec<(String, Duration)> {
        let keys: Vec<String> = self.parked.drain().map(|(k, _)| k).collect();
        keys.into_iter()
            .map(|k| {
                let d = self.remaining(&k, now);
                (k, d)
            })
            .collect()
    }

    /// Unparks `key` alone (the pod itself changed).
    pub fn unpark(&mut self, key: &str, now: Instant) -> Duration {
        self.parked.remove(key);
        self.remaining(key, now)
    }

    /// Unparks the pods parked longer than [`MAX_PARKED`].
    pub fn unpark_stale(&mut self, now: Instant) -> Vec<(String, Duration)> {
        let stale: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, p)| now.duration_since(p.at) >= MAX_PARKED)
            .map(|(k, _)| k.clone())
            .collect();
        stale
            .into_iter()
            .map(|k| {
                self.parked.remove(&k);
                let d = self.remaining(&k, now);
                (k, d)
            })
            .collect()
    }

    /// The number of parked pods.
    pub fn len(&self) -> usize {
        self.parked.len()
    }

    /// Whether no pod is parked.
    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::pod;
    use serde_json::json;

    #[test]
    fn back_off_doubles_to_ten_seconds() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(500), MAX_BACKOFF);
    }

    #[test]
    fn unparked_pods_wait_out_their_back_off() {
        let mut u = Unschedulable::default();
        let t0 = Instant::now();
        let p = pod("p", json!({}));
        u.failed("default/p", t0);
        u.failed("default/p", t0);
        u.park("default/p", Arc::clone(&p), t0);
        assert!(u.parked_unchanged("default/p", &p));
        let changed = pod("p", json!({"nodeSelector": {"a": "b"}}));
        assert!(!u.parked_unchanged("default/p", &changed));
        let out = u.unpark_all(t0 + Duration::from_millis(500));
        assert_eq!(
            out,
            [("default/p".to_string(), Duration::from_millis(1500))]
        );
        assert!(u.is_empty());
        assert!(u.unpark_all(t0).is_empty(), "unparked once");
        u.park("default/p", p, t0);
        assert!(u.unpark_stale(t0 + Duration::from_secs(10)).is_empty());
        assert_eq!(u.unpark_stale(t0 + MAX_PARKED).len(), 1);
        u.remove("default/p");
        assert_eq!(u.remaining("default/p", t0), Duration::ZERO);
    }
}
