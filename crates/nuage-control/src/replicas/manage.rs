//! Bringing the number of owned pods to `spec.replicas`: create from the
//! template in slow-start batches (1, 2, 4, …: a template that cannot work
//! fails once, not 500 times), or delete the least useful pods; at most
//! [`BURST`] per reconcile, with a bounded number of requests in flight.

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nuage_client::informer::key_of;

use super::owner::Owner;
use super::pods;
use super::status::ManageError;
use super::{Controller, OwnerKey};
use crate::events::EventType;

/// Pods created or deleted per reconcile at most (Kubernetes'
/// `BurstReplicas`).
pub const BURST: usize = 500;
/// Requests in flight at once.
const IN_FLIGHT: usize = 64;

/// Creates or deletes pods so that `owned` (active, claimed) reaches
/// `owner.replicas`.
pub async fn manage(
    ctl: &Controller,
    key: &OwnerKey,
    owner: &Owner,
    owned: &[Arc<Pod>],
) -> Result<(), ManageError> {
    let want = usize::try_from(owner.replicas.max(0)).unwrap_or(0);
    if owned.len() < want {
        create(ctl, key, owner, (want - owned.len()).min(BURST)).await
    } else if owned.len() > want {
        let mut victims: Vec<Arc<Pod>> = owned.to_vec();
        victims.sort_by(|a, b| pods::least_useful_first(a, b));
        victims.truncate((owned.len() - want).min(BURST));
        delete(ctl, key, owner, victims).await
    } else {
        Ok(())
    }
}

/// The pod a template makes.
fn pod_from_template(owner: &Owner) -> Pod {
    let template = owner.template.clone().unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.name)),
            namespace: Some(owner.namespace.clone()),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner.controller_ref()]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Creating in a namespace being deleted fails by design; it is no failure
/// of the controller's.
fn namespace_terminating(e: &nuage_client::Error) -> bool {
    matches!(e, nuage_client::Error::Api { code: 403, message, .. } if message.contains("being terminated"))
}

fn api_message(e: &nuage_client::Error) -> String {
    match e {
        nuage_client::Error::Api { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// How often a generated name that is already taken is drawn again.
const NAME_RETRIES: usize = 3;

/// Creates one pod. A generated name can collide with that of one of the
/// thousands of pods already made (5 random characters): as Kubernetes'
/// API server does, draw another.
async fn create_one(
    ctl: &Controller,
    owner: &Owner,
    pod: &Pod,
) -> Result<Pod, nuage_client::Error> {
    let mut tries = 0;
    loop {
        match ctl.client.create(Some(&owner.namespace), pod).await {
            Err(nuage_client::Error::Api {
                code: 409, reason, ..
            }) if reason == "AlreadyExists" && tries < NAME_RETRIES => tries += 1,
            other => return other,
        }
    }
}

async fn create(
    ctl: &Controller,
    key: &OwnerKey,
    owner: &Owner,
    n: usize,
) -> Result<(), ManageError> {
    // Expected before the first request: the informer may show a new pod
    // before its create call returns.
    ctl.expectations.expect_creations(key, n);
    let recorder = ctl.recorder(owner.kind);
    let reference = owner.object_reference();
    let template = pod_from_template(owner);
    let mut done = 0;
    let mut batch = 1;
    while done < n {
        let size = batch.min(n - done);
        let results: Vec<Result<Pod, nuage_client::Error>> = stream::iter(0..size)
            .map(|_| create_one(ctl, owner, &template))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        done += size;
        let mut failure = None;
        for r in results {
            match r {
                Ok(pod) => recorder.record(
                    &reference,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {}", pod.metadata.name.unwrap_or_default()),
                ),
                Err(e) => {
                    // This one will never be seen.
                    ctl.expectations.creation_observed(key);
                    if namespace_terminating(&e) {
                        continue;
                    }
                    recorder.record(
                        &reference,
                        EventType::Warning,
                        "FailedCreate",
                        format!("Error creating: {}", api_message(&e)),
                    );
                    failure.get_or_insert(ManageError {
                        reason: "FailedCreate",
                        message: api_message(&e),
                    });
                }
            }
        }
        if let Some(f) = failure {
            // Nor will those not tried.
            ctl.expectations.lower_creations(key, n - done);
            tracing::warn!(owner = %owner.key(), kind = owner.kind.name(), error = %f.message, "creating pods failed");
            return Err(f);
        }
        batch *= 2;
    }
    Ok(())
}

async fn delete(
    ctl: &Controller,
    key: &OwnerKey,
    owner: &Owner,
    victims: Vec<Arc<Pod>>,
) -> Result<(), ManageError> {
    ctl.expectations
        .expect_deletions(key, victims.iter().map(|p| key_of(&p.metadata)));
    let recorder = ctl.recorder(owner.kind);
    let reference = owner.object_reference();
    let results: Vec<(Arc<Pod>, Result<(), nuage_client::Error>)> = stream::iter(victims)
        .map(|pod| async move {
            let r = ctl
                .client
                .delete::<Pod>(
                    Some(&owner.namespace),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    None,
                    pod.metadata.uid.as_deref(),
                )
                .await;
            (pod, r)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut failure = None;
    for (pod, r) in results {
        let pod_key = key_of(&pod.metadata);
        let name = pod.metadata.name.clone().unwrap_or_default();
        match r {
            Ok(()) => {
                recorder.record(
                    &reference,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                );
                // The informer may have shown the deletion before the
                // expectation existed: then it would wait for nothing.
                let gone = ctl.informers.pods.get(&pod_key).is_none_or(|p| {
                    p.metadata.uid != pod.metadata.uid || p.metadata.deletion_timestamp.is_some()
                });
                if gone {
                    ctl.expectations.deletion_observed(key, &pod_key);
                }
            }
            Err(e) => {
                ctl.expectations.deletion_observed(key, &pod_key);
                recorder.record(
                    &reference,
                    EventType::Warning,
                    "FailedDelete",
                    format!("Error deleting: {}", api_message(&e)),
                );
                failure.get_or_insert(ManageError {
                    reason: "FailedDelete",
                    message: api_message(&e),
                });
            }
        }
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ReplicationController;
    use serde_json::json;

    #[test]
    fn pods_from_a_template_name_and_point_to_their_owner() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "rcsise", "namespace": "default", "uid": "u1"},
            "spec": {"replicas": 2, "selector": {"app": "sise"}, "template": {
                "metadata": {"name": "somename", "labels": {"app": "sise"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "sise", "image": "img/serv:0.5.0"}]}
            }}
        }))
        .unwrap();
        let pod = pod_from_template(&Owner::from_rc(&rc).unwrap());
        assert_eq!(pod.metadata.name, None);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("rcsise-"));
        assert_eq!(pod.metadata.labels.unwrap()["app"], "sise");
        let r = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.uid.as_str()),
            ("ReplicationController", "u1")
        );
        assert_eq!(
            (r.controller, r.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(
            pod.spec.unwrap().containers[0].image.as_deref(),
            Some("img/serv:0.5.0")
        );
    }
}
