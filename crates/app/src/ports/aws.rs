//! The AWS service ports: EC2, Elastic Load Balancing v2, Auto Scaling.

use std::future::Future;

use costop_core::facts::{
    InstanceFacts, LifecycleHookFacts, RegisteredTarget, TargetGroupFacts, TargetServing,
};
use costop_core::plan::action::{DeregisterTargets, LifecycleRef, LifecycleResult};
use costop_core::shift::{RuleFacts, WeightedGroup};
use costop_core::standby::TagChange;

use super::PortError;

/// EC2.
pub trait Ec2: Send + Sync {
    /// The named instances EC2 knows (unknown ids are simply absent).
    fn describe_instances(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<InstanceFacts>, PortError>> + Send;
    /// Every warm standby (`costop.io/standby=true`) not terminated, any cluster.
    fn standbys(&self) -> impl Future<Output = Result<Vec<InstanceFacts>, PortError>> + Send;
    /// Set and delete a standby's tags.
    fn tag_standby(&self, change: &TagChange)
    -> impl Future<Output = Result<(), PortError>> + Send;
    /// Change a stopped standby's instance type.
    fn retype(
        &self,
        instance_id: &str,
        instance_type: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Start a stopped standby.
    fn start(&self, instance_id: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Stop a standby.
    fn stop(&self, instance_id: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Elastic Load Balancing v2.
pub trait Elb: Send + Sync {
    /// Every instance- and IP-type target group with its registered targets. Independent of the
    /// instance so the handler can ask before EC2 has answered; it keeps the groups that hold the
    /// instance (by id or by one of its IPs) itself.
    fn target_groups(
        &self,
    ) -> impl Future<Output = Result<Vec<TargetGroupFacts>, PortError>> + Send;
    fn deregister(
        &self,
        action: &DeregisterTargets,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Whether the load balancer still sends `targets` (of one group) requests; a target the
    /// group does not know is [`TargetServing::Gone`], as is every target of a vanished group.
    fn serving(
        &self,
        targets: &DeregisterTargets,
    ) -> impl Future<Output = Result<Vec<(RegisteredTarget, TargetServing)>, PortError>> + Send;
    /// Every listener rule of every Application Load Balancer that forwards to target groups,
    /// with the Ingress whose controller manages it (the rule's `ingress.k8s.aws/stack` tag).
    fn listener_rules(&self) -> impl Future<Output = Result<Vec<RuleFacts>, PortError>> + Send;
    /// Make the rule (or, for a listener's default rule, the listener's default action) forward
    /// to `forward` with those weights.
    fn set_forward(
        &self,
        rule: &RuleFacts,
        forward: &[WeightedGroup],
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The group's `healthy` targets (instance id or IP); `None` for a group that is gone.
    fn in_service(
        &self,
        target_group_arn: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, PortError>> + Send;
}

/// Auto Scaling.
pub trait Asg: Send + Sync {
    fn detach(
        &self,
        asg: &str,
        instance_id: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The group's lifecycle hook by name; `None` when the group has no such hook.
    fn describe_hook(
        &self,
        asg: &str,
        hook: &str,
    ) -> impl Future<Output = Result<Option<LifecycleHookFacts>, PortError>> + Send;
    fn heartbeat(&self, hook: &LifecycleRef) -> impl Future<Output = Result<(), PortError>> + Send;
    fn complete(
        &self,
        hook: &LifecycleRef,
        result: LifecycleResult,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}
