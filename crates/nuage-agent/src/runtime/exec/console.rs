//! The console socket of `runc|crun exec -t --console-socket PATH`: the OCI
//! runtime allocates the terminal inside the container (so it is in the
//! container's `/dev/pts` and becomes the process's controlling terminal),
//! connects to this socket and sends the pty master with `SCM_RIGHTS`.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use tokio::io::Interest;
use tokio::net::{UnixListener, UnixStream};

/// The longest path a unix socket address holds (`sun_path` is 108 bytes
/// with its NUL on Linux).
const MAX_SOCKET_PATH: usize = 107;

/// A listening console socket; its file is removed on drop.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Listens at `dir/name`, or in the temp dir when that path is too long
    /// for a unix socket address (deep state dirs, long container ids).
    pub fn bind(dir: &Path, name: &str) -> io::Result<Self> {
        let mut path = dir.join(name);
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            path = std::env::temp_dir().join(name);
        }
        // A leftover of a crashed agent would make bind fail.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(Self { listener, path })
    }

    /// Where the OCI runtime connects.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the OCI runtime's connection and returns the pty master it
    /// sends. Cancel-safe up to the accept.
    pub async fn receive_master(&self) -> io::Result<OwnedFd> {
        let (stream, _) = self.listener.accept().await?;
        receive_fd(&stream).await
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one message and takes the first file descriptor it carries.
async fn receive_fd(stream: &UnixStream) -> io::Result<OwnedFd> {
    loop {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || recv_fd_now(stream)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

fn recv_fd_now(stream: &UnixStream) -> io::Result<OwnedFd> {
    // runc sends the terminal's name as the payload, crun a single byte:
    // neither matters, but a message needs room for its bytes.
    let mut payload = [0u8; 256];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    recvmsg(
        stream.as_fd(),
        &mut [IoSliceMut::new(&mut payload)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            // Any further descriptors are closed as the iterator drops.
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the console socket's peer sent no terminal",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::io::IoSlice;

    #[tokio::test]
    async fn receives_a_descriptor_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let console = ConsoleSocket::bind(dir.path(), "c.sock").unwrap();
        let path = console.path().to_path_buf();
        let (r, w) = rustix::pipe::pipe().unwrap();
        let sender = tokio::spawn(async move {
            let stream = UnixStream::connect(&path).await.unwrap();
            let fds = [w.as_fd()];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
            stream.writable().await.unwrap();
            sendmsg(
                stream.as_fd(),
                &[IoSlice::new(b"/dev/ptmx")],
                &mut control,
                SendFlags::empty(),
            )
            .unwrap();
        });
        let got = console.receive_master().await.unwrap();
        sender.await.unwrap();
        rustix::io::write(&got, b"x").unwrap();
        let mut buf = [0u8; 1];
        rustix::io::read(&r, &mut buf).unwrap();
        assert_eq!(&buf, b"x");
        let path = console.path().to_path_buf();
        drop(console);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_peer_without_a_descriptor_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let console = ConsoleSocket::bind(dir.path(), "c.sock").unwrap();
        let path = console.path().to_path_buf();
        let sender = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut stream = UnixStream::connect(&path).await.unwrap();
            stream.write_all(b"hello").await.unwrap();
        });
        let err = console.receive_master().await.unwrap_err();
        sender.await.unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn long_directories_fall_back_to_the_temp_dir() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let deep = PathBuf::from(format!("/nonexistent/{}", "d".repeat(120)));
        let name = format!("nuage-console-test-{}.sock", std::process::id());
        let console = ConsoleSocket::bind(&deep, &name).unwrap();
        assert_eq!(console.path(), std::env::temp_dir().join(&name));
    }
}
