//! Mounts the agent makes and removes (rootfs overlays, tmpfs volumes),
//! read from `/proc/self/mountinfo`: mounting a tmpfs once (an agent
//! restart finds it and does not stack a second one), asking whether a path
//! is a mount point, and unmounting everything under a directory before it
//! is removed.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

/// Mounts a tmpfs with `options` on `dir` unless something is mounted there.
pub(crate) fn mount_tmpfs_once(dir: &Path, options: &str) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot mount tmpfs on {}: {e}", dir.display());
    let target = dir.canonicalize().map_err(|e| fail(&e))?;
    if mount_points().map_err(|e| fail(&e))?.contains(&target) {
        return Ok(());
    }
    let data = CString::new(options).map_err(|e| fail(&e))?;
    mount(
        "tmpfs",
        &target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        data.as_c_str(),
    )
    .map_err(|e| fail(&io::Error::from(e)))
}

/// Unmounts every mount at or under `dir`, deepest first, then removes the
/// tree. Refuses to remove anything while a mount is left, so a bind mount
/// of a host directory someone made there is never emptied.
pub(crate) fn unmount_and_remove(dir: &Path) -> io::Result<()> {
    let root = match dir.canonicalize() {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    unmount_under(&root)?;
    match fs::remove_dir_all(&root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Whether something is mounted exactly at `target`.
pub(crate) fn is_mounted(target: &Path) -> bool {
    mount_points().is_ok_and(|m| m.iter().any(|p| p == target))
}

/// Unmounts every mount at or under `root` (canonical), deepest first,
/// detaching busy ones; an error if one is left.
pub(crate) fn unmount_under(root: &Path) -> io::Result<()> {
    let mut under: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|m| m.starts_with(root))
        .collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for target in &under {
        match unmount(target, UnmountFlags::empty()) {
            Ok(()) => {}
            // Already gone (an earlier stacked entry took it).
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
            // Open files in our namespace: detach it; it is freed when they close.
            Err(rustix::io::Errno::BUSY) => unmount(target, UnmountFlags::DETACH)?,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(left) = mount_points()?.into_iter().find(|m| m.starts_with(root)) {
        return Err(io::Error::other(format!(
            "{} is still mounted; not removing {}",
            left.display(),
            root.display()
        )));
    }
    Ok(())
}

/// Every mount point of this mount namespace, once per mount (stacked
/// mounts repeat).
pub(crate) fn mount_points() -> io::Result<Vec<PathBuf>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse(&text))
}

fn parse(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect()
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mount_points_with_escapes() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    90 22 0:50 / /var/lib/a\\040b rw - tmpfs tmpfs rw,size=1024k\n";
        assert_eq!(
            parse(text),
            [PathBuf::from("/"), PathBuf::from("/var/lib/a b")]
        );
    }
}
