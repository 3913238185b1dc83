//! Importing an archive: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) or a `docker save` tarball (`manifest.json` with
//! `<id>/layer.tar` files, or, from Docker 25 on, with the paths of an
//! embedded OCI layout), either one optionally gzipped.
//!
//! The archive is read once: every file is streamed into the store's
//! `tmp/` while hashed (a `blobs/sha256/<hex>` file must hash to its name).
//! Then the images are planned from the metadata, their blobs moved into
//! `blobs/`, their layers unpacked, and last the names written to the index.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Component, Path, PathBuf};

use super::compression;
use super::digest::{sha256_hex, HashingReader};
use super::error::{ImageError, IoContext, Result};
use super::oci::{
    host_architecture, Config, Descriptor, DockerSaveEntry, Manifest, ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME, MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, MEDIA_LAYER_ZSTD,
    MEDIA_MANIFEST,
};
use super::reference::Reference;
use super::store::{read_limited, ImageStore};

/// A file of the archive, staged under `tmp/`.
struct Staged {
    path: PathBuf,
    digest: String,
    size: u64,
}

/// The archive's files by their path in it.
struct ArchiveFiles {
    files: HashMap<String, Staged>,
    /// Symlinks (old `docker save` links repeated layers), resolved to
    /// archive paths.
    links: HashMap<String, String>,
}

impl ArchiveFiles {
    fn get(&self, path: &str) -> Option<&Staged> {
        let mut path = normalize(Path::new(path))?;
        for _ in 0..8 {
            if let Some(f) = self.files.get(&path) {
                return Some(f);
            }
            path = self.links.get(&path)?.clone();
        }
        None
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let f = self
            .get(path)
            .ok_or_else(|| ImageError::BadArchive(format!("the archive has no {path}")))?;
        read_limited(&f.path)
    }
}

/// An image found in the archive, ready to commit.
struct Planned {
    names: Vec<Reference>,
    /// The manifest's bytes and digest when the manifest is made here
    /// (`docker save` has none); `None` when it is a blob of the archive.
    made_manifest: Option<Vec<u8>>,
    manifest_digest: String,
    manifest: Manifest,
}

pub(super) fn import(store: &ImageStore, archive: &Path) -> Result<Vec<String>> {
    let _lock = store.lock()?;
    let staging = store.temp_dir("import")?;
    let files = stage(archive, staging.path())?;
    let planned = if files.get("manifest.json").is_some() {
        plan_docker_save(&files)?
    } else if files.get("index.json").is_some() {
        plan_oci_layout(&files)?
    } else {
        return Err(ImageError::BadArchive(format!(
            "{} is neither an OCI image layout (no index.json) nor a docker save tarball (no manifest.json)",
            archive.display()
        )));
    };
    if planned.iter().all(|p| p.names.is_empty()) {
        return Err(ImageError::BadArchive(format!(
            "{} names no image (no {ANNOTATION_REF_NAME} annotation, no RepoTags)",
            archive.display()
        )));
    }

    let mut index = store.read_index()?;
    let mut imported = Vec::new();
    for image in &planned {
        if image.names.is_empty() {
            continue;
        }
        commit_image(store, &files, image)?;
        for name in &image.names {
            let key = name.to_string();
            index
                .names
                .insert(key.clone(), image.manifest_digest.clone());
            imported.push(key);
        }
    }
    store.write_index(&index)?;
    // Names moved to the new images may have left older ones unused.
    store.collect_garbage(&index)?;
    imported.sort();
    imported.dedup();
    Ok(imported)
}

/// Moves one image's blobs into the store and unpacks its layers.
fn commit_image(store: &ImageStore, files: &ArchiveFiles, image: &Planned) -> Result<()> {
    let manifest = &image.manifest;
    let config_desc = manifest.config.as_ref().ok_or_else(|| {
        ImageError::BadArchive(format!("manifest {} has no config", image.manifest_digest))
    })?;
    commit_blob(store, files, &config_desc.digest)?;
    let config: Config = store.read_json(&config_desc.digest)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::BadArchive(format!(
            "image {}: the config lists {} layers, the manifest {}",
            config_desc.digest,
            config.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }
    for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        if store.layer_path(diff_id)?.is_dir() && store.blob_path(&layer.digest)?.exists() {
            continue;
        }
        commit_blob(store, files, &layer.digest)?;
        store.ensure_layer(&layer.digest, diff_id)?;
    }
    match &image.made_manifest {
        Some(bytes) => {
            store.write_blob(bytes)?;
        }
        None => commit_blob(store, files, &image.manifest_digest)?,
    }
    Ok(())
}

/// Moves the archive's blob with that digest into the store (or checks the
/// store already has it).
fn commit_blob(store: &ImageStore, files: &ArchiveFiles, digest: &str) -> Result<()> {
    if store.blob_path(digest)?.exists() {
        return Ok(());
    }
    let staged = files
        .files
        .values()
        .find(|f| f.digest == digest)
        .ok_or_else(|| ImageError::BadArchive(format!("the archive lacks blob {digest}")))?;
    store.commit_blob(&staged.path, digest)
}

/// Streams every regular file of the archive into `dir`, hashing it.
fn stage(archive: &Path, dir: &Path) -> Result<ArchiveFiles> {
    let file = File::open(archive).ctx("open", archive)?;
    let reader =
        compression::decompress(BufReader::with_capacity(256 * 1024, file)).ctx("read", archive)?;
    let mut tar = tar::Archive::new(reader);
    let mut files = HashMap::new();
    let mut links = HashMap::new();
    // The tar crate quotes the bad header bytes in its messages: keep the
    // first line, so the error stays one line.
    let bad = |e: io::Error| {
        let msg = e.to_string();
        let first: String = msg.lines().next().unwrap_or("").chars().take(100).collect();
        ImageError::BadArchive(format!(
            "{}: not a valid tar archive: {first}",
            archive.display()
        ))
    };
    for (n, entry) in tar.entries().map_err(bad)?.enumerate() {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let Some(path) = normalize(&raw) else {
            return Err(ImageError::BadArchive(format!(
                "{}: entry {} is outside the archive",
                archive.display(),
                raw.display()
            )));
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let staged_path = dir.join(n.to_string());
                let mut out = File::create(&staged_path).ctx("create", &staged_path)?;
                let mut hashing = HashingReader::new(&mut entry);
                io::copy(&mut hashing, &mut out).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof
                        || e.kind() == io::ErrorKind::InvalidData
                    {
                        bad(e)
                    } else {
                        ImageError::io("write", &staged_path, e)
                    }
                })?;
                let (digest, size) = hashing.finish().map_err(bad)?;
                if let Some(expected) = path.strip_prefix("blobs/sha256/") {
                    if sha256_hex(&digest) != Some(expected) {
                        return Err(ImageError::DigestMismatch {
                            what: format!("{} in {}", path, archive.display()),
                            expected: format!("sha256:{expected}"),
                            actual: digest,
                        });
                    }
                }
                files.insert(
                    path,
                    Staged {
                        path: staged_path,
                        digest,
                        size,
                    },
                );
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let Some(target) = entry.link_name().map_err(bad)? else {
                    continue;
                };
                let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                    Path::new(&path)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(target)
                } else {
                    target.into_owned()
                };
                if let Some(target) = normalize(&target) {
                    links.insert(path, target);
                }
            }
            _ => {}
        }
    }
    Ok(ArchiveFiles { files, links })
}

/// A path inside the archive as `a/b/c`, `None` if it leaves the archive.
fn normalize(path: &Path) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::BadArchive(format!("{what}: {e}")))
}

fn blob_file(digest: &str) -> Result<String> {
    let hex = sha256_hex(digest)
        .ok_or_else(|| ImageError::BadArchive(format!("unsupported digest {digest:?}")))?;
    Ok(format!("blobs/sha256/{hex}"))
}

fn plan_oci_layout(files: &ArchiveFiles) -> Result<Vec<Planned>> {
    let index: Manifest = parse_json("index.json", &files.read("index.json")?)?;
    let mut planned = Vec::new();
    for desc in &index.manifests {
        let names = names_from_annotations(desc)?;
        let (manifest_digest, manifest) = image_manifest(files, desc)?;
        planned.push(Planned {
            names,
            made_manifest: None,
            manifest_digest,
            manifest,
        });
    }
    Ok(planned)
}

/// The names an index entry gives its image: containerd's full name if
/// present, else the OCI ref name read as a reference (`busybox:latest`).
fn names_from_annotations(desc: &Descriptor) -> Result<Vec<Reference>> {
    let name = desc
        .annotations
        .get(ANNOTATION_CONTAINERD_NAME)
        .or_else(|| desc.annotations.get(ANNOTATION_REF_NAME));
    match name {
        Some(n) => Ok(vec![Reference::parse(n)?]),
        None => Ok(Vec::new()),
    }
}

/// Follows an index entry to an image manifest, choosing this host's
/// platform in a multi-platform index.
fn image_manifest(files: &ArchiveFiles, desc: &Descriptor) -> Result<(String, Manifest)> {
    let mut desc = desc.clone();
    for _ in 0..4 {
        let manifest: Manifest = parse_json(
            &format!("manifest {}", desc.digest),
            &files.read(&blob_file(&desc.digest)?)?,
        )?;
        if !manifest.is_index() {
            return Ok((desc.digest, manifest));
        }
        let arch = host_architecture();
        desc = manifest
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .or_else(|| (manifest.manifests.len() == 1).then(|| &manifest.manifests[0]))
            .ok_or_else(|| {
                ImageError::BadArchive(format!(
                    "index {} has no manifest for linux/{arch}",
                    desc.digest
                ))
            })?
            .clone();
    }
    Err(ImageError::BadArchive(format!(
        "index {} nests too deep",
        desc.digest
    )))
}

fn plan_docker_save(files: &ArchiveFiles) -> Result<Vec<Planned>> {
    let entries: Vec<DockerSaveEntry> = parse_json("manifest.json", &files.read("manifest.json")?)?;
    let mut planned = Vec::new();
    for entry in entries {
        let config = files.get(&entry.config).ok_or_else(|| {
            ImageError::BadArchive(format!("the archive has no {}", entry.config))
        })?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let staged = files
                .get(layer)
                .ok_or_else(|| ImageError::BadArchive(format!("the archive has no {layer}")))?;
            let mut head = BufReader::new(File::open(&staged.path).ctx("open", &staged.path)?);
            let media_type = match compression::detect(&mut head).ctx("read", &staged.path)? {
                compression::Compression::None => MEDIA_LAYER_TAR,
                compression::Compression::Gzip => MEDIA_LAYER_GZIP,
                compression::Compression::Zstd => MEDIA_LAYER_ZSTD,
            };
            layers.push(Descriptor {
                media_type: media_type.into(),
                digest: staged.digest.clone(),
                size: staged.size,
                platform: None,
                annotations: Default::default(),
            });
        }
        // An OCI manifest stands in for the one `docker save` does not
        // write; the same tarball always makes the same manifest.
        let manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_MANIFEST.into(),
            config: Some(Descriptor {
                media_type: MEDIA_CONFIG.into(),
                digest: config.digest.clone(),
                size: config.size,
                platform: None,
                annotations: Default::default(),
            }),
            layers,
            manifests: Vec::new(),
            annotations: Default::default(),
        };
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let names = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>>>()?;
        planned.push(Planned {
            names,
            manifest_digest: super::digest::sha256_of(&bytes),
            made_manifest: Some(bytes),
            manifest,
        });
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_normalized_and_kept_inside() {
        let n = |p: &str| normalize(Path::new(p));
        assert_eq!(n("./blobs/sha256/ab").as_deref(), Some("blobs/sha256/ab"));
        assert_eq!(n("a/../b/./c").as_deref(), Some("b/c"));
        assert_eq!(n("../x"), None);
        assert_eq!(n("/etc/passwd"), None);
    }
}
