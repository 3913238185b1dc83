//! OpenAPI v3 documents: the index at `/openapi/v3` and one document per
//! group-version at `/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`, ...
//!
//! kubectl needs them for three things:
//! - `create -f` and `apply` look for a PATCH operation tagged with the
//!   object's `x-kubernetes-group-version-kind` that takes a
//!   `fieldValidation` query parameter (cli-runtime
//!   `query_param_verifier_v3.go`); without one they refuse to send the
//!   object. Every PATCH operation of a kind must carry it: the verifier
//!   stops at the first one it meets, in map order.
//! - `explain` finds the GVK on the resource's paths, then the schema in
//!   `components.schemas` carrying the same GVK, and follows `$ref`s.
//! - client-side `apply` builds its strategic merge patch from these
//!   schemas when a PATCH operation accepts
//!   `application/strategic-merge-patch+json`. `k8s-openapi`'s schemas lack
//!   the `x-kubernetes-patch-merge-key` extensions, so patches built from
//!   them would replace whole lists (and never print "unchanged"). The PATCH
//!   operations therefore do not list that type, and kubectl falls back to
//!   its compiled-in types, which carry the merge keys. The server accepts
//!   strategic merge patches all the same.
//!
//! Documents are rebuilt per request (tens of milliseconds) so that none is
//! held in memory; only their hashes are cached.

mod schemas;

use std::sync::OnceLock;

use nuage_model::registry::{group_versions, resources_of, ResourceType};
use serde_json::{json, Map, Value};

use crate::discovery::{stable_hash, subresource};
use schemas::{gvk, SchemaSet};

/// `GET /openapi/v3`: the path and hash of every document.
pub fn v3_index() -> Value {
    let paths: Map<String, Value> = document_hashes()
        .iter()
        .map(|(path, hash)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// The hash of the document at `path` (as in the index), for `ETag` and
/// cache headers; `None` for an unknown path.
pub fn v3_hash(path: &str) -> Option<&'static str> {
    let path = path.trim_matches('/');
    document_hashes()
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, hash)| hash.as_str())
}

/// `GET /openapi/v3/<path>`: the document of `api`, `apis`, `api/v1` or
/// `apis/<group>/<version>`, or `None` when nothing is served there.
pub fn v3_group_version(path: &str) -> Option<Value> {
    let path = path.trim_matches('/');
    match path {
        "api" => Some(root_document(true)),
        "apis" => Some(root_document(false)),
        _ => {
            let (group, version) = split_document_path(path)?;
            resources_of(group, version).next()?;
            Some(group_version_document(group, version))
        }
    }
}

/// Every document path, in index order.
fn document_paths() -> Vec<String> {
    let mut paths = vec!["api".to_string(), "apis".to_string()];
    for (group, version) in group_versions() {
        paths.push(if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        });
    }
    paths
}

/// `(path, hash)` of every document, computed once: the documents depend
/// only on the binary, and are rebuilt for each request anyway.
fn document_hashes() -> &'static [(String, String)] {
    static HASHES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    HASHES.get_or_init(|| {
        document_paths()
            .into_iter()
            .filter_map(|path| {
                let document = v3_group_version(&path)?;
                let hash = stable_hash(document.to_string().as_bytes());
                Some((path, format!("{hash:016X}")))
            })
            .collect()
    })
}

/// `api/v1` → `("", "v1")`, `apis/apps/v1` → `("apps", "v1")`.
fn split_document_path(path: &str) -> Option<(&str, &str)> {
    if let Some(version) = path.strip_prefix("api/") {
        return (!version.is_empty() && !version.contains('/')).then_some(("", version));
    }
    let (group, version) = path.strip_prefix("apis/")?.split_once('/')?;
    (!group.is_empty() && !version.is_empty() && !version.contains('/')).then_some((group, version))
}

/// A document's top level.
fn document(paths: Map<String, Value>, schemas: Map<String, Value>) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-nuage"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// The `api` or `apis` document: the discovery endpoints themselves.
fn root_document(core: bool) -> Value {
    let mut set = SchemaSet::new();
    let (path, id, schema) = if core {
        ("/api/", "getCoreAPIVersions", set.api_versions())
    } else {
        ("/apis/", "getAPIVersions", set.api_group_list())
    };
    let operation = json!({
        "description": "get available API versions",
        "operationId": id,
        "responses": {"200": ok("OK", &schema)},
    });
    let mut paths = Map::new();
    paths.insert(path.to_string(), json!({"get": operation}));
    document(paths, set.finish())
}

/// The document of one group-version.
fn group_version_document(group: &str, version: &str) -> Value {
    let mut set = SchemaSet::new();
    let mut paths = Map::new();
    for r in resources_of(group, version) {
        resource_paths(r, &mut set, &mut paths);
    }
    document(paths, set.finish())
}

/// The collection, item and subresource paths of one resource.
fn resource_paths(r: &ResourceType, set: &mut SchemaSet, paths: &mut Map<String, Value>) {
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let scoped = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let kind_gvk = gvk(r.group, r.version, r.kind);
    let kind_ref = set.add_kind(r.group, r.version, r.kind);
    let list_ref = kind_ref
        .as_deref()
        .map(|item| set.add_list(item, r.group, r.version, r.kind));
    let names = OperationNames::new(r);
    let ns = if r.namespaced { "Namespaced" } else { "" };

    // Collection.
    let mut collection = Map::new();
    collection.insert(
        "get".into(),
        list_operation(&names.id("list", ns, ""), &kind_gvk, list_ref.as_deref()),
    );
    if r.writable {
        collection.insert(
            "post".into(),
            write_operation(
                "post",
                &names.id("create", ns, ""),
                &kind_gvk,
                kind_ref.as_deref(),
                &["dryRun", "fieldManager", "fieldValidation"],
                &["200", "201", "202"],
            ),
        );
        let status = set.status();
        let delete_options = set.delete_options();
        collection.insert(
            "delete".into(),
            operation(
                "deletecollection",
                &names.id("deleteCollection", ns, ""),
                &kind_gvk,
                &[
                    "continue",
                    "dryRun",
                    "fieldSelector",
                    "gracePeriodSeconds",
                    "labelSelector",
                    "limit",
                    "propagationPolicy",
                    "resourceVersion",
                    "resourceVersionMatch",
                    "sendInitialEvents",
                    "timeoutSeconds",
                ],
                Some(json_body(&delete_options)),
                responses(&["200"], Some(&status)),
            ),
        );
    }
    paths.insert(scoped.clone(), path_item(r.namespaced, false, collection));

    // Across all namespaces, which `kubectl explain` also searches.
    if r.namespaced {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            list_operation(
                &names.id("list", "", "ForAllNamespaces"),
                &kind_gvk,
                list_ref.as_deref(),
            ),
        );
        paths.insert(
            format!("{prefix}/{}", r.plural),
            path_item(false, false, all),
        );
    }

    // Item.
    let item_path = format!("{scoped}/{{name}}");
    let mut item = Map::new();
    item.insert(
        "get".into(),
        operation(
            "get",
            &names.id("read", ns, ""),
            &kind_gvk,
            &[],
            None,
            responses(&["200"], kind_ref.as_deref()),
        ),
    );
    if r.writable {
        item.insert(
            "put".into(),
            write_operation(
                "put",
                &names.id("replace", ns, ""),
                &kind_gvk,
                kind_ref.as_deref(),
                &["dryRun", "fieldManager", "fieldValidation"],
                &["200", "201"],
            ),
        );
        item.insert(
            "patch".into(),
            patch_operation(
                &names.id("patch", ns, ""),
                &kind_gvk,
                kind_ref.as_deref(),
                set.patch(),
            ),
        );
        let status = set.status();
        let delete_options = set.delete_options();
        item.insert(
            "delete".into(),
            operation(
                "delete",
                &names.id("delete", ns, ""),
                &kind_gvk,
                &["dryRun", "gracePeriodSeconds", "propagationPolicy"],
                Some(json_body(&delete_options)),
                responses(&["200", "202"], Some(&status)),
            ),
        );
    }
    paths.insert(item_path.clone(), path_item(r.namespaced, true, item));

    // Subresources.
    for sub in r.subresources {
        let Some(info) = subresource(r, sub) else {
            continue;
        };
        let sub_gvk = gvk(info.group, info.version, info.kind);
        let sub_ref = set.add_kind(info.group, info.version, info.kind);
        // Connect-style subresources (exec, attach) and log stream text.
        let streams = *sub == "log" || info.kind.ends_with("Options");
        let response = if streams { None } else { sub_ref.as_deref() };
        let suffix = capitalize(sub);
        let mut ops = Map::new();
        for verb in info.verbs {
            let (method, action) = match *verb {
                "get" => ("get", "get"),
                "update" => ("put", "put"),
                "patch" => ("patch", "patch"),
                "create" => ("post", "post"),
                _ => continue,
            };
            let action = if info.kind.ends_with("Options") {
                "connect"
            } else {
                action
            };
            let op = match method {
                "patch" => patch_operation(
                    &names.id("patch", ns, &suffix),
                    &sub_gvk,
                    response,
                    set.patch(),
                ),
                "put" => write_operation(
                    "put",
                    &names.id("replace", ns, &suffix),
                    &sub_gvk,
                    response,
                    &["dryRun", "fieldManager", "fieldValidation"],
                    &["200", "201"],
                ),
                "post" if action == "post" => write_operation(
                    "post",
                    &names.id("create", ns, &suffix),
                    &sub_gvk,
                    response,
                    &["dryRun", "fieldManager", "fieldValidation"],
                    &["200", "201", "202"],
                ),
                _ => {
                    let (prefix, query) = connect_params(sub, method);
                    let mut op = operation(
                        action,
                        &names.id(prefix, ns, &suffix),
                        &sub_gvk,
                        query,
                        None,
                        responses(&["200"], response),
                    );
                    if streams {
                        op["responses"]["200"] = text_response();
                    }
                    op
                }
            };
            ops.insert(method.into(), op);
        }
        if !ops.is_empty() {
            paths.insert(
                format!("{item_path}/{sub}"),
                path_item(r.namespaced, true, ops),
            );
        }
    }
}

/// Operation-id prefix and query parameters of a `get` or connect
/// operation on subresource `sub`.
fn connect_params(sub: &str, method: &str) -> (&'static str, &'static [&'static str]) {
    let prefix = match method {
        "post" => "connectPost",
        _ if sub == "log" || sub == "status" || sub == "scale" => "read",
        _ => "connectGet",
    };
    let query: &'static [&'static str] = match sub {
        "log" => &[
            "container",
            "follow",
            "limitBytes",
            "previous",
            "sinceSeconds",
            "tailLines",
            "timestamps",
        ],
        "exec" => &["command", "container", "stderr", "stdin", "stdout", "tty"],
        "attach" => &["container", "stderr", "stdin", "stdout", "tty"],
        "portforward" => &["ports"],
        _ => &[],
    };
    (prefix, query)
}

/// Builds `listCoreV1NamespacedPod`-style operation ids, unique per path
/// and method as in Kubernetes' documents.
struct OperationNames {
    group_version: String,
    kind: &'static str,
}

impl OperationNames {
    fn new(r: &ResourceType) -> Self {
        let group = match r.group {
            "" => "Core".to_string(),
            g => g
                .trim_end_matches(".k8s.io")
                .split('.')
                .map(capitalize)
                .collect(),
        };
        OperationNames {
            group_version: format!("{group}{}", capitalize(r.version)),
            kind: r.kind,
        }
    }

    fn id(&self, verb: &str, namespaced: &str, suffix: &str) -> String {
        format!(
            "{verb}{}{namespaced}{}{suffix}",
            self.group_version, self.kind
        )
    }
}

/// `scale` → `Scale`.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A path item: its operations plus the path parameters they share.
fn path_item(namespaced: bool, named: bool, operations: Map<String, Value>) -> Value {
    let mut parameters = Vec::new();
    if named {
        parameters.push(path_parameter("name", "name of the object"));
    }
    if namespaced {
        parameters.push(path_parameter(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    parameters.push(query_parameter("pretty"));
    let mut item = operations;
    item.insert("parameters".into(), Value::Array(parameters));
    Value::Object(item)
}

/// A required `{name}` or `{namespace}` parameter.
fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true},
    })
}

/// A query parameter with its Kubernetes type and (short) description.
fn query_parameter(name: &str) -> Value {
    let (kind, description) = match name {
        "allowWatchBookmarks" => ("boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        "command" => ("string", "Command is the remote command to execute. argv array. Not executed within a shell."),
        "container" => ("string", "The container for which to stream logs or execute the command."),
        "continue" => ("string", "The continue option should be set when retrieving more results from the server."),
        "dryRun" => ("string", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed"),
        "fieldManager" => ("string", "fieldManager is a name associated with the actor or entity that is making these changes."),
        "fieldSelector" => ("string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        "fieldValidation" => ("string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered."),
        "follow" => ("boolean", "Follow the log stream of the pod."),
        "force" => ("boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people."),
        "gracePeriodSeconds" => ("integer", "The duration in seconds before the object should be deleted."),
        "labelSelector" => ("string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        "limit" => ("integer", "limit is a maximum number of responses to return for a list call."),
        "limitBytes" => ("integer", "If set, the number of bytes to read from the server before terminating the log output."),
        "ports" => ("integer", "List of ports to forward."),
        "pretty" => ("string", "If 'true', then the output is pretty printed."),
        "previous" => ("boolean", "Return previous terminated container logs."),
        "propagationPolicy" => ("string", "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'."),
        "resourceVersion" => ("string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        "resourceVersionMatch" => ("string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
        "sendInitialEvents" => ("boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
        "sinceSeconds" => ("integer", "A relative time in seconds before the current time from which to show logs."),
        "stderr" | "stdin" | "stdout" => ("boolean", "Redirect the standard stream of the command."),
        "tailLines" => ("integer", "If set, the number of lines from the end of the logs to show."),
        "timeoutSeconds" => ("integer", "Timeout for the list/watch call."),
        "timestamps" => ("boolean", "If true, add an RFC3339 timestamp at the beginning of every line of log output."),
        "tty" => ("boolean", "TTY if true indicates that a tty will be allocated for the exec call."),
        "watch" => ("boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
        _ => ("string", ""),
    };
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": kind, "uniqueItems": true},
    })
}

/// One operation.
fn operation(
    action: &str,
    id: &str,
    gvk: &Value,
    query: &[&str],
    request_body: Option<Value>,
    responses: Value,
) -> Value {
    let mut op = json!({
        "operationId": id,
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if !query.is_empty() {
        op["parameters"] = query.iter().map(|q| query_parameter(q)).collect();
    }
    if let Some(body) = request_body {
        op["requestBody"] = body;
    }
    op
}

/// A list (and watch) operation.
fn list_operation(id: &str, gvk: &Value, list_ref: Option<&str>) -> Value {
    let mut op = operation(
        "list",
        id,
        gvk,
        &[
            "allowWatchBookmarks",
            "continue",
            "fieldSelector",
            "labelSelector",
            "limit",
            "resourceVersion",
            "resourceVersionMatch",
            "sendInitialEvents",
            "timeoutSeconds",
            "watch",
        ],
        None,
        responses(&["200"], list_ref),
    );
    if let Some(list_ref) = list_ref {
        op["responses"]["200"]["content"]["application/json;stream=watch"] =
            json!({"schema": {"$ref": list_ref}});
    }
    op
}

/// A create or replace operation.
fn write_operation(
    action: &str,
    id: &str,
    gvk: &Value,
    kind_ref: Option<&str>,
    query: &[&str],
    codes: &[&str],
) -> Value {
    let body = kind_ref.map(json_body).unwrap_or_else(json_body_any);
    operation(
        action,
        id,
        gvk,
        query,
        Some(body),
        responses(codes, kind_ref),
    )
}

/// A PATCH operation. It names every patch type the server takes except
/// `application/strategic-merge-patch+json`: see the module documentation.
fn patch_operation(id: &str, gvk: &Value, kind_ref: Option<&str>, patch_ref: String) -> Value {
    let schema = json!({"schema": {"$ref": patch_ref}});
    let body = json!({
        "required": true,
        "content": {
            "application/apply-patch+yaml": schema,
            "application/json-patch+json": schema,
            "application/merge-patch+json": schema,
        },
    });
    operation(
        "patch",
        id,
        gvk,
        &["dryRun", "fieldManager", "fieldValidation", "force"],
        Some(body),
        responses(&["200", "201"], kind_ref),
    )
}

/// A required JSON request body of schema `schema_ref`.
fn json_body(schema_ref: &str) -> Value {
    let schema = json!({"schema": {"$ref": schema_ref}});
    json!({"required": true, "content": {"application/json": schema, "application/yaml": schema}})
}

/// A JSON request body of no particular schema.
fn json_body_any() -> Value {
    json!({"content": {"application/json": {"schema": {"type": "object"}}}})
}

/// Responses with the given codes, each of schema `schema_ref`.
fn responses(codes: &[&str], schema_ref: Option<&str>) -> Value {
    let mut out = Map::new();
    for code in codes {
        let description = match *code {
            "201" => "Created",
            "202" => "Accepted",
            _ => "OK",
        };
        out.insert(
            (*code).to_string(),
            match schema_ref {
                Some(schema_ref) => ok(description, schema_ref),
                None => json!({"description": description}),
            },
        );
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

/// A response of schema `schema_ref`, in JSON or YAML.
fn ok(description: &str, schema_ref: &str) -> Value {
    let schema = json!({"schema": {"$ref": schema_ref}});
    json!({
        "description": description,
        "content": {"application/json": schema, "application/yaml": schema},
    })
}

/// A plain-text response (logs, exec).
fn text_response() -> Value {
    json!({"description": "OK", "content": {"*/*": {"schema": {"type": "string"}}}})
}

#[cfg(test)]
mod tests;
