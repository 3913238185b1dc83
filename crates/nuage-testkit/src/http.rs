//! A small HTTPS client for tests and benchmarks that need more requests
//! than running `kubectl` per request allows: one HTTP/1.1 connection,
//! trusting the server's CA, sending its bearer token.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One connection to the API server.
pub struct ApiClient {
    sender: SendRequest<Full<Bytes>>,
    token: String,
    host: String,
}

/// A response: status code and body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (panics if it is not: a test helper).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl ApiClient {
    /// Connects to `api` (`https://127.0.0.1:PORT`) trusting `DIR/ca.crt`
    /// and authenticating with `DIR/admin-token`.
    pub async fn connect(api: &str, dir: &Path) -> std::io::Result<Self> {
        let ca = std::fs::read(dir.join("ca.crt"))?;
        let token = std::fs::read_to_string(dir.join("admin-token"))?
            .trim()
            .to_string();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots
                .add(cert?)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let host = api.trim_start_matches("https://").to_string();
        let tcp = TcpStream::connect(&host).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("localhost")
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            token,
            host,
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> std::io::Result<Reply> {
        self.request(method, path, content_type, "application/json", body.into())
            .await
    }

    /// Sends a body-less request with its own `Accept` header.
    pub async fn send_with_accept(
        &mut self,
        method: &str,
        path: &str,
        accept: &str,
    ) -> std::io::Result<Reply> {
        self.request(method, path, "application/json", accept, Bytes::new())
            .await
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        accept: &str,
        body: Bytes,
    ) -> std::io::Result<Reply> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .header("accept", accept)
            .body(Full::new(body))
            .map_err(std::io::Error::other)?;
        self.sender.ready().await.map_err(std::io::Error::other)?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// GET `path`.
    pub async fn get(&mut self, path: &str) -> std::io::Result<Reply> {
        self.send("GET", path, "application/json", Bytes::new())
            .await
    }

    /// POST a JSON body.
    pub async fn post(&mut self, path: &str, body: &serde_json::Value) -> std::io::Result<Reply> {
        self.send("POST", path, "application/json", body.to_string())
            .await
    }
}
