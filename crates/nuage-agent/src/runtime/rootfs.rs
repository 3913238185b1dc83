//! A container's root filesystem: an overlay of the image's shared,
//! read-only layers with a private upper directory, mounted before the OCI
//! runtime creates the container and unmounted when it is removed.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

/// Where a container's rootfs pieces live inside its work dir.
#[derive(Debug, Clone)]
pub struct RootfsDirs {
    /// The mount point (the bundle's `root.path`).
    pub target: PathBuf,
    /// The container's writes.
    pub upper: PathBuf,
    /// overlayfs's scratch directory (same filesystem as `upper`).
    pub work: PathBuf,
}

impl RootfsDirs {
    /// The layout under a container's work dir.
    pub fn under(work_dir: &Path) -> Self {
        Self {
            target: work_dir.join("rootfs"),
            upper: work_dir.join("upper"),
            work: work_dir.join("work"),
        }
    }
}

/// overlayfs options for `layers` given bottom first (as images list them);
/// overlayfs wants the top-most lower directory first.
pub fn overlay_options(layers: &[PathBuf], dirs: &RootfsDirs) -> io::Result<String> {
    if layers.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the image has no layers",
        ));
    }
    let mut lower = Vec::with_capacity(layers.len());
    for layer in layers.iter().rev() {
        let s = layer.to_str().ok_or_else(|| bad_path(layer))?;
        // `:` separates lower dirs and `,` options: such a path cannot be said.
        if s.contains([':', ',']) {
            return Err(bad_path(layer));
        }
        lower.push(s);
    }
    let upper = dirs.upper.to_str().ok_or_else(|| bad_path(&dirs.upper))?;
    let work = dirs.work.to_str().ok_or_else(|| bad_path(&dirs.work))?;
    Ok(format!(
        "lowerdir={},upperdir={upper},workdir={work}",
        lower.join(":")
    ))
}

fn bad_path(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} cannot be an overlay layer path", p.display()),
    )
}

/// Mounts the overlay (creating its directories); a no-op if already mounted.
pub fn mount_overlay(layers: &[PathBuf], dirs: &RootfsDirs) -> io::Result<()> {
    for d in [&dirs.target, &dirs.upper, &dirs.work] {
        fs::create_dir_all(d)?;
    }
    if is_mounted(&dirs.target) {
        return Ok(());
    }
    let options = CString::new(overlay_options(layers, dirs)?).map_err(io::Error::other)?;
    rustix::mount::mount(
        "overlay",
        &dirs.target,
        "overlay",
        MountFlags::empty(),
        options.as_c_str(),
    )
    .map_err(|e| io::Error::other(format!("mount overlay on {}: {e}", dirs.target.display())))
}

/// Unmounts `target` (every mount stacked on it); fine if nothing is mounted.
pub fn unmount(target: &Path) -> io::Result<()> {
    while is_mounted(target) {
        match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Ok(()) => {}
            // Busy (a process still has its cwd there): detach it; the kernel
            // frees it when the last user goes.
            Err(rustix::io::Errno::BUSY) => rustix::mount::unmount(target, UnmountFlags::DETACH)
                .map_err(|e| io::Error::other(format!("unmount {}: {e}", target.display())))?,
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => {
                return Err(io::Error::other(format!(
                    "unmount {}: {e}",
                    target.display()
                )))
            }
        }
    }
    Ok(())
}

/// Whether something is mounted exactly at `target` in this mount namespace.
pub fn is_mounted(target: &Path) -> bool {
    crate::mounts::is_mounted(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_dirs_are_listed_top_first() {
        let dirs = RootfsDirs::under(Path::new("/w"));
        let layers = vec![PathBuf::from("/l/base"), PathBuf::from("/l/app")];
        assert_eq!(
            overlay_options(&layers, &dirs).unwrap(),
            "lowerdir=/l/app:/l/base,upperdir=/w/upper,workdir=/w/work"
        );
        assert!(overlay_options(&[], &dirs).is_err());
        assert!(overlay_options(&[PathBuf::from("/a:b")], &dirs).is_err());
    }
}
