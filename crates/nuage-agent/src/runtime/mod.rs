//! Container runtimes behind one trait (the role of the CRI): `oci` drives
//! runc or crun with a bundle per container; `process` runs the container's
//! command as a plain host process (no isolation) where no OCI runtime works.
//!
//! Every container runs under a small supervisor process (`nuage shim`, the
//! role of conmon / containerd-shim) that outlives the agent: it holds the
//! container's stdout and stderr, writes them to the container's log file in
//! the CRI format, reaps the container and records how it ended. So an agent
//! restart re-adopts running containers from the runtime's state directory.

pub mod cgroups;
pub mod detect;
pub mod exec;
pub mod logs;
pub mod oci;
pub mod process;
pub mod rootfs;
pub mod shim;
pub mod spec;
pub mod state;
pub mod supervise;

pub use detect::Engine;
pub use oci::{OciRuntime, RuntimeOptions};
pub use process::ProcessRuntime;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::images::Image;

/// What a container is made of: everything the runtime needs, already
/// resolved by the agent from the Pod spec and the image.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// A runtime-wide unique id (letters, digits, `-`), stable for one run of
    /// one container: the agent makes it from the pod uid, the container name
    /// and the attempt number.
    pub id: String,
    /// The pod's uid (for labels, cgroup paths and cleanup).
    pub pod_uid: String,
    /// The container's name in the pod.
    pub name: String,
    /// The image: unpacked layers (bottom first) and its config.
    pub image: Image,
    /// The full argv, already merged from the image's entrypoint/cmd and the
    /// container's command/args.
    pub argv: Vec<String>,
    /// Environment, in order (later entries win).
    pub env: Vec<(String, String)>,
    /// Working directory inside the container (`/` when empty).
    pub working_dir: String,
    /// uid and gid to run as (from `securityContext` or the image's `USER`).
    pub user: Option<(u32, u32)>,
    /// The pod's host name (the pod name).
    pub hostname: String,
    /// Bind mounts for volumes, `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`.
    pub mounts: Vec<Mount>,
    /// cgroup limits.
    pub resources: Resources,
    /// The pod's network namespace (`/run/netns/NAME`), or `None` for the
    /// host's network.
    pub netns: Option<PathBuf>,
    /// Where the container's stdout and stderr go, in the CRI log format
    /// (`<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`).
    pub log_path: PathBuf,
    /// A private directory for this container's rootfs upper layer, bundle,
    /// and the shim's files; removed by [`Runtime::remove`].
    pub work_dir: PathBuf,
}

/// A bind mount into the container.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the container.
    pub destination: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// cgroup limits for one container.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// CPU limit in millicores (CFS quota over a 100 ms period).
    pub cpu_limit_millis: Option<u64>,
    /// CPU request in millicores (cpu.shares on v1, cpu.weight on v2).
    pub cpu_request_millis: Option<u64>,
    /// Memory limit in bytes: above it the kernel OOM-kills the container.
    pub memory_limit: Option<u64>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
}

/// What the runtime knows about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// The container id.
    pub id: String,
    /// The pod uid it belongs to.
    pub pod_uid: String,
    /// Its name in the pod.
    pub name: String,
    /// Running or exited.
    pub state: ContainerState,
    /// When it started (Unix seconds).
    pub started_at: i64,
}

/// Running, or how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// The container's init process is alive.
    Running {
        /// Host pid of the container's init process.
        pid: u32,
    },
    /// It exited.
    Exited {
        /// Exit code (128 + signal when killed by a signal).
        exit_code: i32,
        /// Killed by the kernel's OOM killer inside its memory limit.
        oom_killed: bool,
        /// When it ended (Unix seconds).
        finished_at: i64,
    },
}

/// Usage figures for `kubectl top` and autoscaling.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerStats {
    /// Cumulative CPU time in nanoseconds.
    pub cpu_usage_nanos: u64,
    /// Current memory use in bytes (working set).
    pub memory_bytes: u64,
}

/// A command to run inside a running container (`kubectl exec`).
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// argv.
    pub argv: Vec<String>,
    /// Give the process a terminal (stdout and stderr merged on it).
    pub tty: bool,
    /// Connect stdin.
    pub stdin: bool,
}

/// A boxed async reader.
pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
/// A boxed async writer.
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// Sets a terminal's size (columns, rows).
pub type ResizeFn = Box<dyn Fn(u16, u16) -> io::Result<()> + Send + Sync>;

/// Resolves to the exit code of an exec'd process.
pub type ExitFuture = Pin<Box<dyn Future<Output = io::Result<i32>> + Send>>;

/// Kills an exec'd process (see [`ExecSession::kill`]).
pub type KillFn = Box<dyn Fn() + Send + Sync>;

/// A process started in a container by [`Runtime::exec`].
///
/// Dropping the session does not end the process (its pipes close, which
/// most commands notice); call [`kill`](Self::kill) when nobody will read
/// its output any more: a client gone, a probe timed out.
pub struct ExecSession {
    /// The process's stdin (when asked for). Dropping it closes stdin.
    pub stdin: Option<Writer>,
    /// stdout, or the terminal's output with `tty`.
    pub stdout: Reader,
    /// stderr; `None` with `tty`.
    pub stderr: Option<Reader>,
    /// Resizes the terminal (columns, rows); `None` without `tty`.
    pub resize: Option<ResizeFn>,
    /// Resolves to the exit code when the process ends.
    pub exit: ExitFuture,
    /// Sends SIGKILL to the process in the container (not just to the OCI
    /// runtime's `exec`, which would leave it running); `exit` then
    /// resolves (137). Returns at once: the kill is carried out in the
    /// background, and calling it again, or after the exit, does nothing.
    /// `None` when the runtime cannot kill one exec'd process.
    pub kill: Option<KillFn>,
}

/// A container runtime.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// `oci` or `process`.
    fn name(&self) -> &str;
    /// For the Node's `nodeInfo.containerRuntimeVersion`, e.g. `crun://1.8.1`.
    fn version(&self) -> String;
    /// Creates and starts the container; returns once its process runs.
    async fn start(&self, config: &ContainerConfig) -> anyhow::Result<ContainerStatus>;
    /// The container's current status, `None` if the runtime has no such container.
    async fn status(&self, id: &str) -> anyhow::Result<Option<ContainerStatus>>;
    /// Resolves when the container has exited (at once if it already has).
    async fn wait(&self, id: &str) -> anyhow::Result<ContainerStatus>;
    /// Sends a signal to the container's init process.
    async fn kill(&self, id: &str, signal: i32) -> anyhow::Result<()>;
    /// Removes an exited (or, after SIGKILL, any) container and everything it
    /// holds on the host: processes, cgroup, mounts, work dir.
    async fn remove(&self, id: &str) -> anyhow::Result<()>;
    /// Every container the runtime knows, running or exited (for re-adoption
    /// after an agent restart).
    async fn list(&self) -> anyhow::Result<Vec<ContainerStatus>>;
    /// Runs a process inside a running container.
    async fn exec(&self, id: &str, spec: ExecSpec) -> anyhow::Result<ExecSession>;
    /// CPU and memory usage.
    async fn stats(&self, id: &str) -> anyhow::Result<ContainerStats>;
}
