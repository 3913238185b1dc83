//! `hostPath` type checks, as the kubelet makes them (`checkTypeInternal`):
//! the path is stat'ed (following symlinks) and must be what `type` says;
//! the `…OrCreate` types create what is missing.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

use k8s_openapi::api::core::v1::HostPathVolumeSource;

/// Checks (or creates) `source.path` according to `source.type`.
pub(super) fn check(source: &HostPathVolumeSource) -> Result<(), String> {
    let path = Path::new(&source.path);
    let shown = &source.path;
    let meta = fs::metadata(path).ok();
    let is = |test: fn(&fs::Metadata) -> bool| meta.as_ref().is_some_and(test);
    let not = |what: &str| Err(format!("hostPath type check failed: {shown} is not {what}"));
    match source.type_.as_deref().unwrap_or("") {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|e| format!("cannot create directory {shown}: {e}")),
        "DirectoryOrCreate" | "Directory" if !is(fs::Metadata::is_dir) => not("a directory"),
        "FileOrCreate" if meta.is_none() => {
            create_file(path).map_err(|e| format!("cannot create file {shown}: {e}"))
        }
        "FileOrCreate" | "File" if !is(fs::Metadata::is_file) => not("a file"),
        "Socket" if !is(|m| m.file_type().is_socket()) => not("a socket file"),
        "CharDevice" if !is(|m| m.file_type().is_char_device()) => not("a character device"),
        "BlockDevice" if !is(|m| m.file_type().is_block_device()) => not("a block device"),
        "DirectoryOrCreate" | "Directory" | "FileOrCreate" | "File" | "Socket" | "CharDevice"
        | "BlockDevice" => Ok(()),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

/// An empty 0644 file; another creator winning the race is fine.
fn create_file(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
    {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}
