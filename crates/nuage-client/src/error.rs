//! Client errors: the server's `Status` (code, reason, message) or a
//! transport failure.

use hyper::StatusCode;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error `Status`.
    #[error("{code} {reason}: {message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// `Status.reason` (`NotFound`, `Conflict`, …).
        reason: String,
        /// `Status.message`.
        message: String,
    },
    /// The connection failed or broke.
    #[error("request failed: {0}")]
    Transport(String),
    /// The answer was not the JSON expected.
    #[error("bad answer: {0}")]
    Decode(#[from] serde_json::Error),
    /// The client is misconfigured.
    #[error("client configuration: {0}")]
    Config(String),
}

impl Error {
    /// 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { code: 404, .. })
    }

    /// 409 (a stale resourceVersion, or the object exists).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Api { code: 409, .. })
    }

    /// 410: the watch's revision was compacted; relist.
    pub fn is_gone(&self) -> bool {
        matches!(self, Error::Api { code: 410, .. })
    }

    pub(crate) fn from_status(status: StatusCode, body: &[u8]) -> Self {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        Error::Api {
            code: status.as_u16(),
            reason: v["reason"].as_str().unwrap_or_default().to_string(),
            message: v["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
        }
    }
}

impl From<hyper::Error> for Error {
    fn from(e: hyper::Error) -> Self {
        Error::Transport(e.to_string())
    }
}

impl From<hyper_util::client::legacy::Error> for Error {
    fn from(e: hyper_util::client::legacy::Error) -> Self {
        use std::error::Error as _;
        let mut msg = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        Error::Transport(msg)
    }
}
