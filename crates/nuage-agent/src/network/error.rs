//! What can go wrong in pod networking.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// A pod networking failure; each message names the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// This agent has no pod networking (it runs without root): only the
    /// host's network, with a loopback address per pod.
    #[error("pod networking is not available on this node (the agent runs without root): use the process runtime or run the agent as root")]
    HostOnly,
    /// The pod CIDR cannot be used.
    #[error("pod CIDR {cidr}: {reason}")]
    InvalidCidr {
        /// The CIDR as given.
        cidr: String,
        /// Why not.
        reason: String,
    },
    /// The pod CIDR overlaps a route the host already has.
    #[error("pod CIDR {cidr} overlaps the host route {route}")]
    CidrOverlap {
        /// The pod CIDR.
        cidr: String,
        /// The host's route (destination and device).
        route: String,
    },
    /// A name (bridge, namespace prefix, pod uid) is unusable.
    #[error("{what} {value:?}: {reason}")]
    InvalidName {
        /// Which name.
        what: &'static str,
        /// Its value.
        value: String,
        /// Why not.
        reason: &'static str,
    },
    /// Every address of the range is taken.
    #[error("no free address left in {range}")]
    Exhausted {
        /// The range, as `first-last`.
        range: String,
    },
    /// `ip` could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ip` ran and failed.
    #[error("ip {what} failed: {stderr}")]
    Ip {
        /// What it was doing (its arguments, or the batch's first line).
        what: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A state file could not be read or written.
    #[error("network state {path}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A host port is taken by another process or pod.
    #[error("host port {host_ip}:{host_port}/{protocol} is already in use")]
    PortInUse {
        /// The address it was to listen on.
        host_ip: Ipv4Addr,
        /// The port.
        host_port: u16,
        /// `TCP` or `UDP`.
        protocol: &'static str,
    },
    /// A host port could not be bound for another reason.
    #[error("cannot listen on host port {host_ip}:{host_port}/{protocol}")]
    HostPort {
        /// The address it was to listen on.
        host_ip: Ipv4Addr,
        /// The port.
        host_port: u16,
        /// `TCP` or `UDP`.
        protocol: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl NetworkError {
    pub(crate) fn state(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NetworkError {
        let path = path.into();
        move |source| NetworkError::State { path, source }
    }
}
