//! The agent's log and exec endpoints over real sockets: log files written
//! in the CRI format, exec of real host processes (pipes, or a pty for
//! `tty`), a real WebSocket client speaking `v5.channel.k8s.io`. The agent
//! serves TLS only; clients pin its certificate as the API server does.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use nuage_agent::runtime::{ExecSession, ExecSpec};
use nuage_agent::server::tls::ServingCertificate;
use nuage_agent::server::{self, LogFiles, LookupError, PodContainers};
use nuage_api::rest::agent_tls;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "agent-test-token";
/// How long any one wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- fixture

/// One pod `ns/web` with one container `app`, whose log files live in a
/// temporary directory, and whose exec runs host processes. `calls` counts
/// every lookup, of any pod.
struct HostPods {
    dir: PathBuf,
    running: watch::Receiver<bool>,
    calls: Arc<AtomicUsize>,
}

impl HostPods {
    fn current(dir: &Path) -> PathBuf {
        dir.join("app-1.log")
    }
    fn previous(dir: &Path) -> PathBuf {
        dir.join("app-0.log")
    }
}

#[async_trait::async_trait]
impl PodContainers for HostPods {
    fn logs(&self, namespace: &str, pod: &str, container: &str) -> Result<LogFiles, LookupError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        check(namespace, pod, container)?;
        let previous = Self::previous(&self.dir);
        Ok(LogFiles {
            current: Self::current(&self.dir),
            previous: previous.exists().then_some(previous),
            running: self.running.clone(),
        })
    }

    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        spec: ExecSpec,
    ) -> Result<ExecSession, LookupError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        check(namespace, pod, container)?;
        if spec.tty {
            exec_on_pty(spec)
        } else {
            exec_on_pipes(spec)
        }
    }
}

fn check(namespace: &str, pod: &str, container: &str) -> Result<(), LookupError> {
    if namespace != "ns" || pod != "web" {
        return Err(LookupError::PodNotFound {
            namespace: namespace.into(),
            pod: pod.into(),
        });
    }
    if container != "app" {
        return Err(LookupError::ContainerNotFound {
            pod: pod.into(),
            container: container.into(),
        });
    }
    Ok(())
}

fn spawn_error(argv0: &str, e: std::io::Error) -> LookupError {
    match e.kind() {
        std::io::ErrorKind::NotFound => LookupError::ExecFailed {
            message: format!("exec: {argv0:?}: executable file not found in $PATH"),
            exit_code: 127,
        },
        std::io::ErrorKind::PermissionDenied => LookupError::ExecFailed {
            message: format!("exec: {argv0:?}: permission denied"),
            exit_code: 126,
        },
        _ => LookupError::Internal(e.to_string()),
    }
}

fn exit_future(mut child: tokio::process::Child) -> ExecSession {
    ExecSession {
        stdin: None,
        stdout: Box::pin(tokio::io::empty()),
        stderr: None,
        resize: None,
        exit: Box::pin(async move {
            use std::os::unix::process::ExitStatusExt;
            let st = child.wait().await?;
            Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
        }),
        kill: None,
    }
}

fn exec_on_pipes(spec: ExecSpec) -> Result<ExecSession, LookupError> {
    let mut child = tokio::process::Command::new(&spec.argv[0])
        .args(&spec.argv[1..])
        .stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_error(&spec.argv[0], e))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut session = exit_future(child);
    session.stdin = stdin.map(|w| Box::pin(w) as _);
    session.stdout = Box::pin(stdout);
    session.stderr = Some(Box::pin(stderr));
    Ok(session)
}

/// The command on a new pty, as the controlling terminal of a new session
/// (`setsid -c`), the way a runtime runs `exec -t`.
fn exec_on_pty(spec: ExecSpec) -> Result<ExecSession, LookupError> {
    use rustix::pty::{grantpt, ioctl_tiocgptpeer, openpt, unlockpt, OpenptFlags};
    let internal = |e: rustix::io::Errno| LookupError::Internal(format!("pty: {e}"));
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(internal)?;
    grantpt(&master).map_err(internal)?;
    unlockpt(&master).map_err(internal)?;
    let slave =
        ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY).map_err(internal)?;
    let dup = |fd: &OwnedFd| {
        fd.try_clone()
            .map_err(|e| LookupError::Internal(e.to_string()))
    };
    let child = tokio::process::Command::new("setsid")
        .arg("-c")
        .args(&spec.argv)
        .stdin(Stdio::from(dup(&slave)?))
        .stdout(Stdio::from(dup(&slave)?))
        .stderr(Stdio::from(slave))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_error("setsid", e))?;
    let reader = tokio::fs::File::from_std(std::fs::File::from(dup(&master)?));
    let writer = tokio::fs::File::from_std(std::fs::File::from(dup(&master)?));
    let mut session = exit_future(child);
    session.stdin = spec.stdin.then(|| Box::pin(writer) as _);
    session.stdout = Box::pin(reader);
    session.resize = Some(Box::new(move |cols, rows| {
        rustix::termios::tcsetwinsize(
            &master,
            rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .map_err(std::io::Error::from)
    }));
    Ok(session)
}

/// A running agent server (TLS, its own self-signed certificate) over a
/// temporary log directory; stops on drop.
struct Agent {
    addr: std::net::SocketAddr,
    /// The SHA-256 of its certificate, as it would pin it on its Node.
    sha256: String,
    dir: tempfile::TempDir,
    running: watch::Sender<bool>,
    /// Requests that reached the agent's router, with a token or not.
    requests: Arc<AtomicUsize>,
    /// Lookups of pods the router made (`HostPods::calls`).
    calls: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl Agent {
    async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("nuage-agent-server-")
            .tempdir()
            .unwrap();
        let (running, running_rx) = watch::channel(true);
        let calls = Arc::new(AtomicUsize::new(0));
        let pods = Arc::new(HostPods {
            dir: dir.path().to_path_buf(),
            running: running_rx,
            calls: Arc::clone(&calls),
        });
        let certificate = ServingCertificate::load_or_create(
            &dir.path().join("tls"),
            std::net::Ipv4Addr::LOCALHOST.into(),
            "localhost",
        )
        .unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        // Outside the agent's own layers: counts requests its token check
        // refuses too.
        let router = server::router(TOKEN.into(), pods).layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                counter.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            },
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server::serve(
            listener,
            certificate.server_config().unwrap(),
            router,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            sha256: certificate.sha256.clone(),
            dir,
            running,
            requests,
            calls,
            _stop: stop,
        }
    }

    fn write_current(&self, text: &str) {
        append(&HostPods::current(self.dir.path()), text);
    }

    fn write_previous(&self, text: &str) {
        append(&HostPods::previous(self.dir.path()), text);
    }

    /// A GET with the right token; the status and the body as it streams.
    async fn get(&self, path: &str) -> (u16, hyper::body::Incoming) {
        self.get_with(path, Some(TOKEN)).await
    }

    async fn get_with(&self, path: &str, token: Option<&str>) -> (u16, hyper::body::Incoming) {
        request_at(self.addr, Some(&self.sha256), path, token)
            .await
            .unwrap()
    }

    /// A GET whose whole body is read (the stream must end).
    async fn get_text(&self, path: &str) -> (u16, String) {
        let (code, body) = self.get(path).await;
        (code, read_body(body).await)
    }
}

/// A byte stream to a server: plain TCP, or TLS to a pinned agent.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects to `addr`; with `pin` (SHA-256 hex), over TLS trusting only
/// that certificate, as the API server connects to agents.
async fn open(addr: std::net::SocketAddr, pin: Option<&str>) -> std::io::Result<Box<dyn Io>> {
    let stream = TcpStream::connect(addr).await?;
    let Some(pin) = pin else {
        return Ok(Box::new(stream));
    };
    let config = agent_tls::client_config(agent_tls::parse_sha256(pin).unwrap()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(addr.ip().into(), stream)
        .await?;
    Ok(Box::new(tls))
}

/// A GET over `open(addr, pin)`; the status and the body as it streams.
async fn request_at(
    addr: std::net::SocketAddr,
    pin: Option<&str>,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, hyper::body::Incoming), Box<dyn std::error::Error + Send + Sync>> {
    let stream = open(addr, pin).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = sender
        .send_request(req.body(http_body_util::Empty::<bytes::Bytes>::new())?)
        .await?;
    Ok((resp.status().as_u16(), resp.into_body()))
}

/// A plain HTTP GET (the API server in these tests); the status and the
/// body as it streams.
async fn get_at(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (u16, hyper::body::Incoming) {
    request_at(addr, None, path, token).await.unwrap()
}

/// A plain HTTP GET whose whole body is read (the stream must end).
async fn get_text_at(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let (code, body) = get_at(addr, path, token).await;
    (code, read_body(body).await)
}

async fn read_body(body: hyper::body::Incoming) -> String {
    let bytes = tokio::time::timeout(DEADLINE, body.collect())
        .await
        .expect("the body ends")
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A CRI record at 2026-11-25T14:00:SS.
fn rec(sec: u32, stream: &str, tag: &str, text: &str) -> String {
    format!("2026-11-25T14:00:{sec:02}.5Z {stream} {tag} {text}\n")
}

/// Reads body frames until `want` shows up in what was read.
async fn read_until(body: &mut hyper::body::Incoming, seen: &mut String, want: &str) {
    tokio::time::timeout(DEADLINE, async {
        while !seen.contains(want) {
            let frame = body.frame().await.expect("more body").unwrap();
            if let Ok(data) = frame.into_data() {
                seen.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{want:?} not seen; got {seen:?}"));
}

// ---------------------------------------------------------------- logs

const LOG_PATH: &str = "/containerLogs/ns/web/app";

fn sample_log() -> String {
    [
        rec(1, "stdout", "F", "first"),
        rec(2, "stderr", "F", "to stderr"),
        rec(3, "stdout", "P", "a long "),
        rec(3, "stdout", "P", "line in "),
        rec(4, "stdout", "F", "three records"),
        rec(5, "stdout", "F", "last"),
    ]
    .concat()
}

#[tokio::test]
async fn logs_are_plain_text_with_partial_lines_joined() {
    let agent = Agent::start().await;
    agent.write_current(&sample_log());
    let (code, text) = agent.get_text(LOG_PATH).await;
    assert_eq!(code, 200);
    assert_eq!(
        text,
        "first\nto stderr\na long line in three records\nlast\n"
    );
}

#[tokio::test]
async fn logs_tail_counts_lines() {
    let agent = Agent::start().await;
    agent.write_current(&sample_log());
    let (_, text) = agent.get_text(&format!("{LOG_PATH}?tailLines=2")).await;
    assert_eq!(text, "a long line in three records\nlast\n");
    let (_, text) = agent.get_text(&format!("{LOG_PATH}?tailLines=0")).await;
    assert_eq!(text, "");
    let (_, text) = agent.get_text(&format!("{LOG_PATH}?tailLines=100")).await;
    assert_eq!(text.lines().count(), 4);
}

#[tokio::test]
async fn logs_since_time_and_seconds_filter() {
    let agent = Agent::start().await;
    agent.write_current(&sample_log());
    let (_, text) = agent
        .get_text(&format!("{LOG_PATH}?sinceTime=2026-11-25T14:00:04Z"))
        .await;
    assert_eq!(text, "three records\nlast\n");
    // A record from long ago is outside the last hour...
    let agent = Agent::start().await;
    agent.write_current("2020-01-01T00:00:00Z stdout F old\n");
    let (_, text) = agent
        .get_text(&format!("{LOG_PATH}?sinceSeconds=3600"))
        .await;
    assert_eq!(text, "");
    // ...and one written now is inside.
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    agent.write_current(&format!("{now} stdout F fresh\n"));
    let (_, text) = agent
        .get_text(&format!("{LOG_PATH}?sinceSeconds=3600"))
        .await;
    assert_eq!(text, "fresh\n");
}

#[tokio::test]
async fn logs_timestamps_prefix_each_line_once() {
    let agent = Agent::start().await;
    agent.write_current(&sample_log());
    let (_, text) = agent
        .get_text(&format!("{LOG_PATH}?timestamps=true&tailLines=2"))
        .await;
    assert_eq!(
        text,
        "2026-11-25T14:00:03.5Z a long line in three records\n2026-11-25T14:00:05.5Z last\n"
    );
}

#[tokio::test]
async fn logs_limit_bytes_caps_output() {
    let agent = Agent::start().await;
    agent.write_current(&sample_log());
    let (_, text) = agent.get_text(&format!("{LOG_PATH}?limitBytes=8")).await;
    assert_eq!(text, "first\nto");
}

#[tokio::test]
async fn logs_previous_reads_the_previous_attempt_or_says_why_not() {
    let agent = Agent::start().await;
    agent.write_current(&rec(9, "stdout", "F", "current"));
    let (code, body) = agent.get_text(&format!("{LOG_PATH}?previous=true")).await;
    assert_eq!(code, 400);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["message"],
        "previous terminated container \"app\" in pod \"web\" not found"
    );
    assert_eq!(status["kind"], "Status");

    agent.write_previous(&rec(1, "stdout", "F", "before the crash"));
    let (code, text) = agent.get_text(&format!("{LOG_PATH}?previous=true")).await;
    assert_eq!((code, text.as_str()), (200, "before the crash\n"));
    // Following a previous attempt drains it and ends.
    let (_, text) = agent
        .get_text(&format!("{LOG_PATH}?previous=true&follow=true"))
        .await;
    assert_eq!(text, "before the crash\n");
}

#[tokio::test]
async fn logs_follow_streams_new_lines_and_ends_with_the_attempt() {
    let agent = Agent::start().await;
    agent.write_current(&rec(1, "stdout", "F", "before"));
    let (code, mut body) = agent.get(&format!("{LOG_PATH}?follow=true")).await;
    assert_eq!(code, 200);
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "before\n").await;

    // A line written after the request started arrives on the open stream,
    // also when its record is written in two pieces.
    let line = rec(2, "stdout", "F", "after");
    let (head, tail) = line.split_at(10);
    agent.write_current(head);
    agent.write_current(tail);
    read_until(&mut body, &mut seen, "after\n").await;

    // The attempt ends: whatever it wrote last still arrives, then the end.
    agent.write_current(&rec(3, "stderr", "F", "goodbye"));
    agent.running.send(false).unwrap();
    let rest = tokio::time::timeout(DEADLINE, body.collect())
        .await
        .expect("the stream ends once the container has exited")
        .unwrap()
        .to_bytes();
    seen.push_str(std::str::from_utf8(&rest).unwrap());
    assert_eq!(seen, "before\nafter\ngoodbye\n");
}

#[tokio::test]
async fn logs_follow_waits_for_a_file_not_written_yet() {
    let agent = Agent::start().await;
    let (code, mut body) = agent
        .get(&format!("{LOG_PATH}?follow=true&timestamps=1"))
        .await;
    assert_eq!(code, 200);
    agent.write_current(&rec(7, "stdout", "F", "first words"));
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "2026-11-25T14:00:07.5Z first words\n").await;
}

#[tokio::test]
async fn logs_of_unknown_pods_and_containers_and_bad_options_are_statuses() {
    let agent = Agent::start().await;
    let (code, body) = agent.get_text("/containerLogs/ns/nope/app").await;
    assert_eq!(code, 404);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["message"], "pods \"nope\" not found");

    let (code, body) = agent.get_text("/containerLogs/ns/web/db").await;
    assert_eq!(code, 400);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["message"], "container db is not valid for pod web");

    let (code, body) = agent
        .get_text(&format!(
            "{LOG_PATH}?sinceSeconds=5&sinceTime=2026-11-25T14:00:00Z"
        ))
        .await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn requests_without_the_token_are_refused() {
    let agent = Agent::start().await;
    agent.write_current(&rec(1, "stdout", "F", "secret"));
    for token in [None, Some("wrong"), Some("")] {
        let (code, body) = agent.get_with(LOG_PATH, token).await;
        assert_eq!(code, 401, "token {token:?}");
        let body = body.collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }
    // A WebSocket upgrade without the token gets no socket.
    let url = format!(
        "wss://{}/exec/ns/web/app?command=true&stdout=true",
        agent.addr
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("v5.channel.k8s.io"),
    );
    match ws_connect(agent.addr, Some(&agent.sha256), req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401)
        }
        other => panic!("expected a 401, got {:?}", other.map(|(_, r)| r.status())),
    }
}

#[tokio::test]
async fn the_agent_speaks_only_tls_with_its_own_certificate() {
    let agent = Agent::start().await;
    agent.write_current(&rec(1, "stdout", "F", "secret"));
    // Plain HTTP gets no answer: the request never reaches a handler.
    let plain = tokio::time::timeout(
        DEADLINE,
        request_at(agent.addr, None, LOG_PATH, Some(TOKEN)),
    )
    .await
    .expect("the agent answers or hangs up");
    assert!(plain.is_err(), "plain HTTP was answered");
    // A client pinning another certificate refuses the agent's.
    let other = nuage_agent::server::tls::sha256_hex(b"another certificate");
    let pinned_elsewhere = request_at(agent.addr, Some(&other), LOG_PATH, Some(TOKEN)).await;
    let err = pinned_elsewhere.expect_err("the handshake fails");
    let io = err.downcast_ref::<std::io::Error>().expect("an I/O error");
    let mismatch = agent_tls::fingerprint_mismatch(io).expect("a pin mismatch");
    assert_eq!(mismatch.presented, agent.sha256);
    assert_eq!(agent.requests.load(Ordering::SeqCst), 0);
    // The pinned client gets through.
    let (code, text) = agent.get_text(LOG_PATH).await;
    assert_eq!((code, text.as_str()), (200, "secret\n"));
    assert_eq!(agent.requests.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------- exec

type Socket = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;
type Handshake = Result<
    (
        Socket,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
>;

/// A WebSocket handshake over `open(addr, pin)`.
async fn ws_connect(
    addr: std::net::SocketAddr,
    pin: Option<&str>,
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Handshake {
    let stream = open(addr, pin).await?;
    tokio_tungstenite::client_async(req, stream).await
}

async fn connect_exec(agent: &Agent, query: &str, protocol: &'static str) -> Socket {
    let url = format!("wss://{}/exec/ns/web/app?{query}", agent.addr);
    connect_ws(agent.addr, Some(&agent.sha256), &url, TOKEN, protocol).await
}

async fn connect_ws(
    addr: std::net::SocketAddr,
    pin: Option<&str>,
    url: &str,
    token: &str,
    protocol: &'static str,
) -> Socket {
    let mut req = url.into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (socket, resp) = ws_connect(addr, pin, req).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        protocol,
        "the server speaks the offered protocol"
    );
    socket
}

/// What a session sent, by channel, until the server closed it.
#[derive(Default, Debug)]
struct Received {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<Value>,
    other_channels: Vec<u8>,
    pongs: Vec<Vec<u8>>,
    closed: bool,
}

impl Received {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn status(&self) -> &Value {
        self.status.as_ref().expect("a status on channel 3")
    }
}

async fn receive_one(socket: &mut Socket, got: &mut Received) -> bool {
    match socket.next().await {
        Some(Ok(Message::Binary(b))) => {
            let (ch, data) = b.split_first().expect("a channel byte");
            match ch {
                1 => got.stdout.extend_from_slice(data),
                2 => got.stderr.extend_from_slice(data),
                3 => {
                    assert!(got.status.is_none(), "one status only");
                    got.status = Some(serde_json::from_slice(data).unwrap());
                }
                other => got.other_channels.push(*other),
            }
            true
        }
        Some(Ok(Message::Pong(p))) => {
            got.pongs.push(p.to_vec());
            true
        }
        Some(Ok(Message::Close(_))) | None => {
            got.closed = true;
            false
        }
        Some(Ok(_)) => true,
        Some(Err(e)) => panic!("websocket error: {e}"),
    }
}

/// Reads until the server closes the session.
async fn receive_all(socket: &mut Socket) -> Received {
    let mut got = Received::default();
    tokio::time::timeout(DEADLINE, async {
        while receive_one(socket, &mut got).await {}
    })
    .await
    .unwrap_or_else(|_| panic!("the session did not end; so far {got:?}"));
    got
}

/// Reads until `want` is in stdout.
async fn receive_stdout_until(socket: &mut Socket, got: &mut Received, want: &str) {
    tokio::time::timeout(DEADLINE, async {
        while !got.stdout().contains(want) {
            assert!(receive_one(socket, got).await, "closed early: {got:?}");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{want:?} not seen; so far {got:?}"));
}

fn stdin_frame(data: &[u8]) -> Message {
    let mut v = vec![0u8];
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

fn command_query(argv: &[&str], flags: &str) -> String {
    let mut q: Vec<(&str, &str)> = argv.iter().map(|a| ("command", *a)).collect();
    for f in flags.split('&').filter(|f| !f.is_empty()) {
        q.push((f, "true"));
    }
    serde_urlencoded::to_string(q).unwrap()
}

#[tokio::test]
async fn exec_streams_stdout_and_stderr_then_success() {
    let agent = Agent::start().await;
    let q = command_query(&["sh", "-c", "echo out; echo err >&2"], "stdout&stderr");
    let mut socket = connect_exec(&agent, &q, "v5.channel.k8s.io").await;
    let got = receive_all(&mut socket).await;
    assert_eq!(got.stdout(), "out\n");
    assert_eq!(got.stderr(), "err\n");
    assert_eq!(
        got.status(),
        &serde_json::json!({"metadata": {}, "status": "Success"})
    );
    assert!(got.closed && got.other_channels.is_empty());
}

#[tokio::test]
async fn exec_reports_a_non_zero_exit_code() {
    let agent = Agent::start().await;
    let q = command_query(&["sh", "-c", "exit 3"], "stdout&stderr");
    let mut socket = connect_exec(&agent, &q, "v5.channel.k8s.io").await;
    let got = receive_all(&mut socket).await;
    let status = got.status();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(
        status["details"]["causes"],
        serde_json::json!([{"reason": "ExitCode", "message": "3"}])
    );
}

#[tokio::test]
async fn exec_forwards_stdin_until_the_v5_close() {
    let agent = Agent::start().await;
    let q = command_query(&["cat"], "stdin&stdout&stderr");
    let mut socket = connect_exec(&agent, &q, "v5.channel.k8s.io").await;
    socket.send(stdin_frame(b"hello ")).await.unwrap();
    socket.send(stdin_frame(b"world\n")).await.unwrap();
    // Pings are answered while the session runs.
    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    // cat ends only when its stdin closes: [255, 0].
    socket
        .send(Message::Binary(vec![255u8, 0].into()))
        .await
        .unwrap();
    let got = receive_all(&mut socket).await;
    assert_eq!(got.stdout(), "hello world\n");
    assert_eq!(got.status()["status"], "Success");
    assert_eq!(got.pongs, [b"are you there".to_vec()]);
}

#[tokio::test]
async fn exec_speaks_v4_too() {
    let agent = Agent::start().await;
    let q = command_query(&["echo", "v4"], "stdout");
    let mut socket = connect_exec(&agent, &q, "v4.channel.k8s.io").await;
    let got = receive_all(&mut socket).await;
    assert_eq!(got.stdout(), "v4\n");
    assert_eq!(got.status()["status"], "Success");
}

#[tokio::test]
async fn exec_with_a_tty_never_sends_stderr_and_resizes() {
    let agent = Agent::start().await;
    // On a terminal stderr goes to the same output, so channel 2 stays
    // silent; `stty size` reads the size the client set.
    let q = command_query(
        &["sh", "-c", "echo to-stderr >&2; read go; stty size; exit 4"],
        "stdin&stdout&stderr&tty",
    );
    let mut socket = connect_exec(&agent, &q, "v5.channel.k8s.io").await;
    let mut got = Received::default();
    receive_stdout_until(&mut socket, &mut got, "to-stderr").await;
    socket
        .send(Message::Binary(
            [&[4u8][..], br#"{"Width":123,"Height":45}"#]
                .concat()
                .into(),
        ))
        .await
        .unwrap();
    socket.send(stdin_frame(b"go\n")).await.unwrap();
    tokio::time::timeout(DEADLINE, async {
        while receive_one(&mut socket, &mut got).await {}
    })
    .await
    .expect("the session ends");
    assert!(got.stdout().contains("45 123"), "{:?}", got.stdout());
    assert!(got.stderr.is_empty(), "nothing on channel 2 with a tty");
    assert!(got.other_channels.is_empty());
    assert_eq!(got.status()["details"]["causes"][0]["message"], "4");
}

#[tokio::test]
async fn exec_of_a_missing_command_says_so_with_its_exit_code() {
    let agent = Agent::start().await;
    let q = command_query(&["/no/such/command-xyz"], "stdout&stderr");
    let mut socket = connect_exec(&agent, &q, "v5.channel.k8s.io").await;
    let got = receive_all(&mut socket).await;
    assert!(
        got.stderr()
            .contains("\"/no/such/command-xyz\": executable file not found"),
        "{:?}",
        got.stderr()
    );
    let status = got.status();
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "127");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("executable file not found"));
}

#[tokio::test]
async fn exec_refusals_are_plain_http_statuses() {
    let agent = Agent::start().await;
    // No such pod: 404 before any upgrade.
    let url = format!(
        "wss://{}/exec/ns/nope/app?command=true&stdout=true",
        agent.addr
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("v5.channel.k8s.io"),
    );
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    match ws_connect(agent.addr, Some(&agent.sha256), req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 404);
            let status: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(status["message"], "pods \"nope\" not found");
        }
        other => panic!("expected a 404, got {:?}", other.map(|(_, r)| r.status())),
    }
    // A plain GET (no upgrade) is told what to do.
    let (code, body) = agent
        .get_text("/exec/ns/web/app?command=true&stdout=true")
        .await;
    assert_eq!(code, 400);
    assert!(body.contains("WebSocket"), "{body}");
    // No command.
    let (code, body) = agent.get_text("/exec/ns/web/app?stdout=true").await;
    assert_eq!(code, 400);
    assert!(body.contains("at least one command"), "{body}");
    // attach is not there yet.
    let (code, body) = agent.get_text("/attach/ns/web/app?stdout=true").await;
    assert_eq!(code, 400);
    assert!(body.contains("attach is not supported"), "{body}");
}

// ------------------------------------------------- through the API server

const API_TOKEN: &str = "api-admin-token";

/// A real API server (SQLite store, plain HTTP) holding Nodes whose agent
/// address is `agent_port` on loopback, and pods on them; stops on drop.
///
/// - `node-a` pins the agent's certificate (`pin`); pods `web` (on it) and
///   `pending` (on no node);
/// - `node-unpinned` has no pin; pod `web-unpinned`;
/// - `node-wrong` pins another certificate; pod `web-wrong`.
struct ApiServer {
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

impl ApiServer {
    async fn start(agent_port: u16, pin: &str) -> Self {
        Self::start_with(agent_port, pin, false).await
    }

    /// With `tls`, serves HTTPS and writes `DIR/kubeconfig` for kubectl.
    async fn start_with(agent_port: u16, pin: &str, tls: bool) -> Self {
        use nuage_api::storage::Objects;
        let dir = tempfile::Builder::new()
            .prefix("nuage-agent-proxy-")
            .tempdir()
            .unwrap();
        let store = nuage_store::open("sqlite", dir.path()).await.unwrap();
        let tokens = nuage_api::auth::Tokens::default();
        tokens.add(API_TOKEN);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(nuage_api::ApiState {
            objects: Objects::new(store),
            tokens,
            ready: std::sync::atomic::AtomicBool::new(true),
            service_range: (std::net::Ipv4Addr::new(10, 96, 0, 0), 1 << 16),
            ip_alloc: tokio::sync::Mutex::new(()),
            advertise: addr.to_string(),
            stopping: watch::channel(false).0,
            namespaces: Default::default(),
            agent_token: TOKEN.into(),
        });
        let rt = |plural| nuage_model::registry::lookup("", "v1", plural).unwrap();
        let objects = &state.objects;
        let wrong_pin = nuage_agent::server::tls::sha256_hex(b"another agent's certificate");
        for (node, pin) in [
            ("node-a", Some(pin)),
            ("node-unpinned", None),
            ("node-wrong", Some(wrong_pin.as_str())),
        ] {
            let mut metadata = serde_json::json!({"name": node});
            if let Some(pin) = pin {
                metadata["annotations"] = serde_json::json!({
                    nuage_agent::server::tls::CERTIFICATE_ANNOTATION: pin,
                });
            }
            objects
                .create(
                    rt("nodes"),
                    serde_json::json!({
                        "apiVersion": "v1", "kind": "Node", "metadata": metadata,
                        "status": {
                            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                            "daemonEndpoints": {"kubeletEndpoint": {"Port": agent_port}},
                        },
                    }),
                )
                .await
                .unwrap();
        }
        for (name, node) in [
            ("web", "node-a"),
            ("pending", ""),
            ("web-unpinned", "node-unpinned"),
            ("web-wrong", "node-wrong"),
        ] {
            objects
                .create(
                    rt("pods"),
                    serde_json::json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": "ns"},
                        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]},
                    }),
                )
                .await
                .unwrap();
        }
        let tls = tls.then(|| {
            let ca = nuage_api::tls::load_or_create_ca(dir.path()).unwrap();
            let kubeconfig = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: https://{addr}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {API_TOKEN}\ncontexts:\n- name: c\n  context:\n    cluster: t\n    user: u\n    namespace: ns\ncurrent-context: c\n",
                dir.path().join("ca.crt").display()
            );
            std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
            nuage_api::tls::server_config(&ca, addr.ip(), "").unwrap()
        });
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(nuage_api::serve::serve(
            listener,
            tls,
            nuage_api::router(state),
            stop_rx,
            Duration::from_secs(1),
        ));
        Self {
            addr,
            dir,
            _stop: stop,
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self._stop.send(true);
    }
}

const API_LOG: &str = "/api/v1/namespaces/ns/pods/web/log";

#[tokio::test]
async fn api_server_streams_logs_from_the_agent() {
    let agent = Agent::start().await;
    let api = ApiServer::start(agent.addr.port(), &agent.sha256).await;
    agent.write_current(&rec(1, "stdout", "F", "before"));

    let (code, mut body) = get_at(
        api.addr,
        &format!("{API_LOG}?container=app&follow=true&timestamps=true"),
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(code, 200);
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "2026-11-25T14:00:01.5Z before\n").await;
    agent.write_current(&rec(2, "stdout", "F", "after"));
    read_until(&mut body, &mut seen, "after\n").await;
    agent.running.send(false).unwrap();
    tokio::time::timeout(DEADLINE, body.collect())
        .await
        .expect("the relayed stream ends with the agent's")
        .unwrap();

    // The only container is the default; the agent's refusals come through.
    let (code, text) =
        get_text_at(api.addr, &format!("{API_LOG}?tailLines=1"), Some(API_TOKEN)).await;
    assert_eq!((code, text.as_str()), (200, "after\n"));
    let (code, text) = get_text_at(
        api.addr,
        &format!("{API_LOG}?previous=true"),
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(code, 400);
    assert!(text.contains("previous terminated container"), "{text}");
}

#[tokio::test]
async fn api_server_checks_before_forwarding() {
    let agent = Agent::start().await;
    let api = ApiServer::start(agent.addr.port(), &agent.sha256).await;
    agent.write_current(&rec(1, "stdout", "F", "secret"));
    let status = |text: &str| -> Value { serde_json::from_str(text).unwrap() };

    // The API server's own authentication applies first.
    let (code, text) = get_text_at(api.addr, API_LOG, None).await;
    assert_eq!(code, 401);
    assert!(!text.contains("secret"));
    // ...and the agent's token is not the API server's.
    let (code, _) = get_text_at(api.addr, API_LOG, Some(TOKEN)).await;
    assert_eq!(code, 401);

    let (code, text) = get_text_at(
        api.addr,
        &format!("{API_LOG}?container=db"),
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        status(&text)["message"],
        "container db is not valid for pod web"
    );

    let (code, text) = get_text_at(
        api.addr,
        "/api/v1/namespaces/ns/pods/pending/log",
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        status(&text)["message"],
        "pod pending does not have a host assigned"
    );

    let (code, text) = get_text_at(
        api.addr,
        "/api/v1/namespaces/ns/pods/nope/log",
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(code, 404, "{text}");
}

#[tokio::test]
async fn api_server_says_when_the_agent_is_unreachable() {
    // A port nothing listens on any more.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let api = ApiServer::start(port, &"00".repeat(32)).await;
    let (code, text) = get_text_at(api.addr, API_LOG, Some(API_TOKEN)).await;
    assert_eq!(code, 503);
    let status: Value = serde_json::from_str(&text).unwrap();
    let msg = status["message"].as_str().unwrap();
    assert!(
        msg.contains("the agent of node node-a at 127.0.0.1:"),
        "{msg}"
    );
}

#[test]
fn agent_and_api_server_name_the_same_annotation() {
    assert_eq!(
        nuage_agent::server::tls::CERTIFICATE_ANNOTATION,
        agent_tls::CERTIFICATE_ANNOTATION
    );
}

/// A Node without the pin, or pinning another certificate: the client gets
/// a 503 saying why, and the agent sees no request (so never the token).
#[tokio::test]
async fn api_server_sends_nothing_to_an_agent_it_cannot_authenticate() {
    let agent = Agent::start().await;
    let api = ApiServer::start(agent.addr.port(), &agent.sha256).await;
    agent.write_current(&rec(1, "stdout", "F", "secret"));
    let cases = [
        (
            "web-unpinned",
            "node node-unpinned has no nuage.io/agent-certificate-sha256 annotation",
        ),
        ("web-wrong", "the agent of node node-wrong at 127.0.0.1:"),
    ];
    for (pod, why) in cases {
        let logs = format!("/api/v1/namespaces/ns/pods/{pod}/log?follow=true");
        let (code, text) = get_text_at(api.addr, &logs, Some(API_TOKEN)).await;
        assert_eq!(code, 503, "{text}");
        let status: Value = serde_json::from_str(&text).unwrap();
        let message = status["message"].as_str().unwrap();
        assert!(message.starts_with(why), "{message}");
        assert!(!text.contains("secret"));
        if pod == "web-wrong" {
            assert!(
                message.contains(&format!(
                    "the certificate presented has SHA-256 {}",
                    agent.sha256
                )),
                "{message}"
            );
        }

        let exec = format!(
            "ws://{}/api/v1/namespaces/ns/pods/{pod}/exec?command=cat&stdin=true&stdout=true",
            api.addr
        );
        let mut req = exec.into_client_request().unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {API_TOKEN}")).unwrap(),
        );
        match ws_connect(api.addr, None, req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 503);
                let body = String::from_utf8_lossy(resp.body().as_deref().unwrap()).into_owned();
                assert!(body.contains(why), "{body}");
            }
            other => panic!("expected a 503, got {:?}", other.map(|(_, r)| r.status())),
        }
    }
    assert_eq!(
        agent.requests.load(Ordering::SeqCst),
        0,
        "requests reached the agent"
    );
    assert_eq!(agent.calls.load(Ordering::SeqCst), 0, "pods were looked up");

    // The same agent behind the Node that pins it is reached.
    let (code, text) = get_text_at(api.addr, API_LOG, Some(API_TOKEN)).await;
    assert_eq!((code, text.as_str()), (200, "secret\n"));
    assert_eq!(agent.requests.load(Ordering::SeqCst), 1);
    assert_eq!(agent.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn api_server_proxies_exec_websockets_to_the_agent() {
    let agent = Agent::start().await;
    let api = ApiServer::start(agent.addr.port(), &agent.sha256).await;
    let url = |q: &str| {
        format!(
            "ws://{}/api/v1/namespaces/ns/pods/web/exec?container=app&{q}",
            api.addr
        )
    };

    let q = command_query(&["cat"], "stdin&stdout&stderr");
    let mut socket = connect_ws(api.addr, None, &url(&q), API_TOKEN, "v5.channel.k8s.io").await;
    socket
        .send(stdin_frame(b"through the proxy\n"))
        .await
        .unwrap();
    socket
        .send(Message::Ping(b"ping".to_vec().into()))
        .await
        .unwrap();
    socket
        .send(Message::Binary(vec![255u8, 0].into()))
        .await
        .unwrap();
    let got = receive_all(&mut socket).await;
    assert_eq!(got.stdout(), "through the proxy\n");
    assert_eq!(got.status()["status"], "Success");
    assert_eq!(got.pongs, [b"ping".to_vec()]);

    let q = command_query(&["sh", "-c", "echo bye >&2; exit 3"], "stdout&stderr");
    let mut socket = connect_ws(api.addr, None, &url(&q), API_TOKEN, "v5.channel.k8s.io").await;
    let got = receive_all(&mut socket).await;
    assert_eq!(got.stderr(), "bye\n");
    assert_eq!(got.status()["details"]["causes"][0]["message"], "3");

    // A refusal of the agent is relayed as the handshake's HTTP answer.
    let handshake = |q: &str, token: Option<&str>| {
        let mut req = url(q).into_client_request().unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        if let Some(t) = token {
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
            );
        }
        req
    };
    match ws_connect(api.addr, None, handshake("stdout=true", Some(API_TOKEN))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap()).into_owned();
            assert!(body.contains("at least one command"), "{body}");
        }
        other => panic!("expected a 400, got {:?}", other.map(|(_, r)| r.status())),
    }
    // Without the API server's token nothing reaches the agent.
    match ws_connect(api.addr, None, handshake(&q, None)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401)
        }
        other => panic!("expected a 401, got {:?}", other.map(|(_, r)| r.status())),
    }
}

/// kubectl against the API server, over HTTPS, through to the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_reach_the_agent() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    let agent = Agent::start().await;
    let api = ApiServer::start_with(agent.addr.port(), &agent.sha256, true).await;
    let kubectl = |args: &[&str]| {
        let mut c = tokio::process::Command::new("kubectl");
        c.env("KUBECONFIG", api.dir.path().join("kubeconfig"))
            .env("KUBECACHEDIR", api.dir.path().join("cache"))
            .env("HOME", api.dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    };
    let run = |args: &'static [&'static str], input: &'static str| {
        let mut cmd = kubectl(args);
        async move {
            let mut child = cmd.spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
                .await
                .unwrap();
            drop(stdin);
            let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
                .await
                .expect("kubectl finishes")
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };

    agent.write_current(&rec(1, "stdout", "F", "one"));
    agent.write_current(&rec(2, "stdout", "F", "two"));
    let (code, out, err) = run(&["logs", "web", "--tail=1"], "").await;
    assert_eq!((code, out.as_str()), (Some(0), "two\n"), "{err}");

    // -f ends once the container has ended and its log is drained.
    agent.running.send(false).unwrap();
    let (code, out, err) = run(&["logs", "-f", "web"], "").await;
    assert_eq!((code, out.as_str()), (Some(0), "one\ntwo\n"), "{err}");

    let (code, out, err) = run(&["exec", "web", "--", "sh", "-c", "echo hi; exit 3"], "").await;
    assert_eq!(code, Some(3), "{out} {err}");
    assert_eq!(out, "hi\n");
    assert!(err.contains("command terminated with exit code 3"), "{err}");

    let (code, out, err) = run(&["exec", "-i", "web", "--", "cat"], "piped in\n").await;
    assert_eq!((code, out.as_str()), (Some(0), "piped in\n"), "{err}");
}
