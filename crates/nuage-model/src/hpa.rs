//! HorizontalPodAutoscaler conversion between autoscaling/v1 and v2.
//!
//! The store keeps v2 (the richer form); v1 reads and writes convert. v1 can
//! only say "target CPU utilization", so a v2 object with other metrics reads
//! back in v1 without them, as in Kubernetes (which keeps them in an
//! annotation; nuage does not).

use serde_json::{json, Value};

/// Converts a stored v2 object to its v1 form.
pub fn v2_to_v1(mut obj: Value) -> Value {
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), json!("autoscaling/v1"));
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let cpu = spec
            .remove("metrics")
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .find_map(|m| cpu_target(&m));
        spec.remove("behavior");
        if let Some(cpu) = cpu {
            spec.insert("targetCPUUtilizationPercentage".into(), cpu);
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        let current = status
            .remove("currentMetrics")
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .find_map(|m| {
                (m.pointer("/resource/name") == Some(&json!("cpu")))
                    .then(|| m.pointer("/resource/current/averageUtilization").cloned())
                    .flatten()
            });
        status.remove("conditions");
        if let Some(c) = current {
            status.insert("currentCPUUtilizationPercentage".into(), c);
        }
    }
    obj
}

fn cpu_target(metric: &Value) -> Option<Value> {
    if metric.get("type")? != "Resource" || metric.pointer("/resource/name")? != "cpu" {
        return None;
    }
    metric
        .pointer("/resource/target/averageUtilization")
        .cloned()
}

/// Converts a v1 object (as written by a client) to the stored v2 form.
pub fn v1_to_v2(mut obj: Value) -> Value {
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), json!("autoscaling/v2"));
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(cpu) = spec.remove("targetCPUUtilizationPercentage") {
            spec.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": cpu}}}]),
            );
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(cpu) = status.remove("currentCPUUtilizationPercentage") {
            status.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": cpu}}}]),
            );
        }
        status.entry("desiredReplicas").or_insert_with(|| json!(0));
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_target_round_trips() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 5,
                     "targetCPUUtilizationPercentage": 50}});
        let v2 = v1_to_v2(v1.clone());
        assert_eq!(
            v2.pointer("/spec/metrics/0/resource/target/averageUtilization"),
            Some(&json!(50))
        );
        assert_eq!(v2_to_v1(v2), v1);
    }
}
