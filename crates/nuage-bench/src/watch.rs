//! Watch fan-out: W watchers on one collection (nuage) or key prefix
//! (etcd), then one write at a time. For each write the figure is the time
//! from just before the write is sent until the last of the W watchers has
//! received its event. Writes are numbered; every watcher finds the number in
//! the event (the object name or the key), so no event is counted twice.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::WatchOptions;
use http_body_util::BodyExt;
use tokio::sync::{Notify, Semaphore};

use crate::args::Args;
use crate::https::{self, Api};
use crate::procfs::cpu_ms;
use crate::stats::{figure, latency_figures};

/// How long one write may take to reach every watcher before the run fails.
const PER_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening all the watchers may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(120);

/// Watchers being opened at once.
const OPEN_CONCURRENCY: usize = 32;

/// The pause after a write has reached everyone, before the next one.
const GAP: Duration = Duration::from_millis(20);

/// Which watchers saw which write, and when the last one did.
struct Tally {
    base: Instant,
    seen: Vec<AtomicUsize>,
    last_ns: Vec<AtomicU64>,
    watchers: usize,
    done: Notify,
}

impl Tally {
    fn new(writes: usize, watchers: usize) -> Self {
        Self {
            base: Instant::now(),
            seen: (0..writes).map(|_| AtomicUsize::new(0)).collect(),
            last_ns: (0..writes).map(|_| AtomicU64::new(0)).collect(),
            watchers,
            done: Notify::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// A watcher received the event of write `i`.
    fn record(&self, i: usize) {
        let (Some(seen), Some(last)) = (self.seen.get(i), self.last_ns.get(i)) else {
            return;
        };
        last.fetch_max(self.now_ns(), Ordering::SeqCst);
        if seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.watchers {
            self.done.notify_waiters();
        }
    }

    /// Waits until every watcher has seen write `i`; false on timeout.
    async fn wait_all(&self, i: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.seen[i].load(Ordering::SeqCst) >= self.watchers {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// The number after `marker` in `hay` (a write's number in an event).
fn number_after(hay: &[u8], marker: &[u8]) -> Option<usize> {
    let at = hay.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let digits = hay[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&hay[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// How a fan-out run goes: warm-up writes, measured writes, and the server
/// whose CPU time per measured write is reported (`--server-pid`).
struct Plan {
    warmup: usize,
    writes: usize,
    server_pid: Option<String>,
}

impl Plan {
    fn from_args(args: &Args) -> Result<Self, String> {
        Ok(Self {
            warmup: args.num("warmup", 3)?,
            writes: args.num("writes", 50)?,
            server_pid: args.opt("server-pid").map(str::to_string),
        })
    }
}

/// Runs the writes once the watchers are open: `write(i)` must make write
/// `i` and resolve when it is acknowledged. Prints the figures.
async fn drive<F, Fut>(
    tally: &Tally,
    plan: &Plan,
    failed: &AtomicUsize,
    mut write: F,
) -> Result<(), String>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let (warmup, writes) = (plan.warmup, plan.writes);
    let mut fanout = Vec::new();
    let mut acks = Vec::new();
    let mut cpu0 = (None, None);
    for i in 0..warmup + writes {
        if i == warmup {
            cpu0 = (plan.server_pid.as_deref().and_then(cpu_ms), cpu_ms("self"));
        }
        let t0 = tally.now_ns();
        write(i).await?;
        let ack = tally.now_ns() - t0;
        if !tally.wait_all(i, PER_WRITE_TIMEOUT).await {
            return Err(format!(
                "write {i}: only {} of {} watchers saw it within {PER_WRITE_TIMEOUT:?} ({} watchers failed)",
                tally.seen[i].load(Ordering::SeqCst),
                tally.watchers,
                failed.load(Ordering::SeqCst)
            ));
        }
        if i >= warmup {
            let last = tally.last_ns[i].load(Ordering::SeqCst);
            fanout.push(Duration::from_nanos(last.saturating_sub(t0)));
            acks.push(Duration::from_nanos(ack));
        }
        tokio::time::sleep(GAP).await;
    }
    latency_figures("watch_fanout", &fanout);
    latency_figures("watch_write_ack", &acks);
    let per_write =
        |before: Option<f64>, after: Option<f64>| Some((after? - before?) / writes.max(1) as f64);
    if let Some(ms) = per_write(cpu0.0, plan.server_pid.as_deref().and_then(cpu_ms)) {
        figure("watch_server_cpu_per_write", ms, "ms");
    }
    if let Some(ms) = per_write(cpu0.1, cpu_ms("self")) {
        figure("watch_client_cpu_per_write", ms, "ms");
    }
    Ok(())
}

/// `watch-nuage`: W HTTPS connections, each with one
/// `GET /api/v1/namespaces/default/configmaps?watch=1&resourceVersion=RV`;
/// the writes create ConfigMaps `bw<pid>-<i>` (this process's id, so that
/// runs against one server do not collide).
pub async fn nuage(args: &Args) -> Result<(), String> {
    let api = Api::from_dir(args.str("api")?, Path::new(args.str("dir")?))?;
    let watchers: usize = args.num("watchers", 1000)?;
    let plan = Plan::from_args(args)?;
    let base = "/api/v1/namespaces/default/configmaps";
    let name = format!("bw{}-", std::process::id());
    let marker: Arc<str> = Arc::from(format!("\"name\":\"{name}"));

    let mut writer = api.connect().await?;
    let (status, body) = https::send(
        &mut writer,
        api.request("GET", &format!("{base}?limit=1"), Vec::new()),
    )
    .await?;
    if status != 200 {
        return Err(format!("list configmaps: {status}"));
    }
    let list: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .ok_or("list has no resourceVersion")?
        .to_string();

    let writer = Arc::new(tokio::sync::Mutex::new(writer));
    let tally = Arc::new(Tally::new(plan.warmup + plan.writes, watchers));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let (opened_tx, mut opened_rx) =
        tokio::sync::mpsc::channel::<Result<(), String>>(watchers.max(1));
    let opening = Instant::now();
    for _ in 0..watchers {
        let (api, marker, tally, failed, gate, opened) = (
            api.clone(),
            Arc::clone(&marker),
            Arc::clone(&tally),
            Arc::clone(&failed),
            Arc::clone(&gate),
            opened_tx.clone(),
        );
        let path = format!("{base}?watch=1&resourceVersion={rv}");
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let open = async {
                let mut conn = api.connect().await?;
                conn.ready().await.map_err(|e| e.to_string())?;
                let resp = conn
                    .send_request(api.request("GET", &path, Vec::new()))
                    .await
                    .map_err(|e| e.to_string())?;
                if resp.status() != 200 {
                    return Err(format!("watch: {}", resp.status()));
                }
                Ok(resp.into_body())
            };
            let mut body = match open.await {
                Ok(b) => {
                    drop(permit);
                    let _ = opened.send(Ok(())).await;
                    b
                }
                Err(e) => {
                    let _ = opened.send(Err(e)).await;
                    return;
                }
            };
            let mut buf: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buf.extend_from_slice(&data);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    if let Some(i) = number_after(&buf[..nl], marker.as_bytes()) {
                        tally.record(i);
                    }
                    buf.drain(..=nl);
                }
            }
            failed.fetch_add(1, Ordering::SeqCst);
        });
    }
    drop(opened_tx);
    wait_opened(&mut opened_rx, watchers).await?;
    figure(
        "watch_open_all",
        opening.elapsed().as_secs_f64() * 1e3,
        "ms",
    );

    drive(&tally, &plan, &failed, |i| {
        let name = name.clone();
        let req = api.request(
            "POST",
            base,
            format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}{i}"}},"data":{{"v":"{i}"}}}}"#
            )
            .into_bytes(),
        );
        let writer = Arc::clone(&writer);
        async move {
            let (status, body) = https::send(&mut *writer.lock().await, req).await?;
            if status != 201 {
                return Err(format!("create {name}{i}: {status} {}", String::from_utf8_lossy(&body)));
            }
            Ok(())
        }
    })
    .await
}

/// Waits (bounded) until `n` watchers reported that they are open.
async fn wait_opened(
    rx: &mut tokio::sync::mpsc::Receiver<Result<(), String>>,
    n: usize,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + OPEN_TIMEOUT;
    for k in 0..n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(format!("watcher {k}: {e}")),
            Ok(None) => return Err("watchers ended early".into()),
            Err(_) => {
                return Err(format!(
                    "only {k} of {n} watchers opened in {OPEN_TIMEOUT:?}"
                ))
            }
        }
    }
    Ok(())
}

/// `watch-etcd`: W gRPC watch streams on the prefix `/bench/watch/<pid>/`,
/// spread over `--conns` client connections; the writes put
/// `/bench/watch/<pid>/<i>`.
pub async fn etcd(args: &Args) -> Result<(), String> {
    let endpoint = args.str("endpoint")?;
    let watchers: usize = args.num("watchers", 1000)?;
    let plan = Plan::from_args(args)?;
    let conns: usize = args.num("conns", 10)?;
    let prefix: Arc<str> = Arc::from(format!("/bench/watch/{}/", std::process::id()));

    let mut clients = Vec::new();
    for _ in 0..conns.max(1) {
        clients.push(crate::etcd::client(endpoint).await?);
    }
    let tally = Arc::new(Tally::new(plan.warmup + plan.writes, watchers));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let (opened_tx, mut opened_rx) =
        tokio::sync::mpsc::channel::<Result<(), String>>(watchers.max(1));
    let opening = Instant::now();
    for w in 0..watchers {
        let mut wc = clients[w % clients.len()].watch_client();
        let (prefix, tally, failed, gate, opened) = (
            Arc::clone(&prefix),
            Arc::clone(&tally),
            Arc::clone(&failed),
            Arc::clone(&gate),
            opened_tx.clone(),
        );
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            // The watcher handle is kept: dropping it ends the watch.
            let (_watcher, mut stream) = match wc
                .watch(prefix.as_bytes(), Some(WatchOptions::new().with_prefix()))
                .await
            {
                Ok(pair) => {
                    drop(permit);
                    let _ = opened.send(Ok(())).await;
                    pair
                }
                Err(e) => {
                    let _ = opened.send(Err(e.to_string())).await;
                    return;
                }
            };
            while let Ok(Some(resp)) = stream.message().await {
                for ev in resp.events() {
                    if let Some(i) = ev
                        .kv()
                        .and_then(|kv| number_after(kv.key(), prefix.as_bytes()))
                    {
                        tally.record(i);
                    }
                }
            }
            failed.fetch_add(1, Ordering::SeqCst);
        });
    }
    drop(opened_tx);
    wait_opened(&mut opened_rx, watchers).await?;
    figure(
        "watch_open_all",
        opening.elapsed().as_secs_f64() * 1e3,
        "ms",
    );

    let kv = clients[0].kv_client();
    drive(&tally, &plan, &failed, |i| {
        let (mut kv, prefix) = (kv.clone(), Arc::clone(&prefix));
        async move {
            kv.put(format!("{prefix}{i}"), format!("{i}"), None)
                .await
                .map_err(|e| format!("put {prefix}{i}: {e}"))?;
            Ok(())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::number_after;

    #[test]
    fn finds_the_write_number() {
        let line =
            br#"{"object":{"metadata":{"name":"bw-42","namespace":"default"}},"type":"ADDED"}"#;
        assert_eq!(number_after(line, br#""name":"bw-"#), Some(42));
        assert_eq!(number_after(b"/bench/watch/7", b"/bench/watch/"), Some(7));
        assert_eq!(number_after(b"nothing", b"bw-"), None);
    }
}
