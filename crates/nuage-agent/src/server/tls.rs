//! The agent's serving certificate: self-signed, made at first start and
//! kept under `<data-dir>/agent/tls/` (`agent.key` readable by the owner
//! only, `agent.crt`), reused on restart.
//!
//! Nobody chains it to a CA: the agent publishes its SHA-256 on the Node
//! ([`CERTIFICATE_ANNOTATION`]) and the API server accepts only the
//! certificate with that fingerprint, so the token it presents never goes
//! to anyone else. The names in it (node IP, host name) are for people
//! reading it; the pin is what is checked.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The Node annotation holding the SHA-256 (lower-case hex) of the DER of
/// the agent's serving certificate. The API server reads the same name
/// (`nuage_api::rest::agent_tls::CERTIFICATE_ANNOTATION`).
pub const CERTIFICATE_ANNOTATION: &str = "nuage.io/agent-certificate-sha256";

const CERT_FILE: &str = "agent.crt";
const KEY_FILE: &str = "agent.key";

/// Errors making, saving or loading the serving certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The agent's certificate and key, and the fingerprint it publishes.
pub struct ServingCertificate {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    /// SHA-256 of `cert`, lower-case hex: the Node annotation's value.
    pub sha256: String,
}

impl std::fmt::Debug for ServingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ServingCertificate")
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl ServingCertificate {
    /// Loads the certificate kept in `dir`, or makes one for `ip` and
    /// `hostname` and keeps it there. A pair that does not load (a crash
    /// between the two writes, a damaged file) is replaced: the new
    /// fingerprint reaches the Node when the agent registers.
    pub fn load_or_create(dir: &Path, ip: IpAddr, hostname: &str) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert_path.exists() && key_path.exists() {
            match Self::load(&cert_path, &key_path) {
                Ok(loaded) => return Ok(loaded),
                Err(e) => tracing::warn!(
                    dir = %dir.display(),
                    error = %e,
                    "agent serving certificate unusable; making a new one"
                ),
            }
        }
        create_private_dir(dir)?;
        let (cert_pem, key_pem) = generate(ip, hostname)?;
        // The key first: a certificate on disk always has its key.
        write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
        write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
        Self::load(&cert_path, &key_path)
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let pem = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        };
        let cert = CertificateDer::from_pem_file(cert_path).map_err(|e| pem(cert_path, e))?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| pem(key_path, e))?;
        let loaded = Self {
            sha256: sha256_hex(&cert),
            cert,
            key,
        };
        // Fails now, not at the first connection, if key and certificate
        // do not belong together.
        loaded.server_config()?;
        Ok(loaded)
    }

    /// A rustls server configuration presenting this certificate; offers
    /// HTTP/2 and HTTP/1.1 (exec upgrades need HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// SHA-256 of `der`, lower-case hex.
pub fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A self-signed certificate (PEM) for `ip` and `hostname`, and its key.
fn generate(ip: IpAddr, hostname: &str) -> Result<(String, String), TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "nuage-agent");
    dn.push(DnType::OrganizationName, "nuage");
    params.distinguished_name = dn;
    params.subject_alt_names.push(SanType::IpAddress(ip));
    // A host name that is no valid DNS name (rare) is left out rather than
    // failing the agent: the pin does not depend on names.
    if let Some(name) = Some(hostname)
        .filter(|h| !h.is_empty())
        .and_then(|h| h.try_into().ok())
    {
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    // Pinned, not chained: expiry would only break a node that works.
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// Writes `path` through a temporary file created with `mode`, so the key
/// is never readable by others, not even for a moment.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    #[test]
    fn made_once_then_reused_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("agent/tls");
        let first = ServingCertificate::load_or_create(&tls, IP, "host-a").unwrap();
        assert_eq!(first.sha256.len(), 64);
        assert_eq!(first.sha256, sha256_hex(&first.cert));
        let mode = |f: &str| std::fs::metadata(tls.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(CERT_FILE), 0o644);
        assert_eq!(
            std::fs::metadata(&tls).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // A restart keeps the certificate (and so the Node's pin) as it was,
        // whatever the address is now.
        let other_ip = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let again = ServingCertificate::load_or_create(&tls, other_ip, "host-b").unwrap();
        assert_eq!(again.sha256, first.sha256);
        again.server_config().unwrap();
    }

    #[test]
    fn names_the_node_ip_and_host_name() {
        let dir = tempfile::tempdir().unwrap();
        let cert = ServingCertificate::load_or_create(dir.path(), IP, "host-a").unwrap();
        let der: &[u8] = &cert.cert;
        let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"host-a"));
        assert!(contains(&[10, 0, 0, 7]));
        // A name that is not IA5 is left out, not fatal.
        let dir = tempfile::tempdir().unwrap();
        ServingCertificate::load_or_create(dir.path(), IP, "hôte").unwrap();
    }

    #[test]
    fn a_damaged_pair_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServingCertificate::load_or_create(dir.path(), IP, "h").unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "not a key").unwrap();
        let second = ServingCertificate::load_or_create(dir.path(), IP, "h").unwrap();
        assert_ne!(second.sha256, first.sha256);
        let third = ServingCertificate::load_or_create(dir.path(), IP, "h").unwrap();
        assert_eq!(third.sha256, second.sha256);
    }

    #[test]
    fn fingerprint_is_lower_case_hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
