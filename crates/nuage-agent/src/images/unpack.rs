//! Unpacks one layer tar into a fresh directory, for use as a read-only
//! overlayfs lower layer.
//!
//! OCI whiteouts become overlayfs whiteouts in the layer itself (a
//! `.wh.NAME` entry becomes a character device 0:0 named `NAME`; a
//! `.wh..wh..opq` entry sets `trusted.overlay.opaque=y` on its directory),
//! because each layer is unpacked once and shared: the files a whiteout
//! hides live in another layer's directory, so overlayfs must apply it when
//! it stacks them.
//!
//! Nothing is ever written through a symlink: every directory on the way to
//! an entry is opened component by component with `O_NOFOLLOW`, relative to
//! the layer's root, so a symlink planted by an earlier entry
//! (`etc -> /etc`, then `etc/passwd`) cannot lead outside.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use super::compression;
use super::digest::HashingReader;
use super::error::{ImageError, IoContext, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Unpacks the layer blob `blob` (tar, gzip or zstd) into the existing,
/// empty directory `dest`, and checks that the uncompressed tar's digest is
/// `diff_id`.
pub(crate) fn unpack_layer(blob: &Path, dest: &Path, diff_id: &str) -> Result<()> {
    let file = File::open(blob).ctx("open layer", blob)?;
    let reader = compression::decompress(io::BufReader::with_capacity(256 * 1024, file))
        .ctx("read layer", blob)?;
    let hashing = HashingReader::new(reader);
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", dest)?;
    let mut writer = LayerWriter {
        root,
        dest: dest.to_path_buf(),
        layer: diff_id.to_string(),
        dirs: Vec::new(),
        is_root: rustix::process::geteuid().is_root(),
    };
    let mut archive = tar::Archive::new(hashing);
    let entries = archive.entries().ctx("read layer", blob)?;
    for entry in entries {
        let mut entry = entry.ctx("read layer", blob)?;
        writer.write_entry(&mut entry)?;
    }
    writer.finish_dirs()?;
    // The tar's end-of-archive blocks and padding count in the digest too.
    let (actual, _) = archive.into_inner().finish().ctx("read layer", blob)?;
    if actual != diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("layer {}", blob.display()),
            expected: diff_id.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Metadata applied to a directory once everything inside it is written
/// (a read-only directory would refuse its own entries, and writing them
/// would change its mtime).
struct DirMeta {
    path: Vec<OsString>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
}

struct LayerWriter {
    root: OwnedFd,
    dest: PathBuf,
    layer: String,
    dirs: Vec<DirMeta>,
    /// Ownership and whiteout devices need root; without it they are
    /// skipped (files then belong to the caller).
    is_root: bool,
}

impl LayerWriter {
    fn unsafe_path(&self, path: &Path, reason: &'static str) -> ImageError {
        ImageError::UnsafePath {
            layer: self.layer.clone(),
            path: path.display().to_string(),
            reason,
        }
    }

    /// The entry's path as plain components, refusing anything that leaves
    /// the layer.
    fn components(&self, path: &Path) -> Result<Vec<OsString>> {
        let mut out = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(name) => out.push(name.to_os_string()),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(self.unsafe_path(path, "is absolute"))
                }
                Component::ParentDir => return Err(self.unsafe_path(path, "contains '..'")),
            }
        }
        Ok(out)
    }

    fn err(&self, what: &str, rel: &[OsString], e: Errno) -> ImageError {
        let mut p = self.dest.clone();
        p.extend(rel);
        ImageError::io(what, &p, e.into())
    }

    /// Opens the directory `rel` under the root without following any
    /// symlink, creating missing directories when `create`.
    fn open_dir(&self, rel: &[OsString], create: bool, entry: &Path) -> Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut dir = rustix::io::dup(&self.root).map_err(|e| self.err("dup", &[], e))?;
        for (i, name) in rel.iter().enumerate() {
            let next = match rustix::fs::openat(&dir, name.as_os_str(), flags, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    rustix::fs::mkdirat(&dir, name.as_os_str(), Mode::from_raw_mode(0o755))
                        .map_err(|e| self.err("create directory", &rel[..=i], e))?;
                    rustix::fs::openat(&dir, name.as_os_str(), flags, Mode::empty())
                }
                other => other,
            };
            dir = next.map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => {
                    self.unsafe_path(entry, "goes through a symlink or a file")
                }
                e => self.err("open directory", &rel[..=i], e),
            })?;
        }
        Ok(dir)
    }

    /// Removes whatever is at `name` in `dir`, so the entry replaces it
    /// (a later entry for the same path wins, as in `tar -x`).
    fn remove_existing(&self, dir: &OwnedFd, rel: &[OsString]) -> Result<()> {
        let name = rel.last().expect("entries have a name");
        match rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.err("stat", rel, e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode).is_dir() => {
                // Every parent was opened without following symlinks, so this
                // path stays inside the layer.
                let mut p = self.dest.clone();
                p.extend(rel);
                std::fs::remove_dir_all(&p).ctx("remove", &p)
            }
            Ok(_) => rustix::fs::unlinkat(dir, name.as_os_str(), AtFlags::empty())
                .map_err(|e| self.err("remove", rel, e)),
        }
    }

    fn chown_at(&self, dir: &OwnedFd, rel: &[OsString], uid: u32, gid: u32) -> Result<()> {
        if !self.is_root {
            return Ok(());
        }
        let name = rel.last().expect("entries have a name");
        rustix::fs::chownat(
            dir,
            name.as_os_str(),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err("chown", rel, e))
    }

    fn write_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let path = entry
            .path()
            .map_err(|e| ImageError::BadArchive(format!("layer {}: {e}", self.layer)))?
            .into_owned();
        let rel = self.components(&path)?;
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mtime = header.mtime().unwrap_or(0);
        let kind = header.entry_type();
        let Some((name, parents)) = rel.split_last() else {
            // The layer root itself ("./"): it becomes the container's `/`.
            if kind == tar::EntryType::Directory {
                self.dirs.push(DirMeta {
                    path: Vec::new(),
                    mode,
                    uid,
                    gid,
                    mtime,
                });
            }
            return Ok(());
        };
        let dir = self.open_dir(parents, true, &path)?;

        let name_bytes = name.as_bytes();
        if name == OPAQUE_MARKER {
            rustix::fs::fsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| self.err("mark opaque", parents, e))?;
            return Ok(());
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let mut target = parents.to_vec();
            target.push(OsStr::from_bytes(hidden).to_os_string());
            if hidden.is_empty() || hidden.contains(&b'/') {
                return Err(self.unsafe_path(&path, "is a whiteout with no name"));
            }
            self.remove_existing(&dir, &target)?;
            rustix::fs::mknodat(
                &dir,
                OsStr::from_bytes(hidden),
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| self.err("make whiteout", &target, e))?;
            return Ok(());
        }

        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode).is_dir() => {}
                    Ok(_) => {
                        self.remove_existing(&dir, &rel)?;
                        self.mkdir(&dir, &rel)?;
                    }
                    Err(Errno::NOENT) => self.mkdir(&dir, &rel)?,
                    Err(e) => return Err(self.err("stat", &rel, e)),
                }
                self.dirs.push(DirMeta {
                    path: rel,
                    mode,
                    uid,
                    gid,
                    mtime,
                });
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.remove_existing(&dir, &rel)?;
                let fd = rustix::fs::openat(
                    &dir,
                    name.as_os_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.err("create", &rel, e))?;
                let mut file = File::from(fd);
                io::copy(entry, &mut file).map_err(|e| {
                    let mut p = self.dest.clone();
                    p.extend(&rel);
                    ImageError::io("write", &p, e)
                })?;
                // chown before chmod: chown clears set-id bits.
                if self.is_root {
                    rustix::fs::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                        .map_err(|e| self.err("chown", &rel, e))?;
                }
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                    .map_err(|e| self.err("chmod", &rel, e))?;
                rustix::fs::futimens(&file, &timestamps(mtime))
                    .map_err(|e| self.err("set times of", &rel, e))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| ImageError::BadArchive(format!("layer {}: {e}", self.layer)))?
                    .ok_or_else(|| self.unsafe_path(&path, "is a symlink with no target"))?
                    .into_owned();
                self.remove_existing(&dir, &rel)?;
                // The target is stored as is: it is only ever followed
                // inside the container, whose root is the image.
                rustix::fs::symlinkat(target.as_os_str(), &dir, name.as_os_str())
                    .map_err(|e| self.err("symlink", &rel, e))?;
                self.chown_at(&dir, &rel, uid, gid)?;
                rustix::fs::utimensat(
                    &dir,
                    name.as_os_str(),
                    &timestamps(mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| self.err("set times of", &rel, e))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| ImageError::BadArchive(format!("layer {}: {e}", self.layer)))?
                    .ok_or_else(|| self.unsafe_path(&path, "is a hard link with no target"))?
                    .into_owned();
                let target_rel = self.components(&target)?;
                let Some((target_name, target_parents)) = target_rel.split_last() else {
                    return Err(self.unsafe_path(&path, "is a hard link to the layer root"));
                };
                let target_dir = self.open_dir(target_parents, false, &target)?;
                self.remove_existing(&dir, &rel)?;
                // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink
                // itself, never what it points to.
                rustix::fs::linkat(
                    &target_dir,
                    target_name.as_os_str(),
                    &dir,
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| self.err("hard link", &rel, e))?;
            }
            tar::EntryType::Fifo => {
                self.remove_existing(&dir, &rel)?;
                rustix::fs::mknodat(
                    &dir,
                    name.as_os_str(),
                    FileType::Fifo,
                    Mode::from_raw_mode(mode),
                    0,
                )
                .map_err(|e| self.err("make fifo", &rel, e))?;
                self.chown_at(&dir, &rel, uid, gid)?;
            }
            // Device nodes come from the runtime's /dev, never from images.
            tar::EntryType::Char | tar::EntryType::Block => {
                tracing::debug!(layer = %self.layer, path = %path.display(), "skipping device node");
            }
            other => {
                tracing::debug!(layer = %self.layer, path = %path.display(), kind = ?other, "skipping tar entry");
            }
        }
        Ok(())
    }

    fn mkdir(&self, dir: &OwnedFd, rel: &[OsString]) -> Result<()> {
        let name = rel.last().expect("entries have a name");
        rustix::fs::mkdirat(dir, name.as_os_str(), Mode::from_raw_mode(0o755))
            .map_err(|e| self.err("create directory", rel, e))
    }

    /// Applies directory modes, owners and times, deepest last-written
    /// first, so no later step changes what an earlier one set.
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for meta in dirs.iter().rev() {
            let path: PathBuf = meta.path.iter().collect();
            let fd = match self.open_dir(&meta.path, false, &path) {
                Ok(fd) => fd,
                // Replaced by a later entry (a file, or removed by a whiteout).
                Err(ImageError::UnsafePath { .. }) => continue,
                Err(ImageError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    continue
                }
                Err(e) => return Err(e),
            };
            if self.is_root {
                rustix::fs::fchown(
                    &fd,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                )
                .map_err(|e| self.err("chown", &meta.path, e))?;
            }
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| self.err("chmod", &meta.path, e))?;
            rustix::fs::futimens(&fd, &timestamps(meta.mtime))
                .map_err(|e| self.err("set times of", &meta.path, e))?;
        }
        Ok(())
    }
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}
