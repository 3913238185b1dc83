//! The floor under the agent's pod start: the same container started by a
//! bare OCI runtime (crun or runc), N times, one after another.
//!
//! - `--mode run`: `ENGINE run` of a bundle whose process is `true`; the
//!   time from spawning the runtime until it exits (the container ran and
//!   was deleted).
//! - `--mode start`: `ENGINE create` then `ENGINE start` of a bundle whose
//!   process is `sleep 3600`; the time until `start` returns (the process
//!   runs), then `ENGINE delete --force` (timed separately).
//!
//! crun on a cgroup v1/v2 hybrid host runs the way the agent runs it (and
//! host.md says): in a private mount namespace with the unified hierarchy
//! unmounted, through `unshare`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::stats::latency_figures;

/// One runtime call may take this long before the run fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The runtime's command prefix, with the hybrid-host wrapper for crun.
fn engine_command(engine: &str, root: &str) -> Vec<String> {
    let mut words = Vec::new();
    if engine == "crun" && unified_mounted() {
        words.extend(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "umount /sys/fs/cgroup/unified && exec \"$0\" \"$@\"",
            ]
            .map(String::from),
        );
    }
    words.extend([engine.to_string(), "--root".into(), root.to_string()]);
    words
}

/// Whether cgroup2 is mounted at `/sys/fs/cgroup/unified` (a hybrid host).
fn unified_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(4) == Some("/sys/fs/cgroup/unified"))
    })
}

/// Runs `prefix args…` to completion within [`CALL_TIMEOUT`].
fn call(prefix: &[String], args: &[&str]) -> Result<(), String> {
    let mut child = Command::new(&prefix[0])
        .args(&prefix[1..])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", prefix[0]))?;
    let deadline = Instant::now() + CALL_TIMEOUT;
    // Polled with a short blocking wait: `wait_timeout` is not in std, and
    // a plain `wait` could hang the whole run.
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return Err(format!(
                "{} {}: {status}: {}",
                prefix.join(" "),
                args.join(" "),
                err.trim()
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} {}: no exit in {CALL_TIMEOUT:?}",
                prefix[0],
                args.join(" ")
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `oci-floor`: prints `{name}_p50` … for `--n` starts.
pub fn run(args: &Args) -> Result<(), String> {
    let engine = args.str("engine")?;
    let bundle = args.str("bundle")?;
    let root = args.str("root")?;
    let n: usize = args.num("n", 30)?;
    let mode = args.opt("mode").unwrap_or("run");
    let name = args
        .opt("name")
        .map(str::to_string)
        .unwrap_or_else(|| format!("floor_{engine}_{mode}"));
    if !Path::new(bundle).join("config.json").exists() {
        return Err(format!("{bundle}/config.json is missing"));
    }
    let prefix = engine_command(engine, root);
    let mut starts = Vec::new();
    let mut deletes = Vec::new();
    for i in 0..n {
        let id = format!("nbf{}-{i}", std::process::id());
        let t0 = Instant::now();
        let result = match mode {
            "run" => call(&prefix, &["run", "-b", bundle, &id]),
            "start" => call(&prefix, &["create", "-b", bundle, &id])
                .and_then(|()| call(&prefix, &["start", &id])),
            other => return Err(format!("--mode {other:?}: run or start")),
        };
        starts.push(t0.elapsed());
        // A container left behind (a failed run, or every `start`) goes now.
        let t1 = Instant::now();
        let deleted = call(&prefix, &["delete", "--force", &id]);
        if mode == "start" {
            deleted?;
            deletes.push(t1.elapsed());
        }
        result?;
    }
    latency_figures(&name, &starts);
    if !deletes.is_empty() {
        latency_figures(&format!("{name}_delete"), &deletes);
    }
    Ok(())
}
