//! The arithmetic of a rollout, as Kubernetes' deployment controller does
//! it: how far the new ReplicaSet may grow (max surge), how far the old
//! ones may shrink (max unavailable), and how a change of `replicas` in
//! the middle of a rollout is shared among the ReplicaSets (proportional
//! scaling). Pure: the controller turns the answers into writes.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What the plans need to know of one ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsState {
    /// Its name (how a plan refers to it).
    pub name: String,
    /// Its creation time (Unix seconds): older ones go first.
    pub created: i64,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`, at most `replicas` (see [`RsState::new`]).
    pub available: i32,
    /// Its `desired-replicas` annotation.
    pub desired_annotation: Option<i32>,
    /// Its `max-replicas` annotation.
    pub max_annotation: Option<i32>,
}

impl RsState {
    /// A state; `available` is capped at `replicas` because right after a
    /// scale-down the ReplicaSet's status still counts the pods being
    /// removed, and counting them would let the rollout remove more old
    /// pods than `maxUnavailable` allows.
    pub fn new(
        name: &str,
        created: i64,
        replicas: i32,
        available: i32,
        desired_annotation: Option<i32>,
        max_annotation: Option<i32>,
    ) -> Self {
        Self {
            name: name.to_string(),
            created,
            replicas,
            available: available.min(replicas).max(0),
            desired_annotation,
            max_annotation,
        }
    }
}

/// A Deployment's sizes: replicas and the resolved rolling-update bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `spec.replicas`.
    pub replicas: i32,
    /// Pods allowed above `replicas` (0 for Recreate).
    pub max_surge: i32,
    /// Pods allowed below `replicas` (0 for Recreate).
    pub max_unavailable: i32,
    /// RollingUpdate (else Recreate).
    pub rolling: bool,
}

impl Limits {
    /// The limits of `d`; an error names a malformed maxSurge or
    /// maxUnavailable.
    pub fn of(d: &Deployment) -> Result<Self, String> {
        let spec = d.spec.as_ref();
        let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
        let strategy = spec.and_then(|s| s.strategy.as_ref());
        let rolling = strategy
            .and_then(|s| s.type_.as_deref())
            .is_none_or(|t| t == "RollingUpdate");
        if !rolling {
            return Ok(Self {
                replicas,
                max_surge: 0,
                max_unavailable: 0,
                rolling,
            });
        }
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        let default = IntOrString::String("25%".into());
        let (surge, unavailable) = resolve_fenceposts(
            ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&default),
            ru.and_then(|r| r.max_unavailable.as_ref())
                .unwrap_or(&default),
            replicas,
        )?;
        let max_unavailable = if replicas == 0 {
            0
        } else {
            unavailable.min(replicas)
        };
        Ok(Self {
            replicas,
            max_surge: surge,
            max_unavailable,
            rolling,
        })
    }

    /// The most pods the Deployment may have (`max-replicas`).
    pub fn max_replicas(&self) -> i32 {
        self.replicas + self.max_surge
    }
}

/// An int, or a percentage of `total` rounded up or down
/// (`intstr.GetScaledValueFromIntOrPercent`).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value {s:?}: not an integer or a percentage"))?;
            let product = pct * i64::from(total);
            let scaled = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            Ok(scaled.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
        }
    }
}

/// Max surge (rounded up) and max unavailable (rounded down); both 0 makes
/// unavailable 1, so that a rollout can always proceed.
pub fn resolve_fenceposts(
    surge: &IntOrString,
    unavailable: &IntOrString,
    desired: i32,
) -> Result<(i32, i32), String> {
    let surge = scaled_value(surge, desired, true)?;
    let mut unavailable = scaled_value(unavailable, desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// One ReplicaSet's new size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// The ReplicaSet.
    pub name: String,
    /// Its new `spec.replicas`.
    pub to: i32,
    /// Write its replicas annotations even if the size stays (proportional
    /// scaling records the Deployment's new size on every ReplicaSet).
    pub refresh_annotations: bool,
}

fn total_replicas(rss: &[RsState]) -> i32 {
    rss.iter().map(|r| r.replicas).sum()
}

fn by_creation(a: &RsState, b: &RsState) -> std::cmp::Ordering {
    a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name))
}

/// The size the new ReplicaSet may have now (`NewRSNewReplicas`): for a
/// rolling update, as many as max surge allows without passing
/// `replicas`; for Recreate, `replicas`. `all` includes `new`.
pub fn new_rs_replicas(l: &Limits, all: &[RsState], new: &RsState) -> i32 {
    if !l.rolling {
        return l.replicas;
    }
    let current = total_replicas(all);
    let max_total = l.replicas + l.max_surge;
    if current >= max_total {
        return new.replicas;
    }
    let up = (max_total - current).min(l.replicas - new.replicas);
    new.replicas + up
}

/// How to shrink the old ReplicaSets of a rolling update
/// (`reconcileOldReplicaSets`): first the pods that are not available
/// (they would block the rollout forever), oldest ReplicaSet first, then
/// available ones while more than `replicas - maxUnavailable` stay
/// available. `old` are the old ReplicaSets; the answer has one entry per
/// ReplicaSet that shrinks.
pub fn scale_down_old(l: &Limits, old: &[RsState], new: &RsState) -> Vec<Scale> {
    let old_pods = total_replicas(old);
    if old_pods == 0 {
        return Vec::new();
    }
    let all_pods = old_pods + new.replicas;
    let min_available = l.replicas - l.max_unavailable;
    let new_unavailable = new.replicas - new.available;
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut olds: Vec<RsState> = old.to_vec();
    olds.sort_by(by_creation);
    let before: Vec<i32> = olds.iter().map(|r| r.replicas).collect();

    // Unhealthy first: replicas that are not available.
    let mut cleaned = 0;
    for rs in olds.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        if rs.replicas == 0 || rs.replicas <= rs.available {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(rs.replicas - rs.available);
        rs.replicas -= n;
        cleaned += n;
    }

    // Then available ones, keeping the minimum available.
    let available: i32 = olds.iter().map(|r| r.available).sum::<i32>() + new.available;
    if available > min_available {
        let to_remove = available - min_available;
        let mut removed = 0;
        for rs in olds.iter_mut() {
            if removed >= to_remove {
                break;
            }
            if rs.replicas == 0 {
                continue;
            }
            let n = rs.replicas.min(to_remove - removed);
            rs.replicas -= n;
            removed += n;
        }
    }
    olds.into_iter()
        .zip(before)
        .filter(|(rs, was)| rs.replicas != *was)
        .map(|(rs, _)| Scale {
            name: rs.name,
            to: rs.replicas,
            refresh_annotations: false,
        })
        .collect()
}

/// Whether the new ReplicaSet has every replica, all available
/// (`IsSaturated`).
pub fn is_saturated(l: &Limits, new: &RsState) -> bool {
    new.replicas == l.replicas
        && new.desired_annotation == Some(l.replicas)
        && new.available == l.replicas
}

/// The only ReplicaSet with replicas, or, when none has any, the newest
/// (`FindActiveOrLatest`); `None` when several have replicas.
pub fn active_or_latest<'a>(new: Option<&'a RsState>, old: &'a [RsState]) -> Option<&'a RsState> {
    let mut active = new.into_iter().chain(old.iter()).filter(|r| r.replicas > 0);
    match (active.next(), active.next()) {
        (Some(only), None) => Some(only),
        (Some(_), Some(_)) => None,
        (None, _) => new.or_else(|| old.iter().max_by(|a, b| by_creation(a, b))),
    }
}

/// Whether some ReplicaSet with replicas was sized for another `replicas`
/// than the Deployment's (`isScalingEvent`): then the Deployment was
/// scaled, and the change is shared rather than rolled.
pub fn is_scaling_event(l: &Limits, new: Option<&RsState>, old: &[RsState]) -> bool {
    new.into_iter()
        .chain(old.iter())
        .filter(|r| r.replicas > 0)
        .any(|r| r.desired_annotation.is_some_and(|d| d != l.replicas))
}

/// How to resize the ReplicaSets after `replicas` changed (`scale`): the
/// only active one takes it all; a saturated new one leaves the old ones
/// at 0; in the middle of a rolling update the difference is shared in
/// proportion to each ReplicaSet's size, the rounding leftover going to
/// the largest. `status_replicas` is the Deployment's `status.replicas`
/// (the fallback for a ReplicaSet without `max-replicas`).
pub fn proportional_scale(
    l: &Limits,
    status_replicas: i32,
    new: Option<&RsState>,
    old: &[RsState],
) -> Vec<Scale> {
    if let Some(only) = active_or_latest(new, old) {
        if only.replicas == l.replicas {
            return Vec::new();
        }
        return vec![Scale {
            name: only.name.clone(),
            to: l.replicas,
            refresh_annotations: false,
        }];
    }
    if new.is_some_and(|n| is_saturated(l, n)) {
        return old
            .iter()
            .filter(|r| r.replicas > 0)
            .map(|r| Scale {
                name: r.name.clone(),
                to: 0,
                refresh_annotations: false,
            })
            .collect();
    }
    if !l.rolling {
        return Vec::new();
    }
    let mut active: Vec<&RsState> = old.iter().chain(new).filter(|r| r.replicas > 0).collect();
    let allowed = if l.replicas > 0 { l.max_replicas() } else { 0 };
    let to_add = allowed - active.iter().map(|r| r.replicas).sum::<i32>();
    // Largest first; among equals, the newest gets more and loses less.
    match to_add.cmp(&0) {
        std::cmp::Ordering::Greater => {
            active.sort_by(|a, b| b.replicas.cmp(&a.replicas).then_with(|| by_creation(b, a)))
        }
        std::cmp::Ordering::Less => {
            active.sort_by(|a, b| b.replicas.cmp(&a.replicas).then_with(|| by_creation(a, b)))
        }
        std::cmp::Ordering::Equal => {}
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
    for rs in &active {
        if to_add != 0 {
            let p = proportion(l, status_replicas, rs, to_add, added);
            sizes.push(rs.replicas + p);
            added += p;
        } else {
            sizes.push(rs.replicas);
        }
    }
    if to_add != 0 {
        if let Some(first) = sizes.first_mut() {
            *first = (*first + to_add - added).max(0);
        }
    }
    active
        .iter()
        .zip(sizes)
        .map(|(rs, to)| Scale {
            name: rs.name.clone(),
            to,
            refresh_annotations: true,
        })
        .collect()
}

/// This ReplicaSet's share of `to_add` (`GetProportion`), never more than
/// what is left to add (or remove).
fn proportion(l: &Limits, status_replicas: i32, rs: &RsState, to_add: i32, added: i32) -> i32 {
    if rs.replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(l, status_replicas, rs);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// How many replicas this ReplicaSet gains (or loses) to keep its share of
/// the Deployment's new maximum size.
fn fraction(l: &Limits, status_replicas: i32, rs: &RsState) -> i32 {
    if l.replicas == 0 {
        return -rs.replicas;
    }
    let before = match rs.max_annotation {
        Some(m) if m != 0 => m,
        _ => status_replicas,
    };
    if before == 0 {
        return 0;
    }
    let scaled = f64::from(rs.replicas) * f64::from(l.max_replicas()) / f64::from(before);
    // Go's math.Round: half away from zero, as f64::round.
    scaled.round() as i32 - rs.replicas
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(name: &str, created: i64, replicas: i32, available: i32) -> RsState {
        RsState::new(name, created, replicas, available, None, None)
    }

    fn rolling(replicas: i32, surge: i32, unavailable: i32) -> Limits {
        Limits {
            replicas,
            max_surge: surge,
            max_unavailable: unavailable,
            rolling: true,
        }
    }

    fn sizes(plan: &[Scale]) -> Vec<(&str, i32)> {
        plan.iter().map(|s| (s.name.as_str(), s.to)).collect()
    }

    #[test]
    fn percentages_round_surge_up_and_unavailable_down() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(resolve_fenceposts(&pct("25%"), &pct("25%"), 10), Ok((3, 2)));
        assert_eq!(resolve_fenceposts(&pct("25%"), &pct("25%"), 3), Ok((1, 0)));
        assert_eq!(resolve_fenceposts(&pct("0%"), &pct("10%"), 5), Ok((0, 1)));
        assert_eq!(
            resolve_fenceposts(&IntOrString::Int(2), &IntOrString::Int(0), 4),
            Ok((2, 0))
        );
        assert!(resolve_fenceposts(&pct("ten"), &pct("1%"), 4).is_err());
        assert!(scaled_value(&pct("5"), 4, true).is_err());
        assert_eq!(scaled_value(&pct("50%"), 5, true), Ok(3));
        assert_eq!(scaled_value(&pct("50%"), 5, false), Ok(2));
    }

    fn deployment(spec: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": spec})).unwrap()
    }

    #[test]
    fn limits_follow_the_strategy() {
        let d = deployment(json!({"replicas": 4, "selector": {}, "template": {},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "50%"}}}));
        assert_eq!(Limits::of(&d), Ok(rolling(4, 1, 2)));
        let d = deployment(
            json!({"replicas": 4, "selector": {}, "template": {}, "strategy": {"type": "Recreate"}}),
        );
        let l = Limits::of(&d).unwrap();
        assert!(!l.rolling && l.max_surge == 0 && l.max_unavailable == 0);
        // Defaults: 25% / 25%.
        let d = deployment(json!({"replicas": 10, "selector": {}, "template": {}}));
        assert_eq!(Limits::of(&d), Ok(rolling(10, 3, 2)));
        // Never more unavailable than replicas; none at 0 replicas.
        let d = deployment(json!({"replicas": 2, "selector": {}, "template": {},
            "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 5}}}));
        assert_eq!(Limits::of(&d).unwrap().max_unavailable, 2);
        let d = deployment(json!({"replicas": 0, "selector": {}, "template": {}}));
        assert_eq!(Limits::of(&d).unwrap().max_unavailable, 0);
    }

    #[test]
    fn the_new_replica_set_grows_by_the_surge_and_never_past_replicas() {
        let l = rolling(4, 1, 1);
        let old = rs("old", 1, 4, 4);
        let new = rs("new", 2, 0, 0);
        assert_eq!(new_rs_replicas(&l, &[old.clone(), new.clone()], &new), 1);
        // At the surge limit: stays.
        let new1 = rs("new", 2, 1, 0);
        assert_eq!(new_rs_replicas(&l, &[old, new1.clone()], &new1), 1);
        // Old ones shrank: room again, capped at replicas.
        let old1 = rs("old", 1, 1, 1);
        let new3 = rs("new", 2, 3, 3);
        assert_eq!(new_rs_replicas(&l, &[old1, new3.clone()], &new3), 4);
        let l = rolling(10, 10, 0);
        let new0 = rs("new", 2, 0, 0);
        assert_eq!(
            new_rs_replicas(&l, &[rs("o", 1, 10, 10), new0.clone()], &new0),
            10
        );
        let recreate = Limits {
            rolling: false,
            ..rolling(3, 0, 0)
        };
        assert_eq!(
            new_rs_replicas(&recreate, std::slice::from_ref(&new0), &new0),
            3
        );
    }

    #[test]
    fn old_replica_sets_shrink_only_while_enough_stay_available() {
        let l = rolling(4, 1, 1);
        // New has 1 unavailable pod: 5 pods, min 3 available, 1 unavailable new
        // → may remove 1 old.
        let plan = scale_down_old(&l, &[rs("old", 1, 4, 4)], &rs("new", 2, 1, 0));
        assert_eq!(sizes(&plan), [("old", 3)]);
        // Already at the minimum: nothing.
        let plan = scale_down_old(&l, &[rs("old", 1, 3, 3)], &rs("new", 2, 2, 0));
        assert!(plan.is_empty());
        // New pods available: the old ones go.
        let plan = scale_down_old(&l, &[rs("old", 1, 1, 1)], &rs("new", 2, 4, 4));
        assert_eq!(sizes(&plan), [("old", 0)]);
        assert!(scale_down_old(&l, &[rs("old", 1, 0, 0)], &rs("new", 2, 4, 4)).is_empty());
    }

    #[test]
    fn unavailable_old_pods_go_first_oldest_replica_set_first() {
        let l = rolling(4, 1, 1);
        // Old RSs: a (2, none available), b (2, both available); new 1 unavailable.
        // all 5, min 3, new unavailable 1 → max 1 down: from a's unhealthy ones.
        let plan = scale_down_old(
            &l,
            &[rs("b", 2, 2, 2), rs("a", 1, 2, 0)],
            &rs("new", 3, 1, 0),
        );
        assert_eq!(sizes(&plan), [("a", 1)]);
        // A stuck rollout (new never available) still clears broken old pods.
        let l = rolling(3, 1, 1);
        let plan = scale_down_old(&l, &[rs("a", 1, 3, 1)], &rs("new", 2, 1, 0));
        assert_eq!(sizes(&plan), [("a", 2)]);
    }

    #[test]
    fn availability_past_the_spec_is_not_counted() {
        // Scaled from 4 to 3 but the status still says 4 available.
        let stale = RsState::new("old", 1, 3, 4, None, None);
        assert_eq!(stale.available, 3);
        let l = rolling(4, 1, 1);
        let plan = scale_down_old(&l, &[stale], &rs("new", 2, 1, 1));
        assert_eq!(sizes(&plan), [("old", 2)]);
    }

    #[test]
    fn a_rollout_never_goes_below_min_available() {
        // Simulate a whole rollout, pods becoming available one step later.
        let l = rolling(4, 1, 1);
        let mut old = rs("old", 1, 4, 4);
        let mut new = rs("new", 2, 0, 0);
        for _ in 0..20 {
            let all = [old.clone(), new.clone()];
            new.replicas = new_rs_replicas(&l, &all, &new);
            for s in scale_down_old(&l, std::slice::from_ref(&old), &new) {
                old.replicas = s.to;
                old.available = old.available.min(s.to);
            }
            assert!(old.available + new.available >= 3);
            assert!(old.replicas + new.replicas <= 5);
            new.available = new.replicas;
        }
        assert_eq!((old.replicas, new.replicas, new.available), (0, 4, 4));
    }

    #[test]
    fn the_only_active_or_the_newest_replica_set_takes_all() {
        let old = [rs("a", 1, 0, 0), rs("b", 2, 0, 0)];
        assert_eq!(active_or_latest(None, &old).unwrap().name, "b");
        let new = rs("n", 3, 0, 0);
        assert_eq!(active_or_latest(Some(&new), &old).unwrap().name, "n");
        let old = [rs("a", 1, 2, 2), rs("b", 2, 0, 0)];
        assert_eq!(active_or_latest(Some(&new), &old).unwrap().name, "a");
        let two = [rs("a", 1, 2, 2), rs("b", 2, 1, 0)];
        assert!(active_or_latest(Some(&new), &two).is_none());
        let l = rolling(5, 1, 1);
        assert_eq!(
            sizes(&proportional_scale(&l, 2, Some(&new), &old)),
            [("a", 5)]
        );
    }

    #[test]
    fn a_saturated_new_replica_set_empties_the_old_ones() {
        let l = rolling(3, 1, 1);
        let new = RsState::new("n", 2, 3, 3, Some(3), Some(4));
        let plan = proportional_scale(&l, 4, Some(&new), &[rs("a", 1, 1, 1)]);
        assert_eq!(sizes(&plan), [("a", 0)]);
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        // Kubernetes' example: 10 replicas, surge 3, rollout in progress
        // with old 8 and new 5 (max 13); scaled to 15 (max 18): +5 shared
        // 8→11, 5→7.
        let l = rolling(15, 3, 2);
        let old = RsState::new("old", 1, 8, 8, Some(10), Some(13));
        let new = RsState::new("new", 2, 5, 0, Some(10), Some(13));
        assert!(is_scaling_event(&l, Some(&new), std::slice::from_ref(&old)));
        let plan = proportional_scale(&l, 13, Some(&new), std::slice::from_ref(&old));
        assert_eq!(sizes(&plan), [("old", 11), ("new", 7)]);
        assert!(plan.iter().all(|s| s.refresh_annotations));
        // And back down to 10 (max 13): exactly the reverse.
        let l = rolling(10, 3, 2);
        let old = RsState::new("old", 1, 11, 11, Some(15), Some(18));
        let new = RsState::new("new", 2, 7, 0, Some(15), Some(18));
        let plan = proportional_scale(&l, 18, Some(&new), std::slice::from_ref(&old));
        assert_eq!(sizes(&plan), [("old", 8), ("new", 5)]);
    }

    #[test]
    fn the_rounding_leftover_goes_to_the_largest() {
        // Three equal RSs of 1 (max 3 before), scaled to max 4: +1.
        let l = rolling(4, 0, 1);
        let a = RsState::new("a", 1, 1, 1, Some(3), Some(3));
        let b = RsState::new("b", 2, 1, 1, Some(3), Some(3));
        let n = RsState::new("n", 3, 1, 0, Some(3), Some(3));
        let plan = proportional_scale(&l, 3, Some(&n), &[a, b]);
        let total: i32 = plan.iter().map(|s| s.to).sum();
        assert_eq!(total, 4);
        // Ties go to the newest when adding.
        assert_eq!(
            plan[0],
            Scale {
                name: "n".into(),
                to: 2,
                refresh_annotations: true
            }
        );
    }

    #[test]
    fn scaling_to_zero_empties_every_replica_set() {
        let l = rolling(0, 1, 0);
        let old = RsState::new("old", 1, 2, 2, Some(3), Some(4));
        let new = RsState::new("new", 2, 2, 0, Some(3), Some(4));
        let plan = proportional_scale(&l, 4, Some(&new), &[old]);
        assert_eq!(sizes(&plan), [("old", 0), ("new", 0)]);
    }

    #[test]
    fn missing_annotations_fall_back_to_the_status_size() {
        let l = rolling(6, 0, 1);
        let old = rs("old", 1, 2, 2);
        let new = rs("new", 2, 1, 0);
        // Before: 3 pods (status), now max 6: doubled.
        let plan = proportional_scale(&l, 3, Some(&new), &[old]);
        assert_eq!(sizes(&plan), [("old", 4), ("new", 2)]);
    }

    #[test]
    fn a_scaling_event_is_seen_only_on_active_replica_sets() {
        let l = rolling(3, 1, 1);
        let stale = RsState::new("old", 1, 0, 0, Some(5), Some(6));
        let new = RsState::new("new", 2, 3, 3, Some(3), Some(4));
        assert!(!is_scaling_event(
            &l,
            Some(&new),
            std::slice::from_ref(&stale)
        ));
        let unannotated = rs("x", 1, 2, 2);
        assert!(!is_scaling_event(&l, None, &[unannotated]));
    }
}
