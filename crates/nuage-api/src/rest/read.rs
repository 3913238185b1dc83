//! Reads: get one object, list a collection (selectors, pages, Tables).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use base64::Engine;
use nuage_model::meta;
use nuage_model::registry::ResourceType;
use nuage_model::selector::{field_value, FieldSelector, LabelSelector};
use nuage_store::{KeyValue, ListOptions, Revision, StoreError};
use serde_json::{json, Value};

use super::{json_response, Ctx};
use crate::request::{self, Query};
use crate::status::{ApiError, ApiResult};
use crate::table;

pub(super) async fn get(ctx: Ctx) -> ApiResult<Response> {
    let obj = ctx
        .state
        .objects
        .get_existing(ctx.target.rt, ctx.ns(), ctx.name())
        .await?;
    if request::wants_table(&ctx.headers) {
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let include = table::IncludeObject::parse(ctx.query.get("includeObject"));
        let t = table::table(
            ctx.target.rt.kind,
            std::slice::from_ref(&obj),
            &rv,
            None,
            include,
            time::OffsetDateTime::now_utc(),
        );
        return Ok(json_response(StatusCode::OK, &t, &[]));
    }
    Ok(json_response(StatusCode::OK, &obj, &[]))
}

/// Label and field selectors of a list or watch, checked against the kind.
pub(super) struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub(super) fn from_query(rt: &ResourceType, q: &Query) -> ApiResult<Self> {
        let labels =
            match q.get("labelSelector").filter(|s| !s.trim().is_empty()) {
                Some(s) => Some(LabelSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let fields = match q.get("fieldSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let sel = FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
                for f in sel.fields() {
                    if !rt.supports_field(f) {
                        return Err(ApiError::bad_request(format!(
                            "field label not supported: {f}"
                        )));
                    }
                }
                Some(sel)
            }
            None => None,
        };
        Ok(Self { labels, fields })
    }

    /// Whether no selector was given (everything matches).
    pub(super) fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub(super) fn matches(&self, obj: &Value) -> bool {
        if let Some(l) = &self.labels {
            if !l.matches_value(obj) {
                return false;
            }
        }
        if let Some(f) = &self.fields {
            if !f.matches(|path| field_value(obj, path).or_else(|| field_default(path))) {
                return false;
            }
        }
        true
    }
}

/// What Kubernetes reads for a selectable field the object leaves out: its
/// defaulted value rather than "".
fn field_default(path: &str) -> Option<String> {
    (path == "spec.unschedulable").then(|| "false".to_string())
}

/// Where a paged list resumes: the revision it reads at and the last key.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, start: &str) -> String {
    let c = Continue {
        rv,
        start: start.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&c).unwrap_or_default())
}

fn decode_continue(token: &str) -> ApiResult<Continue> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::bad_request(format!("invalid continue token {token:?}")))
}

/// Objects of a list request, filtered and paged, with the list's revision
/// and the continue token.
pub(super) async fn collect(ctx: &Ctx) -> ApiResult<(Vec<Value>, Revision, Option<String>)> {
    let rt = ctx.target.rt;
    let filter = Filter::from_query(rt, &ctx.query)?;
    let objects = &ctx.state.objects;
    collect_with(ctx, |kv| {
        let obj = objects.decode(rt, kv)?;
        Ok(filter.matches(&obj).then_some(obj))
    })
    .await
}

/// The paging loop of a list: reads store pages at one revision, keeps
/// what `pick` returns, and stops at `limit` kept items with a continue
/// token (Kubernetes fills each page, reading past filtered-out objects).
async fn collect_with<T>(
    ctx: &Ctx,
    mut pick: impl FnMut(&KeyValue) -> ApiResult<Option<T>>,
) -> ApiResult<(Vec<T>, Revision, Option<String>)> {
    let rt = ctx.target.rt;
    let limit = ctx
        .query
        .int("limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let (mut revision, mut start) = match ctx.query.get("continue").filter(|s| !s.is_empty()) {
        Some(tok) => {
            let c = decode_continue(tok)?;
            (Some(c.rv), Some(c.start))
        }
        None => (exact_revision(&ctx.query)?, None),
    };
    let prefix = rt.key_prefix(ctx.ns());
    let mut out = Vec::new();
    loop {
        let want = limit.map(|l| l - out.len());
        let page = ctx
            .state
            .objects
            .store()
            .list(
                &prefix,
                ListOptions {
                    revision,
                    limit: want,
                    start_after: start.clone(),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } => ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."),
                other => ApiError::from_store(other, rt, ""),
            })?;
        revision = Some(page.revision);
        for kv in &page.kvs {
            if let Some(item) = pick(kv)? {
                out.push(item);
            }
        }
        let next_key = page
            .more
            .then(|| page.kvs.last().map(|kv| kv.key.clone()))
            .flatten();
        match next_key {
            Some(k) if limit.is_some_and(|l| out.len() < l) => start = Some(k),
            Some(k) => {
                let rv = page.revision;
                return Ok((out, rv, Some(encode_continue(rv, &k))));
            }
            None => return Ok((out, page.revision, None)),
        }
    }
}

/// `resourceVersion=N&resourceVersionMatch=Exact` reads at N; anything else
/// reads the latest (which satisfies NotOlderThan and "0").
fn exact_revision(q: &Query) -> ApiResult<Option<Revision>> {
    if q.get("resourceVersionMatch") != Some("Exact") {
        return Ok(None);
    }
    match q.get("resourceVersion") {
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}"))),
        None => Err(ApiError::bad_request(
            "resourceVersionMatch=Exact requires a resourceVersion",
        )),
    }
}

pub(super) async fn list(ctx: Ctx) -> ApiResult<Response> {
    let rt = ctx.target.rt;
    if !request::wants_table(&ctx.headers) {
        if let Some(resp) = list_json_fast(&ctx).await? {
            return Ok(resp);
        }
    }
    let (items, rv, cont) = collect(&ctx).await?;
    if request::wants_table(&ctx.headers) {
        let include = table::IncludeObject::parse(ctx.query.get("includeObject"));
        let t = table::table(
            rt.kind,
            &items,
            &rv.to_string(),
            cont.as_deref(),
            include,
            time::OffsetDateTime::now_utc(),
        );
        return Ok(json_response(StatusCode::OK, &t, &[]));
    }
    let mut list = serde_json::Map::new();
    list.insert("kind".into(), json!(rt.list_kind()));
    list.insert("apiVersion".into(), json!(rt.api_version()));
    list.insert("metadata".into(), list_metadata(rv, cont));
    list.insert("items".into(), Value::Array(items));
    Ok(json_response(StatusCode::OK, &Value::Object(list), &[]))
}

fn list_metadata(rv: Revision, cont: Option<String>) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
    }
    metadata
}

/// A JSON list written from the stored bytes, touching only each object's
/// metadata. Serves lists without field selectors of resources stored in
/// the version served; `None` otherwise.
async fn list_json_fast(ctx: &Ctx) -> ApiResult<Option<Response>> {
    let rt = ctx.target.rt;
    let filter = Filter::from_query(rt, &ctx.query)?;
    if filter.fields.is_some() || !rt.is_storage_version() {
        return Ok(None);
    }
    let objects = &ctx.state.objects;
    let (items, rv, cont) = collect_with(ctx, |kv| {
        let Some(served) = objects.served_bytes(rt, kv)? else {
            return Err(ApiError::internal(
                "stored version differs from the served one",
            ));
        };
        let selected = filter
            .labels
            .as_ref()
            .is_none_or(|l| l.matches(&meta::string_map(served.metadata.get("labels"))));
        Ok(selected.then_some(served.json))
    })
    .await?;
    let mut body = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 256);
    body.extend_from_slice(b"{\"kind\":");
    serde_json::to_writer(&mut body, &rt.list_kind())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    body.extend_from_slice(b",\"apiVersion\":");
    serde_json::to_writer(&mut body, &rt.api_version())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    body.extend_from_slice(b",\"metadata\":");
    serde_json::to_writer(&mut body, &list_metadata(rv, cont))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(Some(resp))
}
