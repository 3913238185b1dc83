//! `httpGet` probes: one GET on a fresh connection (no keep-alive, as the
//! kubelet), healthy for a status in 200..400. Redirects are followed on
//! the same host only (at most 10); a redirect elsewhere counts as the
//! 3xx it is. HTTPS skips certificate verification, like the kubelet.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderName, HeaderValue, ACCEPT, CONNECTION, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::HTTPGetAction;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{dial_error, host_port, resolve_port, ProbeResult, ProbeTarget};

/// How much of a body is read before the connection is dropped.
const MAX_BODY: usize = 10 * 1024;
const MAX_REDIRECTS: usize = 10;

pub(super) async fn probe(
    action: &HTTPGetAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeResult {
    let port = match resolve_port(&action.port, target.container) {
        Ok(port) => port,
        Err(why) => return ProbeResult::Failure(why),
    };
    let tls = match action.scheme.as_deref().unwrap_or("HTTP") {
        s if s.eq_ignore_ascii_case("http") => false,
        s if s.eq_ignore_ascii_case("https") => true,
        other => return ProbeResult::Failure(format!("unsupported scheme {other:?}")),
    };
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(host) => host.to_string(),
        None => target.pod_ip.to_string(),
    };
    let mut path = action.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let authority = host_port(&host, port);
    let url = format!("{}://{authority}{path}", if tls { "https" } else { "http" });
    let endpoint = Endpoint {
        host,
        port,
        authority,
        tls,
        headers: headers(action),
    };
    match tokio::time::timeout(timeout, endpoint.get_following(path)).await {
        Ok(Ok(status)) if (200..400).contains(&status.as_u16()) => ProbeResult::Success,
        Ok(Ok(status)) => ProbeResult::Failure(format!(
            "HTTP probe failed with statuscode: {}",
            status.as_u16()
        )),
        Ok(Err(why)) => ProbeResult::Failure(format!("Get \"{url}\": {why}")),
        Err(_) => ProbeResult::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

/// Where a probe's requests go.
struct Endpoint {
    host: String,
    port: u16,
    /// `host:port` (the default `Host` header and redirect check).
    authority: String,
    tls: bool,
    /// The probe's `httpHeaders` (names lower-cased, invalid ones dropped).
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Endpoint {
    /// GET `path`, following same-host redirects; the final status.
    async fn get_following(&self, mut path: String) -> Result<StatusCode, String> {
        for _ in 0..=MAX_REDIRECTS {
            let (status, location) = self.get(&path).await?;
            match location.and_then(|l| self.same_host_path(&l)) {
                Some(next) if status.is_redirection() => path = next,
                _ => return Ok(status),
            }
        }
        Err(format!("stopped after {MAX_REDIRECTS} redirects"))
    }

    /// The path to follow for `location`, if it stays on this host.
    fn same_host_path(&self, location: &str) -> Option<String> {
        if location.starts_with('/') && !location.starts_with("//") {
            return Some(location.to_string());
        }
        let uri: Uri = location.parse().ok()?;
        let scheme = if self.tls { "https" } else { "http" };
        let same = uri.scheme_str() == Some(scheme)
            && uri.authority().is_some_and(|a| {
                a.host() == self.host.trim_matches(['[', ']'])
                    && a.port_u16().unwrap_or(if self.tls { 443 } else { 80 }) == self.port
            });
        same.then(|| uri.path_and_query().map_or("/".into(), |p| p.to_string()))
    }

    /// One GET on a new connection: its status and `Location`.
    async fn get(&self, path: &str) -> Result<(StatusCode, Option<String>), String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| dial_error(&self.authority, &e))?;
        let _ = tcp.set_nodelay(true);
        let request = self.request(path)?;
        if self.tls {
            let name = rustls::pki_types::ServerName::try_from(
                self.host.trim_matches(['[', ']']).to_string(),
            )
            .map_err(|e| format!("invalid host {:?}: {e}", self.host))?;
            let stream = tokio_rustls::TlsConnector::from(insecure_tls())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            exchange(stream, request).await
        } else {
            exchange(tcp, request).await
        }
    }

    fn request(&self, path: &str) -> Result<Request<Empty<Bytes>>, String> {
        let mut request = Request::get(path)
            .body(Empty::new())
            .map_err(|e| format!("invalid path {path:?}: {e}"))?;
        let h = request.headers_mut();
        let authority = HeaderValue::from_str(&self.authority).map_err(|e| e.to_string())?;
        h.insert(HOST, authority);
        h.insert(USER_AGENT, HeaderValue::from_static("kube-probe/1.32"));
        h.insert(ACCEPT, HeaderValue::from_static("*/*"));
        // The probe's own headers replace the defaults of the same name.
        for (name, _) in &self.headers {
            h.remove(name);
        }
        for (name, value) in &self.headers {
            h.append(name.clone(), value.clone());
        }
        h.insert(CONNECTION, HeaderValue::from_static("close"));
        Ok(request)
    }
}

fn headers(action: &HTTPGetAction) -> Vec<(HeaderName, HeaderValue)> {
    action
        .http_headers
        .iter()
        .flatten()
        .filter_map(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
            let value = HeaderValue::from_str(&h.value).ok()?;
            Some((name, value))
        })
        .collect()
}

/// Sends `request` over `io` with HTTP/1.1 and reads at most [`MAX_BODY`]
/// of the answer.
async fn exchange<S>(
    io: S,
    request: Request<Empty<Bytes>>,
) -> Result<(StatusCode, Option<String>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    // The connection task ends when the response is dropped with `sender`.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    let result = match response {
        Ok(response) => {
            let status = response.status();
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            let mut body = response.into_body();
            let mut read = 0;
            while read < MAX_BODY {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                    _ => break,
                }
            }
            Ok((status, location))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

/// A TLS client that accepts any server certificate: probes check that the
/// container answers, not who it is (the kubelet sets
/// `InsecureSkipVerify` too).
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    // Signatures are still checked: the handshake must be with whoever holds
    // the certificate's key, even if nobody vouches for that certificate.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
