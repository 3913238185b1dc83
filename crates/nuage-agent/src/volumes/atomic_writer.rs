//! Writes a volume's files the way the kubelet's AtomicWriter does, so a
//! container never sees a half-written update:
//!
//! ```text
//! DIR/..2025_01_02_15_04_05.123456789   the files of this version
//! DIR/..data -> ..2025_01_02_15_04_05.123456789
//! DIR/<key>  -> ..data/<key>            one per top-level name
//! ```
//!
//! An update writes a new timestamped directory, points a `..data_tmp`
//! symlink at it and renames that over `..data` (atomic), then adds and
//! removes the per-key symlinks and deletes the old version.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::payload::{File, Payload};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Makes `dir` hold exactly `payload`; does nothing if it already does.
pub(super) fn write(dir: &Path, payload: &Payload) -> Result<(), String> {
    let fail = |what: &str, path: &Path, e: io::Error| format!("{what} {}: {e}", path.display());
    let data_link = dir.join(DATA);
    let old_version = fs::read_link(&data_link).ok();
    let unchanged =
        old_version.is_some() && current_files(&data_link).is_ok_and(|files| &files == payload);
    let new_version = if unchanged {
        old_version.clone()
    } else {
        let name = version_name();
        let version_dir = dir.join(&name);
        fs::create_dir(&version_dir).map_err(|e| fail("cannot create", &version_dir, e))?;
        fs::set_permissions(&version_dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| fail("cannot chmod", &version_dir, e))?;
        for (path, file) in payload {
            let target = version_dir.join(path);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| fail("cannot create", parent, e))?;
            }
            fs::write(&target, &file.data).map_err(|e| fail("cannot write", &target, e))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(file.mode))
                .map_err(|e| fail("cannot chmod", &target, e))?;
        }
        let tmp_link = dir.join(DATA_TMP);
        remove_if_present(&tmp_link).map_err(|e| fail("cannot remove", &tmp_link, e))?;
        symlink(&name, &tmp_link).map_err(|e| fail("cannot create", &tmp_link, e))?;
        fs::rename(&tmp_link, &data_link).map_err(|e| fail("cannot rename", &tmp_link, e))?;
        Some(name.into())
    };

    // User-visible names: one symlink per top-level component.
    let top_level: BTreeSet<&str> = payload.keys().filter_map(|p| p.split('/').next()).collect();
    for name in &top_level {
        let link = dir.join(name);
        let target = Path::new(DATA).join(name);
        if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            remove_if_present(&link).map_err(|e| fail("cannot remove", &link, e))?;
            symlink(&target, &link).map_err(|e| fail("cannot create", &link, e))?;
        }
    }

    // Everything else is stale: names the payload dropped, older versions,
    // and what an interrupted write left behind.
    let entries = fs::read_dir(dir).map_err(|e| fail("cannot read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail("cannot read", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let keep = name == DATA
            || new_version
                .as_deref()
                .is_some_and(|v| v == Path::new(&*name))
            || top_level.contains(&*name);
        if !keep {
            remove_if_present(&entry.path())
                .map_err(|e| fail("cannot remove", &entry.path(), e))?;
        }
    }
    Ok(())
}

/// `..YYYY_MM_DD_HH_MM_SS.<nanoseconds><n>`, unique within this process.
fn version_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year]_[month]_[day]_[hour]_[minute]_[second]"
        ))
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("..{stamp}.{:09}{n}", now.nanosecond())
}

/// The regular files under `root` (following the `..data` link itself).
fn current_files(root: &Path) -> io::Result<Payload> {
    let mut files = Payload::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push((entry.path(), rel));
            } else {
                let data = fs::read(entry.path())?;
                let mode = meta.permissions().mode() & 0o777;
                files.insert(rel, File { data, mode });
            }
        }
    }
    Ok(files)
}

/// Removes a file, symlink or directory tree; absent is fine.
fn remove_if_present(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(entries: &[(&str, &str, u32)]) -> Payload {
        entries
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    File {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn writes_links_and_swaps_versions() {
        let dir = tempfile::tempdir().unwrap();
        let first = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)]);
        write(dir.path(), &first).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(dir.path().join("sub/b")).unwrap(), "2");
        assert_eq!(
            fs::read_link(dir.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
        let v1 = fs::read_link(dir.path().join(DATA)).unwrap();
        let mode = fs::metadata(dir.path().join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // The same payload again: nothing rewritten.
        write(dir.path(), &first).unwrap();
        assert_eq!(fs::read_link(dir.path().join(DATA)).unwrap(), v1);

        // An update: new version, dropped key gone, old version removed.
        write(dir.path(), &payload(&[("a", "3", 0o644)])).unwrap();
        let v2 = fs::read_link(dir.path().join(DATA)).unwrap();
        assert_ne!(v1, v2);
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "3");
        assert!(fs::symlink_metadata(dir.path().join("sub")).is_err());
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected = vec![
            "..data".to_string(),
            v2.to_string_lossy().into_owned(),
            "a".into(),
        ];
        expected.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn an_empty_payload_is_an_empty_volume() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &Payload::new()).unwrap();
        assert!(fs::read_dir(dir.path().join(DATA))
            .unwrap()
            .next()
            .is_none());
    }
}
