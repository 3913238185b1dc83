//! Scheduler and controller figures (issue 5), against a running server
//! whose nodes are simulated (`nuage sim nodes --count 1000`: the control
//! plane makes their pods Running, no container starts):
//!
//! - `scale`: one ReplicaSet of N pods (10,000); the time from its create
//!   until the watch has seen every pod bound (`spec.nodeName`) and every
//!   pod Running; pods bound per second; the server's RSS (`VmRSS`, and its
//!   peak during the phase) and CPU time; then the time for the
//!   ReplicaSet scaled to zero to have no pod left.
//! - `rollout`: a Deployment of M pods (1,000) made available, then its
//!   template changed; the time until the rollout is complete as
//!   `kubectl rollout status` judges it (observedGeneration, updated =
//!   replicas = available = M).
//!
//! The pods' watch covers the bench's namespace (made if missing); every
//! object made is deleted before the command returns (also on error).
//! Each figure is printed as `name value unit`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::args::Args;
use crate::https::{self, Api};
use crate::procfs;
use crate::stats::figure;

/// Poll interval of the Deployment's status.
const POLL: Duration = Duration::from_millis(50);

/// What the watch knows of one pod.
#[derive(Default, Clone, Copy)]
struct Seen {
    added: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
    deleted: Option<Instant>,
}

/// Every pod of the namespace the watch has seen, by name.
#[derive(Default)]
struct Board {
    pods: Mutex<HashMap<String, Seen>>,
    changed: Notify,
    ended: Mutex<Option<String>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One watch line; returns the object's resourceVersion.
    fn event(&self, line: &[u8]) -> Option<String> {
        let ev: Value = serde_json::from_slice(line).ok()?;
        let now = Instant::now();
        let obj = &ev["object"];
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
        let kind = ev["type"].as_str()?;
        if kind == "BOOKMARK" {
            return rv;
        }
        let name = obj["metadata"]["name"].as_str()?;
        let mut pods = self.lock();
        let seen = pods.entry(name.to_string()).or_default();
        seen.added.get_or_insert(now);
        if seen.bound.is_none()
            && obj["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        {
            seen.bound = Some(now);
        }
        if seen.running.is_none() && is_running(obj) {
            seen.running = Some(now);
        }
        if kind == "DELETED" {
            seen.deleted.get_or_insert(now);
        }
        drop(pods);
        self.changed.notify_waiters();
        rv
    }

    /// Waits until `done` holds for the board; `what` names the wait.
    async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        mut sample: impl FnMut(),
        done: impl Fn(&HashMap<String, Seen>) -> Result<(), String>,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let state = done(&self.lock());
            let Err(missing) = state else {
                return Ok(());
            };
            if let Some(why) = self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Err(format!("the pod watch ended: {why}"));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{what}: not done after {timeout:?}: {missing}"));
            }
            // Wake at least every 100 ms to sample the server's memory.
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
            sample();
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

struct Bench {
    api: Api,
    ns: String,
    board: Arc<Board>,
    server_pid: Option<String>,
    timeout: Duration,
}

impl Bench {
    async fn call(&self, method: &str, path: &str, body: Value) -> Result<(u16, Value), String> {
        let mut conn = self.api.connect().await?;
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let mut req = self.api.request(method, path, bytes);
        if method == "PATCH" {
            req.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("application/merge-patch+json"),
            );
        }
        let (status, body) = https::send(&mut conn, req).await?;
        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, v))
    }

    async fn must(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let (status, v) = self.call(method, path, body).await?;
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err(format!("{method} {path}: {status} {v}"))
        }
    }

    fn rss_kib(&self) -> Option<u64> {
        procfs::status_kib(self.server_pid.as_deref()?, "VmRSS:")
    }

    fn cpu_ms(&self) -> Option<f64> {
        procfs::cpu_ms(self.server_pid.as_deref()?)
    }

    /// Pods (alive) whose name starts with `prefix`.
    fn live(pods: &HashMap<String, Seen>, prefix: &str) -> usize {
        pods.iter()
            .filter(|(n, s)| n.starts_with(prefix) && s.deleted.is_none())
            .count()
    }

    async fn wait_gone(&self, prefix: &str) -> Result<Duration, String> {
        let t0 = Instant::now();
        self.board
            .wait(
                &format!("pods {prefix}* deleted"),
                self.timeout,
                || {},
                |pods| match Self::live(pods, prefix) {
                    0 => Ok(()),
                    n => Err(format!("{n} left")),
                },
            )
            .await?;
        Ok(t0.elapsed())
    }
}

/// Opens the namespace's pod watch (from its current revision) and feeds
/// the board from a task, resuming after the server ends a watch.
async fn open_watch(b: &Bench) -> Result<(), String> {
    let collection = format!("/api/v1/namespaces/{}/pods", b.ns);
    let list = b
        .must("GET", &format!("{collection}?limit=1"), Value::Null)
        .await?;
    let mut rv = list["metadata"]["resourceVersion"]
        .as_str()
        .ok_or("pod list has no resourceVersion")?
        .to_string();
    let api = b.api.clone();
    let board = Arc::clone(&b.board);
    tokio::spawn(async move {
        let why = 'outer: loop {
            let path =
                format!("{collection}?watch=1&allowWatchBookmarks=true&resourceVersion={rv}");
            let mut conn = match api.connect().await {
                Ok(c) => c,
                Err(e) => break e,
            };
            if let Err(e) = conn.ready().await {
                break e.to_string();
            }
            let resp = match conn
                .send_request(api.request("GET", &path, Vec::new()))
                .await
            {
                Ok(r) => r,
                Err(e) => break e.to_string(),
            };
            if resp.status() != 200 {
                break format!("watch pods: {}", resp.status());
            }
            let mut body = resp.into_body();
            let mut buf: Vec<u8> = Vec::new();
            loop {
                match body.frame().await {
                    // The server ended this watch: resume from the last
                    // revision seen.
                    None => continue 'outer,
                    Some(Err(e)) => break 'outer e.to_string(),
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        buf.extend_from_slice(&data);
                        let mut start = 0;
                        while let Some(nl) = buf[start..].iter().position(|c| *c == b'\n') {
                            if let Some(r) = board.event(&buf[start..start + nl]) {
                                rv = r;
                            }
                            start += nl + 1;
                        }
                        buf.drain(..start);
                    }
                }
            }
        };
        *board.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        board.changed.notify_waiters();
    });
    Ok(())
}

fn template(app: &str, image: &str) -> Value {
    json!({
        "metadata": { "labels": { "app": app } },
        "spec": {
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "c", "image": image,
                "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } },
            }],
        },
    })
}

/// `scale`: a ReplicaSet of `n` pods, until all are bound and Running.
async fn scale(b: &Bench, n: usize) -> Result<(), String> {
    let app = "bench-rs";
    let path = format!("/apis/apps/v1/namespaces/{}/replicasets", b.ns);
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": { "name": app },
        "spec": {
            "replicas": n,
            "selector": { "matchLabels": { "app": app } },
            "template": template(app, "nginx:1"),
        },
    });
    let rss0 = b.rss_kib();
    let cpu0 = b.cpu_ms();
    let t0 = Instant::now();
    b.must("POST", &path, rs).await?;
    let mut peak = rss0.unwrap_or(0);
    let result = b
        .board
        .wait(
            "all pods bound and Running",
            b.timeout,
            || peak = peak.max(b.rss_kib().unwrap_or(0)),
            |pods| {
                let bound = pods.values().filter(|s| s.bound.is_some()).count();
                let running = pods.values().filter(|s| s.running.is_some()).count();
                if bound >= n && running >= n {
                    Ok(())
                } else {
                    Err(format!(
                        "{} pods, {bound} bound, {running} Running",
                        pods.len()
                    ))
                }
            },
        )
        .await;
    let wall = t0.elapsed();
    let cpu1 = b.cpu_ms();
    let rss = b.rss_kib();
    let rs_path = format!("{path}/{app}");
    if let Err(e) = result {
        let _ = scale_down_and_delete(b, &rs_path, app).await;
        return Err(e);
    }
    let pods: Vec<Seen> = b.board.lock().values().copied().collect();
    let since = |t: Instant| t.saturating_duration_since(t0).as_secs_f64() * 1e3;
    let last = |f: fn(&Seen) -> Option<Instant>| pods.iter().filter_map(f).max().map(since);
    let first = |f: fn(&Seen) -> Option<Instant>| pods.iter().filter_map(f).min().map(since);
    let all_created = last(|s| s.added).unwrap_or(f64::NAN);
    let all_bound = last(|s| s.bound).unwrap_or(f64::NAN);
    let first_bound = first(|s| s.bound).unwrap_or(f64::NAN);
    let all_running = last(|s| s.running).unwrap_or(f64::NAN);
    figure("sched_pods", n as f64, "n");
    figure("sched_all_created", all_created, "ms");
    figure("sched_first_bound", first_bound, "ms");
    figure("sched_all_bound", all_bound, "ms");
    figure("sched_all_running", all_running, "ms");
    figure("sched_pods_per_s", n as f64 / (all_bound / 1e3), "pods/s");
    figure(
        "sched_bind_window_per_s",
        n as f64 / ((all_bound - first_bound).max(1.0) / 1e3),
        "pods/s",
    );
    figure(
        "sched_created_per_s",
        n as f64 / (all_created / 1e3),
        "pods/s",
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        figure("sched_server_cpu", c1 - c0, "ms");
        figure(
            "sched_server_cpu_share",
            100.0 * (c1 - c0) / (wall.as_secs_f64() * 1e3),
            "%",
        );
    }
    // Nodes used and pods per zone are not the bench's business: the
    // scheduler's own tests check placement.
    if let Some(rss) = rss {
        figure("sched_server_rss", rss as f64, "KiB");
    }
    figure(
        "sched_server_rss_peak",
        peak.max(rss.unwrap_or(0)) as f64,
        "KiB",
    );
    let gone = scale_down_and_delete(b, &rs_path, app).await?;
    figure("sched_scale_to_zero", gone.as_secs_f64() * 1e3, "ms");
    if let Some(rss) = b.rss_kib() {
        figure("sched_server_rss_after_delete", rss as f64, "KiB");
    }
    Ok(())
}

/// Scales the owner at `path` (a ReplicaSet or Deployment) to zero, waits
/// until its pods are gone, then deletes it; returns the time from the
/// scale-down until the last pod was gone. Scaling down first keeps the
/// figure about the controller and the simulated nodes, not about the API
/// server's inline owner-reference cascade (see docs/BENCHMARKS.md).
async fn scale_down_and_delete(b: &Bench, path: &str, app: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    b.must("PATCH", path, json!({ "spec": { "replicas": 0 } }))
        .await?;
    let waited = b.wait_gone(app).await;
    let gone = t0.elapsed();
    let (status, v) = b.call("DELETE", path, Value::Null).await?;
    if !matches!(status, 200 | 202 | 404) {
        return Err(format!("delete {path}: {status} {v}"));
    }
    if waited.is_err() {
        // Leave nothing behind even if the controller did not scale down.
        delete_pods(b, app).await?;
        waited?;
    }
    Ok(gone)
}

/// Deletes the pods labelled `app` (gracefully; the simulated nodes
/// confirm it): the clean-up after a failure.
async fn delete_pods(b: &Bench, app: &str) -> Result<(), String> {
    let path = format!("/api/v1/namespaces/{}/pods?labelSelector=app%3D{app}", b.ns);
    let (status, v) = b.call("DELETE", &path, Value::Null).await?;
    if !matches!(status, 200 | 202 | 404) {
        return Err(format!("delete pods app={app}: {status} {v}"));
    }
    Ok(())
}

/// Whether the Deployment's rollout is complete (`kubectl rollout status`).
fn rollout_done(d: &Value, replicas: u64) -> Result<(), String> {
    let (m, s) = (&d["metadata"], &d["status"]);
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let done = n(&s["observedGeneration"]) >= n(&m["generation"])
        && n(&s["updatedReplicas"]) == replicas
        && n(&s["replicas"]) == replicas
        && n(&s["availableReplicas"]) == replicas;
    if done {
        Ok(())
    } else {
        Err(format!("generation {} status {s}", m["generation"]))
    }
}

async fn wait_rollout(b: &Bench, path: &str, m: u64) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        let d = b.must("GET", path, Value::Null).await?;
        match rollout_done(&d, m) {
            Ok(()) => return Ok(t0.elapsed()),
            Err(e) if t0.elapsed() > b.timeout => {
                return Err(format!(
                    "deployment not rolled out after {:?}: {e}",
                    b.timeout
                ))
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// `rollout`: a Deployment of `m` pods, then a new template.
async fn rollout(b: &Bench, m: usize) -> Result<(), String> {
    let app = "bench-deploy";
    let collection = format!("/apis/apps/v1/namespaces/{}/deployments", b.ns);
    let path = format!("{collection}/{app}");
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": app },
        "spec": {
            "replicas": m,
            "selector": { "matchLabels": { "app": app } },
            "template": template(app, "nginx:1"),
        },
    });
    b.must("POST", &collection, deploy).await?;
    let result = async {
        let first = wait_rollout(b, &path, m as u64).await?;
        figure("deploy_pods", m as f64, "n");
        figure("deploy_available", first.as_secs_f64() * 1e3, "ms");
        let t0 = Instant::now();
        let patch = json!({ "spec": { "template": { "spec": { "containers": [
            { "name": "c", "image": "nginx:2",
              "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } } },
        ] } } } });
        b.must("PATCH", &path, patch).await?;
        let _ = wait_rollout(b, &path, m as u64).await?;
        figure("deploy_rollout", t0.elapsed().as_secs_f64() * 1e3, "ms");
        Ok::<(), String>(())
    }
    .await;
    let gone = scale_down_and_delete(b, &path, app).await;
    result?;
    figure("deploy_scale_to_zero", gone?.as_secs_f64() * 1e3, "ms");
    Ok(())
}

/// `nuage-bench schedule`.
pub async fn run(args: &Args) -> Result<(), String> {
    let api = Api::from_dir(args.str("api")?, std::path::Path::new(args.str("dir")?))?;
    let ns = args.opt("ns").unwrap_or("nuage-bench-sched").to_string();
    let b = Bench {
        api,
        ns: ns.clone(),
        board: Arc::new(Board::default()),
        server_pid: args.opt("server-pid").map(str::to_string),
        timeout: Duration::from_secs(args.num("timeout-secs", 600)?),
    };
    let (status, v) = b
        .call(
            "POST",
            "/api/v1/namespaces",
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } }),
        )
        .await?;
    if !matches!(status, 201 | 409) {
        return Err(format!("create namespace {ns}: {status} {v}"));
    }
    open_watch(&b).await?;
    let figures = args.opt("figures").unwrap_or("scale rollout");
    for fig in figures.split_whitespace() {
        match fig {
            "scale" => scale(&b, args.num("pods", 10_000)?).await?,
            "rollout" => rollout(&b, args.num("rollout", 1_000)?).await?,
            other => return Err(format!("unknown figure {other:?}: scale or rollout")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_is_done_when_every_replica_is_updated_and_available() {
        let d = json!({
            "metadata": { "generation": 2 },
            "status": { "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3 },
        });
        assert!(rollout_done(&d, 3).is_ok());
        let old = json!({
            "metadata": { "generation": 2 },
            "status": { "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3 },
        });
        assert!(rollout_done(&old, 3).is_err());
        let surge = json!({
            "metadata": { "generation": 2 },
            "status": { "observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3 },
        });
        assert!(rollout_done(&surge, 3).is_err());
    }
}
