//! The agent's end of an exec'd process's terminal: a pty master read and
//! written without blocking (registered with tokio's reactor through its
//! `unix::pipe` types, which take any pollable descriptor; no thread parked
//! in a read), resized with `TIOCSWINSZ`.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::unix::pipe;

use crate::runtime::{Reader, ResizeFn, Writer};

/// A pty master. The reader, writer and resizer made from it each hold a
/// copy of the descriptor: the terminal hangs up (SIGHUP to the process)
/// when the last one is dropped.
pub struct PtyMaster(OwnedFd);

impl PtyMaster {
    /// Takes a master (from the console socket or [`open_host_pty`]) and
    /// makes it non-blocking.
    pub fn new(master: OwnedFd) -> io::Result<Self> {
        let flags = rustix::fs::fcntl_getfl(&master)?;
        rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
        Ok(Self(master))
    }

    /// The terminal's output (the process's stdout and stderr). Needs a
    /// tokio runtime.
    pub fn reader(&self) -> io::Result<Reader> {
        let receiver = pipe::Receiver::from_owned_fd_unchecked(self.0.try_clone()?)?;
        Ok(Box::pin(PtyReader(receiver)))
    }

    /// The terminal's input (the process's stdin). Needs a tokio runtime.
    pub fn writer(&self) -> io::Result<Writer> {
        let sender = pipe::Sender::from_owned_fd_unchecked(self.0.try_clone()?)?;
        Ok(Box::pin(sender))
    }

    /// Sets the terminal's size: the kernel sends SIGWINCH to its
    /// foreground process group.
    pub fn resizer(self) -> ResizeFn {
        Box::new(move |cols: u16, rows: u16| {
            let size = Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            rustix::termios::tcsetwinsize(&self.0, size).map_err(io::Error::from)
        })
    }
}

/// Once every slave is closed the master reads EIO: for us, the end of the
/// output.
struct PtyReader(pipe::Receiver);

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.raw_os_error() == Some(Errno::IO.raw_os_error()) => {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// A new pseudo-terminal on the host (for the `process` runtime): (master,
/// slave).
pub fn open_host_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )?;
    Ok((master, slave))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_writes_resizes_and_ends_at_hangup() {
        let (master, slave) = open_host_pty().unwrap();
        let master = PtyMaster::new(master).unwrap();
        let mut reader = master.reader().unwrap();
        let mut writer = master.writer().unwrap();
        (master.resizer())(100, 30).unwrap();
        let size = rustix::termios::tcgetwinsize(&slave).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (100, 30));

        writer.write_all(b"typed\n").await.unwrap();
        let mut line = [0u8; 6];
        rustix::io::read(&slave, &mut line).unwrap();
        assert_eq!(&line, b"typed\n");

        // The terminal echoes what was typed; then the process writes and
        // hangs up.
        rustix::io::write(&slave, b"out").unwrap();
        drop(slave);
        let mut all = String::new();
        reader.read_to_string(&mut all).await.unwrap();
        assert!(all.starts_with("typed"), "{all:?}");
        assert!(all.ends_with("out"), "{all:?}");
    }
}
