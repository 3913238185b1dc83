//! The OCI runtime spec (`config.json`) of a container's bundle, made from
//! its [`ContainerConfig`]: namespaces, mounts, process, capabilities,
//! masked paths and cgroup resources.
//!
//! The OCI `resources` block is the same for cgroup v1 and v2 (runc and crun
//! translate shares to `cpu.weight`, memory+swap to `memory.swap.max`); what
//! differs is that on v2 the container also gets a cgroup namespace, so it
//! sees its own cgroup as the root of `/sys/fs/cgroup`.

use std::path::Path;

use serde_json::{json, Value};

use super::cgroups::CgroupMode;
use super::ContainerConfig;

/// CFS period for CPU limits: 100 ms, as the kubelet uses.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// runc's default masked paths.
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// runc's default read-only paths.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The cgroup path of a container: under `/nuage/<pod_uid>/` so a pod's
/// containers share a parent (and crun's default, `/<id>` at the root, is
/// avoided).
pub fn cgroup_path(config: &ContainerConfig) -> String {
    let pod = if config.pod_uid.is_empty() {
        "_"
    } else {
        &config.pod_uid
    };
    format!("/nuage/{pod}/{}", config.id)
}

/// CPU shares for a request in millicores, as the kubelet computes them.
pub fn cpu_shares(request_millis: u64) -> u64 {
    (request_millis * 1024 / 1000).max(2)
}

/// The bundle's `config.json`.
pub fn oci_config(config: &ContainerConfig, rootfs: &Path, mode: CgroupMode) -> Value {
    let mut env: Vec<String> = Vec::new();
    // Later entries win: keep the last value of each name, in first-seen order.
    for (k, v) in &config.env {
        let entry = format!("{k}={v}");
        match env
            .iter()
            .position(|e| e.split_once('=').map(|(n, _)| n) == Some(k.as_str()))
        {
            Some(i) => env[i] = entry,
            None => env.push(entry),
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    let cwd = if config.working_dir.is_empty() {
        "/"
    } else {
        &config.working_dir
    };
    let (uid, gid) = config.user.unwrap_or((0, 0));
    let caps = DEFAULT_CAPABILITIES;

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if let Some(netns) = &config.netns {
        namespaces.push(json!({"type": "network", "path": netns}));
    }
    if mode == CgroupMode::V2 {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for m in &config.mounts {
        let rw = if m.read_only { "ro" } else { "rw" };
        mounts.push(json!({
            "destination": m.destination,
            "type": "bind",
            "source": m.source,
            "options": ["rbind", "rprivate", rw],
        }));
    }

    let r = &config.resources;
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(limit) = r.memory_limit {
        // swap = memory+swap total: equal to the limit means no swap, so an
        // over-limit container is OOM-killed instead of swapping.
        resources["memory"] = json!({"limit": limit, "swap": limit});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(m) = r.cpu_limit_millis {
        cpu.insert("quota".into(), json!(m * CPU_PERIOD_US / 1000));
        cpu.insert("period".into(), json!(CPU_PERIOD_US));
    }
    if let Some(m) = r.cpu_request_millis {
        cpu.insert("shares".into(), json!(cpu_shares(m)));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(limit) = r.pids_limit {
        resources["pids"] = json!({"limit": limit});
    }

    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": config.argv,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "noNewPrivileges": false,
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": config.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": cgroup_path(config),
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::Image;
    use crate::runtime::{Mount, Resources};
    use std::path::PathBuf;

    fn config() -> ContainerConfig {
        ContainerConfig {
            id: "c1".into(),
            pod_uid: "pod-1".into(),
            name: "web".into(),
            image: Image {
                id: "sha256:x".into(),
                name: "busybox".into(),
                layers: vec![],
                config: Default::default(),
            },
            argv: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec![
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("A".into(), "3".into()),
            ],
            working_dir: String::new(),
            user: Some((1000, 100)),
            hostname: "web-0".into(),
            mounts: vec![Mount {
                source: "/h/hosts".into(),
                destination: "/etc/hosts".into(),
                read_only: true,
            }],
            resources: Resources {
                cpu_limit_millis: Some(500),
                cpu_request_millis: Some(1),
                memory_limit: Some(32 << 20),
                pids_limit: Some(64),
            },
            netns: Some(PathBuf::from("/run/netns/pod-1")),
            log_path: "/l".into(),
            work_dir: "/w".into(),
        }
    }

    #[test]
    fn v1_config_carries_limits_namespaces_and_process() {
        let v = oci_config(&config(), Path::new("/w/rootfs"), CgroupMode::Hybrid);
        let res = &v["linux"]["resources"];
        assert_eq!(res["memory"], json!({"limit": 33554432, "swap": 33554432}));
        assert_eq!(
            res["cpu"],
            json!({"quota": 50000, "period": 100000, "shares": 2})
        );
        assert_eq!(res["pids"], json!({"limit": 64}));
        assert_eq!(v["linux"]["cgroupsPath"], "/nuage/pod-1/c1");
        let ns: Vec<_> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
        assert_eq!(v["linux"]["namespaces"][4]["path"], "/run/netns/pod-1");
        assert_eq!(
            v["process"]["env"],
            json!([
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "A=3",
                "B=2"
            ])
        );
        assert_eq!(v["process"]["cwd"], "/");
        assert_eq!(v["process"]["user"], json!({"uid": 1000, "gid": 100}));
        assert_eq!(v["hostname"], "web-0");
        assert_eq!(v["root"]["path"], "/w/rootfs");
        let hosts = v["mounts"].as_array().unwrap().last().unwrap();
        assert_eq!(hosts["destination"], "/etc/hosts");
        assert_eq!(hosts["options"], json!(["rbind", "rprivate", "ro"]));
        assert!(v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_NET_BIND_SERVICE")));
    }

    #[test]
    fn v2_config_adds_a_cgroup_namespace_and_keeps_the_resources() {
        let mut c = config();
        c.netns = None;
        c.resources.cpu_request_millis = Some(250);
        let v = oci_config(&c, Path::new("/w/rootfs"), CgroupMode::V2);
        let ns: Vec<_> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "cgroup"]);
        // runc and crun turn these into memory.max, memory.swap.max = 0, cpu.max and cpu.weight.
        assert_eq!(v["linux"]["resources"]["memory"]["swap"], 33554432);
        assert_eq!(v["linux"]["resources"]["cpu"]["shares"], 256);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50000);
    }

    #[test]
    fn shares_have_a_floor_of_two() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1000), 1024);
    }
}
