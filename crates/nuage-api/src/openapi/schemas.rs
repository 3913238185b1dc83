//! JSON schemas of the served kinds, from `k8s-openapi`'s `schemars`
//! implementations.
//!
//! `k8s-openapi` names every schema as Kubernetes does
//! (`io.k8s.api.core.v1.Pod`), and schemars' OpenAPI 3.0 settings put
//! definitions under `#/components/schemas/`, so the generated `$ref`s are
//! already the ones the Kubernetes API server publishes; nothing is renamed.
//! Its `RemoveRefSiblings` transform turns `{"$ref", "description"}` into
//! `{"allOf": [{"$ref"}], "description"}`, the shape `kubectl explain`
//! expects.

use k8s_openapi::api::{apps, autoscaling, coordination, core, discovery, policy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::Resource;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// Prefix of every `$ref` in a document.
pub(super) const REF_PREFIX: &str = "#/components/schemas/";

/// Description of `apiVersion`, as Kubernetes words it.
const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
/// Description of `kind`, as Kubernetes words it.
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// A kind whose schema `k8s-openapi` provides.
struct KindSchema {
    /// `group/version`, or `v1` for the core group.
    api_version: &'static str,
    /// The kind.
    kind: &'static str,
    /// Adds the kind's schema (and everything it references) to a
    /// generator; returns its definition name.
    add: fn(&mut SchemaGenerator) -> String,
}

/// Adds `T`'s schema to `generator`; returns its definition name.
fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

macro_rules! kinds {
    ($($ty:ty),* $(,)?) => {
        &[$(KindSchema {
            api_version: <$ty as Resource>::API_VERSION,
            kind: <$ty as Resource>::KIND,
            add: add::<$ty>,
        }),*]
    };
}

/// Every kind a served path takes or returns. A kind missing here still
/// gets its paths, without a schema; a unit test keeps this in step with
/// the registry.
static KINDS: &[KindSchema] = kinds![
    core::v1::Pod,
    core::v1::Service,
    core::v1::Endpoints,
    core::v1::ReplicationController,
    core::v1::Node,
    core::v1::Namespace,
    core::v1::ConfigMap,
    core::v1::Secret,
    core::v1::Event,
    core::v1::ServiceAccount,
    core::v1::Binding,
    apps::v1::Deployment,
    apps::v1::ReplicaSet,
    autoscaling::v1::HorizontalPodAutoscaler,
    autoscaling::v1::Scale,
    autoscaling::v2::HorizontalPodAutoscaler,
    coordination::v1::Lease,
    discovery::v1::EndpointSlice,
    policy::v1::Eviction,
];

/// A group-version-kind, as the `x-kubernetes-group-version-kind`
/// extension spells it.
pub(super) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// The `components.schemas` of one document, built up kind by kind.
pub(super) struct SchemaSet {
    generator: SchemaGenerator,
    /// Definition names that get an `x-kubernetes-group-version-kind`.
    tagged: Vec<(String, Value)>,
    /// Hand-built list schemas (`k8s-openapi`'s `List<T>` has none).
    lists: Vec<(String, Value)>,
}

impl SchemaSet {
    /// An empty set, generating OpenAPI 3.0 schemas.
    pub(super) fn new() -> Self {
        SchemaSet {
            generator: SchemaSettings::openapi3().into_generator(),
            tagged: Vec::new(),
            lists: Vec::new(),
        }
    }

    /// Adds the schema of `group/version` `kind`, tagged with its GVK;
    /// returns its `$ref`, or `None` for a kind without a schema (such as
    /// `PodExecOptions`).
    pub(super) fn add_kind(&mut self, group: &str, version: &str, kind: &str) -> Option<String> {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let entry = KINDS
            .iter()
            .find(|k| k.api_version == api_version && k.kind == kind)?;
        let name = (entry.add)(&mut self.generator);
        if !self.tagged.iter().any(|(n, _)| *n == name) {
            self.tagged.push((name.clone(), gvk(group, version, kind)));
        }
        Some(format!("{REF_PREFIX}{name}"))
    }

    /// Adds a `<Kind>List` schema for items of `item_ref` (from
    /// [`SchemaSet::add_kind`]); returns its `$ref`.
    pub(super) fn add_list(
        &mut self,
        item_ref: &str,
        group: &str,
        version: &str,
        kind: &str,
    ) -> String {
        let list_kind = format!("{kind}List");
        let name = format!("{}List", item_ref.trim_start_matches(REF_PREFIX));
        let list_meta = self.add_type::<meta::ListMeta>();
        let schema = json!({
            "description": format!("{list_kind} is a list of {kind} objects."),
            "type": "object",
            "properties": {
                "apiVersion": {"description": API_VERSION_DOC, "type": "string"},
                "items": {
                    "description": format!("List of {kind} objects."),
                    "type": "array",
                    "items": {"$ref": item_ref},
                },
                "kind": {"description": KIND_DOC, "type": "string"},
                "metadata": {
                    "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                    "allOf": [{"$ref": list_meta}],
                },
            },
            "required": ["items"],
            "x-kubernetes-group-version-kind": [gvk(group, version, &list_kind)],
        });
        if !self.lists.iter().any(|(n, _)| *n == name) {
            self.lists.push((name.clone(), schema));
        }
        format!("{REF_PREFIX}{name}")
    }

    /// Adds the schema of a supporting type (`Status`, `DeleteOptions`,
    /// `Patch`, ...); returns its `$ref`.
    pub(super) fn add_type<T: JsonSchema>(&mut self) -> String {
        format!("{REF_PREFIX}{}", add::<T>(&mut self.generator))
    }

    /// `$ref` of `meta/v1 Status`.
    pub(super) fn status(&mut self) -> String {
        self.add_type::<meta::Status>()
    }

    /// `$ref` of `meta/v1 DeleteOptions`.
    pub(super) fn delete_options(&mut self) -> String {
        self.add_type::<meta::DeleteOptions>()
    }

    /// `$ref` of `meta/v1 Patch`.
    pub(super) fn patch(&mut self) -> String {
        self.add_type::<meta::Patch>()
    }

    /// `$ref` of `meta/v1 APIVersions`.
    pub(super) fn api_versions(&mut self) -> String {
        self.add_type::<meta::APIVersions>()
    }

    /// `$ref` of `meta/v1 APIGroupList`.
    pub(super) fn api_group_list(&mut self) -> String {
        self.add_type::<meta::APIGroupList>()
    }

    /// The finished `components.schemas`, in name order.
    pub(super) fn finish(mut self) -> Map<String, Value> {
        let mut definitions = self.generator.take_definitions(true);
        for (name, gvk) in self.tagged {
            if let Some(Value::Object(schema)) = definitions.get_mut(&name) {
                schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
            }
        }
        for (name, schema) in self.lists {
            definitions.insert(name, schema);
        }
        definitions.sort_keys();
        definitions
    }
}

/// Whether `k8s-openapi` provides the schema of `api_version` `kind`.
#[cfg(test)]
pub(super) fn has_schema(api_version: &str, kind: &str) -> bool {
    KINDS
        .iter()
        .any(|k| k.api_version == api_version && k.kind == kind)
}
