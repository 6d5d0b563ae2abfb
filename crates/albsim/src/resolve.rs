//! Where targets are: the bed maps each target (instance id and port, pod IP, …) to a
//! loopback socket address. Anything outside 127.0.0.0/8 is refused, so that no traffic of
//! the simulation ever leaves the machine.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::{Target, TargetGroup};

/// Maps a registered target to the loopback address that stands for it; `None` when the
/// target does not exist (as a terminated instance), which the data path treats as a
/// connection failure.
pub type Resolver = Arc<dyn Fn(&TargetGroup, &Target) -> Option<SocketAddr> + Send + Sync>;

/// Whether `addr` is in 127.0.0.0/8 (an IPv4-mapped IPv6 form included).
pub fn is_loopback_v4(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Why a target has no address to dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("the resolver knows no address for the target")]
    Unknown,
    #[error("the resolved address is outside 127.0.0.0/8")]
    NotLoopback,
}

/// Resolves `target` and refuses a non-loopback answer (logged, since it means the bed's
/// mapping is wrong).
pub fn resolve(
    resolver: &Resolver,
    group: &TargetGroup,
    target: &Target,
) -> Result<SocketAddr, ResolveError> {
    let addr = resolver(group, target).ok_or(ResolveError::Unknown)?;
    if is_loopback_v4(&addr) {
        Ok(addr)
    } else {
        tracing::warn!(
            target_id = %target.id,
            %addr,
            "refusing to dial a target address outside 127.0.0.0/8"
        );
        Err(ResolveError::NotLoopback)
    }
}
