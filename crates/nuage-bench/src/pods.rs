//! Pod start figures of the node agent (issue 4), against a running server
//! with a node (`spec.nodeName` names it; there is no scheduler):
//!
//! - `serial`: N pods one after another; each is timed from just before its
//!   create is sent until a watch event shows it `Running` with its
//!   container running. The watch is opened before the first create. Each
//!   pod is deleted (grace 0) after it ran, and the next one is created only
//!   once the agent has torn it down (its directory under
//!   `AGENT_DIR/agent/pods/` is gone), so every start sees an empty node.
//! - `burst`: B pods created at once (one connection each, opened
//!   beforehand); the time until the last is Running.
//! - `idle`: I pods started and left running; then the agent's CPU time
//!   over S seconds (from `/proc/PID/stat`) as % of one core, its RSS, and a
//!   shim's RSS and PSS.
//!
//! Pods are busybox `sleep 3600` named `bp<pid>-<figure>-<i>`, labelled
//! `nuage-bench=<pid>`; every pod made is deleted before the command returns
//! (also on error).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::Notify;

use crate::args::Args;
use crate::https::{self, Api};
use crate::procfs;
use crate::stats::{figure, latency_figures};

/// How long one pod may take to be Running in `serial`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a burst may take to be all Running.
const BURST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the agent may take to tear deleted pods down.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// A pause after the idle pods are Running, before sampling: their start-up
/// work (status writes, the first probes of the pod manager) is not idle.
const SETTLE: Duration = Duration::from_secs(5);

/// When the watch first showed each pod in each state.
#[derive(Default, Clone, Copy)]
struct Seen {
    /// The ADDED event.
    added: Option<Instant>,
    /// The first MODIFIED event: the agent's first status write (nothing
    /// else writes these pods).
    first_status: Option<Instant>,
    /// Phase Running with the container running.
    running: Option<Instant>,
}

/// The pods the watch has seen, by name.
#[derive(Default)]
struct Board {
    pods: Mutex<HashMap<String, Seen>>,
    changed: Notify,
    /// Why the watch ended, if it did.
    ended: Mutex<Option<String>>,
}

impl Board {
    fn event(&self, line: &[u8]) {
        let Ok(ev) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let now = Instant::now();
        let obj = &ev["object"];
        let Some(name) = obj["metadata"]["name"].as_str() else {
            return;
        };
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let seen = pods.entry(name.to_string()).or_default();
        match ev["type"].as_str() {
            Some("ADDED") => {
                seen.added.get_or_insert(now);
            }
            Some("MODIFIED") => {
                seen.first_status.get_or_insert(now);
            }
            _ => {}
        }
        if seen.running.is_none() && is_running(obj) {
            seen.running = Some(now);
        }
        drop(pods);
        self.changed.notify_waiters();
    }

    fn get(&self, name: &str) -> Seen {
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    /// Waits until every pod in `names` is running; the error names those
    /// that are not.
    async fn wait_running(&self, names: &[String], timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let missing: Vec<&String> = names
                .iter()
                .filter(|n| self.get(n).running.is_none())
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if let Some(why) = self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Err(format!("the pod watch ended: {why}"));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(format!(
                    "{} of {} pods not Running after {timeout:?} (e.g. {})",
                    missing.len(),
                    names.len(),
                    missing[0]
                ));
            }
        }
    }
}

/// Phase Running and every container running.
fn is_running(pod: &Value) -> bool {
    let status = &pod["status"];
    status["phase"] == "Running"
        && status["containerStatuses"].as_array().is_some_and(|cs| {
            !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object())
        })
}

/// What every figure needs.
struct Bench {
    api: Api,
    ns: String,
    node: String,
    image: String,
    prefix: String,
    /// The agent's data dir: a deleted pod is torn down when its directory
    /// under `agent/pods/` is gone.
    agent_pods: PathBuf,
    board: Arc<Board>,
    /// Every pod created, for the final clean-up.
    made: Mutex<Vec<String>>,
}

impl Bench {
    fn pod(&self, name: &str) -> Vec<u8> {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"nuage-bench": std::process::id().to_string()}},
            "spec": {
                "nodeName": self.node,
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": self.image, "command": ["sleep", "3600"]}],
            },
        })
        .to_string()
        .into_bytes()
    }

    fn collection(&self) -> String {
        format!("/api/v1/namespaces/{}/pods", self.ns)
    }

    async fn create(&self, conn: &mut https::Conn, name: &str) -> Result<Value, String> {
        self.made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.to_string());
        let req = self.api.request("POST", &self.collection(), self.pod(name));
        let (status, body) = https::send(conn, req).await?;
        if status != 201 {
            return Err(format!(
                "create {name}: {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("create {name}: {e}"))
    }

    /// Deletes with grace 0 (the API removes the object at once; the agent
    /// tears the pod down when it sees the DELETED event).
    async fn delete(&self, conn: &mut https::Conn, name: &str) -> Result<(), String> {
        let path = format!("{}/{name}?gracePeriodSeconds=0", self.collection());
        let (status, body) =
            https::send(conn, self.api.request("DELETE", &path, Vec::new())).await?;
        match status {
            200 | 202 | 404 => Ok(()),
            _ => Err(format!(
                "delete {name}: {status} {}",
                String::from_utf8_lossy(&body)
            )),
        }
    }

    /// Waits until the agent has removed the pods' directories (their
    /// containers, sandboxes and mounts are gone by then).
    async fn wait_torn_down(&self, uids: &[String]) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + TEARDOWN_TIMEOUT;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tick.tick().await;
            let left = uids
                .iter()
                .filter(|u| self.agent_pods.join(u).exists())
                .count();
            if left == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{left} pods not torn down after {TEARDOWN_TIMEOUT:?}"
                ));
            }
        }
    }

    /// Creates `names` at once (one connection each, opened first) and
    /// returns when they were sent and their uids.
    async fn create_all(
        self: &Arc<Self>,
        names: &[String],
    ) -> Result<(Instant, Vec<String>), String> {
        let mut conns = Vec::new();
        for _ in names {
            conns.push(self.api.connect().await?);
        }
        let start = Arc::new(tokio::sync::Barrier::new(names.len() + 1));
        let mut tasks = Vec::new();
        for (name, mut conn) in names.iter().cloned().zip(conns) {
            let (me, start) = (Arc::clone(self), Arc::clone(&start));
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let pod = me.create(&mut conn, &name).await?;
                uid(&pod)
            }));
        }
        start.wait().await;
        let t0 = Instant::now();
        let mut uids = Vec::new();
        for t in tasks {
            uids.push(t.await.map_err(|e| e.to_string())??);
        }
        Ok((t0, uids))
    }

    /// Deletes `names` (grace 0) and waits until the agent has torn them
    /// down; returns how long that took.
    async fn delete_all(&self, names: &[String], uids: &[String]) -> Result<Duration, String> {
        let t0 = Instant::now();
        let mut conn = self.api.connect().await?;
        for name in names {
            self.delete(&mut conn, name).await?;
        }
        self.wait_torn_down(uids).await?;
        Ok(t0.elapsed())
    }

    /// The clean-up: every pod this run made, deleted (grace 0).
    async fn delete_made(&self) -> Result<(), String> {
        let made: Vec<String> = self
            .made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let mut conn = self.api.connect().await?;
        for name in &made {
            self.delete(&mut conn, name).await?;
        }
        Ok(())
    }
}

fn uid(pod: &Value) -> Result<String, String> {
    pod["metadata"]["uid"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "created pod has no uid".to_string())
}

/// Opens the watch on the node's pods (from the collection's current
/// revision) and feeds `board` from a task.
async fn open_watch(b: &Bench) -> Result<(), String> {
    let mut conn = b.api.connect().await?;
    let selector = format!("spec.nodeName%3D{}", b.node);
    let list_path = format!("{}?limit=1&fieldSelector={selector}", b.collection());
    let (status, body) =
        https::send(&mut conn, b.api.request("GET", &list_path, Vec::new())).await?;
    if status != 200 {
        return Err(format!("list pods: {status}"));
    }
    let list: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .ok_or("pod list has no resourceVersion")?;
    let path = format!(
        "{}?watch=1&resourceVersion={rv}&fieldSelector={selector}",
        b.collection()
    );
    conn.ready().await.map_err(|e| e.to_string())?;
    let resp = conn
        .send_request(b.api.request("GET", &path, Vec::new()))
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("watch pods: {}", resp.status()));
    }
    let board = Arc::clone(&b.board);
    let mut body = resp.into_body();
    tokio::spawn(async move {
        let _conn = conn;
        let mut buf: Vec<u8> = Vec::new();
        let why = loop {
            match body.frame().await {
                None => break "end of stream".to_string(),
                Some(Err(e)) => break e.to_string(),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    buf.extend_from_slice(&data);
                    while let Some(nl) = buf.iter().position(|c| *c == b'\n') {
                        board.event(&buf[..nl]);
                        buf.drain(..=nl);
                    }
                }
            }
        };
        *board.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        board.changed.notify_waiters();
    });
    Ok(())
}

/// `serial`: N pods one at a time.
async fn serial(b: &Arc<Bench>, n: usize) -> Result<(), String> {
    let mut conn = b.api.connect().await?;
    let (mut start, mut first_status, mut added, mut teardown) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let name = format!("{}-s-{i}", b.prefix);
        let t0 = Instant::now();
        let pod = b.create(&mut conn, &name).await?;
        b.board
            .wait_running(std::slice::from_ref(&name), START_TIMEOUT)
            .await?;
        let seen = b.board.get(&name);
        let since = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(t0));
        start.extend(since(seen.running));
        added.extend(since(seen.added));
        first_status.extend(since(seen.first_status));
        let uids = [uid(&pod)?];
        teardown.push(b.delete_all(std::slice::from_ref(&name), &uids).await?);
    }
    latency_figures("pod_start", &start);
    figure(
        "pod_start_p90",
        crate::stats::percentile_ms(&start, 90.0),
        "ms",
    );
    latency_figures("pod_added_event", &added);
    latency_figures("pod_first_status", &first_status);
    latency_figures("pod_teardown", &teardown);
    Ok(())
}

/// `burst`: `n` pods at once, until all are Running.
async fn burst(b: &Arc<Bench>, n: usize) -> Result<(), String> {
    let names: Vec<String> = (0..n).map(|i| format!("{}-b-{i}", b.prefix)).collect();
    let (t0, uids) = b.create_all(&names).await?;
    let acked = t0.elapsed();
    b.board.wait_running(&names, BURST_TIMEOUT).await?;
    let each: Vec<Duration> = names
        .iter()
        .filter_map(|n| b.board.get(n).running)
        .map(|t| t.saturating_duration_since(t0))
        .collect();
    let all = each.iter().max().copied().unwrap_or_default();
    figure("burst_pods", n as f64, "n");
    figure("burst_created", acked.as_secs_f64() * 1e3, "ms");
    figure("burst_all_running", all.as_secs_f64() * 1e3, "ms");
    latency_figures("burst_pod_start", &each);
    let down = b.delete_all(&names, &uids).await?;
    figure("burst_teardown_all", down.as_secs_f64() * 1e3, "ms");
    Ok(())
}

/// `idle`: `n` pods left running; the agent's CPU and memory meanwhile.
async fn idle(
    b: &Arc<Bench>,
    n: usize,
    secs: u64,
    agent_pid: Option<&str>,
    server_pid: Option<&str>,
    agent_dir: &Path,
) -> Result<(), String> {
    let names: Vec<String> = (0..n).map(|i| format!("{}-i-{i}", b.prefix)).collect();
    let (_, uids) = b.create_all(&names).await?;
    b.board.wait_running(&names, BURST_TIMEOUT).await?;
    tokio::time::sleep(SETTLE).await;
    let window = Duration::from_secs(secs);
    let cpu = |pid: Option<&str>| pid.and_then(procfs::cpu_ms);
    let (a0, s0, t0) = (cpu(agent_pid), cpu(server_pid), Instant::now());
    tokio::time::sleep(window).await;
    let (a1, s1, wall) = (cpu(agent_pid), cpu(server_pid), t0.elapsed());
    let wall_ms = wall.as_secs_f64() * 1e3;
    figure("idle_pods", n as f64, "n");
    if let (Some(a0), Some(a1)) = (a0, a1) {
        figure("idle_agent_cpu", (a1 - a0) / wall_ms * 100.0, "%core");
    }
    if let (Some(s0), Some(s1)) = (s0, s1) {
        figure("idle_server_cpu", (s1 - s0) / wall_ms * 100.0, "%core");
    }
    if let Some(pid) = agent_pid {
        if let Some(kib) = procfs::status_kib(pid, "VmRSS:") {
            figure("idle_agent_rss", kib as f64 / 1024.0, "MiB");
        }
        if let Some(kib) = procfs::status_kib(pid, "VmHWM:") {
            figure("agent_rss_peak", kib as f64 / 1024.0, "MiB");
        }
    }
    let shims = procfs::shims_under(agent_dir);
    figure("idle_shims", shims.len() as f64, "n");
    if let Some(pid) = shims.first() {
        if let Some(kib) = procfs::status_kib(pid, "VmRSS:") {
            figure("shim_rss", kib as f64 / 1024.0, "MiB");
        }
    }
    let pss: u64 = shims.iter().filter_map(|p| procfs::pss_kib(p)).sum();
    if !shims.is_empty() {
        figure(
            "shim_pss_mean",
            pss as f64 / 1024.0 / shims.len() as f64,
            "MiB",
        );
    }
    let down = b.delete_all(&names, &uids).await?;
    figure("idle_teardown_all", down.as_secs_f64() * 1e3, "ms");
    Ok(())
}

/// `pods`: the figures named by `--figures` (default all three).
pub async fn run(args: &Args) -> Result<(), String> {
    let agent_dir = PathBuf::from(args.str("agent-dir")?);
    let b = Arc::new(Bench {
        api: Api::from_dir(args.str("api")?, Path::new(args.str("dir")?))?,
        ns: args.opt("ns").unwrap_or("default").to_string(),
        node: args.str("node")?.to_string(),
        image: args.opt("image").unwrap_or("busybox:latest").to_string(),
        prefix: format!("bp{}", std::process::id()),
        agent_pods: agent_dir.join("agent").join("pods"),
        board: Arc::default(),
        made: Mutex::default(),
    });
    let figures = args
        .opt("figures")
        .unwrap_or("serial burst idle")
        .to_string();
    open_watch(&b).await?;
    let result = async {
        for f in figures.split_whitespace() {
            match f {
                "serial" => serial(&b, args.num("n", 30)?).await?,
                "burst" => burst(&b, args.num("burst", 100)?).await?,
                "idle" => {
                    idle(
                        &b,
                        args.num("idle", 50)?,
                        args.num("idle-secs", 30)?,
                        args.opt("agent-pid"),
                        args.opt("server-pid"),
                        &agent_dir,
                    )
                    .await?
                }
                other => return Err(format!("unknown figure {other:?}")),
            }
        }
        Ok(())
    }
    .await;
    // Whatever happened, no pod of this run stays (deleting one already
    // gone is a 404, which is fine).
    let cleanup = b.delete_made().await;
    result.and(cleanup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_needs_phase_and_containers() {
        let pod = |phase: &str, state: Value| serde_json::json!({"status": {"phase": phase, "containerStatuses": [{"state": state}]}});
        assert!(is_running(&pod(
            "Running",
            serde_json::json!({"running": {}})
        )));
        assert!(!is_running(&pod(
            "Running",
            serde_json::json!({"waiting": {}})
        )));
        assert!(!is_running(&pod(
            "Pending",
            serde_json::json!({"running": {}})
        )));
        assert!(!is_running(
            &serde_json::json!({"status": {"phase": "Running"}})
        ));
    }

    #[test]
    fn board_times_events() {
        let board = Board::default();
        board.event(
            br#"{"type":"ADDED","object":{"metadata":{"name":"p"},"status":{"phase":"Pending"}}}"#,
        );
        let s = board.get("p");
        assert!(s.added.is_some() && s.first_status.is_none() && s.running.is_none());
        board.event(br#"{"type":"MODIFIED","object":{"metadata":{"name":"p"},"status":{"phase":"Running","containerStatuses":[{"state":{"running":{}}}]}}}"#);
        let s = board.get("p");
        assert!(s.first_status.is_some() && s.running.is_some());
    }
}
