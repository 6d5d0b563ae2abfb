//! Which ports a world supplies. A world (the AWS adapters, the in-memory fakes, a recording
//! decorator in the benchmark) implements one `Has*` trait per port it has; a function names
//! the ports it uses ([`InterruptionPorts`], [`KeeperPorts`], [`FallbackPorts`]), so a new port grows only the
//! worlds of the functions that need it.

use super::{Asg, Clusters, Ec2, Elb, Handoff, Records, Upstream, WriteQueue};

/// A world with EC2.
pub trait HasEc2 {
    type Ec2: Ec2;
    fn ec2(&self) -> &Self::Ec2;
}

/// A world with Elastic Load Balancing v2.
pub trait HasElb {
    type Elb: Elb;
    fn elb(&self) -> &Self::Elb;
}

/// A world with Auto Scaling.
pub trait HasAsg {
    type Asg: Asg;
    fn asg(&self) -> &Self::Asg;
}

/// A world with costop's table.
pub trait HasRecords {
    type Records: Records;
    fn records(&self) -> &Self::Records;
}

/// A world with Kubernetes clusters.
pub trait HasClusters {
    type Clusters: Clusters;
    fn clusters(&self) -> &Self::Clusters;
}

/// A world that can hand an event to the interruption function.
pub trait HasHandoff {
    type Handoff: Handoff;
    fn handoff(&self) -> &Self::Handoff;
}

/// A world with the fallback's write queue.
pub trait HasQueue {
    type Queue: WriteQueue;
    fn queue(&self) -> &Self::Queue;
}

/// A world with an HTTP client to the service's upstream.
pub trait HasUpstream {
    type Upstream: Upstream;
    fn upstream(&self) -> &Self::Upstream;
}

/// The Kubernetes client type of a world's clusters.
pub type KubeOf<W> = <<W as HasClusters>::Clusters as Clusters>::Kube;

/// What the interruption function uses.
pub trait InterruptionPorts:
    HasEc2 + HasElb + HasAsg + HasRecords + HasClusters + Send + Sync
{
}
impl<W: HasEc2 + HasElb + HasAsg + HasRecords + HasClusters + Send + Sync> InterruptionPorts for W {}

/// What the keeper uses (the load balancers to put shifted traffic back; the queue and the
/// upstream for the replay of queued writes).
pub trait KeeperPorts:
    HasEc2 + HasElb + HasRecords + HasClusters + HasHandoff + HasQueue + HasUpstream + Send + Sync
{
}
impl<
    W: HasEc2 + HasElb + HasRecords + HasClusters + HasHandoff + HasQueue + HasUpstream + Send + Sync,
> KeeperPorts for W
{
}

/// What the fallback function uses.
pub trait FallbackPorts: HasQueue + HasUpstream + Send + Sync {}
impl<W: HasQueue + HasUpstream + Send + Sync> FallbackPorts for W {}

/// Implements the `Has*` traits for a world struct whose fields are named after the ports:
/// `has_ports!(MyWorld { ec2: FakeEc2, records: FakeRecords })`.
#[macro_export]
macro_rules! has_ports {
    ($world:ty { $($port:ident: $ty:ty),* $(,)? }) => {
        $( $crate::has_ports!(@one $world, $port, $ty); )*
    };
    (@one $world:ty, ec2, $ty:ty) => {
        impl $crate::ports::HasEc2 for $world {
            type Ec2 = $ty;
            fn ec2(&self) -> &$ty { &self.ec2 }
        }
    };
    (@one $world:ty, elb, $ty:ty) => {
        impl $crate::ports::HasElb for $world {
            type Elb = $ty;
            fn elb(&self) -> &$ty { &self.elb }
        }
    };
    (@one $world:ty, asg, $ty:ty) => {
        impl $crate::ports::HasAsg for $world {
            type Asg = $ty;
            fn asg(&self) -> &$ty { &self.asg }
        }
    };
    (@one $world:ty, records, $ty:ty) => {
        impl $crate::ports::HasRecords for $world {
            type Records = $ty;
            fn records(&self) -> &$ty { &self.records }
        }
    };
    (@one $world:ty, handoff, $ty:ty) => {
        impl $crate::ports::HasHandoff for $world {
            type Handoff = $ty;
            fn handoff(&self) -> &$ty { &self.handoff }
        }
    };
    (@one $world:ty, queue, $ty:ty) => {
        impl $crate::ports::HasQueue for $world {
            type Queue = $ty;
            fn queue(&self) -> &$ty { &self.queue }
        }
    };
    (@one $world:ty, upstream, $ty:ty) => {
        impl $crate::ports::HasUpstream for $world {
            type Upstream = $ty;
            fn upstream(&self) -> &$ty { &self.upstream }
        }
    };
    (@one $world:ty, clusters, $ty:ty) => {
        impl $crate::ports::HasClusters for $world {
            type Clusters = $ty;
            fn clusters(&self) -> &$ty { &self.clusters }
        }
    };
}
