//! `GET /exec/{namespace}/{pod}/{container}?command=...`: a process in a
//! container, spoken over a WebSocket with Kubernetes' channel protocol
//! (`v5.channel.k8s.io`, or `v4` without the close channel). Every binary
//! frame starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the
//! final status, 4 terminal resizes, 255 (v5) "close this channel".

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::status::Status;
use super::{LookupError, Shared};
use crate::runtime::{ExecSession, ExecSpec, ExitFuture, Reader, ResizeFn, Writer};

/// The subprotocols spoken, preferred first.
const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// After the process exits, how long its output may still take to reach
/// EOF: a background child that keeps stdout open must not hold the
/// session forever.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// After our close frame, how long the client has to answer it.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What the query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// argv.
    pub command: Vec<String>,
    /// Forward stdin.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr (never with a tty).
    pub stderr: bool,
    /// Run on a terminal.
    pub tty: bool,
}

impl ExecOptions {
    /// Parses and checks the query as the kubelet does; the error is the
    /// message of a 400.
    pub fn parse(query: &[(String, String)]) -> Result<Self, String> {
        let flag = |key: &str| -> Result<bool, String> {
            match query
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
            {
                None | Some("") => Ok(false),
                Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
                Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
                Some(other) => Err(format!("{key}: invalid value {other:?}: not a boolean")),
            }
        };
        let command: Vec<String> = query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        if command.is_empty() {
            return Err("you must specify at least one command for the container".into());
        }
        let tty = flag("tty")?;
        let o = Self {
            command,
            stdin: flag("stdin")?,
            stdout: flag("stdout")?,
            // A terminal merges stderr into its output: the kubelet drops
            // stderr then, and a client that sees channel 2 with a tty
            // complains ("Unknown stream id 2").
            stderr: flag("stderr")? && !tty,
            tty,
        };
        if !o.stdin && !o.stdout && !o.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(o)
    }
}

/// The handler.
pub(super) async fn exec(
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let span = tracing::info_span!("exec", %namespace, %pod, %container);
    async move {
        let opts = match ExecOptions::parse(&super::query_pairs(query.as_deref())) {
            Ok(o) => o,
            Err(msg) => return Status::bad_request(msg).into_response(),
        };
        let upgrade = match upgrade {
            Ok(u) => u.protocols([V5, V4]),
            Err(rejection) => {
                return Status::bad_request(format!(
                    "exec needs a WebSocket upgrade with subprotocol {V5}: {rejection}"
                ))
                .into_response()
            }
        };
        let v5 = match upgrade.selected_protocol().and_then(|p| p.to_str().ok()) {
            Some(V5) => true,
            Some(_) => false,
            None => {
                return Status::bad_request(format!(
                    "exec needs one of the WebSocket subprotocols {V5}, {V4}"
                ))
                .into_response()
            }
        };
        let spec = ExecSpec {
            argv: opts.command.clone(),
            tty: opts.tty,
            stdin: opts.stdin,
        };
        // Started before the upgrade so that a missing pod or container is
        // a plain 404/400 the API server relays; a command the runtime
        // cannot start is reported in-band, as a status with an exit code.
        let started = match shared.pods.exec(&namespace, &pod, &container, spec).await {
            Ok(session) => Ok(session),
            Err(LookupError::ExecFailed { message, exit_code }) => Err((message, exit_code)),
            Err(other) => return Status::from(other).into_response(),
        };
        let span = tracing::Span::current();
        upgrade
            .on_upgrade(move |socket| run(socket, v5, opts, started).instrument(span))
            .into_response()
    }
    .instrument(span)
    .await
}

async fn run(
    socket: WebSocket,
    v5: bool,
    opts: ExecOptions,
    started: Result<ExecSession, (String, i32)>,
) {
    let tty = opts.tty;
    let (sink, incoming) = socket.split();
    let (tx, rx) = mpsc::channel::<Message>(16);
    let (stdin, resize, kill, produce) = match started {
        Ok(session) => {
            let ExecSession {
                stdin,
                stdout,
                stderr,
                resize,
                exit,
                kill,
            } = session;
            let produce = async move {
                let status = outputs_then_status(&opts, stdout, stderr, exit, &tx).await;
                let _ = tx.send(frame(STATUS, status.to_string().as_bytes())).await;
            };
            (stdin, resize, kill, futures::future::Either::Left(produce))
        }
        Err((message, exit_code)) => {
            tracing::info!(%message, exit_code, "exec failed to start");
            let produce = async move {
                // kubectl prints only the exit code of a NonZeroExitCode
                // status: the reason goes where the user looks, the output.
                let channel = if opts.stderr { STDERR } else { STDOUT };
                if opts.stderr || opts.stdout {
                    let text = format!("{message}\n");
                    let _ = tx.send(frame(channel, text.as_bytes())).await;
                }
                let status = exit_status(exit_code, &message);
                let _ = tx.send(frame(STATUS, status.to_string().as_bytes())).await;
            };
            (None, None, None, futures::future::Either::Right(produce))
        }
    };
    // Nobody would see the process's output any more: it must not run on
    // in the container (a kill after its exit does nothing).
    let kill_process = || {
        if let Some(kill) = &kill {
            kill();
        }
    };
    let writer = async {
        let sink = write_frames(sink, rx).await;
        if sink.is_none() {
            tracing::debug!("client stopped taking frames; killing the process");
            kill_process();
        }
        sink
    };
    let mut input = tokio::spawn(read_input(incoming, stdin, resize, v5, tty).in_current_span());
    tokio::select! {
        (sink, ()) = futures::future::join(writer, produce) => {
            if let Some(mut sink) = sink {
                let close = CloseFrame { code: 1000, reason: "".into() };
                let _ = sink.send(Message::Close(Some(close))).await;
            }
            // Let the client answer the close before the socket drops.
            if tokio::time::timeout(CLOSE_WAIT, &mut input).await.is_err() {
                input.abort();
            }
        }
        _ = &mut input => {
            tracing::debug!("client left before the process ended; killing it");
            kill_process();
        }
    }
}

/// Sends the frames queued on `rx`; gives the sink back once every sender is
/// gone, or `None` when the client stopped taking frames.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
) -> Option<SplitSink<WebSocket, Message>> {
    while let Some(m) = rx.recv().await {
        if sink.send(m).await.is_err() {
            return None;
        }
    }
    Some(sink)
}

/// Streams stdout and stderr until the process has exited and its output
/// is drained; returns the status to send on channel 3.
async fn outputs_then_status(
    opts: &ExecOptions,
    stdout: Reader,
    stderr: Option<Reader>,
    exit: ExitFuture,
    tx: &mpsc::Sender<Message>,
) -> Value {
    let outputs = futures::future::join(pump(stdout, STDOUT, opts.stdout, tx.clone()), async {
        if let Some(r) = stderr {
            pump(r, STDERR, opts.stderr, tx.clone()).await;
        }
    });
    tokio::pin!(outputs);
    let mut exit = exit;
    let (code, drained) = tokio::select! {
        _ = &mut outputs => (exit.await, true),
        code = &mut exit => (code, false),
    };
    if !drained && tokio::time::timeout(OUTPUT_GRACE, outputs).await.is_err() {
        tracing::debug!("output still open after exit; ending the session");
    }
    match code {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => exit_status(
            code,
            &format!(
                "command terminated with non-zero exit code: error executing command {:?}, exit code {code}",
                opts.command
            ),
        ),
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("error waiting for the command: {e}"),
            "reason": "InternalError",
            "code": 500,
        }),
    }
}

/// The NonZeroExitCode status (client-go reads the code from the cause).
fn exit_status(code: i32, message: &str) -> Value {
    // Exit statuses are one byte; client-go refuses anything else.
    let code = code.rem_euclid(256);
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// Copies one output of the process into frames on `channel`; reads it to
/// the end even when the client did not ask for it, so the process never
/// blocks on a full pipe.
async fn pump(mut r: Reader, channel: u8, wanted: bool, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024 + 1];
    buf[0] = channel;
    loop {
        match r.read(&mut buf[1..]).await {
            // A terminal's master reads EIO once the last writer is gone.
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if wanted
                    && tx
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..=n])))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Reads the client's frames: stdin, resizes, and (v5) the close of stdin.
/// Returns when the client closes the socket. Pings are answered by the
/// WebSocket layer as they are read.
async fn read_input(
    mut incoming: SplitStream<WebSocket>,
    mut stdin: Option<Writer>,
    resize: Option<ResizeFn>,
    v5: bool,
    tty: bool,
) {
    let mut first_stdin = true;
    while let Some(msg) = incoming.next().await {
        let data: Bytes = match msg {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Text(t)) => Bytes::copy_from_slice(t.as_str().as_bytes()),
            Ok(Message::Close(_)) | Err(_) => return,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        match channel {
            // kubectl's first stdin frame on a terminal is a lone NUL (sent
            // with its first resize, before anything was typed): written to
            // the terminal it would be echoed as a stray `^@`.
            STDIN if std::mem::take(&mut first_stdin) && tty && payload == [0] => {
                tracing::debug!("dropped the client's opening NUL");
            }
            STDIN => {
                if let Some(w) = stdin.as_mut() {
                    if w.write_all(payload).await.is_err() || w.flush().await.is_err() {
                        // The process closed its stdin: drop what follows.
                        stdin = None;
                    }
                }
            }
            RESIZE => {
                if let (Some(resize), Some((w, h))) = (&resize, terminal_size(payload)) {
                    if let Err(e) = resize(w, h) {
                        tracing::debug!(error = %e, "terminal resize failed");
                    }
                }
            }
            CLOSE if v5 && payload.first() == Some(&STDIN) => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            }
            _ => tracing::debug!(channel, "ignored frame"),
        }
    }
}

/// `{"Width":W,"Height":H}` as (columns, rows).
fn terminal_size(payload: &[u8]) -> Option<(u16, u16)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let s: Size = serde_json::from_slice(payload).ok()?;
    Some((s.width, s.height))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_kubectl_query() {
        let o = ExecOptions::parse(&q(&[
            ("command", "ls"),
            ("command", "-l"),
            ("stdin", "true"),
            ("stdout", "true"),
            ("stderr", "true"),
        ]))
        .unwrap();
        assert_eq!(o.command, ["ls", "-l"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
    }

    #[test]
    fn tty_drops_stderr() {
        let o = ExecOptions::parse(&q(&[
            ("command", "sh"),
            ("stdout", "true"),
            ("stderr", "true"),
            ("tty", "true"),
        ]))
        .unwrap();
        assert!(o.tty && o.stdout && !o.stderr);
    }

    #[test]
    fn refuses_what_the_kubelet_refuses() {
        let err = ExecOptions::parse(&q(&[("stdout", "true")])).unwrap_err();
        assert!(err.contains("at least one command"), "{err}");
        let err = ExecOptions::parse(&q(&[("command", "ls")])).unwrap_err();
        assert!(err.contains("at least 1 of stdin, stdout, stderr"), "{err}");
        let err = ExecOptions::parse(&q(&[("command", "ls"), ("stdout", "yes")])).unwrap_err();
        assert!(err.contains("not a boolean"), "{err}");
    }

    #[test]
    fn statuses_match_client_go() {
        let s = exit_status(3, "m");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            exit_status(-1, "m")["details"]["causes"][0]["message"],
            "255"
        );
        assert_eq!(
            terminal_size(br#"{"Width":80,"Height":24}"#),
            Some((80, 24))
        );
        assert_eq!(terminal_size(b"junk"), None);
    }
}
