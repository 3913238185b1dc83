//! Pod volumes on the real host: tmpfs mounts (root), hostPath checks,
//! atomic configMap/secret files, downward API, subPaths, and cleanup that
//! leaves no mount behind.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container, DownwardAPIProjection,
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource,
    KeyToPath, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, Pod, PodSpec,
    ProjectedVolumeSource, Secret, SecretProjection, SecretVolumeSource, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use nuage_agent::volumes::{self, Objects, PreparedVolume, VolumeError};

/// A pod directory whose volumes are cleaned up even when a test fails.
struct PodDir {
    dir: tempfile::TempDir,
}

impl PodDir {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("nuage-vol-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PodDir {
    fn drop(&mut self) {
        // Before TempDir removes the tree: never delete through a mount.
        if let Err(e) = volumes::cleanup_blocking(self.dir.path()) {
            eprintln!("cleanup of {}: {e}", self.dir.path().display());
        }
    }
}

fn is_root() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("skipped: mounting tmpfs needs root");
    }
    root
}

/// Mounts at `path` (canonical), with their filesystem type and options.
fn mounts_at(path: &Path) -> Vec<(String, String)> {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            (Path::new(fields[4]) == path)
                .then(|| (fields[dash + 1].to_string(), fields[dash + 3].to_string()))
        })
        .collect()
}

/// Mounts anywhere under `path`.
fn mounts_under(path: &Path) -> usize {
    let prefix = format!("{} ", path.display());
    let inner = format!("{}/", path.display());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| format!("{m} ") == prefix || m.starts_with(&inner))
        .count()
}

fn pod(volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("shop".into()),
            uid: Some("9f1c".into()),
            labels: Some(
                [
                    ("app".to_string(), "web".to_string()),
                    ("tier".into(), "front".into()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn volume(name: &str) -> Volume {
    Volume {
        name: name.into(),
        ..Default::default()
    }
}

fn host_path(name: &str, path: &Path, ty: &str) -> Volume {
    Volume {
        host_path: Some(HostPathVolumeSource {
            path: path.display().to_string(),
            type_: Some(ty.into()),
        }),
        ..volume(name)
    }
}

fn setup_error(pod: &Pod, dir: &Path, objects: &Objects) -> String {
    volumes::prepare_with(pod, dir, objects)
        .unwrap_err()
        .to_string()
}

#[test]
fn empty_dirs_on_disk_and_in_memory_are_mounted_once_and_cleaned_up() {
    if !is_root() {
        return;
    }
    let dir = PodDir::new();
    let pod = pod(vec![
        Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..volume("scratch")
        },
        Volume {
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("16Mi".into())),
            }),
            ..volume("mem")
        },
        // No source at all: defaulted to emptyDir.
        volume("bare"),
    ]);
    let prepared = volumes::prepare_with(&pod, dir.path(), &Objects::default()).unwrap();
    let scratch = dir.path().join("volumes/scratch");
    let mem = dir.path().join("volumes/mem");
    assert_eq!(
        prepared["scratch"],
        PreparedVolume {
            path: scratch.clone(),
            read_only: false
        }
    );
    assert!(dir.path().join("volumes/bare").is_dir());
    let mode = fs::metadata(&scratch).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o777);
    let mem_mounts = mounts_at(&mem);
    assert_eq!(mem_mounts.len(), 1, "{mem_mounts:?}");
    assert_eq!(mem_mounts[0].0, "tmpfs");
    assert!(mem_mounts[0].1.contains("size=16384k"), "{mem_mounts:?}");
    fs::write(mem.join("kept"), "x").unwrap();
    fs::write(scratch.join("kept"), "y").unwrap();

    // An agent restart prepares again: same mount, same contents.
    volumes::prepare_with(&pod, dir.path(), &Objects::default()).unwrap();
    assert_eq!(mounts_at(&mem).len(), 1);
    assert_eq!(fs::read_to_string(mem.join("kept")).unwrap(), "x");
    assert_eq!(fs::read_to_string(scratch.join("kept")).unwrap(), "y");

    volumes::cleanup_blocking(dir.path()).unwrap();
    assert_eq!(mounts_under(dir.path()), 0);
    assert!(!dir.path().join("volumes").exists());
    // Idempotent.
    volumes::cleanup_blocking(dir.path()).unwrap();
}

#[tokio::test]
async fn async_cleanup_of_a_pod_without_volumes_is_fine() {
    let dir = PodDir::new();
    volumes::cleanup(dir.path()).await.unwrap();
    volumes::cleanup(&dir.path().join("never-made"))
        .await
        .unwrap();
}

#[test]
fn host_paths_are_checked_as_kubernetes_does_and_never_removed() {
    let dir = PodDir::new();
    let host = tempfile::Builder::new()
        .prefix("nuage-host-")
        .tempdir()
        .unwrap();
    let file = host.path().join("file");
    fs::write(&file, "data").unwrap();
    let socket_path = host.path().join("sock");
    let _socket = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    let made_dir = host.path().join("made/deeper");
    let made_file = host.path().join("made-file");
    let ok = pod(vec![
        host_path("any", host.path(), ""),
        host_path("dir", host.path(), "Directory"),
        host_path("file", &file, "File"),
        host_path("mkdir", &made_dir, "DirectoryOrCreate"),
        host_path("touch", &made_file, "FileOrCreate"),
        host_path("sock", &socket_path, "Socket"),
        host_path("null", Path::new("/dev/null"), "CharDevice"),
    ]);
    let prepared = volumes::prepare_with(&ok, dir.path(), &Objects::default()).unwrap();
    assert_eq!(prepared["file"].path, file);
    assert!(made_dir.is_dir());
    assert!(made_file.is_file());

    let missing = host.path().join("missing");
    let cases = [
        (
            host_path("v", &missing, "Directory"),
            format!(
                "hostPath type check failed: {} is not a directory",
                missing.display()
            ),
        ),
        (
            host_path("v", &file, "Directory"),
            format!(
                "hostPath type check failed: {} is not a directory",
                file.display()
            ),
        ),
        (
            host_path("v", host.path(), "File"),
            format!(
                "hostPath type check failed: {} is not a file",
                host.path().display()
            ),
        ),
        (
            host_path("v", &file, "Socket"),
            format!(
                "hostPath type check failed: {} is not a socket file",
                file.display()
            ),
        ),
        (
            host_path("v", Path::new("/dev/null"), "BlockDevice"),
            "hostPath type check failed: /dev/null is not a block device".into(),
        ),
        (
            host_path("v", &file, "CharDevice"),
            format!(
                "hostPath type check failed: {} is not a character device",
                file.display()
            ),
        ),
        (
            host_path("v", &file, "Pipe"),
            "Pipe is an invalid volume type".into(),
        ),
    ];
    for (v, reason) in cases {
        let err = setup_error(&pod(vec![v]), dir.path(), &Objects::default());
        assert_eq!(
            err,
            format!("MountVolume.SetUp failed for volume \"v\" : {reason}")
        );
    }

    volumes::cleanup_blocking(dir.path()).unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "data");
    assert!(made_dir.is_dir() && made_file.is_file());
}

fn objects() -> Objects {
    let mut objects = Objects::default();
    objects.config_maps.insert(
        "app-config".into(),
        ConfigMap {
            data: Some(
                [
                    ("app.properties".to_string(), "color=blue\n".to_string()),
                    ("mode".into(), "prod".into()),
                ]
                .into(),
            ),
            ..Default::default()
        },
    );
    objects.secrets.insert(
        "db".into(),
        Secret {
            data: Some(
                [
                    ("password".to_string(), ByteString(b"hunter2".to_vec())),
                    ("user".into(), ByteString(b"admin".to_vec())),
                ]
                .into(),
            ),
            ..Default::default()
        },
    );
    objects
}

fn config_map_volume(name: &str, items: Option<Vec<KeyToPath>>) -> Volume {
    Volume {
        config_map: Some(ConfigMapVolumeSource {
            name: name.into(),
            items,
            ..Default::default()
        }),
        ..volume("cfg")
    }
}

fn secret_volume() -> Volume {
    Volume {
        secret: Some(SecretVolumeSource {
            secret_name: Some("db".into()),
            default_mode: Some(0o400),
            ..Default::default()
        }),
        ..volume("creds")
    }
}

#[test]
fn config_maps_and_secrets_are_written_atomically_and_refreshed() {
    if !is_root() {
        return;
    }
    let dir = PodDir::new();
    let items = vec![KeyToPath {
        key: "app.properties".into(),
        path: "conf/app.properties".into(),
        mode: Some(0o600),
    }];
    let pod = pod(vec![
        config_map_volume("app-config", Some(items)),
        secret_volume(),
    ]);
    let mut objects = objects();
    let prepared = volumes::prepare_with(&pod, dir.path(), &objects).unwrap();
    let cfg = &prepared["cfg"];
    assert!(cfg.read_only);
    let conf = cfg.path.join("conf/app.properties");
    assert_eq!(fs::read_to_string(&conf).unwrap(), "color=blue\n");
    assert_eq!(
        fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!cfg.path.join("mode").exists(), "only the listed item");
    assert_eq!(
        fs::read_link(cfg.path.join("conf")).unwrap(),
        Path::new("..data/conf")
    );
    assert!(mounts_at(&cfg.path).is_empty(), "configMaps live on disk");

    let creds = &prepared["creds"];
    assert_eq!(
        fs::read_to_string(creds.path.join("password")).unwrap(),
        "hunter2"
    );
    let mode = fs::metadata(creds.path.join("user"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o400);
    let secret_mounts = mounts_at(&creds.path);
    assert_eq!(secret_mounts.len(), 1);
    assert_eq!(secret_mounts[0].0, "tmpfs");

    // A refresh: the new content appears through the same paths.
    let version = fs::read_link(cfg.path.join("..data")).unwrap();
    objects
        .config_maps
        .get_mut("app-config")
        .unwrap()
        .data
        .as_mut()
        .unwrap()
        .insert("app.properties".into(), "color=green\n".into());
    objects
        .secrets
        .get_mut("db")
        .unwrap()
        .data
        .as_mut()
        .unwrap()
        .remove("user");
    volumes::prepare_with(&pod, dir.path(), &objects).unwrap();
    assert_eq!(fs::read_to_string(&conf).unwrap(), "color=green\n");
    assert_ne!(fs::read_link(cfg.path.join("..data")).unwrap(), version);
    assert!(fs::symlink_metadata(creds.path.join("user")).is_err());
    assert_eq!(
        mounts_at(&creds.path).len(),
        1,
        "the secret tmpfs is not stacked"
    );

    volumes::cleanup_blocking(dir.path()).unwrap();
    assert_eq!(mounts_under(dir.path()), 0);
    assert!(!dir.path().join("volumes").exists());
}

#[test]
fn missing_objects_and_unsupported_sources_say_why() {
    let dir = PodDir::new();
    let err = setup_error(
        &pod(vec![config_map_volume("app-configs", None)]),
        dir.path(),
        &objects(),
    );
    assert_eq!(
        err,
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"app-configs\" not found"
    );

    let mut optional = config_map_volume("absent", None);
    optional.config_map.as_mut().unwrap().optional = Some(true);
    let prepared = volumes::prepare_with(&pod(vec![optional]), dir.path(), &objects()).unwrap();
    assert!(prepared["cfg"].path.join("..data").is_dir());

    let item = KeyToPath {
        key: "missing".into(),
        path: "m".into(),
        mode: None,
    };
    let err = setup_error(
        &pod(vec![config_map_volume("app-config", Some(vec![item]))]),
        dir.path(),
        &objects(),
    );
    assert!(
        err.ends_with("configmap references non-existent config key: missing"),
        "{err}"
    );

    let escaping = KeyToPath {
        key: "mode".into(),
        path: "../../etc/evil".into(),
        mode: None,
    };
    let err = setup_error(
        &pod(vec![config_map_volume("app-config", Some(vec![escaping]))]),
        dir.path(),
        &objects(),
    );
    assert!(err.contains("invalid path \"../../etc/evil\""), "{err}");

    let pvc = Volume {
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: "data".into(),
            read_only: None,
        }),
        ..volume("data")
    };
    let err = setup_error(&pod(vec![pvc]), dir.path(), &objects());
    assert_eq!(
        err,
        "MountVolume.SetUp failed for volume \"data\" : persistentVolumeClaim volumes are not supported by this node yet"
    );
}

fn field(path: &str, field_path: &str) -> DownwardAPIVolumeFile {
    DownwardAPIVolumeFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: field_path.into(),
        }),
        ..Default::default()
    }
}

#[test]
fn downward_api_and_projected_volumes() {
    if !is_root() {
        return;
    }
    let dir = PodDir::new();
    let downward = Volume {
        downward_api: Some(DownwardAPIVolumeSource {
            items: Some(vec![
                field("name", "metadata.name"),
                field("labels", "metadata.labels"),
                field("tier", "metadata.labels['tier']"),
            ]),
            ..Default::default()
        }),
        ..volume("podinfo")
    };
    let projected = Volume {
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o440),
            sources: Some(vec![
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "app-config".into(),
                        items: Some(vec![KeyToPath {
                            key: "mode".into(),
                            path: "mode".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    secret: Some(SecretProjection {
                        name: "db".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![field("namespace", "metadata.namespace")]),
                    }),
                    ..Default::default()
                },
            ]),
        }),
        ..volume("all")
    };
    let prepared =
        volumes::prepare_with(&pod(vec![downward, projected]), dir.path(), &objects()).unwrap();
    let read = |v: &str, f: &str| fs::read_to_string(prepared[v].path.join(f)).unwrap();
    assert_eq!(read("podinfo", "name"), "web-0");
    assert_eq!(read("podinfo", "labels"), "app=\"web\"\ntier=\"front\"");
    assert_eq!(read("podinfo", "tier"), "front");
    assert_eq!(read("all", "mode"), "prod");
    assert_eq!(read("all", "password"), "hunter2");
    assert_eq!(read("all", "namespace"), "shop");
    let mode = fs::metadata(prepared["all"].path.join("mode"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o440);
    assert_eq!(
        mounts_at(&prepared["all"].path).len(),
        1,
        "projected is on tmpfs"
    );

    volumes::cleanup_blocking(dir.path()).unwrap();
    assert_eq!(mounts_under(dir.path()), 0);
}

fn mount(name: &str, path: &str, sub_path: Option<&str>, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        sub_path: sub_path.map(str::to_string),
        read_only: Some(read_only),
        ..Default::default()
    }
}

fn container(mounts: Vec<VolumeMount>) -> Container {
    Container {
        name: "app".into(),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

#[test]
fn volume_mounts_resolve_sub_paths_inside_their_volume() {
    let dir = PodDir::new();
    let pod = pod(vec![
        Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..volume("data")
        },
        config_map_volume("app-config", None),
    ]);
    let prepared: BTreeMap<String, PreparedVolume> =
        volumes::prepare_with(&pod, dir.path(), &objects()).unwrap();
    let data = prepared["data"].path.canonicalize().unwrap();
    // A symlink in the volume pointing out of it.
    std::os::unix::fs::symlink("/etc", data.join("out")).unwrap();

    let mounts = volumes::mounts_for(
        &container(vec![
            mount("data", "/data", None, false),
            mount("data", "/logs", Some("logs/app"), true),
            mount("cfg", "/etc/app/mode", Some("mode"), false),
        ]),
        &prepared,
    )
    .unwrap();
    assert_eq!(mounts.len(), 3);
    assert_eq!(
        (mounts[0].source.clone(), mounts[0].read_only),
        (prepared["data"].path.clone(), false)
    );
    assert_eq!(mounts[1].source, data.join("logs/app"));
    assert!(mounts[1].read_only);
    assert!(
        data.join("logs/app").is_dir(),
        "a missing subPath is created"
    );
    assert!(mounts[2].read_only, "configMap mounts are read-only");
    assert_eq!(fs::read_to_string(&mounts[2].source).unwrap(), "prod");
    assert_eq!(mounts[2].destination, "/etc/app/mode");

    let err = |m: VolumeMount| volumes::mounts_for(&container(vec![m]), &prepared).unwrap_err();
    let unknown = err(mount("nope", "/x", None, false));
    assert!(matches!(unknown, VolumeError::Mount { .. }));
    assert_eq!(
        unknown.to_string(),
        "cannot mount volume \"nope\" into container \"app\": the pod has no such volume"
    );
    for (sub, why) in [
        ("../../etc", "must not contain '..'"),
        ("/etc", "must be a relative path"),
        ("out", "resolves outside the volume"),
    ] {
        let e = err(mount("data", "/x", Some(sub), false)).to_string();
        assert!(e.contains(why), "{sub}: {e}");
    }
}
