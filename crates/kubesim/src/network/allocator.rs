//! Picking a free ClusterIP or node port the way kube-apiserver's allocators do: at random
//! within the range, preferring its upper ("dynamic") band and falling back to the lower
//! ("static") band, which is thereby left for users who choose their own values
//! (KEP-3070 for ClusterIPs, KEP-3668 for node ports;
//! <https://kubernetes.io/docs/reference/networking/virtual-ips/#avoiding-collisions> and
//! <https://kubernetes.io/docs/concepts/services-networking/service/#avoid-nodeport-collisions>).
//!
//! The allocators are pure: the caller passes what is taken (the Services in the store), so
//! an address is free again as soon as the Service holding it is gone or no longer needs it.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::{Ipv4Cidr, PortRange};

/// Size of the static band of a ClusterIP range of `size` addresses: `min(max(16, size/16), 256)`.
pub fn ip_static_band(size: u64) -> u64 {
    (size / 16).clamp(16, 256).min(size)
}

/// Size of the static band of a node port range of `size` ports: `min(max(16, size/32), 128)`.
pub fn port_static_band(size: u64) -> u64 {
    (size / 32).clamp(16, 128).min(size)
}

/// A random seed for where a search starts.
pub fn seed() -> u64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// A free ClusterIP in `range`, or `None` when every usable address is taken.
pub fn pick_cluster_ip(range: &Ipv4Cidr, taken: &HashSet<Ipv4Addr>, seed: u64) -> Option<Ipv4Addr> {
    let first = u64::from(range.first_usable());
    let size = range.usable();
    let to_ip = |off: u64| Ipv4Addr::from((first + off) as u32);
    pick(size, ip_static_band(size), seed, |off| {
        !taken.contains(&to_ip(off))
    })
    .map(to_ip)
}

/// A free port in `range`, or `None` when every port is taken.
pub fn pick_node_port(range: PortRange, taken: &HashSet<u16>, seed: u64) -> Option<u16> {
    let first = u64::from(range.first);
    let size = range.len();
    let to_port = |off: u64| (first + off) as u16;
    pick(size, port_static_band(size), seed, |off| {
        !taken.contains(&to_port(off))
    })
    .map(to_port)
}

/// An offset in `0..size` for which `free` holds: first in the dynamic band
/// `static_size..size` from a random start, then in the static band `0..static_size`.
fn pick(size: u64, static_size: u64, seed: u64, free: impl Fn(u64) -> bool) -> Option<u64> {
    let bands = [(static_size, size), (0, static_size)];
    bands.into_iter().find_map(|(lo, hi)| {
        let len = hi.saturating_sub(lo);
        if len == 0 {
            return None;
        }
        let start = seed % len;
        (0..len)
            .map(|i| lo + (start + i) % len)
            .find(|off| free(*off))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ServiceNetwork;

    #[test]
    fn band_sizes_match_the_api_server() {
        // A /16 has 65534 usable addresses: 4095 would be its sixteenth, capped at 256.
        assert_eq!(ip_static_band(65534), 256);
        // A /24: 254/16 = 15, raised to 16.
        assert_eq!(ip_static_band(254), 16);
        // 30000-32767: 2768/32 = 86.
        assert_eq!(port_static_band(2768), 86);
    }

    #[test]
    fn cluster_ips_come_from_the_upper_band_of_the_range() {
        let range = ServiceNetwork::default().cluster_ip_range;
        for s in [0, 1, 12345, u64::MAX] {
            let ip = pick_cluster_ip(&range, &HashSet::new(), s).expect("free address");
            assert!(range.is_usable(ip), "{ip}");
            // The static band is 10.100.0.1 .. 10.100.1.0.
            assert!(
                u32::from(ip) > u32::from(Ipv4Addr::new(10, 100, 1, 0)),
                "{ip}"
            );
        }
    }

    #[test]
    fn taken_addresses_are_skipped_and_a_full_range_yields_none() {
        let range: Ipv4Cidr = "10.96.0.0/30".parse().expect("cidr");
        // Two usable addresses, both in the static band of a tiny range.
        let a = pick_cluster_ip(&range, &HashSet::new(), 7).expect("first");
        let b = pick_cluster_ip(&range, &HashSet::from([a]), 7).expect("second");
        assert_ne!(a, b);
        assert_eq!(pick_cluster_ip(&range, &HashSet::from([a, b]), 7), None);
    }

    #[test]
    fn node_ports_prefer_the_dynamic_band_then_use_the_static_one() {
        let range = ServiceNetwork::default().node_port_range;
        let p = pick_node_port(range, &HashSet::new(), 99).expect("free port");
        assert!((30086..=32767).contains(&p), "{p}");
        let dynamic_taken: HashSet<u16> = (30086..=32767).collect();
        let p = pick_node_port(range, &dynamic_taken, 99).expect("static band");
        assert!((30000..30086).contains(&p), "{p}");
        let all: HashSet<u16> = (30000..=32767).collect();
        assert_eq!(pick_node_port(range, &all, 99), None);
    }
}
