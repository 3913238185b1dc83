//! Host ports: a listener in the agent per `hostPort`, relaying to the pod.
//!
//! A user-space relay rather than DNAT rules: it needs no `ip_forward`, no
//! `route_localnet` for 127.0.0.1, and nothing is left in the kernel when
//! the agent stops. TCP connections are copied both ways; UDP keeps a small
//! table of sessions, one per client address, each with its own socket
//! towards the pod (so replies find their client), ended after an idle
//! period as conntrack would.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info_span, warn, Instrument};

use super::{NetworkError, Result};

/// How long a connection to the pod may take before the client is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A UDP session with no datagram either way for this long ends
/// (conntrack's default for unreplied UDP).
const UDP_IDLE: Duration = Duration::from_secs(30);
/// At most this many UDP clients per host port at once; datagrams from
/// further clients are dropped until a session ends.
const MAX_UDP_SESSIONS: usize = 256;
/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// A transport protocol of a host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `TCP` or `UDP`, as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// A port on the host forwarded to a port of the pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host address to listen on (`0.0.0.0` for all).
    pub host_ip: Ipv4Addr,
    /// The host port.
    pub host_port: u16,
    /// The pod's port.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl HostPort {
    /// A TCP host port on every host address.
    pub fn tcp(host_port: u16, container_port: u16) -> Self {
        HostPort {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port,
            container_port,
            protocol: Protocol::Tcp,
        }
    }

    /// A UDP host port on every host address.
    pub fn udp(host_port: u16, container_port: u16) -> Self {
        HostPort {
            protocol: Protocol::Udp,
            ..HostPort::tcp(host_port, container_port)
        }
    }
}

/// The running forwarders, by pod uid.
#[derive(Default)]
pub(crate) struct Forwarders {
    pods: Mutex<HashMap<String, PodPorts>>,
}

struct PodPorts {
    ports: Vec<HostPort>,
    pod_ip: Ipv4Addr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PodPorts {
    fn drop(&mut self) {
        // Aborting a relay task drops its listener and its connection set,
        // which aborts every connection it carries.
        for task in &self.tasks {
            task.abort();
        }
    }
}

enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Forwarders {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodPorts>> {
        self.pods
            .lock()
            .expect("forwarder table is never poisoned: no panics under it")
    }

    pub(crate) async fn set(
        &self,
        pod_uid: &str,
        ports: Vec<HostPort>,
        pod_ip: Ipv4Addr,
    ) -> Result<()> {
        let previous = {
            let mut table = self.table();
            if table
                .get(pod_uid)
                .is_some_and(|p| p.ports == ports && p.pod_ip == pod_ip)
            {
                return Ok(());
            }
            table.remove(pod_uid)
        };
        if let Some(mut previous) = previous {
            // Wait until the old listeners are really closed: the new set
            // may bind the same ports.
            for task in std::mem::take(&mut previous.tasks) {
                task.abort();
                let _ = task.await;
            }
        }
        if ports.is_empty() {
            return Ok(());
        }
        let mut bound = Vec::with_capacity(ports.len());
        for port in &ports {
            // An error drops the sockets bound so far: all or nothing.
            bound.push(bind(port).await?);
        }
        let mut tasks = Vec::with_capacity(ports.len());
        for (port, socket) in ports.iter().zip(bound) {
            let target = SocketAddr::V4(SocketAddrV4::new(pod_ip, port.container_port));
            let span = info_span!("hostport", pod_uid, host_ip = %port.host_ip, host_port = port.host_port,
                protocol = port.protocol.as_str(), %target);
            tasks.push(match socket {
                Bound::Tcp(listener) => tokio::spawn(relay_tcp(listener, target).instrument(span)),
                Bound::Udp(socket) => tokio::spawn(relay_udp(socket, target).instrument(span)),
            });
        }
        self.table().insert(
            pod_uid.to_string(),
            PodPorts {
                ports,
                pod_ip,
                tasks,
            },
        );
        Ok(())
    }

    pub(crate) fn clear(&self, pod_uid: &str) {
        let removed = self.table().remove(pod_uid);
        drop(removed);
    }

    pub(crate) fn clear_all(&self) {
        let removed: Vec<PodPorts> = self.table().drain().map(|(_, p)| p).collect();
        drop(removed);
    }
}

async fn bind(port: &HostPort) -> Result<Bound> {
    let addr = SocketAddrV4::new(port.host_ip, port.host_port);
    let bound = match port.protocol {
        Protocol::Tcp => TcpListener::bind(addr).await.map(Bound::Tcp),
        Protocol::Udp => UdpSocket::bind(addr).await.map(Bound::Udp),
    };
    bound.map_err(|source| {
        if source.kind() == ErrorKind::AddrInUse {
            NetworkError::PortInUse {
                host_ip: port.host_ip,
                host_port: port.host_port,
                protocol: port.protocol.as_str(),
            }
        } else {
            NetworkError::HostPort {
                host_ip: port.host_ip,
                host_port: port.host_port,
                protocol: port.protocol.as_str(),
                source,
            }
        }
    })
}

async fn relay_tcp(listener: TcpListener, target: SocketAddr) {
    // Owned here: aborting this task drops the set, closing every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    connections.spawn(relay_connection(client, target).instrument(info_span!("conn", %peer)));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // instead of spinning on the same error.
                    warn!(error = %e, "accepting a host port connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn relay_connection(mut client: TcpStream, target: SocketAddr) {
    let mut upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
    {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(e)) => {
            debug!(error = %e, "connecting to the pod");
            return;
        }
        Err(_) => {
            debug!("connecting to the pod timed out");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        debug!(error = %e, "host port connection ended");
    }
}

/// A UDP client's session: its socket towards the pod and when it was last
/// used (milliseconds since the relay started).
struct Session {
    id: u64,
    upstream: Arc<UdpSocket>,
    last_active: Arc<AtomicU64>,
}

async fn relay_udp(socket: UdpSocket, target: SocketAddr) {
    let socket = Arc::new(socket);
    let started = Instant::now();
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    // Owned here: aborting this task drops the set and every reply task.
    let mut replies = JoinSet::new();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut next_id = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, client) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        debug!(error = %e, "receiving on a UDP host port");
                        continue;
                    }
                };
                if !sessions.contains_key(&client) {
                    if sessions.len() >= MAX_UDP_SESSIONS {
                        debug!(%client, "too many UDP sessions: datagram dropped");
                        continue;
                    }
                    let upstream = match connect_udp(target).await {
                        Ok(upstream) => Arc::new(upstream),
                        Err(e) => {
                            debug!(error = %e, "opening a UDP session to the pod");
                            continue;
                        }
                    };
                    next_id += 1;
                    let session = Session { id: next_id, upstream, last_active: Arc::new(AtomicU64::new(0)) };
                    replies.spawn(relay_udp_replies(
                        session.upstream.clone(),
                        socket.clone(),
                        client,
                        (started, session.last_active.clone()),
                        (ended_tx.clone(), session.id),
                    ));
                    sessions.insert(client, session);
                }
                let session = sessions.get(&client).expect("inserted above when absent");
                session.last_active.store(millis_since(started), Ordering::Relaxed);
                if let Err(e) = session.upstream.send(&buf[..len]).await {
                    debug!(error = %e, %client, "sending a datagram to the pod");
                }
            }
            Some((client, id)) = ended_rx.recv() => {
                // Only the session that ended: a new one may have the address.
                if sessions.get(&client).is_some_and(|s| s.id == id) {
                    sessions.remove(&client);
                }
            }
            Some(_) = replies.join_next(), if !replies.is_empty() => {}
        }
    }
}

async fn connect_udp(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let upstream = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).await?;
    upstream.connect(target).await?;
    Ok(upstream)
}

/// Relays the pod's datagrams back to one client until the session has
/// been idle both ways for [`UDP_IDLE`].
async fn relay_udp_replies(
    upstream: Arc<UdpSocket>,
    downstream: Arc<UdpSocket>,
    client: SocketAddr,
    (started, last_active): (Instant, Arc<AtomicU64>),
    (ended, id): (mpsc::UnboundedSender<(SocketAddr, u64)>, u64),
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
            Ok(Ok(len)) => {
                last_active.store(millis_since(started), Ordering::Relaxed);
                if let Err(e) = downstream.send_to(&buf[..len], client).await {
                    debug!(error = %e, %client, "sending a datagram to the client");
                }
            }
            // ECONNREFUSED after an ICMP port unreachable: the pod is not
            // listening (yet); the session stays for the next datagram.
            Ok(Err(e)) => debug!(error = %e, %client, "receiving from the pod"),
            Err(_) => {
                let idle =
                    millis_since(started).saturating_sub(last_active.load(Ordering::Relaxed));
                if Duration::from_millis(idle) >= UDP_IDLE {
                    break;
                }
            }
        }
    }
    let _ = ended.send((client, id));
}

fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
