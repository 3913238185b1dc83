//! Which OCI runtime works on this host, and how to call it.
//!
//! Runtimes are probed, not assumed: for each candidate (crun, then runc, or
//! only the one asked for) we find the binary, read its version, and start a
//! trivial container with it. Debian's crun 1.8 refuses the cgroup v1/v2
//! hybrid layout; it works inside a private mount namespace with the unified
//! hierarchy unmounted, so on hybrid hosts every crun call goes through that
//! wrapper. The result is cached for the life of the process.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::json;

use super::cgroups::{CgroupMode, Cgroups};

/// An OCI runtime implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// containers/crun.
    Crun,
    /// opencontainers/runc.
    Runc,
}

impl Engine {
    /// The binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Crun => "crun",
            Engine::Runc => "runc",
        }
    }

    /// Parses `crun` or `runc`.
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "crun" => Some(Engine::Crun),
            "runc" => Some(Engine::Runc),
            _ => None,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A working OCI runtime on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciEngine {
    /// Which one.
    pub engine: Engine,
    /// Its binary.
    pub binary: PathBuf,
    /// Its version (`1.8.1`).
    pub version: String,
    /// The host's cgroup layout.
    pub cgroup_mode: CgroupMode,
    /// Run it in a private mount namespace without the unified hierarchy
    /// (crun on a hybrid host).
    pub private_mount_ns: bool,
}

impl OciEngine {
    /// The command prefix every call goes through: the binary, or the
    /// `unshare` wrapper.
    pub fn command(&self) -> Vec<String> {
        let bin = self.binary.to_string_lossy().into_owned();
        if !self.private_mount_ns {
            return vec![bin];
        }
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "umount /sys/fs/cgroup/unified && exec \"$0\" \"$@\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([bin])
        .collect()
    }

    /// For the Node's `containerRuntimeVersion`: `crun://1.8.1`.
    pub fn version_string(&self) -> String {
        format!("{}://{}", self.engine, self.version)
    }
}

/// Finds a working OCI runtime: `choice` if given, else crun then runc.
/// `scratch` is a directory for the probe's bundle. Cached per choice.
pub fn detect(choice: Option<Engine>, scratch: &Path) -> Result<OciEngine, String> {
    type Probes = HashMap<Option<Engine>, Result<OciEngine, String>>;
    static CACHE: OnceLock<Mutex<Probes>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(choice)
        .or_insert_with(|| detect_uncached(choice, scratch))
        .clone()
}

fn detect_uncached(choice: Option<Engine>, scratch: &Path) -> Result<OciEngine, String> {
    if !rustix::process::geteuid().is_root() {
        return Err("OCI runtimes need root".into());
    }
    let mode = CgroupMode::detect();
    let candidates = match choice {
        Some(e) => vec![e],
        None => vec![Engine::Crun, Engine::Runc],
    };
    let mut reasons = Vec::new();
    for engine in candidates {
        match probe(engine, mode, scratch) {
            Ok(found) => return Ok(found),
            Err(why) => reasons.push(format!("{engine}: {why}")),
        }
    }
    Err(reasons.join("; "))
}

fn probe(engine: Engine, mode: CgroupMode, scratch: &Path) -> Result<OciEngine, String> {
    let binary = find_in_path(engine.name()).ok_or("not installed")?;
    let out = Command::new(&binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let version = parse_version(&String::from_utf8_lossy(&out.stdout), engine.name())
        .ok_or("cannot read its version")?;
    let found = OciEngine {
        engine,
        binary,
        version,
        cgroup_mode: mode,
        private_mount_ns: engine == Engine::Crun && mode == CgroupMode::Hybrid,
    };
    run_trivial_container(&found, scratch)?;
    Ok(found)
}

/// `runc version 1.1.5+ds1` / `crun version 1.8.1` → the version.
fn parse_version(text: &str, name: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} version ")))?;
    let v = line.split_whitespace().nth(2)?;
    // Debian's `+ds1` packaging suffix is not part of the upstream version.
    Some(v.split('+').next().unwrap_or(v).to_string())
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs `true` from the host's own /usr in a container with the same
/// namespaces and cgroup handling real containers get.
fn run_trivial_container(engine: &OciEngine, scratch: &Path) -> Result<(), String> {
    let id = format!("nuage-probe-{}-{}", std::process::id(), engine.engine);
    let bundle = scratch.join(&id);
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
    let cgroup = format!("/nuage/probe/{id}");
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}),
    ];
    for dir in ["/usr", "/bin", "/lib", "/lib64"] {
        if Path::new(dir).exists() {
            mounts.push(json!({"destination": dir, "type": "bind", "source": dir, "options": ["rbind", "ro"]}));
        }
    }
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["true"], "env": ["PATH=/usr/bin:/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": rootfs, "readonly": false},
        "hostname": "probe",
        "mounts": mounts,
        "linux": {
            "cgroupsPath": cgroup,
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        },
    });
    let result = std::fs::write(bundle.join("config.json"), config.to_string())
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let cmd = engine.command();
            let out = Command::new(&cmd[0])
                .args(&cmd[1..])
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(&id)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("{}: {e}", cmd[0]))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "a trivial container failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        });
    // `run` deletes the container it ran; a failed one may have left state.
    if result.is_err() {
        let cmd = engine.command();
        let _ = Command::new(&cmd[0])
            .args(&cmd[1..])
            .args(["delete", "--force", &id])
            .stderr(Stdio::null())
            .status();
    }
    let _ = Cgroups::host(engine.cgroup_mode).remove(&cgroup);
    let _ = std::fs::remove_dir_all(&bundle);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_lose_packaging_suffixes() {
        let runc = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n";
        assert_eq!(parse_version(runc, "runc").as_deref(), Some("1.1.5"));
        let crun = "crun version 1.8.1\ncommit: f8a0\n";
        assert_eq!(parse_version(crun, "crun").as_deref(), Some("1.8.1"));
        assert_eq!(parse_version("nope", "crun"), None);
    }

    #[test]
    fn crun_on_a_hybrid_host_runs_in_a_private_mount_namespace() {
        let e = OciEngine {
            engine: Engine::Crun,
            binary: "/usr/bin/crun".into(),
            version: "1.8.1".into(),
            cgroup_mode: CgroupMode::Hybrid,
            private_mount_ns: true,
        };
        let cmd = e.command();
        assert_eq!(cmd[0], "unshare");
        assert_eq!(cmd.last().unwrap(), "/usr/bin/crun");
        assert_eq!(e.version_string(), "crun://1.8.1");
    }
}
