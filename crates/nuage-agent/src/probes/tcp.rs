//! `tcpSocket` probes: healthy when a connection opens within the timeout.

use std::time::Duration;

use k8s_openapi::api::core::v1::TCPSocketAction;
use tokio::net::TcpStream;

use super::{dial_error, host_port, resolve_port, ProbeResult, ProbeTarget};

pub(super) async fn probe(
    action: &TCPSocketAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeResult {
    let port = match resolve_port(&action.port, target.container) {
        Ok(port) => port,
        Err(why) => return ProbeResult::Failure(why),
    };
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(host) => host.to_string(),
        None => target.pod_ip.to_string(),
    };
    let addr = host_port(&host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await {
        // Dropping the stream closes it at once, as the kubelet does.
        Ok(Ok(_stream)) => ProbeResult::Success,
        Ok(Err(e)) => ProbeResult::Failure(dial_error(&addr, &e)),
        Err(_) => ProbeResult::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}
