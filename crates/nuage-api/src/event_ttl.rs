//! Events expire (`--event-ttl`, 1 h by default), as kube-apiserver makes
//! them expire: every write of an Event attaches it to a store lease, and
//! the store deletes the Event when the lease runs out (a watch sees it
//! `DELETED`). Nothing scans for old Events.
//!
//! Like kube-apiserver's lease manager, one lease serves every Event
//! written within a short reuse window (5 % of the TTL, at most a minute)
//! and is granted for the TTL plus that window: an Event lives between
//! its TTL and its TTL plus the window after its last write, and the store
//! holds a few leases rather than one per Event.

use std::time::{Duration, Instant};

use nuage_store::{LeaseId, Store, StoreError};
use tokio::sync::Mutex;

/// Kubernetes' default Event TTL.
pub const DEFAULT_EVENT_TTL: Duration = Duration::from_secs(3600);
/// The longest reuse window of one lease.
const MAX_REUSE: Duration = Duration::from_secs(60);

/// Hands out the lease new Event writes attach to.
pub struct EventLeases {
    ttl_seconds: i64,
    reuse: Duration,
    current: Mutex<Option<(LeaseId, Instant)>>,
}

impl EventLeases {
    /// Leases keeping Events for `ttl` (at least a second) after their
    /// last write.
    pub fn new(ttl: Duration) -> Self {
        let ttl_seconds = ttl.as_secs().max(1);
        let reuse = Duration::from_secs(ttl_seconds / 20).min(MAX_REUSE);
        Self {
            ttl_seconds: i64::try_from(ttl_seconds).unwrap_or(i64::MAX / 2),
            reuse,
            current: Mutex::new(None),
        }
    }

    /// The lease to attach an Event written now to: the current one while
    /// it is within its reuse window, else a fresh one.
    pub async fn lease(&self, store: &dyn Store) -> Result<LeaseId, StoreError> {
        let mut current = self.current.lock().await;
        if let Some((id, granted)) = *current {
            if granted.elapsed() < self.reuse {
                return Ok(id);
            }
        }
        let id = store
            .grant_lease(self.ttl_seconds + self.reuse.as_secs() as i64)
            .await?;
        *current = Some((id, Instant::now()));
        Ok(id)
    }

    /// Drops `id` (the store no longer knows it): the next write gets a
    /// fresh lease.
    pub async fn forget(&self, id: LeaseId) {
        let mut current = self.current.lock().await;
        if current.is_some_and(|(c, _)| c == id) {
            *current = None;
        }
    }
}

impl Default for EventLeases {
    fn default() -> Self {
        Self::new(DEFAULT_EVENT_TTL)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nuage_model::registry;
    use serde_json::json;

    use super::*;
    use crate::storage::Objects;

    #[tokio::test]
    async fn events_expire_after_their_ttl_and_other_objects_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(nuage_store::sqlite::SqliteStore::open(&dir.path().join("db")).unwrap());
        let objects = Objects::with_event_ttl(Arc::clone(&store), Duration::from_secs(1));
        let events = registry::lookup("", "v1", "events").unwrap();
        let cms = registry::lookup("", "v1", "configmaps").unwrap();
        let event = |name: &str| {
            json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": "default"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                "reason": "Tested", "message": "m"})
        };
        let started = Instant::now();
        objects.create(events, event("old")).await.unwrap();
        objects.create(events, event("other")).await.unwrap();
        objects
            .create(
                cms,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}),
            )
            .await
            .unwrap();
        // An update (a repeat count) keeps the Event leased.
        let mut other = objects
            .get_existing(events, Some("default"), "other")
            .await
            .unwrap();
        other["count"] = json!(2);
        let rv = nuage_model::meta::resource_version(&other).unwrap();
        objects.update(events, other, rv).await.unwrap();
        let kv = store
            .get(&events.key(Some("default"), "other"))
            .await
            .unwrap()
            .unwrap();
        assert!(kv.lease.is_some(), "an updated Event keeps a lease");

        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let old = objects.get(events, Some("default"), "old").await.unwrap();
            let other = objects.get(events, Some("default"), "other").await.unwrap();
            if old.is_none() && other.is_none() {
                break;
            }
            assert!(Instant::now() < deadline, "events did not expire");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "expired before their TTL"
        );
        assert!(objects
            .get(cms, Some("default"), "c")
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn one_lease_serves_events_written_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = nuage_store::sqlite::SqliteStore::open(&dir.path().join("db")).unwrap();
        let leases = EventLeases::new(DEFAULT_EVENT_TTL);
        let a = leases.lease(&store).await.unwrap();
        let b = leases.lease(&store).await.unwrap();
        assert_eq!(a, b);
        leases.forget(a).await;
        assert_ne!(leases.lease(&store).await.unwrap(), a);
    }
}
