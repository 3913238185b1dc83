//! `nuage image import|ls|rm` on the archives `examples/seed/build-images`
//! writes (issue 4).

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_nuage");
const BUILD_IMAGES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/seed/build-images"
);

fn nuage(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("image")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("NUAGE_DATA_DIR")
        .output()
        .expect("run nuage")
}

fn ok(data_dir: &Path, args: &[&str]) -> String {
    let out = nuage(data_dir, args);
    assert!(
        out.status.success(),
        "nuage image {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rows of `nuage image ls` as (repository, tag, id).
fn rows(ls: &str) -> Vec<(String, String, String)> {
    let mut lines = ls.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "SIZE"]);
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cols.len(), 4, "{l:?}");
            (cols[0].into(), cols[1].into(), cols[2].into())
        })
        .collect()
}

#[test]
fn import_ls_rm_the_seed_images() {
    assert!(
        Path::new("/bin/busybox").exists(),
        "this test needs Debian's busybox-static (/bin/busybox)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let archives = tmp.path().join("archives");
    let data = tmp.path().join("data");
    let built = Command::new(BUILD_IMAGES).arg(&archives).output().unwrap();
    assert!(
        built.status.success(),
        "build-images: {}",
        String::from_utf8_lossy(&built.stderr)
    );

    let busybox = archives.join("busybox.tar");
    let serv = archives.join("serv.tar");
    let out = ok(&data, &["import", busybox.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: docker.io/library/busybox:latest\n");
    let out = ok(&data, &["import", serv.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: docker.io/img/serv:0.5.0\n");

    let listed = rows(&ok(&data, &["ls"]));
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|(r, t, _)| (r.as_str(), t.as_str()))
        .collect();
    assert_eq!(names, [("img/serv", "0.5.0"), ("busybox", "latest")]);
    assert!(listed.iter().all(|(_, _, id)| id.len() == 12));

    let out = ok(&data, &["rm", "busybox"]);
    assert_eq!(out, "Untagged: docker.io/library/busybox:latest\n");
    let listed = rows(&ok(&data, &["ls"]));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, "img/serv");

    // Errors are one line and a failure exit.
    let out = nuage(&data, &["rm", "busybox"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("no image busybox"), "{err}");

    let out = nuage(&data, &["import", "/etc/passwd"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("not a valid tar archive"), "{err}");

    // NUAGE_DATA_DIR is the default, as for `nuage server`.
    let out = Command::new(BIN)
        .args(["image", "ls"])
        .env("NUAGE_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(rows(&String::from_utf8(out.stdout).unwrap()).len(), 1);
}
