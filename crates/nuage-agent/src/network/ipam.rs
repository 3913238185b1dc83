//! Address allocation kept in files: one file per allocated address, named
//! by the address, holding the pod uid.
//!
//! A file is created with `O_EXCL`, so two allocators (two tasks, or an agent
//! and its restarted successor) never hand out one address twice, and every
//! allocation that was acknowledged survives a crash. An agent that dies
//! between creating a file and writing the uid leaves it empty: an empty
//! file older than a minute is taken back on the next scan (no writer takes
//! that long to write a uid).

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{NetworkError, Result};

/// How old an empty allocation file must be before it counts as abandoned.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// An IPv4 network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits zero).
    pub network: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Checks that `prefix` is at most 32 and `network` has no host bits set.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self> {
        let cidr = Cidr { network, prefix };
        if prefix > 32 {
            return Err(NetworkError::InvalidCidr {
                cidr: cidr.to_string(),
                reason: "the prefix length is above 32".into(),
            });
        }
        if u32::from(network) & !cidr.mask() != 0 {
            return Err(NetworkError::InvalidCidr {
                cidr: cidr.to_string(),
                reason: "host bits are set (expected the network address)".into(),
            });
        }
        Ok(cidr)
    }

    /// Parses `a.b.c.d/len`, or `a.b.c.d` as a /32.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, prefix.parse().ok()?),
            None => (text, 32),
        };
        let addr: Ipv4Addr = addr.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = mask(prefix);
        Some(Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    /// The netmask as a number.
    pub fn mask(&self) -> u32 {
        mask(self.prefix)
    }

    /// The broadcast address as a number.
    pub fn broadcast(&self) -> u32 {
        u32::from(self.network) | !self.mask()
    }

    /// The first address after the network address.
    pub fn first_host(&self) -> u32 {
        u32::from(self.network) + 1
    }

    /// The last address before the broadcast address.
    pub fn last_host(&self) -> u32 {
        self.broadcast() - 1
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let shorter = mask(self.prefix.min(other.prefix));
        u32::from(self.network) & shorter == u32::from(other.network) & shorter
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// A range of addresses handed out to pod uids, lowest free first.
#[derive(Debug, Clone)]
pub struct Pool {
    dir: PathBuf,
    first: u32,
    last: u32,
}

impl Pool {
    /// A pool of the addresses `first..=last`, recorded in `dir`.
    pub fn new(dir: PathBuf, first: u32, last: u32) -> Self {
        Pool { dir, first, last }
    }

    /// The pod's address, if it has one.
    pub fn find(&self, pod_uid: &str) -> Result<Option<Ipv4Addr>> {
        Ok(self
            .scan()?
            .into_iter()
            .find(|(uid, _)| uid == pod_uid)
            .map(|(_, ip)| ip))
    }

    /// The pod's address: the one it has, or the lowest free one. The flag
    /// says whether the address was allocated by this call.
    pub fn allocate(&self, pod_uid: &str) -> Result<(Ipv4Addr, bool)> {
        fs::create_dir_all(&self.dir).map_err(NetworkError::state(&self.dir))?;
        let taken = self.scan()?;
        if let Some((_, ip)) = taken.iter().find(|(uid, _)| uid == pod_uid) {
            return Ok((*ip, false));
        }
        let taken: HashSet<u32> = taken.iter().map(|(_, ip)| u32::from(*ip)).collect();
        for candidate in self.first..=self.last {
            if taken.contains(&candidate) {
                continue;
            }
            let ip = Ipv4Addr::from(candidate);
            let path = self.dir.join(ip.to_string());
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    // One write of a few bytes: a reader sees all or nothing
                    // in practice; an empty file is handled by `scan`.
                    if let Err(e) = file.write_all(pod_uid.as_bytes()) {
                        let _ = fs::remove_file(&path);
                        return Err(NetworkError::State { path, source: e });
                    }
                    return Ok((ip, true));
                }
                // Another allocator got there between our scan and now.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(NetworkError::State { path, source: e }),
            }
        }
        Err(NetworkError::Exhausted {
            range: format!(
                "{}-{}",
                Ipv4Addr::from(self.first),
                Ipv4Addr::from(self.last)
            ),
        })
    }

    /// Frees every address the pod holds. Idempotent.
    pub fn release(&self, pod_uid: &str) -> Result<()> {
        for (uid, ip) in self.scan()? {
            if uid == pod_uid {
                let path = self.dir.join(ip.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(NetworkError::State { path, source: e }),
                }
            }
        }
        Ok(())
    }

    /// Every allocation: (pod uid, address).
    pub fn list(&self) -> Result<Vec<(String, Ipv4Addr)>> {
        self.scan()
    }

    /// Forgets every allocation.
    pub fn clear(&self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetworkError::State {
                path: self.dir.clone(),
                source: e,
            }),
        }
    }

    fn scan(&self) -> Result<Vec<(String, Ipv4Addr)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(NetworkError::State {
                    path: self.dir.clone(),
                    source: e,
                })
            }
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(NetworkError::state(&self.dir))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let uid = match fs::read_to_string(&path) {
                Ok(uid) => uid,
                // Released by someone else since the listing.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(NetworkError::State { path, source: e }),
            };
            // An empty file is being written right now (taken, by nobody we
            // know yet) or was abandoned by a crash (taken back).
            if uid.is_empty() && is_abandoned(&path) {
                let _ = fs::remove_file(&path);
                continue;
            }
            found.push((uid, ip));
        }
        found.sort_by_key(|(_, ip)| u32::from(*ip));
        Ok(found)
    }
}

fn is_abandoned(path: &Path) -> bool {
    let modified = fs::metadata(path).and_then(|m| m.modified());
    match modified {
        Ok(modified) => SystemTime::now()
            .duration_since(modified)
            .is_ok_and(|age| age > ABANDONED_AFTER),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &Path, first: [u8; 4], last: [u8; 4]) -> Pool {
        Pool::new(
            dir.join("ips"),
            Ipv4Addr::from(first).into(),
            Ipv4Addr::from(last).into(),
        )
    }

    #[test]
    fn lowest_free_first_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), [10, 0, 0, 2], [10, 0, 0, 4]);
        assert_eq!(
            pool.allocate("a").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 2), true)
        );
        assert_eq!(
            pool.allocate("b").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 3), true)
        );
        assert_eq!(
            pool.allocate("a").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 2), false)
        );
        pool.release("a").unwrap();
        pool.release("a").unwrap();
        assert_eq!(
            pool.allocate("c").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 2), true)
        );
        assert_eq!(
            pool.allocate("d").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 4), true)
        );
        assert!(matches!(
            pool.allocate("e"),
            Err(NetworkError::Exhausted { .. })
        ));
        assert_eq!(pool.find("b").unwrap(), Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(pool.list().unwrap().len(), 3);
    }

    #[test]
    fn survives_a_new_allocator_over_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = pool(dir.path(), [10, 0, 0, 2], [10, 0, 0, 9]);
        first.allocate("a").unwrap();
        first.allocate("b").unwrap();
        let second = pool(dir.path(), [10, 0, 0, 2], [10, 0, 0, 9]);
        assert_eq!(
            second.allocate("b").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 3), false)
        );
        assert_eq!(
            second.allocate("c").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 4), true)
        );
    }

    #[test]
    fn concurrent_allocators_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), [10, 0, 0, 2], [10, 0, 0, 200]);
        let ips: Vec<Ipv4Addr> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let pool = pool.clone();
                    s.spawn(move || {
                        (0..10)
                            .map(|j| pool.allocate(&format!("p{i}-{j}")).unwrap().0)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: HashSet<_> = ips.iter().collect();
        assert_eq!(distinct.len(), 80);
    }

    #[test]
    fn an_empty_file_being_written_stays_taken() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), [10, 0, 0, 2], [10, 0, 0, 9]);
        fs::create_dir_all(dir.path().join("ips")).unwrap();
        fs::write(dir.path().join("ips/10.0.0.2"), "").unwrap();
        assert_eq!(pool.allocate("a").unwrap().0, Ipv4Addr::new(10, 0, 0, 3));
    }

    #[test]
    fn cidr_arithmetic() {
        let c = Cidr::new(Ipv4Addr::new(10, 88, 0, 0), 16).unwrap();
        assert_eq!(Ipv4Addr::from(c.first_host()), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(
            Ipv4Addr::from(c.last_host()),
            Ipv4Addr::new(10, 88, 255, 254)
        );
        assert!(Cidr::new(Ipv4Addr::new(10, 88, 0, 1), 16).is_err());
        assert!(c.overlaps(&Cidr::parse("10.88.3.0/24").unwrap()));
        assert!(c.overlaps(&Cidr::parse("10.0.0.0/8").unwrap()));
        assert!(!c.overlaps(&Cidr::parse("10.89.0.0/16").unwrap()));
        assert_eq!(Cidr::parse("192.0.2.7").unwrap().prefix, 32);
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().mask(), 0);
    }
}
