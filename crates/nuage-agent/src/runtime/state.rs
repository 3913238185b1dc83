//! The runtime's state directory: one directory per container, shared by the
//! runtime (in the agent) and the container's shim. It is the only record of
//! a container on the host, so a restarted agent re-adopts containers by
//! reading it.
//!
//! ```text
//! STATE_DIR/<id>/shim.json     what the shim runs (written by the runtime)
//!               /started.json  pids and start time (written by the shim)
//!               /exit.json     how the container ended (written by the shim)
//!               /shim.stderr   the shim's own diagnostics
//! ```
//!
//! Every record is written to a temporary file and renamed into place, so a
//! reader sees the whole record or none.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cgroups::CgroupMode;

/// What the shim runs, written by the runtime.
pub const SPEC_FILE: &str = "shim.json";
/// The shim's record of a started container.
pub const STARTED_FILE: &str = "started.json";
/// The shim's record of an exited container.
pub const EXIT_FILE: &str = "exit.json";
/// The shim's stderr (for diagnosis).
pub const SHIM_STDERR_FILE: &str = "shim.stderr";

/// Everything the shim needs, and the summary [`super::Runtime::list`] reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimSpec {
    /// Container id.
    pub id: String,
    /// Pod uid.
    pub pod_uid: String,
    /// Container name in the pod.
    pub name: String,
    /// The CRI log file.
    pub log_path: PathBuf,
    /// The container's private work directory.
    pub work_dir: PathBuf,
    /// The container's cgroup, when it has one (read for OOM kills and stats).
    pub cgroup: Option<CgroupRef>,
    /// How to start the container.
    pub launch: Launch,
}

/// A container's cgroup: the hierarchy layout and its path inside it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupRef {
    /// v1, hybrid or v2.
    pub mode: CgroupMode,
    /// The path inside each hierarchy, e.g. `/nuage/<pod_uid>/<id>`.
    pub path: String,
}

/// How the shim starts the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Launch {
    /// `<engine…> run -d --pid-file … --bundle BUNDLE ID`.
    Oci {
        /// The OCI runtime's command prefix (the binary, or the wrapper that
        /// runs it in a private mount namespace).
        engine: Vec<String>,
        /// Extra global options (e.g. `--root DIR`).
        global_args: Vec<String>,
        /// The bundle directory.
        bundle: PathBuf,
    },
    /// The argv as a host process.
    Process {
        /// Full argv, argv\[0\] already resolved to a path.
        argv: Vec<String>,
        /// The whole environment.
        env: Vec<(String, String)>,
        /// Working directory on the host.
        cwd: PathBuf,
        /// The image's layers, bottom first (for `exec` to resolve commands).
        layers: Vec<PathBuf>,
    },
}

/// Written by the shim once the container's init runs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Started {
    /// Host pid of the container's init.
    pub pid: u32,
    /// The shim's pid.
    pub shim_pid: u32,
    /// Unix seconds.
    pub started_at: i64,
}

/// Written by the shim when the container's init has exited.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    /// Exit code, 128 + signal when killed by a signal.
    pub exit_code: i32,
    /// The kernel OOM-killed a process of the container.
    pub oom_killed: bool,
    /// Unix seconds.
    pub finished_at: i64,
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// Writes a record as JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Reads a JSON record; `None` if the file does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_atomic_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EXIT_FILE);
        assert_eq!(read_json::<ExitRecord>(&path).unwrap(), None);
        let record = ExitRecord {
            exit_code: 137,
            oom_killed: true,
            finished_at: 5,
        };
        write_json(&path, &record).unwrap();
        assert_eq!(read_json::<ExitRecord>(&path).unwrap(), Some(record));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
