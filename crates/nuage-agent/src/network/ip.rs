//! Running iproute2's `ip`: a batch of commands in one process, optionally
//! inside a named network namespace, and JSON queries.

use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{NetworkError, Result};

/// `ip`'s path: agents may run with a PATH lacking the sbin directories.
fn ip_program() -> &'static str {
    static PROGRAM: OnceLock<&'static str> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("ip")
    })
}

/// Commands for one `ip -batch -` process, one per line, stopping at the
/// first that fails.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    netns: Option<String>,
    lines: Vec<String>,
}

impl Batch {
    /// A batch run in the host's namespace.
    pub fn new() -> Self {
        Batch::default()
    }

    /// A batch run inside the named network namespace (`ip -n NAME`).
    pub fn in_netns(name: &str) -> Self {
        Batch {
            netns: Some(name.to_string()),
            lines: Vec::new(),
        }
    }

    /// Adds a command (without the leading `ip`). Its words must not hold
    /// spaces: every name passed here is checked for that beforehand.
    pub fn push(&mut self, line: String) -> &mut Self {
        self.lines.push(line);
        self
    }

    /// Runs the batch; fails with `ip`'s message if a command fails.
    pub async fn run(self) -> Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let mut command = Command::new(ip_program());
        if let Some(netns) = &self.netns {
            command.args(["-n", netns]);
        }
        command
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| NetworkError::Spawn {
            program: ip_program().to_string(),
            source,
        })?;
        let mut input = self.lines.join("\n");
        input.push('\n');
        let mut stdin = child.stdin.take().expect("stdin was piped");
        // A write error means `ip` exited early; its stderr says why.
        let _ = stdin.write_all(input.as_bytes()).await;
        drop(stdin);
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| NetworkError::Spawn {
                program: ip_program().to_string(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let what = match &self.netns {
            Some(ns) => format!("-n {ns} -batch ({})", self.lines.join("; ")),
            None => format!("-batch ({})", self.lines.join("; ")),
        };
        Err(NetworkError::Ip {
            what,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Runs `ip -j ARGS` and parses its JSON answer.
pub(crate) async fn json(args: &[&str]) -> Result<serde_json::Value> {
    let output = Command::new(ip_program())
        .arg("-j")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| NetworkError::Spawn {
            program: ip_program().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetworkError::Ip {
            what: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| NetworkError::Ip {
        what: args.join(" "),
        stderr: format!("unreadable JSON answer: {e}"),
    })
}
