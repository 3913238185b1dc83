//! `exec` probes: a command run in the container through the runtime,
//! healthy when it exits 0. On timeout the session is dropped (its pipes
//! close); the runtime has no way to kill one exec'd process.

use std::time::Duration;

use k8s_openapi::api::core::v1::ExecAction;
use tokio::io::AsyncReadExt;

use super::{ProbeResult, ProbeTarget};
use crate::runtime::{ExecSession, ExecSpec, Reader};

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
    let attempt = async {
        let spec = ExecSpec {
            argv,
            tty: false,
            stdin: false,
        };
        let ExecSession {
            stdout,
            stderr,
            exit,
            ..
        } = target
            .runtime
            .exec(target.container_id, spec)
            .await
            .map_err(|e| format!("{e:#}"))?;
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
    match tokio::time::timeout(timeout, attempt).await {
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
        Err(_) => ProbeResult::Failure(format!("command \"{shown}\" timed out")),
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
