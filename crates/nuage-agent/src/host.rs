//! What this host offers, read from the kernel: CPUs, memory, disk, GPUs,
//! and the facts a Node's `nodeInfo` reports.

use std::path::Path;

/// Capacity and identity of this host.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// Online CPUs.
    pub cpus: u64,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Size of the file system holding the data dir, in bytes.
    pub disk_bytes: u64,
    /// NVIDIA GPUs (`/dev/nvidiaN`).
    pub gpus: u64,
    /// `PRETTY_NAME` from os-release.
    pub os_image: String,
    /// Kernel release.
    pub kernel: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// This boot's id.
    pub boot_id: String,
    /// `amd64`, `arm64`, … (Go's names, as Kubernetes uses them).
    pub arch: &'static str,
    /// The host name.
    pub hostname: String,
}

impl HostFacts {
    /// Reads the facts; missing files give zero or empty values.
    pub fn read(data_dir: &Path) -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        Self {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1),
            memory_bytes: mem_total(&read("/proc/meminfo")),
            disk_bytes: disk_size(data_dir),
            gpus: count_gpus(Path::new("/dev")),
            os_image,
            kernel: read("/proc/sys/kernel/osrelease"),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            arch: match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                "x86" => "386",
                other => other,
            },
            hostname: read("/proc/sys/kernel/hostname"),
        }
    }
}

/// `MemTotal` in bytes.
fn mem_total(meminfo: &str) -> u64 {
    meminfo_field(meminfo, "MemTotal:")
}

/// A `/proc/meminfo` field in bytes.
pub fn meminfo_field(meminfo: &str, field: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

fn disk_size(dir: &Path) -> u64 {
    rustix::fs::statvfs(dir)
        .map(|s| s.f_blocks * s.f_frsize)
        .unwrap_or(0)
}

/// Free bytes and free inodes ratio of the file system holding `dir`.
pub fn disk_free(dir: &Path) -> Option<(u64, f64)> {
    let s = rustix::fs::statvfs(dir).ok()?;
    let free = s.f_bavail * s.f_frsize;
    let inodes = if s.f_files == 0 {
        1.0
    } else {
        s.f_favail as f64 / s.f_files as f64
    };
    Some((free, inodes))
}

/// `/dev/nvidia0`, `/dev/nvidia1`, … (not `nvidiactl`, `nvidia-uvm`).
fn count_gpus(dev: &Path) -> u64 {
    std::fs::read_dir(dev)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("nvidia"))
                        .is_some_and(|rest| {
                            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                        })
                })
                .count() as u64
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_gpus() {
        assert_eq!(
            mem_total("MemTotal:       2048 kB\nMemFree: 1 kB\n"),
            2048 * 1024
        );
        let dir = tempfile::tempdir().unwrap();
        for name in ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        assert_eq!(count_gpus(dir.path()), 2);
        let facts = HostFacts::read(dir.path());
        assert!(facts.cpus >= 1 && facts.memory_bytes > 0 && facts.disk_bytes > 0);
    }
}
