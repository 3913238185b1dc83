//! The Kubernetes message types, read once from the descriptor set that
//! `build.rs` compiles from the vendored `proto/` files, plus the fields
//! whose zero value is meaningful (`proto/pointer_scalars.txt`).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use prost::Message as _;

/// `protoc --descriptor_set_out` of the vendored Kubernetes protos.
const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kubernetes.pb"));

/// Fields that Go declares as pointers to scalars, one full name a line.
const POINTER_SCALARS: &str = include_str!("../../proto/pointer_scalars.txt");

/// Every message type of the vendored packages, by full name
/// (`k8s.io.api.core.v1.Namespace`).
#[derive(Debug)]
pub(super) struct Schema {
    messages: HashMap<String, Message>,
}

/// One message type.
#[derive(Debug)]
pub(super) struct Message {
    /// Full name, without the leading dot.
    pub name: String,
    /// Fields by number.
    pub fields: HashMap<u32, Field>,
    /// Whether this is the synthetic entry type of a `map<K, V>` field.
    pub map_entry: bool,
}

/// One field of a message.
#[derive(Debug)]
pub(super) struct Field {
    /// The proto name, which Kubernetes makes its JSON name.
    pub name: String,
    /// What the field holds.
    pub kind: Kind,
    /// `repeated` (maps are repeated entry messages).
    pub repeated: bool,
    /// Go declares it as a pointer to a scalar: present means set, even to
    /// zero. Other zero scalars are Go's defaults, which JSON leaves out.
    pub pointer: bool,
}

/// A field's type (`FieldDescriptorProto.Type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Double,
    Float,
    Int64,
    Uint64,
    Int32,
    Fixed64,
    Fixed32,
    Bool,
    String,
    Bytes,
    Uint32,
    Enum,
    Sfixed32,
    Sfixed64,
    Sint32,
    Sint64,
    /// An embedded message, by full name without the leading dot.
    Message(String),
    /// Proto2 groups; Kubernetes has none, and decoding rejects them.
    Group,
}

impl Schema {
    /// The schema compiled into this binary.
    pub(super) fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let set = FileDescriptorSet::decode(DESCRIPTOR_SET)
                .expect("build.rs writes the descriptor set with protoc");
            Schema::new(set, POINTER_SCALARS)
        })
    }

    fn new(set: FileDescriptorSet, pointer_scalars: &str) -> Self {
        let pointers: HashSet<&str> = pointer_scalars
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let mut messages = HashMap::new();
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for message in file.message_type {
                add_message(&mut messages, &package, message, &pointers);
            }
        }
        Self { messages }
    }

    /// A message type by full name.
    pub(super) fn message(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }

    /// Every message type, for tests over the whole schema.
    #[cfg(test)]
    pub(super) fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.values()
    }
}

fn add_message(
    messages: &mut HashMap<String, Message>,
    scope: &str,
    message: DescriptorProto,
    pointers: &HashSet<&str>,
) {
    let name = format!("{scope}.{}", message.name.unwrap_or_default());
    for nested in message.nested_type {
        add_message(messages, &name, nested, pointers);
    }
    let fields = message
        .field
        .into_iter()
        .filter_map(|f| {
            let number = u32::try_from(f.number?).ok()?;
            let field_name = f.name.unwrap_or_default();
            let pointer = pointers.contains(format!("{name}.{field_name}").as_str());
            let kind = kind(
                f.r#type.unwrap_or_default(),
                f.type_name.unwrap_or_default(),
            );
            let field = Field {
                name: field_name,
                kind,
                repeated: f.label == Some(LABEL_REPEATED),
                pointer,
            };
            Some((number, field))
        })
        .collect();
    let map_entry = message.options.and_then(|o| o.map_entry).unwrap_or(false);
    messages.insert(
        name.clone(),
        Message {
            name,
            fields,
            map_entry,
        },
    );
}

const LABEL_REPEATED: i32 = 3;

fn kind(ty: i32, type_name: String) -> Kind {
    match ty {
        1 => Kind::Double,
        2 => Kind::Float,
        3 => Kind::Int64,
        4 => Kind::Uint64,
        5 => Kind::Int32,
        6 => Kind::Fixed64,
        7 => Kind::Fixed32,
        8 => Kind::Bool,
        9 => Kind::String,
        11 => Kind::Message(type_name.trim_start_matches('.').to_string()),
        12 => Kind::Bytes,
        13 => Kind::Uint32,
        14 => Kind::Enum,
        15 => Kind::Sfixed32,
        16 => Kind::Sfixed64,
        17 => Kind::Sint32,
        18 => Kind::Sint64,
        _ => Kind::Group,
    }
}

// The few parts of google/protobuf/descriptor.proto read here. prost skips
// the fields not declared.

#[derive(Clone, PartialEq, prost::Message)]
struct FileDescriptorSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FileDescriptorProto {
    #[prost(string, optional, tag = "2")]
    package: Option<String>,
    #[prost(message, repeated, tag = "4")]
    message_type: Vec<DescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    field: Vec<FieldDescriptorProto>,
    #[prost(message, repeated, tag = "3")]
    nested_type: Vec<DescriptorProto>,
    #[prost(message, optional, tag = "7")]
    options: Option<MessageOptions>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MessageOptions {
    #[prost(bool, optional, tag = "7")]
    map_entry: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FieldDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(int32, optional, tag = "3")]
    number: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    label: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    r#type: Option<i32>,
    #[prost(string, optional, tag = "6")]
    type_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pointer_scalar_names_a_scalar_field() {
        let schema = Schema::get();
        for line in POINTER_SCALARS.lines().filter(|l| !l.starts_with('#')) {
            let (message, field) = line.rsplit_once('.').unwrap();
            let message = schema.message(message).unwrap_or_else(|| panic!("{line}"));
            let field = message
                .fields
                .values()
                .find(|f| f.name == field)
                .unwrap_or_else(|| panic!("{line}"));
            assert!(field.pointer, "{line}");
            assert!(!field.repeated, "{line}");
        }
    }

    #[test]
    fn maps_are_repeated_entry_messages() {
        let schema = Schema::get();
        let config_map = schema.message("k8s.io.api.core.v1.ConfigMap").unwrap();
        let data = &config_map.fields[&2];
        assert_eq!(data.name, "data");
        assert!(data.repeated);
        let Kind::Message(entry) = &data.kind else {
            panic!("{:?}", data.kind)
        };
        assert!(schema.message(entry).unwrap().map_entry);
    }

    #[test]
    fn replicas_is_a_pointer_in_spec_but_not_in_status() {
        let schema = Schema::get();
        let spec = schema.message("k8s.io.api.apps.v1.DeploymentSpec").unwrap();
        let status = schema
            .message("k8s.io.api.apps.v1.DeploymentStatus")
            .unwrap();
        assert!(spec.fields[&1].pointer);
        assert!(!status.fields[&2].pointer);
    }
}
