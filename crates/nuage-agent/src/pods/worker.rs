//! One task per pod: makes the pod real and keeps it so. It prepares the
//! sandbox (network, files, volumes), runs the init containers in order and
//! then the containers, restarts them per `restartPolicy` with back-off,
//! runs probes, reports status, and on deletion stops everything gracefully
//! and removes what it made.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use tokio::sync::{mpsc, watch};

use super::context::Context;
use super::events::Kind;
use super::sandbox::Sandbox;
use super::spec;
use super::status::{self, ContainerView, Current, PodView, Terminated};
use crate::probes::{self, ProbeKind, ProbeTransition};
use crate::runtime::{ContainerConfig, ContainerState, ContainerStatus, Runtime};

/// The first restart is immediate; then 10 s doubling to 5 min.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long without crashing starts its back-off over.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How soon a missing image or config is looked for again.
const RETRY: Duration = Duration::from_secs(5);

/// What the logs and exec endpoints need to know about a pod's containers.
#[derive(Default)]
pub struct Shared {
    /// name → its current attempt.
    pub containers: Mutex<BTreeMap<String, Live>>,
}

/// The current attempt of one container.
#[derive(Clone)]
pub struct Live {
    /// The runtime running it.
    pub runtime: Arc<dyn Runtime>,
    /// Its runtime id.
    pub id: String,
    /// Its log file.
    pub log: PathBuf,
    /// The previous attempt's log file.
    pub previous_log: Option<PathBuf>,
    /// True while it runs.
    pub running: watch::Receiver<bool>,
}

enum Event {
    Exited(String, ContainerStatus),
    Probe(String, String, ProbeTransition),
}

/// One container's life across attempts.
struct Run {
    spec: Container,
    init: bool,
    restart_count: i32,
    attempt: Option<Attempt>,
    last: Option<Terminated>,
    waiting: Option<(String, Option<String>)>,
    backoff: Duration,
    next_start: Option<Instant>,
    image_id: String,
    ready: bool,
    started: bool,
    probes: Vec<tokio::task::JoinHandle<()>>,
    running_tx: Option<watch::Sender<bool>>,
}

struct Attempt {
    id: String,
    /// The image's `StopSignal` (SIGTERM when it names none).
    stop_signal: i32,
    number: i32,
    started_at: i64,
    /// `Some` once it exited.
    ended: Option<Terminated>,
    log: PathBuf,
}

/// Runs `pod` until it is deleted (`pods` sends `None`, or the sender is
/// dropped on agent shutdown: then the containers keep running).
pub async fn run(ctx: Arc<Context>, mut pods: watch::Receiver<Option<Pod>>, shared: Arc<Shared>) {
    let Some(pod) = pods.borrow_and_update().clone() else {
        return;
    };
    let mut w = Worker::new(ctx, pod, shared).await;
    let (tx, mut rx) = mpsc::channel(64);
    w.events = Some(tx);
    w.adopt().await;
    loop {
        w.sync().await;
        w.publish().await;
        if w.gone {
            return;
        }
        let wake = w.next_wake();
        tokio::select! {
            changed = pods.changed() => {
                if changed.is_err() {
                    // The agent is stopping: leave the containers running;
                    // the next agent re-adopts them.
                    w.stop_probes();
                    return;
                }
                let latest = pods.borrow_and_update().clone();
                match latest {
                    Some(pod) => w.update(pod).await,
                    None => w.removed = true,
                }
            }
            Some(event) = rx.recv() => w.handle(event).await,
            _ = sleep_until(wake) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

struct Worker {
    ctx: Arc<Context>,
    pod: Pod,
    uid: String,
    runtime: Result<Arc<dyn Runtime>, String>,
    runs: Vec<Run>,
    sandbox: Option<Sandbox>,
    sandbox_error: Option<String>,
    verdict: Option<(String, String, String)>,
    start_time: i64,
    published: Option<PodStatus>,
    events: Option<mpsc::Sender<Event>>,
    shared: Arc<Shared>,
    /// Deleted from the API without grace (force delete): stop at once.
    removed: bool,
    /// Finished: everything removed.
    gone: bool,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Worker {
    async fn new(ctx: Arc<Context>, pod: Pod, shared: Arc<Shared>) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let class = spec.runtime_class_name.clone();
        let runtime = ctx.runtimes.pick(class.as_deref());
        let mut runs = Vec::new();
        for (init, c) in spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| (true, c))
            .chain(spec.containers.iter().map(|c| (false, c)))
        {
            let (restart_count, last) = status::remembered(&pod, &c.name, init);
            runs.push(Run {
                spec: c.clone(),
                init,
                restart_count,
                attempt: None,
                last,
                waiting: Some(("ContainerCreating".into(), None)),
                backoff: Duration::ZERO,
                next_start: None,
                image_id: String::new(),
                ready: false,
                started: false,
                probes: Vec::new(),
                running_tx: None,
            });
        }
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.as_second())
            .unwrap_or_else(now_secs);
        let published = pod.status.clone();
        Self {
            ctx,
            pod,
            uid,
            runtime,
            runs,
            sandbox: None,
            sandbox_error: None,
            verdict: None,
            start_time,
            published,
            events: None,
            shared,
            removed: false,
            gone: false,
        }
    }

    fn ns(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn pod_dir(&self) -> PathBuf {
        self.ctx.pods_dir.join(&self.uid)
    }

    /// Picks up containers an earlier agent started for this pod.
    async fn adopt(&mut self) {
        let Ok(runtime) = self.runtime.clone() else {
            return;
        };
        let Ok(all) = runtime.list().await else {
            return;
        };
        let mut mine: Vec<ContainerStatus> =
            all.into_iter().filter(|c| c.pod_uid == self.uid).collect();
        mine.sort_by_key(|c| attempt_of(&c.id));
        if mine.is_empty() {
            return;
        }
        // The sandbox exists (the containers use it): attach is idempotent.
        self.ensure_sandbox().await;
        for c in mine {
            let number = attempt_of(&c.id);
            let pod_dir = self.pod_dir();
            let Some(i) = self.runs.iter().position(|r| r.spec.name == c.name) else {
                let _ = runtime.remove(&c.id).await;
                continue;
            };
            let run = &mut self.runs[i];
            if run.attempt.as_ref().is_some_and(|a| a.number > number) {
                continue;
            }
            if let Some(old) = run.attempt.take() {
                // An older attempt of the same container: only the newest counts.
                let _ = runtime.remove(&old.id).await;
            }
            run.restart_count = run.restart_count.max(number);
            run.waiting = None;
            let stop_signal = run
                .spec
                .image
                .as_deref()
                .and_then(|image| self.ctx.images.resolve(image).ok().flatten())
                .map(|image| signal_number(&image.config.stop_signal))
                .unwrap_or(15);
            run.attempt = Some(Attempt {
                id: c.id.clone(),
                stop_signal,
                number,
                started_at: c.started_at,
                ended: None,
                log: log_path(&pod_dir, &c.name, number),
            });
            tracing::info!(pod = %self.uid, container = %c.name, id = %c.id, "re-adopted container");
            match c.state {
                ContainerState::Running { .. } => {
                    self.watch_exit(i, &runtime);
                    self.start_probes(i);
                }
                ContainerState::Exited { .. } => {
                    let status = c.clone();
                    self.on_exit(i, status);
                }
            }
        }
        self.sync_shared();
    }

    /// Takes a newer version of the pod. A container whose image changed
    /// (`kubectl set image`) is stopped and starts again with the new one,
    /// as the kubelet does when a container's spec hash changes.
    async fn update(&mut self, pod: Pod) {
        let containers: Vec<Container> = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            })
            .cloned()
            .collect();
        self.pod = pod;
        for i in 0..self.runs.len() {
            let Some(new) = containers.iter().find(|c| c.name == self.runs[i].spec.name) else {
                continue;
            };
            if new.image == self.runs[i].spec.image {
                continue;
            }
            self.runs[i].spec = new.clone();
            let running = self.runs[i]
                .attempt
                .as_ref()
                .is_some_and(|a| a.ended.is_none());
            if running {
                // Restart at once, not after a crash back-off.
                self.runs[i].backoff = Duration::ZERO;
                self.restart_unhealthy(i, "definition changed").await;
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        self.runs.iter().filter_map(|r| r.next_start).min()
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::Exited(id, status) => {
                if let Some(i) = self.runs.iter().position(|r| {
                    r.attempt
                        .as_ref()
                        .is_some_and(|a| a.id == id && a.ended.is_none())
                }) {
                    self.on_exit(i, status);
                }
            }
            Event::Probe(name, id, t) => self.on_probe(&name, &id, t).await,
        }
    }

    fn on_exit(&mut self, i: usize, status: ContainerStatus) {
        let policy = self.restart_policy();
        let runtime_name = self.runtime_name();
        let run = &mut self.runs[i];
        let Some(attempt) = run.attempt.as_mut() else {
            return;
        };
        let (exit_code, oom, finished_at) = match status.state {
            ContainerState::Exited {
                exit_code,
                oom_killed,
                finished_at,
            } => (exit_code, oom_killed, finished_at),
            ContainerState::Running { .. } => return,
        };
        let reason = if oom {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let ended = Terminated {
            exit_code,
            reason: reason.into(),
            message: None,
            started_at: attempt.started_at,
            finished_at,
            container_id: format!("{runtime_name}://{}", attempt.id),
        };
        let ran_for = (finished_at - attempt.started_at).max(0) as u64;
        attempt.ended = Some(ended);
        for p in run.probes.drain(..) {
            p.abort();
        }
        run.ready = false;
        run.started = false;
        if let Some(tx) = run.running_tx.take() {
            let _ = tx.send(false);
        }
        let restart = match policy.as_str() {
            "Never" => false,
            "OnFailure" => exit_code != 0,
            _ => !run.init || exit_code != 0,
        };
        if restart {
            if Duration::from_secs(ran_for) >= BACKOFF_RESET {
                run.backoff = Duration::ZERO;
            }
            run.next_start = Some(Instant::now() + run.backoff);
            run.backoff = if run.backoff.is_zero() {
                BACKOFF_START
            } else {
                (run.backoff * 2).min(BACKOFF_MAX)
            };
        } else {
            run.next_start = None;
        }
        let message = format!(
            "Container {} exited with code {exit_code} ({reason})",
            run.spec.name
        );
        let field = field_path(&run.spec.name, run.init);
        if oom {
            self.ctx
                .events
                .pod(&self.pod, Some(field), Kind::Warning, "OOMKilled", message);
        }
    }

    async fn on_probe(&mut self, name: &str, id: &str, t: ProbeTransition) {
        let Some(i) = self.runs.iter().position(|r| {
            r.spec.name == name
                && r.attempt
                    .as_ref()
                    .is_some_and(|a| a.id == id && a.ended.is_none())
        }) else {
            return;
        };
        let field = field_path(name, self.runs[i].init);
        if !t.healthy && !t.message.is_empty() {
            self.ctx.events.pod(
                &self.pod,
                Some(field.clone()),
                Kind::Warning,
                "Unhealthy",
                t.message.clone(),
            );
        }
        match t.kind {
            ProbeKind::Readiness => self.runs[i].ready = t.healthy,
            ProbeKind::Startup => {
                self.runs[i].started = t.healthy;
                if t.healthy {
                    // Readiness and liveness start once startup succeeds.
                    self.start_probes_after_startup(i);
                } else {
                    self.restart_unhealthy(i, "failed startup probe").await;
                }
            }
            ProbeKind::Liveness => {
                if !t.healthy {
                    self.restart_unhealthy(i, "failed liveness probe").await;
                }
            }
        }
    }

    /// Kills a container whose probe failed; its exit restarts it per policy.
    async fn restart_unhealthy(&mut self, i: usize, why: &str) {
        let Ok(runtime) = self.runtime.clone() else {
            return;
        };
        let grace = self.grace_seconds();
        let run = &self.runs[i];
        let Some(attempt) = run.attempt.as_ref() else {
            return;
        };
        self.ctx.events.pod(
            &self.pod,
            Some(field_path(&run.spec.name, run.init)),
            Kind::Normal,
            "Killing",
            format!("Container {} {why}, will be restarted", run.spec.name),
        );
        let id = attempt.id.clone();
        let stop_signal = attempt.stop_signal;
        let spec = run.spec.clone();
        let target = self.probe_ip();
        // Stopping can take the whole grace period: do it beside the worker.
        tokio::spawn(async move {
            stop_container(&runtime, &id, &spec, stop_signal, grace, target).await;
        });
    }

    fn grace_seconds(&self) -> u64 {
        self.pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64
    }

    fn runtime_name(&self) -> String {
        match &self.runtime {
            Ok(r) => r.version().split("://").next().unwrap_or("oci").to_string(),
            Err(_) => "oci".into(),
        }
    }

    async fn ensure_sandbox(&mut self) -> bool {
        if self.sandbox.is_some() {
            return true;
        }
        let runtime = match &self.runtime {
            Ok(r) => Arc::clone(r),
            Err(e) => {
                self.sandbox_error = Some(e.clone());
                return false;
            }
        };
        match Sandbox::create(&self.ctx, &self.pod, runtime.name() == "process").await {
            Ok(s) => {
                self.sandbox = Some(s);
                self.sandbox_error = None;
                true
            }
            Err(e) => {
                let msg = e.to_string();
                if self.sandbox_error.as_deref() != Some(&msg) {
                    let reason = if msg.starts_with("MountVolume") {
                        "FailedMount"
                    } else {
                        "FailedCreatePodSandBox"
                    };
                    self.ctx
                        .events
                        .pod(&self.pod, None, Kind::Warning, reason, msg.clone());
                }
                self.sandbox_error = Some(msg);
                false
            }
        }
    }

    /// One reconcile pass.
    async fn sync(&mut self) {
        if self.gone {
            return;
        }
        if self.removed || self.pod.metadata.deletion_timestamp.is_some() {
            self.terminate().await;
            return;
        }
        if self.verdict.is_some() {
            return;
        }
        if self
            .published
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed")
            && self.runs.iter().all(|r| r.attempt.is_none())
        {
            // Finished before this agent started: nothing to run again.
            return;
        }
        if let Err(msg) = &self.runtime {
            let msg = msg.clone();
            for r in &mut self.runs {
                r.waiting = Some(("CreateContainerConfigError".into(), Some(msg.clone())));
            }
            return;
        }
        if self.sandbox.is_none() {
            if let Some((reason, message)) = self.ctx.admit(&self.pod) {
                self.ctx
                    .events
                    .pod(&self.pod, None, Kind::Warning, &reason, message.clone());
                self.verdict = Some(("Failed".into(), reason, message));
                return;
            }
        }
        if !self.ensure_sandbox().await {
            let msg = self.sandbox_error.clone();
            for r in &mut self.runs {
                if r.attempt.is_none() {
                    r.waiting = Some(("ContainerCreating".into(), msg.clone()));
                }
            }
            // Try again soon (a configMap may appear).
            if let Some(r) = self.runs.first_mut() {
                r.next_start = Some(Instant::now() + RETRY);
            }
            return;
        }
        // Init containers, one at a time, in order.
        let n = self.runs.len();
        for i in 0..n {
            if !self.runs[i].init {
                continue;
            }
            match self.runs[i].attempt.as_ref().map(|a| a.ended.clone()) {
                Some(None) => return, // running
                Some(Some(t)) if t.exit_code == 0 => continue,
                _ => {}
            }
            self.maybe_start(i).await;
            return;
        }
        for i in 0..n {
            if self.runs[i].init {
                continue;
            }
            match self.runs[i].attempt.as_ref().map(|a| a.ended.is_some()) {
                Some(false) => continue,
                _ => self.maybe_start(i).await,
            }
        }
    }

    /// Starts container `i` if it has never run, or it exited and may
    /// restart now.
    async fn maybe_start(&mut self, i: usize) {
        let policy = self.restart_policy();
        let run = &mut self.runs[i];
        if let Some(a) = &run.attempt {
            let Some(ended) = &a.ended else { return };
            let restart = match policy.as_str() {
                "Never" => false,
                "OnFailure" => ended.exit_code != 0,
                _ => !run.init || ended.exit_code != 0,
            };
            if !restart {
                run.waiting = None;
                return;
            }
            if run.next_start.is_some_and(|t| t > Instant::now()) {
                run.waiting = Some((
                    "CrashLoopBackOff".into(),
                    Some(format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        run.backoff.as_secs().max(10) / 2 * 2,
                        run.spec.name,
                        self.pod.metadata.name.as_deref().unwrap_or_default(),
                        self.pod.metadata.namespace.as_deref().unwrap_or_default(),
                        self.uid
                    )),
                ));
                return;
            }
        } else if run.next_start.is_some_and(|t| t > Instant::now()) {
            return;
        }
        self.start(i).await;
    }

    async fn start(&mut self, i: usize) {
        let Ok(runtime) = self.runtime.clone() else {
            return;
        };
        let ctx = Arc::clone(&self.ctx);
        let pod = self.pod.clone();
        let pod_dir = self.pod_dir();
        let policy_name = self.name().to_string();
        let spec_c = self.runs[i].spec.clone();
        let field = field_path(&spec_c.name, self.runs[i].init);
        // The image.
        let never = spec_c.image_pull_policy.as_deref() == Some("Never");
        let image_ref = spec_c.image.clone().unwrap_or_default();
        let image = match ctx.images.resolve(&image_ref) {
            Ok(Some(image)) => image,
            Ok(None) => {
                let (reason, message) = if never {
                    (
                        "ErrImageNeverPull",
                        format!("Container image \"{image_ref}\" is not present with pull policy of Never"),
                    )
                } else {
                    (
                        "ErrImagePull",
                        format!(
                            "image \"{image_ref}\" is not in this node's image store and pulling from registries is not supported yet: import it with `nuage image import FILE`"
                        ),
                    )
                };
                self.fail_to_start(i, reason, message, field);
                return;
            }
            Err(e) => {
                self.fail_to_start(i, "InvalidImageName", format!("{image_ref:?}: {e}"), field);
                return;
            }
        };
        if run_is_first_try(&self.runs[i]) {
            self.ctx.events.pod(
                &self.pod,
                Some(field.clone()),
                Kind::Normal,
                "Pulled",
                format!("Container image \"{image_ref}\" already present on machine"),
            );
        }
        let env = match spec::environment(&ctx.client, &pod, &spec_c, &image.config).await {
            Ok(env) => env,
            Err(e) => {
                self.fail_to_start(i, "CreateContainerConfigError", e.0, field);
                return;
            }
        };
        let sandbox = self.sandbox.as_ref().expect("sandbox exists");
        let mounts = match sandbox.mounts_for(&spec_c) {
            Ok(m) => m,
            Err(e) => {
                self.fail_to_start(i, "CreateContainerConfigError", e, field);
                return;
            }
        };
        let run = &mut self.runs[i];
        let number = match &run.attempt {
            Some(a) => a.number + 1,
            None => run.restart_count,
        };
        let id = container_id(&self.uid, &spec_c.name, number);
        let log = log_path(&pod_dir, &spec_c.name, number);
        if let Some(parent) = log.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let working_dir = spec_c
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| image.config.working_dir.clone());
        let config = ContainerConfig {
            id: id.clone(),
            pod_uid: self.uid.clone(),
            name: spec_c.name.clone(),
            argv: spec::argv(&spec_c, &image.config, &env),
            user: spec::user(&pod, &spec_c, &image),
            image: image.clone(),
            env,
            working_dir,
            hostname: policy_name,
            mounts,
            resources: spec::resources(&spec_c),
            netns: sandbox.netns.clone(),
            log_path: log.clone(),
            work_dir: pod_dir.join("containers").join(&id),
        };
        if config.argv.is_empty() {
            self.fail_to_start(
                i,
                "CreateContainerConfigError",
                "no command specified: the image has no entrypoint or cmd and the container no command".into(),
                field,
            );
            return;
        }
        let previous = run.attempt.take();
        if let Some(prev) = &previous {
            if let Some(ended) = &prev.ended {
                run.last = Some(ended.clone());
            }
        }
        run.image_id = image.id.clone();
        let started = runtime.start(&config).await;
        if started.is_ok() {
            self.ctx.events.pod(
                &self.pod,
                Some(field.clone()),
                Kind::Normal,
                "Created",
                format!("Created container {}", spec_c.name),
            );
        }
        let run = &mut self.runs[i];
        if let Some(prev) = previous {
            // Keep one dead attempt (its log stays for --previous); remove
            // the container itself.
            let _ = runtime.remove(&prev.id).await;
            if prev.number > 0 {
                let _ = std::fs::remove_file(log_path(&pod_dir, &spec_c.name, prev.number - 1));
            }
        }
        run.restart_count = number;
        match started {
            Ok(status) => {
                run.waiting = None;
                run.attempt = Some(Attempt {
                    id: id.clone(),
                    stop_signal: signal_number(&image.config.stop_signal),
                    number,
                    started_at: status.started_at,
                    ended: None,
                    log,
                });
                run.next_start = None;
                self.ctx.events.pod(
                    &self.pod,
                    Some(field.clone()),
                    Kind::Normal,
                    "Started",
                    format!("Started container {}", spec_c.name),
                );
                self.watch_exit(i, &runtime);
                self.start_probes(i);
                // The pod's status can show the container running at once.
                if let ContainerState::Exited { .. } = status.state {
                    self.on_exit(i, status);
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                self.ctx.events.pod(
                    &self.pod,
                    Some(field),
                    Kind::Warning,
                    "Failed",
                    format!("Error: {message}"),
                );
                let now = now_secs();
                run.attempt = Some(Attempt {
                    id: id.clone(),
                    stop_signal: signal_number(&image.config.stop_signal),
                    number,
                    started_at: now,
                    ended: None,
                    log,
                });
                let failed = ContainerStatus {
                    id,
                    pod_uid: self.uid.clone(),
                    name: spec_c.name.clone(),
                    state: ContainerState::Exited {
                        exit_code: 128,
                        oom_killed: false,
                        finished_at: now,
                    },
                    started_at: now,
                };
                self.on_exit(i, failed);
                if let Some(a) = self.runs[i].attempt.as_mut() {
                    if let Some(t) = a.ended.as_mut() {
                        t.reason = "StartError".into();
                        t.message = Some(message);
                    }
                }
            }
        }
        self.sync_shared();
    }

    fn fail_to_start(&mut self, i: usize, reason: &str, message: String, field: String) {
        let run = &mut self.runs[i];
        let repeated = run
            .waiting
            .as_ref()
            .is_some_and(|(r, m)| r == reason && m.as_deref() == Some(&message));
        if !repeated {
            self.ctx.events.pod(
                &self.pod,
                Some(field),
                Kind::Warning,
                "Failed",
                format!("Error: {message}"),
            );
        }
        let reason = if repeated && reason == "ErrImagePull" {
            "ImagePullBackOff"
        } else {
            reason
        };
        run.waiting = Some((reason.to_string(), Some(message)));
        run.next_start = Some(Instant::now() + RETRY);
    }

    fn watch_exit(&mut self, i: usize, runtime: &Arc<dyn Runtime>) {
        let Some(id) = self.runs[i].attempt.as_ref().map(|a| a.id.clone()) else {
            return;
        };
        let (tx, _) = watch::channel(true);
        self.runs[i].running_tx = Some(tx);
        let runtime = Arc::clone(runtime);
        let Some(events) = self.events.clone() else {
            return;
        };
        tokio::spawn(async move {
            loop {
                match runtime.wait(&id).await {
                    Ok(status) => {
                        let _ = events.send(Event::Exited(id, status)).await;
                        return;
                    }
                    Err(e) => {
                        // Removed meanwhile (the pod is being torn down), or
                        // the worker is gone: nobody needs the answer.
                        if events.is_closed() || matches!(runtime.status(&id).await, Ok(None)) {
                            return;
                        }
                        tracing::warn!(container = %id, error = %format!("{e:#}"), "wait failed; retrying");
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        tick.tick().await;
                        tick.tick().await;
                    }
                }
            }
        });
    }

    fn probe_ip(&self) -> Option<std::net::IpAddr> {
        self.sandbox.as_ref().map(|s| std::net::IpAddr::V4(s.ip))
    }

    fn start_probes(&mut self, i: usize) {
        let run = &mut self.runs[i];
        run.ready = run.spec.readiness_probe.is_none();
        run.started = run.spec.startup_probe.is_none();
        if run.spec.startup_probe.is_some() {
            self.spawn_probe(i, ProbeKind::Startup);
        } else {
            self.start_probes_after_startup(i);
        }
    }

    fn start_probes_after_startup(&mut self, i: usize) {
        if self.runs[i].spec.liveness_probe.is_some() {
            self.spawn_probe(i, ProbeKind::Liveness);
        }
        if self.runs[i].spec.readiness_probe.is_some() {
            self.spawn_probe(i, ProbeKind::Readiness);
        }
    }

    fn spawn_probe(&mut self, i: usize, kind: ProbeKind) {
        let (Ok(runtime), Some(ip), Some(events)) =
            (self.runtime.clone(), self.probe_ip(), self.events.clone())
        else {
            return;
        };
        let run = &mut self.runs[i];
        let Some(attempt) = run.attempt.as_ref() else {
            return;
        };
        let probe = match kind {
            ProbeKind::Liveness => run.spec.liveness_probe.clone(),
            ProbeKind::Readiness => run.spec.readiness_probe.clone(),
            ProbeKind::Startup => run.spec.startup_probe.clone(),
        };
        let Some(probe) = probe else { return };
        let target = probes::OwnedProbeTarget {
            pod_ip: ip,
            container: run.spec.clone(),
            runtime,
            container_id: attempt.id.clone(),
        };
        let (tx, mut rx) = mpsc::channel(4);
        let name = run.spec.name.clone();
        let id = attempt.id.clone();
        let prober = tokio::spawn(probes::run(kind, probe, target, tx));
        let forward = tokio::spawn(async move {
            while let Some(t) = rx.recv().await {
                if events
                    .send(Event::Probe(name.clone(), id.clone(), t))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        run.probes.push(prober);
        run.probes.push(forward);
    }

    fn stop_probes(&mut self) {
        for r in &mut self.runs {
            for p in r.probes.drain(..) {
                p.abort();
            }
        }
    }

    /// Publishes the containers' current attempts for logs and exec.
    fn sync_shared(&self) {
        let Ok(runtime) = &self.runtime else { return };
        let mut map = self
            .shared
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for r in &self.runs {
            let Some(a) = &r.attempt else { continue };
            let running = match &r.running_tx {
                Some(tx) => tx.subscribe(),
                None => watch::channel(false).1,
            };
            let previous_log =
                (a.number > 0).then(|| log_path(&self.pod_dir(), &r.spec.name, a.number - 1));
            map.insert(
                r.spec.name.clone(),
                Live {
                    runtime: Arc::clone(runtime),
                    id: a.id.clone(),
                    log: a.log.clone(),
                    previous_log: previous_log.filter(|p| p.exists()),
                    running,
                },
            );
        }
    }

    /// Stops every container (preStop, SIGTERM, grace, SIGKILL), removes
    /// the sandbox, and finalizes the pod's deletion.
    async fn terminate(&mut self) {
        self.stop_probes();
        let grace = if self.removed {
            0
        } else {
            self.grace_seconds()
        };
        if let Ok(runtime) = self.runtime.clone() {
            let mut stops = Vec::new();
            for r in &self.runs {
                let Some(a) = &r.attempt else { continue };
                let runtime = Arc::clone(&runtime);
                let id = a.id.clone();
                let spec = r.spec.clone();
                let running = a.ended.is_none();
                let signal = a.stop_signal;
                let ip = self.probe_ip();
                if running {
                    self.ctx.events.pod(
                        &self.pod,
                        Some(field_path(&r.spec.name, r.init)),
                        Kind::Normal,
                        "Killing",
                        format!("Stopping container {}", r.spec.name),
                    );
                }
                stops.push(tokio::spawn(async move {
                    if running {
                        stop_container(&runtime, &id, &spec, signal, grace, ip).await;
                    }
                    if let Err(e) = runtime.remove(&id).await {
                        tracing::warn!(container = %id, error = %format!("{e:#}"), "remove failed");
                    }
                }));
            }
            for s in stops {
                let _ = s.await;
            }
        }
        if let Some(s) = self.sandbox.take() {
            s.destroy(&self.ctx).await;
        } else {
            Sandbox::destroy_by_uid(&self.ctx, &self.uid).await;
        }
        let _ = std::fs::remove_dir_all(self.pod_dir());
        self.shared
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        if !self.removed {
            let ns = self.ns().to_string();
            let name = self.name().to_string();
            if let Err(e) = self
                .ctx
                .client
                .delete::<Pod>(Some(&ns), &name, Some(0), Some(&self.uid))
                .await
            {
                tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "final delete failed");
            }
        }
        self.gone = true;
    }

    /// Writes the pod's status when it changed.
    async fn publish(&mut self) {
        if self.gone {
            return;
        }
        let view = self.view();
        let status = status::build(&view, self.published.as_ref());
        if self
            .published
            .as_ref()
            .is_some_and(|p| same_status(p, &status))
        {
            return;
        }
        let ns = self.ns().to_string();
        let name = self.name().to_string();
        match self
            .ctx
            .client
            .merge_patch::<Pod>(Some(&ns), &name, "/status", &status::patch(&status))
            .await
        {
            Ok(pod) => self.published = pod.status,
            Err(e) if e.is_not_found() => self.removed = true,
            Err(e) => {
                tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "status update failed")
            }
        }
    }

    fn view(&self) -> PodView {
        let rt = self.runtime_name();
        let views: Vec<(bool, ContainerView)> = self
            .runs
            .iter()
            .map(|r| {
                let current = match (&r.attempt, &r.waiting) {
                    (_, Some((reason, message)))
                        if r.attempt.as_ref().is_none_or(|a| a.ended.is_some()) =>
                    {
                        Current::Waiting {
                            reason: reason.clone(),
                            message: message.clone(),
                        }
                    }
                    (Some(a), _) => match &a.ended {
                        None => Current::Running {
                            started_at: a.started_at,
                            container_id: format!("{rt}://{}", a.id),
                        },
                        // Ended and waiting for its restart.
                        Some(_) if r.next_start.is_some() => Current::Waiting {
                            reason: "CrashLoopBackOff".into(),
                            message: None,
                        },
                        Some(t) => Current::Terminated(t.clone()),
                    },
                    (None, _) => Current::Waiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    },
                };
                // While waiting to restart, the attempt that just ended is
                // the last state.
                let last = match (&current, &r.attempt) {
                    (Current::Waiting { .. }, Some(a)) if a.ended.is_some() => a.ended.clone(),
                    _ => r.last.clone(),
                };
                (
                    r.init,
                    ContainerView {
                        name: r.spec.name.clone(),
                        image: r.spec.image.clone().unwrap_or_default(),
                        image_id: r.image_id.clone(),
                        current,
                        last,
                        restart_count: r.restart_count,
                        ready: r.ready,
                        started: r.started,
                    },
                )
            })
            .collect();
        let initialized = self.runs.iter().filter(|r| r.init).all(|r| {
            r.attempt
                .as_ref()
                .and_then(|a| a.ended.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        });
        PodView {
            init: views
                .iter()
                .filter(|(i, _)| *i)
                .map(|(_, v)| v.clone())
                .collect(),
            containers: views
                .iter()
                .filter(|(i, _)| !*i)
                .map(|(_, v)| v.clone())
                .collect(),
            initialized,
            pod_ip: self.sandbox.as_ref().map(|s| s.ip.to_string()),
            host_ip: self.ctx.host_ip.clone(),
            start_time: self.start_time,
            verdict: self.verdict.clone(),
            restart_policy: self.restart_policy(),
        }
    }
}

/// True before a container's first attempt (the image event is said once).
fn run_is_first_try(run: &Run) -> bool {
    run.attempt.is_none()
        && run
            .waiting
            .as_ref()
            .is_none_or(|(r, _)| r == "ContainerCreating")
}

/// Equal but for condition times that the builder carried over anyway.
fn same_status(a: &PodStatus, b: &PodStatus) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// `spec.containers{web}` / `spec.initContainers{init}` for events.
fn field_path(name: &str, init: bool) -> String {
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// The runtime id of one attempt: short, unique per node, and parseable
/// back to its attempt number.
pub fn container_id(pod_uid: &str, name: &str, attempt: i32) -> String {
    let short: String = pod_uid.chars().filter(|c| *c != '-').take(12).collect();
    format!("{short}-{name}-{attempt}")
}

fn attempt_of(id: &str) -> i32 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `<pod dir>/logs/<container>/<attempt>.log`.
pub fn log_path(pod_dir: &std::path::Path, name: &str, attempt: i32) -> PathBuf {
    pod_dir
        .join("logs")
        .join(name)
        .join(format!("{attempt}.log"))
}

/// A signal number from an image's `StopSignal` (`SIGQUIT`, `QUIT`, `3`);
/// SIGTERM when absent or unknown.
fn signal_number(name: &str) -> i32 {
    const NAMES: [(&str, i32); 12] = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("KILL", 9),
        ("USR1", 10),
        ("USR2", 12),
        ("TERM", 15),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("WINCH", 28),
        ("PWR", 30),
    ];
    let name = name.trim();
    if let Ok(n) = name.parse::<i32>() {
        return if (1..=64).contains(&n) { n } else { 15 };
    }
    let bare = name.strip_prefix("SIG").unwrap_or(name);
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(bare))
        .map(|(_, v)| *v)
        .unwrap_or(15)
}

/// preStop, then the stop signal, then SIGKILL after the grace period.
async fn stop_container(
    runtime: &Arc<dyn Runtime>,
    id: &str,
    spec: &Container,
    signal: i32,
    grace: u64,
    ip: Option<std::net::IpAddr>,
) {
    let deadline = Instant::now() + Duration::from_secs(grace);
    if grace > 0 {
        if let Some(handler) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
            if let Some(ip) = ip {
                let probe = k8s_openapi::api::core::v1::Probe {
                    exec: handler.exec.clone(),
                    http_get: handler.http_get.clone(),
                    tcp_socket: handler.tcp_socket.clone(),
                    timeout_seconds: Some(grace as i32),
                    ..Default::default()
                };
                let target = probes::ProbeTarget {
                    pod_ip: ip,
                    container: spec,
                    runtime: runtime.as_ref(),
                    container_id: id,
                };
                let hook = probes::probe_once(&probe, &target);
                let _ = tokio::time::timeout_at(deadline.into(), hook).await;
            }
            if let Some(sleep) = &handler.sleep {
                let pause = Duration::from_secs(sleep.seconds.max(0) as u64);
                let _ = tokio::time::timeout_at(deadline.into(), tokio::time::sleep(pause)).await;
            }
        }
    }
    if grace > 0 {
        if let Err(e) = runtime.kill(id, signal).await {
            tracing::debug!(container = %id, error = %format!("{e:#}"), "stop signal failed");
        }
        if tokio::time::timeout_at(deadline.into(), runtime.wait(id))
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = runtime.kill(id, 9).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), runtime.wait(id)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_by_name_or_number() {
        assert_eq!(signal_number(""), 15);
        assert_eq!(signal_number("SIGQUIT"), 3);
        assert_eq!(signal_number("quit"), 3);
        assert_eq!(signal_number("9"), 9);
        assert_eq!(signal_number("SIGBOGUS"), 15);
        assert_eq!(
            container_id("0123-4567-89ab-cdef-0000", "web", 3),
            "0123456789ab-web-3"
        );
        assert_eq!(attempt_of("0123456789ab-web-3"), 3);
    }
}
