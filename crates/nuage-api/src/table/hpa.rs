//! The cells of a HorizontalPodAutoscaler's row: `printHorizontalPodAutoscaler`
//! and `formatHPAMetrics`.

use serde_json::{json, Value};

use super::cells::{int, items, text};

/// `printHorizontalPodAutoscaler`, for autoscaling/v2 and v1 objects.
pub(super) fn cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        text(obj, "/spec/scaleTargetRef/kind"),
        text(obj, "/spec/scaleTargetRef/name")
    );
    let min_pods = match obj.pointer("/spec/minReplicas").and_then(Value::as_i64) {
        Some(n) => n.to_string(),
        None => "<unset>".into(),
    };
    vec![
        name,
        json!(reference),
        json!(hpa_targets(obj)),
        json!(min_pods),
        json!(int(obj, "/spec/maxReplicas")),
        json!(int(obj, "/status/currentReplicas")),
        age,
    ]
}

/// `formatHPAMetrics`. An autoscaling/v1 object's CPU target is read as
/// the v2 `Resource` metric it converts to.
fn hpa_targets(obj: &Value) -> String {
    const MAX: usize = 2;
    let (specs, statuses): (Vec<Value>, Vec<Value>) = match obj.pointer("/spec/metrics") {
        Some(Value::Array(specs)) => (specs.clone(), items(obj, "/status/currentMetrics").to_vec()),
        _ => match obj.pointer("/spec/targetCPUUtilizationPercentage") {
            Some(target) => {
                let spec = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}});
                let status = match obj.pointer("/status/currentCPUUtilizationPercentage") {
                    Some(current) => vec![
                        json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}),
                    ],
                    None => Vec::new(),
                };
                (vec![spec], status)
            }
            None => (Vec::new(), Vec::new()),
        },
    };
    if specs.is_empty() {
        return "<none>".into();
    }
    // A Quantity prints as itself; a missing one as Go prints a nil *Quantity.
    let quantity = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<nil>".to_string(),
    };
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let status = statuses.get(i);
            let current = |source: &str, field: &str| {
                status
                    .and_then(|s| s.get(source))
                    .filter(|s| s.is_object())
                    .map(|s| quantity(s.pointer(&format!("/current/{field}"))))
            };
            match text(spec, "/type") {
                source @ ("External" | "Object") => {
                    let key = if source == "External" {
                        "external"
                    } else {
                        "object"
                    };
                    match spec.pointer(&format!("/{key}/target/averageValue")) {
                        Some(avg) => {
                            let now = status
                                .and_then(|s| s.pointer(&format!("/{key}/current/averageValue")))
                                .map(|v| quantity(Some(v)))
                                .unwrap_or_else(|| "<unknown>".into());
                            format!("{now}/{} (avg)", quantity(Some(avg)))
                        }
                        None => {
                            let now = current(key, "value").unwrap_or_else(|| "<unknown>".into());
                            format!(
                                "{now}/{}",
                                quantity(spec.pointer(&format!("/{key}/target/value")))
                            )
                        }
                    }
                }
                "Pods" => {
                    let now = current("pods", "averageValue").unwrap_or_else(|| "<unknown>".into());
                    format!(
                        "{now}/{}",
                        quantity(spec.pointer("/pods/target/averageValue"))
                    )
                }
                source @ ("Resource" | "ContainerResource") => {
                    let key = if source == "Resource" {
                        "resource"
                    } else {
                        "containerResource"
                    };
                    let resource = text(spec, &format!("/{key}/name"));
                    match spec.pointer(&format!("/{key}/target/averageValue")) {
                        Some(avg) => {
                            let now =
                                current(key, "averageValue").unwrap_or_else(|| "<unknown>".into());
                            format!("{resource}: {now}/{}", quantity(Some(avg)))
                        }
                        None => {
                            let now = status
                                .and_then(|s| {
                                    s.pointer(&format!("/{key}/current/averageUtilization"))
                                })
                                .and_then(Value::as_i64)
                                .map(|u| format!("{u}%"))
                                .unwrap_or_else(|| "<unknown>".into());
                            let target = spec
                                .pointer(&format!("/{key}/target/averageUtilization"))
                                .and_then(Value::as_i64)
                                .map(|u| format!("{u}%"))
                                .unwrap_or_else(|| "<auto>".into());
                            format!("{resource}: {now}/{target}")
                        }
                    }
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    if list.len() > MAX {
        format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX)
    } else {
        list.join(", ")
    }
}
