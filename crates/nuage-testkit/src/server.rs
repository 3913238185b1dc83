//! A real `nuage server` for end-to-end tests, on port 0 in a temp data dir,
//! and the real `kubectl` pointed at it.
//!
//! The server runs under a small `sh` holding our end of a pipe: when the pipe
//! closes ([`NuageServer`] dropped, or the test process exiting for any
//! reason, which also ends a server kept in a `static`), the shell sends the
//! server SIGTERM and waits for it. No server outlives its test binary.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to write `endpoints.json`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

const WRAPPER: &str = r#"
log="$1"; reset="$2"; owned="$3"; shift 3
bin="$1"; dir="$4"
"$@" >"$log" 2>&1 &
pid=$!
echo "$pid"
read -r _ignored
kill -TERM "$pid" 2>/dev/null
wait "$pid"
echo "exit $?" >>"$log"
if [ "$reset" = 1 ] && [ ! -e "$dir/.keep-node" ]; then "$bin" reset --data-dir "$dir" >>"$log" 2>&1; fi
if [ "$owned" = 1 ]; then rm -rf "$dir"; fi
"#;

/// A running `nuage server`.
pub struct NuageServer {
    /// The data dir (kept after the server stops, for restart tests).
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub api: String,
    /// `http://127.0.0.1:PORT`.
    pub aws: String,
    pid: u32,
    wrapper: Child,
    stdin: Option<ChildStdin>,
    cache: tempfile::TempDir,
}

impl NuageServer {
    /// Starts `bin server` in a fresh temp data dir, with no agent.
    pub fn start(bin: &str) -> Self {
        // The wrapper removes the dir once the server has stopped: a server
        // kept in a `static` is never dropped, but its wrapper still ends
        // when the test process exits.
        let owned = tempfile::Builder::new()
            .prefix("nuage-test-")
            .tempdir()
            .expect("temp dir")
            .keep();
        Self::spawn(bin, &owned, &["--no-agent"], true)
    }

    /// Starts `bin server` on port 0 in `dir` with extra arguments. Panics if
    /// it does not come up (the test cannot run).
    pub fn start_in(bin: &str, dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(bin, dir, extra, false)
    }

    fn spawn(bin: &str, dir: &Path, extra: &[&str], owned: bool) -> Self {
        // A server with an agent leaves containers running when it stops
        // (the next one adopts them): the wrapper resets the node after it.
        let reset = !extra.contains(&"--no-agent");
        let endpoints = dir.join("endpoints.json");
        let _ = std::fs::remove_file(&endpoints);
        std::fs::create_dir_all(dir).expect("create data dir");
        let log = dir.join("server.log");
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("nuage-server-wrapper")
            .arg(&log)
            .arg(if reset { "1" } else { "0" })
            .arg(if owned { "1" } else { "0" })
            .arg(bin)
            .arg("server")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--aws-listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sh for nuage server");
        let stdin = wrapper.stdin.take();
        let mut line = String::new();
        BufReader::new(wrapper.stdout.take().expect("wrapper stdout"))
            .read_line(&mut line)
            .expect("read server pid");
        let pid: u32 = line.trim().parse().expect("server pid");
        let deadline = Instant::now() + START_TIMEOUT;
        let (api, aws) = loop {
            if let Ok(text) = std::fs::read_to_string(&endpoints) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    let api = v["api"].as_str().unwrap_or_default().to_string();
                    let aws = v["aws"].as_str().unwrap_or_default().to_string();
                    break (api, aws);
                }
            }
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                alive(pid) && Instant::now() < deadline,
                "nuage server did not start:\n{log_text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Self {
            dir: dir.to_path_buf(),
            api,
            aws,
            pid,
            wrapper,
            stdin,
            cache: tempfile::tempdir().expect("kubectl cache dir"),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A `kubectl` command with this server's kubeconfig and a private
    /// discovery cache.
    pub fn kubectl_cmd(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.cache.path())
            .env("HOME", self.cache.path())
            .stdin(Stdio::null());
        c
    }

    /// Runs kubectl with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd().args(args).output().expect("run kubectl")
    }

    /// Runs kubectl with `args` and `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl, asserts it succeeded, returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, asserts it failed, returns its stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Sends SIGTERM and waits; returns the exit status line of the log
    /// (`exit 0` on a clean stop) and how long the stop took.
    pub fn stop(mut self) -> (String, Duration) {
        let t = Instant::now();
        drop(self.stdin.take());
        let _ = self.wrapper.wait();
        let took = t.elapsed();
        let status = self
            .log()
            .lines()
            .rev()
            .find(|l| l.starts_with("exit "))
            .unwrap_or("no exit status")
            .to_string();
        (status, took)
    }

    /// Like [`stop`](Self::stop), but leaves the node's containers running
    /// for the next server on this data dir to adopt.
    pub fn stop_without_reset(self) -> (String, Duration) {
        let marker = self.dir.join(".keep-node");
        std::fs::write(&marker, "").expect("write .keep-node");
        let dir = self.dir.clone();
        let out = self.stop();
        let _ = std::fs::remove_file(dir.join(".keep-node"));
        out
    }

    /// Kills the server with SIGKILL (a crash) and waits for it to be gone.
    pub fn kill9(mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        drop(self.stdin.take());
        let _ = self.wrapper.wait();
    }
}

impl Drop for NuageServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.wrapper.wait();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Polls `check` until it returns `Ok` or `timeout` passes; then panics
/// with `what` and the last error `check` gave (the state seen last).
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last seen:\n{last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes (then panics
/// with `what`). Condition waits in tests go through this, never bare sleeps.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Flags that give a server's agent its own bridge, pod CIDR and node name,
/// so tests running at once on one machine never share them: a random /24
/// in 10.200.0.0–10.229.255.0 that no host route overlaps.
pub fn isolated_node_flags() -> Vec<String> {
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ ((std::process::id() as u64) << 20);
    let mut next = || {
        // xorshift: good enough to spread tests over the range.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (b, c) = loop {
        let (b, c) = (200 + next() % 30, next() % 256);
        if !routes.contains(&format!("10.{b}.{c}.")) {
            break (b, c);
        }
    };
    let tag = format!("{:06x}", next() & 0xff_ffff);
    vec![
        "--bridge".into(),
        format!("nb{tag}"),
        "--pod-cidr".into(),
        format!("10.{b}.{c}.0/24"),
        "--node-name".into(),
        format!("node-{tag}"),
    ]
}
