//! Reading and cleaning up a container's cgroup, on both layouts: v1 (one
//! hierarchy per controller, `memory.oom_control`, `cpuacct.usage`) and v2
//! (one unified hierarchy, `memory.events`, `cpu.stat`). The hybrid layout
//! is v1 plus an unused cgroup2 tree at `unified/`.
//!
//! The OCI runtime creates the cgroup and writes its limits; this module only
//! reads counters and removes what a runtime left behind.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The default cgroup mount point.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Controllers in v1 hierarchies only.
    V1,
    /// v1 controllers, plus a cgroup2 mount at `unified/` (systemd's hybrid).
    Hybrid,
    /// One unified cgroup2 hierarchy.
    V2,
}

impl CgroupMode {
    /// Probes the layout under `root` (normally [`CGROUP_ROOT`]).
    pub fn detect_at(root: &Path) -> CgroupMode {
        // `f_type`'s width differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let is_cgroup2 = |p: &Path| {
            rustix::fs::statfs(p)
                .map(|s| s.f_type as i64 == CGROUP2_SUPER_MAGIC)
                .unwrap_or(false)
        };
        if is_cgroup2(root) {
            CgroupMode::V2
        } else if is_cgroup2(&root.join("unified")) {
            CgroupMode::Hybrid
        } else {
            CgroupMode::V1
        }
    }

    /// Probes the host's layout.
    pub fn detect() -> CgroupMode {
        Self::detect_at(Path::new(CGROUP_ROOT))
    }

    /// `v1`, `hybrid` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::V2 => "v2",
        }
    }
}

/// The cgroup tree of one host, rooted at a mount point.
#[derive(Debug, Clone)]
pub struct Cgroups {
    root: PathBuf,
    mode: CgroupMode,
}

impl Cgroups {
    /// The tree under `root`, laid out as `mode`.
    pub fn new(root: impl Into<PathBuf>, mode: CgroupMode) -> Self {
        Self {
            root: root.into(),
            mode,
        }
    }

    /// The host's tree.
    pub fn host(mode: CgroupMode) -> Self {
        Self::new(CGROUP_ROOT, mode)
    }

    fn dir(&self, controller: &str, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        match self.mode {
            CgroupMode::V2 => self.root.join(rel),
            CgroupMode::V1 | CgroupMode::Hybrid => self.root.join(controller).join(rel),
        }
    }

    /// How many processes the kernel OOM-killed in the cgroup (0 when the
    /// cgroup or its counter is gone).
    pub fn oom_kills(&self, path: &str) -> u64 {
        let file = match self.mode {
            CgroupMode::V2 => self.dir("", path).join("memory.events"),
            _ => self.dir("memory", path).join("memory.oom_control"),
        };
        fs::read_to_string(file)
            .ok()
            .and_then(|text| keyed_value(&text, "oom_kill"))
            .unwrap_or(0)
    }

    /// Cumulative CPU time in nanoseconds.
    pub fn cpu_usage_nanos(&self, path: &str) -> io::Result<u64> {
        match self.mode {
            CgroupMode::V2 => {
                let text = fs::read_to_string(self.dir("", path).join("cpu.stat"))?;
                keyed_value(&text, "usage_usec")
                    .map(|us| us * 1000)
                    .ok_or_else(|| invalid("cpu.stat has no usage_usec"))
            }
            _ => read_u64(&self.dir("cpuacct", path).join("cpuacct.usage")),
        }
    }

    /// The working set: memory in use minus inactive page cache (what the
    /// kubelet reports and evicts on).
    pub fn memory_working_set(&self, path: &str) -> io::Result<u64> {
        let (usage_file, inactive_key) = match self.mode {
            CgroupMode::V2 => ("memory.current", "inactive_file"),
            _ => ("memory.usage_in_bytes", "total_inactive_file"),
        };
        let dir = self.dir("memory", path);
        let usage = read_u64(&dir.join(usage_file))?;
        let stat = fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        let inactive = keyed_value(&stat, inactive_key).unwrap_or(0);
        Ok(usage.saturating_sub(inactive))
    }

    /// The directories the cgroup has (or had) on this host: one per v1
    /// hierarchy, one on v2.
    pub fn dirs(&self, path: &str) -> Vec<PathBuf> {
        let rel = path.trim_start_matches('/');
        if self.mode == CgroupMode::V2 {
            return vec![self.root.join(rel)];
        }
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            // `cpu` and `cpuacct` are often symlinks to `cpu,cpuacct`: skip them.
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path().join(rel))
            .collect()
    }

    /// Whether any directory of the cgroup still exists.
    pub fn exists(&self, path: &str) -> bool {
        self.dirs(path).iter().any(|d| d.exists())
    }

    /// Removes the cgroup (and any child cgroups) in every hierarchy, then
    /// its parent if that has become empty (the pod's cgroup). Missing
    /// directories are fine; a cgroup that still has processes is an error.
    pub fn remove(&self, path: &str) -> io::Result<()> {
        // Never the root of a hierarchy.
        if path.trim_matches('/').is_empty() {
            return Ok(());
        }
        let mut first_error = None;
        for dir in self.dirs(path) {
            if let Err(e) = remove_tree(&dir) {
                first_error.get_or_insert(e);
            }
            // The pod's cgroup goes with its last container; others may remain.
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// cgroup directories can only be removed with rmdir, deepest first.
fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The value of `key` in a flat keyed file (`key value` per line).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_u64(path: &Path) -> io::Result<u64> {
    let text = fs::read_to_string(path)?;
    text.trim()
        .parse()
        .map_err(|_| invalid(&format!("{}: {text:?} is not a number", path.display())))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn v1_counters_come_from_per_controller_files() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            r,
            "memory/nuage/p/c/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        write(r, "memory/nuage/p/c/memory.usage_in_bytes", "1000\n");
        write(
            r,
            "memory/nuage/p/c/memory.stat",
            "cache 5\ninactive_file 1\ntotal_inactive_file 300\n",
        );
        write(r, "cpuacct/nuage/p/c/cpuacct.usage", "123456\n");
        let cg = Cgroups::new(r, CgroupMode::Hybrid);
        assert_eq!(cg.oom_kills("/nuage/p/c"), 2);
        assert_eq!(cg.memory_working_set("/nuage/p/c").unwrap(), 700);
        assert_eq!(cg.cpu_usage_nanos("/nuage/p/c").unwrap(), 123456);
        assert_eq!(cg.oom_kills("/nuage/p/gone"), 0);
    }

    #[test]
    fn v2_counters_come_from_the_unified_tree() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            r,
            "nuage/p/c/memory.events",
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        );
        write(r, "nuage/p/c/memory.current", "4096\n");
        write(r, "nuage/p/c/memory.stat", "anon 10\ninactive_file 1024\n");
        write(r, "nuage/p/c/cpu.stat", "usage_usec 250\nuser_usec 200\n");
        let cg = Cgroups::new(r, CgroupMode::V2);
        assert_eq!(cg.oom_kills("/nuage/p/c"), 1);
        assert_eq!(cg.memory_working_set("/nuage/p/c").unwrap(), 3072);
        assert_eq!(cg.cpu_usage_nanos("/nuage/p/c").unwrap(), 250_000);
        assert_eq!(cg.dirs("/nuage/p/c"), vec![r.join("nuage/p/c")]);
    }

    #[test]
    fn remove_takes_child_dirs_and_the_empty_parent() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("memory/nuage/p/c/sub")).unwrap();
        fs::create_dir_all(r.join("pids/nuage/p/c")).unwrap();
        fs::create_dir_all(r.join("pids/nuage/p/other")).unwrap();
        let cg = Cgroups::new(r, CgroupMode::V1);
        assert!(cg.exists("/nuage/p/c"));
        cg.remove("/nuage/p/c").unwrap();
        assert!(!cg.exists("/nuage/p/c"));
        assert!(!r.join("memory/nuage/p").exists());
        assert!(r.join("pids/nuage/p/other").exists());
        cg.remove("/nuage/p/c").unwrap();
    }

    #[test]
    fn this_host_has_a_known_layout() {
        // Whatever the host, detection must not fail; on these machines it is hybrid.
        let mode = CgroupMode::detect();
        assert!(["v1", "hybrid", "v2"].contains(&mode.as_str()));
    }
}
