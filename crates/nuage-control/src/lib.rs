//! The control plane's reconcile loops: the scheduler and the controllers
//! (ReplicationController, ReplicaSet, Deployment, Endpoints and
//! EndpointSlices, node lifecycle, events). Each watches what it needs into
//! a local cache (`nuage_client::informer`), queues the keys of objects to
//! look at (`queue`), and reconciles one key at a time, idempotently,
//! retrying failures with a per-key back-off.
//!
//! It owns deciding; it does not own storage (the API) or running pods (the
//! node agents). It talks to the API through `nuage-client`, like any
//! client.

pub mod deployments;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod nodelifecycle;
pub mod queue;
pub mod replicas;
pub mod scheduler;
pub mod simulated;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use nuage_client::informer::Informer;
use nuage_client::{Client, ListParams};
use tokio::sync::watch;

/// Settings of the controllers (`nuage server` flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// A node whose Lease is older than this is NotReady/Unknown (40 s).
    pub node_monitor_grace: std::time::Duration,
    /// How long pods tolerate an unreachable or not-ready node unless they
    /// say otherwise (30 s).
    pub default_toleration: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            node_monitor_grace: std::time::Duration::from_secs(40),
            default_toleration: std::time::Duration::from_secs(30),
        }
    }
}

/// The caches every controller shares: one copy of each kind in memory,
/// whatever the number of controllers reading it.
pub struct Informers {
    /// The API client.
    pub client: Client,
    /// Every pod.
    pub pods: Arc<Informer<Pod>>,
    /// Every node.
    pub nodes: Arc<Informer<Node>>,
    /// Node heartbeats (`kube-node-lease`).
    pub leases: Arc<Informer<Lease>>,
    /// ReplicationControllers.
    pub replication_controllers: Arc<Informer<ReplicationController>>,
    /// ReplicaSets.
    pub replica_sets: Arc<Informer<ReplicaSet>>,
    /// Deployments.
    pub deployments: Arc<Informer<Deployment>>,
    /// Services.
    pub services: Arc<Informer<Service>>,
    /// Endpoints (the endpoints controller's output).
    pub endpoints: Arc<Informer<Endpoints>>,
    /// EndpointSlices (the endpoints controller's output).
    pub endpoint_slices: Arc<Informer<EndpointSlice>>,
}

impl Informers {
    /// Informers over everything (not started: register handlers first).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            pods: Informer::new(ListParams::default()),
            nodes: Informer::new(ListParams::default()),
            leases: Informer::new(ListParams::fields("metadata.namespace=kube-node-lease")),
            replication_controllers: Informer::new(ListParams::default()),
            replica_sets: Informer::new(ListParams::default()),
            deployments: Informer::new(ListParams::default()),
            services: Informer::new(ListParams::default()),
            endpoints: Informer::new(ListParams::default()),
            endpoint_slices: Informer::new(ListParams::default()),
        }
    }

    /// Starts every informer and waits until each has its first list.
    pub async fn start(&self, stop: &watch::Receiver<bool>) {
        let c = &self.client;
        tokio::spawn(Arc::clone(&self.pods).run(c.clone(), stop.clone()));
        tokio::spawn(Arc::clone(&self.nodes).run(c.clone(), stop.clone()));
        tokio::spawn(Arc::clone(&self.leases).run(c.clone(), stop.clone()));
        tokio::spawn(Arc::clone(&self.replication_controllers).run(c.clone(), stop.clone()));
        tokio::spawn(Arc::clone(&self.replica_sets).run(c.clone(), stop.clone()));
        tokio::spawn(Arc::clone(&self.deployments).run(c.clone(), stop.clone()));
        tokio::spawn(Arc::clone(&self.services).run(c.clone(), stop.clone()));
        tokio::spawn(Arc::clone(&self.endpoints).run(c.clone(), stop.clone()));
        tokio::spawn(Arc::clone(&self.endpoint_slices).run(c.clone(), stop.clone()));
        let synced = async {
            self.pods.wait_synced().await;
            self.nodes.wait_synced().await;
            self.leases.wait_synced().await;
            self.replication_controllers.wait_synced().await;
            self.replica_sets.wait_synced().await;
            self.deployments.wait_synced().await;
            self.services.wait_synced().await;
            self.endpoints.wait_synced().await;
            self.endpoint_slices.wait_synced().await;
        };
        let mut stop = stop.clone();
        tokio::select! {
            _ = synced => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}

/// Runs the scheduler and every controller until `stop`.
///
/// Each controller module has `pub fn start(informers: &Arc<Informers>,
/// settings: &Settings, stop: watch::Receiver<bool>) -> JoinHandle<()>`:
/// it registers its informer handlers (which only enqueue keys), then
/// spawns its workers, which wait for the informers to sync before their
/// first reconcile and end at `stop`.
pub async fn run(client: Client, settings: Settings, stop: watch::Receiver<bool>) {
    let informers = Arc::new(Informers::new(client));
    let tasks: Vec<tokio::task::JoinHandle<()>> = vec![
        // controllers: one line each
        deployments::start(&informers, &settings, stop.clone()),
        endpoints::start(&informers, &settings, stop.clone()),
        gc::start(&informers, &settings, stop.clone()),
        nodelifecycle::start(&informers, &settings, stop.clone()),
        replicas::start(&informers, &settings, stop.clone()),
        scheduler::start(&informers, &settings, stop.clone()),
        simulated::start(&informers, &settings, stop.clone()),
    ];
    informers.start(&stop).await;
    tracing::info!(controllers = tasks.len(), "controllers started");
    let _ = settings;
    for t in tasks {
        let _ = t.await;
    }
    let mut stop = stop;
    let _ = stop.wait_for(|s| *s).await;
}
