//! The `oci` runtime: each container is an OCI bundle (an overlay rootfs and
//! a generated `config.json`) run by runc or crun under a `nuage shim`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

use super::cgroups::Cgroups;
use super::detect::{self, Engine, OciEngine};
use super::exec::{self, console::ConsoleSocket, KillTarget};
use super::rootfs::{self, RootfsDirs};
use super::state::{CgroupRef, Launch, ShimSpec};
use super::supervise::Supervisor;
use super::{
    spec, ContainerConfig, ContainerState, ContainerStats, ContainerStatus, ExecSession, ExecSpec,
    Runtime,
};

/// How long `remove` waits for a shim to record the exit after the kill.
const SHIM_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The `nuage` binary, re-executed as `nuage shim` for every container.
    pub shim_exe: PathBuf,
    /// One directory per container lives here; it must survive agent restarts.
    pub state_dir: PathBuf,
    /// runc or crun; `None` probes crun then runc (`oci` only).
    pub engine: Option<Engine>,
    /// The OCI runtime's own state root (`--root`); `None` for its default
    /// (`/run/runc`, `/run/crun`) (`oci` only).
    pub engine_root: Option<PathBuf>,
}

impl RuntimeOptions {
    /// Options with the defaults: probe the engine, default engine root.
    pub fn new(shim_exe: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            shim_exe: shim_exe.into(),
            state_dir: state_dir.into(),
            engine: None,
            engine_root: None,
        }
    }
}

/// Containers run by runc or crun.
pub struct OciRuntime {
    containers: Supervisor,
    engine: OciEngine,
    global_args: Vec<String>,
    /// The `nuage` binary, run as `nuage exec-reaper` for terminals on runc.
    exec_reaper: PathBuf,
}

impl OciRuntime {
    /// Probes the OCI runtime (cached) and opens the state directory.
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Self> {
        let containers = Supervisor::new(options.state_dir.clone(), options.shim_exe.clone())?;
        let engine = detect::detect(options.engine, &options.state_dir)
            .map_err(|why| anyhow::anyhow!("no working OCI runtime: {why}"))?;
        let global_args = match &options.engine_root {
            Some(root) => vec!["--root".to_string(), root.to_string_lossy().into_owned()],
            None => Vec::new(),
        };
        Ok(Self {
            containers,
            engine,
            global_args,
            exec_reaper: options.shim_exe,
        })
    }

    /// The OCI runtime in use.
    pub fn engine(&self) -> &OciEngine {
        &self.engine
    }

    /// A call to the OCI runtime (through its wrapper when it needs one).
    fn engine_command(&self) -> Command {
        let words = self.engine.command();
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..]).args(&self.global_args);
        cmd
    }

    /// Runs a short OCI runtime subcommand; `Err` carries its stderr.
    async fn engine_call(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = self
            .engine_command()
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("run {}", self.engine.engine))?;
        if out.status.success() {
            Ok(())
        } else {
            bail!(
                "{} {}: {}",
                self.engine.engine,
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        }
    }

    /// Undoes whatever a start did, in any state.
    async fn clean_up(
        &self,
        id: &str,
        work_dir: &std::path::Path,
        cgroup: &str,
    ) -> anyhow::Result<()> {
        // `delete --force` kills what still runs; "does not exist" is fine.
        let _ = self.engine_call(&["delete", "--force", id]).await;
        if !self
            .containers
            .wait_shim_gone(id, SHIM_EXIT_TIMEOUT)
            .await?
        {
            self.containers.kill_shim(id)?;
        }
        rootfs::unmount(&RootfsDirs::under(work_dir).target)?;
        Cgroups::host(self.engine.cgroup_mode)
            .remove(cgroup)
            .with_context(|| format!("remove cgroup {cgroup}"))?;
        match std::fs::remove_dir_all(work_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("remove {}", work_dir.display()))
            }
            _ => {}
        }
        self.containers.forget(id)
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
}

#[async_trait::async_trait]
impl Runtime for OciRuntime {
    fn name(&self) -> &str {
        "oci"
    }

    fn version(&self) -> String {
        self.engine.version_string()
    }

    #[tracing::instrument(skip_all, fields(container = %config.id, engine = %self.engine.engine))]
    async fn start(&self, config: &ContainerConfig) -> anyhow::Result<ContainerStatus> {
        self.containers.reserve(&config.id)?;
        let cgroup = spec::cgroup_path(config);
        let result = async {
            let dirs = RootfsDirs::under(&config.work_dir);
            rootfs::mount_overlay(&config.image.layers, &dirs).context("mount the rootfs")?;
            let oci = spec::oci_config(config, &dirs.target, self.engine.cgroup_mode);
            std::fs::write(
                config.work_dir.join("config.json"),
                serde_json::to_vec_pretty(&oci)?,
            )
            .context("write config.json")?;
            let shim_spec = ShimSpec {
                id: config.id.clone(),
                pod_uid: config.pod_uid.clone(),
                name: config.name.clone(),
                log_path: config.log_path.clone(),
                work_dir: config.work_dir.clone(),
                cgroup: Some(CgroupRef {
                    mode: self.engine.cgroup_mode,
                    path: cgroup.clone(),
                }),
                launch: Launch::Oci {
                    engine: self.engine.command(),
                    global_args: self.global_args.clone(),
                    bundle: config.work_dir.clone(),
                },
            };
            self.containers.launch(&shim_spec).await
        }
        .await;
        if result.is_err() {
            if let Err(e) = self.clean_up(&config.id, &config.work_dir, &cgroup).await {
                tracing::warn!(error = %format!("{e:#}"), "cleaning up after a failed start");
            }
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
        if self.running_pid(id)?.is_none() {
            return Ok(());
        }
        match self.engine_call(&["kill", id, &signal.to_string()]).await {
            Ok(()) => Ok(()),
            // It may have exited between the check and the kill.
            Err(_) if self.running_pid(id)?.is_none() => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(skip_all, fields(container = %id))]
    async fn remove(&self, id: &str) -> anyhow::Result<()> {
        let Some(spec) = self.containers.spec(id)? else {
            return Ok(());
        };
        let cgroup = spec.cgroup.map(|c| c.path).unwrap_or_default();
        self.clean_up(id, &spec.work_dir, &cgroup).await
    }

    async fn list(&self) -> anyhow::Result<Vec<ContainerStatus>> {
        self.containers.list()
    }

    async fn exec(&self, id: &str, exec: ExecSpec) -> anyhow::Result<ExecSession> {
        if self.running_pid(id)?.is_none() {
            bail!("container {id} is not running");
        }
        if exec.argv.is_empty() {
            bail!("exec needs a command");
        }
        let dir = self.containers.container_dir(id)?;
        let name = exec::unique_name();
        // The process's host pid, to kill it when the session is killed.
        let pid_file = dir.join(format!("{name}.pid"));
        let target = KillTarget::PidFile(pid_file.clone());
        if !exec.tty {
            let mut cmd = self.engine_command();
            cmd.arg("exec")
                .arg("--pid-file")
                .arg(&pid_file)
                .arg(id)
                .args(&exec.argv);
            return exec::spawn_piped(cmd, &exec, target);
        }
        // The terminal is allocated inside the container and its master
        // sent to us, as containerd and CRI-O do it.
        let console = ConsoleSocket::bind(&dir, &format!("{name}.sock"))
            .context("listen on a console socket")?;
        let mut cmd = match self.engine.engine {
            // runc takes a console socket only with `-d`, and then exits at
            // once: the exec reaper waits for the process in its place.
            Engine::Runc => {
                let mut cmd = Command::new(&self.exec_reaper);
                cmd.arg(exec::reaper::SUBCOMMAND)
                    .arg(&pid_file)
                    .args(self.engine.command())
                    .args(&self.global_args)
                    .args(["exec", "-d"]);
                cmd
            }
            Engine::Crun => {
                let mut cmd = self.engine_command();
                cmd.arg("exec");
                cmd
            }
        };
        cmd.arg("-t")
            .arg("--console-socket")
            .arg(console.path())
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .args(&exec.argv);
        exec::spawn_with_console(cmd, &exec, console, target).await
    }

    async fn stats(&self, id: &str) -> anyhow::Result<ContainerStats> {
        let spec = self
            .containers
            .spec(id)?
            .with_context(|| format!("no container {id}"))?;
        let cgroup = spec
            .cgroup
            .with_context(|| format!("container {id} has no cgroup"))?;
        let cg = Cgroups::host(cgroup.mode);
        Ok(ContainerStats {
            cpu_usage_nanos: cg.cpu_usage_nanos(&cgroup.path)?,
            memory_bytes: cg.memory_working_set(&cgroup.path)?,
        })
    }
}
