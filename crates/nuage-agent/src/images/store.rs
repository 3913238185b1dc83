//! The store on disk, under `<data-dir>/images/`:
//!
//! ```text
//! blobs/sha256/<hex>   manifests, configs and layer archives, by digest
//! layers/<diffid-hex>/ each layer unpacked once (overlay lower dirs)
//! index.json           {"names": {"docker.io/library/busybox:latest": "sha256:<manifest>"}}
//! lock                 flock'd by writers (import, remove)
//! tmp/                 writers' scratch space: staged archives, layers being unpacked
//! ```
//!
//! Every write lands by rename (a blob after fsync, a layer after syncfs,
//! the index after fsync), so a crash leaves either the old or the new
//! state plus garbage in `tmp/` that the next writer clears. Writers hold
//! `lock` for their whole run; readers take no lock and read `index.json`
//! afresh each time, so an import by another process (`nuage image import`
//! while the server runs) is seen at the next resolve.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::digest::{sha256_hex, sha256_of};
use super::error::{ImageError, IoContext, Result};
use super::oci::{Config, Manifest};
use super::reference::Reference;
use super::{Image, ImageConfig};

/// The node's local image store. Cheap to clone; holds no open files.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// One name in the store, for `nuage image ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// The normalized name (`docker.io/library/busybox:latest`).
    pub name: String,
    /// The repository as Docker shows it (`busybox`, `img/serv`).
    pub repository: String,
    /// The tag (`<none>` for a name stored by digest).
    pub tag: String,
    /// The image id: its config's digest (`sha256:…`).
    pub id: String,
    /// The manifest's digest.
    pub digest: String,
    /// Bytes of the image's blobs (config and layers as stored).
    pub size: u64,
    /// The config's `created` time (RFC 3339), if it has one.
    pub created: Option<String>,
}

/// `index.json`: names to manifest digests.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    pub names: BTreeMap<String, String>,
}

/// Largest JSON document (manifest, config, index) the store reads.
pub(crate) const MAX_JSON: u64 = 16 << 20;

impl ImageStore {
    /// Opens (creating if needed) the store of the node whose data dir is
    /// `data_dir`.
    pub fn open(data_dir: &Path) -> Result<ImageStore> {
        let root = data_dir.join("images");
        for dir in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).ctx("create", &p)?;
        }
        Ok(ImageStore { root })
    }

    /// The store's directory (`<data-dir>/images`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports an OCI image-layout archive (tar, optionally gzipped) or a
    /// `docker save` tarball; returns the names imported, normalized.
    /// Blocks: call it from `spawn_blocking` in async code.
    pub fn import(&self, archive: &Path) -> Result<Vec<String>> {
        super::import::import(self, archive)
    }

    /// Every name in the store, sorted.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let index = self.read_index()?;
        let mut out = Vec::with_capacity(index.names.len());
        for (name, digest) in &index.names {
            let manifest = self.read_manifest(digest)?;
            let config_desc = manifest
                .config
                .as_ref()
                .ok_or_else(|| ImageError::Corrupt(format!("manifest {digest} has no config")))?;
            let config: Config = self.read_json(&config_desc.digest)?;
            let reference = Reference::parse(name)?;
            out.push(ImageSummary {
                name: name.clone(),
                repository: reference.familiar_name(),
                tag: reference.tag.clone().unwrap_or_else(|| "<none>".into()),
                id: config_desc.digest.clone(),
                digest: digest.clone(),
                size: config_desc.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
                created: config.created,
            });
        }
        Ok(out)
    }

    /// Removes a name (any form [`Reference::parse`] accepts, or an image id
    /// or a prefix of one of at least 12 hex digits); the blobs and layers
    /// no remaining image uses are deleted. Containers using the image are
    /// not asked about: their layers may go too.
    pub fn remove(&self, name: &str) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let removed = self.matching_names(&index, name)?;
        if removed.is_empty() {
            return Err(ImageError::NotFound(name.to_string()));
        }
        for n in &removed {
            index.names.remove(n);
        }
        self.write_index(&index)?;
        self.collect_garbage(&index)?;
        Ok(removed)
    }

    fn matching_names(&self, index: &Index, name: &str) -> Result<Vec<String>> {
        let as_reference = Reference::parse(name);
        if let Ok(r) = &as_reference {
            let matches: Vec<String> = match &r.digest {
                None => index
                    .names
                    .keys()
                    .filter(|k| **k == r.to_string())
                    .cloned()
                    .collect(),
                Some(d) => index
                    .names
                    .iter()
                    .filter(|(k, v)| {
                        *v == d && Reference::parse(k).is_ok_and(|kr| kr.name() == r.name())
                    })
                    .map(|(k, _)| k.clone())
                    .collect(),
            };
            if !matches.is_empty() {
                return Ok(matches);
            }
        }
        // An image id, or a prefix of one, as `docker rmi` takes.
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 12 && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut out = Vec::new();
            for (k, digest) in &index.names {
                let manifest = self.read_manifest(digest)?;
                let id = manifest.config.map(|c| c.digest).unwrap_or_default();
                if sha256_hex(&id).is_some_and(|h| h.starts_with(hex)) {
                    out.push(k.clone());
                }
            }
            return Ok(out);
        }
        as_reference.map(|_| Vec::new())
    }

    /// The image a reference names (`busybox`, `img/serv:0.5.0`,
    /// `name@sha256:…`), `None` if the store has no such name. Reads the
    /// store afresh: an import by another process is seen at once.
    pub fn resolve(&self, reference: &str) -> Result<Option<Image>> {
        let r = Reference::parse(reference)?;
        // A concurrent remove may delete blobs between reading the index and
        // reading them: read again, and trust the index's new answer.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let index = self.read_index()?;
            let Some(digest) = lookup(&index, &r) else {
                return Ok(None);
            };
            match self.load_image(&r, &digest) {
                Ok(image) => return Ok(Some(image)),
                Err(e) if attempts < 3 => {
                    tracing::debug!(reference, error = %e, "image changed while resolving; retrying");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn load_image(&self, r: &Reference, manifest_digest: &str) -> Result<Image> {
        let manifest = self.read_manifest(manifest_digest)?;
        let config_desc = manifest.config.ok_or_else(|| {
            ImageError::Corrupt(format!("manifest {manifest_digest} has no config"))
        })?;
        let config: Config = self.read_json(&config_desc.digest)?;
        let mut layers = Vec::with_capacity(config.rootfs.diff_ids.len());
        for diff_id in &config.rootfs.diff_ids {
            let dir = self.layer_path(diff_id)?;
            if !dir.is_dir() {
                return Err(ImageError::Corrupt(format!(
                    "layer {diff_id} of {r} is not unpacked (import the image again)"
                )));
            }
            layers.push(dir);
        }
        let run = config.config.unwrap_or_default();
        Ok(Image {
            id: config_desc.digest,
            name: r.to_string(),
            layers,
            config: ImageConfig {
                entrypoint: run.entrypoint.unwrap_or_default(),
                cmd: run.cmd.unwrap_or_default(),
                env: run.env.unwrap_or_default(),
                working_dir: run.working_dir.unwrap_or_default(),
                user: run.user.unwrap_or_default(),
                stop_signal: run.stop_signal.unwrap_or_default(),
            },
        })
    }

    // ---- paths and files -------------------------------------------------

    /// `blobs/sha256/<hex>` for a digest.
    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = sha256_hex(digest)
            .ok_or_else(|| ImageError::BadArchive(format!("unsupported digest {digest:?}")))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// `layers/<hex>` for a layer's uncompressed digest.
    pub(crate) fn layer_path(&self, diff_id: &str) -> Result<PathBuf> {
        let hex = sha256_hex(diff_id)
            .ok_or_else(|| ImageError::BadArchive(format!("unsupported diff id {diff_id:?}")))?;
        Ok(self.root.join("layers").join(hex))
    }

    pub(crate) fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &str) -> Result<T> {
        let path = self.blob_path(digest)?;
        let bytes = read_limited(&path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Corrupt(format!("blob {digest}: {e}")))
    }

    pub(crate) fn read_manifest(&self, digest: &str) -> Result<Manifest> {
        self.read_json(digest)
    }

    pub(crate) fn read_index(&self) -> Result<Index> {
        let path = self.root.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::Corrupt(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::io("read", &path, e)),
        }
    }

    /// Replaces `index.json` atomically (writers hold the lock).
    pub(crate) fn write_index(&self, index: &Index) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index).expect("the index serializes");
        write_atomic(&self.root, "index.json", &bytes)
    }

    /// Moves a staged file into `blobs/` under its (verified) digest.
    pub(crate) fn commit_blob(&self, staged: &Path, digest: &str) -> Result<()> {
        let dest = self.blob_path(digest)?;
        if dest.exists() {
            return Ok(());
        }
        File::open(staged)
            .and_then(|f| f.sync_all())
            .ctx("sync", staged)?;
        fs::rename(staged, &dest).ctx("store blob", &dest)?;
        sync_dir(dest.parent().expect("blobs have a directory"))
    }

    /// Stores bytes as a blob; returns their digest.
    pub(crate) fn write_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = sha256_of(bytes);
        let dest = self.blob_path(&digest)?;
        if !dest.exists() {
            let dir = dest.parent().expect("blobs have a directory");
            let name = dest.file_name().expect("blobs have a name");
            write_atomic(dir, &name.to_string_lossy(), bytes)?;
        }
        Ok(digest)
    }

    /// Unpacks a layer blob into `layers/<diffid>` unless it is there.
    pub(crate) fn ensure_layer(&self, blob_digest: &str, diff_id: &str) -> Result<()> {
        let dest = self.layer_path(diff_id)?;
        if dest.is_dir() {
            return Ok(());
        }
        let tmp = self.temp_dir("layer")?;
        // The root of a layer without a "./" entry: what `/` usually is,
        // whatever the umask.
        fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .ctx("chmod", tmp.path())?;
        super::unpack::unpack_layer(&self.blob_path(blob_digest)?, tmp.path(), diff_id)?;
        // One syncfs instead of an fsync per file: the layer's files are all
        // on disk before the rename makes the layer visible.
        let fd = File::open(tmp.path()).ctx("open", tmp.path())?;
        rustix::fs::syncfs(&fd).ctx("sync", tmp.path())?;
        fs::rename(tmp.path(), &dest).ctx("store layer", &dest)?;
        tmp.forget();
        sync_dir(dest.parent().expect("layers have a directory"))
    }

    /// A fresh directory under `tmp/`, removed when dropped.
    pub(crate) fn temp_dir(&self, prefix: &str) -> Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = self.root.join("tmp").join(format!(
            "{prefix}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path).ctx("create", &path)?;
        Ok(TempDir { path: Some(path) })
    }

    /// Takes the writers' lock (blocking until other writers finish).
    pub(crate) fn lock(&self) -> Result<File> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx("open", &path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).ctx("lock", &path)?;
        // Whatever is in tmp/ belongs to a writer that died: we hold the lock.
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(&tmp).ctx("read", &tmp)? {
            let entry = entry.ctx("read", &tmp)?;
            let p = entry.path();
            let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
        Ok(file)
    }

    /// Deletes the blobs and layers no name in `index` uses. Called with
    /// the lock held, after the index is written.
    pub(crate) fn collect_garbage(&self, index: &Index) -> Result<()> {
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for digest in index.names.values() {
            blobs.insert(digest.clone());
            let manifest = self.read_manifest(digest)?;
            if let Some(config) = &manifest.config {
                blobs.insert(config.digest.clone());
                let config: Config = self.read_json(&config.digest)?;
                layers.extend(config.rootfs.diff_ids);
            }
            blobs.extend(manifest.layers.into_iter().map(|l| l.digest));
        }
        let blob_dir = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&blob_dir).ctx("read", &blob_dir)? {
            let entry = entry.ctx("read", &blob_dir)?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !blobs.contains(&digest) {
                fs::remove_file(entry.path()).ctx("remove", &entry.path())?;
            }
        }
        let layer_dir = self.root.join("layers");
        for entry in fs::read_dir(&layer_dir).ctx("read", &layer_dir)? {
            let entry = entry.ctx("read", &layer_dir)?;
            let diff_id = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !layers.contains(&diff_id) {
                // Out of sight first (one rename), then deleted at leisure: a
                // reader never sees half a layer.
                let doomed = self.temp_dir("removed")?;
                let target = doomed.path().join("layer");
                fs::rename(entry.path(), &target).ctx("remove", &entry.path())?;
                drop(doomed);
            }
        }
        Ok(())
    }
}

/// The manifest digest a reference names in the index.
fn lookup(index: &Index, r: &Reference) -> Option<String> {
    match &r.digest {
        None => index.names.get(&r.to_string()).cloned(),
        // By digest: any name of the same repository holding that manifest.
        Some(d) => index
            .names
            .iter()
            .find(|(k, v)| *v == d && Reference::parse(k).is_ok_and(|kr| kr.name() == r.name()))
            .map(|(_, v)| v.clone()),
    }
}

/// A directory under the store's `tmp/`, removed on drop unless forgotten.
pub(crate) struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("only forget() clears the path")
    }

    /// Keeps the directory (it was renamed into place).
    pub fn forget(mut self) {
        self.path = None;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Reads a JSON document, refusing one too large to be metadata.
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).ctx("read", path)?;
    if meta.len() > MAX_JSON {
        return Err(ImageError::Corrupt(format!(
            "{} is {} bytes: too large for a manifest or config",
            path.display(),
            meta.len()
        )));
    }
    fs::read(path).ctx("read", path)
}

/// Writes `dir/name` by temp file, fsync and rename, then fsyncs `dir`.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let dest = dir.join(name);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ImageError::io("write", &tmp, e));
    }
    fs::rename(&tmp, &dest).ctx("replace", &dest)?;
    sync_dir(dir)
}

/// fsyncs a directory, making renames in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).ctx("sync", dir)
}
