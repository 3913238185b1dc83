//! The cluster CA and the API server's serving certificate.
//!
//! At first start a CA is made and kept (`ca.crt`, and `ca.key` readable by
//! the owner only). Every start signs a fresh serving certificate for the
//! listen address, `localhost` and the host name: it costs one signature and
//! follows a changed `--listen`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Errors making or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Reading or writing a PEM file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The CA: its certificate in PEM and what is needed to sign with it.
pub struct Ca {
    /// `ca.crt` contents.
    pub cert_pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "nuage-ca");
    dn.push(DnType::OrganizationName, "nuage");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Loads the CA from `dir`, or makes and saves one.
pub fn load_or_create_ca(dir: &Path) -> Result<Ca, TlsError> {
    let crt_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    if crt_path.exists() && key_path.exists() {
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let cert_pem = std::fs::read_to_string(&crt_path).map_err(io(&crt_path))?;
        let key = KeyPair::from_pem(&key_pem)?;
        // Same subject and key as the saved certificate, so what it signs
        // chains to `ca.crt`.
        let cert = ca_params()?.self_signed(&key)?;
        return Ok(Ca {
            cert_pem,
            cert,
            key,
        });
    }
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    let cert_pem = cert.pem();
    write_private(&key_path, &key.serialize_pem())?;
    std::fs::write(&crt_path, &cert_pem).map_err(io(&crt_path))?;
    Ok(Ca {
        cert_pem,
        cert,
        key,
    })
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

/// A rustls server configuration with a certificate for `ip`, `localhost`
/// and `hostname`, signed by `ca`. Offers HTTP/2 and HTTP/1.1.
pub fn server_config(
    ca: &Ca,
    ip: IpAddr,
    hostname: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut names = vec!["localhost".to_string(), "nuage".to_string()];
    if !hostname.is_empty() && hostname != "localhost" {
        names.push(hostname.to_string());
    }
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "nuage-apiserver");
    params.distinguished_name = dn;
    params.subject_alt_names.push(SanType::IpAddress(ip));
    if !ip.is_loopback() {
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.cert, &ca.key)?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
