//! `nuage exec-reaper PID_FILE PROGRAM [ARG…]`: waits for a detached
//! exec'd process and exits with its exit code (the role containerd-shim
//! plays for `runc exec -d`).
//!
//! runc takes a console socket only with `-d`: it then exits as soon as the
//! process runs, and the process is reparented to the nearest child
//! subreaper. This small process is that subreaper, so the agent itself
//! need not be one (its shims must stay out of its hands). It runs PROGRAM
//! (`runc exec -d --pid-file PID_FILE …`, stderr inherited so its complaints
//! reach the agent), then reaps until the process named in PID_FILE ends.

use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};
use rustix::process::{Pid, WaitOptions, WaitStatus};

/// The subcommand's name, after `nuage`.
pub const SUBCOMMAND: &str = "exec-reaper";

/// Entry point: `args` are the words after the subcommand.
pub fn main(args: Vec<String>) -> ExitCode {
    let [pid_file, program, program_args @ ..] = args.as_slice() else {
        eprintln!("usage: nuage {SUBCOMMAND} PID_FILE PROGRAM [ARG...]");
        return ExitCode::from(2);
    };
    match run(pid_file, program, program_args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("nuage {SUBCOMMAND}: {e:#}");
            ExitCode::from(255)
        }
    }
}

fn run(pid_file: &str, program: &str, args: &[String]) -> anyhow::Result<u8> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("become a child subreaper")?;
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("run {program}"))?;
    if !status.success() {
        // The runtime said why on the stderr we share.
        return Ok(status.code().unwrap_or(255) as u8);
    }
    let text = std::fs::read_to_string(pid_file).with_context(|| format!("read {pid_file}"))?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{pid_file} holds {text:?}, not a pid"))?;
    let pid = Pid::from_raw(pid).with_context(|| format!("{pid_file} holds pid {pid}"))?;
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((reaped, status))) if reaped == pid => return Ok(exit_code(status)),
            // Another orphan of the runtime's: reaped, nothing more.
            Ok(_) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            // ECHILD: the process was never ours to wait for.
            Err(e) => bail!("wait for pid {}: {e}", pid.as_raw_nonzero()),
        }
    }
}

/// The shell's convention: the code, or 128 + the signal.
fn exit_code(status: WaitStatus) -> u8 {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => (128 + signal) as u8,
        (None, None) => 255,
    }
}
