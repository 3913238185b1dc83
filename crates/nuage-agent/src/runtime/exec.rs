//! Plumbing for [`super::Runtime::exec`]: runs a prepared command (`runc
//! exec …`, or a host process for the `process` runtime) with piped stdio,
//! or on a new pseudo-terminal, and wraps it as an [`ExecSession`].
//!
//! With a terminal the OCI runtime is not given `-t`: it passes our pty's
//! slave through as the process's stdin, stdout and stderr, and we keep the
//! master.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::process::Command;

use super::{ExecSession, ExecSpec};

/// Spawns `cmd` as the exec'd process and returns its session.
pub fn spawn(mut cmd: Command, spec: &ExecSpec) -> anyhow::Result<ExecSession> {
    cmd.kill_on_drop(false);
    if spec.tty {
        let (master, slave) = open_pty()?;
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        let mut child = cmd.spawn().context("start exec process")?;
        // The slave copies in `cmd` must close, or the master never sees EOF.
        drop(cmd);
        let master = Arc::new(master);
        let reader = tokio::fs::File::from_std(std::fs::File::from(master.try_clone()?));
        let stdin = if spec.stdin {
            let writer = tokio::fs::File::from_std(std::fs::File::from(master.try_clone()?));
            Some(Box::pin(writer) as super::Writer)
        } else {
            None
        };
        let resize_fd = Arc::clone(&master);
        let resize = move |cols: u16, rows: u16| {
            let size = Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            rustix::termios::tcsetwinsize(&*resize_fd, size).map_err(io::Error::from)
        };
        Ok(ExecSession {
            stdin,
            stdout: Box::pin(PtyReader(reader)),
            stderr: None,
            resize: Some(Box::new(resize)),
            exit: Box::pin(async move { child.wait().await.map(exit_code) }),
        })
    } else {
        cmd.stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("start exec process")?;
        let stdin = child.stdin.take().map(|w| Box::pin(w) as super::Writer);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        Ok(ExecSession {
            stdin,
            stdout: Box::pin(stdout),
            stderr: Some(Box::pin(stderr)),
            resize: None,
            exit: Box::pin(async move { child.wait().await.map(exit_code) }),
        })
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A new pseudo-terminal: (master, slave).
fn open_pty() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .context("open a pty")?;
    rustix::pty::grantpt(&master).context("grantpt")?;
    rustix::pty::unlockpt(&master).context("unlockpt")?;
    let name = rustix::pty::ptsname(&master, Vec::new()).context("ptsname")?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open the pty slave")?;
    Ok((master, slave))
}

/// A pty master reader: once every slave is closed, reads fail with EIO,
/// which for us is the end of output.
struct PtyReader(tokio::fs::File);

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e))
                if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
            {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
