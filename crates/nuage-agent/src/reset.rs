//! `nuage reset`: removes everything an agent made on this host for one
//! data dir — containers (killed), their shims, cgroups and mounts, the
//! pods' network namespaces, veths and bridge, and the agent's state.
//! Images stay. Each step also works when an earlier one failed or the
//! state is half gone (a crash, a deleted directory), and the state is
//! removed only once nothing is mounted under it any more.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::network::{NetworkConfig, PodNetwork};
use crate::runtime::{Engine, OciRuntime, ProcessRuntime, Runtime, RuntimeOptions};

/// Resets the node whose data dir is `data_dir` (its server or agent must
/// be stopped).
pub async fn reset(data_dir: &Path, shim_exe: PathBuf) -> anyhow::Result<()> {
    let agent_dir = data_dir.join("agent");
    if !agent_dir.exists() {
        return Ok(());
    }
    let agent_dir = agent_dir.canonicalize()?;
    remove_containers(&agent_dir, &shim_exe).await;
    kill_strays(&agent_dir);
    remove_cgroups(&agent_dir);
    unmount_under(&agent_dir);
    reset_network(&agent_dir).await?;
    let left = mounts_under(&agent_dir);
    if !left.is_empty() {
        anyhow::bail!(
            "still mounted under {}: {}; not removing the agent's state",
            agent_dir.display(),
            left.join(", ")
        );
    }
    std::fs::remove_dir_all(&agent_dir)
        .with_context(|| format!("remove {}", agent_dir.display()))?;
    Ok(())
}

/// Asks each runtime to kill and remove what it knows.
async fn remove_containers(agent_dir: &Path, shim_exe: &Path) {
    for kind in ["process", "crun", "runc"] {
        let options = RuntimeOptions {
            shim_exe: shim_exe.to_path_buf(),
            state_dir: agent_dir.join("containers").join(kind),
            engine: Engine::parse(kind),
            engine_root: Some(agent_dir.join("engine").join(kind)),
        };
        if !options.state_dir.exists() {
            continue;
        }
        let runtime: Box<dyn Runtime> = if kind == "process" {
            match ProcessRuntime::new(options) {
                Ok(r) => Box::new(r),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot open the process runtime");
                    continue;
                }
            }
        } else {
            match OciRuntime::new(options) {
                Ok(r) => Box::new(r),
                Err(e) => {
                    tracing::warn!(engine = kind, error = %format!("{e:#}"), "cannot open the runtime");
                    continue;
                }
            }
        };
        for c in runtime.list().await.unwrap_or_default() {
            let _ = runtime.kill(&c.id, 9).await;
            let _ = tokio::time::timeout(Duration::from_secs(10), runtime.wait(&c.id)).await;
            if let Err(e) = runtime.remove(&c.id).await {
                tracing::warn!(container = %c.id, error = %format!("{e:#}"), "remove failed");
            }
        }
    }
}

/// Shims of this agent still alive (their state was lost) are killed with
/// every process below them.
fn kill_strays(agent_dir: &Path) {
    let prefix = agent_dir.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_shim = args.len() >= 3
            && args[1] == b"shim"
            && String::from_utf8_lossy(args[2]).starts_with(&prefix);
        if is_shim {
            tracing::info!(pid, "killing a stray shim and its container");
            kill_tree(pid);
        }
    }
}

/// SIGKILL to `pid` and all its descendants, children first.
fn kill_tree(pid: i32) {
    for child in children(pid) {
        kill_tree(child);
    }
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// The pods' cgroups (`<controller>/nuage/<pod uid>/…`, the runtimes'
/// layout): their processes are killed and the directories removed.
fn remove_cgroups(agent_dir: &Path) {
    let uids: BTreeSet<String> = std::fs::read_dir(agent_dir.join("pods"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut dirs = Vec::new();
    let controllers: Vec<PathBuf> = controllers
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    // cgroup v2 puts the tree at the root; v1 under each controller.
    for base in controllers
        .iter()
        .chain(std::iter::once(&PathBuf::from("/sys/fs/cgroup")))
    {
        for uid in &uids {
            let pod = base.join("nuage").join(uid);
            if pod.is_dir() {
                collect_dirs(&pod, &mut dirs);
            }
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
    for d in &dirs {
        for pid in std::fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            kill_tree(pid);
        }
    }
    for d in &dirs {
        // A cgroup whose last process just died may take a moment to empty.
        for _ in 0..50 {
            if std::fs::remove_dir(d).is_ok() || !d.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Mount points at or under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    crate::mounts::mount_points()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .map(|m| m.display().to_string())
        .collect()
}

/// Unmounts everything under `dir` (rootfs overlays, tmpfs volumes),
/// detaching what is busy.
fn unmount_under(dir: &Path) {
    if let Err(e) = crate::mounts::unmount_under(dir) {
        tracing::warn!(error = %e, "unmount");
    }
}

/// The bridge, namespaces and veths recorded in `network.json`.
async fn reset_network(agent_dir: &Path) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(agent_dir.join("network.json")) else {
        return Ok(());
    };
    let saved: serde_json::Value = serde_json::from_str(&text)?;
    let bridge = saved["bridge"].as_str().unwrap_or("nuage0").to_string();
    let cidr = saved["podCIDR"].as_str().unwrap_or("10.88.0.0/16");
    let (ip, bits) = cidr.split_once('/').unwrap_or(("10.88.0.0", "16"));
    let config = NetworkConfig {
        netns_prefix: format!("{bridge}-"),
        bridge,
        pod_cidr: (ip.parse()?, bits.parse()?),
        state_dir: agent_dir.join("network"),
    };
    // An agent without root made no bridge or namespaces.
    let network = if rustix::process::geteuid().is_root() {
        PodNetwork::setup(config).await?
    } else {
        PodNetwork::host_only(config)?
    };
    network.reset().await?;
    Ok(())
}
