//! `exec` probes: a command run in the container through the runtime,
//! healthy when it exits 0. On timeout, or when the probe is dropped before
//! the command ended, the command is killed (the session's kill switch),
//! not left running in the container.

use std::time::Duration;

use k8s_openapi::api::core::v1::ExecAction;
use tokio::io::AsyncReadExt;

use super::{ProbeResult, ProbeTarget};
use crate::runtime::{ExecSession, ExecSpec, KillFn, Reader};

/// How much of the command's output is kept for the event message.
const MAX_OUTPUT: usize = 10 * 1024;

pub(super) async fn probe(
    action: &ExecAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeResult {
    let argv = action.command.clone().unwrap_or_default();
    if argv.is_empty() {
        return ProbeResult::Failure("the exec probe has no command".into());
    }
    let shown = argv.join(" ");
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = || ProbeResult::Failure(format!("command \"{shown}\" timed out"));
    let spec = ExecSpec {
        argv,
        tty: false,
        stdin: false,
    };
    let session =
        match tokio::time::timeout_at(deadline, target.runtime.exec(target.container_id, spec))
            .await
        {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => return ProbeResult::Failure(format!("{e:#}")),
            Err(_) => return timed_out(),
        };
    let ExecSession {
        stdout,
        stderr,
        exit,
        kill,
        ..
    } = session;
    // Armed until the command ends: a probe that overran its timeout, or a
    // hook whose caller gave up on it (the probe future dropped), must not
    // leave its command running in the container, one more each period.
    let mut kill = KillOnDrop(kill);
    let attempt = async {
        let stderr = async {
            match stderr {
                Some(r) => read_capped(r).await,
                None => Vec::new(),
            }
        };
        let (mut output, errors, code) = tokio::join!(read_capped(stdout), stderr, exit);
        let code = code.map_err(|e| format!("command \"{shown}\": {e}"))?;
        output.extend_from_slice(&errors);
        Ok::<_, String>((code, output))
    };
    let result = tokio::time::timeout_at(deadline, attempt).await;
    if result.is_ok() {
        kill.0 = None;
    }
    match result {
        Ok(Ok((0, _))) => ProbeResult::Success,
        Ok(Ok((code, output))) => {
            let output = String::from_utf8_lossy(&output);
            let output = output.trim_end();
            ProbeResult::Failure(if output.is_empty() {
                format!("command \"{shown}\" exited with {code}")
            } else {
                output.to_string()
            })
        }
        Ok(Err(why)) => ProbeResult::Failure(why),
        Err(_) => timed_out(),
    }
}

/// Kills the exec'd command when dropped while still holding the switch.
struct KillOnDrop(Option<KillFn>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(kill) = self.0.take() {
            kill();
        }
    }
}

/// Reads to the end, keeping the first [`MAX_OUTPUT`] bytes; the rest is
/// read and dropped so the command never blocks on a full pipe.
async fn read_capped(mut reader: Reader) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}
