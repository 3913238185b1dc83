//! The store conformance suite: the specification of [`Store`], run against
//! every backend.
//!
//! Each case is one async function taking a [`Fixture`]; the `conformance!`
//! macro at the end instantiates every case once per backend, as
//! `sqlite::<case>` and `etcd::<case>`.
//!
//! Cases listed as `shared` may run in a store other tests write to at the
//! same time (etcd: one server per test binary, each test under its own root
//! prefix), so they assert revision order but not that revisions are
//! consecutive. Cases listed as `exclusive` get a store of their own (etcd: a
//! dedicated server), because they count revisions or compact, and etcd's
//! revisions and compaction are global to the server.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nuage_store::etcd::EtcdStore;
use nuage_store::sqlite::SqliteStore;
use nuage_store::{
    Event, EventKind, ListOptions, ListResult, Revision, Store, StoreError, WatchStream,
};
use nuage_testkit::etcd::{shared, unique_root, EtcdServer};
use tokio::time::{timeout, Instant};

/// How long a test waits for one watch event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a test waits for a lease to expire (etcd checks expiry every
/// 500 ms and rounds TTLs up to its minimum of 2 s).
const EXPIRY_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Fixtures

/// One store to test, and how to open it again.
struct Fixture {
    store: Arc<dyn Store>,
    /// Nothing but this test writes to the store (revisions are consecutive).
    exclusive: bool,
    backend: Backend,
}

enum Backend {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Etcd {
        endpoints: Vec<String>,
        root: String,
        /// A dedicated server (exclusive cases); `None` for the shared one.
        _server: Option<EtcdServer>,
    },
}

impl Fixture {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path).unwrap();
        Self {
            store: Arc::new(store),
            exclusive: true,
            backend: Backend::Sqlite { path, _dir: dir },
        }
    }

    async fn etcd_shared() -> Self {
        let endpoints = tokio::task::spawn_blocking(|| shared().endpoints())
            .await
            .unwrap();
        let root = unique_root("conformance");
        let store = EtcdStore::connect(&endpoints, &root).await.unwrap();
        Self {
            store: Arc::new(store),
            exclusive: false,
            backend: Backend::Etcd {
                endpoints,
                root,
                _server: None,
            },
        }
    }

    async fn etcd_exclusive() -> Self {
        let server = tokio::task::spawn_blocking(EtcdServer::start)
            .await
            .unwrap();
        let endpoints = server.endpoints();
        let root = "/nuage".to_owned();
        let store = EtcdStore::connect(&endpoints, &root).await.unwrap();
        Self {
            store: Arc::new(store),
            exclusive: true,
            backend: Backend::Etcd {
                endpoints,
                root,
                _server: Some(server),
            },
        }
    }

    /// Closes the store and opens it again from where it keeps its state:
    /// the same SQLite file, or a new connection to the same etcd and root.
    async fn reopen(self) -> Self {
        let Self {
            store,
            exclusive,
            backend,
        } = self;
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the test holds a store handle"
        );
        drop(store);
        let store: Arc<dyn Store> = match &backend {
            Backend::Sqlite { path, .. } => Arc::new(SqliteStore::open(path).unwrap()),
            Backend::Etcd {
                endpoints, root, ..
            } => Arc::new(EtcdStore::connect(endpoints, root).await.unwrap()),
        };
        Self {
            store,
            exclusive,
            backend,
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn keys(list: &ListResult) -> Vec<&str> {
    list.kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn list_at(store: &dyn Store, prefix: &str, revision: Revision) -> ListResult {
    let opts = ListOptions {
        revision: Some(revision),
        ..Default::default()
    };
    store.list(prefix, opts).await.unwrap()
}

async fn list_page(
    store: &dyn Store,
    prefix: &str,
    limit: usize,
    start_after: Option<&str>,
    revision: Option<Revision>,
) -> ListResult {
    let opts = ListOptions {
        revision,
        limit: Some(limit),
        start_after: start_after.map(str::to_owned),
    };
    store.list(prefix, opts).await.unwrap()
}

/// The next event of a watch; fails if none comes in time or the watch ends.
async fn next_event(stream: &mut WatchStream) -> Event {
    match timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

/// Writes `key` and checks it is the watch's next event: proves that no other
/// event is pending before it (an event not delivered by then never will be,
/// as events come in revision order).
async fn assert_next_is_sentinel(store: &dyn Store, stream: &mut WatchStream, key: &str) {
    let sentinel = store.create(key, v("sentinel"), None).await.unwrap();
    let event = next_event(stream).await;
    assert_eq!(event.kv, sentinel, "unexpected event before the sentinel");
}

/// Polls `condition` until it holds; fails after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        poll.tick().await;
    }
}

/// Expects a watch from `after` to fail with [`StoreError::Compacted`], either
/// at the call or as the stream's first item.
async fn assert_watch_compacted(store: &dyn Store, prefix: &str, after: Revision) -> Revision {
    let error = match store.watch(prefix, after).await {
        Err(e) => e,
        Ok(mut stream) => match timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Err(e))) => e,
            other => panic!("watch from {after} should fail, got {other:?}"),
        },
    };
    match error {
        StoreError::Compacted {
            requested,
            compacted,
        } => {
            assert_eq!(requested, after);
            compacted
        }
        e => panic!("watch from {after}: expected Compacted, got {e:?}"),
    }
}

// ---------------------------------------------------------------------------
// Cases: single keys

async fn create_then_get(f: Fixture) {
    let s = &*f.store;
    let before = s.current_revision().await.unwrap();
    let kv = s.create("/k", v("one"), None).await.unwrap();
    assert_eq!(kv.key, "/k");
    assert_eq!(kv.value, v("one"));
    assert!(kv.mod_revision > before);
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(kv.lease, None);
    assert_eq!(s.get("/k").await.unwrap(), Some(kv.clone()));
    assert!(s.current_revision().await.unwrap() >= kv.mod_revision);
    assert_eq!(s.get("/absent").await.unwrap(), None);
    // get is exact, not by prefix
    assert_eq!(s.get("/k/").await.unwrap(), None);
    assert_eq!(s.get("/").await.unwrap(), None);
}

async fn create_existing_fails(f: Fixture) {
    let s = &*f.store;
    let kv = s.create("/dup", v("first"), None).await.unwrap();
    match s.create("/dup", v("second"), None).await {
        Err(StoreError::AlreadyExists(key)) => assert_eq!(key, "/dup"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(s.get("/dup").await.unwrap(), Some(kv));
}

async fn update_checks_revision(f: Fixture) {
    let s = &*f.store;
    let created = s.create("/u", v("v1"), None).await.unwrap();
    let updated = s
        .update("/u", v("v2"), created.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(updated.key, "/u");
    assert_eq!(updated.value, v("v2"));
    assert_eq!(updated.create_revision, created.create_revision);
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(s.get("/u").await.unwrap(), Some(updated.clone()));

    match s.update("/u", v("v3"), created.mod_revision, None).await {
        Err(StoreError::Conflict {
            key,
            expected,
            found,
        }) => {
            assert_eq!(key, "/u");
            assert_eq!(expected, created.mod_revision);
            assert_eq!(found, updated.mod_revision);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get("/u").await.unwrap(), Some(updated));
}

async fn update_absent_is_not_found(f: Fixture) {
    let s = &*f.store;
    for expected in [0, 1, 1_000_000] {
        match s.update("/nothing", v("x"), expected, None).await {
            Err(StoreError::NotFound(key)) => assert_eq!(key, "/nothing"),
            other => panic!("update expecting {expected}: expected NotFound, got {other:?}"),
        }
    }
    assert_eq!(s.get("/nothing").await.unwrap(), None);

    // A deleted key is absent too, even for its last revision.
    let kv = s.create("/gone", v("x"), None).await.unwrap();
    s.delete("/gone", None).await.unwrap();
    match s.update("/gone", v("y"), kv.mod_revision, None).await {
        Err(StoreError::NotFound(key)) => assert_eq!(key, "/gone"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(s.get("/gone").await.unwrap(), None);
}

async fn delete_guarded_and_unguarded(f: Fixture) {
    let s = &*f.store;
    let a1 = s.create("/d/a", v("a1"), None).await.unwrap();
    let a2 = s
        .update("/d/a", v("a2"), a1.mod_revision, None)
        .await
        .unwrap();

    match s.delete("/d/a", Some(a1.mod_revision)).await {
        Err(StoreError::Conflict {
            key,
            expected,
            found,
        }) => {
            assert_eq!(key, "/d/a");
            assert_eq!(expected, a1.mod_revision);
            assert_eq!(found, a2.mod_revision);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get("/d/a").await.unwrap(), Some(a2.clone()));

    let deleted = s.delete("/d/a", Some(a2.mod_revision)).await.unwrap();
    assert_eq!(deleted.key, "/d/a");
    assert_eq!(deleted.value, v("a2"));
    assert_eq!(deleted.create_revision, a1.create_revision);
    assert!(deleted.mod_revision > a2.mod_revision);
    assert_eq!(s.get("/d/a").await.unwrap(), None);
    // The returned revision is the deletion's: the key exists just before it.
    let before = list_at(s, "/d/", deleted.mod_revision - 1).await;
    assert_eq!(before.kvs, vec![a2.clone()]);
    let at = list_at(s, "/d/", deleted.mod_revision).await;
    assert!(at.kvs.is_empty(), "deleted key listed: {:?}", at.kvs);

    for expected in [None, Some(a2.mod_revision)] {
        match s.delete("/d/a", expected).await {
            Err(StoreError::NotFound(key)) => assert_eq!(key, "/d/a"),
            other => panic!("delete {expected:?} of an absent key: got {other:?}"),
        }
    }

    let b = s.create("/d/b", v("b"), None).await.unwrap();
    let deleted = s.delete("/d/b", None).await.unwrap();
    assert_eq!(deleted.value, v("b"));
    assert_eq!(deleted.create_revision, b.create_revision);
    assert!(deleted.mod_revision > b.mod_revision);
    assert_eq!(s.get("/d/b").await.unwrap(), None);
}

/// Every write adds exactly one to the revision; a failed write adds nothing.
async fn revisions_increase_by_one(f: Fixture) {
    assert!(f.exclusive);
    let s = &*f.store;
    let mut expected = s.current_revision().await.unwrap();
    assert_eq!(expected, 1, "an empty store is at revision 1");

    let a = s.create("/r/a", v("1"), None).await.unwrap();
    expected += 1;
    assert_eq!(a.mod_revision, expected);
    assert_eq!(s.current_revision().await.unwrap(), expected);

    assert!(s.create("/r/a", v("again"), None).await.is_err());
    assert!(s
        .update("/r/a", v("stale"), a.mod_revision - 1, None)
        .await
        .is_err());
    assert!(s.update("/r/none", v("x"), 1, None).await.is_err());
    assert!(s.delete("/r/none", None).await.is_err());
    assert!(s.delete("/r/a", Some(a.mod_revision + 100)).await.is_err());
    assert_eq!(
        s.current_revision().await.unwrap(),
        expected,
        "failed writes"
    );

    let a2 = s
        .update("/r/a", v("2"), a.mod_revision, None)
        .await
        .unwrap();
    expected += 1;
    assert_eq!(a2.mod_revision, expected);
    let b = s.create("/r/b", v("1"), None).await.unwrap();
    expected += 1;
    assert_eq!(b.mod_revision, expected);
    let deleted = s.delete("/r/a", None).await.unwrap();
    expected += 1;
    assert_eq!(deleted.mod_revision, expected);
    // Created again: a new create revision.
    let a3 = s.create("/r/a", v("3"), None).await.unwrap();
    expected += 1;
    assert_eq!((a3.create_revision, a3.mod_revision), (expected, expected));
    assert_eq!(s.current_revision().await.unwrap(), expected);
    assert_eq!(
        s.list("", ListOptions::default()).await.unwrap().revision,
        expected
    );
}

// ---------------------------------------------------------------------------
// Cases: lists

async fn list_by_prefix(f: Fixture) {
    let s = &*f.store;
    let mut last = 0;
    for key in ["/b/1", "/a/2", "/ab/1", "/a", "/a/1", "/a/0/x"] {
        last = s.create(key, v(key), None).await.unwrap().mod_revision;
    }
    let all = s.list("", ListOptions::default()).await.unwrap();
    assert_eq!(
        keys(&all),
        ["/a", "/a/0/x", "/a/1", "/a/2", "/ab/1", "/b/1"]
    );
    assert!(all.revision >= last);
    assert!(!all.more);
    assert!(all.kvs.iter().all(|kv| kv.value == v(&kv.key)));

    let a = s.list("/a/", ListOptions::default()).await.unwrap();
    assert_eq!(
        keys(&a),
        ["/a/0/x", "/a/1", "/a/2"],
        "/a/ must not match /ab/"
    );
    assert_eq!(
        keys(&s.list("/ab/", ListOptions::default()).await.unwrap()),
        ["/ab/1"]
    );
    assert_eq!(
        keys(&s.list("/a", ListOptions::default()).await.unwrap()),
        ["/a", "/a/0/x", "/a/1", "/a/2", "/ab/1"]
    );
    assert!(s
        .list("/c/", ListOptions::default())
        .await
        .unwrap()
        .kvs
        .is_empty());
}

async fn list_paginates(f: Fixture) {
    let s = &*f.store;
    for key in ["/p/4", "/p/3", "/p/2", "/p/1", "/p/0", "/q/0", "/o"] {
        s.create(key, v(key), None).await.unwrap();
    }
    let page1 = list_page(s, "/p/", 2, None, None).await;
    assert_eq!(keys(&page1), ["/p/0", "/p/1"]);
    assert!(page1.more);

    // Continued at the first page's revision, a later create is not seen.
    s.create("/p/1a", v("/p/1a"), None).await.unwrap();
    let at = Some(page1.revision);
    let page2 = list_page(s, "/p/", 2, Some("/p/1"), at).await;
    assert_eq!(keys(&page2), ["/p/2", "/p/3"]);
    assert!(page2.more);
    assert_eq!(page2.revision, page1.revision);
    let page3 = list_page(s, "/p/", 2, Some("/p/3"), at).await;
    assert_eq!(keys(&page3), ["/p/4"]);
    assert!(!page3.more);

    let latest = ["/p/0", "/p/1", "/p/1a", "/p/2", "/p/3", "/p/4"];
    let no_limit = list_page(s, "/p/", 0, None, None).await;
    assert_eq!(keys(&no_limit), latest, "limit 0 means no limit");
    assert!(!no_limit.more);
    let exact = list_page(s, "/p/", 6, None, None).await;
    assert_eq!(keys(&exact), latest);
    assert!(!exact.more, "no more keys beyond an exact limit");
    let short = list_page(s, "/p/", 5, None, None).await;
    assert_eq!(keys(&short), latest[..5]);
    assert!(short.more);

    // start_after is a key, not necessarily one in the prefix.
    assert_eq!(
        keys(&list_page(s, "/p/", 0, Some("/a"), None).await),
        latest
    );
    assert_eq!(
        keys(&list_page(s, "/p/", 0, Some("/p/1"), None).await),
        latest[2..]
    );
    for after in ["/p/4", "/z"] {
        let rest = list_page(s, "/p/", 2, Some(after), None).await;
        assert!(rest.kvs.is_empty(), "after {after}: {:?}", rest.kvs);
        assert!(!rest.more);
    }
}

async fn list_at_old_revision(f: Fixture) {
    let s = &*f.store;
    let a1 = s.create("/o/a", v("a1"), None).await.unwrap();
    let b = s.create("/o/b", v("b"), None).await.unwrap();
    let a2 = s
        .update("/o/a", v("a2"), a1.mod_revision, None)
        .await
        .unwrap();
    let b_deleted = s.delete("/o/b", None).await.unwrap();
    let c = s.create("/o/c", v("c"), None).await.unwrap();

    let before = list_at(s, "/o/", a1.mod_revision - 1).await;
    assert!(before.kvs.is_empty());
    let at_b = list_at(s, "/o/", b.mod_revision).await;
    assert_eq!(at_b.kvs, vec![a1.clone(), b.clone()]);
    assert_eq!(at_b.revision, b.mod_revision);
    assert_eq!(
        list_at(s, "/o/", a2.mod_revision).await.kvs,
        vec![a2.clone(), b.clone()]
    );
    assert_eq!(
        list_at(s, "/o/", b_deleted.mod_revision).await.kvs,
        vec![a2.clone()]
    );
    assert_eq!(
        list_at(s, "/o/", c.mod_revision).await.kvs,
        vec![a2.clone(), c.clone()]
    );
    let latest = s.list("/o/", ListOptions::default()).await.unwrap();
    assert_eq!(latest.kvs, vec![a2, c]);

    let future = s.current_revision().await.unwrap() + 1_000_000;
    let opts = ListOptions {
        revision: Some(future),
        ..Default::default()
    };
    match s.list("/o/", opts).await {
        Err(StoreError::FutureRevision { requested, current }) => {
            assert_eq!(requested, future);
            assert!(current < future && current >= latest.revision);
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

async fn count_by_prefix(f: Fixture) {
    let s = &*f.store;
    for key in ["/c/1", "/c/2", "/c/3", "/cx/1"] {
        s.create(key, v("x"), None).await.unwrap();
    }
    assert_eq!(s.count("/c/").await.unwrap(), 3);
    assert_eq!(s.count("/c").await.unwrap(), 4);
    assert_eq!(s.count("/c/2").await.unwrap(), 1);
    assert_eq!(s.count("/none/").await.unwrap(), 0);
    s.delete("/c/2", None).await.unwrap();
    assert_eq!(s.count("/c/").await.unwrap(), 2);
}

// ---------------------------------------------------------------------------
// Cases: watches

async fn watch_replays_history(f: Fixture) {
    let s = &*f.store;
    let start = s.current_revision().await.unwrap();
    let k1 = s.create("/w/k", v("v1"), None).await.unwrap();
    let k2 = s
        .update("/w/k", v("v2"), k1.mod_revision, None)
        .await
        .unwrap();
    let deleted = s.delete("/w/k", Some(k2.mod_revision)).await.unwrap();
    let other = s.create("/w/other", v("o"), None).await.unwrap();

    let mut stream = s.watch("/w/", start).await.unwrap();
    let expected = [
        (EventKind::Put, k1.clone(), None),
        (EventKind::Put, k2.clone(), Some(k1.clone())),
        (EventKind::Delete, deleted.clone(), Some(k2.clone())),
        (EventKind::Put, other.clone(), None),
    ];
    for (kind, kv, prev) in expected {
        let event = next_event(&mut stream).await;
        assert_eq!(event.revision(), kv.mod_revision);
        assert_eq!(event, Event { kind, kv, prev });
    }
    assert_next_is_sentinel(s, &mut stream, "/w/sentinel").await;

    // From the middle: only the later events.
    let mut stream = s.watch("/w/", k2.mod_revision).await.unwrap();
    assert_eq!(next_event(&mut stream).await.kv, deleted);
    assert_eq!(next_event(&mut stream).await.kv, other);
}

async fn watch_filters_prefix(f: Fixture) {
    let s = &*f.store;
    let start = s.current_revision().await.unwrap();
    let mut stream = s.watch("/f/a/", start).await.unwrap();
    let mut wanted = Vec::new();
    for key in [
        "/f/ab/1", "/f/b/1", "/f/a/1", "/f/a", "/f/ab/2", "/f/a/2", "/f/a0",
    ] {
        let kv = s.create(key, v(key), None).await.unwrap();
        if key.starts_with("/f/a/") {
            wanted.push(kv);
        }
    }
    for kv in wanted {
        assert_eq!(next_event(&mut stream).await.kv, kv);
    }
    assert_next_is_sentinel(s, &mut stream, "/f/a/sentinel").await;
}

async fn watch_stays_live(f: Fixture) {
    let s = &*f.store;
    let start = s.current_revision().await.unwrap();
    let mut stream = s.watch("/live/", start).await.unwrap();
    let created = s.create("/live/x", v("1"), None).await.unwrap();
    let event = next_event(&mut stream).await;
    assert_eq!(
        (event.kind, event.kv, event.prev),
        (EventKind::Put, created.clone(), None)
    );
    let updated = s
        .update("/live/x", v("2"), created.mod_revision, None)
        .await
        .unwrap();
    let event = next_event(&mut stream).await;
    assert_eq!((event.kv, event.prev), (updated.clone(), Some(created)));
    let deleted = s.delete("/live/x", None).await.unwrap();
    let event = next_event(&mut stream).await;
    assert_eq!(
        (event.kind, event.kv, event.prev),
        (EventKind::Delete, deleted, Some(updated))
    );
}

/// 8 writers × 50 creates: the watcher sees each write once, in revision order.
async fn watch_orders_concurrent_writers(f: Fixture) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 50;
    let start = f.store.current_revision().await.unwrap();
    let mut stream = f.store.watch("/cw/", start).await.unwrap();

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&f.store);
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..PER_WRITER {
                let key = format!("/cw/{writer}/{i:02}");
                let kv = store
                    .create(&key, key.clone().into_bytes(), None)
                    .await
                    .unwrap();
                revisions.push(kv.mod_revision);
            }
            revisions
        }));
    }
    let mut written = BTreeSet::new();
    for task in tasks {
        for revision in task.await.unwrap() {
            assert!(written.insert(revision), "revision {revision} given twice");
        }
    }
    assert_eq!(written.len(), WRITERS * PER_WRITER);
    if f.exclusive {
        let expected: BTreeSet<_> = (start + 1..=start + written.len() as Revision).collect();
        assert_eq!(written, expected, "revisions are consecutive");
    }

    let mut seen = Vec::new();
    for _ in 0..written.len() {
        let event = next_event(&mut stream).await;
        assert_eq!(event.kind, EventKind::Put);
        assert_eq!(event.prev, None);
        assert_eq!(event.kv.value, event.kv.key.as_bytes());
        if let Some(&last) = seen.last() {
            assert!(event.revision() > last, "{} after {last}", event.revision());
        }
        seen.push(event.revision());
    }
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), written);
    assert_next_is_sentinel(&*f.store, &mut stream, "/cw/sentinel").await;
}

// ---------------------------------------------------------------------------
// Cases: compaction

async fn compaction(f: Fixture) {
    assert!(f.exclusive);
    let s = &*f.store;
    assert_eq!(s.compacted_revision().await.unwrap(), 0);
    let a1 = s.create("/z/a", v("a1"), None).await.unwrap();
    let b = s.create("/z/b", v("b"), None).await.unwrap();
    let a2 = s
        .update("/z/a", v("a2"), a1.mod_revision, None)
        .await
        .unwrap();
    let b_deleted = s.delete("/z/b", None).await.unwrap();
    let c = s.create("/z/c", v("c"), None).await.unwrap();

    let compacted = a2.mod_revision;
    s.compact(compacted).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), compacted);

    // Latest values survive.
    assert_eq!(s.get("/z/a").await.unwrap(), Some(a2.clone()));
    let latest = s.list("/z/", ListOptions::default()).await.unwrap();
    assert_eq!(latest.kvs, vec![a2.clone(), c.clone()]);

    // Below the compacted revision: Compacted, for lists and watches.
    let opts = ListOptions {
        revision: Some(compacted - 1),
        ..Default::default()
    };
    match s.list("/z/", opts).await {
        Err(StoreError::Compacted {
            requested,
            compacted: at,
        }) => assert_eq!((requested, at), (compacted - 1, compacted)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    for after in [0, a1.mod_revision, compacted - 1] {
        assert_eq!(assert_watch_compacted(s, "/z/", after).await, compacted);
    }

    // At the compacted revision itself: the state then, and the later events.
    assert_eq!(
        list_at(s, "/z/", compacted).await.kvs,
        vec![a2.clone(), b.clone()]
    );
    let mut stream = s.watch("/z/", compacted).await.unwrap();
    let event = next_event(&mut stream).await;
    assert_eq!(
        event,
        Event {
            kind: EventKind::Delete,
            kv: b_deleted,
            prev: Some(b)
        }
    );
    assert_eq!(next_event(&mut stream).await.kv, c);
    assert_next_is_sentinel(s, &mut stream, "/z/sentinel").await;
}

// ---------------------------------------------------------------------------
// Cases: leases

async fn lease_expiry_deletes_keys(f: Fixture) {
    let s = &*f.store;
    let lease = s.grant_lease(1).await.unwrap();
    let kv = s.create("/l/k", v("leased"), Some(lease)).await.unwrap();
    assert_eq!(kv.lease, Some(lease));
    assert_eq!(s.get("/l/k").await.unwrap(), Some(kv.clone()));
    let plain = s.create("/l/plain", v("plain"), None).await.unwrap();
    let mut stream = s.watch("/l/", plain.mod_revision).await.unwrap();

    wait_until("leased key expires", EXPIRY_TIMEOUT, || async {
        s.get("/l/k").await.unwrap().is_none()
    })
    .await;
    let event = next_event(&mut stream).await;
    assert_eq!(event.kind, EventKind::Delete);
    assert_eq!(event.kv.key, "/l/k");
    assert_eq!(event.kv.value, v("leased"));
    assert!(event.revision() > plain.mod_revision);
    assert_eq!(event.prev, Some(kv));
    assert_eq!(s.get("/l/plain").await.unwrap(), Some(plain));
    match s.keep_alive(lease).await {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, lease),
        other => panic!("keep_alive of an expired lease: got {other:?}"),
    }
}

async fn keep_alive_extends_lease(f: Fixture) {
    let s = &*f.store;
    let lease = s.grant_lease(1).await.unwrap();
    s.create("/ka/k", v("x"), Some(lease)).await.unwrap();
    // Renewed for well past the TTL (etcd's minimum TTL is 2 s), the key stays.
    let renew_until = Instant::now() + Duration::from_secs(5);
    // Renewal every 200 ms is the behaviour under test, not a synchronisation.
    let mut renew = tokio::time::interval(Duration::from_millis(200));
    while Instant::now() < renew_until {
        renew.tick().await;
        s.keep_alive(lease).await.unwrap();
        assert!(
            s.get("/ka/k").await.unwrap().is_some(),
            "key expired although its lease was renewed"
        );
    }
    // No longer renewed, it goes.
    wait_until("key expires once not renewed", EXPIRY_TIMEOUT, || async {
        s.get("/ka/k").await.unwrap().is_none()
    })
    .await;
}

async fn revoke_deletes_keys(f: Fixture) {
    let s = &*f.store;
    let lease = s.grant_lease(60).await.unwrap();
    let a = s.create("/rv/a", v("a"), Some(lease)).await.unwrap();
    let b = s.create("/rv/b", v("b"), Some(lease)).await.unwrap();
    let c = s.create("/rv/c", v("c"), None).await.unwrap();
    let mut stream = s.watch("/rv/", c.mod_revision).await.unwrap();

    s.revoke_lease(lease).await.unwrap();
    assert_eq!(s.get("/rv/a").await.unwrap(), None);
    assert_eq!(s.get("/rv/b").await.unwrap(), None);
    assert_eq!(s.get("/rv/c").await.unwrap(), Some(c.clone()));

    let mut events = [next_event(&mut stream).await, next_event(&mut stream).await];
    events.sort_by(|x, y| x.kv.key.cmp(&y.kv.key));
    for (event, before) in events.iter().zip([&a, &b]) {
        assert_eq!(event.kind, EventKind::Delete);
        assert_eq!(event.kv.key, before.key);
        assert_eq!(event.kv.value, before.value);
        assert!(event.revision() > c.mod_revision);
        assert_eq!(event.prev.as_ref(), Some(before));
    }
    assert_next_is_sentinel(s, &mut stream, "/rv/sentinel").await;

    for (what, result) in [
        ("revoke", s.revoke_lease(lease).await),
        ("keep_alive", s.keep_alive(lease).await),
        (
            "create",
            s.create("/rv/d", v("d"), Some(lease)).await.map(drop),
        ),
    ] {
        match result {
            Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, lease),
            other => panic!("{what} with a revoked lease: got {other:?}"),
        }
    }
    assert_eq!(s.get("/rv/d").await.unwrap(), None);
}

// ---------------------------------------------------------------------------
// Cases: durability

async fn reopen_keeps_keys_and_revision(f: Fixture) {
    let s = &*f.store;
    let a1 = s.create("/rs/a", v("a1"), None).await.unwrap();
    let a2 = s
        .update("/rs/a", v("a2"), a1.mod_revision, None)
        .await
        .unwrap();
    let b = s.create("/rs/b", v("b"), None).await.unwrap();
    s.delete("/rs/b", None).await.unwrap();
    let revision = s.current_revision().await.unwrap();

    let f = f.reopen().await;
    let s = &*f.store;
    let reopened_at = s.current_revision().await.unwrap();
    if f.exclusive {
        assert_eq!(reopened_at, revision);
    } else {
        assert!(
            reopened_at >= revision,
            "revision went back to {reopened_at}"
        );
    }
    assert_eq!(s.get("/rs/a").await.unwrap(), Some(a2.clone()));
    assert_eq!(s.get("/rs/b").await.unwrap(), None);
    // History survives too.
    assert_eq!(list_at(s, "/rs/", b.mod_revision).await.kvs, vec![a2, b]);
    let c = s.create("/rs/c", v("c"), None).await.unwrap();
    assert!(c.mod_revision > revision);
    if f.exclusive {
        assert_eq!(c.mod_revision, revision + 1);
    }
}

// ---------------------------------------------------------------------------
// Instantiation

macro_rules! conformance {
    (shared: [$($shared:ident),* $(,)?], exclusive: [$($exclusive:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $shared() {
                    super::$shared(super::Fixture::sqlite()).await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $exclusive() {
                    super::$exclusive(super::Fixture::sqlite()).await
                }
            )*
        }

        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $shared() {
                    super::$shared(super::Fixture::etcd_shared().await).await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $exclusive() {
                    super::$exclusive(super::Fixture::etcd_exclusive().await).await
                }
            )*
        }
    };
}

conformance! {
    shared: [
        create_then_get,
        create_existing_fails,
        update_checks_revision,
        update_absent_is_not_found,
        delete_guarded_and_unguarded,
        list_by_prefix,
        list_paginates,
        list_at_old_revision,
        count_by_prefix,
        watch_replays_history,
        watch_filters_prefix,
        watch_stays_live,
        lease_expiry_deletes_keys,
        keep_alive_extends_lease,
        revoke_deletes_keys,
        reopen_keeps_keys_and_revision,
    ],
    exclusive: [
        revisions_increase_by_one,
        watch_orders_concurrent_writers,
        compaction,
    ],
}
