//! `nuage`: the private cloud in one binary. `nuage server` runs it all on
//! one machine; `nuage agent` joins another host to it.

mod files;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "nuage", version, about = "A private cloud in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start an all-in-one cloud: control plane, local agent, AWS endpoint.
    Server(server::ServerArgs),
    /// Join this host to a nuage control plane as a node.
    Agent(AgentArgs),
}

#[derive(clap::Args)]
struct AgentArgs {
    /// The control plane's API URL (https://host:port).
    #[arg(long)]
    server: String,
    /// A bootstrap token issued by the control plane.
    #[arg(long)]
    token: String,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Where the agent keeps its state.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        // rustls warns on every client that sends an IP address as the TLS
        // server name (curl and wrk to https://127.0.0.1 do): not news.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nuage")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nuage: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Agent(args) => {
                let _ = (&args.server, &args.token, &args.node_name, &args.data_dir);
                anyhow::bail!(
                    "the node agent is not built yet: `nuage server` runs the control plane only"
                )
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nuage: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Parses `host:port`, accepting `localhost`.
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.replace("localhost:", "127.0.0.1:");
    s.parse()
        .map_err(|e| format!("{s:?} is not an address like 127.0.0.1:6443: {e}"))
}
