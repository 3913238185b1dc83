//! The container runtimes with real runc, crun and processes: lifecycle,
//! exit codes, signals, OOM kills, logs, exec (piped and on a terminal),
//! re-adoption by a fresh runtime instance (an agent restart) and cleanup.
//!
//! Each test builds a one-layer busybox image by hand, uses unique ids and a
//! private temp dir, and removes every container it started, also when it
//! fails (the `Fixture`'s Drop).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nuage_agent::images::{Image, ImageConfig};
use nuage_agent::runtime::cgroups::{CgroupMode, Cgroups};
use nuage_agent::runtime::{
    spec, ContainerConfig, ContainerState, ContainerStatus, Engine, ExecSpec, Mount, OciRuntime,
    ProcessRuntime, Reader, Resources, Runtime, RuntimeOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(30);
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "dd", "hostname", "true", "false", "tty", "stty",
];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Oci(Engine),
    Process,
}

struct Fixture {
    tmp: tempfile::TempDir,
    kind: Kind,
    runtime: Arc<dyn Runtime>,
    image: Image,
    /// Containers to remove at the end, whatever happens.
    started: Vec<String>,
}

impl Fixture {
    /// `None` (with a message) when the OCI runtime is not installed.
    fn new(kind: Kind) -> Option<Fixture> {
        let tmp = tempfile::Builder::new()
            .prefix("nuage-rt-")
            .tempdir()
            .unwrap();
        if let Kind::Oci(engine) = kind {
            let installed = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"]
                .iter()
                .any(|d| Path::new(d).join(engine.name()).exists());
            if !installed {
                eprintln!("skipped: {engine} is not installed");
                return None;
            }
        }
        let runtime = open_runtime(kind, &tmp.path().join("state"));
        let layer = tmp.path().join("layers/busybox");
        std::fs::create_dir_all(layer.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", layer.join("bin/busybox"))
            .expect("busybox-static is installed");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet)).unwrap();
        }
        let image = Image {
            id: "sha256:test".into(),
            name: "test/busybox:latest".into(),
            layers: vec![layer],
            config: ImageConfig {
                env: vec!["PATH=/bin".into()],
                ..Default::default()
            },
        };
        Some(Fixture {
            tmp,
            kind,
            runtime,
            image,
            started: Vec::new(),
        })
    }

    fn config(&self, name: &str, argv: &[&str]) -> ContainerConfig {
        let id = format!("rt-{name}-{:08x}", rand::random::<u32>());
        ContainerConfig {
            pod_uid: format!("pod-{:08x}", rand::random::<u32>()),
            name: name.into(),
            image: self.image.clone(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![
                ("PATH".into(), "/bin".into()),
                ("GREETING".into(), "hi".into()),
            ],
            working_dir: String::new(),
            user: None,
            hostname: format!("host-{name}"),
            mounts: Vec::new(),
            resources: Resources::default(),
            netns: None,
            log_path: self.tmp.path().join("logs").join(format!("{id}.log")),
            work_dir: self.tmp.path().join("work").join(&id),
            id,
        }
    }

    async fn start(&mut self, config: &ContainerConfig) -> ContainerStatus {
        self.started.push(config.id.clone());
        let status = self.runtime.start(config).await.expect("start");
        assert_eq!(status.id, config.id);
        // A short command may be done already.
        let started = matches!(status.state, ContainerState::Running { pid } if pid > 0);
        assert!(
            started || matches!(status.state, ContainerState::Exited { .. }),
            "{status:?}"
        );
        status
    }

    async fn run_to_exit(&mut self, config: &ContainerConfig) -> (i32, bool) {
        self.start(config).await;
        let status = tokio::time::timeout(TIMEOUT, self.runtime.wait(&config.id))
            .await
            .expect("container exits in time")
            .expect("wait");
        match status.state {
            ContainerState::Exited {
                exit_code,
                oom_killed,
                ..
            } => (exit_code, oom_killed),
            other => panic!("wait returned {other:?}"),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let runtime = Arc::clone(&self.runtime);
        let ids = std::mem::take(&mut self.started);
        // Drop cannot await, and may run inside the test's runtime: clean up
        // from a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for id in ids {
                    if let Err(e) = runtime.remove(&id).await {
                        eprintln!("cleanup of {id}: {e:#}");
                    }
                }
            });
        })
        .join();
    }
}

fn open_runtime(kind: Kind, state_dir: &Path) -> Arc<dyn Runtime> {
    let mut options = RuntimeOptions::new(env!("CARGO_BIN_EXE_nuage"), state_dir);
    match kind {
        Kind::Oci(engine) => {
            options.engine = Some(engine);
            Arc::new(OciRuntime::new(options).expect("the OCI runtime works on this host"))
        }
        Kind::Process => Arc::new(ProcessRuntime::new(options).unwrap()),
    }
}

fn log_records(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        // Drop the timestamp: "<time> stdout F hello" → "stdout F hello".
        .map(|l| {
            l.split_once(' ')
                .map(|(_, rest)| rest.to_string())
                .unwrap_or_default()
        })
        .collect()
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tick.tick().await;
    }
}

fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

/// What `remove` must leave: no mount, no cgroup, no process, no files.
fn assert_gone(fx: &Fixture, config: &ContainerConfig, pid: Option<u32>) {
    assert!(
        !mounted(&config.work_dir.join("rootfs")),
        "rootfs still mounted"
    );
    assert!(!config.work_dir.exists(), "work dir left behind");
    assert!(
        !fx.tmp.path().join("state").join(&config.id).exists(),
        "state dir left behind"
    );
    if let Kind::Oci(_) = fx.kind {
        let cgroups = Cgroups::host(CgroupMode::detect());
        assert!(
            !cgroups.exists(&spec::cgroup_path(config)),
            "cgroup left behind"
        );
    }
    if let Some(pid) = pid {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.rsplit_once(") ").unwrap().1.starts_with('Z'))
            .unwrap_or(false);
        assert!(!alive, "process {pid} still runs");
    }
}

async fn echo_hello(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    let config = fx.config(
        "echo",
        &["sh", "-c", "echo hello; echo oops >&2; echo $GREETING"],
    );
    assert_eq!(fx.run_to_exit(&config).await, (0, false));
    let records = log_records(&config.log_path);
    for want in ["stdout F hello", "stderr F oops", "stdout F hi"] {
        assert!(
            records.iter().any(|r| r == want),
            "{want:?} not in {records:?}"
        );
    }
    let listed = fx.runtime.list().await.unwrap();
    assert!(listed.iter().any(
        |s| s.id == config.id && matches!(s.state, ContainerState::Exited { exit_code: 0, .. })
    ));
    fx.runtime.remove(&config.id).await.unwrap();
    fx.runtime
        .remove(&config.id)
        .await
        .expect("remove is idempotent");
    assert_gone(&fx, &config, None);
    assert_eq!(fx.runtime.status(&config.id).await.unwrap(), None);
}

async fn exit_code(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    let config = fx.config("exit3", &["sh", "-c", "exit 3"]);
    assert_eq!(fx.run_to_exit(&config).await, (3, false));
}

async fn sigterm_and_sigkill(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    // PID 1 of a PID namespace ignores signals it has no handler for (as in
    // Kubernetes): the command traps TERM, and says when the trap is set.
    let config = fx.config(
        "term",
        &[
            "sh",
            "-c",
            "trap 'exit 143' TERM; echo ready; sleep 600 & wait",
        ],
    );
    fx.start(&config).await;
    let log = config.log_path.clone();
    wait_until("the trap", || {
        log_records(&log).iter().any(|r| r == "stdout F ready")
    })
    .await;
    fx.runtime.kill(&config.id, 15).await.unwrap();
    let status = tokio::time::timeout(TIMEOUT, fx.runtime.wait(&config.id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            status.state,
            ContainerState::Exited {
                exit_code: 143,
                oom_killed: false,
                ..
            }
        ),
        "{status:?}"
    );

    let config = fx.config("kill", &["sleep", "600"]);
    fx.start(&config).await;
    fx.runtime.kill(&config.id, 9).await.unwrap();
    let status = tokio::time::timeout(TIMEOUT, fx.runtime.wait(&config.id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            status.state,
            ContainerState::Exited {
                exit_code: 137,
                oom_killed: false,
                ..
            }
        ),
        "{status:?}"
    );
    fx.runtime
        .kill(&config.id, 9)
        .await
        .expect("killing an exited container is fine");
}

async fn oom_killed(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    let mut config = fx.config(
        "oom",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    config.resources.memory_limit = Some(32 << 20);
    config.resources.pids_limit = Some(32);
    config.resources.cpu_limit_millis = Some(500);
    config.resources.cpu_request_millis = Some(100);
    assert_eq!(fx.run_to_exit(&config).await, (137, true));
    fx.runtime.remove(&config.id).await.unwrap();
    assert_gone(&fx, &config, None);
}

async fn hostname_and_exec(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    // A moment of life first: see the exit-status race in the issue note.
    let config = fx.config("host", &["sh", "-c", "sleep 0.2; hostname"]);
    assert_eq!(fx.run_to_exit(&config).await, (0, false));
    let want = format!("stdout F {}", config.hostname);
    assert_eq!(log_records(&config.log_path), vec![want]);

    let etc_hostname = fx.tmp.path().join("etc-hostname");
    let mut config = fx.config("exec", &["sleep", "600"]);
    std::fs::write(&etc_hostname, format!("{}\n", config.hostname)).unwrap();
    config.mounts.push(Mount {
        source: etc_hostname,
        destination: "/etc/hostname".into(),
        read_only: true,
    });
    fx.start(&config).await;

    let argv = vec!["cat".to_string(), "/etc/hostname".to_string()];
    let mut session = fx
        .runtime
        .exec(
            &config.id,
            ExecSpec {
                argv: argv.clone(),
                tty: false,
                stdin: false,
            },
        )
        .await
        .unwrap();
    let mut out = String::new();
    session.stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, format!("{}\n", config.hostname));
    assert_eq!(session.exit.await.unwrap(), 0);

    let mut session = fx
        .runtime
        .exec(
            &config.id,
            ExecSpec {
                argv,
                tty: true,
                stdin: true,
            },
        )
        .await
        .unwrap();
    (session.resize.as_ref().expect("a tty can be resized"))(120, 40).unwrap();
    assert!(session.stderr.is_none());
    let mut out = String::new();
    session.stdout.read_to_string(&mut out).await.unwrap();
    // The terminal turns "\n" into "\r\n".
    assert_eq!(out, format!("{}\r\n", config.hostname));
    assert_eq!(session.exit.await.unwrap(), 0);

    // stdin reaches the process; the exit code comes back.
    let argv = ["sh", "-c", "read x; exit $x"].map(String::from).to_vec();
    let mut session = fx
        .runtime
        .exec(
            &config.id,
            ExecSpec {
                argv,
                tty: false,
                stdin: true,
            },
        )
        .await
        .unwrap();
    let mut stdin = session.stdin.take().unwrap();
    stdin.write_all(b"7\n").await.unwrap();
    drop(stdin);
    assert_eq!(session.exit.await.unwrap(), 7);

    let stats = fx.runtime.stats(&config.id).await.unwrap();
    assert!(stats.memory_bytes > 0, "{stats:?}");
}

async fn exec_on_host(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    let config = fx.config("pexec", &["sleep", "600"]);
    fx.start(&config).await;
    let argv = ["sh", "-c", "echo $GREETING"].map(String::from).to_vec();
    let mut session = fx
        .runtime
        .exec(
            &config.id,
            ExecSpec {
                argv: argv.clone(),
                tty: false,
                stdin: false,
            },
        )
        .await
        .unwrap();
    let mut out = String::new();
    session.stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "hi\n");
    assert_eq!(session.exit.await.unwrap(), 0);
    let mut session = fx
        .runtime
        .exec(
            &config.id,
            ExecSpec {
                argv,
                tty: true,
                stdin: false,
            },
        )
        .await
        .unwrap();
    let mut out = String::new();
    session.stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "hi\r\n");
    assert_eq!(session.exit.await.unwrap(), 0);
}

async fn readopted_after_restart(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    let config = fx.config("adopt", &["sleep", "600"]);
    let pid = match fx.start(&config).await.state {
        // `sleep 600` cannot be done yet.
        ContainerState::Running { pid } => pid,
        other => panic!("{other:?}"),
    };
    // A fresh instance over the same state dir: the agent restarted.
    let fresh = open_runtime(kind, &fx.tmp.path().join("state"));
    let listed = fresh.list().await.unwrap();
    let found = listed.iter().find(|s| s.id == config.id).expect("listed");
    assert_eq!(found.state, ContainerState::Running { pid });
    assert_eq!(
        (found.name.as_str(), found.pod_uid.as_str()),
        (config.name.as_str(), config.pod_uid.as_str())
    );
    let waiter = {
        let fresh = Arc::clone(&fresh);
        let id = config.id.clone();
        tokio::spawn(async move { fresh.wait(&id).await })
    };
    fresh.kill(&config.id, 9).await.unwrap();
    let status = tokio::time::timeout(TIMEOUT, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(status.state, ContainerState::Exited { exit_code: 137, .. }),
        "{status:?}"
    );
    fresh.remove(&config.id).await.unwrap();
    assert_gone(&fx, &config, Some(pid));
}

async fn remove_running(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    let config = fx.config("rm", &["sh", "-c", "sleep 600 & sleep 600"]);
    let pid = match fx.start(&config).await.state {
        // `sleep 600` cannot be done yet.
        ContainerState::Running { pid } => pid,
        other => panic!("{other:?}"),
    };
    if let Kind::Oci(_) = kind {
        assert!(mounted(&config.work_dir.join("rootfs")));
    }
    fx.runtime.remove(&config.id).await.unwrap();
    assert_gone(&fx, &config, Some(pid));
}

async fn bad_command_fails_to_start(kind: Kind) {
    let Some(fx) = Fixture::new(kind) else { return };
    let config = fx.config("bad", &["/no/such/command"]);
    let result = fx.runtime.start(&config).await;
    match kind {
        // runc and crun refuse to start it: the start fails and leaves nothing.
        Kind::Oci(_) => {
            let err = format!("{:#}", result.expect_err("no such command"));
            assert!(
                err.contains("no such") || err.contains("not found") || err.contains("No such"),
                "{err}"
            );
            assert_gone(&fx, &config, None);
        }
        Kind::Process => {
            assert!(result.is_err());
            assert_gone(&fx, &config, None);
        }
    }
}

/// Reads `reader` into `seen` until `want` shows up.
async fn read_until(reader: &mut Reader, seen: &mut String, want: &str) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut buf = [0u8; 1024];
    while !seen.contains(want) {
        let n = tokio::time::timeout_at(deadline, reader.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {want:?} in {seen:?}"))
            .unwrap();
        assert!(n > 0, "output ended before {want:?}: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// A terminal exec gets a real terminal: in the container's /dev/pts for
/// runc and crun (sent over the console socket), its controlling terminal
/// (`/dev/tty` opens), and resizes reach it.
async fn exec_on_a_terminal(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    let config = fx.config("tty", &["sleep", "600"]);
    fx.start(&config).await;
    let script = "tty; : </dev/tty && echo ctty=yes; read go; stty size; exit 5";
    let mut session = fx
        .runtime
        .exec(
            &config.id,
            ExecSpec {
                argv: ["sh", "-c", script].map(String::from).to_vec(),
                tty: true,
                stdin: true,
            },
        )
        .await
        .unwrap();
    assert!(session.stderr.is_none());
    let mut seen = String::new();
    read_until(&mut session.stdout, &mut seen, "ctty=yes\r\n").await;
    assert!(seen.starts_with("/dev/pts/"), "{seen:?}");
    (session.resize.as_ref().expect("a terminal resizes"))(123, 45).unwrap();
    let mut stdin = session.stdin.take().expect("stdin was asked for");
    stdin.write_all(b"go\n").await.unwrap();
    read_until(&mut session.stdout, &mut seen, "45 123\r\n").await;
    let code = tokio::time::timeout(TIMEOUT, session.exit).await.unwrap();
    assert_eq!(code.unwrap(), 5);
    // The output ends with the process.
    let mut rest = String::new();
    tokio::time::timeout(TIMEOUT, session.stdout.read_to_string(&mut rest))
        .await
        .expect("the terminal's output ends")
        .unwrap();
}

/// The host pid of the process whose argv is `sleep SECONDS` (argv[0] may be
/// a path into the image's layers).
fn find_sleep(seconds: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (argv.len() >= 2 && argv[0].ends_with(b"sleep") && argv[1] == seconds.as_bytes())
            .then_some(pid)
    })
}

/// Killing a session kills the exec'd process itself (not only `runc
/// exec`, which would leave it running in the container), with or without
/// a terminal.
async fn killing_a_session_kills_the_process(kind: Kind) {
    let Some(mut fx) = Fixture::new(kind) else {
        return;
    };
    let config = fx.config("killexec", &["sleep", "600"]);
    fx.start(&config).await;
    for tty in [false, true] {
        // A duration no other test's sleep has: it names the process.
        let seconds = (100_000 + rand::random::<u32>() % 800_000).to_string();
        let session = fx
            .runtime
            .exec(
                &config.id,
                ExecSpec {
                    argv: vec!["sleep".into(), seconds.clone()],
                    tty,
                    stdin: false,
                },
            )
            .await
            .unwrap();
        let mut pid = None;
        wait_until("the exec'd process", || {
            pid = find_sleep(&seconds);
            pid.is_some()
        })
        .await;
        let pid = pid.unwrap();
        (session.kill.as_ref().expect("the runtime kills execs"))();
        let code = tokio::time::timeout(TIMEOUT, session.exit)
            .await
            .expect("the exec ends once killed");
        assert_eq!(code.unwrap(), 137, "tty={tty}");
        wait_until("the killed process to be gone", || {
            !Path::new(&format!("/proc/{pid}")).exists()
        })
        .await;
    }
    // The container itself runs on.
    assert!(matches!(
        fx.runtime.status(&config.id).await.unwrap().unwrap().state,
        ContainerState::Running { .. }
    ));
}

macro_rules! runtime_tests {
    ($module:ident, $kind:expr, [$($test:ident),* $(,)?]) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($kind).await;
                }
            )*
        }
    };
}

runtime_tests!(
    runc,
    Kind::Oci(Engine::Runc),
    [
        echo_hello,
        exit_code,
        sigterm_and_sigkill,
        oom_killed,
        hostname_and_exec,
        exec_on_a_terminal,
        killing_a_session_kills_the_process,
        readopted_after_restart,
        remove_running,
        bad_command_fails_to_start,
    ]
);
runtime_tests!(
    crun,
    Kind::Oci(Engine::Crun),
    [
        echo_hello,
        exit_code,
        sigterm_and_sigkill,
        oom_killed,
        hostname_and_exec,
        exec_on_a_terminal,
        killing_a_session_kills_the_process,
        readopted_after_restart,
        remove_running,
        bad_command_fails_to_start,
    ]
);
runtime_tests!(
    process,
    Kind::Process,
    [
        echo_hello,
        exit_code,
        sigterm_and_sigkill,
        exec_on_host,
        exec_on_a_terminal,
        killing_a_session_kills_the_process,
        readopted_after_restart,
        remove_running,
        bad_command_fails_to_start,
    ]
);

#[test]
fn probing_picks_a_working_runtime_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let found = nuage_agent::runtime::detect::detect(None, tmp.path());
    let elapsed = started.elapsed();
    let Ok(engine) = found else {
        eprintln!("skipped: no OCI runtime here: {found:?}");
        return;
    };
    assert!(engine
        .version_string()
        .starts_with(&format!("{}://", engine.engine)));
    // The first probe runs a container; later ones are cached.
    assert!(
        elapsed < Duration::from_millis(500),
        "probe took {elapsed:?}"
    );
    let again = std::time::Instant::now();
    nuage_agent::runtime::detect::detect(None, tmp.path()).unwrap();
    assert!(again.elapsed() < Duration::from_millis(5));
    let _: PathBuf = engine.binary;
}
