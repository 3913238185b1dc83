//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl sends these for `create namespace|configmap|secret|deployment`.
//! Decoding them needs the generated Kubernetes protobuf types; until that
//! lands, such bodies get a clear 415 and change nothing.

use serde_json::Value;

use crate::status::{ApiError, ApiResult};

/// Decodes a protobuf-encoded object into its JSON form.
pub fn decode(_body: &[u8]) -> ApiResult<Value> {
    Err(ApiError::unsupported_media_type(
        "application/vnd.kubernetes.protobuf",
    ))
}
