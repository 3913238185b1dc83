//! Container probes (liveness, readiness, startup): one attempt at a time
//! with [`probe_once`], or a probe's whole life with [`run`], which applies
//! its period and thresholds and reports each change of the thresholded
//! outcome.
//!
//! Handlers: `httpGet` (HTTP, or HTTPS without certificate verification as
//! the kubelet does), `tcpSocket`, `exec` (through the container runtime);
//! `grpc` answers a failure saying it is not supported yet. It does not own
//! what a transition means (restarting the container, the Ready condition):
//! the pod worker decides.

mod exec;
mod http;
mod tcp;
mod thresholds;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::runtime::Runtime;
use thresholds::Thresholds;

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Failing restarts the container.
    Liveness,
    /// Drives the container's `ready` and the pod's Ready condition.
    Readiness,
    /// Holds back liveness and readiness until it first succeeds.
    Startup,
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        })
    }
}

/// The outcome of one probe attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The container answered as healthy.
    Success,
    /// Why not, as the kubelet words it without the `<Kind> probe failed: `
    /// prefix (e.g. `HTTP probe failed with statuscode: 500`).
    Failure(String),
}

/// What a probe attempt runs against.
#[derive(Clone, Copy)]
pub struct ProbeTarget<'a> {
    /// The pod's IP (the default host of `httpGet` and `tcpSocket`).
    pub pod_ip: IpAddr,
    /// The container (for named ports).
    pub container: &'a Container,
    /// The runtime that runs it (for `exec`).
    pub runtime: &'a dyn Runtime,
    /// Its id in the runtime.
    pub container_id: &'a str,
}

/// [`ProbeTarget`] owning its parts (the runtime shared), so [`run`] can be
/// a `'static` task.
#[derive(Clone)]
pub struct OwnedProbeTarget {
    /// The pod's IP.
    pub pod_ip: IpAddr,
    /// The container (its spec).
    pub container: Container,
    /// The runtime that runs it.
    pub runtime: Arc<dyn Runtime>,
    /// Its id in the runtime.
    pub container_id: String,
}

impl OwnedProbeTarget {
    /// Borrows it as a [`ProbeTarget`].
    pub fn as_target(&self) -> ProbeTarget<'_> {
        ProbeTarget {
            pod_ip: self.pod_ip,
            container: &self.container,
            runtime: self.runtime.as_ref(),
            container_id: &self.container_id,
        }
    }
}

/// A change of a probe's thresholded outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTransition {
    /// Which probe.
    pub kind: ProbeKind,
    /// Healthy (after `successThreshold` successes in a row) or not (after
    /// `failureThreshold` failures in a row).
    pub healthy: bool,
    /// For an unhealthy transition the `Unhealthy` event's message, e.g.
    /// `Liveness probe failed: HTTP probe failed with statuscode: 500`;
    /// for a healthy one, `<Kind> probe succeeded`.
    pub message: String,
}

/// A probe's timing and thresholds with Kubernetes' defaults and minimums
/// applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Before the first attempt (`initialDelaySeconds`, default 0).
    pub initial_delay: Duration,
    /// Between attempts (`periodSeconds`, default 10 s, at least 1 s).
    pub period: Duration,
    /// For one attempt (`timeoutSeconds`, default 1 s, at least 1 s).
    pub timeout: Duration,
    /// Successes in a row to become healthy (default 1).
    pub success_threshold: u32,
    /// Failures in a row to become unhealthy (default 3).
    pub failure_threshold: u32,
}

impl ProbeSettings {
    /// The settings of `probe`.
    pub fn of(probe: &Probe) -> Self {
        let at_least =
            |v: Option<i32>, default: i32, min: i32| v.unwrap_or(default).max(min) as u32;
        Self {
            initial_delay: Duration::from_secs(at_least(probe.initial_delay_seconds, 0, 0).into()),
            period: Duration::from_secs(at_least(probe.period_seconds, 10, 1).into()),
            timeout: Duration::from_secs(at_least(probe.timeout_seconds, 1, 1).into()),
            success_threshold: at_least(probe.success_threshold, 1, 1),
            failure_threshold: at_least(probe.failure_threshold, 3, 1),
        }
    }
}

/// Runs one probe attempt with its timeout.
pub async fn probe_once(probe: &Probe, target: &ProbeTarget<'_>) -> ProbeResult {
    let timeout = ProbeSettings::of(probe).timeout;
    if let Some(action) = &probe.http_get {
        http::probe(action, target, timeout).await
    } else if let Some(action) = &probe.tcp_socket {
        tcp::probe(action, target, timeout).await
    } else if let Some(action) = &probe.exec {
        exec::probe(action, target, timeout).await
    } else if probe.grpc.is_some() {
        ProbeResult::Failure("grpc probes are not supported yet".into())
    } else {
        ProbeResult::Failure("the probe has no handler".into())
    }
}

/// Runs a probe forever per its spec (`initialDelaySeconds`,
/// `periodSeconds`, `timeoutSeconds`, `successThreshold`,
/// `failureThreshold`): sends a [`ProbeTransition`] on `tx` each time the
/// thresholded outcome changes (and the first time it is decided), until
/// `tx` is closed. A startup probe ends after its first success, as the
/// kubelet stops running it then.
pub async fn run(
    kind: ProbeKind,
    probe: Probe,
    target: OwnedProbeTarget,
    tx: mpsc::Sender<ProbeTransition>,
) {
    let settings = ProbeSettings::of(&probe);
    let mut ticks =
        tokio::time::interval_at(Instant::now() + settings.initial_delay, settings.period);
    // A slow attempt pushes the next one back rather than firing a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut thresholds = Thresholds::new(settings.success_threshold, settings.failure_threshold);
    let attempt_target = target.as_target();
    loop {
        let result = tokio::select! {
            _ = tx.closed() => return,
            _ = ticks.tick() => tokio::select! {
                _ = tx.closed() => return,
                result = probe_once(&probe, &attempt_target) => result,
            },
        };
        let (success, message) = match result {
            ProbeResult::Success => (true, format!("{kind} probe succeeded")),
            ProbeResult::Failure(why) => (false, format!("{kind} probe failed: {why}")),
        };
        tracing::trace!(%kind, container = %target.container_id, success, "probe");
        if let Some(healthy) = thresholds.observe(success) {
            let transition = ProbeTransition {
                kind,
                healthy,
                message,
            };
            if tx.send(transition).await.is_err() || (kind == ProbeKind::Startup && healthy) {
                return;
            }
        }
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| {
                    format!("couldn't find port: {s} in container {}", container.name)
                })?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// `host:port`, with brackets around an IPv6 literal.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A connect error as Go words it (`dial tcp ADDR: connect: connection
/// refused`), since users compare it with what the kubelet says.
fn dial_error(addr: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {addr}: connect: connection refused")
        }
        _ => format!("dial tcp {addr}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn defaults_and_minimums() {
        let s = ProbeSettings::of(&Probe::default());
        assert_eq!(s.period, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));
        assert_eq!(s.initial_delay, Duration::ZERO);
        let s = ProbeSettings::of(&Probe {
            period_seconds: Some(0),
            failure_threshold: Some(-2),
            initial_delay_seconds: Some(5),
            ..Default::default()
        });
        assert_eq!(s.period, Duration::from_secs(1));
        assert_eq!(s.failure_threshold, 1);
        assert_eq!(s.initial_delay, Duration::from_secs(5));
    }

    #[test]
    fn ports_by_number_and_name() {
        let c = Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("9090".into()), &c),
            Ok(9090)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("admin".into()), &c),
            Err("couldn't find port: admin in container web".into())
        );
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
        assert_eq!(host_port("::1", 80), "[::1]:80");
    }
}
