//! The HTTP front of nuage: the Kubernetes API (discovery, OpenAPI, REST
//! verbs, watch, Tables) over HTTPS, and the AWS endpoint.
//!
//! Owns routing, request decoding, authentication of bearer tokens, and the
//! Kubernetes semantics of writes (server-owned metadata, status and scale
//! subresources, finalizers, namespace lifecycle). Does not own storage
//! (nuage-store), object types and validation (nuage-model), or sockets'
//! lifetime (the binary binds them and calls [`serve::serve`]).

pub mod auth;
pub mod aws;
pub mod discovery;
pub mod event_ttl;
pub mod namespaces;
pub mod openapi;
mod protobuf;
pub mod request;
pub mod rest;
pub mod serve;
pub mod status;
pub mod storage;
pub mod table;
pub mod tls;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Extension;
use axum::Router;
use serde_json::{json, Value};

use crate::status::ApiError;
use crate::storage::Objects;

/// Everything request handlers share.
pub struct ApiState {
    /// Objects in the store.
    pub objects: Objects,
    /// Accepted bearer tokens.
    pub tokens: auth::Tokens,
    /// Set once every component is up; `/readyz` answers from it.
    pub ready: AtomicBool,
    /// The service (cluster IP) range: first address and size.
    pub service_range: (Ipv4Addr, u32),
    /// Serializes cluster IP allocation.
    pub ip_alloc: tokio::sync::Mutex<()>,
    /// The address clients reach the API at (`host:port`).
    pub advertise: String,
    /// Flipped to true at shutdown: open watches end so the drain is quick.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Namespaces and whether they accept content, kept by a watch.
    pub namespaces: namespaces::NamespaceCache,
    /// The bearer token presented to node agents when forwarding pod logs
    /// and exec to them.
    pub agent_token: String,
}

impl ApiState {
    /// Marks the server ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// The Kubernetes API router.
pub fn router(state: Arc<ApiState>) -> Router {
    let protected = Router::new()
        .route("/api", get(api_root))
        .route("/apis", get(apis_root))
        .route("/api/{*rest}", any(api_path))
        .route("/apis/{*rest}", any(apis_path))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/{*gv}", get(openapi_gv))
        .fallback(|| async { ApiError::no_route() })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_token,
        ));
    Router::new()
        .route("/readyz", get(readyz))
        .route("/livez", get(|| async { "ok" }))
        .route("/healthz", get(readyz))
        .route(
            "/version",
            get(|| async { axum::Json(discovery::version_info()) }),
        )
        .merge(protected)
        .with_state(state)
}

async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

fn json_with_type(v: &Value, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn accept(headers: &HeaderMap) -> String {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
}

async fn api_root(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    match discovery::negotiate_aggregated(&accept(&headers)) {
        Some(v) => json_with_type(&discovery::aggregated_as(v, true, false), v.content_type()),
        None => json_with_type(
            &discovery::core_versions(&state.advertise),
            "application/json",
        ),
    }
}

async fn apis_root(headers: HeaderMap) -> Response {
    match discovery::negotiate_aggregated(&accept(&headers)) {
        Some(v) => json_with_type(&discovery::aggregated_as(v, false, false), v.content_type()),
        None => json_with_type(&discovery::group_list(false), "application/json"),
    }
}

async fn api_path(
    State(state): State<Arc<ApiState>>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    upgrade: Option<Extension<hyper::upgrade::OnUpgrade>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["v1"] => resource_list("", "v1"),
        ["v1", rest @ ..] => {
            let path = rest::ApiPath {
                group: "",
                version: "v1",
                segments: rest,
            };
            let upgrade = upgrade.map(|Extension(u)| u);
            rest::dispatch(
                state,
                method,
                path,
                query.as_deref(),
                headers,
                upgrade,
                body,
            )
            .await
        }
        _ => ApiError::no_route().into_response(),
    }
}

async fn apis_path(
    State(state): State<Arc<ApiState>>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [group] => match api_group(group) {
            Some(g) => json_with_type(&g, "application/json"),
            None => ApiError::no_route().into_response(),
        },
        [group, version] => resource_list(group, version),
        [group, version, rest @ ..] => {
            let path = rest::ApiPath {
                group,
                version,
                segments: rest,
            };
            rest::dispatch(state, method, path, query.as_deref(), headers, None, body).await
        }
        _ => ApiError::no_route().into_response(),
    }
}

/// `GET /apis/GROUP`: the group's entry of the group list, as an APIGroup.
fn api_group(name: &str) -> Option<Value> {
    let list = discovery::group_list(false);
    let mut g = list["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == name)?
        .clone();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

fn resource_list(group: &str, version: &str) -> Response {
    match discovery::resource_list(group, version, false) {
        Some(l) => json_with_type(&l, "application/json"),
        None => ApiError::no_route().into_response(),
    }
}

async fn openapi_index() -> Response {
    json_with_type(&openapi::v3_index(), "application/json")
}

async fn openapi_gv(Path(gv): Path<String>) -> Response {
    match openapi::v3_group_version(&gv) {
        Some(doc) => json_with_type(&doc, "application/json"),
        None => ApiError::no_route().into_response(),
    }
}

/// Creates the namespaces every cluster has (`default`, `kube-system`, ...),
/// starts the namespace cache, and resumes work a previous run left
/// unfinished.
pub async fn bootstrap(state: &Arc<ApiState>) -> Result<(), ApiError> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        rest::ensure_namespace(state, ns).await?;
    }
    tokio::spawn(namespaces::run(Arc::clone(state)));
    rest::resume_namespace_finalization(state).await
}
