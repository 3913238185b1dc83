//! Watches: a chunked stream of `{"type": ..., "object": ...}` lines.
//!
//! From `resourceVersion` R the stream carries exactly the changes after R,
//! in order. Without one (or with "0") it starts with an ADDED event per
//! existing object. Selectors apply to both the new and the previous state,
//! so an object leaving the selection arrives as DELETED and one entering it
//! as ADDED, as the Kubernetes watch cache does.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use nuage_model::meta;
use nuage_model::registry::ResourceType;
use nuage_store::{EventKind, ListOptions, Revision};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::read::Filter;
use super::Ctx;
use crate::request;
use crate::status::{ApiError, ApiResult};
use crate::storage::Objects;
use crate::table;

/// How long a watch without `timeoutSeconds` stays open.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// How often a bookmark is sent to clients that allow them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

struct Watch {
    rt: &'static ResourceType,
    objects: Objects,
    filter: Filter,
    name: Option<String>,
    table: Option<table::IncludeObject>,
    bookmarks: bool,
    /// No selector, name or Table: every event is sent as stored.
    plain: bool,
}

pub(super) async fn watch(ctx: Ctx) -> ApiResult<Response> {
    let rt = ctx.target.rt;
    let filter = Filter::from_query(rt, &ctx.query)?;
    let timeout = ctx
        .query
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64))
        .unwrap_or(DEFAULT_TIMEOUT);
    let table = request::wants_table(&ctx.headers)
        .then(|| table::IncludeObject::parse(ctx.query.get("includeObject")));
    let plain = filter.is_everything() && ctx.target.name.is_none() && table.is_none();
    let w = Watch {
        rt,
        objects: ctx.state.objects.clone(),
        filter,
        name: ctx.target.name.clone(),
        table,
        bookmarks: ctx.query.flag("allowWatchBookmarks"),
        plain,
    };
    let prefix = rt.key_prefix(ctx.ns());
    let store = Arc::clone(ctx.state.objects.store());
    let mut initial = Vec::new();
    let after: Revision = match ctx
        .query
        .get("resourceVersion")
        .filter(|s| !s.is_empty() && *s != "0")
    {
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
        None => {
            let list = store
                .list(&prefix, ListOptions::default())
                .await
                .map_err(|e| ApiError::from_store(e, rt, ""))?;
            for kv in &list.kvs {
                let obj = w.objects.decode(rt, kv)?;
                if w.selects(&obj) {
                    initial.push(w.line("ADDED", &obj));
                }
            }
            list.revision
        }
    };
    let mut events = match store.watch(&prefix, after).await {
        Ok(s) => s,
        Err(nuage_store::StoreError::Compacted { .. }) => {
            return Err(ApiError::expired(format!(
                "too old resource version: {after}"
            )));
        }
        Err(e) => return Err(ApiError::from_store(e, rt, "")),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let mut stopping = ctx.state.stopping.subscribe();
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(BOOKMARK_EVERY);
        bookmark.tick().await;
        let mut last = after;
        loop {
            tokio::select! {
                () = &mut deadline => {
                    // Like the Kubernetes watch cache, a last bookmark before
                    // the timeout lets the client resume from the newest
                    // revision it was told of.
                    if w.bookmarks {
                        let _ = tx.send(Ok(w.bookmark(last))).await;
                    }
                    return;
                }
                () = tx.closed() => return,
                _ = stopping.changed() => return,
                _ = bookmark.tick(), if w.bookmarks => {
                    if tx.send(Ok(w.bookmark(last))).await.is_err() {
                        return;
                    }
                }
                ev = events.next() => {
                    let Some(ev) = ev else { return };
                    let line = match ev {
                        Ok(ev) => {
                            last = ev.revision();
                            match w.event_line(&ev) {
                                Ok(Some(l)) => l,
                                Ok(None) => continue,
                                Err(e) => error_line(&e),
                            }
                        }
                        Err(nuage_store::StoreError::Compacted { .. }) => {
                            error_line(&ApiError::expired("too old resource version"))
                        }
                        Err(e) => error_line(&ApiError::internal(e.to_string())),
                    };
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut resp = Body::from_stream(ReceiverStream::new(rx)).into_response();
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn error_line(e: &ApiError) -> Bytes {
    Bytes::from(format!(
        "{}\n",
        json!({"type": "ERROR", "object": e.to_status()})
    ))
}

impl Watch {
    /// A BOOKMARK line at revision `rv`.
    fn bookmark(&self, rv: Revision) -> Bytes {
        let obj = json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(),
            "metadata": {"resourceVersion": rv.to_string()}});
        Bytes::from(format!("{}\n", json!({"type": "BOOKMARK", "object": obj})))
    }

    fn selects(&self, obj: &Value) -> bool {
        if let Some(name) = &self.name {
            if meta::name(obj) != Some(name.as_str()) {
                return false;
            }
        }
        self.filter.matches(obj)
    }

    /// The line of an event for a plain watcher, written around the stored
    /// bytes (only the metadata is parsed, to set the resourceVersion).
    /// `None` when the served version needs a conversion.
    fn plain_line(&self, ev: &nuage_store::Event) -> ApiResult<Option<Bytes>> {
        let ty = match (&ev.kind, &ev.prev) {
            (EventKind::Delete, _) => "DELETED",
            (EventKind::Put, None) => "ADDED",
            (EventKind::Put, Some(_)) => "MODIFIED",
        };
        let Some(served) = self.objects.served_bytes(self.rt, &ev.kv)? else {
            return Ok(None);
        };
        let mut line = Vec::with_capacity(served.json.len() + 32);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(ty.as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        line.extend_from_slice(&served.json);
        line.extend_from_slice(b"}\n");
        Ok(Some(Bytes::from(line)))
    }

    /// The line for one store event, or `None` if the watcher does not see it.
    fn event_line(&self, ev: &nuage_store::Event) -> ApiResult<Option<Bytes>> {
        if self.plain {
            if let Some(line) = self.plain_line(ev)? {
                return Ok(Some(line));
            }
        }
        let new = self.objects.decode(self.rt, &ev.kv)?;
        let old = ev
            .prev
            .as_ref()
            .map(|p| self.objects.decode(self.rt, p))
            .transpose()?;
        let old_in = old.as_ref().is_some_and(|o| self.selects(o));
        let line = match ev.kind {
            EventKind::Delete => old_in.then(|| self.line("DELETED", &new)),
            EventKind::Put => {
                let new_in = self.selects(&new);
                match (old_in, new_in) {
                    (_, true) if old.is_none() => Some(self.line("ADDED", &new)),
                    (true, true) => Some(self.line("MODIFIED", &new)),
                    (false, true) => Some(self.line("ADDED", &new)),
                    (true, false) => {
                        // Leaving the selection: the last state it matched,
                        // at the revision it left.
                        let mut gone = old.clone().unwrap_or_default();
                        meta::set_resource_version(&mut gone, ev.kv.mod_revision);
                        Some(self.line("DELETED", &gone))
                    }
                    (false, false) => None,
                }
            }
        };
        Ok(line)
    }

    fn line(&self, ty: &str, obj: &Value) -> Bytes {
        let object = match self.table {
            Some(include) => {
                let rv = meta::meta_str(obj, "resourceVersion")
                    .unwrap_or_default()
                    .to_string();
                table::table(
                    self.rt.kind,
                    std::slice::from_ref(obj),
                    &rv,
                    None,
                    include,
                    time::OffsetDateTime::now_utc(),
                )
            }
            None => {
                let mut s = Vec::with_capacity(256);
                s.extend_from_slice(b"{\"type\":");
                let _ = serde_json::to_writer(&mut s, ty);
                s.extend_from_slice(b",\"object\":");
                let _ = serde_json::to_writer(&mut s, obj);
                s.extend_from_slice(b"}\n");
                return Bytes::from(s);
            }
        };
        let mut s = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
        s.push(b'\n');
        Bytes::from(s)
    }
}
