//! Watches: replay history from the table, then follow the live stream.
//!
//! A watcher subscribes to the writer's broadcast *before* reading the
//! table, so every event is either in what it read or in what it receives;
//! events it already read (revision ≤ the last one delivered) are skipped. A
//! watcher that falls behind the broadcast buffer reads the gap from the table.

use std::sync::Arc;

use rusqlite::params;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{prefix_end, schema, Inner};
use crate::{Event, EventKind, KeyValue, Revision, StoreError, WatchStream};

/// Rows read from the table per query while catching up.
const REPLAY_BATCH: usize = 1000;

/// Events buffered per watcher before the watcher task waits for its reader.
const WATCHER_BUFFER: usize = 256;

pub(super) async fn start(
    inner: Arc<Inner>,
    prefix: String,
    after: Revision,
) -> Result<WatchStream, StoreError> {
    let live = inner.events.subscribe();
    let compacted = inner.read(|c| schema::compacted_revision(c)).await?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
    tokio::spawn(follow(inner, prefix, after, live, tx));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

type Out = mpsc::Sender<Result<Event, StoreError>>;

async fn follow(
    inner: Arc<Inner>,
    prefix: String,
    after: Revision,
    mut live: broadcast::Receiver<Arc<Event>>,
    tx: Out,
) {
    let mut last = after;
    if !catch_up(&inner, &prefix, &mut last, &tx).await {
        return;
    }
    loop {
        let received = tokio::select! {
            r = live.recv() => r,
            () = tx.closed() => return,
        };
        match received {
            Ok(event) => {
                if event.revision() <= last {
                    continue;
                }
                last = event.revision();
                if event.kv.key.starts_with(&prefix)
                    && tx.send(Ok(Event::clone(&event))).await.is_err()
                {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if !catch_up(&inner, &prefix, &mut last, &tx).await {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends every stored event after `*last` and advances `*last` to the
/// revision the table was read at. Returns false when the watch is over.
async fn catch_up(inner: &Arc<Inner>, prefix: &str, last: &mut Revision, tx: &Out) -> bool {
    loop {
        let (p, from) = (prefix.to_string(), *last);
        let read = inner.read(move |c| replay(c, &p, from)).await;
        let (events, read_at) = match read {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return false;
            }
        };
        let full = events.len() == REPLAY_BATCH;
        for e in events {
            *last = e.revision();
            if tx.send(Ok(e)).await.is_err() {
                return false;
            }
        }
        if !full {
            *last = (*last).max(read_at);
            return true;
        }
    }
}

/// Events for keys under `prefix` after revision `after`, oldest first, and
/// the revision the read saw.
fn replay(
    conn: &mut rusqlite::Connection,
    prefix: &str,
    after: Revision,
) -> Result<(Vec<Event>, Revision), StoreError> {
    let tx = conn.transaction()?;
    let read_at = schema::current_revision(&tx)?;
    let compacted = schema::compacted_revision(&tx)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let lower = prefix.as_bytes().to_vec();
    let upper = prefix_end(&lower).unwrap_or_else(|| vec![0xff; 512]);
    let mut stmt = tx.prepare_cached(
        "SELECT k.id, k.name, k.created, k.deleted, k.create_revision, k.lease, k.value,
                p.id AS p_id, p.create_revision AS p_create, p.lease AS p_lease, p.value AS p_value
         FROM kv k LEFT JOIN kv p ON p.id = k.prev_revision AND k.created = 0
         WHERE k.id > ?1 AND k.id <= ?4 AND k.name >= ?2 AND k.name < ?3
         ORDER BY k.id LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![after, lower, upper, read_at, REPLAY_BATCH as i64],
        |row| {
            let key: Vec<u8> = row.get("name")?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let id: i64 = row.get("id")?;
            let deleted: bool = row.get("deleted")?;
            let prev = match row.get::<_, Option<i64>>("p_id")? {
                Some(p_id) => {
                    let lease: i64 = row.get("p_lease")?;
                    Some(KeyValue {
                        key: key.clone(),
                        value: row
                            .get::<_, Option<Vec<u8>>>("p_value")?
                            .unwrap_or_default(),
                        create_revision: row.get("p_create")?,
                        mod_revision: p_id,
                        lease: (lease != 0).then_some(lease),
                    })
                }
                None => None,
            };
            let lease: i64 = row.get("lease")?;
            let event = if deleted {
                let base = prev.clone().unwrap_or(KeyValue {
                    key: key.clone(),
                    value: Vec::new(),
                    create_revision: row.get("create_revision")?,
                    mod_revision: id,
                    lease: None,
                });
                Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        mod_revision: id,
                        ..base
                    },
                    prev,
                }
            } else {
                Event {
                    kind: EventKind::Put,
                    kv: KeyValue {
                        key,
                        value: row.get::<_, Option<Vec<u8>>>("value")?.unwrap_or_default(),
                        create_revision: row.get("create_revision")?,
                        mod_revision: id,
                        lease: (lease != 0).then_some(lease),
                    },
                    prev,
                }
            };
            Ok(event)
        },
    )?;
    let events = rows.collect::<Result<Vec<_>, _>>()?;
    Ok((events, read_at))
}
