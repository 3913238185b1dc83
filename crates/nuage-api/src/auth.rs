//! Authentication of API requests by bearer token.
//!
//! For now the server knows one kind of credential: the admin token it
//! writes into the kubeconfig. Users, groups and policies come with
//! nuage-iam; this module is where their authenticator will plug in.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::status::ApiError;
use crate::ApiState;

/// The bearer tokens the server accepts.
#[derive(Default)]
pub struct Tokens {
    valid: RwLock<HashSet<String>>,
}

impl Tokens {
    /// Accepts `token` from now on.
    pub fn add(&self, token: &str) {
        if let Ok(mut v) = self.valid.write() {
            v.insert(token.to_string());
        }
    }

    /// Whether `token` is accepted.
    pub fn accepts(&self, token: &str) -> bool {
        self.valid.read().is_ok_and(|v| v.contains(token))
    }
}

/// A random token of 32 URL-safe characters.
pub fn new_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware: 401 unless the request carries an accepted bearer token.
pub async fn require_token(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    match bearer(&req) {
        Some(t) if state.tokens.accepts(t) => next.run(req).await,
        _ => ApiError::unauthorized().into_response(),
    }
}
