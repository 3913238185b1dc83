//! The files `nuage server` writes into its data dir for clients:
//! `kubeconfig`, `aws-credentials`, `aws-config` and `endpoints.json`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;

/// The user's default data dir: `$XDG_DATA_HOME/nuage` or
/// `~/.local/share/nuage`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("nuage");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".local/share/nuage")
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    nuage_api::tls::write_private(path, contents)
        .with_context(|| format!("write {}", path.display()))
}

/// The admin token, made at first start and kept.
pub fn admin_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim();
        if !t.is_empty() {
            return Ok(t.to_string());
        }
    }
    let token = nuage_api::auth::new_token();
    write_private(&path, &token)?;
    Ok(token)
}

/// Writes `kubeconfig` for the admin.
pub fn write_kubeconfig(
    dir: &Path,
    api_url: &str,
    ca_pem: &str,
    token: &str,
) -> anyhow::Result<PathBuf> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: nuage
  cluster:
    server: {api_url}
    certificate-authority-data: {ca}
users:
- name: nuage-admin
  user:
    token: {token}
contexts:
- name: nuage
  context:
    cluster: nuage
    user: nuage-admin
    namespace: default
current-context: nuage
preferences: {{}}
"
    );
    let path = dir.join("kubeconfig");
    write_private(&path, &text)?;
    Ok(path)
}

/// The AWS access key pair, made at first start and kept.
pub struct AwsKeys {
    /// `AKIA...`
    pub access_key_id: String,
    /// 40 characters.
    pub secret_access_key: String,
}

fn random_string(alphabet: &[u8], n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// Reads the keys from `aws-credentials`, or makes new ones.
pub fn aws_keys(dir: &Path) -> AwsKeys {
    let text = std::fs::read_to_string(dir.join("aws-credentials")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    match (field("aws_access_key_id"), field("aws_secret_access_key")) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => AwsKeys {
            access_key_id: id,
            secret_access_key: secret,
        },
        _ => AwsKeys {
            access_key_id: format!(
                "AKIA{}",
                random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
            ),
            secret_access_key: random_string(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                40,
            ),
        },
    }
}

/// Writes `aws-credentials` and `aws-config` (profile `nuage`).
pub fn write_aws_files(dir: &Path, keys: &AwsKeys, aws_url: &str) -> anyhow::Result<()> {
    write_private(
        &dir.join("aws-credentials"),
        &format!(
            "[nuage]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            keys.access_key_id, keys.secret_access_key
        ),
    )?;
    write_private(
        &dir.join("aws-config"),
        &format!("[profile nuage]\nregion = us-east-1\nendpoint_url = {aws_url}\noutput = json\n"),
    )?;
    Ok(())
}

/// Writes `endpoints.json` atomically (readers never see half a file).
pub fn write_endpoints(dir: &Path, api_url: &str, aws_url: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({"api": api_url, "aws": aws_url}).to_string();
    write_private(&dir.join("endpoints.json"), &body)
}
