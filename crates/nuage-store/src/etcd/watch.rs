//! Watches: one etcd watch stream turned into the store's [`Event`]s.

use std::collections::VecDeque;

use etcd_client::{EventType, WatchOptions, WatchResponse, Watcher};
use tracing::{debug, warn};

use super::EtcdStore;
use crate::{Event, EventKind, Revision, StoreError, WatchStream};

/// Starts an etcd watch of the etcd keys `[start, end)` with every event after
/// `after`, each with its previous state.
pub(super) async fn start(
    store: EtcdStore,
    start: Vec<u8>,
    end: Vec<u8>,
    after: Revision,
) -> Result<WatchStream, StoreError> {
    let options = WatchOptions::new()
        .with_range(end)
        .with_prev_key()
        .with_start_revision(after.max(0) + 1);
    // Returns once etcd has created the watch, so a write made after this
    // returns is delivered even if `after` is in the future.
    let (watcher, stream) = store.watch.clone().watch(start, Some(options)).await?;
    debug!(watch_id = watcher.watch_id(), after, "etcd watch created");
    let state = State {
        store,
        _watcher: watcher,
        stream,
        after,
        pending: VecDeque::new(),
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(state, next)))
}

/// What a watch stream holds between two items.
struct State {
    store: EtcdStore,
    /// Holds the request side of the gRPC stream open; dropping the stream
    /// drops both sides, which cancels the watch on the server.
    _watcher: Watcher,
    stream: etcd_client::WatchStream,
    /// The revision the watch started after, for the compaction error.
    after: Revision,
    /// Converted events (or the final error) not yet handed out: one etcd
    /// response carries many events.
    pending: VecDeque<Result<Event, StoreError>>,
    /// No more responses will be read; the stream ends once `pending` is empty.
    done: bool,
}

async fn next(mut state: State) -> Option<(Result<Event, StoreError>, State)> {
    loop {
        if let Some(item) = state.pending.pop_front() {
            return Some((item, state));
        }
        if state.done {
            return None;
        }
        match state.stream.message().await {
            Ok(Some(response)) => state.absorb(&response),
            Ok(None) => state.fail(StoreError::Backend("etcd closed the watch stream".into())),
            Err(e) => state.fail(e.into()),
        }
    }
}

impl State {
    /// Queues the events of one etcd response, or the error that ends the watch.
    fn absorb(&mut self, response: &WatchResponse) {
        if response.compact_revision() != 0 {
            // etcd cancels a watch whose start revision it compacted away.
            return self.fail(StoreError::Compacted {
                requested: self.after,
                compacted: response.compact_revision(),
            });
        }
        if response.canceled() {
            return self.fail(StoreError::Backend(format!(
                "etcd canceled the watch: {}",
                response.cancel_reason()
            )));
        }
        for event in response.events() {
            match self.event(event) {
                Ok(event) => self.pending.push_back(Ok(event)),
                Err(e) => return self.fail(e),
            }
        }
    }

    /// Ends the stream with `error` after the events already queued.
    fn fail(&mut self, error: StoreError) {
        warn!(%error, "etcd watch ended");
        self.pending.push_back(Err(error));
        self.done = true;
    }

    fn event(&self, event: &etcd_client::Event) -> Result<Event, StoreError> {
        let kv = event
            .kv()
            .ok_or_else(|| StoreError::Backend("etcd watch event without a key".into()))?;
        let prev = event
            .prev_kv()
            .map(|prev| self.store.key_value(prev))
            .transpose()?;
        match event.event_type() {
            EventType::Put => Ok(Event {
                kind: EventKind::Put,
                kv: self.store.key_value(kv)?,
                prev,
            }),
            EventType::Delete => {
                // etcd's delete event holds only the key and the deletion's
                // revision; the trait wants the last value, which is `prev`.
                let mut deleted = match &prev {
                    Some(prev) => prev.clone(),
                    None => {
                        // etcd omits prev_kv when it was compacted away.
                        warn!(
                            revision = kv.mod_revision(),
                            "etcd delete event without prev_kv"
                        );
                        self.store.key_value(kv)?
                    }
                };
                deleted.mod_revision = kv.mod_revision();
                Ok(Event {
                    kind: EventKind::Delete,
                    kv: deleted,
                    prev,
                })
            }
        }
    }
}
