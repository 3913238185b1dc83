//! When a pod on a node with `NoExecute` taints must go (the taint
//! eviction controller's rule): at once if one taint is not tolerated at
//! all; otherwise when the shortest `tolerationSeconds` among the
//! tolerations used runs out, counted from the taint's `timeAdded`; never
//! if they all tolerate forever.
//!
//! Pods that say nothing about `not-ready` or `unreachable` tolerate them
//! for the default (the DefaultTolerationSeconds admission plugin's role,
//! played here rather than by rewriting pods).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use k8s_openapi::jiff::Timestamp;

use super::health::{NOT_READY, UNREACHABLE};

/// What the taints of its node mean for a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No NoExecute taint, or every one tolerated forever.
    Stay,
    /// Evict at this time (now or in the past: at once).
    EvictAt(Timestamp),
}

/// Whether `tol` tolerates `taint` (Kubernetes' `ToleratesTaint`).
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = tol.key.as_deref().unwrap_or_default();
    let op = tol.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        // An empty key with Exists tolerates everything.
        return op == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" => {
            tol.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// The verdict for `pod` given its node's taints. `added` gives a taint's
/// start when it has no `timeAdded`.
pub fn verdict(
    pod: &Pod,
    taints: &[Taint],
    default_toleration: Duration,
    added: impl Fn(&Taint) -> Timestamp,
) -> Verdict {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let mut earliest: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let start = taint
            .time_added
            .as_ref()
            .map_or_else(|| added(taint), |t| t.0);
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        let seconds: Option<i64> = if matching.is_empty() {
            if taint.key == NOT_READY || taint.key == UNREACHABLE {
                Some(default_toleration.as_secs() as i64)
            } else {
                // Not tolerated at all: out at once.
                Some(0)
            }
        } else {
            // The shortest bound wins; unbounded ones tolerate forever.
            matching
                .iter()
                .filter_map(|t| t.toleration_seconds)
                .map(|s| s.max(0))
                .min()
        };
        if let Some(s) = seconds {
            let at = start
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(s))
                .unwrap_or(start);
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
    }
    earliest.map_or(Verdict::Stay, Verdict::EvictAt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn taint(key: &str, effect: &str, at: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            time_added: Some(Time(Timestamp::from_second(at).unwrap())),
            value: None,
        }
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "tolerations": tolerations},
        }))
        .unwrap()
    }

    fn at(s: i64) -> Verdict {
        Verdict::EvictAt(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn tolerations_decide_when_pods_leave() {
        let unreachable = [taint(UNREACHABLE, "NoExecute", 1000)];
        let default = Duration::from_secs(30);
        let never = |_: &Taint| Timestamp::UNIX_EPOCH;
        // No toleration: the default.
        assert_eq!(
            verdict(&pod(serde_json::json!([])), &unreachable, default, never),
            at(1030)
        );
        // Its own tolerationSeconds.
        let p = pod(
            serde_json::json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
        assert_eq!(verdict(&p, &unreachable, default, never), at(1300));
        // Forever.
        let p = pod(serde_json::json!([{"key": UNREACHABLE, "operator": "Exists"}]));
        assert_eq!(verdict(&p, &unreachable, default, never), Verdict::Stay);
        let p = pod(serde_json::json!([{"operator": "Exists"}]));
        assert_eq!(verdict(&p, &unreachable, default, never), Verdict::Stay);
        // A NoSchedule toleration does not count.
        let p = pod(
            serde_json::json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}]),
        );
        assert_eq!(verdict(&p, &unreachable, default, never), at(1030));
        // A user's NoExecute taint not tolerated: at once.
        let user = [taint("dedicated", "NoExecute", 2000)];
        assert_eq!(
            verdict(&pod(serde_json::json!([])), &user, default, never),
            at(2000)
        );
        let p = pod(serde_json::json!([{"key": "dedicated", "operator": "Equal", "value": "x"}]));
        assert_eq!(verdict(&p, &user, default, never), at(2000));
        // NoSchedule taints never evict.
        let soft = [taint(UNREACHABLE, "NoSchedule", 1000)];
        assert_eq!(
            verdict(&pod(serde_json::json!([])), &soft, default, never),
            Verdict::Stay
        );
    }
}
