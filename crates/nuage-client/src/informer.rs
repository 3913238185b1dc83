//! A local, watch-maintained copy of one kind of object (client-go's
//! informer): list, then watch from the list's revision; relist when the
//! watch ends or its revision was compacted. Handlers registered before the
//! start hear every change (they should only enqueue keys); readers get
//! objects from memory, never from the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::{Client, ListParams, WatchEvent};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ListableResource, Metadata, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// A change seen by an informer.
pub enum Event<K> {
    /// Created or changed (or present at a relist).
    Applied(Arc<K>),
    /// Deleted: its last state.
    Deleted(Arc<K>),
}

type Handler<K> = Box<dyn Fn(&Event<K>) + Send + Sync>;

/// The cache key of an object: `namespace/name`, or `name` for cluster
/// objects.
pub fn key_of(meta: &ObjectMeta) -> String {
    match &meta.namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        _ => meta.name.clone().unwrap_or_default(),
    }
}

/// A watch-maintained cache of objects of kind `K`.
pub struct Informer<K> {
    objects: RwLock<HashMap<String, Arc<K>>>,
    handlers: Mutex<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
    params: ListParams,
}

impl<K> Informer<K>
where
    K: Resource + ListableResource + Metadata<Ty = ObjectMeta> + DeserializeOwned,
    K: Clone + Send + Sync + 'static,
{
    /// An informer over every object of `K` matching `params`.
    pub fn new(params: ListParams) -> Arc<Self> {
        Arc::new(Self {
            objects: RwLock::new(HashMap::new()),
            handlers: Mutex::new(Vec::new()),
            synced: watch::channel(false).0,
            params,
        })
    }

    /// Calls `handler` on every change (from the informer's task: keep it
    /// short — enqueue a key).
    pub fn on_event(&self, handler: impl Fn(&Event<K>) + Send + Sync + 'static) {
        self.handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(handler));
    }

    /// The object with `key`, if cached.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Cached objects for which `f` is true.
    pub fn filter(&self, f: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        self.objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|o| f(o))
            .cloned()
            .collect()
    }

    /// Resolves once the first list is in the cache.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    fn emit(&self, event: Event<K>) {
        for h in self
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            h(&event);
        }
    }

    fn apply(&self, obj: K) {
        let key = key_of(obj.metadata());
        let obj = Arc::new(obj);
        self.objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::clone(&obj));
        self.emit(Event::Applied(obj));
    }

    fn delete(&self, obj: K) {
        let key = key_of(obj.metadata());
        self.objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        self.emit(Event::Deleted(Arc::new(obj)));
    }

    /// Lists and watches until `stop`.
    pub async fn run(self: Arc<Self>, client: Client, mut stop: watch::Receiver<bool>) {
        let mut retry = tokio::time::interval(Duration::from_secs(1));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'relist: loop {
            if *stop.borrow() {
                return;
            }
            let list = match client.list::<K>(None, &self.params).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(kind = K::KIND, error = %e, "list failed; retrying");
                    tokio::select! { _ = retry.tick() => continue, _ = stop.changed() => return }
                }
            };
            let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
            let fresh: HashMap<String, K> = list
                .items
                .into_iter()
                .map(|o| (key_of(o.metadata()), o))
                .collect();
            let gone: Vec<Arc<K>> = {
                let cached = self.objects.read().unwrap_or_else(|e| e.into_inner());
                cached
                    .iter()
                    .filter(|(k, _)| !fresh.contains_key(*k))
                    .map(|(_, v)| Arc::clone(v))
                    .collect()
            };
            for obj in gone {
                self.delete((*obj).clone());
            }
            for obj in fresh.into_values() {
                self.apply(obj);
            }
            self.synced.send_replace(true);
            let mut stream = match client.watch::<K>(None, &self.params, &rv).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(kind = K::KIND, error = %e, "watch failed; relisting");
                    tokio::select! { _ = retry.tick() => continue, _ = stop.changed() => return }
                }
            };
            loop {
                let event = tokio::select! {
                    e = stream.next() => e,
                    _ = stop.changed() => return,
                };
                match event {
                    Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                        rv = o.metadata().resource_version.clone().unwrap_or(rv);
                        self.apply(o);
                    }
                    Some(Ok(WatchEvent::Deleted(o))) => {
                        rv = o.metadata().resource_version.clone().unwrap_or(rv);
                        self.delete(o);
                    }
                    Some(Ok(WatchEvent::Bookmark(b))) => rv = b,
                    Some(Err(e)) if e.is_gone() => continue 'relist,
                    Some(Err(e)) => {
                        tracing::debug!(kind = K::KIND, error = %e, "watch error; relisting");
                        continue 'relist;
                    }
                    None => {
                        // The server ended the watch: resume from the last
                        // revision seen, relisting only if that fails.
                        match client.watch::<K>(None, &self.params, &rv).await {
                            Ok(s) => stream = s,
                            Err(_) => continue 'relist,
                        }
                    }
                }
            }
        }
    }
}
