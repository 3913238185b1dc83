//! The scheduling task: takes pod keys from the queue one at a time,
//! decides against the cache, assumes the pod on its node, and hands the
//! binding to a task of its own (at most [`BINDS_IN_FLIGHT`] at once, so
//! deciding never waits for the API unless that many are pending); or
//! reports why the pod fits nowhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use nuage_client::informer::key_of;
use serde_json::{json, Value};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::algorithm::Algorithm;
use super::{is_ours, Scheduler};
use crate::events::{reference, EventType};

/// Bindings (and unschedulable reports) in flight at once.
const BINDS_IN_FLIGHT: usize = 16;
/// How often parked pods are checked for having waited too long.
const STALE_CHECK: Duration = Duration::from_secs(30);

/// Runs the scheduler until `stop`.
pub(super) async fn run(s: Arc<Scheduler>, mut stop: watch::Receiver<bool>) {
    let synced = async {
        s.informers.pods.wait_synced().await;
        s.informers.nodes.wait_synced().await;
    };
    tokio::select! {
        _ = synced => {}
        _ = stop.wait_for(|v| *v) => return,
    }
    tracing::info!("scheduler started");
    let side = {
        let s = Arc::clone(&s);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STALE_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let keys = s.state().unschedulable.unpark_stale(Instant::now());
                        s.requeue(keys);
                    }
                    _ = stop.wait_for(|v| *v) => break,
                }
            }
            s.queue.shut_down();
        })
    };
    let binds = Arc::new(Semaphore::new(BINDS_IN_FLIGHT));
    let mut algorithm = Algorithm::default();
    while let Some(key) = s.queue.get().await {
        if *stop.borrow() {
            s.queue.done(&key);
            break;
        }
        schedule_one(&s, &mut algorithm, &binds, &key).await;
        s.queue.done(&key);
    }
    let _ = side.await;
    tracing::info!("scheduler stopped");
}

/// One pod: decide, assume, and start the binding; or park and report.
async fn schedule_one(
    s: &Arc<Scheduler>,
    algorithm: &mut Algorithm,
    binds: &Arc<Semaphore>,
    key: &str,
) {
    let Some(pod) = s.informers.pods.get(key) else {
        return;
    };
    if !is_ours(&pod) {
        return;
    }
    let decision = {
        let mut st = s.state();
        if st.cache.is_placed(key) {
            // Assumed: its binding is in flight.
            return;
        }
        match algorithm.schedule(&pod, &st.cache) {
            Ok(node) => {
                st.cache.assume(Arc::clone(&pod), &node);
                Ok(node)
            }
            Err(e) => {
                let now = Instant::now();
                st.unschedulable.failed(key, now);
                st.unschedulable.park(key, Arc::clone(&pod), now);
                Err(e)
            }
        }
    };
    let Ok(permit) = Arc::clone(binds).acquire_owned().await else {
        return;
    };
    match decision {
        Ok(node) => {
            let span = tracing::debug_span!("bind", pod = %key, node = %node);
            tokio::spawn(bind(Arc::clone(s), pod, node, permit).instrument(span));
        }
        Err(fit) => {
            let message = fit.message();
            tracing::debug!(pod = %key, %message, "unschedulable");
            let span = tracing::debug_span!("unschedulable", pod = %key);
            tokio::spawn(
                report_unschedulable(Arc::clone(s), pod, message, permit).instrument(span),
            );
        }
    }
}

/// Writes the binding; on failure forgets the assumption and retries the
/// pod after its back-off.
async fn bind(s: Arc<Scheduler>, pod: Arc<Pod>, node: String, _permit: OwnedSemaphorePermit) {
    let key = key_of(&pod.metadata);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match s.informers.client.bind_pod(ns, name, &node).await {
        Ok(()) => {
            s.state().unschedulable.remove(&key);
            s.events.record(
                &reference(&*pod),
                EventType::Normal,
                "Scheduled",
                format!("Successfully assigned {ns}/{name} to {node}"),
            );
            if scheduled_condition(&pod).is_some_and(|c| c["status"] == "False") {
                // kube-apiserver's binding sets PodScheduled=True; nuage's
                // leaves it to the agent, which a simulated node lacks.
                let patch =
                    condition_patch(&pod, json!({"type": "PodScheduled", "status": "True"}));
                if let Err(e) = s
                    .informers
                    .client
                    .merge_patch::<Pod>(Some(ns), name, "/status", &patch)
                    .await
                {
                    tracing::debug!(error = %e, "PodScheduled=True not written");
                }
            }
        }
        Err(e) => {
            let delay = {
                let mut st = s.state();
                st.cache.forget(&key);
                st.unschedulable.failed(&key, Instant::now())
            };
            if e.is_not_found() {
                return;
            }
            tracing::warn!(pod = %key, %node, error = %e, "binding failed; retrying");
            s.events.record(
                &reference(&*pod),
                EventType::Warning,
                "FailedScheduling",
                format!("Binding rejected: {e}"),
            );
            s.queue.add_after(key, delay);
        }
    }
}

/// Sets `PodScheduled=False` (reason `Unschedulable`, the message) unless
/// the pod already says so, and records a `FailedScheduling` Event.
async fn report_unschedulable(
    s: Arc<Scheduler>,
    pod: Arc<Pod>,
    message: String,
    _permit: OwnedSemaphorePermit,
) {
    s.events.record(
        &reference(&*pod),
        EventType::Warning,
        "FailedScheduling",
        message.clone(),
    );
    let current = scheduled_condition(&pod);
    if current.as_ref().is_some_and(|c| {
        c["status"] == "False" && c["reason"] == "Unschedulable" && c["message"] == message.as_str()
    }) {
        return;
    }
    let patch = condition_patch(
        &pod,
        json!({
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": null,
        }),
    );
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match s
        .informers
        .client
        .merge_patch::<Pod>(Some(ns), name, "/status", &patch)
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => tracing::warn!(error = %e, "PodScheduled=False not written"),
    }
}

/// The pod's `PodScheduled` condition, as JSON.
fn scheduled_condition(pod: &Pod) -> Option<Value> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")?;
    serde_json::to_value(c).ok()
}

/// A status merge patch replacing the `PodScheduled` condition with
/// `condition` and keeping the others (a merge patch replaces whole
/// lists). The transition time is kept when the status does not change.
fn condition_patch(pod: &Pod, mut condition: Value) -> Value {
    let old = scheduled_condition(pod);
    let transition = match &old {
        Some(o) if o["status"] == condition["status"] => o["lastTransitionTime"].clone(),
        _ => serde_json::to_value(Time(now())).unwrap_or(Value::Null),
    };
    condition["lastTransitionTime"] = transition;
    let mut conditions: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.type_ != "PodScheduled")
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    conditions.push(condition);
    json!({"status": {"conditions": conditions}})
}

fn now() -> k8s_openapi::jiff::Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_nanosecond(nanos).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::pod;

    #[test]
    fn the_condition_patch_keeps_other_conditions_and_the_transition_time() {
        let mut p = (*pod("p", json!({}))).clone();
        p.status = Some(
            serde_json::from_value(json!({"conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "old", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                {"type": "Other", "status": "True"},
            ]}))
            .unwrap(),
        );
        let patch = condition_patch(
            &p,
            json!({"type": "PodScheduled", "status": "False", "message": "new"}),
        );
        let conds = patch["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0]["type"], "Other");
        assert_eq!(conds[1]["message"], "new");
        assert_eq!(conds[1]["lastTransitionTime"], "2024-01-01T00:00:00Z");
        let patch = condition_patch(&p, json!({"type": "PodScheduled", "status": "True"}));
        assert_ne!(
            patch["status"]["conditions"][1]["lastTransitionTime"],
            "2024-01-01T00:00:00Z"
        );
    }
}
