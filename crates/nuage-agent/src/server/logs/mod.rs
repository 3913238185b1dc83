//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's log as
//! plain text, from the CRI-format file of its current (or previous)
//! attempt, optionally followed as it grows.

pub mod cri;
pub mod options;
mod tail;

use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use self::cri::Stream;
use self::options::LogOptions;
use super::status::Status;
use super::{PodContainers, Shared};

/// How often a followed file is checked for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How much is read from the file at a time.
const READ_CHUNK: usize = 64 * 1024;

/// The handler.
pub(super) async fn container_logs(
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let span = tracing::info_span!("logs", %namespace, %pod, %container);
    let result = async {
        let query = super::query_pairs(query.as_deref());
        let opts =
            LogOptions::parse(&query, OffsetDateTime::now_utc()).map_err(Status::bad_request)?;
        open(shared.pods.as_ref(), &namespace, &pod, &container, opts).await
    }
    .instrument(span)
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn open(
    pods: &dyn PodContainers,
    namespace: &str,
    pod: &str,
    container: &str,
    opts: LogOptions,
) -> Result<Response, Status> {
    let files = pods.logs(namespace, pod, container).map_err(Status::from)?;
    let (path, running) = if opts.previous {
        let path = files.previous.ok_or_else(|| {
            Status::bad_request(format!(
                "previous terminated container {container:?} in pod {pod:?} not found"
            ))
        })?;
        // The previous attempt has ended: following it drains the file.
        (path, watch::channel(false).1)
    } else {
        (files.current, files.running)
    };
    let start = match opts.tail_lines {
        Some(n) => start_of_last_lines(path.clone(), n).await?,
        None => 0,
    };
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let reader = LogReader {
        path,
        offset: start,
        opts,
        running,
        pending: Vec::new(),
        line_start: [true, true],
        sent: 0,
    };
    tokio::spawn(reader.run(tx).in_current_span());
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

async fn start_of_last_lines(path: PathBuf, n: u64) -> Result<u64, Status> {
    let found = tokio::task::spawn_blocking(move || match std::fs::File::open(&path) {
        Ok(mut f) => tail::start_of_last_lines(&mut f, n),
        // Nothing written yet: the tail of nothing starts at 0.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    })
    .await
    .map_err(|e| Status::internal(format!("log tail task: {e}")))?;
    found.map_err(|e| Status::internal(format!("read log file: {e}")))
}

/// Reads one log file from an offset and sends its lines, as text, to the
/// response body.
struct LogReader {
    path: PathBuf,
    offset: u64,
    opts: LogOptions,
    running: watch::Receiver<bool>,
    /// Bytes read past the last complete record.
    pending: Vec<u8>,
    /// Per stream: whether the next record begins a line (gets a timestamp).
    line_start: [bool; 2],
    /// Bytes sent so far (for `limitBytes`).
    sent: u64,
}

impl LogReader {
    async fn run(mut self, tx: mpsc::Sender<io::Result<Bytes>>) {
        if let Err(e) = self.pump(&tx).await {
            tracing::warn!(path = %self.path.display(), error = %e, "log stream failed");
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn pump(&mut self, tx: &mpsc::Sender<io::Result<Bytes>>) -> io::Result<()> {
        let mut tick = tokio::time::interval(FOLLOW_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut file = None;
        // The agent dropped the attempt's state: treat it as ended.
        let mut gone = false;
        loop {
            // Read the flag before draining: once the attempt is seen ended,
            // the drain that follows reads everything it wrote.
            let ended = gone || !*self.running.borrow_and_update();
            if file.is_none() {
                file = self.open_file().await?;
            }
            if let Some(f) = file.as_mut() {
                if !self.drain(f, tx).await? {
                    return Ok(());
                }
            }
            if !self.opts.follow || ended {
                return Ok(());
            }
            tokio::select! {
                // The client went away: nothing more to do.
                () = tx.closed() => return Ok(()),
                _ = tick.tick() => {}
                r = self.running.changed() => gone = r.is_err(),
            }
        }
    }

    async fn open_file(&self) -> io::Result<Option<tokio::fs::File>> {
        match tokio::fs::File::open(&self.path).await {
            Ok(mut f) => {
                f.seek(SeekFrom::Start(self.offset)).await?;
                Ok(Some(f))
            }
            // Not written yet (a container that has not printed anything).
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads to the end of the file and sends what it holds. `false` once
    /// the stream must end (byte limit reached, client gone).
    async fn drain(
        &mut self,
        file: &mut tokio::fs::File,
        tx: &mpsc::Sender<io::Result<Bytes>>,
    ) -> io::Result<bool> {
        let mut buf = vec![0; READ_CHUNK];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(true);
            }
            self.offset += n as u64;
            self.pending.extend_from_slice(&buf[..n]);
            let (out, limited) = self.render_complete_records();
            if !out.is_empty() && tx.send(Ok(out.into())).await.is_err() {
                return Ok(false);
            }
            if limited {
                return Ok(false);
            }
        }
    }

    /// Turns the complete records in `pending` into output text; the second
    /// value says the byte limit was reached.
    fn render_complete_records(&mut self) -> (Vec<u8>, bool) {
        let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return (Vec::new(), false);
        };
        let rest = self.pending.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        let mut out = Vec::with_capacity(complete.len());
        for line in complete.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            // Malformed records are skipped, as the kubelet skips them.
            let Some(rec) = cri::parse(line) else {
                continue;
            };
            let slot = match rec.stream {
                Stream::Stdout => 0,
                Stream::Stderr => 1,
            };
            let at_line_start = std::mem::replace(&mut self.line_start[slot], !rec.partial);
            if self.opts.since.is_some_and(|since| rec.time < since)
                || self.opts.stream.is_some_and(|s| s != rec.stream)
            {
                continue;
            }
            let before = out.len();
            if self.opts.timestamps && at_line_start {
                out.extend_from_slice(cri::format_time(rec.time).as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(rec.text);
            if !rec.partial {
                out.push(b'\n');
            }
            if let Some(limit) = self.opts.limit_bytes {
                let room = limit.saturating_sub(self.sent) as usize;
                let added = out.len() - before;
                if added >= room {
                    out.truncate(before + room);
                    self.sent = limit;
                    return (out, true);
                }
                self.sent += added as u64;
            }
        }
        (out, false)
    }
}
