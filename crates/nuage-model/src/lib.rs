//! The object model: which resources exist, how objects of each are decoded,
//! defaulted and validated, and how selectors and patches apply to them.
//!
//! Objects travel as JSON (`serde_json::Value`); each write is checked against
//! the `k8s-openapi` type of its kind. Owns no storage (nuage-store) and no
//! HTTP (nuage-api).

pub mod decode;
pub mod defaults;
pub mod duplicates;
pub mod hpa;
pub mod meta;
pub mod patch;
pub mod quantity;
pub mod registry;
pub mod selector;
pub mod validate;
