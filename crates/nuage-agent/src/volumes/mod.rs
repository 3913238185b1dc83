//! Pod volumes on the host: each volume of a pod becomes a host path that the
//! runtime bind-mounts into the containers that ask for it.
//!
//! Everything a pod's volumes need lives under `POD_DIR/volumes/<name>`
//! (`emptyDir`, `configMap`, `secret`, `downwardAPI`, `projected`), except
//! `hostPath`, which is used where it is and never removed. `emptyDir` with
//! `medium: Memory`, `secret` and `projected` volumes sit on their own tmpfs so
//! their bytes never reach the disk. Files of `configMap`, `secret`,
//! `downwardAPI` and `projected` volumes are written the way the kubelet's
//! AtomicWriter does, so preparing again refreshes them in place while
//! containers read them.
//!
//! Preparing is idempotent: after an agent restart it finds the tmpfs mounts
//! and files already there and keeps them. It does not own the bind mounts
//! into containers (the runtime makes them from [`mounts_for`]).

mod atomic_writer;
mod container;
mod host_path;
mod payload;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, EmptyDirVolumeSource, Pod, Secret, Volume};
use nuage_client::Client;

pub use container::mounts_for;

/// A volume ready on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedVolume {
    /// The host path to bind-mount (a directory, or for `hostPath` whatever
    /// is at that path).
    pub path: PathBuf,
    /// Every mount of it is read-only (`configMap`, `secret`, `downwardAPI`,
    /// `projected`), whatever the volumeMount says.
    pub read_only: bool,
}

/// A volume that cannot be set up or mounted. `Display` is the message users
/// see in the pod's events (`kubectl describe pod`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// A volume of the pod could not be prepared (the kubelet's
    /// `FailedMount` event).
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {reason}")]
    SetUp {
        /// The volume's name in the pod.
        volume: String,
        /// Why, naming the value at fault.
        reason: String,
    },
    /// A container's volumeMount cannot be resolved (the container waits
    /// with `CreateContainerConfigError`).
    #[error("cannot mount volume \"{volume}\" into container \"{container}\": {reason}")]
    Mount {
        /// The container.
        container: String,
        /// The volumeMount's volume name.
        volume: String,
        /// Why, naming the value at fault.
        reason: String,
    },
}

impl VolumeError {
    /// The Event reason the kubelet gives this failure.
    pub fn event_reason(&self) -> &'static str {
        match self {
            VolumeError::SetUp { .. } => "FailedMount",
            VolumeError::Mount { .. } => "Failed",
        }
    }
}

/// The ConfigMaps and Secrets a pod's volumes refer to, already fetched
/// from the pod's namespace; a name missing from a map does not exist.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
}

/// Prepares every volume of `pod` under `pod_dir/volumes/<name>`; returns
/// name → host path to bind-mount.
///
/// Fetches the ConfigMaps and Secrets it needs through `client`, then does
/// the file work on a blocking thread. Calling it again for the same pod
/// refreshes configMap, secret and downwardAPI files and mounts nothing
/// twice.
pub async fn prepare(
    client: &Client,
    pod: &Pod,
    pod_dir: &Path,
) -> Result<BTreeMap<String, PreparedVolume>, VolumeError> {
    let objects = fetch(client, pod).await?;
    let pod = pod.clone();
    let pod_dir = pod_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || prepare_with(&pod, &pod_dir, &objects)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(VolumeError::SetUp {
            volume: String::new(),
            reason: format!("volume setup was cancelled: {e}"),
        }),
    }
}

/// [`prepare`] with the ConfigMaps and Secrets already fetched (blocking:
/// call it from a blocking thread).
pub fn prepare_with(
    pod: &Pod,
    pod_dir: &Path,
    objects: &Objects,
) -> Result<BTreeMap<String, PreparedVolume>, VolumeError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let volumes_dir = pod_dir.join("volumes");
    let mut prepared = BTreeMap::new();
    for volume in volumes {
        let ready = prepare_one(volume, pod, &volumes_dir, objects).map_err(|reason| {
            VolumeError::SetUp {
                volume: volume.name.clone(),
                reason,
            }
        })?;
        prepared.insert(volume.name.clone(), ready);
    }
    Ok(prepared)
}

/// Unmounts and removes what [`prepare`] made under `pod_dir/volumes`
/// (hostPath sources are never touched). Idempotent.
pub async fn cleanup(pod_dir: &Path) -> std::io::Result<()> {
    let pod_dir = pod_dir.to_path_buf();
    tokio::task::spawn_blocking(move || cleanup_blocking(&pod_dir))
        .await
        .map_err(std::io::Error::other)?
}

/// [`cleanup`] on the calling thread (for `Drop` guards and blocking code).
pub fn cleanup_blocking(pod_dir: &Path) -> std::io::Result<()> {
    crate::mounts::unmount_and_remove(&pod_dir.join("volumes"))
}

/// Reads the ConfigMaps and Secrets the pod's volumes name, each once.
async fn fetch(client: &Client, pod: &Pod) -> Result<Objects, VolumeError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let mut objects = Objects::default();
    let mut asked = BTreeSet::new();
    for volume in volumes {
        let fail = |what: &str, name: &str, e: nuage_client::Error| VolumeError::SetUp {
            volume: volume.name.clone(),
            reason: format!("cannot get {what} \"{name}\": {e}"),
        };
        let (config_maps, secrets) = payload::referenced_objects(volume);
        for name in config_maps {
            if asked.insert(("configmap", name.clone())) {
                match client.get::<ConfigMap>(Some(namespace), &name).await {
                    Ok(Some(cm)) => drop(objects.config_maps.insert(name, cm)),
                    Ok(None) => {}
                    Err(e) => return Err(fail("configmap", &name, e)),
                }
            }
        }
        for name in secrets {
            if asked.insert(("secret", name.clone())) {
                match client.get::<Secret>(Some(namespace), &name).await {
                    Ok(Some(s)) => drop(objects.secrets.insert(name, s)),
                    Ok(None) => {}
                    Err(e) => return Err(fail("secret", &name, e)),
                }
            }
        }
    }
    Ok(objects)
}

fn prepare_one(
    volume: &Volume,
    pod: &Pod,
    volumes_dir: &Path,
    objects: &Objects,
) -> Result<PreparedVolume, String> {
    check_relative_path(&volume.name)
        .ok()
        .filter(|_| !volume.name.contains('/'))
        .ok_or_else(|| format!("invalid volume name {:?}", volume.name))?;
    let dir = volumes_dir.join(&volume.name);
    if let Some(source) = &volume.host_path {
        host_path::check(source)?;
        return Ok(PreparedVolume {
            path: PathBuf::from(&source.path),
            read_only: false,
        });
    }
    if let Some(source) = &volume.empty_dir {
        return empty_dir(source, &dir);
    }
    let (files, on_tmpfs) = if let Some(source) = &volume.config_map {
        (payload::config_map(source, objects)?, false)
    } else if let Some(source) = &volume.secret {
        (payload::secret(source, objects)?, true)
    } else if let Some(source) = &volume.downward_api {
        (payload::downward_api(source, pod)?, false)
    } else if let Some(source) = &volume.projected {
        // A projection may hold secrets: keep it off the disk.
        (payload::projected(source, pod, objects)?, true)
    } else if let Some(kind) = unsupported_kind(volume) {
        return Err(format!("{kind} volumes are not supported by this node yet"));
    } else {
        // No source at all: the API server defaults this to emptyDir.
        return empty_dir(&EmptyDirVolumeSource::default(), &dir);
    };
    make_dir(&dir, 0o755)?;
    if on_tmpfs {
        crate::mounts::mount_tmpfs_once(&dir, "mode=0755")?;
    }
    atomic_writer::write(&dir, &files)?;
    Ok(PreparedVolume {
        path: dir,
        read_only: true,
    })
}

fn empty_dir(source: &EmptyDirVolumeSource, dir: &Path) -> Result<PreparedVolume, String> {
    make_dir(dir, 0o777)?;
    match source.medium.as_deref().unwrap_or("") {
        "" => {}
        "Memory" => {
            let mut options = String::from("mode=0777");
            if let Some(limit) = &source.size_limit {
                let bytes = nuage_model::quantity::Quantity::parse(&limit.0)
                    .map(|q| q.value())
                    .filter(|b| *b >= 0)
                    .ok_or_else(|| format!("invalid emptyDir sizeLimit {:?}", limit.0))?;
                // 0 means "no limit" to tmpfs; Kubernetes means a full disk.
                options.push_str(&format!(",size={}", bytes.max(1)));
            }
            crate::mounts::mount_tmpfs_once(dir, &options)?;
            // The tmpfs root takes `mode` from the options; set it again in
            // case it was mounted by an older agent with other options.
            set_mode(dir, 0o777)?;
        }
        m if m.starts_with("HugePages") => {
            return Err(format!(
                "emptyDir medium \"{m}\" is not supported by this node yet"
            ))
        }
        m => return Err(format!("invalid emptyDir medium \"{m}\"")),
    }
    Ok(PreparedVolume {
        path: dir.to_path_buf(),
        read_only: false,
    })
}

/// The API name of a volume source this node cannot provide.
fn unsupported_kind(v: &Volume) -> Option<&'static str> {
    [
        (v.persistent_volume_claim.is_some(), "persistentVolumeClaim"),
        (v.ephemeral.is_some(), "ephemeral"),
        (v.image.is_some(), "image"),
        (v.csi.is_some(), "csi"),
        (v.nfs.is_some(), "nfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.fc.is_some(), "fc"),
        (v.rbd.is_some(), "rbd"),
        (v.cephfs.is_some(), "cephfs"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.azure_file.is_some(), "azureFile"),
        (v.cinder.is_some(), "cinder"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
        (v.quobyte.is_some(), "quobyte"),
        (v.flocker.is_some(), "flocker"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
    ]
    .into_iter()
    .find_map(|(set, kind)| set.then_some(kind))
}

/// Creates `dir` (and its parents) and gives it `mode` regardless of umask.
fn make_dir(dir: &Path, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    set_mode(dir, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

/// A path that stays inside the directory it is joined to: relative, not
/// empty, without `..` components.
fn check_relative_path(path: &str) -> Result<(), &'static str> {
    let p = Path::new(path);
    if path.is_empty() {
        Err("must not be empty")
    } else if p.is_absolute() {
        Err("must be a relative path")
    } else if p.components().any(|c| c == Component::ParentDir) {
        Err("must not contain '..'")
    } else if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        Err("must not contain '.' components")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        assert!(check_relative_path("a/b.txt").is_ok());
        assert!(check_relative_path("..a").is_ok());
        assert!(check_relative_path("").is_err());
        assert!(check_relative_path("/etc/passwd").is_err());
        assert!(check_relative_path("a/../../b").is_err());
        assert!(check_relative_path("..").is_err());
        assert!(check_relative_path("./a").is_err());
    }

    #[test]
    fn set_up_errors_read_like_the_kubelets() {
        let e = VolumeError::SetUp {
            volume: "cfg".into(),
            reason: "configmap \"app-config\" not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "MountVolume.SetUp failed for volume \"cfg\" : configmap \"app-config\" not found"
        );
        assert_eq!(e.event_reason(), "FailedMount");
    }

    #[test]
    fn unsupported_sources_are_named() {
        let v = Volume {
            name: "data".into(),
            persistent_volume_claim: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(unsupported_kind(&v), Some("persistentVolumeClaim"));
        let err = prepare_one(
            &v,
            &Pod::default(),
            Path::new("/nonexistent-nuage"),
            &Objects::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "persistentVolumeClaim volumes are not supported by this node yet"
        );
    }
}
