//! The cluster's networking settings — what kube-apiserver takes as
//! `--service-cluster-ip-range` and `--service-node-port-range`, and the range pods get their
//! addresses from — and, in [`allocator`], how free ClusterIPs and node ports are picked from
//! them.
//!
//! Defaults are an EKS cluster's: services in 10.100.0.0/16, node ports 30000–32767
//! (<https://kubernetes.io/docs/concepts/services-networking/service/#type-nodeport>). Pods get
//! addresses from 10.64.0.0/10 unless told otherwise ([`POD_NETWORK`]).

pub mod allocator;

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A configuration value that is not a usable range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkConfigError {
    #[error("{0:?} is not an IPv4 CIDR such as 10.100.0.0/16")]
    NotACidr(String),
    /// kube-apiserver refuses ranges larger than 2^20 addresses; /31 and /32 leave no address
    /// once the network and broadcast addresses are excluded.
    #[error("service CIDR {0} must have a prefix length between /12 and /30")]
    CidrSize(String),
    #[error("service CIDR {given} has host bits set; did you mean {network}?")]
    HostBits { given: String, network: String },
    #[error("{0:?} is not a port range such as 30000-32767")]
    NotAPortRange(String),
}

/// An IPv4 network, e.g. `10.100.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
}

/// The default range of pod addresses (the CNI's; on EKS the VPC CNI hands out the VPC's own
/// addresses). Wider than a service range may be, hence built here and not by [`Ipv4Cidr::new`].
pub const POD_NETWORK: Ipv4Cidr = Ipv4Cidr {
    network: (10 << 24) | (64 << 16),
    prefix: 10,
};

impl Ipv4Cidr {
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self, NetworkConfigError> {
        let text = format!("{network}/{prefix}");
        if !(12..=30).contains(&prefix) {
            return Err(NetworkConfigError::CidrSize(text));
        }
        let mask = u32::MAX << (32 - prefix);
        let bits = u32::from(network);
        if bits & !mask != 0 {
            return Err(NetworkConfigError::HostBits {
                given: text,
                network: format!("{}/{prefix}", Ipv4Addr::from(bits & mask)),
            });
        }
        Ok(Self {
            network: bits,
            prefix,
        })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == self.network
    }

    /// The first address services can get (the network address itself is never handed out).
    pub fn first_usable(&self) -> u32 {
        self.network + 1
    }

    /// How many addresses services can get: all but the network and broadcast addresses.
    pub fn usable(&self) -> u64 {
        (1u64 << (32 - self.prefix)) - 2
    }

    /// Whether `ip` can be a service's ClusterIP: in the range, not network or broadcast.
    pub fn is_usable(&self, ip: Ipv4Addr) -> bool {
        let v = u64::from(u32::from(ip));
        let first = u64::from(self.first_usable());
        self.contains(ip) && v >= first && v < first + self.usable()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = NetworkConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NetworkConfigError::NotACidr(s.to_string());
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Self::new(addr, prefix)
    }
}

/// An inclusive port range, e.g. `30000-32767`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, port: i64) -> bool {
        port >= i64::from(self.first) && port <= i64::from(self.last)
    }
    pub fn len(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }
    /// Never true for a parsed range; present because `len` is.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for PortRange {
    type Err = NetworkConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NetworkConfigError::NotAPortRange(s.to_string());
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(Self { first, last })
    }
}

/// Where Services get their addresses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceNetwork {
    /// `--service-cluster-ip-range`.
    pub cluster_ip_range: Ipv4Cidr,
    /// `--service-node-port-range` (also used for `healthCheckNodePort`).
    pub node_port_range: PortRange,
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        Self {
            cluster_ip_range: Ipv4Cidr {
                network: u32::from(Ipv4Addr::new(10, 100, 0, 0)),
                prefix: 16,
            },
            node_port_range: PortRange {
                first: 30000,
                last: 32767,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_bound_their_addresses() {
        let c: Ipv4Cidr = "10.100.0.0/16".parse().expect("cidr");
        assert_eq!(c, ServiceNetwork::default().cluster_ip_range);
        assert!(c.is_usable(Ipv4Addr::new(10, 100, 3, 4)));
        assert!(!c.is_usable(Ipv4Addr::new(10, 100, 0, 0)));
        assert!(!c.is_usable(Ipv4Addr::new(10, 100, 255, 255)));
        assert!(!c.is_usable(Ipv4Addr::new(10, 101, 0, 1)));
        assert_eq!(c.usable(), 65534);
    }

    #[test]
    fn bad_ranges_are_refused_with_a_reason() {
        assert!(matches!(
            "10.100.0.1/16".parse::<Ipv4Cidr>(),
            Err(NetworkConfigError::HostBits { .. })
        ));
        assert!(matches!(
            "10.0.0.0/8".parse::<Ipv4Cidr>(),
            Err(NetworkConfigError::CidrSize(_))
        ));
        assert!(matches!(
            "ten/16".parse::<Ipv4Cidr>(),
            Err(NetworkConfigError::NotACidr(_))
        ));
        assert!(matches!(
            "32767-30000".parse::<PortRange>(),
            Err(NetworkConfigError::NotAPortRange(_))
        ));
        assert_eq!(
            "30000-32767".parse::<PortRange>().map(|r| r.len()),
            Ok(2768)
        );
    }
}
