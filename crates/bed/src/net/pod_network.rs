//! Each bed's own pod addresses. Pods are served on loopback at their IP's last three octets
//! (10.a.b.c at 127.a.b.c, [`costop_traffic::dial::to_loopback`]), so two beds on one machine
//! whose pods had the same IPs would share those addresses: one bed's requests would reach the
//! other's pods. A bed therefore claims one /16 of kubesim's pod range (10.64.0.0/10: 64 of
//! them) for as long as it runs, with an exclusive lock on a file named after the block under
//! the temp dir. The lock belongs to the open file, so it holds between beds of one process as
//! between processes, and a bed that dies releases it with its file descriptors.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use kubesim::network::Ipv4Cidr;

use crate::error::BedError;

/// The second octets of the /16 blocks: 10.64.0.0/16 … 10.127.0.0/16.
const BLOCKS: std::ops::Range<u8> = 64..128;

/// A claimed block; the claim ends when this is dropped.
#[derive(Debug)]
pub struct PodNetwork {
    cidr: Ipv4Cidr,
    _lock: File,
}

impl PodNetwork {
    /// The block's range, for the simulator's kubelet.
    pub fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The first free block, looking from a place that depends on the process so beds started
    /// side by side rarely try the same files. Fails when every block is held.
    pub fn claim() -> Result<Self, BedError> {
        Self::claim_in(&lock_dir(), std::process::id() as usize)
    }

    fn claim_in(dir: &Path, start: usize) -> Result<Self, BedError> {
        std::fs::create_dir_all(dir).map_err(|source| BedError::Io {
            what: format!("create {}", dir.display()),
            source,
        })?;
        let n = BLOCKS.len();
        for i in 0..n {
            let octet = BLOCKS.start + ((start + i) % n) as u8;
            let path = dir.join(format!("10.{octet}.0.0-16.lock"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|source| BedError::Io {
                    what: format!("open {}", path.display()),
                    source,
                })?;
            match file.try_lock() {
                Ok(()) => {
                    let cidr = format!("10.{octet}.0.0/16")
                        .parse()
                        .expect("a /16 in 10.64.0.0/10 is a valid range");
                    return Ok(PodNetwork { cidr, _lock: file });
                }
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(source)) => {
                    return Err(BedError::Io {
                        what: format!("lock {}", path.display()),
                        source,
                    });
                }
            }
        }
        Err(BedError::Io {
            what: format!(
                "every pod address block is held by another bed on this machine ({n} beds at once; locks in {})",
                dir.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        })
    }
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("costop-bed-pod-networks")
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn beds_running_at_once_get_disjoint_blocks_and_a_freed_block_is_handed_out_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut held: Vec<PodNetwork> = (0..BLOCKS.len())
            .map(|i| PodNetwork::claim_in(dir.path(), i * 7).expect("a free block"))
            .collect();
        let cidrs: std::collections::BTreeSet<String> =
            held.iter().map(|p| p.cidr().to_string()).collect();
        assert_eq!(cidrs.len(), BLOCKS.len(), "{cidrs:?}");
        for p in &held {
            let first = Ipv4Addr::from(p.cidr().first_usable());
            assert!(
                kubesim::network::POD_NETWORK.contains(first),
                "{}",
                p.cidr()
            );
        }
        let err = PodNetwork::claim_in(dir.path(), 0).expect_err("no block is free");
        assert!(
            err.to_string().contains("every pod address block is held"),
            "{err}"
        );
        let freed = held.swap_remove(10).cidr();
        let again = PodNetwork::claim_in(dir.path(), 3).expect("the freed block");
        assert_eq!(again.cidr(), freed);
    }
}
