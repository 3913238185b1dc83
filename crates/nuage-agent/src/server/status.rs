//! Errors answered as Kubernetes `Status` objects: the API server relays
//! them as they are, and kubectl prints their message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::LookupError;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// HTTP status code.
    pub code: u16,
    /// `reason` (`NotFound`, `BadRequest`, ...).
    pub reason: &'static str,
    /// What went wrong, for the user.
    pub message: String,
}

impl Status {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: message.into(),
        }
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: 500,
            reason: "InternalError",
            message: message.into(),
        }
    }

    /// The `Status` object.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

impl From<LookupError> for Status {
    fn from(e: LookupError) -> Self {
        match &e {
            LookupError::PodNotFound { .. } => Self::not_found(e.to_string()),
            LookupError::ContainerNotFound { .. }
            | LookupError::NotReady(_)
            | LookupError::ExecFailed { .. } => Self::bad_request(e.to_string()),
            LookupError::Internal(_) => Self::internal(e.to_string()),
        }
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, self.to_json().to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}
