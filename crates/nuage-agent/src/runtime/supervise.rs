//! The runtime's side of the shim: start a shim for a container and learn
//! whether the container started, and read a container's status, wait for
//! its exit and list containers from the state directory. Shared by the
//! `oci` and `process` runtimes; the agent never waits on a shim process.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::state::{self, ExitRecord, ShimSpec, Started};
use super::{ContainerState, ContainerStatus};

/// How long a shim may take to start its container.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often `wait` re-reads the exit record when it cannot watch the shim.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// Containers under one state directory, each supervised by a shim.
#[derive(Debug, Clone)]
pub struct Supervisor {
    state_dir: PathBuf,
    shim_exe: PathBuf,
}

impl Supervisor {
    /// Containers under `state_dir`, shims started from `shim_exe`.
    pub fn new(state_dir: PathBuf, shim_exe: PathBuf) -> anyhow::Result<Self> {
        fs::create_dir_all(&state_dir)
            .with_context(|| format!("create state dir {}", state_dir.display()))?;
        Ok(Self {
            state_dir,
            shim_exe,
        })
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// A container's directory (the id is checked: it becomes a path).
    pub fn container_dir(&self, id: &str) -> anyhow::Result<PathBuf> {
        check_id(id)?;
        Ok(self.state_dir.join(id))
    }

    /// The container's shim spec, `None` if there is no such container.
    pub fn spec(&self, id: &str) -> anyhow::Result<Option<ShimSpec>> {
        Ok(state::read_json(
            &self.container_dir(id)?.join(state::SPEC_FILE),
        )?)
    }

    /// Creates the container's directory; fails if the id is taken.
    pub fn reserve(&self, id: &str) -> anyhow::Result<PathBuf> {
        let dir = self.container_dir(id)?;
        match fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {id} already exists")
            }
            Err(e) => Err(e).with_context(|| format!("create {}", dir.display())),
        }
    }

    /// Starts the shim and returns once it reports the container running.
    pub async fn launch(&self, spec: &ShimSpec) -> anyhow::Result<ContainerStatus> {
        let dir = self.container_dir(&spec.id)?;
        state::write_json(&dir.join(state::SPEC_FILE), spec)?;
        let stderr = fs::File::create(dir.join(state::SHIM_STDERR_FILE))?;
        let mut child = tokio::process::Command::new(&self.shim_exe)
            .arg("shim")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("start shim {}", self.shim_exe.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let read =
            tokio::time::timeout(START_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
        // Not waited on: the shim lives as long as the container, and tokio
        // reaps it when it exits.
        drop(child);
        match read {
            Err(_) => bail!(
                "container {} did not start within {START_TIMEOUT:?}",
                spec.id
            ),
            Ok(Err(e)) => return Err(e).context("read the shim's answer"),
            Ok(Ok(_)) => {}
        }
        let line = line.trim();
        if line != "ok" {
            let why = line
                .strip_prefix("error: ")
                .map(str::to_string)
                .unwrap_or_else(|| {
                    let stderr =
                        fs::read_to_string(dir.join(state::SHIM_STDERR_FILE)).unwrap_or_default();
                    format!("the shim ended without an answer: {}", stderr.trim())
                });
            bail!("start container {}: {why}", spec.id);
        }
        self.status(&spec.id)?
            .with_context(|| format!("container {} vanished after start", spec.id))
    }

    /// The container's status from its records.
    pub fn status(&self, id: &str) -> anyhow::Result<Option<ContainerStatus>> {
        let dir = self.container_dir(id)?;
        let Some(spec) = state::read_json::<ShimSpec>(&dir.join(state::SPEC_FILE))? else {
            return Ok(None);
        };
        let started: Option<Started> = state::read_json(&dir.join(state::STARTED_FILE))?;
        let exit: Option<ExitRecord> = state::read_json(&dir.join(state::EXIT_FILE))?;
        let state = match (started, exit) {
            (_, Some(e)) => exited(e),
            (Some(s), None) if shim_alive(s.shim_pid, &dir) || pid_alive(s.pid) => {
                ContainerState::Running { pid: s.pid }
            }
            (Some(_), None) => {
                // The shim may have written its record since we looked.
                match state::read_json::<ExitRecord>(&dir.join(state::EXIT_FILE))? {
                    Some(e) => exited(e),
                    // The shim died without recording the exit (killed, or
                    // the host rebooted): the exit status is unknown.
                    None => lost(),
                }
            }
            // Never started (an agent died during a start): nothing runs.
            (None, None) => lost(),
        };
        Ok(Some(ContainerStatus {
            id: spec.id,
            pod_uid: spec.pod_uid,
            name: spec.name,
            state,
            started_at: started.map(|s| s.started_at).unwrap_or(0),
        }))
    }

    /// Resolves when the container has exited.
    pub async fn wait(&self, id: &str) -> anyhow::Result<ContainerStatus> {
        let dir = self.container_dir(id)?;
        loop {
            let status = self
                .status(id)?
                .with_context(|| format!("no container {id}"))?;
            if matches!(status.state, ContainerState::Exited { .. }) {
                return Ok(status);
            }
            let started: Option<Started> = state::read_json(&dir.join(state::STARTED_FILE))?;
            // Watch the shim's exit through a pidfd (it writes the exit record
            // just before): the pidfd turns readable when the shim ends, so an
            // idle container costs no wake-up at all. Without a pidfd, re-read
            // the records at an interval.
            let pidfd = started
                .filter(|s| shim_alive(s.shim_pid, &dir))
                .and_then(|s| rustix::process::Pid::from_raw(s.shim_pid as i32))
                .and_then(|pid| {
                    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK).ok()
                })
                .and_then(|fd| {
                    // Deprecated because a generic `T: AsRawFd` may close or
                    // swap its descriptor; an `OwnedFd` cannot, and the
                    // replacement is `unsafe`, which this workspace denies.
                    #[allow(deprecated)]
                    tokio::io::unix::AsyncFd::with_interest(fd, tokio::io::Interest::READABLE).ok()
                });
            match pidfd {
                Some(fd) => {
                    let _ = fd.readable().await?;
                }
                None => {
                    let mut tick = tokio::time::interval(WAIT_POLL);
                    tick.tick().await;
                    tick.tick().await;
                }
            }
        }
    }

    /// Waits (bounded) for the container's shim to end; `true` if it has.
    pub async fn wait_shim_gone(&self, id: &str, timeout: Duration) -> anyhow::Result<bool> {
        let dir = self.container_dir(id)?;
        let Some(started) = state::read_json::<Started>(&dir.join(state::STARTED_FILE))? else {
            return Ok(true);
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while shim_alive(started.shim_pid, &dir) {
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tick.tick().await;
        }
        Ok(true)
    }

    /// Kills the container's shim (when it did not end by itself).
    pub fn kill_shim(&self, id: &str) -> anyhow::Result<()> {
        let dir = self.container_dir(id)?;
        if let Some(s) = state::read_json::<Started>(&dir.join(state::STARTED_FILE))? {
            if shim_alive(s.shim_pid, &dir) {
                if let Some(pid) = rustix::process::Pid::from_raw(s.shim_pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        Ok(())
    }

    /// Removes the container's directory.
    pub fn forget(&self, id: &str) -> anyhow::Result<()> {
        let dir = self.container_dir(id)?;
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove {}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// Every container with a record.
    pub fn list(&self) -> anyhow::Result<Vec<ContainerStatus>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.state_dir)? {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if check_id(&id).is_err() || !entry.path().join(state::SPEC_FILE).exists() {
                continue;
            }
            if let Some(status) = self.status(&id)? {
                out.push(status);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

fn exited(e: ExitRecord) -> ContainerState {
    ContainerState::Exited {
        exit_code: e.exit_code,
        oom_killed: e.oom_killed,
        finished_at: e.finished_at,
    }
}

fn lost() -> ContainerState {
    ContainerState::Exited {
        exit_code: 255,
        oom_killed: false,
        finished_at: state::unix_now(),
    }
}

/// Ids become file names and runtime arguments: letters, digits, `-`, `_`, `.`.
pub fn check_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with(['.', '-'])
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("{id:?} is not a valid container id (letters, digits, '-', '_', '.')");
    }
    Ok(())
}

/// The shim is alive if its pid runs `nuage shim` for this directory (a
/// recycled pid runs something else). A zombie has an empty command line.
fn shim_alive(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let dir = dir.as_os_str().as_encoded_bytes();
    cmdline.split(|&b| b == 0).any(|arg| arg == dir)
}

/// Whether a process exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_escape_the_state_dir_are_refused() {
        assert!(check_id("pod-1_web.0").is_ok());
        for bad in ["", "..", "../x", "a/b", "-rf", "a b"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX - 1));
    }
}
