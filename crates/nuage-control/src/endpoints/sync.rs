//! One Service's reconcile: compute what its Endpoints and EndpointSlices
//! should hold, compare with the cache, and write only what differs.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use nuage_client::{Client, Error};

use super::desired::{self, SliceContent};
use super::{managed_slice_service, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use crate::Informers;

/// The label Kubernetes puts on a headless Service's endpoints.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The node label giving its zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Brings the Endpoints and EndpointSlices of Service `key` up to date.
pub(super) async fn sync_service(informers: &Informers, key: &str) -> Result<(), Error> {
    let client = &informers.client;
    let (ns, name) = key.split_once('/').unwrap_or(("default", key));
    let slices: Vec<Arc<EndpointSlice>> = informers.endpoint_slices.filter(|s| {
        s.metadata.namespace.as_deref() == Some(ns)
            && managed_slice_service(s).as_deref() == Some(key)
    });
    let Some(svc) = informers.services.get(key) else {
        // The Service is gone: so is what we made for it (the slices are
        // usually gone already, through their owner reference).
        if informers.endpoints.get(key).is_some() {
            client
                .delete::<Endpoints>(Some(ns), name, None, None)
                .await?;
        }
        for s in slices {
            let slice_name = s.metadata.name.as_deref().unwrap_or_default();
            client
                .delete::<EndpointSlice>(Some(ns), slice_name, None, None)
                .await?;
        }
        return Ok(());
    };
    let Some(selector) = desired::selector(&svc) else {
        return Ok(());
    };
    let pods = informers
        .pods
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && desired::selects(selector, p));
    let pod_refs: Vec<_> = pods.iter().map(|p| p.as_ref()).collect();
    let zone_of = |node: &str| {
        informers
            .nodes
            .get(node)
            .and_then(|n| n.metadata.labels.as_ref()?.get(ZONE_LABEL).cloned())
    };
    let want = desired::desired(&svc, &pod_refs, zone_of);
    sync_endpoints(client, informers, &svc, &want).await?;
    sync_slices(client, &svc, &desired::slices(&want), &slices).await
}

/// The labels of the Service's Endpoints: the Service's own, and the
/// headless marker.
fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if desired::headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

async fn sync_endpoints(
    client: &Client,
    informers: &Informers,
    svc: &Service,
    want: &desired::Desired,
) -> Result<(), Error> {
    let ns = svc.metadata.namespace.as_deref();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let subsets = desired::subsets(svc, want);
    let labels = endpoints_labels(svc);
    let key = format!("{}/{name}", ns.unwrap_or_default());
    match informers.endpoints.get(&key) {
        Some(cur) => {
            let same = cur.subsets.clone().unwrap_or_default() == subsets
                && cur.metadata.labels.clone().unwrap_or_default() == labels;
            if same {
                return Ok(());
            }
            let mut new = (*cur).clone();
            new.subsets = Some(subsets);
            new.metadata.labels = Some(labels);
            tracing::debug!(endpoints = %key, "updating endpoints");
            client.replace(ns, &new).await?;
        }
        None => {
            let new = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: ns.map(str::to_string),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                subsets: Some(subsets),
            };
            tracing::debug!(endpoints = %key, "creating endpoints");
            client.create(ns, &new).await?;
        }
    }
    Ok(())
}

/// What one slice of the Service should carry besides its content.
fn slice_meta(svc: &Service) -> (BTreeMap<String, String>, Vec<OwnerReference>) {
    let mut labels = endpoints_labels(svc);
    labels.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    (labels, vec![owner])
}

/// What to do with the Service's slices.
#[derive(Debug, Default)]
struct SlicePlan {
    /// New slices.
    create: Vec<SliceContent>,
    /// Existing slices (by index) rewritten with new content.
    update: Vec<(usize, SliceContent)>,
    /// Existing slices (by index) with the right content but other labels
    /// or owners.
    relabel: Vec<usize>,
    /// Existing slices (by index) no longer needed.
    delete: Vec<usize>,
}

fn holds(slice: &EndpointSlice, content: &SliceContent) -> bool {
    slice.ports.clone().unwrap_or_default() == content.ports && slice.endpoints == content.endpoints
}

/// Matches the wanted contents with the existing slices: a slice that
/// already holds one is kept, the rest are rewritten in place before any
/// is created or deleted (fewer writes, no churn of names).
fn plan_slices(
    existing: &[Arc<EndpointSlice>],
    want: &[SliceContent],
    meta_ok: impl Fn(&EndpointSlice) -> bool,
) -> SlicePlan {
    let mut plan = SlicePlan::default();
    let mut used = vec![false; existing.len()];
    let mut pending = Vec::new();
    for content in want {
        match (0..existing.len()).find(|&i| !used[i] && holds(&existing[i], content)) {
            Some(i) => {
                used[i] = true;
                if !meta_ok(&existing[i]) {
                    plan.relabel.push(i);
                }
            }
            None => pending.push(content.clone()),
        }
    }
    for content in pending {
        match (0..existing.len()).find(|&i| !used[i]) {
            Some(i) => {
                used[i] = true;
                plan.update.push((i, content));
            }
            None => plan.create.push(content),
        }
    }
    plan.delete = (0..existing.len()).filter(|&i| !used[i]).collect();
    plan
}

async fn sync_slices(
    client: &Client,
    svc: &Service,
    want: &[SliceContent],
    existing: &[Arc<EndpointSlice>],
) -> Result<(), Error> {
    let ns = svc.metadata.namespace.as_deref();
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let (labels, owners) = slice_meta(svc);
    // Only IPv4 slices are ours to reconcile (pods have IPv4 addresses).
    let existing: Vec<Arc<EndpointSlice>> = existing
        .iter()
        .filter(|s| s.address_type == "IPv4")
        .cloned()
        .collect();
    let meta_ok = |s: &EndpointSlice| {
        s.metadata.labels.as_ref() == Some(&labels)
            && s.metadata.owner_references.as_ref() == Some(&owners)
    };
    let plan = plan_slices(&existing, want, meta_ok);
    let fill = |slice: &mut EndpointSlice, content: Option<&SliceContent>| {
        slice.metadata.labels = Some(labels.clone());
        slice.metadata.owner_references = Some(owners.clone());
        slice.address_type = "IPv4".into();
        if let Some(c) = content {
            slice.ports = (!c.ports.is_empty()).then(|| c.ports.clone());
            slice.endpoints = c.endpoints.clone();
        }
    };
    for content in &plan.create {
        let mut slice = EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(format!("{svc_name}-")),
                namespace: ns.map(str::to_string),
                ..ObjectMeta::default()
            },
            ..EndpointSlice::default()
        };
        fill(&mut slice, Some(content));
        client.create(ns, &slice).await?;
    }
    for (i, content) in &plan.update {
        let mut slice = (*existing[*i]).clone();
        fill(&mut slice, Some(content));
        client.replace(ns, &slice).await?;
    }
    for i in &plan.relabel {
        let mut slice = (*existing[*i]).clone();
        fill(&mut slice, None);
        client.replace(ns, &slice).await?;
    }
    for i in &plan.delete {
        let name = existing[*i].metadata.name.as_deref().unwrap_or_default();
        client.delete::<EndpointSlice>(ns, name, None, None).await?;
    }
    if !(plan.create.is_empty()
        && plan.update.is_empty()
        && plan.relabel.is_empty()
        && plan.delete.is_empty())
    {
        tracing::debug!(
            service = %svc_name,
            created = plan.create.len(),
            updated = plan.update.len() + plan.relabel.len(),
            deleted = plan.delete.len(),
            "endpoint slices written"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort};

    fn content(ips: &[&str], port: i32) -> SliceContent {
        SliceContent {
            ports: vec![EndpointPort {
                name: Some("http".into()),
                port: Some(port),
                protocol: Some("TCP".into()),
                app_protocol: None,
            }],
            endpoints: ips
                .iter()
                .map(|ip| Endpoint {
                    addresses: vec![ip.to_string()],
                    ..Endpoint::default()
                })
                .collect(),
        }
    }

    fn slice(c: &SliceContent) -> Arc<EndpointSlice> {
        Arc::new(EndpointSlice {
            address_type: "IPv4".into(),
            ports: Some(c.ports.clone()),
            endpoints: c.endpoints.clone(),
            ..EndpointSlice::default()
        })
    }

    #[test]
    fn unchanged_slices_are_not_written_and_changed_ones_are_reused() {
        let a = content(&["10.0.0.1"], 80);
        let b = content(&["10.0.0.2"], 81);
        let existing = vec![slice(&a), slice(&b)];
        let same = plan_slices(&existing, &[a.clone(), b.clone()], |_| true);
        assert!(same.create.is_empty() && same.update.is_empty() && same.delete.is_empty());
        // b changed: rewritten in place, not deleted and created.
        let b2 = content(&["10.0.0.2", "10.0.0.3"], 81);
        let p = plan_slices(&existing, &[a.clone(), b2], |_| true);
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].0, 1);
        assert!(p.create.is_empty() && p.delete.is_empty());
        // One slice fewer: deleted; one more: created.
        let p = plan_slices(&existing, std::slice::from_ref(&a), |_| true);
        assert_eq!(p.delete, vec![1]);
        let c = content(&["10.0.0.9"], 82);
        let p = plan_slices(&existing, &[a, b, c], |_| false);
        assert_eq!(p.create.len(), 1);
        assert_eq!(p.relabel.len(), 2);
    }
}
