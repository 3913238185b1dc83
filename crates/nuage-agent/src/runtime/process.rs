//! The `process` runtime: the container's command as a plain host process
//! under a `nuage shim`, with no isolation and the host's network. For
//! machines without root or without a working OCI runtime.
//!
//! The image still matters: an absolute argv\[0\] or working directory that
//! exists in the image's unpacked layers (top-most first) is used from
//! there, so `/bin/sh` of a busybox image runs `<layer>/bin/sh`. Otherwise
//! the command comes from the host's PATH. The process leads its own
//! process group, which `kill` signals as a whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::exec::KillTarget;
use super::state::{Launch, ShimSpec};
use super::supervise::Supervisor;
use super::{
    ContainerConfig, ContainerState, ContainerStats, ContainerStatus, ExecSession, ExecSpec,
    Runtime,
};
use crate::runtime::oci::RuntimeOptions;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SHIM_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Containers as host processes.
pub struct ProcessRuntime {
    containers: Supervisor,
}

impl ProcessRuntime {
    /// Opens the state directory (`engine` and `engine_root` are ignored).
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Self> {
        Ok(Self {
            containers: Supervisor::new(options.state_dir, options.shim_exe)?,
        })
    }

    fn running_pid(&self, id: &str) -> anyhow::Result<Option<u32>> {
        let status = self
            .containers
            .status(id)?
            .with_context(|| format!("no container {id}"))?;
        Ok(match status.state {
            ContainerState::Running { pid } => Some(pid),
            ContainerState::Exited { .. } => None,
        })
    }

    fn signal_group(pid: u32, signal: i32) -> anyhow::Result<()> {
        let sig = rustix::process::Signal::from_named_raw(signal)
            .with_context(|| format!("{signal} is not a signal"))?;
        let pid = rustix::process::Pid::from_raw(pid as i32).context("bad pid")?;
        match rustix::process::kill_process_group(pid, sig) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e).context("kill"),
        }
    }
}

/// The environment, later entries winning, with a PATH.
fn environment(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        match out.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    out
}

/// `path` inside the top-most layer that has it.
fn in_layers(layers: &[PathBuf], path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return None;
    }
    layers
        .iter()
        .rev()
        .map(|l| l.join(rel))
        .find(|p| p.symlink_metadata().is_ok())
}

/// argv\[0\] as a host path: from the image's layers when it is there.
fn resolve_program(layers: &[PathBuf], program: &str, path_var: &str) -> String {
    if program.starts_with('/') {
        return in_layers(layers, program)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.to_string());
    }
    if !program.contains('/') {
        for dir in path_var.split(':').filter(|d| d.starts_with('/')) {
            if let Some(p) = in_layers(layers, &format!("{dir}/{program}")) {
                return p.to_string_lossy().into_owned();
            }
        }
    }
    // Left to the host's PATH (the spawn searches the child's PATH).
    program.to_string()
}

/// The working directory on the host: in the image if it is there, else
/// under the container's work dir (created).
fn resolve_cwd(layers: &[PathBuf], working_dir: &str, work_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(p) = in_layers(layers, working_dir).filter(|p| p.is_dir()) {
        return Ok(p);
    }
    let dir = work_dir
        .join("root")
        .join(working_dir.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

#[async_trait::async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &str {
        "process"
    }

    fn version(&self) -> String {
        format!("process://{}", env!("CARGO_PKG_VERSION"))
    }

    #[tracing::instrument(skip_all, fields(container = %config.id))]
    async fn start(&self, config: &ContainerConfig) -> anyhow::Result<ContainerStatus> {
        let Some(program) = config.argv.first() else {
            bail!("container {} has no command", config.id);
        };
        self.containers.reserve(&config.id)?;
        let result = async {
            std::fs::create_dir_all(&config.work_dir)
                .with_context(|| format!("create {}", config.work_dir.display()))?;
            let layers = &config.image.layers;
            let env = environment(&config.env);
            let path_var = env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.as_str())
                .unwrap_or(DEFAULT_PATH);
            let mut argv = config.argv.clone();
            argv[0] = resolve_program(layers, program, path_var);
            let cwd = resolve_cwd(layers, &config.working_dir, &config.work_dir)?;
            let spec = ShimSpec {
                id: config.id.clone(),
                pod_uid: config.pod_uid.clone(),
                name: config.name.clone(),
                log_path: config.log_path.clone(),
                work_dir: config.work_dir.clone(),
                cgroup: None,
                launch: Launch::Process {
                    argv,
                    env,
                    cwd,
                    layers: layers.clone(),
                },
            };
            self.containers.launch(&spec).await
        }
        .await;
        if result.is_err() {
            let _ = self.remove(&config.id).await;
            let _ = self.containers.forget(&config.id);
        }
        result
    }

    async fn status(&self, id: &str) -> anyhow::Result<Option<ContainerStatus>> {
        self.containers.status(id)
    }

    async fn wait(&self, id: &str) -> anyhow::Result<ContainerStatus> {
        self.containers.wait(id).await
    }

    async fn kill(&self, id: &str, signal: i32) -> anyhow::Result<()> {
        match self.running_pid(id)? {
            Some(pid) => Self::signal_group(pid, signal),
            None => Ok(()),
        }
    }

    #[tracing::instrument(skip_all, fields(container = %id))]
    async fn remove(&self, id: &str) -> anyhow::Result<()> {
        let Some(spec) = self.containers.spec(id)? else {
            return Ok(());
        };
        if let Some(pid) = self.running_pid(id)? {
            Self::signal_group(pid, rustix::process::Signal::KILL.as_raw())?;
        }
        if !self
            .containers
            .wait_shim_gone(id, SHIM_EXIT_TIMEOUT)
            .await?
        {
            self.containers.kill_shim(id)?;
        }
        match std::fs::remove_dir_all(&spec.work_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("remove {}", spec.work_dir.display()))
            }
            _ => {}
        }
        self.containers.forget(id)
    }

    async fn list(&self) -> anyhow::Result<Vec<ContainerStatus>> {
        self.containers.list()
    }

    async fn exec(&self, id: &str, exec: ExecSpec) -> anyhow::Result<ExecSession> {
        if self.running_pid(id)?.is_none() {
            bail!("container {id} is not running");
        }
        let spec = self
            .containers
            .spec(id)?
            .with_context(|| format!("no container {id}"))?;
        let Launch::Process {
            env, cwd, layers, ..
        } = spec.launch
        else {
            bail!("container {id} is not a process container");
        };
        let Some(program) = exec.argv.first() else {
            bail!("exec needs a command");
        };
        // The same resolution as the container's own command.
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let program = resolve_program(&layers, program, &path_var);
        let setsid = exec.tty.then(find_setsid).flatten();
        let mut cmd = match &setsid {
            // A new session whose controlling terminal is the pty (job
            // control, ^C): `setsid -c` does the setsid and TIOCSCTTY we may
            // not do between fork and exec without unsafe code. Spawned
            // outside any process group of its own, so setsid needs no fork
            // and keeps the pid; the session's group then has that pid.
            Some(setsid) => {
                let mut cmd = tokio::process::Command::new(setsid);
                cmd.arg("-c").arg(program);
                cmd
            }
            None => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.process_group(0);
                cmd
            }
        };
        cmd.args(&exec.argv[1..])
            .env_clear()
            .envs(env)
            .current_dir(cwd);
        if exec.tty {
            super::exec::spawn_on_host_pty(cmd, &exec, KillTarget::OwnGroup)
        } else {
            super::exec::spawn_piped(cmd, &exec, KillTarget::OwnGroup)
        }
    }

    async fn stats(&self, id: &str) -> anyhow::Result<ContainerStats> {
        let pid = self
            .running_pid(id)?
            .with_context(|| format!("container {id} is not running"))?;
        proc_stats(pid)
    }
}

/// util-linux's `setsid`, if the host has it (else a terminal exec runs
/// without a controlling terminal).
fn find_setsid() -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join("setsid"))
        .find(|p| p.is_file())
}

/// CPU time and resident memory of one process, from /proc.
fn proc_stats(pid: u32) -> anyhow::Result<ContainerStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split(' ').collect())
        .unwrap_or_default();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(ContainerStats {
        cpu_usage_nanos: ticks * 1_000_000_000 / hz,
        memory_bytes: rss_kib * 1024,
    })
}
