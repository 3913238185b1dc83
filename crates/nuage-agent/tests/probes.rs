//! Probes against real listeners on 127.0.0.1 (a tiny hyper server whose
//! status the test flips, plain TCP listeners) and, for `exec`, a runtime
//! that runs host processes; thresholds through `probes::run` with 1 s
//! periods, waited on with deadlines.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, Probe,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nuage_agent::probes::{
    self, OwnedProbeTarget, ProbeKind, ProbeResult, ProbeTarget, ProbeTransition,
};
use nuage_agent::runtime::{
    ContainerConfig, ContainerStats, ContainerStatus, ExecSession, ExecSpec, Runtime,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// An HTTP server on 127.0.0.1 answering `status` on `/`, a redirect on
/// `/moved`, a redirect to another host on `/away`, and 200 on
/// `/needs-header` only with `X-Probe: yes`. Stops when dropped.
struct StatusServer {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusServer {
    async fn start(status: u16) -> Self {
        let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let shared = status.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let status = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let status = status.load(Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(answer(&req, status)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, status, task }
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(req: &Request<hyper::body::Incoming>, status: u16) -> Response<Full<Bytes>> {
    let reply = |code: u16, location: Option<&str>| {
        let mut r = Response::builder().status(code);
        if let Some(l) = location {
            r = r.header("location", l);
        }
        r.body(Full::new(Bytes::from(vec![b'x'; 64 * 1024])))
            .unwrap()
    };
    match req.uri().path() {
        "/moved" => reply(301, Some("/")),
        "/away" => reply(302, Some("http://nuage-probe-elsewhere.invalid/")),
        "/needs-header" => {
            let ok = req.headers().get("x-probe").is_some_and(|v| v == "yes")
                && req
                    .headers()
                    .get("user-agent")
                    .is_some_and(|v| v == "kube-probe/1.32");
            reply(if ok { 200 } else { 403 }, None)
        }
        _ => reply(status, None),
    }
}

/// A runtime whose `exec` runs the argv as a host process (a test double of
/// the container runtime, not of the prober).
struct HostRuntime;

#[async_trait::async_trait]
impl Runtime for HostRuntime {
    fn name(&self) -> &str {
        "host-test"
    }
    fn version(&self) -> String {
        "host-test://0".into()
    }
    async fn start(&self, _: &ContainerConfig) -> anyhow::Result<ContainerStatus> {
        anyhow::bail!("not supported by the test runtime")
    }
    async fn status(&self, _: &str) -> anyhow::Result<Option<ContainerStatus>> {
        Ok(None)
    }
    async fn wait(&self, _: &str) -> anyhow::Result<ContainerStatus> {
        anyhow::bail!("not supported by the test runtime")
    }
    async fn kill(&self, _: &str, _: i32) -> anyhow::Result<()> {
        Ok(())
    }
    async fn remove(&self, _: &str) -> anyhow::Result<()> {
        Ok(())
    }
    async fn list(&self) -> anyhow::Result<Vec<ContainerStatus>> {
        Ok(Vec::new())
    }
    async fn exec(&self, _: &str, spec: ExecSpec) -> anyhow::Result<ExecSession> {
        let mut child = tokio::process::Command::new(&spec.argv[0])
            .args(&spec.argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // A timed-out probe drops the session: the process goes with it.
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        Ok(ExecSession {
            stdin: None,
            stdout: Box::pin(stdout),
            stderr: Some(Box::pin(stderr)),
            resize: None,
            exit: Box::pin(async move {
                let status = child.wait().await?;
                Ok(status.code().unwrap_or(-1))
            }),
            kill: None,
        })
    }
    async fn stats(&self, _: &str) -> anyhow::Result<ContainerStats> {
        Ok(ContainerStats::default())
    }
}

fn container() -> Container {
    Container {
        name: "web".into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 0,
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn http_probe(port: IntOrString, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port,
            path: Some(path.into()),
            ..Default::default()
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

fn tcp_probe(port: u16) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port.into()),
            host: None,
        }),
        ..Default::default()
    }
}

fn exec_probe(argv: &[&str]) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(argv.iter().map(|s| s.to_string()).collect()),
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

async fn once(probe: &Probe, container: &Container) -> ProbeResult {
    let target = ProbeTarget {
        pod_ip: LOCALHOST,
        container,
        runtime: &HostRuntime,
        container_id: "c1",
    };
    probes::probe_once(probe, &target).await
}

/// A port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    listener.local_addr().unwrap().port()
}

fn failure(text: &str) -> ProbeResult {
    ProbeResult::Failure(text.into())
}

#[tokio::test]
async fn http_probes_judge_the_status_code() {
    let server = StatusServer::start(200).await;
    let port = server.addr.port();
    let c = container();
    let by_number = http_probe(IntOrString::Int(port.into()), "/");
    assert_eq!(once(&by_number, &c).await, ProbeResult::Success);

    // A named port from the container's ports.
    let mut named = container();
    named.ports.as_mut().unwrap()[0].container_port = port.into();
    let by_name = http_probe(IntOrString::String("http".into()), "/healthz");
    assert_eq!(once(&by_name, &named).await, ProbeResult::Success);
    let unknown = http_probe(IntOrString::String("admin".into()), "/");
    assert_eq!(
        once(&unknown, &named).await,
        failure("couldn't find port: admin in container web")
    );

    server.set(500);
    assert_eq!(
        once(&by_number, &c).await,
        failure("HTTP probe failed with statuscode: 500")
    );
    // Same-host redirects are followed to the final status.
    assert_eq!(
        once(&http_probe(IntOrString::Int(port.into()), "/moved"), &c).await,
        failure("HTTP probe failed with statuscode: 500")
    );
    // A redirect elsewhere is not followed: the 3xx counts as success.
    assert_eq!(
        once(&http_probe(IntOrString::Int(port.into()), "/away"), &c).await,
        ProbeResult::Success
    );
    server.set(399);
    assert_eq!(once(&by_number, &c).await, ProbeResult::Success);

    let mut with_header = http_probe(IntOrString::Int(port.into()), "/needs-header");
    assert_eq!(
        once(&with_header, &c).await,
        failure("HTTP probe failed with statuscode: 403")
    );
    with_header.http_get.as_mut().unwrap().http_headers = Some(vec![HTTPHeader {
        name: "X-Probe".into(),
        value: "yes".into(),
    }]);
    assert_eq!(once(&with_header, &c).await, ProbeResult::Success);
}

#[tokio::test]
async fn http_probes_report_refused_and_silent_servers() {
    let port = closed_port().await;
    let result = once(
        &http_probe(IntOrString::Int(port.into()), "/"),
        &container(),
    )
    .await;
    assert_eq!(
        result,
        failure(&format!(
            "Get \"http://127.0.0.1:{port}/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );

    // Accepts, never answers: the 1 s timeout ends the attempt.
    let silent = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let result = once(
        &http_probe(IntOrString::Int(port.into()), "/"),
        &container(),
    )
    .await;
    let ProbeResult::Failure(why) = result else {
        panic!("a silent server passed")
    };
    assert!(why.contains("context deadline exceeded"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn https_probes_skip_certificate_verification() {
    // A self-signed certificate nobody trusts, as the kubelet tolerates.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(stream).await else {
                continue;
            };
            let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                Ok::<_, Infallible>(answer(&req, 204))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    });
    let mut probe = http_probe(IntOrString::Int(port.into()), "/");
    probe.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
    assert_eq!(once(&probe, &container()).await, ProbeResult::Success);
    server.abort();
}

#[tokio::test]
async fn tcp_probes_connect_or_fail() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(
        once(&tcp_probe(port), &container()).await,
        ProbeResult::Success
    );
    let port = closed_port().await;
    assert_eq!(
        once(&tcp_probe(port), &container()).await,
        failure(&format!(
            "dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn exec_probes_use_the_exit_code_and_output() {
    let c = container();
    assert_eq!(once(&exec_probe(&["true"]), &c).await, ProbeResult::Success);
    assert_eq!(
        once(
            &exec_probe(&["sh", "-c", "echo not healthy >&2; exit 3"]),
            &c
        )
        .await,
        failure("not healthy")
    );
    assert_eq!(
        once(&exec_probe(&["sh", "-c", "exit 2"]), &c).await,
        failure("command \"sh -c exit 2\" exited with 2")
    );
    let started = Instant::now();
    assert_eq!(
        once(&exec_probe(&["sleep", "30"]), &c).await,
        failure("command \"sleep 30\" timed out")
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let missing = once(&exec_probe(&["/nonexistent/nuage-probe"]), &c).await;
    assert!(matches!(missing, ProbeResult::Failure(_)));
}

#[tokio::test]
async fn grpc_and_empty_probes_fail_clearly() {
    let grpc = Probe {
        grpc: Some(GRPCAction {
            port: 50051,
            service: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        once(&grpc, &container()).await,
        failure("grpc probes are not supported yet")
    );
    assert!(matches!(
        once(&Probe::default(), &container()).await,
        ProbeResult::Failure(_)
    ));
}

fn owned(container: Container) -> OwnedProbeTarget {
    OwnedProbeTarget {
        pod_ip: LOCALHOST,
        container,
        runtime: Arc::new(HostRuntime),
        container_id: "c1".into(),
    }
}

async fn next(rx: &mut mpsc::Receiver<ProbeTransition>, within: Duration) -> ProbeTransition {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("no probe transition before the deadline")
        .expect("the prober ended")
}

#[tokio::test]
async fn readiness_follows_the_thresholds() {
    let server = StatusServer::start(200).await;
    let mut probe = http_probe(IntOrString::Int(server.addr.port().into()), "/");
    probe.period_seconds = Some(1);
    probe.success_threshold = Some(2);
    probe.failure_threshold = Some(2);
    let (tx, mut rx) = mpsc::channel(4);
    let task = tokio::spawn(probes::run(
        ProbeKind::Readiness,
        probe,
        owned(container()),
        tx,
    ));

    // Two successes (at 0 s and 1 s) make it ready.
    let t = next(&mut rx, Duration::from_secs(5)).await;
    assert_eq!((t.kind, t.healthy), (ProbeKind::Readiness, true));

    server.set(500);
    let flipped = Instant::now();
    let t = next(&mut rx, Duration::from_secs(5)).await;
    assert!(!t.healthy);
    assert_eq!(
        t.message,
        "Readiness probe failed: HTTP probe failed with statuscode: 500"
    );
    // The second failure in a row is at least one period after the first.
    assert!(
        flipped.elapsed() >= Duration::from_millis(900),
        "{:?}",
        flipped.elapsed()
    );

    server.set(200);
    let recovered = Instant::now();
    let t = next(&mut rx, Duration::from_secs(5)).await;
    assert!(t.healthy);
    assert!(recovered.elapsed() >= Duration::from_millis(900));

    // Closing the channel ends the prober.
    drop(rx);
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("the prober outlived its channel")
        .unwrap();
}

#[tokio::test]
async fn liveness_fails_on_a_closed_port_and_startup_ends_after_success() {
    let mut liveness = tcp_probe(closed_port().await);
    liveness.period_seconds = Some(1);
    liveness.failure_threshold = Some(1);
    let (tx, mut rx) = mpsc::channel(4);
    let task = tokio::spawn(probes::run(
        ProbeKind::Liveness,
        liveness,
        owned(container()),
        tx,
    ));
    let t = next(&mut rx, Duration::from_secs(5)).await;
    assert!(!t.healthy);
    assert!(
        t.message
            .starts_with("Liveness probe failed: dial tcp 127.0.0.1:"),
        "{}",
        t.message
    );
    drop(rx);
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .unwrap()
        .unwrap();

    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let mut startup = tcp_probe(listener.local_addr().unwrap().port());
    startup.period_seconds = Some(1);
    let (tx, mut rx) = mpsc::channel(4);
    let task = tokio::spawn(probes::run(
        ProbeKind::Startup,
        startup,
        owned(container()),
        tx,
    ));
    let t = next(&mut rx, Duration::from_secs(5)).await;
    assert_eq!((t.kind, t.healthy), (ProbeKind::Startup, true));
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("a succeeded startup probe keeps running")
        .unwrap();
}
