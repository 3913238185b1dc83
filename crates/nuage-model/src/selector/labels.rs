//! Label selectors: the `?labelSelector=` string syntax, the
//! `metav1.LabelSelector` JSON form and the plain-map form of Services and
//! ReplicationControllers. Semantics follow k8s.io/apimachinery
//! `pkg/labels/selector.go` (v0.32): `!=` and `notin` match objects that lack
//! the key; requirements are kept sorted by key.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::parser::parse_requirements;
use super::validation::{validate_label_key, validate_label_value};
use super::SelectorError;

/// How a requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `k=v`
    Equals,
    /// `k==v`
    DoubleEquals,
    /// `k!=v`: also true when the key is absent.
    NotEquals,
    /// `k in (a,b)`
    In,
    /// `k notin (a,b)`: also true when the key is absent.
    NotIn,
    /// `k`
    Exists,
    /// `!k`
    DoesNotExist,
    /// `k>5` (integer comparison)
    GreaterThan,
    /// `k<5` (integer comparison)
    LessThan,
}

/// One term of a selector, e.g. `tier in (web,api)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub operator: Operator,
    /// The values: one for `=`/`!=`/`>`/`<`, at least one for `in`/`notin`,
    /// none for `exists`/`!`.
    pub values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement after checking the key, the values and their
    /// number against the operator, as `labels.NewRequirement` does.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        validate_label_key(key).map_err(|reason| SelectorError::InvalidKey {
            key: key.to_string(),
            reason,
        })?;
        let count_ok = match operator {
            Operator::In | Operator::NotIn => !values.is_empty(),
            Operator::Exists | Operator::DoesNotExist => values.is_empty(),
            _ => values.len() == 1,
        };
        if !count_ok {
            let reason = match operator {
                Operator::In | Operator::NotIn => {
                    "for 'in', 'notin' operators, values set can't be empty"
                }
                Operator::Exists | Operator::DoesNotExist => {
                    "values set must be empty for exists and does not exist"
                }
                Operator::GreaterThan | Operator::LessThan => {
                    "for 'Gt', 'Lt' operators, exactly one value is required"
                }
                _ => "exact-match compatibility requires one single value",
            };
            return Err(SelectorError::Requirement(format!("{key}: {reason}")));
        }
        for value in &values {
            if matches!(operator, Operator::GreaterThan | Operator::LessThan)
                && value.parse::<i64>().is_err()
            {
                return Err(SelectorError::Requirement(format!(
                    "{key}: for 'Gt', 'Lt' operators, the value must be an integer, not {value:?}"
                )));
            }
            validate_label_value(value).map_err(|reason| SelectorError::InvalidValue {
                key: key.to_string(),
                value: value.clone(),
                reason,
            })?;
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Whether labels looked up through `get` satisfy this requirement.
    fn matches_with<'a>(&self, get: &impl Fn(&str) -> Option<&'a str>) -> bool {
        let found = get(&self.key);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => found.is_some_and(has),
            Operator::NotEquals | Operator::NotIn => !found.is_some_and(has),
            Operator::Exists => found.is_some(),
            Operator::DoesNotExist => found.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(Ok(have)), [want]) =
                    (found.map(str::parse::<i64>), self.values.as_slice())
                else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in (",
            Operator::NotIn => " notin (",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        let mut values = self.values.clone();
        values.sort();
        write!(f, "{op}{}", values.join(","))?;
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// A nil `metav1.LabelSelector` selects nothing, unlike an empty one.
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object (the empty string).
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object (a null `metav1.LabelSelector`).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Builds a selector from requirements, sorting them by key.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// Parses the string syntax of `?labelSelector=` and `kubectl -l`.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        Ok(Self::from_requirements(parse_requirements(selector)?))
    }

    /// Reads a selector from JSON: a `metav1.LabelSelector`
    /// (`matchLabels`/`matchExpressions`; null selects nothing) or, for any
    /// other object, a plain map of label equalities (Service,
    /// ReplicationController).
    pub fn from_k8s(selector: &Value) -> Result<Self, SelectorError> {
        match selector {
            Value::Null => Ok(Self::nothing()),
            Value::Object(map)
                if !map.is_empty()
                    && map
                        .keys()
                        .all(|k| k == "matchLabels" || k == "matchExpressions") =>
            {
                Self::from_label_selector(selector)
            }
            _ => Self::from_map(selector),
        }
    }

    /// Reads a `metav1.LabelSelector`; null selects nothing and `{}` everything.
    pub fn from_label_selector(selector: &Value) -> Result<Self, SelectorError> {
        let map = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(map) => map,
            other => return Err(malformed("label selector", other)),
        };
        let mut requirements = Vec::new();
        match map.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(labels @ Value::Object(_)) => {
                requirements.extend(Self::from_map(labels)?.requirements)
            }
            Some(other) => return Err(malformed("matchLabels", other)),
        }
        let expressions = match map.get("matchExpressions") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(items)) => items.as_slice(),
            Some(other) => return Err(malformed("matchExpressions", other)),
        };
        for expr in expressions {
            let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
            let operator = match expr
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::UnknownOperator(other.to_string())),
            };
            let values = match expr.get("values") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(values)) => values
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| malformed("values", v))
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => return Err(malformed("values", other)),
            };
            requirements.push(Requirement::new(key, operator, values)?);
        }
        Ok(Self::from_requirements(requirements))
    }

    /// Reads a plain `{"key": "value"}` selector; `{}` and null select everything.
    pub fn from_map(selector: &Value) -> Result<Self, SelectorError> {
        let map = match selector {
            Value::Null => return Ok(Self::everything()),
            Value::Object(map) => map,
            other => return Err(malformed("label selector", other)),
        };
        let requirements = map
            .iter()
            .map(|(k, v)| match v {
                Value::String(v) => Requirement::new(k, Operator::Equals, vec![v.clone()]),
                other => Err(malformed("label value", other)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self::from_requirements(requirements))
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether this selector matches everything.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this selector matches nothing (a null `metav1.LabelSelector`).
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// The value `label` must have for a match, if the selector pins it
    /// (`k=v`, `k==v` or `k in (v)`).
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }

    /// Whether a label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    /// Non-string label values are ignored.
    pub fn matches_value(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches_with(&get))
    }
}

/// The canonical string form (requirements sorted by key, `in` values
/// sorted), as Kubernetes puts it in Scale `status.selector`. Like
/// Kubernetes, the selector that matches nothing prints as "".
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn malformed(what: &str, found: &Value) -> SelectorError {
    SelectorError::Malformed(format!("{what} must not be {found}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn equality_operators() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel("app=web").matches(&web));
        assert!(sel("app==web").matches(&web));
        assert!(!sel("app!=web").matches(&web));
        assert!(sel("app!=db").matches(&web));
        // `!=` matches objects lacking the key.
        assert!(sel("missing!=x").matches(&web));
        assert!(sel("app=web,tier=front").matches(&web));
        assert!(!sel("app=web,tier=back").matches(&web));
        assert!(sel("app=").matches(&labels(&[("app", "")])));
        assert!(!sel("app=").matches(&web));
    }

    #[test]
    fn set_operators() {
        let web = labels(&[("app", "web")]);
        assert!(sel("app in (web,db)").matches(&web));
        assert!(!sel("app in (db)").matches(&web));
        assert!(sel("app notin (db)").matches(&web));
        assert!(!sel("app notin (web, db)").matches(&web));
        assert!(sel("other notin (web)").matches(&web));
        assert!(!sel("other in (web)").matches(&web));
        assert!(sel("app").matches(&web));
        assert!(!sel("!app").matches(&web));
        assert!(sel("!other").matches(&web));
        assert!(sel("  app  in  ( web ) ,  ! other ").matches(&web));
    }

    #[test]
    fn integer_comparisons() {
        let l = labels(&[("n", "5"), ("s", "x")]);
        assert!(sel("n>4").matches(&l));
        assert!(!sel("n>5").matches(&l));
        assert!(sel("n<6").matches(&l));
        assert!(!sel("s<6").matches(&l));
        assert!(!sel("missing>1").matches(&l));
        assert!(LabelSelector::parse("n>x").is_err());
    }

    #[test]
    fn canonical_string_sorts_keys_and_values() {
        assert_eq!(
            sel("z=1,a in (c,b,b),!m,k,x!=2,q==3").to_string(),
            "a in (b,c),k,!m,q==3,x!=2,z=1"
        );
        assert_eq!(sel("").to_string(), "");
        assert_eq!(sel("a in ()").to_string(), "a in ()");
        assert_eq!(sel("a in (,x)").requirements()[0].values, ["", "x"]);
        assert_eq!(sel("a in (x,,y)").requirements()[0].values, ["", "x", "y"]);
        assert_eq!(sel("in in (in, notin)").to_string(), "in in (in,notin)");
    }

    #[test]
    fn empty_and_nothing() {
        assert!(sel("").is_everything());
        assert!(sel("  ").matches(&BTreeMap::new()));
        let nothing = LabelSelector::from_k8s(&Value::Null).unwrap();
        assert!(nothing.is_nothing());
        assert!(!nothing.matches(&BTreeMap::new()));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "app=web,",
            ",app",
            "app in web",
            "app in (web",
            "app in (a b)",
            "app==",
            "=web",
            "app=web=x",
            "!app=x",
            "app notin",
            "app=(x)",
            "a b",
            "app in (,,)",
            "x>",
        ] {
            if bad == "app==" {
                // An empty value is allowed for equality.
                assert!(LabelSelector::parse(bad).is_ok());
                continue;
            }
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(
            LabelSelector::parse("app=web,").unwrap_err().to_string(),
            "unable to parse requirement: found '', expected: identifier after ','"
        );
        assert_eq!(
            LabelSelector::parse("a b").unwrap_err().to_string(),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
    }

    #[test]
    fn validates_keys_and_values() {
        assert!(matches!(
            LabelSelector::parse("-bad=x"),
            Err(SelectorError::InvalidKey { .. })
        ));
        assert!(matches!(
            LabelSelector::parse("app=-bad"),
            Err(SelectorError::InvalidValue { .. })
        ));
        assert!(LabelSelector::parse("example.com/app=x").is_ok());
        assert!(LabelSelector::parse("Example.com/app=x").is_err());
        assert!(LabelSelector::parse(&format!("a={}", "v".repeat(64))).is_err());
    }

    #[test]
    fn from_metav1_label_selector() {
        let s = LabelSelector::from_k8s(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "zone", "operator": "Exists"},
            ]
        }))
        .unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env notin (prod),tier in (a,b),zone"
        );
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "a"), ("zone", "z")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(LabelSelector::from_k8s(&json!({})).unwrap().is_everything());
        assert!(LabelSelector::from_k8s(&json!({"matchLabels": {}}))
            .unwrap()
            .is_everything());
        assert_eq!(
            LabelSelector::from_k8s(
                &json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
            )
            .unwrap_err()
            .to_string(),
            "\"Gt\" is not a valid label selector operator"
        );
        assert!(LabelSelector::from_k8s(
            &json!({"matchExpressions": [{"key": "a", "operator": "In"}]})
        )
        .is_err());
        assert!(LabelSelector::from_k8s(
            &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
        )
        .is_err());
        assert!(LabelSelector::from_k8s(&json!({"matchLabels": "x"})).is_err());
        assert!(LabelSelector::from_k8s(&json!([1])).is_err());
    }

    #[test]
    fn from_plain_map() {
        let s = LabelSelector::from_k8s(&json!({"app": "web", "tier": "front"})).unwrap();
        assert_eq!(s.to_string(), "app=web,tier=front");
        assert_eq!(s.requires_exact_match("app"), Some("web"));
        assert!(LabelSelector::from_map(&json!({"app": 1})).is_err());
        assert!(LabelSelector::from_map(&json!({"bad key": "x"})).is_err());
    }

    #[test]
    fn matches_object_labels() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web", "n": 1}}});
        assert!(sel("app=web").matches_value(&pod));
        assert!(!sel("n").matches_value(&pod));
        assert!(sel("!app2").matches_value(&json!({"metadata": {}})));
        assert!(!sel("app").matches_value(&json!("not an object")));
    }

    #[test]
    fn odd_input_never_panics() {
        for s in [
            "é=ü",
            "a=é",
            "(",
            ")",
            "!",
            "!!a",
            "a!",
            "==",
            "a in ((",
            "\0",
            "a\u{1F600}=b",
            "a in (b)c",
        ] {
            let _ = LabelSelector::parse(s);
        }
    }
}
