//! What can go wrong in the image store.

use std::io;
use std::path::Path;

/// An image store error. Messages name the file, digest or reference at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The archive is not an OCI image layout or a `docker save` tarball, or
    /// its metadata is wrong.
    #[error("{0}")]
    BadArchive(String),
    /// Content does not match the digest that names it.
    #[error("{what} is corrupt: expected {expected}, found {actual}")]
    DigestMismatch {
        /// The blob or layer.
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest its bytes have.
        actual: String,
    },
    /// A layer entry would be written outside the layer directory.
    #[error("layer {layer}: entry {path:?} {reason}")]
    UnsafePath {
        /// The layer's digest.
        layer: String,
        /// The entry's path in the tar.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An image reference that cannot be parsed.
    #[error("invalid reference {reference:?}: {reason}")]
    BadReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No image by that name.
    #[error("no image {0} in the store")]
    NotFound(String),
    /// Stored state that cannot be read (a blob or layer missing, bad JSON).
    #[error("image store: {0}")]
    Corrupt(String),
}

/// `Result` with [`ImageError`].
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

impl ImageError {
    /// An [`ImageError::Io`] about `path`.
    pub(crate) fn io(what: &str, path: &Path, source: io::Error) -> ImageError {
        ImageError::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
}

/// Turns an `io::Error` into an [`ImageError::Io`] about a path.
pub(crate) trait IoContext<T> {
    /// Adds "`what` `path`" to the error.
    fn ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| ImageError::io(what, path, e))
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| ImageError::io(what, path, e.into()))
    }
}
