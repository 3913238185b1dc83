//! Plumbing for [`super::Runtime::exec`]: runs a prepared command (`runc
//! exec …`, or a host process for the `process` runtime) and wraps it as an
//! [`ExecSession`].
//!
//! Three shapes: piped stdio; a terminal allocated by the OCI runtime
//! inside the container, whose master arrives on a console socket
//! ([`console`]); a terminal on the host for the `process` runtime
//! ([`pty::open_host_pty`]). Every session can be killed: a watcher task
//! owns the spawned command, and on [`ExecSession::kill`] it SIGKILLs the
//! exec'd process itself, found from the OCI runtime's `--pid-file` (killing
//! `runc exec` would not reach into the container) or as the spawned
//! command's own process group.

pub mod console;
pub mod pty;
pub mod reaper;

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rustix::process::{Pid, PidfdFlags, Signal};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use self::console::ConsoleSocket;
use self::pty::PtyMaster;
use super::{ExecSession, ExecSpec, ExitFuture, KillFn, Reader, ResizeFn, Writer};

/// How long the OCI runtime may take to hand over the terminal.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a kill looks for the process's pid (the runtime writes its
/// pid file only once the process runs).
const KILL_RETRY: Duration = Duration::from_millis(20);
/// After a kill, how long before the spawned command itself is killed too
/// (a runtime stuck before the process even started).
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long the runtime's complaint may take to arrive after it failed.
const ERROR_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How the exec'd process is found when the session is killed.
#[derive(Debug, Clone)]
pub enum KillTarget {
    /// The spawned command leads its own process group (the `process`
    /// runtime): the command and its group are killed.
    OwnGroup,
    /// The OCI runtime writes the process's host pid to this file (`exec
    /// --pid-file`); the pid is killed once it is seen to descend from the
    /// spawned command (no stranger that reused the pid). The file is
    /// removed when the session ends.
    PidFile(PathBuf),
}

/// A name no other exec of this agent uses, for its pid file and socket.
pub fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "exec-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Spawns `cmd` with stdin (when asked for), stdout and stderr on pipes.
pub fn spawn_piped(
    mut cmd: Command,
    spec: &ExecSpec,
    target: KillTarget,
) -> anyhow::Result<ExecSession> {
    cmd.kill_on_drop(false)
        .stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("start exec process")?;
    let stdin = child.stdin.take().map(|w| Box::pin(w) as Writer);
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (exit, kill) = watch_exit(child, target);
    Ok(ExecSession {
        stdin,
        stdout: Box::pin(stdout),
        stderr: Some(Box::pin(stderr)),
        resize: None,
        exit,
        kill: Some(kill),
    })
}

/// Spawns `cmd` on a new host pty (the `process` runtime). The command
/// should make the slave its controlling terminal (`setsid -c`).
pub fn spawn_on_host_pty(
    mut cmd: Command,
    spec: &ExecSpec,
    target: KillTarget,
) -> anyhow::Result<ExecSession> {
    let (master, slave) = pty::open_host_pty().context("open a pty")?;
    let terminal = TerminalIo::new(master, spec)?;
    cmd.kill_on_drop(false)
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    let child = cmd.spawn().context("start exec process")?;
    // The slave copies in `cmd` must close, or the master never sees EOF.
    drop(cmd);
    let (exit, kill) = watch_exit(child, target);
    Ok(terminal.session(None, exit, kill))
}

/// Spawns `cmd`, an OCI runtime's `exec -t --console-socket` with
/// `console`'s path, and waits for the terminal it allocates in the
/// container. The runtime's own stderr follows the terminal's output.
pub async fn spawn_with_console(
    mut cmd: Command,
    spec: &ExecSpec,
    console: ConsoleSocket,
    target: KillTarget,
) -> anyhow::Result<ExecSession> {
    cmd.kill_on_drop(false)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("start exec process")?;
    let mut errors = child.stderr.take().expect("stderr is piped");
    let (mut exit, kill) = watch_exit(child, target);
    let received = tokio::select! {
        master = console.receive_master() => master.context("receive the terminal"),
        code = &mut exit => Err(anyhow::anyhow!(
            "exited ({}) before sending a terminal",
            code.map(|c| c.to_string()).unwrap_or_else(|e| e.to_string())
        )),
        _ = tokio::time::sleep(CONSOLE_TIMEOUT) => Err(anyhow::anyhow!(
            "sent no terminal within {CONSOLE_TIMEOUT:?}"
        )),
    };
    // The socket's job is done: its file goes now.
    drop(console);
    let terminal = match received.and_then(|master| TerminalIo::new(master, spec)) {
        Ok(terminal) => terminal,
        Err(e) => {
            kill();
            let mut why = String::new();
            let _ = tokio::time::timeout(ERROR_READ_TIMEOUT, errors.read_to_string(&mut why)).await;
            bail!("exec with a terminal: {e:#}: {}", why.trim());
        }
    };
    Ok(terminal.session(Some(Box::pin(errors)), exit, kill))
}

/// A terminal's ends for a session: stdin (when asked for), output, resize.
struct TerminalIo {
    stdin: Option<Writer>,
    output: Reader,
    resize: ResizeFn,
}

impl TerminalIo {
    fn new(master: OwnedFd, spec: &ExecSpec) -> anyhow::Result<Self> {
        let master = PtyMaster::new(master).context("watch the pty")?;
        let stdin = if spec.stdin {
            Some(master.writer().context("write to the pty")?)
        } else {
            None
        };
        let output = master.reader().context("read the pty")?;
        Ok(Self {
            stdin,
            output,
            resize: master.resizer(),
        })
    }

    /// The session; `then` (the OCI runtime's own stderr) follows the
    /// terminal's output.
    fn session(self, then: Option<Reader>, exit: ExitFuture, kill: KillFn) -> ExecSession {
        let stdout: Reader = match then {
            Some(rest) => Box::pin(self.output.chain(rest)),
            None => self.output,
        };
        ExecSession {
            stdin: self.stdin,
            stdout,
            stderr: None,
            resize: Some(self.resize),
            exit,
            kill: Some(kill),
        }
    }
}

/// Hands `child` to a watcher task: returns the future of its exit code
/// and the session's kill switch.
fn watch_exit(mut child: Child, target: KillTarget) -> (ExitFuture, KillFn) {
    let (kill_tx, mut kill_rx) = watch::channel(false);
    let (exit_tx, exit_rx) = oneshot::channel();
    let watcher = async move {
        let killed = async { kill_rx.wait_for(|k| *k).await.is_ok() };
        let status = tokio::select! {
            status = child.wait() => status,
            // A dropped switch (no kill asked for) disables this branch.
            true = killed => kill_and_wait(&mut child, &target).await,
        };
        if let KillTarget::PidFile(path) = &target {
            let _ = std::fs::remove_file(path);
        }
        let _ = exit_tx.send(status.map(exit_code));
    };
    tokio::spawn(watcher.in_current_span());
    let exit = Box::pin(async move {
        exit_rx
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the exec watcher ended without a status")))
    });
    let kill = Box::new(move || {
        let _ = kill_tx.send(true);
    });
    (exit, kill)
}

/// Kills the exec'd process (retrying until its pid is known) and waits
/// for the spawned command to end.
async fn kill_and_wait(child: &mut Child, target: &KillTarget) -> io::Result<ExitStatus> {
    tracing::debug!("killing the exec'd process");
    let give_up = tokio::time::Instant::now() + KILL_GRACE;
    let mut tick = tokio::time::interval(KILL_RETRY);
    let mut sent = false;
    loop {
        tokio::select! {
            status = child.wait() => return status,
            _ = tick.tick() => {
                if let (false, Some(pid)) = (sent, child.id()) {
                    sent = kill_target(target, pid);
                }
                if tokio::time::Instant::now() >= give_up {
                    let _ = child.start_kill();
                }
            }
        }
    }
}

/// Sends SIGKILL to the exec'd process; `false` when its pid is not known
/// yet.
fn kill_target(target: &KillTarget, command_pid: u32) -> bool {
    match target {
        KillTarget::OwnGroup => {
            let Some(pid) = Pid::from_raw(command_pid as i32) else {
                return true;
            };
            // The process itself first: it may not have made its group yet.
            let _ = rustix::process::kill_process(pid, Signal::KILL);
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            true
        }
        KillTarget::PidFile(path) => {
            let Some(pid) = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .and_then(Pid::from_raw)
            else {
                return false;
            };
            // Hold the process by a pidfd while checking whose it is, so the
            // signal reaches the process that was checked.
            let pidfd = match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
                Ok(fd) => fd,
                // Gone already.
                Err(_) => return true,
            };
            let raw = pid.as_raw_nonzero().get() as u32;
            let ours = parent_of(raw) == Some(command_pid)
                || parent_of(raw).and_then(parent_of) == Some(command_pid);
            if !ours {
                // Not yet reparented, or a stranger: look again next time.
                return false;
            }
            let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
            true
        }
    }
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "(comm) ": state, then the parent's pid.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(1)?.parse().ok()
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_reads_proc() {
        assert_eq!(
            parent_of(std::process::id()),
            Some(rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32))
        );
        assert_eq!(parent_of(u32::MAX), None);
    }

    #[test]
    fn names_are_unique() {
        assert_ne!(unique_name(), unique_name());
    }
}
