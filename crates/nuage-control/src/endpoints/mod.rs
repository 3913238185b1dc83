//! The endpoints controller: keeps each selector Service's `Endpoints`
//! object and `discovery.k8s.io/v1` EndpointSlices equal to the pods it
//! selects (ready and not-ready addresses, named ports resolved per pod).
//!
//! Keys are Services (`namespace/name`). A pod change queues the Services
//! that select it now and those that selected it before (its labels may
//! have changed); a change to an Endpoints or EndpointSlice we manage
//! queues its Service, so edits by others are put back. Services without a
//! selector are left alone: their Endpoints are the user's.

pub mod desired;
mod sync;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use nuage_client::informer::{key_of, Event};
use tokio::sync::watch;
use tracing::Instrument;

use crate::queue::WorkQueue;
use crate::{Informers, Settings};

/// `endpointslice.kubernetes.io/managed-by` on the slices we own.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's controller.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// Workers reconciling Services at once.
const WORKERS: usize = 2;

/// Pod key → the Services it was last queued for (to catch label changes
/// that take a pod out of a Service).
type Membership = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// Registers the handlers and spawns the workers.
pub fn start(
    informers: &Arc<Informers>,
    _settings: &Settings,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let queue: WorkQueue<String> = WorkQueue::new();
    let membership: Membership = Arc::default();

    let q = queue.clone();
    informers.services.on_event(move |e| {
        let (Event::Applied(s) | Event::Deleted(s)) = e;
        q.add(key_of(&s.metadata));
    });

    let q = queue.clone();
    let services = Arc::clone(&informers.services);
    let members = Arc::clone(&membership);
    informers.pods.on_event(move |e| {
        let (pod, gone) = match e {
            Event::Applied(p) => (p, false),
            Event::Deleted(p) => (p, true),
        };
        let pod_key = key_of(&pod.metadata);
        let now = if gone {
            Vec::new()
        } else {
            selecting(&services.list(), pod)
        };
        let mut m = members.lock().unwrap_or_else(|e| e.into_inner());
        let before = if now.is_empty() {
            m.remove(&pod_key)
        } else {
            m.insert(pod_key, now.clone())
        };
        for key in now.iter().chain(before.iter().flatten()) {
            q.add(key.clone());
        }
    });

    // Someone else's edit or delete of what we manage: put it back. Only
    // for Services with a selector, so user-managed Endpoints are never
    // touched.
    let q = queue.clone();
    let services = Arc::clone(&informers.services);
    informers.endpoints.on_event(move |e| {
        let (Event::Applied(ep) | Event::Deleted(ep)) = e;
        let key = key_of(&ep.metadata);
        if services
            .get(&key)
            .is_some_and(|s| desired::selector(&s).is_some())
        {
            q.add(key);
        }
    });
    let q = queue.clone();
    informers.endpoint_slices.on_event(move |e| {
        let (Event::Applied(s) | Event::Deleted(s)) = e;
        if let Some(key) = managed_slice_service(s) {
            q.add(key);
        }
    });

    let informers = Arc::clone(informers);
    tokio::spawn(
        async move {
            let mut stop = stop;
            let synced = async {
                informers.services.wait_synced().await;
                informers.pods.wait_synced().await;
                informers.nodes.wait_synced().await;
                informers.endpoints.wait_synced().await;
                informers.endpoint_slices.wait_synced().await;
            };
            tokio::select! {
                _ = synced => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let workers: Vec<_> = (0..WORKERS)
                .map(|_| tokio::spawn(work(Arc::clone(&informers), queue.clone())))
                .collect();
            let _ = stop.wait_for(|s| *s).await;
            queue.shut_down();
            for w in workers {
                let _ = w.await;
            }
        }
        .instrument(tracing::info_span!("endpoints-controller")),
    )
}

/// The keys of the Services in `pod`'s namespace that select it.
fn selecting(services: &[Arc<Service>], pod: &Pod) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref();
    services
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == ns)
        .filter(|s| desired::selector(s).is_some_and(|sel| desired::selects(sel, pod)))
        .map(|s| key_of(&s.metadata))
        .collect()
}

/// The Service key of a slice this controller manages.
fn managed_slice_service(slice: &EndpointSlice) -> Option<String> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    let svc = labels.get(SERVICE_NAME_LABEL)?;
    Some(format!(
        "{}/{svc}",
        slice.metadata.namespace.as_deref().unwrap_or_default()
    ))
}

async fn work(informers: Arc<Informers>, queue: WorkQueue<String>) {
    while let Some(key) = queue.get().await {
        let span = tracing::debug_span!("sync-service", service = %key);
        match sync::sync_service(&informers, &key).instrument(span).await {
            Ok(()) => queue.forget(&key),
            Err(e) => {
                tracing::debug!(service = %key, error = %e, "endpoints sync failed; retrying");
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}
