//! A decoded message as the JSON Go's `encoding/json` would write for the
//! same Kubernetes object.
//!
//! The proto field names are the JSON names. What differs from a plain
//! field-by-field mapping is Go's:
//! - `omitempty`: Go writes every non-pointer scalar to protobuf, zero or
//!   not, but leaves zero ones out of JSON; pointer scalars are written only
//!   when set, so their zeros stay (`replicas: 0`). Structs always appear,
//!   even empty (`"strategy": {}`), as in kubectl's own JSON.
//! - types with their own JSON form: `IntOrString` (a number or a string),
//!   `Quantity` (a string), `Time` and `MicroTime` (RFC 3339, zero omitted
//!   rather than `null`), `RawExtension` and `FieldsV1` (embedded JSON),
//!   and `bytes` (base64).

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::schema::{Field, Kind, Message, Schema};
use super::wire::{malformed, Reader, Wire};
use crate::status::ApiResult;

/// Deeper nesting than any Kubernetes object has: garbage, not an object.
const MAX_DEPTH: usize = 32;

/// Converts `bytes`, an encoded `message`, to its JSON object.
pub(super) fn object(schema: &Schema, message: &Message, bytes: &[u8]) -> ApiResult<Value> {
    Converter { schema }.message(message, bytes, 0)
}

struct Converter<'s> {
    schema: &'s Schema,
}

impl Converter<'_> {
    fn message(&self, message: &Message, bytes: &[u8], depth: usize) -> ApiResult<Value> {
        if depth > MAX_DEPTH {
            return Err(malformed("messages nested too deeply"));
        }
        if let Some(special) = special(&message.name, bytes)? {
            return Ok(special);
        }
        let mut out = Map::new();
        for field in Reader::new(bytes) {
            let (number, wire) = field?;
            // Unknown fields are skipped, as every protobuf decoder does.
            let Some(field) = message.fields.get(&number) else {
                continue;
            };
            if !field.repeated {
                let value = self.value(message, field, wire, depth)?;
                // Last one wins for a repeated singular field, per protobuf.
                if is_go_zero(&value) && !field.pointer {
                    out.remove(&field.name);
                } else {
                    out.insert(field.name.clone(), value);
                }
            } else if let Some(entry) = self.map_entry(field) {
                let Wire::Bytes(bytes) = wire else {
                    return Err(mismatch(message, field, wire));
                };
                let (key, value) = self.entry(entry, bytes, depth + 1)?;
                let map = out
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(key, value);
                }
            } else {
                let items = self.items(message, field, wire, depth)?;
                let list = out
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.extend(items);
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// One value of `field` (a singular field or one element of a list).
    fn value(
        &self,
        message: &Message,
        field: &Field,
        wire: Wire,
        depth: usize,
    ) -> ApiResult<Value> {
        let value = match (&field.kind, wire) {
            (Kind::Message(name), Wire::Bytes(bytes)) => {
                let nested = self.schema.message(name).ok_or_else(|| {
                    malformed(&format!(
                        "{}.{} has unknown type {name}",
                        message.name, field.name
                    ))
                })?;
                return self.message(nested, bytes, depth + 1);
            }
            (Kind::String, Wire::Bytes(b)) => {
                // Go keeps invalid UTF-8 in strings; its JSON encoder writes
                // U+FFFD for it, and so does this.
                Value::String(String::from_utf8_lossy(b).into_owned())
            }
            (Kind::Bytes, Wire::Bytes(b)) => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            // Truncating casts are how protobuf defines the narrower types.
            (Kind::Int32 | Kind::Enum, Wire::Varint(v)) => Value::from(v as i32),
            (Kind::Int64, Wire::Varint(v)) => Value::from(v as i64),
            (Kind::Uint32, Wire::Varint(v)) => Value::from(v as u32),
            (Kind::Uint64, Wire::Varint(v)) => Value::from(v),
            (Kind::Sint32, Wire::Varint(v)) => Value::from(((v >> 1) as i32) ^ -((v & 1) as i32)),
            (Kind::Sint64, Wire::Varint(v)) => Value::from(((v >> 1) as i64) ^ -((v & 1) as i64)),
            (Kind::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
            (Kind::Fixed32, Wire::Fixed32(v)) => Value::from(v),
            (Kind::Sfixed32, Wire::Fixed32(v)) => Value::from(v as i32),
            (Kind::Fixed64, Wire::Fixed64(v)) => Value::from(v),
            (Kind::Sfixed64, Wire::Fixed64(v)) => Value::from(v as i64),
            (Kind::Float, Wire::Fixed32(v)) => float(f64::from(f32::from_bits(v)))?,
            (Kind::Double, Wire::Fixed64(v)) => float(f64::from_bits(v))?,
            _ => return Err(mismatch(message, field, wire)),
        };
        Ok(value)
    }

    /// The elements of a repeated field carried by one wire value: one, or
    /// several when numbers are packed into a length-delimited value.
    fn items(
        &self,
        message: &Message,
        field: &Field,
        wire: Wire,
        depth: usize,
    ) -> ApiResult<Vec<Value>> {
        let packed = match (&field.kind, wire) {
            (Kind::String | Kind::Bytes | Kind::Message(_), _)
            | (_, Wire::Varint(_) | Wire::Fixed32(_) | Wire::Fixed64(_)) => None,
            (_, Wire::Bytes(bytes)) => Some(bytes),
        };
        let Some(bytes) = packed else {
            return Ok(vec![self.value(message, field, wire, depth)?]);
        };
        let mut reader = Reader::new(bytes);
        let mut items = Vec::new();
        while !reader.is_empty() {
            let element = match field.kind {
                Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => Wire::Fixed32(reader.fixed32()?),
                Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => Wire::Fixed64(reader.fixed64()?),
                _ => Wire::Varint(reader.varint()?),
            };
            items.push(self.value(message, field, element, depth)?);
        }
        Ok(items)
    }

    /// The entry type of `field` if it is a `map<K, V>`.
    fn map_entry(&self, field: &Field) -> Option<&Message> {
        let Kind::Message(name) = &field.kind else {
            return None;
        };
        self.schema.message(name).filter(|m| m.map_entry)
    }

    /// One `map<K, V>` entry: key 1, value 2, each defaulting to its zero.
    fn entry(&self, entry: &Message, bytes: &[u8], depth: usize) -> ApiResult<(String, Value)> {
        let (Some(key_field), Some(value_field)) = (entry.fields.get(&1), entry.fields.get(&2))
        else {
            return Err(malformed(&format!("{} is not a map entry", entry.name)));
        };
        let mut key = None;
        let mut value = None;
        for field in Reader::new(bytes) {
            match field? {
                (1, wire) => key = Some(self.value(entry, key_field, wire, depth)?),
                (2, wire) => value = Some(self.value(entry, value_field, wire, depth)?),
                _ => {}
            }
        }
        let key = match key {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let value = match value {
            Some(value) => value,
            None => self.zero(entry, value_field, depth)?,
        };
        Ok((key, value))
    }

    /// The value an absent field decodes to.
    fn zero(&self, message: &Message, field: &Field, depth: usize) -> ApiResult<Value> {
        let wire = match field.kind {
            Kind::String | Kind::Bytes | Kind::Message(_) => Wire::Bytes(&[]),
            Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => Wire::Fixed32(0),
            Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => Wire::Fixed64(0),
            _ => Wire::Varint(0),
        };
        self.value(message, field, wire, depth)
    }
}

/// Whether Go's `omitempty` leaves `value` out (zero-valued scalars), and
/// zero times, which Go writes as `null`.
fn is_go_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// The JSON of the apimachinery types that marshal themselves, or `None`
/// for an ordinary message.
fn special(name: &str, bytes: &[u8]) -> ApiResult<Option<Value>> {
    let value = match name {
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => {
            let fields = Fields::read(bytes)?;
            if fields.varint(1)? == 1 {
                Value::String(fields.string(3)?)
            } else {
                Value::from(fields.varint(2)? as i32)
            }
        }
        "k8s.io.apimachinery.pkg.api.resource.Quantity"
        | "k8s.io.apimachinery.pkg.api.resource.QuantityValue" => {
            let quantity = Fields::read(bytes)?.string(1)?;
            Value::String(if quantity.is_empty() {
                "0".into()
            } else {
                quantity
            })
        }
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time" => time(bytes, false)?,
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => time(bytes, true)?,
        "k8s.io.apimachinery.pkg.runtime.RawExtension"
        | "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => {
            let fields = Fields::read(bytes)?;
            let raw = fields.bytes(1)?;
            if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(raw).map_err(|e| {
                    malformed(&format!(
                        "{name} does not hold JSON ({e}); nested protobuf is not supported"
                    ))
                })?
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// `metav1.Time` (whole seconds) or `metav1.MicroTime` (microseconds) in
/// RFC 3339, UTC; the zero time is `null`.
fn time(bytes: &[u8], micro: bool) -> ApiResult<Value> {
    let fields = Fields::read(bytes)?;
    let seconds = fields.varint(1)? as i64;
    let nanos = fields.varint(2)? as i32;
    if seconds == 0 && nanos == 0 {
        return Ok(Value::Null);
    }
    let at = time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| malformed(&format!("timestamp {seconds}: {e}")))?;
    let text = if micro {
        let micros = nanos.clamp(0, 999_999_999) / 1000;
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        let date = at
            .format(&format)
            .map_err(|e| malformed(&format!("timestamp {seconds}: {e}")))?;
        format!("{date}.{micros:06}Z")
    } else {
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        at.format(&format)
            .map_err(|e| malformed(&format!("timestamp {seconds}: {e}")))?
    };
    Ok(Value::String(text))
}

fn float(f: f64) -> ApiResult<Value> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| malformed(&format!("{f} has no JSON form")))
}

fn mismatch(message: &Message, field: &Field, wire: Wire) -> crate::status::ApiError {
    malformed(&format!(
        "{}.{} is {:?} but came as a {} value",
        message.name,
        field.name,
        field.kind,
        wire.type_name()
    ))
}

/// The last value of each field of a small message, for the special types.
struct Fields<'a>(Vec<(u32, Wire<'a>)>);

impl<'a> Fields<'a> {
    fn read(bytes: &'a [u8]) -> ApiResult<Self> {
        Reader::new(bytes).collect::<ApiResult<_>>().map(Self)
    }

    fn last(&self, number: u32) -> Option<Wire<'a>> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| *n == number)
            .map(|(_, w)| *w)
    }

    fn varint(&self, number: u32) -> ApiResult<u64> {
        match self.last(number) {
            None => Ok(0),
            Some(Wire::Varint(v)) => Ok(v),
            Some(other) => Err(malformed(&format!(
                "field {number} came as a {} value",
                other.type_name()
            ))),
        }
    }

    fn bytes(&self, number: u32) -> ApiResult<&'a [u8]> {
        match self.last(number) {
            None => Ok(&[]),
            Some(Wire::Bytes(b)) => Ok(b),
            Some(other) => Err(malformed(&format!(
                "field {number} came as a {} value",
                other.type_name()
            ))),
        }
    }

    fn string(&self, number: u32) -> ApiResult<String> {
        Ok(String::from_utf8_lossy(self.bytes(number)?).into_owned())
    }
}
