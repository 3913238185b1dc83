//! The node's local image store: content-addressed blobs (sha256), image
//! manifests and configs, an index of names, and each layer unpacked once
//! (OCI whiteouts honoured) into a directory every container shares as a
//! read-only overlay lower layer.

mod compression;
mod digest;
mod error;
mod import;
mod oci;
pub mod reference;
mod store;
mod unpack;

pub use error::{ImageError, Result};
pub use reference::Reference;
pub use store::{ImageStore, ImageSummary};

use std::path::PathBuf;

/// An image ready to run: its unpacked layers and its config.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image id: the digest of its config (`sha256:…`).
    pub id: String,
    /// The name it was resolved from, normalized (`docker.io/library/busybox:latest`).
    pub name: String,
    /// Unpacked layer directories, bottom layer first.
    pub layers: Vec<PathBuf>,
    /// What the image says about running it.
    pub config: ImageConfig,
}

/// The runtime part of an OCI image config.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` as `KEY=VALUE`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User` (`uid[:gid]` or a name).
    pub user: String,
    /// `StopSignal`.
    pub stop_signal: String,
}
