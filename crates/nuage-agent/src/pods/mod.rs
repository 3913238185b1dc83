//! The pods bound to this node: a list + watch of `spec.nodeName=<node>`
//! keeps one worker task per pod; containers and sandboxes whose pod no
//! longer exists are removed.

mod context;
mod events;
mod sandbox;
pub mod spec;
pub mod status;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use nuage_client::{ListParams, WatchEvent};
use tokio::sync::watch;

pub use context::{Context, Runtimes};
pub use events::Recorder;

use crate::runtime::{ExecSession, ExecSpec};
use crate::server::{LogFiles, LookupError, PodContainers};

struct Entry {
    namespace: String,
    name: String,
    tx: watch::Sender<Option<Pod>>,
    shared: Arc<worker::Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// Keeps a worker per pod bound to this node.
pub struct PodManager {
    ctx: Arc<Context>,
    pods: Mutex<HashMap<String, Entry>>,
}

impl PodManager {
    /// A manager over `ctx`.
    pub fn new(ctx: Arc<Context>) -> Arc<Self> {
        Arc::new(Self {
            ctx,
            pods: Mutex::new(HashMap::new()),
        })
    }

    /// Lists and watches this node's pods until `stop`; on stop the workers
    /// end and the containers keep running (the next agent adopts them).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let params = ListParams::fields(format!("spec.nodeName={}", self.ctx.node));
        let mut first = true;
        let mut retry = tokio::time::interval(Duration::from_secs(1));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'relist: loop {
            if *stop.borrow() {
                break;
            }
            let list = match self.ctx.client.list::<Pod>(None, &params).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "list pods failed; retrying");
                    tokio::select! { _ = retry.tick() => continue, _ = stop.changed() => break }
                }
            };
            let rv = list.metadata.resource_version.clone().unwrap_or_default();
            let present: BTreeMap<String, Pod> = list
                .items
                .into_iter()
                .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
                .collect();
            // Pods gone while we were not watching.
            let stale: Vec<String> = {
                let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
                pods.keys()
                    .filter(|u| !present.contains_key(*u))
                    .cloned()
                    .collect()
            };
            for uid in stale {
                self.removed(&uid);
            }
            if first {
                first = false;
                self.remove_orphans(&present).await;
            }
            for pod in present.into_values() {
                self.upsert(pod);
            }
            let mut stream = match self.ctx.client.watch::<Pod>(None, &params, &rv).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "watch pods failed; relisting");
                    tokio::select! { _ = retry.tick() => continue, _ = stop.changed() => break }
                }
            };
            loop {
                let event = tokio::select! {
                    e = stream.next() => e,
                    _ = stop.changed() => break 'relist,
                };
                match event {
                    Some(Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod))) => {
                        self.upsert(pod)
                    }
                    Some(Ok(WatchEvent::Deleted(pod))) => {
                        if let Some(uid) = pod.metadata.uid.as_deref() {
                            self.removed(uid);
                        }
                    }
                    Some(Ok(WatchEvent::Bookmark(_))) => {}
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "pod watch ended; relisting");
                        continue 'relist;
                    }
                    None => continue 'relist,
                }
            }
        }
        // Stop: drop the senders so workers return, and wait for them.
        let entries: Vec<Entry> = self
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, e)| e)
            .collect();
        for e in entries {
            drop(e.tx);
            let _ = e.task.await;
        }
    }

    fn upsert(&self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.retain(|_, e| !e.task.is_finished());
        if let Some(entry) = pods.get(&uid) {
            entry.tx.send_replace(Some(pod));
            return;
        }
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let (tx, rx) = watch::channel(Some(pod));
        let shared = Arc::new(worker::Shared::default());
        let task = tokio::spawn(worker::run(Arc::clone(&self.ctx), rx, Arc::clone(&shared)));
        pods.insert(
            uid,
            Entry {
                namespace,
                name,
                tx,
                shared,
                task,
            },
        );
    }

    fn removed(&self, uid: &str) {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = pods.get(uid) {
            entry.tx.send_replace(None);
        }
    }

    /// Containers and sandboxes of pods that no longer exist (deleted while
    /// no agent ran) are removed.
    async fn remove_orphans(&self, present: &BTreeMap<String, Pod>) {
        let mut runtimes: Vec<_> = vec![Arc::clone(&self.ctx.runtimes.default)];
        runtimes.extend(self.ctx.runtimes.by_class.values().cloned());
        for runtime in runtimes {
            let Ok(list) = runtime.list().await else {
                continue;
            };
            for c in list {
                if !present.contains_key(&c.pod_uid) {
                    tracing::info!(container = %c.id, pod = %c.pod_uid, "removing container of a pod that is gone");
                    let _ = runtime.kill(&c.id, 9).await;
                    let _ = runtime.remove(&c.id).await;
                }
            }
        }
        if let Ok(allocated) = self.ctx.network.allocations() {
            for (uid, _) in allocated {
                if !present.contains_key(&uid) {
                    sandbox::Sandbox::destroy_by_uid(&self.ctx, &uid).await;
                }
            }
        }
        if let Ok(dirs) = std::fs::read_dir(&self.ctx.pods_dir) {
            for d in dirs.filter_map(Result::ok) {
                let uid = d.file_name().to_string_lossy().into_owned();
                if !present.contains_key(&uid) {
                    sandbox::Sandbox::destroy_by_uid(&self.ctx, &uid).await;
                    let _ = std::fs::remove_dir_all(d.path());
                }
            }
        }
    }

    fn live(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<worker::Live, LookupError> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pods
            .values()
            .find(|e| e.namespace == namespace && e.name == pod)
            .ok_or_else(|| LookupError::PodNotFound {
                namespace: namespace.into(),
                pod: pod.into(),
            })?;
        let containers = entry
            .shared
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let known = entry
            .tx
            .borrow()
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .is_some_and(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|c| c.name == container)
            });
        match containers.get(container) {
            Some(live) => Ok(live.clone()),
            None if known => Err(LookupError::NotReady(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ))),
            None => Err(LookupError::ContainerNotFound {
                pod: pod.into(),
                container: container.into(),
            }),
        }
    }
}

#[async_trait::async_trait]
impl PodContainers for PodManager {
    fn logs(&self, namespace: &str, pod: &str, container: &str) -> Result<LogFiles, LookupError> {
        let live = self.live(namespace, pod, container)?;
        Ok(LogFiles {
            current: live.log,
            previous: live.previous_log,
            running: live.running,
        })
    }

    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        spec: ExecSpec,
    ) -> Result<ExecSession, LookupError> {
        let live = self.live(namespace, pod, container)?;
        if !*live.running.borrow() {
            return Err(LookupError::NotReady(format!(
                "container {container} is not running in pod {pod}"
            )));
        }
        live.runtime
            .exec(&live.id, spec)
            .await
            .map_err(|e| LookupError::Internal(format!("{e:#}")))
    }
}
