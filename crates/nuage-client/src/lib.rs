//! A typed client for nuage's Kubernetes API, over HTTPS: what the node agent
//! (in-process or on another host) and the controllers use to read, write and
//! watch objects.
//!
//! It owns: connection pooling, the bearer token, trusting the server's CA,
//! URL building from `k8s-openapi` resource types, `Status` errors, and watch
//! streams. It does not own caching or retries: callers decide.

mod error;
pub mod informer;
mod lease;
mod watch;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use k8s_openapi::{ListableResource, Metadata, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::Error;
pub use k8s_openapi::List;
pub use lease::{node_lease, NODE_LEASE_NAMESPACE};
pub use watch::{WatchEvent, WatchStream};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// What a client needs to reach the API server.
#[derive(Clone)]
pub struct Config {
    /// `https://host:port`.
    pub server: String,
    /// Bearer token.
    pub token: String,
    /// PEM certificates to trust (the server's CA).
    pub ca_pem: Vec<u8>,
}

/// A client to one API server; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    auth: String,
    http: HyperClient<Connector, Full<Bytes>>,
}

/// Query parameters of list and watch requests.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
}

impl ListParams {
    /// Selects by field (e.g. `spec.nodeName=node-1`).
    pub fn fields(selector: impl Into<String>) -> Self {
        Self {
            field_selector: Some(selector.into()),
            ..Self::default()
        }
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(l) = &self.label_selector {
            q.push(("labelSelector", l.clone()));
        }
        if let Some(f) = &self.field_selector {
            q.push(("fieldSelector", f.clone()));
        }
        q
    }
}

impl Client {
    /// Makes a client; fails only if the CA is unreadable.
    pub fn new(config: Config) -> Result<Self, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut config.ca_pem.as_slice()) {
            let cert = cert.map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(Error::Config("no CA certificate given".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            // The server's certificate names localhost and its address; an
            // IP URL still verifies against the IP SAN.
            .enable_http1()
            .wrap_connector(http);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                base: config.server.trim_end_matches('/').to_string(),
                auth: format!("Bearer {}", config.token),
                http,
            }),
        })
    }

    /// Reads one object; `None` when it does not exist.
    pub async fn get<K>(&self, namespace: Option<&str>, name: &str) -> Result<Option<K>, Error>
    where
        K: Resource + DeserializeOwned,
    {
        let url = object_url::<K>(namespace, name, "");
        match self.send::<K>(Method::GET, &url, None).await {
            Ok(obj) => Ok(Some(obj)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists objects (all namespaces when `namespace` is `None` for a
    /// namespaced kind).
    pub async fn list<K>(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<List<K>, Error>
    where
        K: ListableResource + DeserializeOwned,
    {
        let url = with_query(&collection_url::<K>(namespace), &params.query());
        self.send::<List<K>>(Method::GET, &url, None).await
    }

    /// Watches from `resource_version` (exclusive), with bookmarks.
    pub async fn watch<K>(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<WatchStream<K>, Error>
    where
        K: Resource + DeserializeOwned + Send + 'static,
    {
        let mut q = params.query();
        q.push(("watch", "true".into()));
        q.push(("resourceVersion", resource_version.into()));
        q.push(("allowWatchBookmarks", "true".into()));
        let url = with_query(&collection_url::<K>(namespace), &q);
        let resp = self.request(Method::GET, &url, None).await?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            return Err(Error::from_status(status, &body));
        }
        Ok(WatchStream::new(resp.into_body()))
    }

    /// Creates an object.
    pub async fn create<K>(&self, namespace: Option<&str>, obj: &K) -> Result<K, Error>
    where
        K: Resource + Serialize + DeserializeOwned,
    {
        let body = serde_json::to_vec(obj)?;
        self.send(Method::POST, &collection_url::<K>(namespace), Some(body))
            .await
    }

    /// Replaces an object (its `metadata.resourceVersion` guards the write).
    pub async fn replace<K>(&self, namespace: Option<&str>, obj: &K) -> Result<K, Error>
    where
        K: Resource + Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
        K: Serialize + DeserializeOwned,
    {
        let name = obj.metadata().name.clone().unwrap_or_default();
        let body = serde_json::to_vec(obj)?;
        self.send(
            Method::PUT,
            &object_url::<K>(namespace, &name, ""),
            Some(body),
        )
        .await
    }

    /// Replaces an object's status (its `metadata.resourceVersion` guards
    /// the write).
    pub async fn replace_status<K>(&self, namespace: Option<&str>, obj: &K) -> Result<K, Error>
    where
        K: Resource + Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
        K: Serialize + DeserializeOwned,
    {
        let name = obj.metadata().name.clone().unwrap_or_default();
        let body = serde_json::to_vec(obj)?;
        let url = object_url::<K>(namespace, &name, "/status");
        self.send(Method::PUT, &url, Some(body)).await
    }

    /// Applies a JSON merge patch to an object (`subresource` is `""` or
    /// `"/status"`).
    pub async fn merge_patch<K>(
        &self,
        namespace: Option<&str>,
        name: &str,
        subresource: &str,
        patch: &serde_json::Value,
    ) -> Result<K, Error>
    where
        K: Resource + DeserializeOwned,
    {
        let url = object_url::<K>(namespace, name, subresource);
        let body = serde_json::to_vec(patch)?;
        let req = self
            .builder(Method::PATCH, &url)
            .header("content-type", "application/merge-patch+json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Config(e.to_string()))?;
        self.finish(req).await
    }

    /// Binds a pod to a node (`pods/{name}/binding`, what a scheduler does).
    pub async fn bind_pod(&self, namespace: &str, name: &str, node: &str) -> Result<(), Error> {
        let binding = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": { "name": name, "namespace": namespace },
            "target": { "apiVersion": "v1", "kind": "Node", "name": node },
        });
        let url = format!("/api/v1/namespaces/{namespace}/pods/{name}/binding");
        self.send::<serde_json::Value>(Method::POST, &url, Some(serde_json::to_vec(&binding)?))
            .await
            .map(drop)
    }

    /// Deletes an object; `grace_seconds` 0 deletes a pod at once. A missing
    /// object is not an error.
    pub async fn delete<K>(
        &self,
        namespace: Option<&str>,
        name: &str,
        grace_seconds: Option<i64>,
        uid: Option<&str>,
    ) -> Result<(), Error>
    where
        K: Resource,
    {
        let mut opts = serde_json::json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(g) = grace_seconds {
            opts["gracePeriodSeconds"] = g.into();
        }
        if let Some(uid) = uid {
            opts["preconditions"] = serde_json::json!({ "uid": uid });
        }
        let url = object_url::<K>(namespace, name, "");
        let body = serde_json::to_vec(&opts)?;
        match self
            .send::<serde_json::Value>(Method::DELETE, &url, Some(body))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn builder(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{}", self.inner.base, path))
            .header("authorization", &self.inner.auth)
            .header("accept", "application/json")
            .header("user-agent", "nuage-client")
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Error> {
        let mut b = self.builder(method, path);
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(self.inner.http.request(req).await?)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, Error> {
        let mut b = self.builder(method, path);
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| Error::Config(e.to_string()))?;
        self.finish(req).await
    }

    async fn finish<T: DeserializeOwned>(&self, req: Request<Full<Bytes>>) -> Result<T, Error> {
        let resp = self.inner.http.request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(Error::from_status(status, &body));
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

/// `/api/v1[/namespaces/NS]/pods` or `/apis/G/V[/namespaces/NS]/R`.
fn collection_url<K: Resource>(namespace: Option<&str>) -> String {
    let prefix = if K::GROUP.is_empty() {
        format!("/api/{}", K::VERSION)
    } else {
        format!("/apis/{}/{}", K::GROUP, K::VERSION)
    };
    match namespace {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{}", K::URL_PATH_SEGMENT),
        None => format!("{prefix}/{}", K::URL_PATH_SEGMENT),
    }
}

fn object_url<K: Resource>(namespace: Option<&str>, name: &str, subresource: &str) -> String {
    format!("{}/{name}{subresource}", collection_url::<K>(namespace))
}

fn with_query(path: &str, query: &[(&'static str, String)]) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let encoded: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{path}?{}", encoded.join("&"))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Node, Pod};

    use super::*;

    #[test]
    fn urls_follow_the_group_and_scope() {
        assert_eq!(collection_url::<Pod>(None), "/api/v1/pods");
        assert_eq!(
            object_url::<Pod>(Some("default"), "web", "/status"),
            "/api/v1/namespaces/default/pods/web/status"
        );
        assert_eq!(object_url::<Node>(None, "n1", ""), "/api/v1/nodes/n1");
        assert_eq!(
            collection_url::<Lease>(Some("kube-node-lease")),
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        );
    }

    #[test]
    fn query_values_are_encoded() {
        let p = ListParams::fields("spec.nodeName=a b");
        assert_eq!(
            with_query("/api/v1/pods", &p.query()),
            "/api/v1/pods?fieldSelector=spec.nodeName%3Da%20b"
        );
    }
}
