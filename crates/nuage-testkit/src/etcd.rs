//! A real etcd server for tests: `/usr/bin/etcd` on free loopback ports with a
//! temporary data dir, removed with the server.
//!
//! etcd runs under a small `sh` that holds our end of a pipe: when the pipe
//! closes (the [`EtcdServer`] is dropped, or the test process exits or is
//! killed, which also ends a [`shared`] server that is never dropped), the shell
//! kills etcd, waits for it and removes its directory. So no etcd outlives the
//! test binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long etcd may take to answer `/health` (it is usually ready in ~0.5 s).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times to start etcd on new ports if it dies at start (a free port
/// picked by binding port 0 can be taken by another process before etcd binds it).
const START_ATTEMPTS: usize = 3;

/// The wrapper: starts etcd in the background, prints its pid, waits for its
/// stdin to close, then stops etcd and removes the directory `$1`.
const WRAPPER: &str = r#"
dir="$1"; shift
"$@" >"$dir/etcd.log" 2>&1 &
pid=$!
echo "$pid"
read -r _ignored
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$dir"
"#;

/// A running etcd; dropping it stops etcd and removes its data.
#[derive(Debug)]
pub struct EtcdServer {
    endpoint: String,
    etcd_pid: u32,
    dir: PathBuf,
    wrapper: Child,
    /// Closing this pipe tells the wrapper to stop etcd.
    stdin: Option<ChildStdin>,
}

impl EtcdServer {
    /// Starts a dedicated etcd and waits until it serves requests.
    ///
    /// Panics if etcd cannot be started (a test helper: the test cannot run).
    pub fn start() -> Self {
        let mut last_error = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start() {
                Ok(server) => return server,
                Err(e) => {
                    eprintln!("etcd start attempt {attempt} failed: {e}");
                    last_error = e;
                }
            }
        }
        panic!("cannot start etcd: {last_error}");
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The client URLs, as `nuage_store::etcd::EtcdStore::connect` takes them.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint.clone()]
    }

    /// The store URL for `nuage server --store`, `etcd://127.0.0.1:PORT`.
    pub fn store_url(&self) -> String {
        self.endpoint.replacen("http://", "etcd://", 1)
    }

    /// The process id of etcd itself (not of its wrapper).
    pub fn pid(&self) -> u32 {
        self.etcd_pid
    }

    fn try_start() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("nuage-etcd-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?
            // The wrapper removes the directory, also when we cannot.
            .keep();
        let client = free_port()?;
        let peer = free_port()?;
        let name = "nuage-test";
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let data_dir = dir.join("data");
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("nuage-etcd-wrapper")
            .arg(&dir)
            .arg("etcd")
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("{name}={peer_url}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn sh for etcd: {e}"))?;
        let stdin = wrapper.stdin.take();
        let mut server = Self {
            endpoint: client_url,
            etcd_pid: 0,
            dir,
            wrapper,
            stdin,
        };
        server.etcd_pid = server.read_etcd_pid()?;
        server.wait_ready(SocketAddr::from(([127, 0, 0, 1], client)))?;
        Ok(server)
    }

    fn read_etcd_pid(&mut self) -> Result<u32, String> {
        let stdout = self.wrapper.stdout.take().ok_or("wrapper has no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("read etcd pid: {e}"))?;
        line.trim()
            .parse()
            .map_err(|e| format!("etcd pid {line:?}: {e}"))
    }

    /// Polls `GET /health` until etcd reports itself healthy.
    fn wait_ready(&self, addr: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if health(addr) {
                return Ok(());
            }
            if !alive(self.etcd_pid) {
                return Err(format!("etcd exited at start:\n{}", self.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd not healthy after {READY_TIMEOUT:?}:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of etcd's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // EOF on the wrapper's stdin: it kills etcd, waits, removes the dir.
        drop(self.stdin.take());
        let _ = self.wrapper.wait();
    }
}

/// One etcd shared by every test of the test binary, started at first use.
///
/// Tests sharing it must keep to their own key prefix ([`unique_root`]) and
/// must not compact (compaction is global) or assume that nothing else
/// advances the revision. The server stops when the test binary exits.
pub fn shared() -> &'static EtcdServer {
    static SHARED: OnceLock<EtcdServer> = OnceLock::new();
    SHARED.get_or_init(EtcdServer::start)
}

/// A root prefix no other test uses, `/{base}-{16 hex digits}`. All roots made
/// here have the same length, so none is a prefix of another.
pub fn unique_root(base: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    format!("/{base}-{:016x}", hasher.finish())
}

/// Whether process `pid` runs (exists and is not a zombie: etcd stays one
/// until the wrapper, blocked reading its stdin, reaps it).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

/// A loopback port free at the time of the call.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("pick a free port: {e}"))
}

/// Whether etcd at `addr` answers `GET /health` with `"health":"true"`.
fn health(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains(r#""health":"true""#)
}
