//! The Kubernetes REST verbs on resource URLs: dispatch, and the pieces
//! every verb shares (the request context, JSON answers, warnings).

mod admit;
pub mod agent_tls;
mod delete;
mod gc;
pub mod proxy;
mod read;
mod scale;
mod watch;
mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::Instrument;

use crate::request::{self, Query, Target};
use crate::status::{ApiError, ApiResult};
use crate::ApiState;

pub use delete::resume_namespace_finalization;
pub use write::ensure_namespace;

/// Runs everything a create does before storing: body decoding (by
/// `Content-Type`), duplicate keys, type and unknown-field checks, defaults
/// and validation. Returns the admitted object and its warnings. Used by the
/// fuzz targets: no input may make it panic.
pub fn check_write(
    rt: &'static nuage_model::registry::ResourceType,
    headers: &HeaderMap,
    body: &[u8],
    fv: request::FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    let mut obj = request::decode_body(headers, body)?;
    let dups = admit::duplicates_in(headers, body);
    let ns = rt.namespaced.then_some("default");
    let warnings = admit::admit(rt, &mut obj, ns, fv, &dups)?;
    admit::validate(rt, &obj)?;
    Ok((obj, warnings))
}

/// One request on a resource URL.
pub struct Ctx {
    /// Shared server state.
    pub state: Arc<ApiState>,
    /// What the URL names.
    pub target: Target,
    /// Query parameters.
    pub query: Query,
    /// Request headers.
    pub headers: HeaderMap,
    /// The connection's pending HTTP/1.1 upgrade (exec's WebSocket).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Ctx {
    fn ns(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    fn dry_run(&self) -> bool {
        self.query.get("dryRun") == Some("All")
    }
}

/// Where under `/api` or `/apis` a request goes.
pub struct ApiPath<'a> {
    /// API group (`""` for core).
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// The path segments after the version.
    pub segments: &'a [&'a str],
}

/// Serves one request on `/api/v1/...` or `/apis/G/V/...`.
pub async fn dispatch(
    state: Arc<ApiState>,
    method: Method,
    path: ApiPath<'_>,
    raw_query: Option<&str>,
    headers: HeaderMap,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    body: Body,
) -> Response {
    let result = async {
        let target = request::parse_target(path.group, path.version, path.segments)?;
        let query = Query::parse(raw_query);
        let span = tracing::info_span!(
            "request",
            verb = request::verb(&method, &target, &query),
            resource = target.rt.plural,
            namespace = target.namespace.as_deref().unwrap_or(""),
            name = target.name.as_deref().unwrap_or(""),
        );
        let ctx = Ctx {
            state,
            target,
            query,
            headers,
            upgrade,
        };
        let resp = route(ctx, method, body).instrument(span.clone()).await;
        let code = match &resp {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.code,
        };
        span.in_scope(|| tracing::debug!(code, "answered"));
        resp
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn route(ctx: Ctx, method: Method, body: Body) -> ApiResult<Response> {
    let sub = ctx.target.subresource.clone();
    let has_name = ctx.target.name.is_some();
    match (method.as_str(), has_name, sub.as_deref()) {
        ("GET", false, None) if ctx.query.flag("watch") => watch::watch(ctx).await,
        ("GET", false, None) => read::list(ctx).await,
        ("GET", true, None) if ctx.query.flag("watch") => watch::watch(ctx).await,
        ("GET", true, None | Some("status")) => read::get(ctx).await,
        ("POST", false, None) => write::create(ctx, read_body(body).await?).await,
        ("PUT", true, None) => write::update(ctx, read_body(body).await?).await,
        ("PUT", true, Some("status")) => write::update_status(ctx, read_body(body).await?).await,
        ("PATCH", true, None | Some("status")) => write::patch(ctx, read_body(body).await?).await,
        ("DELETE", true, None) => delete::delete(ctx, read_body(body).await?).await,
        ("DELETE", false, None) => delete::delete_collection(ctx, read_body(body).await?).await,
        ("GET", true, Some("scale")) => scale::get(ctx).await,
        ("PUT", true, Some("scale")) => scale::update(ctx, read_body(body).await?).await,
        ("PATCH", true, Some("scale")) => scale::patch(ctx, read_body(body).await?).await,
        ("POST", true, Some("binding")) => write::bind(ctx, read_body(body).await?).await,
        ("PUT", true, Some("finalize")) => write::update_status(ctx, read_body(body).await?).await,
        ("GET", true, Some("log")) | ("GET" | "POST", true, Some("exec" | "attach")) => {
            proxy::forward(ctx, method).await
        }
        (m, _, _) => Err(ApiError::method_not_allowed(m)),
    }
}

async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, request::MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large(request::MAX_BODY))
}

/// A JSON answer, with `Warning` headers for each warning.
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut resp = (code, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = HeaderValue::from_str(&text) {
            h.append(header::WARNING, v);
        }
    }
    resp
}
