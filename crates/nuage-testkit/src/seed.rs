//! The seed images for tests that run pods: `examples/seed/build-images`
//! run once per version of the script into a cache dir shared by every test
//! process (built in a temp dir, then renamed into place, so concurrent
//! tests never see half an archive), and imported into a node's store with
//! `nuage image import`.

use std::path::{Path, PathBuf};
use std::process::Command;

const BUILD_IMAGES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/seed/build-images"
);

/// The directory holding `busybox.tar` and `serv.tar`.
pub fn images() -> PathBuf {
    let script = std::fs::read(BUILD_IMAGES).expect("read build-images");
    let hash = script.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    });
    let dir = std::env::temp_dir().join(format!("nuage-seed-images-{hash:016x}"));
    if dir.join("serv.tar").exists() && dir.join("busybox.tar").exists() {
        return dir;
    }
    let tmp = tempfile::Builder::new()
        .prefix("nuage-seed-build-")
        .tempdir()
        .expect("temp dir");
    let out = Command::new(BUILD_IMAGES)
        .arg(tmp.path())
        .output()
        .expect("run build-images");
    assert!(
        out.status.success(),
        "build-images failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tmp = tmp.keep();
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another test won the race: use its copy.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// Imports `archive` (`busybox.tar`, `serv.tar`) with `bin image import`
/// into the node whose data dir is `dir` (its server may be running).
pub fn import(bin: &str, dir: &Path, archive: &str) {
    let out = Command::new(bin)
        .args(["image", "import"])
        .arg(images().join(archive))
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("nuage image import");
    assert!(
        out.status.success(),
        "import {archive}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
