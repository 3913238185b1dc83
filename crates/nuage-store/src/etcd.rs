//! The etcd v3 backend: [`EtcdStore`] maps the [`Store`] trait onto etcd's own
//! revisions, transactions, watches and leases through `etcd-client`.
//!
//! Every key lives under a root prefix: with the root `/nuage`, the store key
//! `/registry/x` is the etcd key `/nuage/registry/x`. The root is prepended
//! as is, so two roots sharing one etcd must not be prefixes of each other
//! (`/nuage` and `/nuage2` would see each other's keys).
//!
//! Revisions, leases and compaction are etcd's and so are global to the etcd
//! cluster: a write outside the root (another nuage, `etcdctl`) advances the
//! revision too, and a compaction applies to every root.

mod watch;

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    KvClient, LeaseClient, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient,
};
use tracing::{debug, instrument};

use crate::{KeyValue, LeaseId, ListOptions, ListResult, Revision, Store, StoreError, WatchStream};

/// The largest list or watch response accepted. etcd bounds requests
/// (1.5 MiB by default) but not responses; the client's 4 MiB default would
/// fail a list of a large collection.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// etcd's message when a read asks for a revision below the compaction.
const ERR_COMPACTED: &str = "required revision has been compacted";
/// etcd's message when a read asks for a revision above the current one.
const ERR_FUTURE_REV: &str = "required revision is a future revision";
/// etcd's message for an unknown (never granted, expired or revoked) lease.
const ERR_LEASE_NOT_FOUND: &str = "requested lease not found";

/// A [`Store`] kept in an etcd v3 cluster under a root prefix.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    root: String,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("root", &self.root)
            .finish()
    }
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (`http://host:port`) and
    /// keeps every key under `root`. Fails if no endpoint answers a read.
    pub async fn connect(endpoints: &[String], root: &str) -> Result<Self, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(options)).await?;
        let store = Self {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            lease: client.lease_client(),
            root: root.to_owned(),
        };
        // The channel connects lazily: one read proves an endpoint answers.
        let revision = store.current_revision().await?;
        debug!(?endpoints, root, revision, "connected to etcd");
        Ok(store)
    }

    /// The etcd key for a store key.
    fn etcd_key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.root).into_bytes()
    }

    /// A key to read when only the response header matters (etcd refuses an
    /// empty key).
    fn probe_key(&self) -> Vec<u8> {
        if self.root.is_empty() {
            vec![0]
        } else {
            self.root.clone().into_bytes()
        }
    }

    /// The store key for an etcd key under the root.
    fn store_key(&self, key: &[u8]) -> Result<String, StoreError> {
        let key = key.strip_prefix(self.root.as_bytes()).ok_or_else(|| {
            StoreError::Backend(format!(
                "etcd key {:?} is outside the root {:?}",
                String::from_utf8_lossy(key),
                self.root
            ))
        })?;
        String::from_utf8(key.to_vec())
            .map_err(|_| StoreError::Backend(format!("etcd key {key:?} is not utf-8")))
    }

    /// Converts an etcd key-value under the root.
    fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        Ok(KeyValue {
            key: self.store_key(kv.key())?,
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            lease: (kv.lease() != 0).then_some(kv.lease()),
        })
    }

    /// The etcd key range `[start, end)` of the store keys starting with `prefix`.
    fn prefix_range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.etcd_key(prefix);
        if start.is_empty() {
            // An empty root and prefix: every key ("\0" to the end).
            return (vec![0], vec![0]);
        }
        let end = prefix_end(&start);
        (start, end)
    }

    /// Runs a transaction (etcd-client calls take `&mut`: on a cheap clone).
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.kv.clone().txn(txn).await.map_err(StoreError::Etcd)
    }

    /// Reads one key's latest state through the failure branch of a
    /// transaction, which holds exactly one range response.
    fn failed_get(&self, response: &TxnResponse) -> Result<Option<KeyValue>, StoreError> {
        match response.op_responses().first() {
            Some(TxnOpResponse::Get(get)) => {
                get.kvs().first().map(|kv| self.key_value(kv)).transpose()
            }
            _ => Err(StoreError::Backend(
                "etcd transaction failure branch returned no range".into(),
            )),
        }
    }

    /// Whether a read at `revision` is still possible (not compacted).
    async fn readable_at(&self, revision: Revision) -> Result<bool, StoreError> {
        let options = GetOptions::new().with_revision(revision).with_count_only();
        match self.kv.clone().get(self.probe_key(), Some(options)).await {
            Ok(_) => Ok(true),
            Err(e) => match error_message(&e) {
                Some(m) if m.contains(ERR_COMPACTED) => Ok(false),
                // Not written yet, so not compacted either.
                Some(m) if m.contains(ERR_FUTURE_REV) => Ok(true),
                _ => Err(e.into()),
            },
        }
    }

    /// The error for a read at `requested`, a revision etcd reported compacted.
    async fn compacted_error(&self, requested: Revision) -> StoreError {
        match self.compacted_revision().await {
            Ok(compacted) => StoreError::Compacted {
                requested,
                compacted,
            },
            Err(e) => e,
        }
    }

    /// The error for a read at `requested`, a revision etcd reported in the future.
    async fn future_error(&self, requested: Revision) -> StoreError {
        match self.current_revision().await {
            Ok(current) => StoreError::FutureRevision { requested, current },
            Err(e) => e,
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let options = GetOptions::new().with_count_only();
        let response = self.kv.clone().get(self.probe_key(), Some(options)).await?;
        header_revision(response.header())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let response = self.kv.clone().get(self.etcd_key(key), None).await?;
        response
            .kvs()
            .first()
            .map(|kv| self.key_value(kv))
            .transpose()
    }

    #[instrument(level = "debug", skip(self))]
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        let (prefix_start, end) = self.prefix_range(prefix);
        // Keys strictly after `start_after` begin at `start_after + "\0"`.
        let start = match &opts.start_after {
            Some(after) => {
                let mut after = self.etcd_key(after);
                after.push(0);
                after.max(prefix_start)
            }
            None => prefix_start,
        };
        let mut options = GetOptions::new().with_range(end);
        if let Some(limit) = opts.limit.filter(|&l| l > 0) {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            options = options.with_limit(limit);
        }
        let requested = opts.revision.filter(|&r| r > 0);
        if let Some(revision) = requested {
            options = options.with_revision(revision);
        }
        let response = match self.kv.clone().get(start, Some(options)).await {
            Ok(response) => response,
            Err(e) => {
                let message = error_message(&e).unwrap_or_default();
                return Err(match requested {
                    Some(r) if message.contains(ERR_COMPACTED) => self.compacted_error(r).await,
                    Some(r) if message.contains(ERR_FUTURE_REV) => self.future_error(r).await,
                    _ => StoreError::Etcd(e),
                });
            }
        };
        let kvs = response
            .kvs()
            .iter()
            .map(|kv| self.key_value(kv))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListResult {
            kvs,
            revision: match requested {
                Some(revision) => revision,
                None => header_revision(response.header())?,
            },
            more: response.more(),
        })
    }

    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        let (start, end) = self.prefix_range(prefix);
        let options = GetOptions::new().with_range(end).with_count_only();
        let response = self.kv.clone().get(start, Some(options)).await?;
        u64::try_from(response.count())
            .map_err(|_| StoreError::Backend(format!("etcd counted {} keys", response.count())))
    }

    #[instrument(level = "debug", skip(self, value))]
    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue, StoreError> {
        let etcd_key = self.etcd_key(key);
        let mut put = PutOptions::new();
        if let Some(lease) = lease {
            put = put.with_lease(lease);
        }
        // A key that does not exist has create revision 0.
        let txn = Txn::new()
            .when([Compare::create_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(etcd_key.clone(), value.clone(), Some(put))])
            .or_else([TxnOp::get(etcd_key, None)]);
        let response = self.txn(txn).await.map_err(|e| for_lease(e, lease))?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_owned()));
        }
        let revision = header_revision(response.header())?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
            lease,
        })
    }

    #[instrument(level = "debug", skip(self, value))]
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue, StoreError> {
        let etcd_key = self.etcd_key(key);
        let mut put = PutOptions::new().with_prev_key();
        if let Some(lease) = lease {
            put = put.with_lease(lease);
        }
        // An absent key compares as mod revision 0: require it to exist too,
        // or `expected == 0` would create it.
        let txn = Txn::new()
            .when([
                Compare::create_revision(etcd_key.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(etcd_key.clone(), CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(etcd_key.clone(), value.clone(), Some(put))])
            .or_else([TxnOp::get(etcd_key, None)]);
        let response = self.txn(txn).await.map_err(|e| for_lease(e, lease))?;
        if !response.succeeded() {
            return Err(match self.failed_get(&response)? {
                None => StoreError::NotFound(key.to_owned()),
                Some(found) => StoreError::Conflict {
                    key: key.to_owned(),
                    expected,
                    found: found.mod_revision,
                },
            });
        }
        let revision = header_revision(response.header())?;
        let create_revision = match response.op_responses().first() {
            Some(TxnOpResponse::Put(put)) => put.prev_key().map(|kv| kv.create_revision()),
            _ => None,
        }
        .ok_or_else(|| StoreError::Backend("etcd update returned no previous key".into()))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: revision,
            lease,
        })
    }

    #[instrument(level = "debug", skip(self))]
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        let etcd_key = self.etcd_key(key);
        let mut when = vec![Compare::create_revision(
            etcd_key.clone(),
            CompareOp::Greater,
            0,
        )];
        if let Some(expected) = expected {
            when.push(Compare::mod_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                expected,
            ));
        }
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::delete(
                etcd_key.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(etcd_key, None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(match (self.failed_get(&response)?, expected) {
                (Some(found), Some(expected)) => StoreError::Conflict {
                    key: key.to_owned(),
                    expected,
                    found: found.mod_revision,
                },
                _ => StoreError::NotFound(key.to_owned()),
            });
        }
        let revision = header_revision(response.header())?;
        let mut deleted = match response.op_responses().first() {
            Some(TxnOpResponse::Delete(delete)) => delete
                .prev_kvs()
                .first()
                .map(|kv| self.key_value(kv))
                .transpose()?,
            _ => None,
        }
        .ok_or_else(|| StoreError::Backend("etcd delete returned no previous key".into()))?;
        deleted.mod_revision = revision;
        Ok(deleted)
    }

    #[instrument(level = "debug", skip(self))]
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        // etcd refuses a watch starting below the compaction, i.e. `after + 1
        // < compacted`; the trait also refuses `after == compacted - 1`. A
        // read at `after` fails exactly when `after < compacted`. (A compaction
        // racing this check is still caught by etcd itself, one revision late.)
        if !self.readable_at(after.max(1)).await? {
            return Err(self.compacted_error(after).await);
        }
        let (start, end) = self.prefix_range(prefix);
        watch::start(self.clone(), start, end, after).await
    }

    async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseId, StoreError> {
        let response = self.lease.clone().grant(ttl_seconds, None).await?;
        if !response.error().is_empty() {
            return Err(StoreError::Backend(format!(
                "etcd lease grant: {}",
                response.error()
            )));
        }
        debug!(lease = response.id(), ttl = response.ttl(), "granted lease");
        Ok(response.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        // etcd only renews over a stream; one stream per renewal keeps the
        // store stateless, and renewals come once per TTL, not per request.
        match self.lease.clone().keep_alive(lease).await {
            Ok(_) => Ok(()),
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => {
                Err(StoreError::LeaseNotFound(lease))
            }
            Err(e) => Err(for_lease(StoreError::Etcd(e), Some(lease))),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.lease
            .clone()
            .revoke(lease)
            .await
            .map_err(|e| for_lease(StoreError::Etcd(e), Some(lease)))?;
        debug!(lease, "revoked lease");
        Ok(())
    }

    #[instrument(level = "debug", skip(self))]
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        // Physical: return once the old revisions are gone from the backend.
        let options = CompactionOptions::new().with_physical();
        match self.kv.clone().compact(revision, Some(options)).await {
            Ok(_) => Ok(()),
            // Already compacted at or past `revision`: nothing more to discard.
            Err(e) if error_message(&e).is_some_and(|m| m.contains(ERR_COMPACTED)) => Ok(()),
            Err(e) if error_message(&e).is_some_and(|m| m.contains(ERR_FUTURE_REV)) => {
                Err(self.future_error(revision).await)
            }
            Err(e) => Err(StoreError::Etcd(e)),
        }
    }

    /// etcd (3.4) does not report its compaction revision, and a marker key
    /// written by `compact` would advance the revision and miss compactions
    /// made by etcd itself or by another client. So this derives it: a read at
    /// revision `r` fails exactly when `r` is below the compaction, so the
    /// compaction revision is the lowest readable one, found by bisection
    /// (about log2(current) reads; only `watch` and `list` error paths use it).
    /// A compaction at revision 1 discards nothing and is reported as 0.
    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        if self.readable_at(1).await? {
            return Ok(0);
        }
        // Invariant: `low` is not readable, `high` is.
        let (mut low, mut high) = (1, self.current_revision().await?);
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if self.readable_at(middle).await? {
                high = middle;
            } else {
                low = middle;
            }
        }
        Ok(high)
    }
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All bytes 0xff: no upper bound ("\0" means the end of the key space).
    vec![0]
}

/// The revision in a response header.
fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision, StoreError> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd response without header".into()))
}

/// The gRPC status message of an etcd error, if it is one.
fn error_message(error: &etcd_client::Error) -> Option<&str> {
    match error {
        etcd_client::Error::GRpcStatus(status) => Some(status.message()),
        _ => None,
    }
}

/// Turns etcd's "lease not found" into [`StoreError::LeaseNotFound`].
fn for_lease(error: StoreError, lease: Option<LeaseId>) -> StoreError {
    match (&error, lease) {
        (StoreError::Etcd(e), Some(lease))
            if error_message(e).is_some_and(|m| m.contains(ERR_LEASE_NOT_FOUND)) =>
        {
            StoreError::LeaseNotFound(lease)
        }
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
