//! Starting an agent: probe the runtimes, set up pod networking, open the
//! image store, serve logs and exec, register the Node, then run the pods
//! bound to it until told to stop.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use nuage_client::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::host::HostFacts;
use crate::images::ImageStore;
use crate::network::{NetworkConfig, PodNetwork};
use crate::node::{self, NodeIdentity};
use crate::pods::{Context, PodManager, Recorder, Runtimes};
use crate::runtime::{Engine, OciRuntime, ProcessRuntime, Runtime, RuntimeOptions};
use crate::server::tls::ServingCertificate;

/// Which runtime runs pods that name no runtime class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// Probe: crun, then runc; the process runtime if neither works.
    Auto,
    /// This OCI runtime.
    Oci(Engine),
    /// No isolation.
    Process,
}

/// How to run an agent.
pub struct AgentConfig {
    /// The API client (in-process agents use HTTP too).
    pub client: Client,
    /// The token the API server presents when it forwards logs and exec.
    pub token: String,
    /// The Node's name.
    pub node_name: String,
    /// `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// Where the agent keeps its state: `<data_dir>/agent`, the image store
    /// at `<data_dir>/images`.
    pub data_dir: PathBuf,
    /// The address the agent's endpoint listens on (port 0 picks one).
    pub listen: SocketAddr,
    /// The address the API server reaches this node at (its InternalIP).
    pub node_ip: IpAddr,
    /// The default runtime.
    pub runtime: RuntimeChoice,
    /// The bridge pods attach to.
    pub bridge: String,
    /// The node's pod CIDR.
    pub pod_cidr: (std::net::Ipv4Addr, u8),
    /// The `nuage` binary (re-executed as the containers' shim).
    pub shim_exe: PathBuf,
}

/// Runs the agent until `stop` turns true. Containers keep running after
/// it returns; the next agent on this data dir adopts them.
pub async fn run(config: AgentConfig, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let agent_dir = config.data_dir.join("agent");
    std::fs::create_dir_all(&agent_dir)
        .with_context(|| format!("create {}", agent_dir.display()))?;
    // Without root there are no namespaces, cgroups or bridges to make:
    // pods run as processes on the host's network.
    let root = rustix::process::geteuid().is_root();
    let choice = if root {
        config.runtime
    } else {
        RuntimeChoice::Process
    };
    let (runtimes, mut warning) = runtimes(&config, choice, &agent_dir)?;
    if !root {
        warning = Some(
            "no isolation: the agent runs without root, so pods run as plain host processes (the process runtime) on the host's network".into(),
        );
    }
    let runtime_version = runtimes.default.version();
    match &warning {
        Some(w) => tracing::warn!(runtime = %runtime_version, "{w}"),
        None => tracing::info!(runtime = %runtime_version, "container runtime"),
    }
    let network_config = NetworkConfig {
        bridge: config.bridge.clone(),
        pod_cidr: config.pod_cidr,
        state_dir: agent_dir.join("network"),
        netns_prefix: format!("{}-", config.bridge),
    };
    // `nuage reset` reads this to find what to remove.
    let saved = serde_json::json!({
        "bridge": config.bridge,
        "podCIDR": format!("{}/{}", config.pod_cidr.0, config.pod_cidr.1),
    });
    std::fs::write(agent_dir.join("network.json"), saved.to_string())?;
    let network = Arc::new(if root {
        PodNetwork::setup(network_config)
            .await
            .with_context(|| format!("set up pod network on bridge {}", config.bridge))?
    } else {
        PodNetwork::host_only(network_config)?
    });
    let images = ImageStore::open(&config.data_dir).context("open the image store")?;
    let facts = HostFacts::read(&config.data_dir);
    let pods_dir = agent_dir.join("pods");
    std::fs::create_dir_all(&pods_dir)?;
    let ctx = Arc::new(Context {
        client: config.client.clone(),
        node: config.node_name.clone(),
        host_ip: config.node_ip.to_string(),
        pods_dir,
        images,
        network,
        runtimes,
        events: Recorder::new(config.client.clone(), config.node_name.clone()),
        allocatable: (
            facts.cpus as i128 * 1000,
            facts.memory_bytes.saturating_sub(100 << 20) as i128,
        ),
        admitted: Default::default(),
    });
    let manager = PodManager::new(Arc::clone(&ctx));

    let certificate =
        ServingCertificate::load_or_create(&agent_dir.join("tls"), config.node_ip, &facts.hostname)
            .context("the agent's serving certificate")?;
    let tls = certificate.server_config()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("agent listen on {}", config.listen))?;
    let port = listener.local_addr()?.port();
    let router = crate::server::router(config.token.clone(), manager.clone());
    let mut server_stop = stop.clone();
    let server = tokio::spawn(crate::server::serve(listener, tls, router, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));

    let (cidr_ip, cidr_bits) = config.pod_cidr;
    let identity = NodeIdentity {
        name: config.node_name.clone(),
        zone: config.zone.clone(),
        address: config.node_ip,
        port,
        pod_cidr: format!("{cidr_ip}/{cidr_bits}"),
        runtime_version,
        data_dir: config.data_dir.clone(),
        runtime_warning: warning,
        certificate_sha256: certificate.sha256.clone(),
    };
    let node_uid = node::register(&config.client, &identity)
        .await
        .context("register the node")?;
    tracing::info!(node = %config.node_name, port, "node registered");
    let heartbeat = tokio::spawn(node::heartbeat(
        config.client.clone(),
        identity,
        node_uid,
        stop.clone(),
    ));
    manager.run(stop).await;
    let _ = heartbeat.await;
    let _ = server.await;
    Ok(())
}

/// Builds the runtimes; the warning says when pods run without isolation.
fn runtimes(
    config: &AgentConfig,
    choice: RuntimeChoice,
    agent_dir: &std::path::Path,
) -> anyhow::Result<(Runtimes, Option<String>)> {
    let options = |kind: &str, engine: Option<Engine>| RuntimeOptions {
        shim_exe: config.shim_exe.clone(),
        state_dir: agent_dir.join("containers").join(kind),
        engine,
        engine_root: Some(agent_dir.join("engine").join(kind)),
    };
    let process: Arc<dyn Runtime> = Arc::new(ProcessRuntime::new(options("process", None))?);
    let mut by_class: BTreeMap<String, Arc<dyn Runtime>> = BTreeMap::new();
    by_class.insert("process".into(), Arc::clone(&process));
    let mut oci_error = None;
    let engines = if choice == RuntimeChoice::Process && config.runtime != RuntimeChoice::Process {
        // No root: do not even probe.
        Vec::new()
    } else {
        vec![Engine::Crun, Engine::Runc]
    };
    for engine in engines {
        match OciRuntime::new(options(engine.name(), Some(engine))) {
            Ok(r) => {
                by_class.insert(engine.name().into(), Arc::new(r));
            }
            Err(e) => {
                tracing::debug!(engine = engine.name(), error = %format!("{e:#}"), "OCI runtime unusable");
                oci_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let probed = by_class
        .get("crun")
        .or_else(|| by_class.get("runc"))
        .cloned();
    if let Some(oci) = &probed {
        by_class.insert("oci".into(), Arc::clone(oci));
    }
    let no_isolation = |why: String| {
        format!(
            "no isolation: pods run as plain host processes (the process runtime) because {why}"
        )
    };
    let (default, warning) = match choice {
        RuntimeChoice::Process => (
            process,
            Some(no_isolation("--runtime process was asked for".into())),
        ),
        RuntimeChoice::Oci(engine) => match by_class.get(engine.name()) {
            Some(r) => (Arc::clone(r), None),
            None => anyhow::bail!(
                "the {} runtime does not work on this host: {}",
                engine.name(),
                oci_error.unwrap_or_default()
            ),
        },
        RuntimeChoice::Auto => match probed {
            Some(r) => (r, None),
            None => (
                process,
                Some(no_isolation(format!(
                    "no OCI runtime works here ({})",
                    oci_error.unwrap_or_else(|| "neither crun nor runc is installed".into())
                ))),
            ),
        },
    };
    Ok((Runtimes { default, by_class }, warning))
}
