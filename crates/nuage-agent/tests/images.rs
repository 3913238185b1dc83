//! The image store against real archives: the OCI archives
//! `examples/seed/build-images` writes, `docker save` tarballs re-packed
//! from their blobs (with whiteouts, checked through a real overlay mount),
//! hostile layers, corrupt blobs, and an import racing readers.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nuage_agent::images::{ImageError, ImageStore};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---- fixtures ---------------------------------------------------------------

/// Builds the two seed archives into `dir/seed` (each test its own: the
/// tests run in parallel and each cleans up its temp dir).
fn seed(dir: &Path) -> PathBuf {
    assert!(
        Path::new("/bin/busybox").exists(),
        "these tests need Debian's busybox-static (/bin/busybox)"
    );
    let out_dir = dir.join("seed");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed/build-images");
    let out = Command::new(&script)
        .arg(&out_dir)
        .output()
        .expect("run examples/seed/build-images");
    assert!(
        out.status.success(),
        "build-images failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_dir
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

/// Every regular file of a tar archive, by path.
fn read_tar(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.insert(path, data);
        }
    }
    out
}

/// A tar entry, written with its name bytes as given (the tar crate's
/// builder would refuse `..` and absolute names, which is what some tests
/// need to write).
enum Entry<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

fn tar_of(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_old();
        let (name, kind, mode, data, link): (&str, tar::EntryType, u32, &[u8], Option<&str>) =
            match e {
                Entry::Dir(n, m) => (n, tar::EntryType::Directory, *m, &[], None),
                Entry::File(n, d, m) => (n, tar::EntryType::Regular, *m, d, None),
                Entry::Symlink(n, t) => (n, tar::EntryType::Symlink, 0o777, &[], Some(t)),
                Entry::HardLink(n, t) => (n, tar::EntryType::Link, 0o644, &[], Some(t)),
            };
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(t) = link {
            old.linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        builder.append(&h, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn oci_manifest(config: &[u8], layers: &[(&[u8], &str)]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": config.len()},
        "layers": layers.iter().map(|(l, media)| json!({
            "mediaType": media, "digest": digest(l), "size": l.len()})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// An OCI image layout archive with one image named `name`.
fn oci_archive(name: &str, config: &[u8], layers: &[(&[u8], &str)]) -> Vec<u8> {
    let manifest = oci_manifest(config, layers);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest(&manifest), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": name}}],
    }))
    .unwrap();
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), index),
        (
            format!("blobs/sha256/{}", hex(&digest(&manifest))),
            manifest.clone(),
        ),
        (
            format!("blobs/sha256/{}", hex(&digest(config))),
            config.to_vec(),
        ),
    ];
    for (l, _) in layers {
        files.push((format!("blobs/sha256/{}", hex(&digest(l))), l.to_vec()));
    }
    let entries: Vec<Entry<'_>> = files
        .iter()
        .map(|(n, d)| Entry::File(n, d, 0o644))
        .collect();
    tar_of(&entries)
}

fn config_for(diff_ids: &[&[u8]]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers",
                   "diff_ids": diff_ids.iter().map(|l| digest(l)).collect::<Vec<_>>()},
    }))
    .unwrap()
}

/// The busybox seed image's parts: config (parsed) and its one layer,
/// uncompressed.
fn busybox_parts(seed_dir: &Path) -> (Value, Vec<u8>) {
    let files = read_tar(&fs::read(seed_dir.join("busybox.tar")).unwrap());
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let blob = |d: &str| files[&format!("blobs/sha256/{}", hex(d))].clone();
    let manifest: Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let config: Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let gz = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut layer)
        .unwrap();
    (config, layer)
}

/// An upper layer over busybox: whites out `etc/hosts`, makes `usr/sbin`
/// opaque (hiding every applet link there) and adds `usr/sbin/hello`.
fn whiteout_layer() -> Vec<u8> {
    tar_of(&[
        Entry::Dir("etc/", 0o755),
        Entry::File("etc/.wh.hosts", b"", 0o644),
        Entry::Dir("usr/", 0o755),
        Entry::Dir("usr/sbin/", 0o755),
        Entry::File("usr/sbin/.wh..wh..opq", b"", 0o644),
        Entry::File("usr/sbin/hello", b"#!/bin/sh\necho hello\n", 0o755),
    ])
}

enum DockerLayout {
    /// Docker < 25: `<id>/layer.tar`, `<hex>.json`.
    Legacy,
    /// Docker ≥ 25: the paths of an embedded OCI layout.
    Oci,
}

/// A `docker save` tarball of busybox plus the whiteout layer, named
/// `test/whiteouts:1`.
fn docker_save(layout: DockerLayout, seed_dir: &Path) -> Vec<u8> {
    let (mut config, base) = busybox_parts(seed_dir);
    let upper = whiteout_layer();
    config["rootfs"]["diff_ids"] = json!([digest(&base), digest(&upper)]);
    let config = serde_json::to_vec(&config).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let (config_path, layer_paths) = match layout {
        DockerLayout::Legacy => {
            let paths = vec![
                format!("{}/layer.tar", &hex(&digest(b"id1"))),
                format!("{}/layer.tar", &hex(&digest(b"id2"))),
            ];
            files.push((
                "repositories".into(),
                br#"{"test/whiteouts":{"1":"x"}}"#.to_vec(),
            ));
            (format!("{}.json", hex(&digest(&config))), paths)
        }
        DockerLayout::Oci => {
            let manifest = oci_manifest(
                &config,
                &[
                    (&base, "application/vnd.oci.image.layer.v1.tar"),
                    (&upper, "application/vnd.oci.image.layer.v1.tar"),
                ],
            );
            let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest(&manifest), "size": manifest.len(),
                "annotations": {"io.containerd.image.name": "docker.io/test/whiteouts:1",
                                "org.opencontainers.image.ref.name": "1"}}]}))
            .unwrap();
            files.push((
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ));
            files.push(("index.json".into(), index));
            files.push((
                format!("blobs/sha256/{}", hex(&digest(&manifest))),
                manifest,
            ));
            let blob = |b: &[u8]| format!("blobs/sha256/{}", hex(&digest(b)));
            (blob(&config), vec![blob(&base), blob(&upper)])
        }
    };
    let manifest_json = serde_json::to_vec(&json!([{
        "Config": config_path, "RepoTags": ["test/whiteouts:1"], "Layers": layer_paths}]))
    .unwrap();
    files.push(("manifest.json".into(), manifest_json));
    files.push((config_path, config));
    files.push((layer_paths[0].clone(), base));
    files.push((layer_paths[1].clone(), upper));
    let entries: Vec<Entry<'_>> = files
        .iter()
        .map(|(n, d)| Entry::File(n, d, 0o644))
        .collect();
    tar_of(&entries)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

// ---- tests ------------------------------------------------------------------

#[test]
fn seed_archives_import_and_resolve_by_every_name_form() {
    let data = tempfile::tempdir().unwrap();
    let seed_dir = seed(data.path());
    let store = ImageStore::open(data.path()).unwrap();

    let names = store.import(&seed_dir.join("busybox.tar")).unwrap();
    assert_eq!(names, ["docker.io/library/busybox:latest"]);
    let names = store.import(&seed_dir.join("serv.tar")).unwrap();
    assert_eq!(names, ["docker.io/img/serv:0.5.0"]);

    let busybox = store.resolve("busybox").unwrap().expect("busybox resolves");
    assert_eq!(busybox.name, "docker.io/library/busybox:latest");
    assert_eq!(busybox.config.cmd, ["sh"]);
    assert_eq!(
        busybox.config.env,
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
    assert_eq!(busybox.layers.len(), 1);
    let base = &busybox.layers[0];
    assert!(base.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(base.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::metadata(base.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert!(fs::read_to_string(base.join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));

    for form in ["busybox:latest", "docker.io/library/busybox:latest"] {
        assert_eq!(
            store.resolve(form).unwrap().unwrap().id,
            busybox.id,
            "{form}"
        );
    }
    let listed = store.list().unwrap();
    let bb = listed.iter().find(|s| s.repository == "busybox").unwrap();
    assert_eq!(bb.tag, "latest");
    assert_eq!(bb.id, busybox.id);
    let by_digest = store
        .resolve(&format!("busybox@{}", bb.digest))
        .unwrap()
        .expect("by digest");
    assert_eq!(by_digest.id, busybox.id);
    assert!(store
        .resolve(&format!("img/serv@{}", bb.digest))
        .unwrap()
        .is_none());
    assert!(store.resolve("busybox:1.0").unwrap().is_none());
    assert!(store.resolve("alpine").unwrap().is_none());
    assert!(matches!(
        store.resolve("Bad Name"),
        Err(ImageError::BadReference { .. })
    ));

    // serv shares the busybox layer: one directory on disk.
    let serv = store.resolve("img/serv:0.5.0").unwrap().unwrap();
    assert_eq!(serv.layers.len(), 2);
    assert_eq!(&serv.layers[0], base);
    assert!(serv.layers[1].join("srv/cgi-bin/index.cgi").is_file());
    assert_eq!(serv.config.cmd[0], "httpd");
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        2
    );

    // Importing again changes nothing.
    store.import(&seed_dir.join("serv.tar")).unwrap();
    assert_eq!(store.list().unwrap(), listed);

    // Removing busybox keeps the layer serv uses; removing serv empties the store.
    assert_eq!(
        store.remove("busybox").unwrap(),
        ["docker.io/library/busybox:latest"]
    );
    assert!(store.resolve("busybox").unwrap().is_none());
    assert!(base.is_dir());
    store.remove("img/serv:0.5.0").unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert!(matches!(
        store.remove("busybox"),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn seed_archives_are_valid_for_skopeo() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skipping: skopeo is not installed");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let seed_dir = seed(data.path());
    for (file, cmd) in [("busybox.tar", "sh"), ("serv.tar", "httpd")] {
        let out = Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci-archive:{}", seed_dir.join(file).display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["Cmd"][0], cmd);
    }
}

#[test]
fn gzipped_archive_and_image_id_removal() {
    let data = tempfile::tempdir().unwrap();
    let seed_dir = seed(data.path());
    let store = ImageStore::open(data.path()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &fs::read(seed_dir.join("busybox.tar")).unwrap()).unwrap();
    let archive = write(data.path(), "busybox.tar.gz", &gz.finish().unwrap());
    store.import(&archive).unwrap();
    let id = store.resolve("busybox").unwrap().unwrap().id;
    // `docker rmi` style: an id prefix.
    let short = &hex(&id)[..12];
    assert_eq!(
        store.remove(short).unwrap(),
        ["docker.io/library/busybox:latest"]
    );
    assert!(store.list().unwrap().is_empty());
}

fn check_whiteouts(store: &ImageStore, scratch: &Path) {
    let image = store
        .resolve("test/whiteouts:1")
        .unwrap()
        .expect("imported");
    assert_eq!(image.layers.len(), 2);
    let (base, upper) = (&image.layers[0], &image.layers[1]);
    assert!(base.join("etc/hosts").is_file());

    // overlayfs whiteouts in the upper layer: a 0:0 character device, and
    // the opaque xattr on the directory.
    let wh = fs::symlink_metadata(upper.join("etc/hosts")).unwrap();
    assert!(wh.file_type().is_char_device(), "etc/hosts is {wh:?}");
    assert_eq!(wh.rdev(), 0);
    assert!(!upper.join("etc/.wh.hosts").exists());
    let mut value = [0u8; 8];
    let n = rustix::fs::getxattr(
        upper.join("usr/sbin"),
        "trusted.overlay.opaque",
        &mut value[..],
    )
    .unwrap();
    assert_eq!(&value[..n], b"y");
    assert!(!upper.join("usr/sbin/.wh..wh..opq").exists());

    // The kernel agrees: stack the layers in a private mount namespace
    // (the mount dies with it).
    let mnt = scratch.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={}:{} {m} && ls -A {m}/etc && echo --- && ls -A {m}/usr/sbin",
        upper.display(),
        base.display(),
        m = mnt.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "overlay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (etc, sbin) = text.split_once("---\n").unwrap();
    let etc: Vec<&str> = etc.lines().collect();
    assert!(
        etc.contains(&"passwd") && !etc.contains(&"hosts"),
        "{etc:?}"
    );
    assert_eq!(sbin.lines().collect::<Vec<_>>(), ["hello"]);
}

#[test]
fn docker_save_legacy_with_whiteouts() {
    if !is_root() {
        eprintln!("skipping: overlay whiteouts need root");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let archive = write(
        data.path(),
        "save.tar",
        &docker_save(DockerLayout::Legacy, &seed(data.path())),
    );
    assert_eq!(
        store.import(&archive).unwrap(),
        ["docker.io/test/whiteouts:1"]
    );
    check_whiteouts(&store, data.path());
}

#[test]
fn docker_save_with_embedded_oci_layout() {
    if !is_root() {
        eprintln!("skipping: overlay whiteouts need root");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let archive = write(
        data.path(),
        "save.tar",
        &docker_save(DockerLayout::Oci, &seed(data.path())),
    );
    assert_eq!(
        store.import(&archive).unwrap(),
        ["docker.io/test/whiteouts:1"]
    );
    check_whiteouts(&store, data.path());
}

#[test]
fn zstd_layers_unpack() {
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let layer = tar_of(&[
        Entry::Dir("data/", 0o755),
        Entry::File("data/greeting", b"hello zstd\n", 0o640),
        Entry::HardLink("data/again", "data/greeting"),
    ]);
    let compressed =
        ruzstd::encoding::compress_to_vec(&layer[..], ruzstd::encoding::CompressionLevel::Fastest);
    let config = config_for(&[&layer]);
    let archive = oci_archive(
        "zstd:1",
        &config,
        &[(&compressed, "application/vnd.oci.image.layer.v1.tar+zstd")],
    );
    let archive = write(data.path(), "zstd.tar", &archive);
    store.import(&archive).unwrap();
    let image = store.resolve("zstd:1").unwrap().unwrap();
    let dir = &image.layers[0];
    assert_eq!(
        fs::read_to_string(dir.join("data/greeting")).unwrap(),
        "hello zstd\n"
    );
    let meta = fs::metadata(dir.join("data/again")).unwrap();
    assert_eq!(meta.nlink(), 2);
    assert_eq!(meta.mode() & 0o777, 0o640);
}

/// Each layer tries to write outside the layer directory; each import
/// fails, names nothing, and leaves nothing outside.
#[test]
fn layers_that_escape_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let target = outside.path().display().to_string();
    let victim = format!("{target}/victim");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            tar_of(&[Entry::File("../../../../escaped", b"x", 0o644)]),
        ),
        ("absolute", tar_of(&[Entry::File(&victim, b"x", 0o644)])),
        (
            "symlink-parent",
            tar_of(&[
                Entry::Symlink("link", &target),
                Entry::File("link/victim", b"x", 0o644),
            ]),
        ),
        (
            "symlink-deep",
            tar_of(&[
                Entry::Dir("a/", 0o755),
                Entry::Symlink("a/b", &target),
                Entry::Dir("a/b/c/", 0o755),
            ]),
        ),
        (
            "hardlink-out",
            tar_of(&[Entry::HardLink("passwd", "../../../../etc/passwd")]),
        ),
        (
            "hardlink-through-symlink",
            tar_of(&[
                Entry::Symlink("etc", "/etc"),
                Entry::HardLink("passwd", "etc/passwd"),
            ]),
        ),
    ];
    for (name, layer) in cases {
        let config = config_for(&[&layer]);
        let archive = oci_archive(
            &format!("evil:{name}"),
            &config,
            &[(&layer, "application/vnd.oci.image.layer.v1.tar")],
        );
        let archive = write(data.path(), &format!("{name}.tar"), &archive);
        let err = store.import(&archive).expect_err(name);
        assert!(
            matches!(err, ImageError::UnsafePath { .. }),
            "{name}: {err}"
        );
        assert!(store.resolve(&format!("evil:{name}")).unwrap().is_none());
    }
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!data.path().join("escaped").exists());
    assert!(store.list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
}

#[test]
fn corrupt_blobs_and_bad_archives_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let seed_dir = seed(data.path());
    let store = ImageStore::open(data.path()).unwrap();

    // One byte of the layer blob flipped.
    let mut files = read_tar(&fs::read(seed_dir.join("busybox.tar")).unwrap());
    let (_, biggest) = files.iter_mut().max_by_key(|(_, d)| d.len()).unwrap();
    let mid = biggest.len() / 2;
    biggest[mid] ^= 0xff;
    let entries: Vec<Entry<'_>> = files
        .iter()
        .map(|(n, d)| Entry::File(n, d, 0o644))
        .collect();
    let archive = write(data.path(), "corrupt.tar", &tar_of(&entries));
    let err = store.import(&archive).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");

    // A layer whose content is not what the config's diff_id says.
    let layer = tar_of(&[Entry::File("a", b"a", 0o644)]);
    let other = tar_of(&[Entry::File("b", b"b", 0o644)]);
    let config = config_for(&[&other]);
    let archive = oci_archive(
        "lies:1",
        &config,
        &[(&layer, "application/vnd.oci.image.layer.v1.tar")],
    );
    let archive = write(data.path(), "lies.tar", &archive);
    let err = store.import(&archive).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");

    // Not an archive at all: one line that says so.
    let archive = write(
        data.path(),
        "text.tar",
        b"root:x:0:0:root:/root:/bin/sh\n".repeat(40).as_slice(),
    );
    let err = store.import(&archive).unwrap_err().to_string();
    assert!(
        !err.contains('\n') && err.contains("not a valid tar archive"),
        "{err}"
    );

    // A tar with neither index.json nor manifest.json.
    let archive = write(
        data.path(),
        "empty.tar",
        &tar_of(&[Entry::File("hello", b"x", 0o644)]),
    );
    let err = store.import(&archive).unwrap_err().to_string();
    assert!(err.contains("neither an OCI image layout"), "{err}");

    assert!(store.list().unwrap().is_empty());
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

/// Readers never see a half-written store while another thread imports and
/// removes (as `nuage image import` does beside a running agent).
#[test]
fn resolve_while_importing_and_removing() {
    let data = tempfile::tempdir().unwrap();
    let seed_dir = seed(data.path());
    let store = ImageStore::open(data.path()).unwrap();
    store.import(&seed_dir.join("busybox.tar")).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let done = done.clone();
        let serv = seed_dir.join("serv.tar");
        std::thread::spawn(move || {
            for _ in 0..8 {
                store.import(&serv).unwrap();
                store.remove("img/serv:0.5.0").unwrap();
            }
            store.import(&serv).unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };
    // A second writer in parallel: the lock serializes them.
    let other = {
        let store = ImageStore::open(data.path()).unwrap();
        let busybox = seed_dir.join("busybox.tar");
        std::thread::spawn(move || {
            for _ in 0..4 {
                store.import(&busybox).unwrap();
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut seen, mut absent) = (0, 0);
    while !done.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the writer did not finish");
        match store.resolve("img/serv:0.5.0") {
            Ok(Some(image)) => {
                assert_eq!(image.layers.len(), 2);
                seen += 1;
            }
            Ok(None) => absent += 1,
            Err(e) => panic!("resolve failed during import/remove: {e}"),
        }
        let busybox = store.resolve("busybox").unwrap().expect("busybox stays");
        assert_eq!(busybox.layers.len(), 1);
    }
    writer.join().unwrap();
    other.join().unwrap();
    eprintln!("resolved {seen} times, absent {absent} times");
    assert!(store.resolve("img/serv:0.5.0").unwrap().is_some());
    assert_eq!(store.list().unwrap().len(), 2);
}
