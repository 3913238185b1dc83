//! Reading a Kubernetes request: which object the URL names, its query
//! parameters, and its body (JSON, YAML or protobuf).

use axum::http::{HeaderMap, Method};
use nuage_model::registry::{self, ResourceType};
use serde_json::Value;

use crate::status::{ApiError, ApiResult};

/// Largest request body accepted (Kubernetes' own limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What a resource URL names.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub rt: &'static ResourceType,
    /// The namespace in the URL, if any.
    pub namespace: Option<String>,
    /// The object name, for item URLs.
    pub name: Option<String>,
    /// The subresource (`status`, `scale`, ...), for subresource URLs.
    pub subresource: Option<String>,
}

/// Parses the part of a URL after `/api/v1/` or `/apis/G/V/` into a target.
/// `segments` is that part split on `/`.
pub fn parse_target(group: &str, version: &str, segments: &[&str]) -> ApiResult<Target> {
    let find = |plural: &str| registry::lookup(group, version, plural);
    let (namespace, rest) = match segments {
        ["namespaces", ns, res, rest @ ..] if find(res).is_some_and(|r| r.namespaced) => (
            Some((*ns).to_string()),
            std::iter::once(*res)
                .chain(rest.iter().copied())
                .collect::<Vec<_>>(),
        ),
        other => (None, other.to_vec()),
    };
    let Some(rt) = rest.first().and_then(|r| find(r)) else {
        return Err(ApiError::no_route());
    };
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3 || name.as_deref() == Some("") {
        return Err(ApiError::no_route());
    }
    if let Some(sub) = &subresource {
        if !rt.has_subresource(sub) {
            return Err(ApiError::no_route());
        }
    }
    if namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        rt,
        namespace,
        name,
        subresource,
    })
}

/// Query parameters, keeping repeated keys (`command=ls&command=-l`).
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string; malformed parts are skipped.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
                .unwrap_or_default(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter (`watch=1`, `watch=true`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "true" | "True"))
    }

    /// An integer parameter; a malformed one is a 400.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid {key} {v:?}: not an integer"))),
        }
    }
}

/// How unknown fields in a write are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request.
    Strict,
    /// Accept and warn.
    Warn,
    /// Accept silently.
    Ignore,
}

impl FieldValidation {
    /// From the query; Kubernetes' default is Warn.
    pub fn from_query(q: &Query) -> ApiResult<Self> {
        match q.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// The media type of the body, lower-cased and without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes an object body by its content type.
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    match ct.as_str() {
        "application/json" | "" | "*/*" => decode_json(body),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body),
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Decodes a JSON document.
pub fn decode_json(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the body of the request is not valid JSON: {e}"))
    })
}

/// Decodes a YAML document (JSON is YAML too).
pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_yaml::from_slice::<Value>(body).map_err(|e| {
        ApiError::bad_request(format!("the body of the request is not valid YAML: {e}"))
    })
}

/// Whether the client asked for a server-side Table.
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

/// The verb Kubernetes' authorizer and audit would name this request with.
pub fn verb(method: &Method, target: &Target, q: &Query) -> &'static str {
    match (method.as_str(), target.name.is_some()) {
        ("GET", _) if q.flag("watch") => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_item_and_subresource() {
        let t = parse_target("", "v1", &["namespaces", "default", "pods", "a", "status"]).unwrap();
        assert_eq!(t.rt.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("a"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn namespace_object_and_its_status() {
        let t = parse_target("", "v1", &["namespaces", "foo"]).unwrap();
        assert_eq!(t.rt.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("foo"));
        let t = parse_target("", "v1", &["namespaces", "foo", "status"]).unwrap();
        assert_eq!(t.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn all_namespaces_list() {
        let t = parse_target("apps", "v1", &["deployments"]).unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());
    }

    #[test]
    fn unknown_resource_or_subresource_is_404() {
        assert!(parse_target("", "v1", &["widgets"]).is_err());
        assert!(parse_target("", "v1", &["namespaces", "d", "pods", "a", "nope"]).is_err());
    }

    #[test]
    fn repeated_query_keys_are_kept() {
        let q = Query::parse(Some("command=ls&command=-l&watch=1"));
        assert_eq!(q.all("command"), vec!["ls", "-l"]);
        assert!(q.flag("watch"));
    }
}
