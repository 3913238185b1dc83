//! A Deployment's status as Kubernetes computes it: counts summed over its
//! ReplicaSets, the `Available` condition (enough replicas available), and
//! the `Progressing` condition that `kubectl rollout status` reads (a new
//! ReplicaSet made progress, is complete, or missed
//! `progressDeadlineSeconds`). Pure: `now` is passed in.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Condition type: the rollout's progress.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: enough replicas are available.
pub const AVAILABLE: &str = "Available";
/// Condition type: a ReplicaSet cannot make its pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Progressing reasons.
pub mod reason {
    /// A new ReplicaSet was created.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// The new ReplicaSet existed already.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// The new ReplicaSet has every replica available: the rollout is done.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// The rollout made progress.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// No progress for `progressDeadlineSeconds`.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// The Deployment is paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// The Deployment was resumed.
    pub const RESUMED: &str = "DeploymentResumed";
    /// The new ReplicaSet could not be created.
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
    /// Available: at least `replicas - maxUnavailable` available.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Available false.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

/// Now, to the second (what the API stores), so that a condition written
/// and read back compares equal.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Timestamp::from_second(secs).unwrap_or_default()
}

/// A condition whose times are `now`.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if any.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Sets a condition unless one with the same status and reason is there;
/// keeps the transition time when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_.clone());
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// Removes the condition of `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
    }
}

/// The deadline, when the Deployment has one (`progressDeadlineSeconds`
/// set and not MaxInt32).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `Some(v)` unless 0: these fields are `omitempty` in Kubernetes.
fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// Counts and the Available condition (`calculateStatus`); the other
/// conditions are carried over.
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    max_unavailable: i32,
    now: Timestamp,
) -> DeploymentStatus {
    let status_of = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let available: i32 = all
        .iter()
        .map(|r| status_of(r).available_replicas.unwrap_or(0))
        .sum();
    let total: i32 = all
        .iter()
        .map(|r| r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))
        .sum();
    let actual: i32 = all.iter().map(|r| status_of(r).replicas).sum();
    let ready: i32 = all
        .iter()
        .map(|r| status_of(r).ready_replicas.unwrap_or(0))
        .sum();
    let updated = new.map(|r| status_of(r).replicas).unwrap_or(0);
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(actual),
        updated_replicas: nonzero(updated),
        ready_replicas: nonzero(ready),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
    };
    let condition = if available >= replicas(d) - max_unavailable {
        new_condition(
            AVAILABLE,
            "True",
            reason::MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            reason::MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, condition);
    status
}

/// Every replica updated and available, and the latest spec observed.
pub fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = replicas(d);
    status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether `new_status` shows progress over the stored status: more
/// updated, ready or available replicas, or fewer old ones.
pub fn progressing(d: &Deployment, new_status: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new_status.replicas) - n(new_status.updated_replicas);
    n(new_status.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new_status.ready_replicas) > n(old.ready_replicas)
        || n(new_status.available_replicas) > n(old.available_replicas)
}

/// Whether the last progress is older than the deadline.
pub fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(status, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(reason::NEW_RS_AVAILABLE) => false,
        Some(reason::TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0.as_second() + i64::from(deadline) < now.as_second()),
    }
}

fn rs_name(rs: Option<&ReplicaSet>) -> Option<&str> {
    rs.and_then(|r| r.metadata.name.as_deref())
}

/// The status to write after a rollout step (`syncRolloutStatus`): counts,
/// Available, then Progressing (complete, progressing or timed out) and
/// the first ReplicaSet failure.
pub fn rollout_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    max_unavailable: i32,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(d, all, new, max_unavailable, now);
    let name = d.metadata.name.as_deref().unwrap_or_default();
    if progress_deadline(d).is_none() {
        remove_condition(&mut status, PROGRESSING);
    }
    let stored = d.status.clone().unwrap_or_default();
    let current = get_condition(&stored, PROGRESSING);
    let done_before = status.replicas == status.updated_replicas
        && current.is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE));
    if progress_deadline(d).is_some() && !done_before {
        if complete(d, &status) {
            let msg = match rs_name(new) {
                Some(rs) => format!("ReplicaSet {rs:?} has successfully progressed."),
                None => format!("Deployment {name:?} has successfully progressed."),
            };
            let c = new_condition(PROGRESSING, "True", reason::NEW_RS_AVAILABLE, msg, now);
            set_condition(&mut status, c);
        } else if progressing(d, &status) {
            let msg = match rs_name(new) {
                Some(rs) => format!("ReplicaSet {rs:?} is progressing."),
                None => format!("Deployment {name:?} is progressing."),
            };
            let mut c = new_condition(PROGRESSING, "True", reason::RS_UPDATED, msg, now);
            // Progress refreshes lastUpdateTime (the deadline counts from
            // it) even when the reason stays the same.
            if let Some(cur) = current {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, c);
        } else if timed_out(d, &status, now) {
            let msg = match rs_name(new) {
                Some(rs) => format!("ReplicaSet {rs:?} has timed out progressing."),
                None => format!("Deployment {name:?} has timed out progressing."),
            };
            let c = new_condition(PROGRESSING, "False", reason::TIMED_OUT, msg, now);
            set_condition(&mut status, c);
        }
    }
    match replica_failure(all, new) {
        Some(c) => set_condition(&mut status, c),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// The first `ReplicaFailure=True` of the new ReplicaSet, else of an old
/// one, as a Deployment condition.
fn replica_failure(all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    new.into_iter().chain(all.iter().copied()).find_map(|rs| {
        let c = rs
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")?;
        Some(DeploymentCondition {
            type_: REPLICA_FAILURE.into(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_update_time: c.last_transition_time.clone(),
            last_transition_time: c.last_transition_time.clone(),
        })
    })
}

/// When to look again at a rollout that made no progress, to notice its
/// deadline (`requeueStuckDeployment`): `None` when there is nothing to
/// wait for.
pub fn recheck_after(
    d: &Deployment,
    new_status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let stored = d.status.clone().unwrap_or_default();
    let current = get_condition(&stored, PROGRESSING)?;
    if complete(d, new_status) || current.reason.as_deref() == Some(reason::TIMED_OUT) {
        return None;
    }
    let last = current.last_update_time.as_ref()?.0.as_second();
    let left = last + i64::from(deadline) - now.as_second();
    // One second late, so that the deadline has passed when we look.
    Some(Duration::from_secs(left.max(0) as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn deployment(replicas: i32, status: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": replicas, "selector": {}, "template": {},
                     "progressDeadlineSeconds": 10},
            "status": status,
        }))
        .unwrap()
    }

    fn rs(name: &str, replicas: i32, actual: i32, ready: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": actual, "readyReplicas": ready, "availableReplicas": available},
        }))
        .unwrap()
    }

    fn progressing_reason(s: &DeploymentStatus) -> Option<&str> {
        get_condition(s, PROGRESSING).and_then(|c| c.reason.as_deref())
    }

    #[test]
    fn counts_are_summed_and_availability_follows_max_unavailable() {
        let d = deployment(4, json!({}));
        let (old, new) = (rs("old", 2, 3, 3, 3), rs("new", 3, 3, 1, 0));
        let s = calculate_status(&d, &[&old, &new], Some(&new), 1, at(0));
        assert_eq!(s.replicas, Some(6));
        assert_eq!(s.updated_replicas, Some(3));
        assert_eq!(s.ready_replicas, Some(4));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, Some(2));
        assert_eq!(s.observed_generation, Some(2));
        let a = get_condition(&s, AVAILABLE).unwrap();
        assert_eq!(
            (a.status.as_str(), a.reason.as_deref()),
            ("True", Some(reason::MIN_AVAILABLE))
        );
        let s = calculate_status(&d, &[&old, &new], Some(&new), 0, at(0));
        assert_eq!(get_condition(&s, AVAILABLE).unwrap().status, "False");
    }

    #[test]
    fn zero_counts_are_left_out() {
        let d = deployment(0, json!({}));
        let s = calculate_status(&d, &[], None, 0, at(0));
        assert_eq!(
            (s.replicas, s.available_replicas, s.unavailable_replicas),
            (None, None, None)
        );
    }

    #[test]
    fn a_condition_keeps_its_times_while_status_and_reason_stay() {
        let mut s = DeploymentStatus::default();
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", reason::RS_UPDATED, "a".into(), at(0)),
        );
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", reason::RS_UPDATED, "b".into(), at(5)),
        );
        let c = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.message.as_deref(), Some("a"));
        set_condition(
            &mut s,
            new_condition(
                PROGRESSING,
                "True",
                reason::NEW_RS_AVAILABLE,
                "c".into(),
                at(9),
            ),
        );
        let c = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(at(0))));
        assert_eq!(c.last_update_time, Some(Time(at(9))));
        assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn progress_then_completion_then_nothing_more() {
        // Stored: 1 of 3 updated.
        let d = deployment(
            3,
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
                   "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated",
                                   "lastUpdateTime": "2023-11-14T22:13:20Z", "lastTransitionTime": "2023-11-14T22:13:20Z"}]}),
        );
        let (old, new) = (rs("old", 1, 1, 1, 1), rs("new", 3, 3, 2, 2));
        let s = rollout_status(&d, &[&old, &new], Some(&new), 1, at(3));
        assert_eq!(progressing_reason(&s), Some(reason::RS_UPDATED));
        let c = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.last_update_time, Some(Time(at(3))));
        assert_eq!(c.last_transition_time, Some(Time(at(0))));
        assert!(recheck_after(&d, &s, at(3)).is_some());

        let (old, new) = (rs("old", 0, 0, 0, 0), rs("new", 3, 3, 3, 3));
        let s = rollout_status(&d, &[&old, &new], Some(&new), 1, at(4));
        assert_eq!(progressing_reason(&s), Some(reason::NEW_RS_AVAILABLE));
        assert_eq!(
            get_condition(&s, PROGRESSING).unwrap().message.as_deref(),
            Some("ReplicaSet \"new\" has successfully progressed.")
        );
        assert!(recheck_after(&d, &s, at(4)).is_none());
    }

    #[test]
    fn no_progress_past_the_deadline_times_out() {
        let d = deployment(
            1,
            json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                   "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated",
                                   "lastUpdateTime": "2023-11-14T22:13:20Z", "lastTransitionTime": "2023-11-14T22:13:20Z"}]}),
        );
        let new = rs("new", 1, 1, 0, 0);
        let s = rollout_status(&d, &[&new], Some(&new), 0, at(5));
        assert_eq!(progressing_reason(&s), Some(reason::NEW_RS_CREATED));
        assert_eq!(recheck_after(&d, &s, at(5)), Some(Duration::from_secs(6)));
        let s = rollout_status(&d, &[&new], Some(&new), 0, at(11));
        let c = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some(reason::TIMED_OUT))
        );
        assert!(timed_out(&d, &s, at(11)));
    }

    #[test]
    fn replica_failures_are_reported() {
        let d = deployment(1, json!({}));
        let mut new = rs("new", 1, 0, 0, 0);
        new.status.as_mut().unwrap().conditions = Some(vec![serde_json::from_value(json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota"
        }))
        .unwrap()]);
        let s = rollout_status(&d, &[&new], Some(&new), 0, at(0));
        let c = get_condition(&s, REPLICA_FAILURE).unwrap();
        assert_eq!(c.reason.as_deref(), Some("FailedCreate"));
    }

    #[test]
    fn without_a_deadline_there_is_no_progressing_condition() {
        let mut d = deployment(
            1,
            json!({"conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}),
        );
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
        let new = rs("new", 1, 1, 1, 1);
        let s = rollout_status(&d, &[&new], Some(&new), 0, at(0));
        assert!(get_condition(&s, PROGRESSING).is_none());
        assert!(recheck_after(&d, &s, at(0)).is_none());
    }
}
