//! `nuage sim nodes`: registers (or removes) simulated nodes — Node objects
//! with no agent, which the control plane keeps Ready and whose pods it
//! makes Running (`nuage_control::simulated`), to test and measure the
//! scheduler and controllers at scale on one machine.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use nuage_client::{Client, ListParams};
use nuage_control::simulated::SIMULATED_LABEL;
use serde_json::json;

/// Requests in flight at once while creating or deleting nodes.
const CONCURRENCY: usize = 32;
/// Simulated pod ranges are carved out of 10.128.0.0/9.
const POD_BLOCK: (u32, u32) = (0x0a80_0000, 1 << 23);

#[derive(clap::Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(clap::Subcommand)]
enum SimCommand {
    /// Register simulated nodes (labelled nuage.io/simulated=true), or
    /// remove them with --delete.
    Nodes(NodesArgs),
}

#[derive(clap::Args)]
struct NodesArgs {
    /// How many nodes (named PREFIX0, PREFIX1, …).
    #[arg(long, required_unless_present = "delete")]
    count: Option<usize>,
    /// CPUs per node.
    #[arg(long, default_value = "32")]
    cpu: String,
    /// Memory per node.
    #[arg(long, default_value = "128Gi")]
    memory: String,
    /// Pods per node.
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Zones the nodes are spread over (zone-a, zone-b, …; node i in zone i mod ZONES).
    #[arg(long, default_value_t = 3)]
    zones: usize,
    /// Node name prefix.
    #[arg(long, default_value = "sim-")]
    prefix: String,
    /// Remove the simulated nodes with this prefix (and their pods and leases).
    #[arg(long)]
    delete: bool,
    #[command(flatten)]
    target: Target,
}

/// Which API server to talk to: explicit, or the one a data dir describes.
#[derive(clap::Args)]
struct Target {
    /// The API URL (https://host:port); default: DATA_DIR/endpoints.json.
    #[arg(long)]
    server: Option<String>,
    /// A bearer token; default: DATA_DIR/admin-token.
    #[arg(long, env = "NUAGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The server's CA; default: DATA_DIR/ca.crt.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The server's data dir.
    #[arg(long, env = "NUAGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl Target {
    fn client(&self) -> anyhow::Result<Client> {
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(crate::files::default_data_dir);
        let server = match &self.server {
            Some(s) => s.clone(),
            None => {
                let path = dir.join("endpoints.json");
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("read {} (or pass --server)", path.display()))?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("parse {}", path.display()))?;
                v["api"]
                    .as_str()
                    .with_context(|| format!("{} has no \"api\"", path.display()))?
                    .to_string()
            }
        };
        let token = match &self.token {
            Some(t) => t.clone(),
            None => {
                let path = dir.join("admin-token");
                std::fs::read_to_string(&path)
                    .with_context(|| format!("read {} (or pass --token)", path.display()))?
                    .trim()
                    .to_string()
            }
        };
        let ca_file = self.ca_file.clone().unwrap_or_else(|| dir.join("ca.crt"));
        let ca_pem = std::fs::read(&ca_file)
            .with_context(|| format!("read {} (or pass --ca-file)", ca_file.display()))?;
        Ok(Client::new(nuage_client::Config {
            server,
            token,
            ca_pem,
        })?)
    }
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let SimCommand::Nodes(args) = args.command;
    let client = args.target.client()?;
    if args.delete {
        return delete(&client, &args.prefix).await;
    }
    let count = args.count.unwrap_or_default();
    let shape = Shape::new(&args)?;
    let created = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let shape = Arc::new(shape);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY.min(count.max(1)) {
        let (client, shape, next, created) = (
            client.clone(),
            Arc::clone(&shape),
            Arc::clone(&next),
            Arc::clone(&created),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                if register(&client, &shape, i).await? {
                    created.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let created = created.load(Ordering::Relaxed);
    println!(
        "{count} simulated nodes {p}0…{p}{last} ({created} created, {} already there), {} zone(s)",
        count - created,
        shape.zones,
        p = args.prefix,
        last = count.saturating_sub(1),
    );
    Ok(())
}

/// What every simulated node of one command looks like.
struct Shape {
    prefix: String,
    cpu: String,
    memory: String,
    pods: u32,
    zones: usize,
    /// Addresses in each node's pod range (a power of two).
    range: u32,
}

impl Shape {
    fn new(args: &NodesArgs) -> anyhow::Result<Self> {
        for (flag, v) in [("--cpu", &args.cpu), ("--memory", &args.memory)] {
            if nuage_model::quantity::Quantity::parse(v).is_none() {
                bail!("{flag} {v:?} is not a quantity like 32, 500m or 128Gi");
            }
        }
        if args.zones == 0 {
            bail!("--zones must be at least 1");
        }
        if args.pods == 0 {
            bail!("--pods must be at least 1");
        }
        // Room for every pod besides the network, gateway and broadcast
        // addresses.
        let range = (args.pods + 3).next_power_of_two().max(4);
        let count = args.count.unwrap_or_default() as u64;
        if count * u64::from(range) > u64::from(POD_BLOCK.1) {
            bail!(
                "{count} nodes of {} pods do not fit in the simulated pod block 10.128.0.0/9",
                args.pods
            );
        }
        Ok(Self {
            prefix: args.prefix.clone(),
            cpu: args.cpu.clone(),
            memory: args.memory.clone(),
            pods: args.pods,
            zones: args.zones,
            range,
        })
    }

    /// Node `i`.
    fn node(&self, i: usize) -> (Node, serde_json::Value) {
        let name = format!("{}{i}", self.prefix);
        let zone = zone_name(i % self.zones);
        let labels = BTreeMap::from([
            (SIMULATED_LABEL.to_string(), "true".to_string()),
            ("kubernetes.io/hostname".to_string(), name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("topology.kubernetes.io/zone".to_string(), zone),
        ]);
        let base = POD_BLOCK.0 + i as u32 * self.range;
        let bits = 32 - self.range.trailing_zeros();
        let cidr = format!("{}/{bits}", Ipv4Addr::from(base));
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "podCIDR": cidr,
                "podCIDRs": [cidr],
                "providerID": format!("nuage-sim://{name}"),
            },
        }))
        .expect("a well-formed Node");
        let resources = json!({
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.pods.to_string(),
            "ephemeral-storage": "1Ti",
        });
        let now = now_rfc3339();
        let condition = |kind: &str, status: &str, reason: &str, message: &str| {
            json!({
                "type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            })
        };
        let status = json!({ "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "node has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "node has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "node has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "simulated node is posting ready status"),
            ],
            // Fake addresses on loopback: nothing ever connects to them (the
            // API proxies logs and exec only to nodes with a pinned agent
            // certificate, which simulated nodes lack).
            "addresses": [
                { "type": "InternalIP", "address": node_ip(i).to_string() },
                { "type": "Hostname", "address": name },
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "sim://0",
                "kernelVersion": "",
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.32.0-nuage-sim",
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "simulated",
                "systemUUID": "",
            },
        } });
        (node, status)
    }
}

/// `zone-a` … `zone-z`, then `zone-26`, …
fn zone_name(z: usize) -> String {
    if z < 26 {
        format!("zone-{}", (b'a' + z as u8) as char)
    } else {
        format!("zone-{z}")
    }
}

/// Node `i`'s (fake) address: 127.128.0.1 onwards.
fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x7f80_0001 + i as u32)
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap_or_default()
        .to_string()
}

/// Creates node `i` (if missing) and writes its status; true if created.
async fn register(client: &Client, shape: &Shape, i: usize) -> anyhow::Result<bool> {
    let (node, status) = shape.node(i);
    let name = node.metadata.name.clone().unwrap_or_default();
    let created = match client.create(None, &node).await {
        Ok(_) => true,
        Err(e) if e.is_conflict() => false,
        Err(e) => return Err(e).with_context(|| format!("create node {name}")),
    };
    client
        .merge_patch::<Node>(None, &name, "/status", &status)
        .await
        .with_context(|| format!("write the status of node {name}"))?;
    Ok(created)
}

/// Removes the simulated nodes whose names start with `prefix`, then the
/// pods bound to them (no agent will confirm their deletion) and their
/// Leases.
async fn delete(client: &Client, prefix: &str) -> anyhow::Result<()> {
    let selector = ListParams {
        label_selector: Some(format!("{SIMULATED_LABEL}=true")),
        ..ListParams::default()
    };
    let nodes: HashSet<String> = client
        .list::<Node>(None, &selector)
        .await
        .context("list simulated nodes")?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .filter(|n| n.starts_with(prefix))
        .collect();
    let nodes = Arc::new(nodes);
    let pods: Vec<(String, String)> = client
        .list::<Pod>(None, &ListParams::default())
        .await
        .context("list pods")?
        .items
        .into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| nodes.contains(n))
        })
        .map(|p| {
            (
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default(),
            )
        })
        .collect();
    let names: Vec<String> = nodes.iter().cloned().collect();
    let pod_count = pods.len();
    // Nodes first, so that nothing is scheduled onto them meanwhile.
    for_each(names.clone(), client, |c, name| async move {
        c.delete::<Node>(None, &name, None, None)
            .await
            .with_context(|| format!("delete node {name}"))
    })
    .await?;
    for_each(pods, client, |c, (ns, name)| async move {
        c.delete::<Pod>(Some(&ns), &name, Some(0), None)
            .await
            .with_context(|| format!("delete pod {ns}/{name}"))
    })
    .await?;
    for_each(names.clone(), client, |c, name| async move {
        c.delete::<Lease>(Some("kube-node-lease"), &name, None, None)
            .await
            .with_context(|| format!("delete lease {name}"))
    })
    .await?;
    println!(
        "deleted {} simulated node(s) with prefix {prefix:?} and {pod_count} pod(s) bound to them",
        names.len()
    );
    Ok(())
}

/// Runs `f` on every item, [`CONCURRENCY`] at a time.
async fn for_each<T, F, Fut>(items: Vec<T>, client: &Client, f: F) -> anyhow::Result<()>
where
    T: Send + 'static,
    F: Fn(Client, T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let items = Arc::new(std::sync::Mutex::new(items));
    let f = Arc::new(f);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (items, f, client) = (Arc::clone(&items), Arc::clone(&f), client.clone());
        tasks.spawn(async move {
            loop {
                let item = items.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some(item) = item else {
                    return anyhow::Ok(());
                };
                f(client.clone(), item).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_ranges_and_addresses() {
        assert_eq!(zone_name(0), "zone-a");
        assert_eq!(zone_name(2), "zone-c");
        assert_eq!(zone_name(30), "zone-30");
        assert_eq!(node_ip(0).to_string(), "127.128.0.1");
        let args = NodesArgs {
            count: Some(1000),
            cpu: "32".into(),
            memory: "128Gi".into(),
            pods: 110,
            zones: 3,
            prefix: "sim-".into(),
            delete: false,
            target: Target {
                server: None,
                token: None,
                ca_file: None,
                data_dir: None,
            },
        };
        let shape = Shape::new(&args).unwrap();
        assert_eq!(shape.range, 128);
        let (node, status) = shape.node(4);
        let spec = node.spec.unwrap();
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.128.2.0/25"));
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["topology.kubernetes.io/zone"], "zone-b");
        assert_eq!(labels[SIMULATED_LABEL], "true");
        assert_eq!(status["status"]["capacity"]["pods"], "110");
    }
}
