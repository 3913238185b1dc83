//! Which namespaces exist, kept in memory from a watch.
//!
//! Every create in a namespace must know that the namespace exists and is not
//! being deleted. Reading it from the store on each create costs a store
//! round trip (a blocking-pool hop on SQLite, a network hop on etcd); this
//! cache answers from memory instead, the way the Kubernetes namespace
//! lifecycle admission uses an informer. A namespace the cache does not know
//! (created a moment ago, or the cache is still starting) is read from the
//! store, so a create right after its namespace never fails.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use nuage_model::meta;
use nuage_model::registry::{self, ResourceType};
use nuage_store::{EventKind, ListOptions};

use crate::ApiState;

/// What the cache knows of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceState {
    /// Exists and accepts content.
    Active,
    /// Being deleted: no new content.
    Terminating,
}

/// Namespaces by name, as last seen by the watch.
#[derive(Default)]
pub struct NamespaceCache {
    known: RwLock<HashMap<String, NamespaceState>>,
}

impl NamespaceCache {
    /// The cached state of `name`; `None` if the cache does not know it.
    pub fn get(&self, name: &str) -> Option<NamespaceState> {
        self.known.read().ok()?.get(name).copied()
    }

    fn apply(&self, name: &str, state: Option<NamespaceState>) {
        if let Ok(mut known) = self.known.write() {
            match state {
                Some(s) => known.insert(name.to_string(), s),
                None => known.remove(name),
            };
        }
    }

    fn replace(&self, all: HashMap<String, NamespaceState>) {
        if let Ok(mut known) = self.known.write() {
            *known = all;
        }
    }
}

fn namespaces() -> &'static ResourceType {
    registry::lookup("", "v1", "namespaces").expect("namespaces are served")
}

fn state_of(obj: &serde_json::Value) -> NamespaceState {
    if meta::is_deleting(obj) {
        NamespaceState::Terminating
    } else {
        NamespaceState::Active
    }
}

/// Keeps `state.namespaces` current until shutdown: list, then watch from
/// the list's revision; re-list whenever the watch ends.
pub async fn run(state: Arc<ApiState>) {
    let mut stopping = state.stopping.subscribe();
    let rt = namespaces();
    let prefix = rt.key_prefix(None);
    let store = Arc::clone(state.objects.store());
    loop {
        let session = async {
            let list = store.list(&prefix, ListOptions::default()).await?;
            let mut all = HashMap::new();
            for kv in &list.kvs {
                if let Ok(obj) = state.objects.decode(rt, kv) {
                    if let Some(name) = meta::name(&obj) {
                        all.insert(name.to_string(), state_of(&obj));
                    }
                }
            }
            state.namespaces.replace(all);
            let mut events = store.watch(&prefix, list.revision).await?;
            while let Some(ev) = events.next().await {
                let ev = ev?;
                let Ok(obj) = state.objects.decode(rt, &ev.kv) else {
                    continue;
                };
                let Some(name) = meta::name(&obj) else {
                    continue;
                };
                let now = match ev.kind {
                    EventKind::Put => Some(state_of(&obj)),
                    EventKind::Delete => None,
                };
                state.namespaces.apply(name, now);
            }
            Ok::<(), nuage_store::StoreError>(())
        };
        tokio::select! {
            r = session => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "namespace watch ended; re-listing");
                }
            }
            _ = stopping.changed() => return,
        }
        // Re-list at a gentle pace if the store keeps failing.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stopping.changed() => return,
        }
    }
}
