//! `nuage server`: wires the store, the API and the AWS endpoint together,
//! writes the client files, and runs until SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nuage_api::{auth, serve, storage::Objects, tls, ApiState};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::files;

/// How long open requests may finish after SIGTERM (the contract allows 10 s).
const DRAIN: Duration = Duration::from_secs(7);

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Where nuage keeps its state (default: $XDG_DATA_HOME/nuage or ~/.local/share/nuage).
    #[arg(long, env = "NUAGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The Kubernetes API, native API and web console address (HTTPS).
    #[arg(long, default_value = "127.0.0.1:6443", value_parser = crate::parse_addr)]
    listen: SocketAddr,
    /// The AWS endpoint address.
    #[arg(long, default_value = "127.0.0.1:4566", value_parser = crate::parse_addr)]
    aws_listen: SocketAddr,
    /// Serve the AWS endpoint over TLS (required to listen beyond loopback).
    #[arg(long)]
    aws_tls: bool,
    /// The state store: `sqlite` (embedded) or `etcd://host:port,...`.
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// Run the control plane without a local node agent.
    #[arg(long)]
    no_agent: bool,
    /// This host's node name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    #[command(flatten)]
    node: crate::agent_cmd::NodeFlags,
    /// Seconds without a Lease renewal before a node is NotReady (Unknown).
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Seconds pods tolerate an unreachable or not-ready node, unless their
    /// tolerations say otherwise; then they are evicted.
    #[arg(long, default_value_t = 30)]
    default_toleration_seconds: u64,
    /// Seconds an Event is kept after its last write.
    #[arg(long, default_value_t = 3600)]
    event_ttl_seconds: u64,
    /// The range cluster IPs of Services are allocated from.
    #[arg(long, default_value = "10.96.0.0/16")]
    service_cidr: String,
    /// Seconds between compactions of the store's history.
    #[arg(long, default_value_t = 60)]
    compact_interval: u64,
    /// Keep at least this many of the newest revisions.
    #[arg(long, default_value_t = 1000)]
    compact_min_retain: i64,
    /// Keep every revision younger than this many seconds.
    #[arg(long, default_value_t = 300)]
    compact_retain_for: u64,
}

fn parse_cidr(s: &str) -> anyhow::Result<(Ipv4Addr, u32)> {
    let (ip, bits) = s
        .split_once('/')
        .with_context(|| format!("{s:?} is not a CIDR like 10.96.0.0/16"))?;
    let ip: Ipv4Addr = ip.parse().with_context(|| format!("{s:?}: bad address"))?;
    let bits: u32 = bits
        .parse()
        .with_context(|| format!("{s:?}: bad prefix length"))?;
    if !(8..=28).contains(&bits) {
        bail!("{s:?}: prefix length must be between 8 and 28");
    }
    let mask = u32::MAX << (32 - bits);
    Ok((Ipv4Addr::from(u32::from(ip) & mask), 1 << (32 - bits)))
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(files::default_data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("create data dir {}", dir.display()))?;
    if !args.aws_listen.ip().is_loopback() && !args.aws_tls {
        bail!(
            "--aws-listen {} is not a loopback address: add --aws-tls",
            args.aws_listen
        );
    }
    if args.aws_tls {
        bail!("--aws-tls is not built yet: keep --aws-listen on loopback");
    }
    let service_range = parse_cidr(&args.service_cidr)?;
    let node_name = args.node_name.clone().unwrap_or_else(hostname);

    let store = nuage_store::open(&args.store, &dir)
        .await
        .with_context(|| format!("open store {:?}", args.store))?;
    let ca = tls::load_or_create_ca(&dir)?;
    let token = files::admin_token(&dir)?;

    let api_listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let aws_listener = TcpListener::bind(args.aws_listen)
        .await
        .with_context(|| format!("listen on {}", args.aws_listen))?;
    let api_addr = api_listener.local_addr()?;
    let aws_addr = aws_listener.local_addr()?;
    let api_url = format!("https://{api_addr}");
    let aws_url = format!("http://{aws_addr}");
    let tls_config = tls::server_config(&ca, api_addr.ip(), &hostname())?;

    let tokens = auth::Tokens::default();
    tokens.add(&token);
    let state = Arc::new(ApiState {
        objects: Objects::with_event_ttl(store, Duration::from_secs(args.event_ttl_seconds)),
        tokens,
        ready: AtomicBool::new(false),
        service_range,
        ip_alloc: tokio::sync::Mutex::new(()),
        advertise: api_addr.to_string(),
        stopping: watch::channel(false).0,
        namespaces: Default::default(),
        // The in-process agent is configured with the admin token: the API
        // server presents it when it forwards logs and exec to agents.
        agent_token: token.clone(),
    });
    nuage_api::bootstrap(&state)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {}", e.message))?;

    let kubeconfig = files::write_kubeconfig(&dir, &api_url, &ca.cert_pem, &token)?;
    let keys = files::aws_keys(&dir);
    files::write_aws_files(&dir, &keys, &aws_url)?;
    files::write_endpoints(&dir, &api_url, &aws_url)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_rx_agent = stop_rx.clone();
    let compactor = tokio::spawn(nuage_store::compactor::run(
        Arc::clone(state.objects.store()),
        nuage_store::compactor::Retention {
            every: Duration::from_secs(args.compact_interval.max(1)),
            keep_for: Duration::from_secs(args.compact_retain_for),
            keep_revisions: args.compact_min_retain.max(0),
        },
        stop_rx.clone(),
    ));
    let api_task = tokio::spawn(serve::serve(
        api_listener,
        Some(tls_config),
        nuage_api::router(Arc::clone(&state)),
        stop_rx.clone(),
        DRAIN,
    ));
    let aws_task = tokio::spawn(serve::serve(
        aws_listener,
        None,
        nuage_api::aws::router(),
        stop_rx,
        DRAIN,
    ));
    let control_client = nuage_client::Client::new(nuage_client::Config {
        server: api_url.clone(),
        token: token.clone(),
        ca_pem: ca.cert_pem.clone().into_bytes(),
    })?;
    let control_task = tokio::spawn(nuage_control::run(
        control_client,
        nuage_control::Settings {
            node_monitor_grace: Duration::from_secs(args.node_monitor_grace_period),
            default_toleration: Duration::from_secs(args.default_toleration_seconds),
        },
        stop_rx_agent.clone(),
    ));
    let agent_task = if args.no_agent {
        None
    } else {
        let client = nuage_client::Client::new(nuage_client::Config {
            server: api_url.clone(),
            token: token.clone(),
            ca_pem: ca.cert_pem.clone().into_bytes(),
        })?;
        let node_ip = if api_addr.ip().is_unspecified() {
            std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            api_addr.ip()
        };
        let config = args.node.config(
            client,
            token.clone(),
            node_name.clone(),
            dir.clone(),
            SocketAddr::new(node_ip, 0),
            node_ip,
        )?;
        let stop = stop_rx_agent;
        Some(tokio::spawn(async move {
            if let Err(e) = nuage_agent::agent::run(config, stop).await {
                tracing::error!(error = %format!("{e:#}"), "the local agent stopped");
            }
        }))
    };
    state.set_ready(true);

    let d = dir.display();
    println!("nuage server: data in {d}");
    println!(
        "  Kubernetes API  {api_url}   kubeconfig: {}",
        kubeconfig.display()
    );
    println!("  AWS endpoint    {aws_url}    profile nuage: {d}/aws-config");
    println!("Use kubectl:  export KUBECONFIG={}", kubeconfig.display());
    println!(
        "Use aws:      export AWS_CONFIG_FILE={d}/aws-config AWS_SHARED_CREDENTIALS_FILE={d}/aws-credentials AWS_PROFILE=nuage"
    );
    if args.no_agent {
        println!("No local agent (--no-agent): pods stay Pending until an agent joins.");
    } else {
        println!("Node {node_name:?}: the local agent runs pods on this host.");
    }
    tracing::info!(
        api = %api_url,
        aws = %aws_url,
        store = %args.store,
        ready_ms = started.elapsed().as_millis() as u64,
        "nuage server ready"
    );

    wait_for_signal().await?;
    tracing::info!("shutting down: draining open requests");
    state.set_ready(false);
    let _ = stop_tx.send(true);
    state.stopping.send_replace(true);
    if let Some(agent) = agent_task {
        let _ = agent.await;
    }
    let _ = control_task.await;
    let _ = tokio::join!(api_task, aws_task, compactor);
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_cidr;

    #[test]
    fn cidr_is_normalized() {
        assert_eq!(
            parse_cidr("10.96.3.7/16").unwrap(),
            ("10.96.0.0".parse().unwrap(), 65536)
        );
        assert!(parse_cidr("10.96.0.0").is_err());
    }
}
