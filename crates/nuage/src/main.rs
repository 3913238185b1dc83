//! `nuage`: the private cloud in one binary. `nuage server` runs it all on
//! one machine; `nuage agent` joins another host to it.

mod agent_cmd;
mod files;
mod image_cmd;
mod server;
mod sim_cmd;

use std::net::SocketAddr;

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
    Agent(agent_cmd::AgentArgs),
    /// Remove every container, pod network and mount the node agent made
    /// for a data dir (the server or agent must be stopped). Images stay.
    Reset(ResetArgs),
    /// Manage the node's local images: import, ls, rm.
    Image(image_cmd::ImageArgs),
    /// Simulated nodes for tests and benchmarks: `sim nodes --count N`.
    Sim(sim_cmd::SimArgs),
}

#[derive(clap::Args)]
struct ResetArgs {
    /// The data dir of the node to reset.
    #[arg(long, env = "NUAGE_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
}

fn main() -> std::process::ExitCode {
    // `nuage shim STATE_DIR` (hidden, started by the container runtimes):
    // synchronous code that forks and execs, so it runs before any tokio
    // runtime or logging exists.
    let mut args = std::env::args();
    match args.nth(1).as_deref() {
        Some("shim") => return nuage_agent::runtime::shim::main(args.collect()),
        // `nuage exec-reaper PID_FILE RUNC…` (hidden): waits for a process
        // `runc exec -d` left behind, for exec with a terminal.
        Some(nuage_agent::runtime::exec::reaper::SUBCOMMAND) => {
            return nuage_agent::runtime::exec::reaper::main(args.collect())
        }
        _ => {}
    }
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
            // Plain file work: no task of the runtime waits on it.
            Command::Image(args) => image_cmd::run(args),
            Command::Server(args) => server::run(args).await,
            Command::Agent(args) => agent_cmd::run(args).await,
            Command::Sim(args) => sim_cmd::run(args).await,
            Command::Reset(args) => {
                let dir = args.data_dir.unwrap_or_else(files::default_data_dir);
                let exe = std::env::current_exe()?;
                nuage_agent::reset::reset(&dir, exe).await
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
