//! `nuage agent`: joins this host to a control plane as a node; and the
//! node flags `nuage server` shares for its in-process agent.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;

use anyhow::{bail, Context};
use nuage_agent::agent::{AgentConfig, RuntimeChoice};
use nuage_agent::runtime::Engine;
use tokio::sync::watch;

/// Flags about the node, shared by `nuage server` and `nuage agent`.
#[derive(clap::Args, Clone)]
pub struct NodeFlags {
    /// The node's availability zone (`topology.kubernetes.io/zone`).
    #[arg(long)]
    pub zone: Option<String>,
    /// The default container runtime: auto (probe crun, then runc), crun, runc, or process (no isolation).
    #[arg(long, default_value = "auto")]
    pub runtime: String,
    /// The bridge pods attach to.
    #[arg(long, default_value = "nuage0")]
    pub bridge: String,
    /// The node's pod address range.
    #[arg(long, default_value = "10.88.0.0/16")]
    pub pod_cidr: String,
}

impl NodeFlags {
    fn runtime_choice(&self) -> anyhow::Result<RuntimeChoice> {
        Ok(match self.runtime.as_str() {
            "auto" => RuntimeChoice::Auto,
            "process" => RuntimeChoice::Process,
            other => match Engine::parse(other) {
                Some(e) => RuntimeChoice::Oci(e),
                None => bail!("--runtime {other:?}: expected auto, crun, runc or process"),
            },
        })
    }

    fn pod_cidr(&self) -> anyhow::Result<(Ipv4Addr, u8)> {
        let (ip, bits) = self.pod_cidr.split_once('/').with_context(|| {
            format!(
                "--pod-cidr {:?} is not a CIDR like 10.88.0.0/16",
                self.pod_cidr
            )
        })?;
        let ip: Ipv4Addr = ip
            .parse()
            .with_context(|| format!("--pod-cidr {:?}", self.pod_cidr))?;
        let bits: u8 = bits
            .parse()
            .with_context(|| format!("--pod-cidr {:?}", self.pod_cidr))?;
        if !(8..=29).contains(&bits) {
            bail!(
                "--pod-cidr {:?}: the prefix must be between /8 and /29",
                self.pod_cidr
            );
        }
        if self.bridge.is_empty() || self.bridge.len() > 12 {
            bail!(
                "--bridge {:?}: 1 to 12 characters (namespace names derive from it)",
                self.bridge
            );
        }
        Ok((ip, bits))
    }

    /// The agent's configuration.
    #[allow(clippy::too_many_arguments)]
    pub fn config(
        &self,
        client: nuage_client::Client,
        token: String,
        node_name: String,
        data_dir: PathBuf,
        listen: SocketAddr,
        node_ip: IpAddr,
    ) -> anyhow::Result<AgentConfig> {
        Ok(AgentConfig {
            client,
            token,
            node_name,
            zone: self.zone.clone(),
            data_dir,
            listen,
            node_ip,
            runtime: self.runtime_choice()?,
            bridge: self.bridge.clone(),
            pod_cidr: self.pod_cidr()?,
            shim_exe: std::env::current_exe().context("find the nuage binary")?,
        })
    }
}

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The control plane's API URL (https://host:port).
    #[arg(long)]
    server: String,
    /// A token the control plane accepts.
    #[arg(long, env = "NUAGE_TOKEN", hide_env_values = true)]
    token: String,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Where the agent keeps its state.
    #[arg(long, env = "NUAGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The control plane's CA certificate (default: DATA_DIR/ca.crt; copy it from the server's data dir).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The address this node is reached at (default: the address the host uses to reach the server).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The port of the agent's endpoint for logs and exec.
    #[arg(long, default_value_t = 10250)]
    port: u16,
    #[command(flatten)]
    node: NodeFlags,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::files::default_data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("create data dir {}", dir.display()))?;
    let ca_file = args.ca_file.clone().unwrap_or_else(|| dir.join("ca.crt"));
    let ca_pem = std::fs::read(&ca_file).with_context(|| {
        format!(
            "read the control plane's CA from {} (copy ca.crt from the server's data dir, or pass --ca-file)",
            ca_file.display()
        )
    })?;
    let client = nuage_client::Client::new(nuage_client::Config {
        server: args.server.clone(),
        token: args.token.clone(),
        ca_pem,
    })?;
    let node_ip = match args.node_ip {
        Some(ip) => ip,
        None => route_source(&args.server)?,
    };
    let node_name = args
        .node_name
        .clone()
        .unwrap_or_else(crate::server::hostname);
    let config = args.node.config(
        client,
        args.token.clone(),
        node_name.clone(),
        dir,
        SocketAddr::new(node_ip, args.port),
        node_ip,
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent = tokio::spawn(nuage_agent::agent::run(config, stop_rx));
    println!("nuage agent: node {node_name:?} joining {}", args.server);
    tokio::select! {
        r = crate::server::wait_for_signal() => r?,
        done = agent => return done?,
    }
    tracing::info!("stopping the agent; containers keep running");
    let _ = stop_tx.send(true);
    Ok(())
}

/// The local address this host uses to reach the server's address (no
/// packet is sent: a UDP connect only picks the route).
fn route_source(server: &str) -> anyhow::Result<IpAddr> {
    let host_port = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .replace("localhost", "127.0.0.1");
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&host_port)
        .with_context(|| format!("resolve {host_port:?}"))?
        .next()
        .with_context(|| format!("resolve {host_port:?}"))?;
    let socket = UdpSocket::bind(SocketAddr::new(
        if addr.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        },
        0,
    ))?;
    socket.connect(addr)?;
    Ok(socket.local_addr()?.ip())
}
