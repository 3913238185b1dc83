//! Events about pods (`kubectl describe pod`, `kubectl get events`): the
//! agent records what it did and what failed, as the kubelet does, with
//! repeats folded into one Event whose count grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use nuage_client::Client;

/// (pod uid, reason, message): what makes two events the same.
type EventKey = (String, String, String);

/// Writes Events in the background; never blocks the pod it reports on.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    node: String,
    /// (pod uid, reason, message) → (event name, count).
    seen: Arc<Mutex<HashMap<EventKey, (String, i32)>>>,
}

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Something happened as planned.
    Normal,
    /// Something failed.
    Warning,
}

impl Recorder {
    /// A recorder writing as the agent of `node`.
    pub fn new(client: Client, node: String) -> Self {
        Self {
            client,
            node,
            seen: Arc::default(),
        }
    }

    /// Records `reason: message` about `pod` (and one of its containers,
    /// through `field_path` like `spec.containers{web}`).
    pub fn pod(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        kind: Kind,
        reason: &str,
        message: String,
    ) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let key = (uid.clone(), reason.to_string(), message.clone());
        let (event_name, count) = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() > 10_000 {
                seen.clear();
            }
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let entry = seen
                .entry(key)
                .or_insert_with(|| (format!("{name}.{nanos:x}"), 0));
            entry.1 += 1;
            entry.clone()
        };
        match kind {
            Kind::Normal => {
                tracing::info!(pod = %format!("{ns}/{name}"), reason, %message, "event")
            }
            Kind::Warning => {
                tracing::warn!(pod = %format!("{ns}/{name}"), reason, %message, "event")
            }
        }
        let now = Time(crate::now());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name.clone()),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name),
                namespace: Some(ns.clone()),
                uid: Some(uid),
                field_path,
                resource_version: pod.metadata.resource_version.clone(),
            },
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(match kind {
                Kind::Normal => "Normal".into(),
                Kind::Warning => "Warning".into(),
            }),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            count: Some(count),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            ..Event::default()
        };
        let client = self.client.clone();
        tokio::spawn(async move {
            let result = if count == 1 {
                client.create(Some(&ns), &event).await.map(drop)
            } else {
                let patch = serde_json::json!({
                    "count": count,
                    "lastTimestamp": event.last_timestamp,
                });
                client
                    .merge_patch::<Event>(Some(&ns), &event_name, "", &patch)
                    .await
                    .map(drop)
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "event not recorded");
            }
        });
    }
}
