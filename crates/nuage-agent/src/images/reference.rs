//! Image references, normalized as Docker does: `busybox` is
//! `docker.io/library/busybox:latest`, `img/serv:0.5.0` is
//! `docker.io/img/serv:0.5.0`, `registry:5000/a/b@sha256:…` keeps its
//! registry and digest.

use std::fmt;

use super::error::{ImageError, Result};

/// The registry a name without one belongs to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag a name without a tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// The repository path in the registry (`library/busybox`).
    pub path: String,
    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub tag: Option<String>,
    /// The manifest digest (`sha256:…`), if given.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes a reference the way `docker pull` reads it.
    pub fn parse(reference: &str) -> Result<Reference> {
        let bad = |reason: &str| ImageError::BadReference {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(|r| bad(&r))?;
                (rest, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before
        // a '/' is a registry port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                check_tag(tag).map_err(|r| bad(&r))?;
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        let (domain, path) = split_domain(name);
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        check_domain(&domain).map_err(|r| bad(&r))?;
        for component in path.split('/') {
            check_component(component).map_err(|r| bad(&r))?;
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(bad("name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short name Docker shows: `busybox`, `img/serv`,
    /// `localhost:5000/a/b`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }
}

/// The canonical form: `docker.io/library/busybox:latest`,
/// `docker.io/library/busybox@sha256:…`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first component is a registry if it has a `.` or a
/// `:`, or is `localhost`, or has upper-case letters; otherwise the name is
/// on Docker Hub, where a one-component name is under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    (domain, path)
}

fn check_digest(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if is_sha256_hex(hex) => Ok(()),
        _ => Err(format!(
            "digest {digest:?} is not sha256: and 64 lower-case hex digits"
        )),
    }
}

/// Whether `hex` is 64 lower-case hex digits.
pub(crate) fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let ok = tag.len() <= 128
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1 to 128 of [A-Za-z0-9_.-], not starting with . or -"
        ))
    }
}

fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!("registry {domain:?} is not a host[:port]"))
    }
}

/// A path component: lower-case alphanumerics separated by `.`, `_`, `__`
/// or runs of `-`.
fn check_component(component: &str) -> Result<(), String> {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut ok = !bytes.is_empty() && alnum(bytes[0]) && alnum(bytes[bytes.len() - 1]);
    let mut i = 0;
    while ok && i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
    }
    if ok {
        Ok(())
    } else {
        Err(format!(
            "path component {component:?} must be lower-case letters and digits separated by '.', '_', '__' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_names_are_normalized() {
        assert_eq!(canonical("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            canonical("busybox:latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            canonical("docker.io/library/busybox:latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            canonical("library/busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(canonical("img/serv:0.5.0"), "docker.io/img/serv:0.5.0");
        assert_eq!(
            canonical("index.docker.io/img/serv"),
            "docker.io/img/serv:latest"
        );
        assert_eq!(
            canonical("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn registries_and_ports_are_kept() {
        assert_eq!(canonical("localhost/a"), "localhost/a:latest");
        assert_eq!(canonical("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(canonical("quay.io/x/y"), "quay.io/x/y:latest");
        let r = Reference::parse("registry:5000/app").unwrap();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str()),
            ("registry:5000", "app")
        );
    }

    #[test]
    fn digests_replace_the_default_tag() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r = Reference::parse(&format!("img/serv:0.5.0@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("0.5.0"));
    }

    #[test]
    fn familiar_names_drop_the_hub() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar_name();
        assert_eq!(f("busybox"), "busybox");
        assert_eq!(f("img/serv:0.5.0"), "img/serv");
        assert_eq!(f("localhost:5000/a/b"), "localhost:5000/a/b");
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/b/",
            "-a",
            "a--",
            "busybox@sha256:abc",
            "busybox@md5:0123",
            "a b",
            "a..b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Reference::parse("a__b-c--d.e").is_ok());
    }
}
