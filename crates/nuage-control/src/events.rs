//! Events written by the controllers (`kubectl get events`, `kubectl
//! describe`): one shared recorder, as client-go's `EventRecorder`, with
//! repeats folded into one Event whose `count` grows and a per-object spam
//! filter so that a controller creating 10,000 pods does not also write
//! 10,000 Events.
//!
//! Use: `let rec = Recorder::new(client, "replicaset-controller");` then
//! `rec.record(&events::reference(&rs), EventType::Normal, "SuccessfulCreate",
//! format!("Created pod: {name}"))`. Recording never blocks nor fails the
//! caller: Events are written in the background, best effort.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::{Metadata, Resource};
use nuage_client::Client;
use tokio::sync::mpsc;

/// `Normal` or `Warning`, the two Event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something happened as planned.
    Normal,
    /// Something failed.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// A reference to `obj` for [`Recorder::record`] (kind, name, namespace,
/// uid, apiVersion, resourceVersion).
pub fn reference<K>(obj: &K) -> ObjectReference
where
    K: Resource + Metadata<Ty = ObjectMeta>,
{
    let m = obj.metadata();
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path: None,
    }
}

/// What makes two Events the same (client-go's `getEventKey`, without the
/// resourceVersion so that repeats about a changing object still fold).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    field_path: String,
    type_: EventType,
    reason: String,
    message: String,
}

/// How many distinct Events are remembered for folding; past it the memory
/// starts over (a repeat then becomes a new Event, which is harmless).
const MAX_REMEMBERED: usize = 4096;
/// Spam filter (client-go's defaults): an object may have 25 Events at
/// once, then one more every 5 minutes.
const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL: Duration = Duration::from_secs(300);
/// Background writers; an Event always goes to the same one so its create
/// precedes its count updates.
const WRITERS: usize = 4;
/// Events waiting per writer before new ones are dropped.
const BACKLOG: usize = 1024;

/// One write to do.
struct Write {
    event: Event,
    /// 1: create; more: update the count of the existing Event.
    count: i32,
}

/// Token bucket of one involved object.
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct Memory {
    /// Key → (Event name, count so far).
    seen: HashMap<EventKey, (String, i32)>,
    /// Involved object uid (or kind/ns/name) → its spam bucket.
    buckets: HashMap<String, Bucket>,
}

/// Records Events as one component (e.g. `replicaset-controller`); cheap to
/// clone. Must be created inside a tokio runtime (it spawns its writers).
#[derive(Clone)]
pub struct Recorder {
    component: String,
    memory: Arc<Mutex<Memory>>,
    writers: Arc<Vec<mpsc::Sender<Write>>>,
}

impl Recorder {
    /// A recorder writing with `source.component` and
    /// `reportingComponent` = `component`.
    pub fn new(client: Client, component: &str) -> Self {
        let writers = (0..WRITERS)
            .map(|_| {
                let (tx, rx) = mpsc::channel(BACKLOG);
                tokio::spawn(write_loop(client.clone(), rx));
                tx
            })
            .collect();
        Self {
            component: component.to_string(),
            memory: Arc::default(),
            writers: Arc::new(writers),
        }
    }

    /// Records `reason: message` about `object`. A repeat of the same
    /// (object, type, reason, message) increments the first Event's count.
    pub fn record(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let message = message.into();
        let namespace = object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let name = object.name.clone().unwrap_or_default();
        let key = EventKey {
            kind: object.kind.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            name: name.clone(),
            uid: object.uid.clone().unwrap_or_default(),
            field_path: object.field_path.clone().unwrap_or_default(),
            type_,
            reason: reason.to_string(),
            message: message.clone(),
        };
        let Some((event_name, count)) = self.remember(key) else {
            tracing::debug!(object = %format!("{namespace}/{name}"), reason, "event dropped (spam filter)");
            return;
        };
        match type_ {
            EventType::Normal => {
                tracing::info!(component = %self.component, object = %format!("{namespace}/{name}"), reason, %message, "event")
            }
            EventType::Warning => {
                tracing::warn!(component = %self.component, object = %format!("{namespace}/{name}"), reason, %message, "event")
            }
        }
        let now = Time(now());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name.clone()),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.as_str().into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            count: Some(count),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            ..Event::default()
        };
        let mut h = DefaultHasher::new();
        event_name.hash(&mut h);
        let writer = &self.writers[(h.finish() as usize) % self.writers.len()];
        if writer.try_send(Write { event, count }).is_err() {
            tracing::debug!(event = %event_name, "event dropped (backlog full)");
        }
    }

    /// The Event name and count for `key`, or `None` when the spam filter
    /// drops it.
    fn remember(&self, key: EventKey) -> Option<(String, i32)> {
        let mut m = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((name, count)) = m.seen.get_mut(&key) {
            // Folding a repeat costs one patch; it is not spam.
            *count += 1;
            return Some((name.clone(), *count));
        }
        let object = if key.uid.is_empty() {
            format!("{}/{}/{}", key.kind, key.namespace, key.name)
        } else {
            key.uid.clone()
        };
        let now = Instant::now();
        if m.buckets.len() > MAX_REMEMBERED {
            m.buckets.clear();
        }
        let bucket = m.buckets.entry(object).or_insert(Bucket {
            tokens: SPAM_BURST,
            at: now,
        });
        let refilled = now.duration_since(bucket.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        bucket.tokens = (bucket.tokens + refilled).min(SPAM_BURST);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return None;
        }
        bucket.tokens -= 1.0;
        if m.seen.len() >= MAX_REMEMBERED {
            m.seen.clear();
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // client-go names Events `<object>.<unix nanos in hex>`.
        let name = format!("{}.{nanos:x}", key.name);
        m.seen.insert(key, (name.clone(), 1));
        Some((name, 1))
    }
}

/// Writes Events one at a time, in order, until every recorder is gone.
async fn write_loop(client: Client, mut rx: mpsc::Receiver<Write>) {
    while let Some(w) = rx.recv().await {
        let ns = w.event.metadata.namespace.clone();
        let name = w.event.metadata.name.clone().unwrap_or_default();
        let result = if w.count == 1 {
            client.create(ns.as_deref(), &w.event).await.map(drop)
        } else {
            let patch = serde_json::json!({
                "count": w.count,
                "lastTimestamp": w.event.last_timestamp,
            });
            match client
                .merge_patch::<Event>(ns.as_deref(), &name, "", &patch)
                .await
            {
                // The first one was lost or has expired: write it anew.
                Err(e) if e.is_not_found() => {
                    let mut event = w.event.clone();
                    event.count = Some(w.count);
                    client.create(ns.as_deref(), &event).await.map(drop)
                }
                other => other.map(drop),
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, event = %name, "event not recorded");
        }
    }
}

/// Now, as the timestamps of Kubernetes objects are typed (jiff's
/// `Timestamp::now` needs a feature k8s-openapi does not enable).
pub fn now() -> k8s_openapi::jiff::Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_nanosecond(nanos).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(message: &str) -> EventKey {
        EventKey {
            kind: "ReplicaSet".into(),
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
            field_path: String::new(),
            type_: EventType::Normal,
            reason: "SuccessfulCreate".into(),
            message: message.into(),
        }
    }

    fn recorder() -> Recorder {
        Recorder {
            component: "test".into(),
            memory: Arc::default(),
            writers: Arc::new(Vec::new()),
        }
    }

    #[test]
    fn repeats_fold_into_one_event() {
        let r = recorder();
        let (a, n) = r.remember(key("same")).unwrap();
        let (b, m) = r.remember(key("same")).unwrap();
        assert_eq!(a, b);
        assert_eq!((n, m), (1, 2));
        assert!(a.starts_with("web."));
    }

    #[test]
    fn an_object_gets_a_burst_of_distinct_events_then_is_filtered() {
        let r = recorder();
        for i in 0..25 {
            assert!(r.remember(key(&format!("m{i}"))).is_some(), "event {i}");
        }
        assert!(r.remember(key("one too many")).is_none());
        // Repeats of an already written one still count.
        assert_eq!(r.remember(key("m0")).unwrap().1, 2);
    }
}
