//! From a Pod's container spec and its image to what the runtime runs:
//! argv (command/args over entrypoint/cmd), environment (literal values,
//! `valueFrom`, `envFrom`, `$(VAR)` references), user, and cgroup limits.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use nuage_client::Client;
use nuage_model::quantity::Quantity;

use crate::images::ImageConfig;
use crate::runtime::Resources;

/// A container's spec could not be turned into a run: the pod shows
/// `CreateContainerConfigError` with this message.
#[derive(Debug)]
pub struct ConfigError(pub String);

/// argv as Kubernetes merges it with the image: `command` replaces the
/// entrypoint (and drops the image's cmd), `args` replaces cmd.
pub fn argv(container: &Container, image: &ImageConfig, env: &[(String, String)]) -> Vec<String> {
    let vars: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |v: &[String]| v.iter().map(|s| expand(s, &vars)).collect::<Vec<_>>();
    match (&container.command, &container.args) {
        (Some(cmd), Some(args)) if !cmd.is_empty() => [expand_all(cmd), expand_all(args)].concat(),
        (Some(cmd), _) if !cmd.is_empty() => expand_all(cmd),
        (_, Some(args)) if !args.is_empty() => {
            [image.entrypoint.clone(), expand_all(args)].concat()
        }
        _ => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    }
}

/// Expands `$(VAR)` from `vars`; `$$(VAR)` is a literal `$(VAR)`; unknown
/// references stay as written (Kubernetes' rules).
pub fn expand(s: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment: the image's, then `envFrom`, then `env`
/// (later wins), with `$(VAR)` expanded against what precedes.
pub async fn environment(
    client: &Client,
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = image
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    if let Some(hostname) = pod.metadata.name.as_ref() {
        set(&mut env, "HOSTNAME".into(), hostname.clone());
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match config_map(client, ns, &r.name).await? {
                Some(cm) => {
                    for (k, v) in cm.data.unwrap_or_default() {
                        set(&mut env, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match secret(client, ns, &r.name).await? {
                Some(s) => {
                    for (k, v) in secret_data(&s) {
                        set(&mut env, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                field_value(pod, &f.field_path).ok_or_else(|| {
                    ConfigError(format!("unsupported fieldRef {:?}", f.field_path))
                })?
            } else if let Some(r) = &from.resource_field_ref {
                resource_value(container, &r.resource)
            } else if let Some(r) = &from.config_map_key_ref {
                let found = config_map(client, ns, &r.name)
                    .await?
                    .and_then(|cm| cm.data.and_then(|d| d.get(&r.key).cloned()));
                match found {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in ConfigMap {ns}/{}",
                            r.key, r.name
                        )))
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                let found = secret(client, ns, &r.name)
                    .await?
                    .and_then(|s| secret_data(&s).remove(&r.key));
                match found {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in Secret {ns}/{}",
                            r.key, r.name
                        )))
                    }
                }
            } else {
                String::new()
            }
        } else {
            let vars: BTreeMap<&str, &str> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            expand(var.value.as_deref().unwrap_or_default(), &vars)
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// Values of `fieldRef` paths (and of downward API volume items).
pub fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let map_entry = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    };
    let bracketed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => pod.spec.as_ref()?.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()?
            .service_account_name
            .clone()
            .unwrap_or_default(),
        "status.podIP" => pod.status.as_ref()?.pod_ip.clone().unwrap_or_default(),
        "status.hostIP" => pod.status.as_ref()?.host_ip.clone().unwrap_or_default(),
        _ => {
            if let Some(key) = bracketed("metadata.labels['") {
                map_entry(&meta.labels, &key)
            } else if let Some(key) = bracketed("metadata.annotations['") {
                map_entry(&meta.annotations, &key)
            } else {
                return None;
            }
        }
    })
}

/// `key="value"` lines, sorted, as the downward API writes maps.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn resource_value(container: &Container, resource: &str) -> String {
    let res = container.resources.as_ref();
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let map = match kind {
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => res.and_then(|r| r.limits.as_ref()),
    };
    let q = map
        .and_then(|m| m.get(name))
        .and_then(|q| Quantity::parse(&q.0));
    match (name, q) {
        ("cpu", Some(q)) => ((q.milli() + 999) / 1000).to_string(),
        (_, Some(q)) => q.value().to_string(),
        _ => "0".into(),
    }
}

async fn config_map(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<ConfigMap>, ConfigError> {
    client
        .get::<ConfigMap>(Some(ns), name)
        .await
        .map_err(|e| ConfigError(format!("read configmap {name:?}: {e}")))
}

async fn secret(client: &Client, ns: &str, name: &str) -> Result<Option<Secret>, ConfigError> {
    client
        .get::<Secret>(Some(ns), name)
        .await
        .map_err(|e| ConfigError(format!("read secret {name:?}: {e}")))
}

/// A secret's values as text (`data` decoded, `stringData` included).
pub fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// cgroup limits from `resources` (a limit without a request implies the
/// request, as the apiserver defaults it).
pub fn resources(container: &Container) -> Resources {
    let res = container.resources.as_ref();
    let get = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               key: &str| {
        map.and_then(|m| m.get(key))
            .and_then(|q| Quantity::parse(&q.0))
    };
    let limits = res.and_then(|r| r.limits.as_ref());
    let requests = res.and_then(|r| r.requests.as_ref());
    let cpu_limit = get(limits, "cpu");
    let cpu_request = get(requests, "cpu").or(cpu_limit);
    Resources {
        cpu_limit_millis: cpu_limit.map(|q| q.milli().max(1) as u64),
        cpu_request_millis: cpu_request.map(|q| q.milli().max(1) as u64),
        memory_limit: get(limits, "memory").map(|q| q.value().max(0) as u64),
        // A fork bomb must not take the node: every container gets a pids
        // limit (the kubelet's podPidsLimit is unlimited by default; nuage
        // chooses safety).
        pids_limit: Some(4096),
    }
}

/// What a pod asks of the node: (millicores, bytes) summed over its
/// containers (init containers run one at a time: their largest counts).
pub fn pod_requests(pod: &Pod) -> (i128, i128) {
    let Some(spec) = &pod.spec else { return (0, 0) };
    let request = |c: &Container, key: &str| {
        let res = c.resources.as_ref();
        res.and_then(|r| r.requests.as_ref())
            .and_then(|m| m.get(key))
            .or_else(|| res.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(key)))
            .and_then(|q| Quantity::parse(&q.0))
    };
    let sum = |key: &str, milli: bool| {
        let main: i128 = spec
            .containers
            .iter()
            .filter_map(|c| request(c, key))
            .map(|q| if milli { q.milli() } else { q.value() })
            .sum();
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .filter_map(|c| request(c, key))
            .map(|q| if milli { q.milli() } else { q.value() })
            .max()
            .unwrap_or(0);
        main.max(init)
    };
    (sum("cpu", true), sum("memory", false))
}

/// uid and gid from `securityContext` (container over pod) or a numeric
/// image `USER`; a user name is looked up in the image's `/etc/passwd`.
pub fn user(pod: &Pod, container: &Container, image: &crate::images::Image) -> Option<(u32, u32)> {
    let pod_ctx = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let ctx = container.security_context.as_ref();
    let uid = ctx
        .and_then(|c| c.run_as_user)
        .or_else(|| pod_ctx.and_then(|c| c.run_as_user));
    let gid = ctx
        .and_then(|c| c.run_as_group)
        .or_else(|| pod_ctx.and_then(|c| c.run_as_group));
    if let Some(uid) = uid {
        return Some((uid as u32, gid.unwrap_or(0) as u32));
    }
    let user = image.config.user.trim();
    if user.is_empty() {
        return gid.map(|g| (0, g as u32));
    }
    let (name, group) = user.split_once(':').unwrap_or((user, ""));
    let uid = name
        .parse::<u32>()
        .ok()
        .or_else(|| lookup_passwd(image, name).map(|(u, _)| u))?;
    let gid = group
        .parse::<u32>()
        .ok()
        .or_else(|| lookup_passwd(image, name).map(|(_, g)| g))
        .unwrap_or(0);
    Some((uid, gid))
}

fn lookup_passwd(image: &crate::images::Image, name: &str) -> Option<(u32, u32)> {
    image.layers.iter().rev().find_map(|layer| {
        let text = std::fs::read_to_string(layer.join("etc/passwd")).ok()?;
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(cmd: Option<&[&str]>, args: Option<&[&str]>) -> Container {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Container {
            name: "c".into(),
            command: cmd.map(v),
            args: args.map(v),
            ..Container::default()
        }
    }

    #[test]
    fn argv_merges_like_kubernetes() {
        let image = ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            ..ImageConfig::default()
        };
        let env = vec![("X".to_string(), "1".to_string())];
        assert_eq!(
            argv(&container(None, None), &image, &env),
            ["/entry", "default"]
        );
        assert_eq!(
            argv(&container(None, Some(&["a"])), &image, &env),
            ["/entry", "a"]
        );
        assert_eq!(argv(&container(Some(&["sh"]), None), &image, &env), ["sh"]);
        assert_eq!(
            argv(
                &container(Some(&["sh"]), Some(&["-c", "echo $(X) $$(X) $(Y)"])),
                &image,
                &env
            ),
            ["sh", "-c", "echo 1 $(X) $(Y)"]
        );
    }

    #[test]
    fn limits_become_cgroup_values() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}
        }))
        .unwrap();
        let r = resources(&c);
        assert_eq!(r.cpu_limit_millis, Some(500));
        assert_eq!(r.cpu_request_millis, Some(500));
        assert_eq!(r.memory_limit, Some(64 << 20));
    }

    #[test]
    fn field_paths() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web", "tier": "a"}},
            "spec": {"containers": [], "nodeName": "n1"}
        }))
        .unwrap();
        assert_eq!(field_value(&pod, "metadata.name").unwrap(), "p");
        assert_eq!(field_value(&pod, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(
            field_value(&pod, "metadata.labels").unwrap(),
            "app=\"web\"\ntier=\"a\""
        );
        assert_eq!(field_value(&pod, "spec.nodeName").unwrap(), "n1");
        assert!(field_value(&pod, "spec.bogus").is_none());
    }
}
