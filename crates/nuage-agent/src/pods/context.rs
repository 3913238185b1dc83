//! What every pod worker shares: the API client, the runtimes, the image
//! store, the pod network, the event recorder, and the node's admission
//! check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use nuage_client::Client;

use super::events::Recorder;
use super::spec;
use crate::images::ImageStore;
use crate::network::PodNetwork;
use crate::runtime::Runtime;

/// The runtimes of this node, by `runtimeClassName`.
pub struct Runtimes {
    /// Used when a pod names no runtime class.
    pub default: Arc<dyn Runtime>,
    /// `process`, `runc`, `crun`, `oci` (the default OCI runtime), …
    pub by_class: BTreeMap<String, Arc<dyn Runtime>>,
}

impl Runtimes {
    /// The runtime for a pod's `runtimeClassName`, or why there is none.
    pub fn pick(&self, class: Option<&str>) -> Result<Arc<dyn Runtime>, String> {
        match class {
            None | Some("") => Ok(Arc::clone(&self.default)),
            Some(name) => self.by_class.get(name).cloned().ok_or_else(|| {
                format!(
                    "runtime class {name:?} is not available on this node (available: {})",
                    self.by_class.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }),
        }
    }
}

/// Shared by all pod workers.
pub struct Context {
    /// The API.
    pub client: Client,
    /// This node's name.
    pub node: String,
    /// This node's address (the pods' `hostIP`).
    pub host_ip: String,
    /// `<agent dir>/pods`: one directory per pod uid.
    pub pods_dir: PathBuf,
    /// The local image store.
    pub images: ImageStore,
    /// Pod networking.
    pub network: Arc<PodNetwork>,
    /// Runtimes.
    pub runtimes: Runtimes,
    /// Events.
    pub events: Recorder,
    /// Allocatable (millicores, bytes).
    pub allocatable: (i128, i128),
    /// Requests of the pods admitted: uid → (millicores, bytes).
    pub admitted: Mutex<BTreeMap<String, (i128, i128)>>,
}

impl Context {
    /// The kubelet's admission: a pod whose requests do not fit in what
    /// the node has left is rejected (`OutOfcpu`, `OutOfmemory`).
    pub fn admit(&self, pod: &Pod) -> Option<(String, String)> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (cpu, memory) = spec::pod_requests(pod);
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        if admitted.contains_key(&uid) {
            return None;
        }
        let used = admitted
            .values()
            .fold((0, 0), |acc, (c, m)| (acc.0 + c, acc.1 + m));
        let (cap_cpu, cap_mem) = self.allocatable;
        if memory > 0 && used.1 + memory > cap_mem {
            return Some((
                "OutOfmemory".into(),
                format!(
                    "Pod was rejected: Node didn't have enough resource: memory, requested: {memory}, used: {}, capacity: {cap_mem}",
                    used.1
                ),
            ));
        }
        if cpu > 0 && used.0 + cpu > cap_cpu {
            return Some((
                "OutOfcpu".into(),
                format!(
                    "Pod was rejected: Node didn't have enough resource: cpu, requested: {cpu}, used: {}, capacity: {cap_cpu}",
                    used.0
                ),
            ));
        }
        admitted.insert(uid, (cpu, memory));
        None
    }

    /// Forgets a pod's requests once it is gone.
    pub fn release(&self, uid: &str) {
        self.admitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }
}
