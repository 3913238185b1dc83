//! `nuage shim STATE_DIR`: the supervisor of one container (the role of
//! conmon or containerd-shim). Synchronous and single-threaded: it forks
//! and execs, and must not depend on the agent that started it.
//!
//! It leaves the agent's session, becomes a child subreaper (so the
//! container's init, once the OCI runtime has exited, is its child), starts
//! the container with stdout and stderr on pipes, reports `ok` or `error:
//! …` on its own stdout (read by [`super::supervise`]), then copies the
//! pipes into the CRI log file, reaps every process that ends up as its
//! child, and when the container's init exits writes the exit record and
//! exits itself.

use std::fs;
use std::io::{self, PipeReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions, WaitStatus};

use super::cgroups::Cgroups;
use super::logs::{CriLogWriter, Stream};
use super::state::{self, ExitRecord, Launch, ShimSpec, Started};

/// How often orphans (processes reparented to the shim) are reaped even
/// when nothing else happens.
const REAP_INTERVAL: Duration = Duration::from_secs(1);
/// After init exits, how long its descendants may keep the log pipes open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Entry point: `args` are the words after `shim`.
pub fn main(args: Vec<String>) -> ExitCode {
    let [dir] = args.as_slice() else {
        eprintln!("usage: nuage shim STATE_DIR");
        return ExitCode::from(2);
    };
    match run(Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nuage shim: {e:#}");
            // The runtime waits for one line; make sure it gets one.
            let _ = writeln!(io::stdout(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The container's init and its output pipes.
struct Launched {
    pid: Pid,
    stdout: PipeReader,
    stderr: PipeReader,
    /// The process runtime's container is a process group without a PID
    /// namespace: its leftovers are killed when init exits.
    kill_group_on_exit: bool,
}

fn run(dir: &Path) -> anyhow::Result<()> {
    let spec: ShimSpec = state::read_json(&dir.join(state::SPEC_FILE))?
        .with_context(|| format!("no {} in {}", state::SPEC_FILE, dir.display()))?;
    // Out of the agent's session and process group: the agent's death or a
    // signal to its group must not reach the container.
    let _ = rustix::process::setsid();
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("become a child subreaper")?;
    let mut log = CriLogWriter::open(&spec.log_path)
        .with_context(|| format!("open log {}", spec.log_path.display()))?;

    let launched = match launch(&spec, dir) {
        Ok(l) => l,
        Err(e) => {
            println!("error: {e:#}");
            return Err(e);
        }
    };
    let started = Started {
        pid: launched.pid.as_raw_nonzero().get() as u32,
        shim_pid: std::process::id(),
        started_at: state::unix_now(),
    };
    state::write_json(&dir.join(state::STARTED_FILE), &started).context("write started record")?;
    println!("ok");
    let _ = io::stdout().flush();

    let exit_code = supervise(launched, &mut log)?;
    // Read before anyone removes the cgroup: the counter dies with it.
    let oom_kills = spec
        .cgroup
        .as_ref()
        .map(|c| Cgroups::host(c.mode).oom_kills(&c.path))
        .unwrap_or(0);
    let record = ExitRecord {
        exit_code,
        oom_killed: oom_kills > 0,
        finished_at: state::unix_now(),
    };
    state::write_json(&dir.join(state::EXIT_FILE), &record).context("write exit record")?;
    Ok(())
}

fn launch(spec: &ShimSpec, dir: &Path) -> anyhow::Result<Launched> {
    let (stdout_r, stdout_w) = io::pipe()?;
    let (stderr_r, stderr_w) = io::pipe()?;
    match &spec.launch {
        Launch::Oci {
            engine,
            global_args,
            bundle,
        } => {
            let pid_file = dir.join("container.pid");
            let _ = fs::remove_file(&pid_file);
            let (program, prefix) = engine.split_first().context("empty engine command")?;
            // The `Command` owns the write ends and drops them after spawn,
            // so the pipes reach EOF when the container's processes are gone.
            let status = Command::new(program)
                .args(prefix)
                .args(global_args)
                .args(["run", "-d", "--pid-file"])
                .arg(&pid_file)
                .arg("--bundle")
                .arg(bundle)
                .arg(&spec.id)
                .stdin(Stdio::null())
                .stdout(stdout_w)
                .stderr(stderr_w)
                .status()
                .with_context(|| format!("run {program}"))?;
            if !status.success() {
                // The runtime's own complaint went to the stderr pipe; with
                // no container running, the pipe is at EOF after it.
                let mut why = String::new();
                let mut stderr_r = stderr_r;
                let _ = stderr_r.read_to_string(&mut why);
                bail!("{program} run failed ({status}): {}", why.trim());
            }
            let text = fs::read_to_string(&pid_file).context("read the container's pid file")?;
            let pid = text
                .trim()
                .parse()
                .ok()
                .and_then(Pid::from_raw)
                .with_context(|| format!("bad pid file {text:?}"))?;
            Ok(Launched {
                pid,
                stdout: stdout_r,
                stderr: stderr_r,
                kill_group_on_exit: false,
            })
        }
        Launch::Process { argv, env, cwd, .. } => {
            let (program, args) = argv.split_first().context("empty argv")?;
            let child = Command::new(program)
                .args(args)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .current_dir(cwd)
                .stdin(Stdio::null())
                .stdout(stdout_w)
                .stderr(stderr_w)
                // Its own group, so `kill` reaches everything it starts.
                .process_group(0)
                .spawn()
                .with_context(|| format!("start {program}"))?;
            let pid = Pid::from_raw(child.id() as i32).context("child pid")?;
            Ok(Launched {
                pid,
                stdout: stdout_r,
                stderr: stderr_r,
                kill_group_on_exit: true,
            })
        }
    }
}

/// Copies output until init has exited and its output is drained; returns
/// init's exit code (128 + signal when a signal killed it).
fn supervise(launched: Launched, log: &mut CriLogWriter) -> anyhow::Result<i32> {
    let init = launched.pid;
    // A pidfd wakes us the moment init exits; without one (old kernels) the
    // reap interval does.
    let pidfd: Option<OwnedFd> = rustix::process::pidfd_open(init, PidfdFlags::empty()).ok();
    let mut pipes: [Option<PipeReader>; 2] = [Some(launched.stdout), Some(launched.stderr)];
    let streams = [Stream::Stdout, Stream::Stderr];
    let mut init_status: Option<i32> = None;
    // Set when the pidfd said init exited: if init then cannot be reaped
    // (it was not reparented to us), its status is unknown, and polling the
    // still-readable pidfd again would spin.
    let mut init_gone = false;
    let mut drain_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        if init_status.is_none() {
            init_status = reap_children(init);
            if init_status.is_none() && init_gone {
                eprintln!("nuage shim: init {init:?} exited but is not our child: status unknown");
                init_status = Some(255);
            }
            if init_status.is_some() {
                if launched.kill_group_on_exit {
                    let _ = rustix::process::kill_process_group(init, Signal::KILL);
                }
                drain_deadline = Some(Instant::now() + DRAIN_GRACE);
            }
        } else {
            reap_children(init);
        }
        if let Some(deadline) = drain_deadline {
            if pipes.iter().all(Option::is_none) || Instant::now() >= deadline {
                break;
            }
        }

        let timeout = match drain_deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => REAP_INTERVAL,
        };
        let timeout = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: timeout.subsec_nanos() as i64,
        };
        let mut fds = Vec::with_capacity(3);
        let mut which = Vec::with_capacity(3);
        for (i, pipe) in pipes.iter().enumerate() {
            if let Some(p) = pipe {
                fds.push(PollFd::new(p, PollFlags::IN));
                which.push(Some(i));
            }
        }
        if let (Some(fd), None) = (&pidfd, &init_status) {
            fds.push(PollFd::new(fd, PollFlags::IN));
            which.push(None);
        }
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready: Vec<Option<usize>> = fds
            .iter()
            .zip(&which)
            .filter(|(fd, _)| !fd.revents().is_empty())
            .map(|(_, w)| *w)
            .collect();
        init_gone |= ready.contains(&None);
        let ready = ready.into_iter().flatten();
        drop(fds);
        for i in ready {
            let Some(pipe) = pipes[i].as_mut() else {
                continue;
            };
            match pipe.read(&mut buf) {
                Ok(0) => {
                    pipes[i] = None;
                    log.finish(streams[i])?;
                }
                Ok(n) => log.write(streams[i], &buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("nuage shim: read container {:?}: {e}", streams[i]);
                    pipes[i] = None;
                }
            }
        }
    }
    for (i, pipe) in pipes.iter().enumerate() {
        if pipe.is_some() {
            log.finish(streams[i])?;
        }
    }
    Ok(init_status.expect("the loop ends only after init exited"))
}

/// Reaps every exited child without blocking; returns init's exit code if
/// init was among them.
fn reap_children(init: Pid) -> Option<i32> {
    let mut init_status = None;
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if pid == init {
                    init_status = Some(exit_code(status));
                }
            }
            // Nothing more to reap now (or no children at all).
            Ok(None) | Err(_) => return init_status,
        }
    }
}

fn exit_code(status: WaitStatus) -> i32 {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
    }
}
