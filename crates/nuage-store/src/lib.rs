//! The state store: a key-value space with etcd's semantics, behind one trait.
//!
//! Every write increments one global revision. Keys can be created (only if
//! absent), updated or deleted guarded by their last modification revision
//! (compare-and-swap), listed by prefix at a revision, and watched from a
//! revision: a watch delivers every later change in revision order, with the
//! previous value. Leases delete their keys when they expire. Old revisions are
//! compacted; a watch or list below the compacted revision fails with
//! [`StoreError::Compacted`] so the caller re-lists.
//!
//! Backends: [`sqlite::SqliteStore`] (embedded default, an append-only table as
//! k3s's kine lays it out) and [`etcd::EtcdStore`] (etcd v3 through
//! `etcd-client`, mapping revisions, leases and watches onto etcd's own). One
//! conformance suite (`tests/conformance.rs`) runs against both.
//!
//! Owns no object semantics: values are opaque bytes. Does not know about
//! Kubernetes kinds (nuage-model) or HTTP (nuage-api).

pub mod compactor;
pub mod etcd;
mod open;
pub mod sqlite;

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

pub use open::open;

/// A store revision. Starts at 1 for an empty store; every write adds one.
pub type Revision = i64;

/// A lease identifier, as granted by [`Store::grant_lease`].
pub type LeaseId = i64;

/// One key's state at some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key.
    pub key: String,
    /// The opaque value.
    pub value: Vec<u8>,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// What happened to a key at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted (by a call or by its lease expiring).
    Delete,
}

/// One change delivered by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// For a put, the new state. For a delete, the key with its last value
    /// and `mod_revision` set to the deletion's revision.
    pub kv: KeyValue,
    /// The state before this event, if the key existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision at which this event happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Options for [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Read at this revision; `None` reads the latest.
    pub revision: Option<Revision>,
    /// Return at most this many keys; `None` or 0 means no limit.
    pub limit: Option<usize>,
    /// Return only keys strictly greater than this one (continuation).
    pub start_after: Option<String>,
}

/// The answer to [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct ListResult {
    /// Matching keys in ascending key order.
    pub kvs: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// Whether more keys match beyond `limit`.
    pub more: bool,
}

/// A stream of watch events; ends with an error if the watch cannot go on.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event, StoreError>> + Send>>;

/// Errors of every backend, with the same meaning everywhere.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create found the key present.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key is absent.
    #[error("key {0} not found")]
    NotFound(String),
    /// A guarded write found another revision than expected.
    #[error("{key} changed: expected revision {expected}, found {found}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's actual mod revision (0 if absent).
        found: Revision,
    },
    /// The requested revision was compacted away; re-list.
    #[error("revision {requested} is compacted (oldest kept is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction revision.
        compacted: Revision,
    },
    /// The requested revision is in the future.
    #[error("revision {requested} is newer than the store's {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// The lease is unknown or expired.
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// A store URL that cannot be opened.
    #[error("bad store url {0:?}: {1}")]
    BadUrl(String, String),
    /// The SQLite backend failed.
    #[error("sqlite backend: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The etcd backend failed.
    #[error("etcd backend: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// The backend is shut down or its worker died.
    #[error("store is closed")]
    Closed,
    /// Anything else a backend reports (I/O, a panicked worker).
    #[error("store backend: {0}")]
    Backend(String),
}

/// The state store. Both backends implement it identically; the conformance
/// suite is the specification.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current revision (that of the last write).
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    /// The key's latest state, if present.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Keys starting with `prefix`, in key order, at a revision.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError>;

    /// Counts keys starting with `prefix` at the latest revision.
    async fn count(&self, prefix: &str) -> Result<u64, StoreError>;

    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if present.
    /// Returns the new key-value (its revisions set).
    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue, StoreError>;

    /// Replaces `key`'s value if its mod revision is `expected`.
    /// Fails with [`StoreError::NotFound`] or [`StoreError::Conflict`].
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue, StoreError>;

    /// Deletes `key`, if its mod revision is `expected` when given.
    /// Returns the deleted state with `mod_revision` set to the deletion's
    /// revision. Fails with [`StoreError::NotFound`] or [`StoreError::Conflict`].
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError>;

    /// Watches keys starting with `prefix`, delivering every event with a
    /// revision greater than `after`, in revision order. `after` below the
    /// compacted revision fails with [`StoreError::Compacted`].
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// Grants a lease that expires `ttl_seconds` after its last keep-alive.
    async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseId, StoreError>;

    /// Renews a lease for its TTL.
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Revokes a lease now, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Discards history at and below `revision` (latest values are kept).
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The revision history is compacted to (0 if never).
    async fn compacted_revision(&self) -> Result<Revision, StoreError>;
}
