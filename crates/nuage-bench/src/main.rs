//! `nuage-bench`: the parts of `bench/control-plane.sh` that wrk cannot do.
//!
//! It measures, against a running `nuage server` (HTTPS, bearer token) or a
//! running etcd (gRPC, or its HTTP `/health`):
//!
//! - `load-pods`: creates N valid pods through the API with C connections
//!   (the 10,000-pod data set for the get/list and memory figures);
//! - `etcd-load`: puts N keys of a given value size into etcd, C at a time;
//! - `etcd-range`: latency of a gRPC range (one key, or a whole prefix);
//! - `watch-nuage` / `watch-etcd`: watch fan-out — W watchers, then one
//!   write at a time; the time from issuing the write until every watcher
//!   has received its event;
//! - `startup`: time from spawning a command until a URL answers 200;
//! - `pods`: the node agent's figures (issue 4): pod start latency through a
//!   watch, a burst of pods, and the agent's CPU and memory with idle pods;
//! - `oci-floor`: the same container started by bare crun or runc;
//! - `schedule`: the scheduler and controllers (issue 5) on simulated
//!   nodes: a 10,000-pod ReplicaSet until bound and Running, the server's
//!   memory meanwhile, and a 1,000-pod Deployment's rolling update.
//!
//! Every loop is bounded in count and in time. Each figure is printed on
//! stdout as `name value unit`; progress and errors go to stderr.

mod args;
mod etcd;
mod floor;
mod https;
mod load;
mod pods;
mod procfs;
mod schedule;
mod startup;
mod stats;
mod watch;

use std::process::ExitCode;

const USAGE: &str = "usage: nuage-bench <command> [--flag value]...
  load-pods   --api URL --dir DIR [--n 10000] [--conc 32] [--ns default]
  etcd-load   --endpoint URL --prefix P [--n 10000] [--value-size 600] [--conc 32]
  etcd-range  --endpoint URL --key K [--prefix] [--n 50] [--max-secs 30] [--name grpc_range]
  watch-nuage --api URL --dir DIR [--watchers 1000] [--writes 50] [--warmup 3] [--server-pid PID]
  watch-etcd  --endpoint URL [--watchers 1000] [--writes 50] [--warmup 3] [--conns 10] [--server-pid PID]
  startup     --url URL [--runs 10] [--wipe DIR] [--timeout-ms 10000] [--name startup] -- CMD ARGS...
  pods        --api URL --dir DIR --node NODE --agent-dir DIR [--agent-pid PID] [--server-pid PID]
              [--figures \"serial burst idle\"] [--n 30] [--burst 100] [--idle 50] [--idle-secs 30]
              [--image busybox:latest] [--ns default]
  oci-floor   --engine crun|runc --bundle DIR --root DIR [--mode run|start] [--n 30] [--name NAME]
  schedule    --api URL --dir DIR [--server-pid PID] [--figures \"scale rollout\"] [--pods 10000]
              [--rollout 1000] [--ns nuage-bench-sched] [--timeout-secs 600]";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let parsed = match args::Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd.as_str() {
        "startup" => startup::run(&parsed),
        "oci-floor" => floor::run(&parsed),
        other => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("tokio runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(async {
                match other {
                    "load-pods" => load::pods(&parsed).await,
                    "etcd-load" => etcd::load(&parsed).await,
                    "etcd-range" => etcd::range(&parsed).await,
                    "watch-nuage" => watch::nuage(&parsed).await,
                    "watch-etcd" => watch::etcd(&parsed).await,
                    "pods" => pods::run(&parsed).await,
                    "schedule" => schedule::run(&parsed).await,
                    _ => Err(format!("unknown command {other:?}\n{USAGE}")),
                }
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nuage-bench {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
