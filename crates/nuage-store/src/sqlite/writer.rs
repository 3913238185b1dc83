//! The single writer: group commit of every waiting request, then publish.

use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::{broadcast, oneshot};

use super::schema;
use crate::{Event, EventKind, KeyValue, LeaseId, Revision, StoreError};

/// Most requests folded into one transaction.
const MAX_BATCH: usize = 512;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A request to the writer thread.
pub(super) enum Command {
    Create {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
        reply: Reply<KeyValue>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
        lease: Option<LeaseId>,
        reply: Reply<KeyValue>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
        reply: Reply<KeyValue>,
    },
    GrantLease {
        ttl_seconds: i64,
        reply: Reply<LeaseId>,
    },
    KeepAlive {
        lease: LeaseId,
        reply: Reply<()>,
    },
    RevokeLease {
        lease: LeaseId,
        reply: Reply<()>,
    },
    ExpireLeases {
        reply: Reply<()>,
    },
    Compact {
        revision: Revision,
        reply: Reply<()>,
    },
}

/// What one command came to, held back until its batch is committed.
enum Outcome {
    Kv(Result<KeyValue, StoreError>),
    Lease(Result<LeaseId, StoreError>),
    Unit(Result<(), StoreError>),
}

impl Command {
    /// Sends `outcome` to this command's caller. A caller that went away no
    /// longer wants its answer.
    fn answer(self, outcome: Outcome) {
        let _ = match (self, outcome) {
            (
                Command::Create { reply, .. }
                | Command::Update { reply, .. }
                | Command::Delete { reply, .. },
                Outcome::Kv(v),
            ) => reply.send(v).map_err(drop),
            (Command::GrantLease { reply, .. }, Outcome::Lease(v)) => reply.send(v).map_err(drop),
            (
                Command::KeepAlive { reply, .. }
                | Command::RevokeLease { reply, .. }
                | Command::ExpireLeases { reply }
                | Command::Compact { reply, .. },
                Outcome::Unit(v),
            ) => reply.send(v).map_err(drop),
            (cmd, _) => {
                tracing::error!("store writer paired an answer with the wrong command");
                cmd.fail(StoreError::Backend("internal store error".into()));
                Ok(())
            }
        };
    }

    /// Answers this command with `err`.
    fn fail(self, err: StoreError) {
        let outcome = match &self {
            Command::Create { .. } | Command::Update { .. } | Command::Delete { .. } => {
                Outcome::Kv(Err(err))
            }
            Command::GrantLease { .. } => Outcome::Lease(Err(err)),
            _ => Outcome::Unit(Err(err)),
        };
        self.answer(outcome);
    }
}

pub(super) struct Writer {
    conn: Connection,
    events: broadcast::Sender<Arc<Event>>,
    /// The revision the next write gets. Only this thread writes, so it is
    /// authoritative; it is re-read from the file after a failed commit.
    next_rev: Revision,
}

impl Writer {
    /// Starts the writer thread and returns its request channel.
    pub(super) fn start(
        conn: Connection,
        events: broadcast::Sender<Arc<Event>>,
    ) -> Result<Sender<Command>, StoreError> {
        let next_rev = schema::current_revision(&conn)? + 1;
        // Leases do not run while the store is down: give each a fresh TTL,
        // as etcd does on restart.
        conn.execute(
            "UPDATE leases SET expires_at_ms = ?1 + ttl * 1000",
            [now_ms()],
        )?;
        let (tx, rx) = std::sync::mpsc::channel();
        let mut writer = Writer {
            conn,
            events,
            next_rev,
        };
        std::thread::Builder::new()
            .name("nuage-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend(format!("spawn writer: {e}")))?;
        Ok(tx)
    }

    fn run(&mut self, rx: Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.apply_batch(batch);
        }
        tracing::debug!("store writer stopped");
    }

    /// Applies `batch` in one transaction, publishes its events, then
    /// answers every command. If SQLite fails the transaction, each command
    /// is tried again alone, so one failure cannot fail its neighbours, and
    /// the one that fails gets SQLite's own error.
    fn apply_batch(&mut self, batch: Vec<Command>) {
        match self.try_batch(&batch) {
            Ok((outcomes, events)) => {
                // Publish before acknowledging: a client that saw its write
                // acknowledged and then watches will find it either in the
                // table or in the live stream.
                for e in events {
                    let _ = self.events.send(Arc::new(e));
                }
                for (cmd, outcome) in batch.into_iter().zip(outcomes) {
                    cmd.answer(outcome);
                }
            }
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, size = batch.len(), "store batch failed; retrying its writes one by one");
                for cmd in batch {
                    self.apply_batch(vec![cmd]);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store write failed; rolled back");
                for cmd in batch {
                    cmd.fail(StoreError::Backend(e.to_string()));
                }
            }
        }
    }

    /// Runs `batch` in one transaction and commits it. On failure nothing is
    /// written and `next_rev` is as before.
    fn try_batch(&mut self, batch: &[Command]) -> Result<(Vec<Outcome>, Vec<Event>), StoreError> {
        let start_rev = self.next_rev;
        let mut events = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        let result = (|| -> Result<Revision, StoreError> {
            let tx = self.conn.transaction()?;
            let mut rev = start_rev;
            for cmd in batch {
                outcomes.push(apply_one(&tx, &mut rev, cmd, &mut events)?);
            }
            tx.commit()?;
            Ok(rev)
        })();
        match result {
            Ok(rev) => {
                self.next_rev = rev;
                Ok((outcomes, events))
            }
            Err(e) => {
                self.next_rev = schema::current_revision(&self.conn).unwrap_or(start_rev - 1) + 1;
                Err(e)
            }
        }
    }
}

/// Applies one command inside the batch transaction. Semantic failures
/// (conflicts, absent keys) are outcomes, not errors: they write nothing.
/// Only an SQLite failure aborts the batch.
fn apply_one(
    tx: &Transaction<'_>,
    rev: &mut Revision,
    cmd: &Command,
    events: &mut Vec<Event>,
) -> Result<Outcome, StoreError> {
    Ok(match cmd {
        Command::Create {
            key, value, lease, ..
        } => Outcome::Kv(lift(create(tx, rev, key, value, *lease, events))?),
        Command::Update {
            key,
            value,
            expected,
            lease,
            ..
        } => Outcome::Kv(lift(update(
            tx, rev, key, value, *expected, *lease, events,
        ))?),
        Command::Delete { key, expected, .. } => {
            Outcome::Kv(lift(delete(tx, rev, key, *expected, events))?)
        }
        Command::GrantLease { ttl_seconds, .. } => {
            tx.execute(
                "INSERT INTO leases (ttl, expires_at_ms) VALUES (?1, ?2)",
                params![ttl_seconds, now_ms() + ttl_seconds * 1000],
            )?;
            Outcome::Lease(Ok(tx.last_insert_rowid()))
        }
        Command::KeepAlive { lease, .. } => {
            let n = tx.execute(
                "UPDATE leases SET expires_at_ms = ?2 + ttl * 1000 WHERE id = ?1",
                params![lease, now_ms()],
            )?;
            Outcome::Unit(if n == 0 {
                Err(StoreError::LeaseNotFound(*lease))
            } else {
                Ok(())
            })
        }
        Command::RevokeLease { lease, .. } => Outcome::Unit(lift(revoke(tx, rev, *lease, events))?),
        Command::ExpireLeases { .. } => {
            let expired: Vec<LeaseId> = tx
                .prepare_cached("SELECT id FROM leases WHERE expires_at_ms <= ?1")?
                .query_map([now_ms()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for lease in expired {
                tracing::debug!(lease, "lease expired");
                if let Err(e) = lift(revoke(tx, rev, lease, events))? {
                    tracing::warn!(lease, error = %e, "expiring lease");
                }
            }
            Outcome::Unit(Ok(()))
        }
        Command::Compact { revision, .. } => Outcome::Unit(lift(compact(tx, *rev - 1, *revision))?),
    })
}

/// Splits a result into "abort the batch" (SQLite failed) and "answer the
/// caller with this".
fn lift<T>(r: Result<T, StoreError>) -> Result<Result<T, StoreError>, StoreError> {
    match r {
        Err(e @ StoreError::Sqlite(_)) => Err(e),
        other => Ok(other),
    }
}

/// The live state of `key`: its latest row, if the key exists.
fn live(tx: &Transaction<'_>, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT k.id, k.name, k.create_revision, k.lease, k.value
             FROM current c JOIN kv k ON k.id = c.id WHERE c.name = ?1",
        )?
        .query_row([key], super::row_to_kv)
        .optional()?)
}

fn check_lease(tx: &Transaction<'_>, lease: Option<LeaseId>) -> Result<(), StoreError> {
    if let Some(id) = lease {
        let found: Option<i64> = tx
            .prepare_cached("SELECT id FROM leases WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if found.is_none() {
            return Err(StoreError::LeaseNotFound(id));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_row(
    tx: &Transaction<'_>,
    id: Revision,
    key: &[u8],
    created: bool,
    deleted: bool,
    create_revision: Revision,
    prev_revision: Revision,
    lease: Option<LeaseId>,
    value: Option<&[u8]>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, lease, value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        key,
        created,
        deleted,
        create_revision,
        prev_revision,
        lease.unwrap_or(0),
        value
    ])?;
    if deleted {
        tx.prepare_cached("DELETE FROM current WHERE name = ?1")?
            .execute([key])?;
    } else {
        tx.prepare_cached(
            "INSERT INTO current (name, id, lease) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET id = excluded.id, lease = excluded.lease",
        )?
        .execute(params![key, id, lease.unwrap_or(0)])?;
    }
    Ok(())
}

fn create(
    tx: &Transaction<'_>,
    rev: &mut Revision,
    key: &str,
    value: &[u8],
    lease: Option<LeaseId>,
    events: &mut Vec<Event>,
) -> Result<KeyValue, StoreError> {
    if live(tx, key.as_bytes())?.is_some() {
        return Err(StoreError::AlreadyExists(key.to_string()));
    }
    check_lease(tx, lease)?;
    // A key created again after a delete points at its tombstone, so the
    // (name, prev_revision) uniqueness still catches a second creator.
    let tombstone: Option<i64> = tx
        .prepare_cached("SELECT MAX(id) FROM kv WHERE name = ?1")?
        .query_row([key.as_bytes()], |r| r.get(0))?;
    let id = *rev;
    insert_row(
        tx,
        id,
        key.as_bytes(),
        true,
        false,
        id,
        tombstone.unwrap_or(0),
        lease,
        Some(value),
    )?;
    *rev += 1;
    let kv = KeyValue {
        key: key.to_string(),
        value: value.to_vec(),
        create_revision: id,
        mod_revision: id,
        lease,
    };
    events.push(Event {
        kind: EventKind::Put,
        kv: kv.clone(),
        prev: None,
    });
    Ok(kv)
}

fn update(
    tx: &Transaction<'_>,
    rev: &mut Revision,
    key: &str,
    value: &[u8],
    expected: Revision,
    lease: Option<LeaseId>,
    events: &mut Vec<Event>,
) -> Result<KeyValue, StoreError> {
    let Some(prev) = live(tx, key.as_bytes())? else {
        return Err(StoreError::NotFound(key.to_string()));
    };
    if prev.mod_revision != expected {
        return Err(StoreError::Conflict {
            key: key.to_string(),
            expected,
            found: prev.mod_revision,
        });
    }
    check_lease(tx, lease)?;
    let id = *rev;
    insert_row(
        tx,
        id,
        key.as_bytes(),
        false,
        false,
        prev.create_revision,
        prev.mod_revision,
        lease,
        Some(value),
    )?;
    *rev += 1;
    let kv = KeyValue {
        key: key.to_string(),
        value: value.to_vec(),
        create_revision: prev.create_revision,
        mod_revision: id,
        lease,
    };
    events.push(Event {
        kind: EventKind::Put,
        kv: kv.clone(),
        prev: Some(prev),
    });
    Ok(kv)
}

fn delete(
    tx: &Transaction<'_>,
    rev: &mut Revision,
    key: &str,
    expected: Option<Revision>,
    events: &mut Vec<Event>,
) -> Result<KeyValue, StoreError> {
    let Some(prev) = live(tx, key.as_bytes())? else {
        return Err(StoreError::NotFound(key.to_string()));
    };
    if let Some(expected) = expected {
        if prev.mod_revision != expected {
            return Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                found: prev.mod_revision,
            });
        }
    }
    let id = *rev;
    insert_row(
        tx,
        id,
        key.as_bytes(),
        false,
        true,
        prev.create_revision,
        prev.mod_revision,
        prev.lease,
        None,
    )?;
    *rev += 1;
    let kv = KeyValue {
        mod_revision: id,
        ..prev.clone()
    };
    events.push(Event {
        kind: EventKind::Delete,
        kv: kv.clone(),
        prev: Some(prev),
    });
    Ok(kv)
}

fn revoke(
    tx: &Transaction<'_>,
    rev: &mut Revision,
    lease: LeaseId,
    events: &mut Vec<Event>,
) -> Result<(), StoreError> {
    let n = tx.execute("DELETE FROM leases WHERE id = ?1", [lease])?;
    if n == 0 {
        return Err(StoreError::LeaseNotFound(lease));
    }
    let keys: Vec<Vec<u8>> = tx
        .prepare_cached("SELECT name FROM current WHERE lease = ?1 ORDER BY name")?
        .query_map([lease], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for key in keys {
        delete(tx, rev, &String::from_utf8_lossy(&key), None, events)?;
    }
    Ok(())
}

fn compact(tx: &Transaction<'_>, current: Revision, target: Revision) -> Result<(), StoreError> {
    if target > current {
        return Err(StoreError::FutureRevision {
            requested: target,
            current,
        });
    }
    let done = schema::compacted_revision(tx)?;
    if target <= done {
        return Err(StoreError::Compacted {
            requested: target,
            compacted: done,
        });
    }
    // Keep, for each key, its newest row at or below the target (the value
    // a read at `target` sees, and the `prev` of the key's next event);
    // drop everything older, and tombstones themselves.
    tx.execute(
        "DELETE FROM kv WHERE id <= ?1 AND (deleted = 1 OR id < (
             SELECT MAX(k2.id) FROM kv k2 WHERE k2.name = kv.name AND k2.id <= ?1))",
        [target],
    )?;
    tx.execute(
        "INSERT INTO meta (k, v) VALUES ('compact_rev', ?1)
         ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        [target],
    )?;
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
