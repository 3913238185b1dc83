//! The embedded backend: one SQLite file in WAL mode, a row per revision.
//!
//! Layout follows k3s's kine: table `kv` is append-only, its `id` is the
//! revision, a delete appends a tombstone row. A second table, `current`, maps
//! each live key to its latest row so that reads at the latest revision are
//! one index lookup instead of a `GROUP BY` over history.
//!
//! One writer thread owns the write connection. It drains every request that
//! is waiting, applies them in one transaction (group commit) and fsyncs once
//! (`synchronous=FULL`), then publishes the events and only then acknowledges:
//! an acknowledged write is on disk, and `kill -9` cannot lose it. Readers use
//! a small pool of read connections; WAL lets them run beside the writer.

mod schema;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{broadcast, oneshot};

use crate::{
    Event, KeyValue, LeaseId, ListOptions, ListResult, Revision, Store, StoreError, WatchStream,
};
use writer::{Command, Writer};

/// How many live events a slow watcher may fall behind before it re-reads
/// from the table (it never loses events, it only pays a query).
const EVENT_BUFFER: usize = 4096;

/// Read connections kept open between reads (each caches up to 4 MB).
const MAX_IDLE_READERS: usize = 8;

/// How often expired leases are looked for.
const LEASE_SWEEP: Duration = Duration::from_millis(250);

/// The SQLite-backed store.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: std::sync::mpsc::Sender<Command>,
    events: broadcast::Sender<Arc<Event>>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("create {}: {e}", dir.display())))?;
        }
        let conn = schema::open_writer(path)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let writer = Writer::start(conn, events.clone())?;
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            writer,
            events,
            readers: Mutex::new(Vec::new()),
        });
        spawn_lease_sweeper(Arc::downgrade(&inner));
        Ok(Self { inner })
    }
}

/// Expires leases in the background while the store lives. Needs a tokio
/// runtime if one is present; without one (a plain thread user) it runs on a
/// thread of its own.
fn spawn_lease_sweeper(inner: std::sync::Weak<Inner>) {
    let sweep = move || -> bool {
        let Some(inner) = inner.upgrade() else {
            return false;
        };
        let (tx, _rx) = oneshot::channel();
        inner
            .writer
            .send(Command::ExpireLeases { reply: tx })
            .is_ok()
    };
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let mut tick = tokio::time::interval(LEASE_SWEEP);
            loop {
                tick.tick().await;
                if !sweep() {
                    break;
                }
            }
        });
    } else {
        std::thread::spawn(move || {
            while sweep() {
                std::thread::sleep(LEASE_SWEEP);
            }
        });
    }
}

impl Inner {
    async fn write<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(make(tx)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a pooled read connection on the blocking pool.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(self);
        tokio::task::spawn_blocking(move || inner.read_blocking(f))
            .await
            .map_err(|e| StoreError::Backend(format!("read task: {e}")))?
    }

    fn read_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(|_| StoreError::Closed)?.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => schema::open_reader(&self.path)?,
        };
        let out = f(&mut conn);
        if let Ok(mut pool) = self.readers.lock() {
            // A burst may open many connections; keep a few for the next one.
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
        out
    }
}

/// The exclusive upper bound of keys starting with `prefix` (`None`: no bound).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn row_to_kv(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    let key: Vec<u8> = row.get("name")?;
    let lease: i64 = row.get("lease")?;
    Ok(KeyValue {
        key: String::from_utf8_lossy(&key).into_owned(),
        value: row.get::<_, Option<Vec<u8>>>("value")?.unwrap_or_default(),
        create_revision: row.get("create_revision")?,
        mod_revision: row.get("id")?,
        lease: (lease != 0).then_some(lease),
    })
}

fn list_blocking(
    conn: &mut Connection,
    prefix: &str,
    opts: &ListOptions,
) -> Result<ListResult, StoreError> {
    let tx = conn.transaction()?;
    let current = schema::current_revision(&tx)?;
    let compacted = schema::compacted_revision(&tx)?;
    let at = match opts.revision {
        Some(r) if r > 0 => r,
        _ => current,
    };
    if at > current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current,
        });
    }
    if at < current && at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            compacted,
        });
    }
    let lower: Vec<u8> = match &opts.start_after {
        // The smallest key greater than `start_after`.
        Some(after) if after.as_str() >= prefix => {
            let mut k = after.as_bytes().to_vec();
            k.push(0);
            k
        }
        _ => prefix.as_bytes().to_vec(),
    };
    let upper = prefix_end(prefix.as_bytes()).unwrap_or_else(|| vec![0xff; 512]);
    let limit = opts.limit.filter(|l| *l > 0);
    // Ask for one more than the limit to learn whether more remain.
    let sql_limit = limit.map(|l| l as i64 + 1).unwrap_or(-1);
    let mut kvs = Vec::new();
    {
        let mut stmt = if at == current {
            tx.prepare_cached(
                "SELECT k.id, k.name, k.create_revision, k.lease, k.value
                 FROM current c JOIN kv k ON k.id = c.id
                 WHERE c.name >= ?1 AND c.name < ?2
                 ORDER BY c.name LIMIT ?3",
            )?
        } else {
            tx.prepare_cached(
                "SELECT k.id, k.name, k.create_revision, k.lease, k.value
                 FROM kv k JOIN (
                    SELECT MAX(id) AS id FROM kv
                    WHERE name >= ?1 AND name < ?2 AND id <= ?4 GROUP BY name
                 ) m ON k.id = m.id
                 WHERE k.deleted = 0
                 ORDER BY k.name LIMIT ?3",
            )?
        };
        let rows = if at == current {
            stmt.query_map(params![lower, upper, sql_limit], row_to_kv)?
        } else {
            stmt.query_map(params![lower, upper, sql_limit, at], row_to_kv)?
        };
        for row in rows {
            kvs.push(row?);
        }
    }
    let more = match limit {
        Some(l) if kvs.len() > l => {
            kvs.truncate(l);
            true
        }
        _ => false,
    };
    Ok(ListResult {
        kvs,
        revision: at,
        more,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.read(|c| schema::current_revision(c)).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.as_bytes().to_vec();
        self.inner
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT k.id, k.name, k.create_revision, k.lease, k.value
                     FROM current c JOIN kv k ON k.id = c.id WHERE c.name = ?1",
                )?;
                Ok(stmt.query_row([key], row_to_kv).optional()?)
            })
            .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        let prefix = prefix.to_string();
        self.inner
            .read(move |c| list_blocking(c, &prefix, &opts))
            .await
    }

    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        let lower = prefix.as_bytes().to_vec();
        let upper = prefix_end(&lower).unwrap_or_else(|| vec![0xff; 512]);
        self.inner
            .read(move |c| {
                let n: i64 = c
                    .prepare_cached("SELECT COUNT(*) FROM current WHERE name >= ?1 AND name < ?2")?
                    .query_row(params![lower, upper], |r| r.get(0))?;
                Ok(n as u64)
            })
            .await
    }

    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue, StoreError> {
        let key = key.to_string();
        self.inner
            .write(|reply| Command::Create {
                key,
                value,
                lease,
                reply,
            })
            .await
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue, StoreError> {
        let key = key.to_string();
        self.inner
            .write(|reply| Command::Update {
                key,
                value,
                expected,
                lease,
                reply,
            })
            .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        let key = key.to_string();
        self.inner
            .write(|reply| Command::Delete {
                key,
                expected,
                reply,
            })
            .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        watch::start(Arc::clone(&self.inner), prefix.to_string(), after).await
    }

    async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseId, StoreError> {
        self.inner
            .write(|reply| Command::GrantLease { ttl_seconds, reply })
            .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner
            .write(|reply| Command::KeepAlive { lease, reply })
            .await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner
            .write(|reply| Command::RevokeLease { lease, reply })
            .await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner
            .write(|reply| Command::Compact { revision, reply })
            .await
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        self.inner.read(|c| schema::compacted_revision(c)).await
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b""), None);
    }
}
