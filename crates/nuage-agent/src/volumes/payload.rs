//! What files a `configMap`, `secret`, `downwardAPI` or `projected` volume
//! holds: relative path → bytes and mode, with Kubernetes' rules for
//! `items`, `defaultMode` and `optional`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, DownwardAPIVolumeFile, DownwardAPIVolumeSource, KeyToPath, Pod,
    ProjectedVolumeSource, SecretVolumeSource, Volume,
};

use super::{check_relative_path, Objects};

/// Kubernetes' `defaultMode` (0644).
const DEFAULT_MODE: i32 = 0o644;

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct File {
    /// Its content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// Relative path → file.
pub(super) type Payload = BTreeMap<String, File>;

/// The ConfigMap and Secret names a volume refers to.
pub(super) fn referenced_objects(volume: &Volume) -> (Vec<String>, Vec<String>) {
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    if let Some(c) = &volume.config_map {
        config_maps.push(c.name.clone());
    }
    if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
        secrets.push(name);
    }
    for source in volume
        .projected
        .iter()
        .flat_map(|p| p.sources.iter().flatten())
    {
        if let Some(c) = &source.config_map {
            config_maps.push(c.name.clone());
        }
        if let Some(s) = &source.secret {
            secrets.push(s.name.clone());
        }
    }
    (config_maps, secrets)
}

/// The files of a `configMap` volume.
pub(super) fn config_map(
    source: &ConfigMapVolumeSource,
    objects: &Objects,
) -> Result<Payload, String> {
    let mut out = Payload::new();
    let mode = file_mode(source.default_mode.unwrap_or(DEFAULT_MODE))?;
    config_map_files(
        &source.name,
        source.items.as_deref(),
        source.optional,
        mode,
        objects,
        &mut out,
    )?;
    Ok(out)
}

/// The files of a `secret` volume.
pub(super) fn secret(source: &SecretVolumeSource, objects: &Objects) -> Result<Payload, String> {
    let name = source
        .secret_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or("secret volume without secretName")?;
    let mut out = Payload::new();
    let mode = file_mode(source.default_mode.unwrap_or(DEFAULT_MODE))?;
    secret_files(
        name,
        source.items.as_deref(),
        source.optional,
        mode,
        objects,
        &mut out,
    )?;
    Ok(out)
}

/// The files of a `downwardAPI` volume.
pub(super) fn downward_api(source: &DownwardAPIVolumeSource, pod: &Pod) -> Result<Payload, String> {
    let mut out = Payload::new();
    let mode = file_mode(source.default_mode.unwrap_or(DEFAULT_MODE))?;
    downward_files(
        source.items.as_deref().unwrap_or_default(),
        mode,
        pod,
        &mut out,
    )?;
    Ok(out)
}

/// The files of a `projected` volume: its sources in order, later paths
/// winning.
pub(super) fn projected(
    source: &ProjectedVolumeSource,
    pod: &Pod,
    objects: &Objects,
) -> Result<Payload, String> {
    let mut out = Payload::new();
    let mode = file_mode(source.default_mode.unwrap_or(DEFAULT_MODE))?;
    for projection in source.sources.iter().flatten() {
        if let Some(c) = &projection.config_map {
            config_map_files(
                &c.name,
                c.items.as_deref(),
                c.optional,
                mode,
                objects,
                &mut out,
            )?;
        } else if let Some(s) = &projection.secret {
            secret_files(
                &s.name,
                s.items.as_deref(),
                s.optional,
                mode,
                objects,
                &mut out,
            )?;
        } else if let Some(d) = &projection.downward_api {
            downward_files(d.items.as_deref().unwrap_or_default(), mode, pod, &mut out)?;
        } else if projection.service_account_token.is_some() {
            return Err(
                "serviceAccountToken projections are not supported by this node yet".into(),
            );
        } else if projection.cluster_trust_bundle.is_some() {
            return Err("clusterTrustBundle projections are not supported by this node yet".into());
        }
    }
    Ok(out)
}

fn config_map_files(
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: u32,
    objects: &Objects,
    out: &mut Payload,
) -> Result<(), String> {
    let Some(cm) = objects.config_maps.get(name) else {
        return missing("configmap", name, optional);
    };
    // `data` and `binaryData` keys are disjoint (the API server checks).
    let mut data: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in cm.data.iter().flatten() {
        data.insert(k, v.as_bytes());
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k, &v.0);
    }
    key_files(
        &data,
        items,
        optional,
        mode,
        "configmap references non-existent config key",
        out,
    )
}

fn secret_files(
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: u32,
    objects: &Objects,
    out: &mut Payload,
) -> Result<(), String> {
    let Some(secret) = objects.secrets.get(name) else {
        return missing("secret", name, optional);
    };
    let mut data: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        data.insert(k, &v.0);
    }
    // `stringData` is write-only and merged into `data` by the API server;
    // honour it in case an object reaches us unmerged (it wins, as there).
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k, v.as_bytes());
    }
    key_files(
        &data,
        items,
        optional,
        mode,
        "references non-existent secret key",
        out,
    )
}

/// A missing ConfigMap or Secret: an empty volume when optional.
fn missing(kind: &str, name: &str, optional: Option<bool>) -> Result<(), String> {
    if optional == Some(true) {
        Ok(())
    } else {
        Err(format!("{kind} \"{name}\" not found"))
    }
}

/// Keys to files: every key under its own name, or only `items`.
fn key_files(
    data: &BTreeMap<&str, &[u8]>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    default_mode: u32,
    missing_key: &str,
    out: &mut Payload,
) -> Result<(), String> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, value) in data {
                insert(out, key, value.to_vec(), default_mode)?;
            }
        }
        Some(items) => {
            for item in items {
                match data.get(item.key.as_str()) {
                    Some(value) => {
                        let mode = match item.mode {
                            Some(m) => file_mode(m)?,
                            None => default_mode,
                        };
                        insert(out, &item.path, value.to_vec(), mode)?;
                    }
                    None if optional == Some(true) => {}
                    None => return Err(format!("{missing_key}: {}", item.key)),
                }
            }
        }
    }
    Ok(())
}

fn downward_files(
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    pod: &Pod,
    out: &mut Payload,
) -> Result<(), String> {
    for item in items {
        let value = match (&item.field_ref, &item.resource_field_ref) {
            (Some(field), _) => field_value(pod, &field.field_path)?,
            (None, Some(r)) => {
                return Err(format!(
                    "resourceFieldRef {:?} is not supported by this node yet",
                    r.resource
                ))
            }
            (None, None) => {
                return Err(format!("downwardAPI item {:?} has no fieldRef", item.path))
            }
        };
        let mode = match item.mode {
            Some(m) => file_mode(m)?,
            None => default_mode,
        };
        insert(out, &item.path, value.into_bytes(), mode)?;
    }
    Ok(())
}

/// A pod field as the downward API writes it.
fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(labels),
        "metadata.annotations" => format_map(annotations),
        _ => {
            if let Some(key) = subscript("metadata.labels") {
                labels.get(key).cloned().unwrap_or_default()
            } else if let Some(key) = subscript("metadata.annotations") {
                annotations.get(key).cloned().unwrap_or_default()
            } else {
                return Err(format!(
                    "unsupported fieldPath {path:?} in a downwardAPI volume"
                ));
            }
        }
    })
}

/// `key="value"` lines sorted by key, values quoted as Go's `%q` does (the
/// kubelet's `fieldpath.FormatMap`).
pub(super) fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            c if c.is_control() => {
                let n = c as u32;
                let _ = if n < 0x80 {
                    write!(out, "\\x{n:02x}")
                } else if n < 0x10000 {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn file_mode(mode: i32) -> Result<u32, String> {
    u32::try_from(mode)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("invalid file mode {mode:#o}: must be between 0 and 0777"))
}

fn insert(out: &mut Payload, path: &str, data: Vec<u8>, mode: u32) -> Result<(), String> {
    check_relative_path(path).map_err(|why| format!("invalid path {path:?}: {why}"))?;
    // `..` prefixes are the writer's own names (`..data`, `..<timestamp>`).
    if path.starts_with("..") {
        return Err(format!("invalid path {path:?}: must not start with '..'"));
    }
    out.insert(path.to_string(), File { data, mode });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, ObjectFieldSelector, Secret};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    fn objects() -> Objects {
        let mut o = Objects::default();
        o.config_maps.insert(
            "app".into(),
            ConfigMap {
                data: Some([("a".to_string(), "1".to_string()), ("b".into(), "2".into())].into()),
                binary_data: Some([("bin".to_string(), ByteString(vec![0, 1]))].into()),
                ..Default::default()
            },
        );
        o.secrets.insert(
            "tls".into(),
            Secret {
                data: Some([("key".to_string(), ByteString(b"s3cr3t".to_vec()))].into()),
                ..Default::default()
            },
        );
        o
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn every_key_becomes_a_file_with_the_default_mode() {
        let source = ConfigMapVolumeSource {
            name: "app".into(),
            default_mode: Some(0o400),
            ..Default::default()
        };
        let p = config_map(&source, &objects()).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a", "b", "bin"]);
        assert_eq!(
            p["bin"],
            File {
                data: vec![0, 1],
                mode: 0o400
            }
        );
    }

    #[test]
    fn items_select_keys_paths_and_modes() {
        let source = ConfigMapVolumeSource {
            name: "app".into(),
            items: Some(vec![
                item("a", "conf/a.txt", Some(0o600)),
                item("b", "b", None),
            ]),
            ..Default::default()
        };
        let p = config_map(&source, &objects()).unwrap();
        assert_eq!(
            p["conf/a.txt"],
            File {
                data: b"1".to_vec(),
                mode: 0o600
            }
        );
        assert_eq!(p["b"].mode, 0o644);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn missing_objects_and_keys() {
        let mut source = ConfigMapVolumeSource {
            name: "app-config".into(),
            ..Default::default()
        };
        assert_eq!(
            config_map(&source, &objects()).unwrap_err(),
            "configmap \"app-config\" not found"
        );
        source.optional = Some(true);
        assert!(config_map(&source, &objects()).unwrap().is_empty());

        let source = ConfigMapVolumeSource {
            name: "app".into(),
            items: Some(vec![item("nope", "x", None)]),
            ..Default::default()
        };
        assert_eq!(
            config_map(&source, &objects()).unwrap_err(),
            "configmap references non-existent config key: nope"
        );
        let source = SecretVolumeSource {
            secret_name: Some("absent".into()),
            ..Default::default()
        };
        assert_eq!(
            secret(&source, &objects()).unwrap_err(),
            "secret \"absent\" not found"
        );
    }

    #[test]
    fn escaping_paths_and_bad_modes_are_refused() {
        for path in ["../x", "/etc/x", "..data", "a/../../x"] {
            let source = SecretVolumeSource {
                secret_name: Some("tls".into()),
                items: Some(vec![item("key", path, None)]),
                ..Default::default()
            };
            let err = secret(&source, &objects()).unwrap_err();
            assert!(err.starts_with("invalid path"), "{path}: {err}");
        }
        let source = SecretVolumeSource {
            secret_name: Some("tls".into()),
            default_mode: Some(0o1777),
            ..Default::default()
        };
        assert!(secret(&source, &objects())
            .unwrap_err()
            .starts_with("invalid file mode"));
    }

    #[test]
    fn downward_api_fields() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                labels: Some(
                    [
                        ("tier".to_string(), "front".to_string()),
                        ("app".into(), "we\"b\n".into()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        let f = |path: &str| DownwardAPIVolumeFile {
            path: path.replace(['.', '[', ']', '\''], "_"),
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..Default::default()
        };
        let source = DownwardAPIVolumeSource {
            items: Some(vec![
                f("metadata.name"),
                f("metadata.namespace"),
                f("metadata.uid"),
                f("metadata.labels"),
                f("metadata.labels['tier']"),
                f("metadata.annotations"),
            ]),
            ..Default::default()
        };
        let p = downward_api(&source, &pod).unwrap();
        let text = |k: &str| String::from_utf8(p[k].data.clone()).unwrap();
        assert_eq!(text("metadata_name"), "web-0");
        assert_eq!(text("metadata_namespace"), "shop");
        assert_eq!(text("metadata_uid"), "u-1");
        assert_eq!(
            text("metadata_labels"),
            "app=\"we\\\"b\\n\"\ntier=\"front\""
        );
        assert_eq!(text("metadata_labels__tier__"), "front");
        assert_eq!(text("metadata_annotations"), "");

        let bad = DownwardAPIVolumeSource {
            items: Some(vec![f("spec.nodeName")]),
            ..Default::default()
        };
        assert!(downward_api(&bad, &pod)
            .unwrap_err()
            .contains("unsupported fieldPath"));
    }

    #[test]
    fn go_quoting_matches_percent_q() {
        assert_eq!(go_quote("a\u{0}b\u{7f}é"), "\"a\\x00b\\x7fé\"");
        assert_eq!(go_quote("tab\there"), "\"tab\\there\"");
    }
}
