//! TLS to node agents: the agent's certificate is self-signed, so instead
//! of a CA the API server trusts exactly the certificate whose SHA-256 the
//! agent published on its Node ([`CERTIFICATE_ANNOTATION`]), as a pin.
//!
//! The pin replaces chain and name checks only: the handshake signatures
//! are still verified with the certificate's key (ring's algorithms), so a
//! peer that merely copied the certificate cannot finish the handshake.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The Node annotation holding the SHA-256 (hex) of the DER of the agent's
/// serving certificate; the agent sets it when it registers
/// (`nuage_agent::server::tls::CERTIFICATE_ANNOTATION`).
pub const CERTIFICATE_ANNOTATION: &str = "nuage.io/agent-certificate-sha256";

/// Parses a SHA-256 written as 64 hex digits (either case).
pub fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a certificate was refused: it is not the pinned one. Carried inside
/// rustls' `CertificateError::Other`, so the proxy can say which one came.
#[derive(Debug, thiserror::Error)]
#[error("the certificate presented has SHA-256 {presented}, not the pinned {pinned}")]
pub struct FingerprintMismatch {
    /// The presented certificate's SHA-256 (hex).
    pub presented: String,
    /// The pin (hex).
    pub pinned: String,
}

/// A server certificate verifier that accepts one certificate: the one
/// whose DER has the pinned SHA-256.
#[derive(Debug)]
pub struct PinnedCertificate {
    sha256: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertificate {
    /// A verifier for the certificate with this SHA-256.
    pub fn new(sha256: [u8; 32]) -> Self {
        Self {
            sha256,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The pin says everything names, chains and dates would: this is
        // the agent that registered the Node.
        let presented: [u8; 32] = Sha256::digest(end_entity).into();
        if presented == self.sha256 {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = FingerprintMismatch {
            presented: hex(&presented),
            pinned: hex(&self.sha256),
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(mismatch)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client configuration trusting only the certificate with SHA-256
/// `pin`, speaking HTTP/1.1 (exec is an HTTP/1.1 upgrade).
pub fn client_config(pin: [u8; 32]) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCertificate::new(pin)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The mismatch inside a handshake error, if that is why it failed.
pub fn fingerprint_mismatch(err: &std::io::Error) -> Option<&FingerprintMismatch> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<FingerprintMismatch>()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;

    /// A self-signed certificate and its key, as the agent makes them.
    fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["agent".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    fn sha256(der: &[u8]) -> [u8; 32] {
        Sha256::digest(der).into()
    }

    /// Presents `cert` but signs with `key`, matching or not.
    #[derive(Debug)]
    struct Presents(Arc<CertifiedKey>);
    impl ResolvesServerCert for Presents {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
    }

    fn server(
        cert: CertificateDer<'static>,
        key: &PrivateKeyDer<'static>,
    ) -> rustls::ServerConnection {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signer = provider
            .key_provider
            .load_private_key(key.clone_key())
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Presents(Arc::new(CertifiedKey::new(
                vec![cert],
                signer,
            )))));
        rustls::ServerConnection::new(Arc::new(config)).unwrap()
    }

    /// A whole handshake in memory (no sockets): the client's verdict.
    fn handshake(pin: [u8; 32], mut server: rustls::ServerConnection) -> Result<(), rustls::Error> {
        let name = ServerName::try_from("10.0.0.7").unwrap();
        let mut client = rustls::ClientConnection::new(client_config(pin)?, name)?;
        for _ in 0..10 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            let mut rd = wire.as_slice();
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
            }
            // The server's own failures show up on the client as alerts.
            let _ = server.process_new_packets();
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            let mut rd = wire.as_slice();
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
            }
            client.process_new_packets()?;
            if !client.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn the_pinned_certificate_is_accepted() {
        let (cert, key) = self_signed();
        let pin = sha256(&cert);
        handshake(pin, server(cert, &key)).unwrap();
    }

    #[test]
    fn another_certificate_is_refused_with_both_fingerprints() {
        let (cert, key) = self_signed();
        let (other, _) = self_signed();
        let err = handshake(sha256(&other), server(cert.clone(), &key)).unwrap_err();
        let rustls::Error::InvalidCertificate(CertificateError::Other(inner)) = &err else {
            panic!("expected a certificate error, got {err:?}");
        };
        let mismatch = inner.0.downcast_ref::<FingerprintMismatch>().unwrap();
        assert_eq!(mismatch.presented, hex(&sha256(&cert)));
        assert_eq!(mismatch.pinned, hex(&sha256(&other)));
        // As the proxy sees it, through tokio-rustls' I/O error.
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
        assert_eq!(
            fingerprint_mismatch(&io).unwrap().presented,
            hex(&sha256(&cert))
        );
    }

    #[test]
    fn the_pinned_certificate_without_its_key_is_refused() {
        // Someone who copied the (public) certificate but has not the key:
        // the pin matches, the handshake signature does not.
        let (cert, _) = self_signed();
        let (_, wrong_key) = self_signed();
        let pin = sha256(&cert);
        let err = handshake(pin, server(cert, &wrong_key)).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::BadSignature)
            ),
            "{err:?}"
        );
    }

    #[test]
    fn pins_parse_from_hex_of_either_case() {
        let pin = [0xab; 32];
        assert_eq!(parse_sha256(&hex(&pin)), Some(pin));
        assert_eq!(parse_sha256(&hex(&pin).to_uppercase()), Some(pin));
        assert_eq!(parse_sha256(&format!(" {} ", hex(&pin))), Some(pin));
        assert_eq!(parse_sha256("abcd"), None);
        assert_eq!(parse_sha256(&"zz".repeat(32)), None);
        assert_eq!(parse_sha256(&"é".repeat(32)), None);
    }
}
