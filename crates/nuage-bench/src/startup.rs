//! Start-up time: from spawning a server until a URL answers 200.
//!
//! The probe is a blocking HTTP/1.1 `GET` (over TLS for `https://`), tried
//! every 0.25 ms: a refused connection costs tens of microseconds, so the
//! figure is within about half a millisecond of the first moment the server
//! could answer. The server is then stopped with SIGTERM and waited for.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::args::Args;
use crate::stats::{figure, latency_figures};

/// The pause between two probes.
const POLL: Duration = Duration::from_micros(250);

/// How long a stopped server may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Accepts any server certificate (signatures are still checked). The probe
/// runs before the server has made its CA on a first start, so it cannot
/// trust `ca.crt`; it only talks to 127.0.0.1.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A parsed `http[s]://host:port/path`.
struct Target {
    tls: Option<Arc<ClientConfig>>,
    addr: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth();
            (Some(Arc::new(config)), r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (None, r)
        } else {
            return Err(format!("{url:?}: expected http:// or https://"));
        };
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        Ok(Self {
            tls,
            addr: addr.to_string(),
            path: path.to_string(),
        })
    }

    /// One probe: does `GET path` answer 200?
    fn ok(&self) -> bool {
        let Ok(mut tcp) = TcpStream::connect(&self.addr) else {
            return false;
        };
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path, self.addr
        );
        match &self.tls {
            None => status_is_200(&mut tcp, &request),
            Some(config) => {
                let Ok(name) = ServerName::try_from("localhost") else {
                    return false;
                };
                let Ok(conn) = rustls::ClientConnection::new(Arc::clone(config), name) else {
                    return false;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                status_is_200(&mut tls, &request)
            }
        }
    }
}

/// Sends `request` and reads until the status line is complete.
fn status_is_200(stream: &mut (impl Read + Write), request: &str) -> bool {
    if stream.write_all(request.as_bytes()).is_err() || stream.flush().is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(2).any(|w| w == b"\r\n") && got.len() < 4096 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"HTTP/1.1 200") || got.starts_with(b"HTTP/1.0 200")
}

fn stop(child: &mut Child) -> Result<(), String> {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("pid {pid} ignored SIGTERM for {STOP_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `startup`: `--runs` times, (optionally removes `--wipe DIR`,) spawns the
/// command after `--` and times it until `--url` answers 200.
pub fn run(args: &Args) -> Result<(), String> {
    let target = Target::parse(args.str("url")?)?;
    let runs: usize = args.num("runs", 10)?;
    let timeout = Duration::from_millis(args.num("timeout-ms", 10_000)?);
    let name = args.opt("name").unwrap_or("startup").to_string();
    let Some((program, rest)) = args.command.split_first() else {
        return Err("no command after --".into());
    };
    if target.ok() {
        return Err(format!(
            "{} already answers: stop that server first",
            target.addr
        ));
    }
    let mut samples = Vec::new();
    for run in 0..runs {
        if let Some(dir) = args.opt("wipe") {
            if Path::new(dir).exists() {
                std::fs::remove_dir_all(dir).map_err(|e| format!("remove {dir}: {e}"))?;
            }
        }
        let t0 = Instant::now();
        let mut child = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {program}: {e}"))?;
        let ready = loop {
            if target.ok() {
                break Ok(t0.elapsed());
            }
            if let Ok(Some(status)) = child.try_wait() {
                break Err(format!(
                    "run {run}: server exited with {status} before ready"
                ));
            }
            if t0.elapsed() > timeout {
                break Err(format!("run {run}: not ready in {timeout:?}"));
            }
            std::thread::sleep(POLL);
        };
        let stopped = stop(&mut child);
        samples.push(ready?);
        stopped?;
    }
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1e3 / samples.len().max(1) as f64;
    figure(&format!("{name}_mean"), mean, "ms");
    latency_figures(&name, &samples);
    Ok(())
}
