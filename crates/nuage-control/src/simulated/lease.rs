//! The heartbeats of every simulated node from one task: each second it
//! picks the alive simulated nodes whose Lease is 10 s old and renews them,
//! a bounded number of requests at a time. A thousand nodes cost one scan
//! of the node cache per second and a hundred small writes per second,
//! which the API commits in groups.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use nuage_client::Client;
use tokio::sync::watch;

use crate::Informers;

/// How often a node's Lease is renewed (the kubelet's default).
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often due renewals are looked for (a renewal is at most this
/// late; half of it is allowed early, so that one made just after a tick
/// is due ten ticks later, not eleven).
const TICK: Duration = Duration::from_secs(1);
/// The Lease's duration, as the kubelet writes it.
const LEASE_SECONDS: i32 = 40;
/// Renewals in flight at once.
const CONCURRENCY: usize = 32;
const NAMESPACE: &str = "kube-node-lease";

/// The heartbeat task of the simulated nodes.
pub struct Heartbeats {
    informers: Arc<Informers>,
}

impl Heartbeats {
    /// Heartbeats for the simulated nodes in `informers`' node cache.
    pub fn new(informers: &Arc<Informers>) -> Self {
        Self {
            informers: Arc::clone(informers),
        }
    }

    /// Renews due Leases every second until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut renewed: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let alive = self.informers.nodes.filter(super::is_alive);
            // A node that stopped (or went) renews at once when it is back.
            let names: HashSet<&str> = alive
                .iter()
                .filter_map(|n| n.metadata.name.as_deref())
                .collect();
            renewed.retain(|name, _| names.contains(name.as_str()));
            let due: Vec<(String, String)> = alive
                .iter()
                .filter_map(|n| {
                    let name = n.metadata.name.clone()?;
                    let fresh = renewed
                        .get(&name)
                        .is_some_and(|at| at.elapsed() + TICK / 2 < RENEW_EVERY);
                    (!fresh).then(|| (name, n.metadata.uid.clone().unwrap_or_default()))
                })
                .collect();
            if due.is_empty() {
                continue;
            }
            let client = &self.informers.client;
            let started = Instant::now();
            let results: Vec<(String, Result<(), nuage_client::Error>)> =
                futures::stream::iter(due)
                    .map(|(name, uid)| async move {
                        let r = renew(client, &name, &uid).await;
                        (name, r)
                    })
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await;
            let mut failed = 0;
            for (name, result) in results {
                match result {
                    Ok(()) => {
                        renewed.insert(name, started);
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::debug!(node = %name, error = %e, "simulated lease renewal failed");
                    }
                }
            }
            if failed > 0 {
                tracing::warn!(
                    failed,
                    "simulated lease renewals failed; retrying next second"
                );
            }
        }
    }
}

/// Renews `kube-node-lease/<node>`, creating it (owned by the Node, so it
/// goes with it) if missing.
async fn renew(client: &Client, node: &str, node_uid: &str) -> Result<(), nuage_client::Error> {
    let now = MicroTime(super::now());
    let patch = serde_json::json!({ "spec": {
        "holderIdentity": node,
        "leaseDurationSeconds": LEASE_SECONDS,
        "renewTime": now,
    } });
    match client
        .merge_patch::<Lease>(Some(NAMESPACE), node, "", &patch)
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let lease = nuage_client::node_lease(node, node_uid, now, LEASE_SECONDS);
    match client.create(Some(NAMESPACE), &lease).await {
        Ok(_) => Ok(()),
        // Created meanwhile: the next round patches it.
        Err(e) if e.is_conflict() => Ok(()),
        Err(e) => Err(e),
    }
}
