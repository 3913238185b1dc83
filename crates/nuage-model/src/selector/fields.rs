//! Field selectors (`?fieldSelector=metadata.name=x,status.phase!=Running`),
//! following k8s.io/apimachinery `pkg/fields/selector.go` (v0.32): terms are
//! `field=value`, `field==value` or `field!=value`, joined by commas; `\`
//! escapes `\`, `,` and `=` in values. Which fields a kind supports is the API
//! server's decision (see [`FieldSelector::fields`]).

use std::fmt;

use serde_json::Value;

use super::SelectorError;

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The dotted field path, e.g. `spec.nodeName`.
    pub field: String,
    /// True for `!=`.
    pub negated: bool,
    /// The unescaped value.
    pub value: String,
}

/// A parsed field selector: the AND of its terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object (the empty string).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the string syntax; empty terms (`a=b,,c=d`) are skipped.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(selector);
        // Kubernetes sorts the raw terms before parsing them.
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let (field, op, raw) = split_term(term).ok_or_else(|| SelectorError::FieldTerm {
                selector: selector.to_string(),
                term: term.to_string(),
            })?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                negated: op == "!=",
                value: unescape_value(raw)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// The terms, in parse order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether this selector matches everything.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The distinct field names used, sorted, so the API server can reject
    /// unsupported ones.
    pub fn fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = self.requirements.iter().map(|r| r.field.as_str()).collect();
        fields.sort_unstable();
        fields.dedup();
        fields
    }

    /// The value `field` must have for a match, if a `=` term pins it (used
    /// to turn `metadata.name=x` into a single get).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| !r.negated && r.field == field)
            .map(|r| r.value.as_str())
    }

    /// Whether the fields read through `get` satisfy every term; a field
    /// `get` does not know reads as "" (so `spec.nodeName=` matches
    /// unscheduled pods).
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let have = get(&r.field).unwrap_or_default();
            (have == r.value) != r.negated
        })
    }

    /// [`matches`](Self::matches) reading fields of a JSON object with
    /// [`field_value`]. Absent fields read as "", which differs from
    /// Kubernetes for a defaulted boolean such as a node's
    /// `spec.unschedulable` (Kubernetes reads "false"): callers with such
    /// fields should pass their own lookup to `matches`.
    pub fn matches_value(&self, object: &Value) -> bool {
        self.matches(|path| field_value(object, path))
    }
}

/// The canonical string form, values escaped.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if r.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", r.field, escape_value(&r.value))?;
        }
        Ok(())
    }
}

/// Reads a dotted path (`metadata.name`, `involvedObject.uid`) from a JSON
/// object as a string: strings as is, booleans and numbers printed; absent
/// fields, nulls, objects and arrays give `None`.
pub fn field_value(object: &Value, path: &str) -> Option<String> {
    let mut current = object;
    for part in path.split('.') {
        current = current.as_object()?.get(part)?;
    }
    match current {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Escapes `\`, `,` and `=` in a value.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_value`]; an unescaped `,` or `=`, or a `\` before any
/// other character, is an error.
pub fn unescape_value(value: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(SelectorError::InvalidEscape(format!("\\{e}"))),
                None => return Err(SelectorError::InvalidEscape("\\".to_string())),
            },
            // Kubernetes prints the rune as a number (`%v` of a rune).
            ',' | '=' => return Err(SelectorError::UnescapedRune(u32::from(c))),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Splits on commas not preceded by a backslash.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at its first operator, trying `!=`, `==` then `=` at each
/// position.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_terms_sorted() {
        let s = FieldSelector::parse("status.phase!=Running,metadata.name==web").unwrap();
        assert_eq!(s.to_string(), "metadata.name=web,status.phase!=Running");
        assert_eq!(s.fields(), ["metadata.name", "status.phase"]);
        assert_eq!(s.requires_exact_match("metadata.name"), Some("web"));
        assert_eq!(s.requires_exact_match("status.phase"), None);
    }

    #[test]
    fn empty_selects_everything() {
        for s in ["", ",", ",,"] {
            let s = FieldSelector::parse(s).unwrap();
            assert!(s.is_everything());
            assert!(s.matches(|_| None));
        }
    }

    #[test]
    fn escapes_round_trip() {
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(s.requirements()[0].value, r"a,b=c\d");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(unescape_value(&escape_value("x=,\\")).unwrap(), "x=,\\");
    }

    #[test]
    fn rejects_bad_terms_and_escapes() {
        assert_eq!(
            FieldSelector::parse("a=b,novalue").unwrap_err().to_string(),
            "invalid selector: 'a=b,novalue'; can't understand 'novalue'"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err().to_string(),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn operator_found_at_first_position() {
        // "a!==b" splits at "!=", leaving "=b", whose "=" is unescaped.
        assert!(FieldSelector::parse("a!==b").is_err());
        let s = FieldSelector::parse("a==").unwrap();
        assert_eq!(s.requirements()[0].value, "");
        let s = FieldSelector::parse("=x").unwrap();
        assert_eq!(s.requirements()[0].field, "");
    }

    #[test]
    fn missing_field_reads_as_empty() {
        let pending =
            json!({"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending"}});
        let bound = json!({"metadata": {"name": "q"}, "spec": {"nodeName": "n1"}});
        let unscheduled = FieldSelector::parse("spec.nodeName=").unwrap();
        assert!(unscheduled.matches_value(&pending));
        assert!(!unscheduled.matches_value(&bound));
        let on_n1 = FieldSelector::parse("spec.nodeName=n1").unwrap();
        assert!(on_n1.matches_value(&bound));
        let not_running = FieldSelector::parse("status.phase!=Running").unwrap();
        assert!(not_running.matches_value(&pending));
        assert!(not_running.matches_value(&bound));
    }

    #[test]
    fn field_values() {
        let node = json!({"spec": {"unschedulable": true, "n": 3, "o": {}}, "involvedObject": {"uid": "u"}});
        assert_eq!(
            field_value(&node, "spec.unschedulable").as_deref(),
            Some("true")
        );
        assert_eq!(field_value(&node, "spec.n").as_deref(), Some("3"));
        assert_eq!(field_value(&node, "spec.o"), None);
        assert_eq!(field_value(&node, "spec.unschedulable.x"), None);
        assert_eq!(
            field_value(&node, "involvedObject.uid").as_deref(),
            Some("u")
        );
        assert_eq!(field_value(&json!("x"), "a"), None);
        let s = FieldSelector::parse("spec.unschedulable=true").unwrap();
        assert!(s.matches_value(&node));
    }

    #[test]
    fn handles_multibyte_input() {
        let s = FieldSelector::parse("métadata.nâme=välue,x!=ü").unwrap();
        assert_eq!(s.requirements()[0].field, "métadata.nâme");
        assert_eq!(s.requirements()[1].value, "ü");
    }
}
