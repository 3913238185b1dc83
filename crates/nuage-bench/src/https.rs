//! HTTP/1.1 connections to the API server over TLS, trusting the server's
//! CA (`DIR/ca.crt`) and sending its admin token (`DIR/admin-token`).

use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One HTTP/1.1 connection.
pub type Conn = SendRequest<Full<Bytes>>;

/// What every connection to one API server needs.
#[derive(Clone)]
pub struct Api {
    /// `127.0.0.1:PORT`.
    pub host: String,
    token: String,
    tls: TlsConnector,
}

impl Api {
    /// Reads the CA and the token from the server's data dir.
    pub fn from_dir(api: &str, dir: &Path) -> Result<Self, String> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| format!("{}/{name}: {e}", dir.display()))
        };
        let ca = read("ca.crt")?;
        let token = String::from_utf8_lossy(&read("admin-token")?)
            .trim()
            .to_string();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            host: api.trim_start_matches("https://").to_string(),
            token,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Opens a new TLS connection.
    pub async fn connect(&self) -> Result<Conn, String> {
        let tcp = TcpStream::connect(&self.host)
            .await
            .map_err(|e| format!("connect {}: {e}", self.host))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let name =
            rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// A request with the token; `body` is JSON.
    pub fn request(&self, method: &str, path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a well-formed request")
    }
}

/// Sends `req` and reads the whole answer: status and body.
pub async fn send(conn: &mut Conn, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
    conn.ready().await.map_err(|e| e.to_string())?;
    let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}
