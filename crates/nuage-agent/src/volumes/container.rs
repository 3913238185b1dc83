//! A container's volumeMounts resolved to bind mounts: volume by name,
//! `subPath` inside it, read-only when either side says so.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use super::{check_relative_path, PreparedVolume, VolumeError};
use crate::runtime::Mount;

/// Resolves a container's volumeMounts (with `subPath`) to (host path,
/// container path, read-only) using the prepared map. An unknown volume
/// name or a `subPath` escaping the volume (`..`, absolute, or a symlink
/// leading out) is an error. A missing `subPath` is created as a directory,
/// as the kubelet does.
pub fn mounts_for(
    container: &Container,
    volumes: &BTreeMap<String, PreparedVolume>,
) -> Result<Vec<Mount>, VolumeError> {
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let err = |reason: String| VolumeError::Mount {
            container: container.name.clone(),
            volume: vm.name.clone(),
            reason,
        };
        let volume = volumes
            .get(&vm.name)
            .ok_or_else(|| err("the pod has no such volume".into()))?;
        if vm.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(err("subPathExpr is not supported by this node yet".into()));
        }
        let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            None => volume.path.clone(),
            Some(sub) => sub_path(&volume.path, sub).map_err(err)?,
        };
        mounts.push(Mount {
            source,
            destination: vm.mount_path.clone(),
            read_only: volume.read_only || vm.read_only.unwrap_or(false),
        });
    }
    Ok(mounts)
}

/// `root/sub`, resolved, and still inside `root`.
fn sub_path(root: &Path, sub: &str) -> Result<PathBuf, String> {
    check_relative_path(sub).map_err(|why| format!("subPath {sub:?} {why}"))?;
    let path = root.join(sub);
    if fs::symlink_metadata(&path).is_err() {
        fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create subPath {}: {e}", path.display()))?;
    }
    let real = path
        .canonicalize()
        .map_err(|e| format!("subPath {}: {e}", path.display()))?;
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("volume {}: {e}", root.display()))?;
    if !real.starts_with(&real_root) {
        return Err(format!("subPath {sub:?} resolves outside the volume"));
    }
    Ok(real)
}
