//! The agent's own HTTP endpoints, at the kubelet's paths, for the API
//! server to forward `kubectl logs` and `kubectl exec` to:
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}` ([`logs`]): the
//!   container's log as text, from its CRI-format log file;
//! - `GET /exec/{namespace}/{pod}/{container}` (`exec`): a WebSocket
//!   speaking `v5.channel.k8s.io`;
//! - `GET /attach/...`: 400, not supported yet.
//!
//! Every request needs `Authorization: Bearer <token>`. Which pods exist and
//! where their files are is asked of the agent core through
//! [`PodContainers`]; this module owns only the protocol. It serves TLS
//! only, with the self-signed certificate of [`tls`], whose fingerprint the
//! API server pins from the Node: the token never crosses the network in
//! clear, and only this agent can receive it.

mod auth;
mod exec;
pub mod logs;
pub mod status;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use self::auth::constant_time_eq;
pub use self::exec::ExecOptions;
pub use self::status::Status;
use crate::runtime::{ExecSession, ExecSpec};

/// Where one container's logs are, as the agent core knows it.
#[derive(Debug, Clone)]
pub struct LogFiles {
    /// The log file of the current attempt (it may not exist yet).
    pub current: PathBuf,
    /// The previous attempt's file, if there was one.
    pub previous: Option<PathBuf>,
    /// Whether the current attempt runs: `follow` ends once it turns false
    /// (or its sender is dropped) and the file is drained.
    pub running: tokio::sync::watch::Receiver<bool>,
}

/// Why a pod's container cannot be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// No such pod on this node: 404.
    #[error("pods {pod:?} not found")]
    PodNotFound {
        /// The namespace asked for.
        namespace: String,
        /// The pod asked for.
        pod: String,
    },
    /// The pod has no container of that name: 400.
    #[error("container {container} is not valid for pod {pod}")]
    ContainerNotFound {
        /// The pod.
        pod: String,
        /// The container asked for.
        container: String,
    },
    /// The container cannot serve this now, e.g. `container "c" in pod "p"
    /// is waiting to start: ContainerCreating`, or exec into a container
    /// that does not run: 400 with this message.
    #[error("{0}")]
    NotReady(String),
    /// The runtime could not start the command (not found: 127, not
    /// executable: 126). Exec reports it in-band: the message on the
    /// output, then a NonZeroExitCode status with `exit_code`, as kubectl
    /// shows it against Docker or containerd.
    #[error("{message}")]
    ExecFailed {
        /// What the runtime said.
        message: String,
        /// The exit code the runtime reports.
        exit_code: i32,
    },
    /// Anything else: 500.
    #[error("{0}")]
    Internal(String),
}

/// What the server needs from the agent core: the pods it runs.
#[async_trait::async_trait]
pub trait PodContainers: Send + Sync {
    /// Log files of one container of a pod: the current attempt, the
    /// previous one, and whether the current runs.
    fn logs(&self, namespace: &str, pod: &str, container: &str) -> Result<LogFiles, LookupError>;

    /// Starts a process in a running container.
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        spec: ExecSpec,
    ) -> Result<ExecSession, LookupError>;
}

/// What every handler shares.
struct Shared {
    token: String,
    pods: Arc<dyn PodContainers>,
}

/// The agent's router: every route behind the bearer token `token`.
pub fn router(token: String, pods: Arc<dyn PodContainers>) -> Router {
    let shared = Arc::new(Shared { token, pods });
    Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(exec::exec).post(exec::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(attach).post(attach),
        )
        .fallback(|| async { Status::not_found("the agent serves no such path") })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            auth::require_token,
        ))
        .with_state(shared)
}

async fn attach() -> Status {
    Status::bad_request("attach is not supported: use exec")
}

/// How long open requests (a followed log, an exec session) may go on
/// after shutdown before their connections are cut.
const DRAIN: Duration = Duration::from_secs(5);

/// How long a client may take over the TLS handshake before its
/// connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` over TLS with `tls` (HTTP/1.1 and HTTP/2,
/// with upgrades for exec) until `shutdown` resolves, then lets open
/// requests finish for a few seconds.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off a
                    // little rather than spin.
                    tracing::warn!(error = %e, "agent server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        // The handshake runs in the connection's task, so one slow client
        // does not hold up the accept loop.
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "agent server: tls handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "agent server: tls handshake timed out");
                        return;
                    }
                };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "agent server: connection ended");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::info!("agent server: drain timed out"),
    }
}

/// Query pairs, keeping repeated keys (`command=ls&command=-l`); a
/// malformed query reads as empty.
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}
