//! Watch streams: newline-delimited JSON events read from a chunked body.

use std::marker::PhantomData;

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::Error;

/// One watch event.
#[derive(Debug)]
pub enum WatchEvent<K> {
    /// Created (or present at the watch's start).
    Added(K),
    /// Changed.
    Modified(K),
    /// Deleted: the last state.
    Deleted(K),
    /// Progress: the watch has seen everything up to this revision.
    Bookmark(String),
}

/// An open watch.
pub struct WatchStream<K> {
    body: Incoming,
    buf: BytesMut,
    _kind: PhantomData<fn() -> K>,
}

#[derive(serde::Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

impl<K: DeserializeOwned> WatchStream<K> {
    pub(crate) fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            _kind: PhantomData,
        }
    }

    /// The next event; `None` when the server ended the watch (reconnect
    /// from the last revision seen). A compacted revision is `Error::Api`
    /// with code 410.
    pub async fn next(&mut self) -> Option<Result<WatchEvent<K>, Error>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let line = &line[..pos];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(parse(line));
            }
            match self.body.frame().await {
                None => return None,
                Some(Err(e)) => return Some(Err(e.into())),
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
            }
        }
    }
}

fn parse<K: DeserializeOwned>(line: &[u8]) -> Result<WatchEvent<K>, Error> {
    let raw: RawEvent = serde_json::from_slice(line)?;
    match raw.kind.as_str() {
        "ADDED" => Ok(WatchEvent::Added(serde_json::from_value(raw.object)?)),
        "MODIFIED" => Ok(WatchEvent::Modified(serde_json::from_value(raw.object)?)),
        "DELETED" => Ok(WatchEvent::Deleted(serde_json::from_value(raw.object)?)),
        "BOOKMARK" => Ok(WatchEvent::Bookmark(
            raw.object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )),
        _ => Err(Error::Api {
            code: raw.object["code"].as_u64().unwrap_or(500) as u16,
            reason: raw.object["reason"].as_str().unwrap_or_default().into(),
            message: raw.object["message"].as_str().unwrap_or_default().into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    #[test]
    fn events_parse_by_type() {
        let e: WatchEvent<Pod> =
            parse(br#"{"type":"ADDED","object":{"metadata":{"name":"a"}}}"#).unwrap();
        assert!(matches!(e, WatchEvent::Added(p) if p.metadata.name.as_deref() == Some("a")));
        let e: WatchEvent<Pod> = parse(
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12"}}}"#,
        )
        .unwrap();
        assert!(matches!(e, WatchEvent::Bookmark(rv) if rv == "12"));
        let e = parse::<Pod>(br#"{"type":"ERROR","object":{"code":410,"reason":"Expired"}}"#);
        assert!(matches!(e, Err(ref err) if err.is_gone()));
    }
}
