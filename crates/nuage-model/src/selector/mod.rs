//! Label and field selectors, and the name and label syntax checks they share
//! with object validation.

mod fields;
mod labels;
mod parser;
mod validation;

pub use fields::{escape_value, field_value, unescape_value, FieldRequirement, FieldSelector};
pub use labels::{LabelSelector, Operator, Requirement};
pub use validation::{
    validate_dns1123_label, validate_dns1123_subdomain, validate_label_key, validate_label_value,
    DNS1123_LABEL_MAX_LENGTH, DNS1123_SUBDOMAIN_MAX_LENGTH, LABEL_MAX_LENGTH,
};

/// Why a label or field selector was rejected; the API server answers 400
/// with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector string does not follow the grammar.
    #[error("unable to parse requirement: {0}")]
    Syntax(String),
    /// A requirement has the wrong number or kind of values.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// A label key is not a qualified name.
    #[error("unable to parse requirement: invalid label key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A label value is not a valid label value.
    #[error(
        "unable to parse requirement: invalid label value {value:?} for key {key:?}: {reason}"
    )]
    InvalidValue {
        /// The key the value belongs to.
        key: String,
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `matchExpressions` operator other than In, NotIn, Exists, DoesNotExist.
    #[error("{0:?} is not a valid label selector operator")]
    UnknownOperator(String),
    /// A JSON selector of the wrong shape.
    #[error("invalid label selector: {0}")]
    Malformed(String),
    /// A field selector term without an operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector.
        selector: String,
        /// The term that has no operator.
        term: String,
    },
    /// A `\` before anything but `\`, `,` or `=` in a field selector value.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// A bare `,` or `=` in a field selector value, given as its code point.
    #[error("invalid field selector: unescaped character in value: {0}")]
    UnescapedRune(u32),
}
