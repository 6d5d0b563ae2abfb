//! Out of rotation, then evicted: which targets costop deregisters, which pods it relabels out
//! of their Services, and which pods wait for both before their eviction.
//!
//! A pod serves a load balancer when its IP is a target of an IP target group, or when its
//! workload opted in to the [`crate::constants::LABEL_SERVING`] label (its Service selects on
//! it, whatever the target type behind the Service). costop deregisters the targets no
//! controller keeps (the instance, its IPs, its pods' IPs). The groups the AWS Load Balancer
//! Controller keeps it leaves to the controller, which registers every ready endpoint and would
//! undo a deregistration: the controller drops the node (it carries the exclude label from the
//! cordon) and the pods costop relabels out of their Services, and costop waits for that. A pod
//! of a kept group whose workload did not opt in cannot be taken out without fighting the
//! controller: it is still evicted after the wait, and without a preStop delay the requests
//! the load balancer sends it until the controller deregisters it fail. An opted-in pod whose
//! every group the traffic shift takes out of the rules' direct path keeps its label: only the
//! fallback's forwards reach it, and they retry what it refuses once it stops.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::action::{DeregisterTargets, PodUid, Rotation};
use super::drain::{PodDisposition, classify_pod};
use crate::config::Config;
use crate::facts::{InstanceFacts, PodFacts, TargetGroupFacts, TargetType};

/// Pods costop relabels out of their Services: evictable, not terminating, opted in, and not
/// served only through groups the traffic shift takes out of every rule's direct path
/// (`shifted_away`). Such a pod gets no request from a client any more, only the fallback's
/// forwards through its upstream, which retry what a stopping pod refuses: taking it out of
/// its Service as well would only take its capacity from the fallback until its eviction.
pub fn to_relabel(
    pods: &[PodFacts],
    groups: &[TargetGroupFacts],
    shifted_away: &BTreeSet<String>,
) -> Vec<PodUid> {
    let mut out: Vec<PodUid> = pods
        .iter()
        .filter(|p| {
            p.in_rotation_by_label()
                && p.deletion_timestamp.is_none()
                && classify_pod(p) == PodDisposition::Evict
                && !only_behind_shifted_away(p, groups, shifted_away)
        })
        .map(|p| PodUid {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
        })
        .collect();
    out.sort();
    out
}

/// Whether every group that reaches `pod` is one the shift takes out of every rule's direct
/// path: its IP is a target of at least one group, every such group is shifted away, and so is
/// every instance group (which reaches pods through any node's Service port).
fn only_behind_shifted_away(
    pod: &PodFacts,
    groups: &[TargetGroupFacts],
    shifted_away: &BTreeSet<String>,
) -> bool {
    let Some(ip) = pod.ip.as_deref() else {
        return false;
    };
    let has_ip = |g: &TargetGroupFacts| g.targets.iter().any(|t| t.id == ip);
    groups
        .iter()
        .any(|g| g.target_type == TargetType::Ip && has_ip(g))
        && groups
            .iter()
            .filter(|g| g.target_type == TargetType::Instance || has_ip(g))
            .all(|g| shifted_away.contains(&g.arn))
}

/// The deregistrations, one per group no controller keeps that holds the instance's targets
/// or its pods' IPs. Groups the controller keeps are left to it: it deregisters the node of
/// an instance group once the node carries the exclude-from-load-balancers label, and a pod's IP
/// once the pod leaves its Service; a deregistration of costop's before that would be undone.
pub fn deregistrations(
    groups: &[TargetGroupFacts],
    instance: &InstanceFacts,
    pods: &[PodFacts],
) -> Vec<DeregisterTargets> {
    let ips: BTreeSet<&str> = pods.iter().filter_map(|p| p.ip.as_deref()).collect();
    groups
        .iter()
        .filter(|g| !g.kept_by_controller)
        .filter_map(|g| group_targets(g, instance, &ips))
        .collect()
}

/// The targets the drain waits to see `draining` or gone: those costop deregisters, and in
/// the groups the controller keeps, the instance's and those of the pods relabeled out of
/// their Services, which the controller deregisters.
pub fn watched(
    groups: &[TargetGroupFacts],
    instance: &InstanceFacts,
    pods: &[PodFacts],
    relabeled: &[PodUid],
) -> Vec<DeregisterTargets> {
    let all: BTreeSet<&str> = pods.iter().filter_map(|p| p.ip.as_deref()).collect();
    let leaving: BTreeSet<&str> = pods
        .iter()
        .filter(|p| relabeled.iter().any(|r| r.uid == p.uid))
        .filter_map(|p| p.ip.as_deref())
        .collect();
    groups
        .iter()
        .filter_map(|g| {
            group_targets(
                g,
                instance,
                if g.kept_by_controller { &leaving } else { &all },
            )
        })
        .collect()
}

/// `g`'s targets that are the instance, or one of `ips`.
fn group_targets(
    g: &TargetGroupFacts,
    instance: &InstanceFacts,
    ips: &BTreeSet<&str>,
) -> Option<DeregisterTargets> {
    let mut targets = g.targets_of(instance);
    for t in g.targets_at(ips.iter().copied()) {
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    (!targets.is_empty()).then(|| DeregisterTargets {
        target_group_arn: g.arn.clone(),
        target_type: g.target_type,
        targets,
    })
}

/// The uids of the pods that wait for the rotation: those relabeled, those costop
/// deregisters (an IP target of a group no controller keeps), and the IP targets of a group
/// the traffic shift takes out of every rule's direct path (`shifted_away`, see
/// [`crate::shift::fully_shifted`]): the settle time covers the rules' propagation. A pod of
/// any other kept group that did not opt in stays registered until the controller sees it
/// terminate: waiting would not take it out, so it is evicted at once.
pub fn serving(
    groups: &[TargetGroupFacts],
    pods: &[PodFacts],
    relabeled: &[PodUid],
    shifted_away: &BTreeSet<String>,
) -> BTreeSet<String> {
    let target_ips: BTreeSet<&str> = groups
        .iter()
        .filter(|g| {
            g.target_type == TargetType::Ip
                && (!g.kept_by_controller || shifted_away.contains(&g.arn))
        })
        .flat_map(|g| g.targets.iter().map(|t| t.id.as_str()))
        .collect();
    pods.iter()
        .filter(|p| {
            relabeled.iter().any(|r| r.uid == p.uid)
                || p.ip.as_deref().is_some_and(|ip| target_ips.contains(ip))
        })
        .map(|p| p.uid.clone())
        .collect()
}

/// The rotation for a drain that evicts serving pods from `now` on and must be done by
/// `evict_by`: the wait for `draining` ends by `now` plus the configured maximum, and early
/// enough that the settle time still ends by `evict_by`.
pub fn rotation(
    relabel: Vec<PodUid>,
    watch: Vec<DeregisterTargets>,
    config: &Config,
    now: DateTime<Utc>,
    evict_by: DateTime<Utc>,
) -> Rotation {
    let settle = TimeDelta::seconds(config.rotation_settle_seconds);
    let wait_until = (now + TimeDelta::seconds(config.rotation_max_wait_seconds))
        .min(evict_by - settle)
        .max(now);
    Rotation {
        relabel,
        watch,
        wait_until,
        settle_seconds: config.rotation_settle_seconds,
    }
}

impl Rotation {
    /// The latest moment the serving pods' evictions begin.
    pub fn ends_by(&self) -> DateTime<Utc> {
        self.wait_until + TimeDelta::seconds(self.settle_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::InstanceState;
    use crate::facts::{Lifecycle, OwnerRef, PodPhase, RegisteredTarget};

    fn instance() -> InstanceFacts {
        InstanceFacts {
            instance_id: "i-1".into(),
            state: InstanceState::Running,
            lifecycle: Lifecycle::Spot,
            instance_type: None,
            availability_zone: None,
            private_dns_name: None,
            private_ips: vec!["10.0.0.1".into()],
            tags: Default::default(),
        }
    }

    fn pod(name: &str, ip: &str, opted_in: bool) -> PodFacts {
        let mut labels = std::collections::BTreeMap::new();
        if opted_in {
            labels.insert(
                crate::constants::LABEL_SERVING.to_owned(),
                crate::constants::LABEL_SERVING_IN.to_owned(),
            );
        }
        PodFacts {
            namespace: "shop".into(),
            name: name.into(),
            uid: format!("u-{name}"),
            owner: Some(OwnerRef {
                kind: "ReplicaSet".into(),
                name: "web-1".into(),
            }),
            annotations: Default::default(),
            labels,
            phase: PodPhase::Running,
            deletion_timestamp: None,
            termination_grace_period_seconds: None,
            priority: None,
            priority_class_name: None,
            requests: Default::default(),
            volumes: Vec::new(),
            node_selector: Default::default(),
            tolerations: Vec::new(),
            created_at: None,
            resource_version: None,
            ip: Some(ip.into()),
        }
    }

    fn group(arn: &str, t: TargetType, kept: bool, ids: &[&str]) -> TargetGroupFacts {
        TargetGroupFacts {
            arn: arn.into(),
            target_type: t,
            targets: ids
                .iter()
                .map(|id| RegisteredTarget {
                    id: (*id).into(),
                    port: Some(8080),
                    availability_zone: None,
                })
                .collect(),
            kept_by_controller: kept,
            registered: 0,
        }
    }

    fn ids(d: &DeregisterTargets) -> Vec<&str> {
        d.targets.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn only_opted_in_running_evictable_pods_are_relabeled() {
        let mut terminating = pod("c", "10.1.0.3", true);
        terminating.deletion_timestamp = Some(Utc::now());
        let pods = [
            pod("a", "10.1.0.1", true),
            pod("b", "10.1.0.2", false),
            terminating,
        ];
        let names: Vec<String> = to_relabel(&pods, &[], &BTreeSet::new())
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn a_group_no_controller_keeps_loses_every_pod_of_the_node_and_the_instance_ips() {
        let pods = [pod("a", "10.1.0.1", false), pod("b", "10.1.0.2", false)];
        let groups = [group(
            "tg",
            TargetType::Ip,
            false,
            &["10.0.0.1", "10.1.0.1", "10.1.0.2", "10.9.9.9"],
        )];
        let d = deregistrations(&groups, &instance(), &pods);
        assert_eq!(ids(&d[0]), ["10.0.0.1", "10.1.0.1", "10.1.0.2"]);
        assert_eq!(watched(&groups, &instance(), &pods, &[]), d);
    }

    #[test]
    fn a_group_the_controller_keeps_is_left_to_it_and_only_leaving_pods_are_watched() {
        let pods = [pod("a", "10.1.0.1", true), pod("b", "10.1.0.2", false)];
        let groups = [
            group("ip", TargetType::Ip, true, &["10.1.0.1", "10.1.0.2"]),
            group("inst", TargetType::Instance, true, &["i-1", "i-2"]),
        ];
        let relabel = to_relabel(&pods, &[], &BTreeSet::new());
        assert!(deregistrations(&groups, &instance(), &pods).is_empty());
        let w = watched(&groups, &instance(), &pods, &relabel);
        assert_eq!((ids(&w[0]), ids(&w[1])), (vec!["10.1.0.1"], vec!["i-1"]));
        let without_opt_in = watched(&groups, &instance(), &pods, &[]);
        assert_eq!(
            without_opt_in.len(),
            1,
            "only the instance: {without_opt_in:?}"
        );
    }

    #[test]
    fn instance_targets_are_deregistered_by_instance_id_only() {
        let pods = [pod("a", "10.1.0.1", false)];
        let groups = [group("tg", TargetType::Instance, false, &["i-1", "i-2"])];
        let d = deregistrations(&groups, &instance(), &pods);
        assert_eq!(ids(&d[0]), ["i-1"]);
    }

    #[test]
    fn pods_wait_when_costop_deregisters_relabels_or_shifts_them_away_and_others_do_not() {
        let pods = [
            pod("registered", "10.1.0.1", false),
            pod("opted-in", "10.1.0.2", true),
            pod("kept-not-opted-in", "10.1.0.4", false),
            pod("neither", "10.1.0.3", false),
        ];
        let groups = [
            group("tg", TargetType::Ip, false, &["10.1.0.1"]),
            group("kept", TargetType::Ip, true, &["10.1.0.2", "10.1.0.4"]),
        ];
        let s = serving(
            &groups,
            &pods,
            &to_relabel(&pods, &[], &BTreeSet::new()),
            &BTreeSet::new(),
        );
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            ["u-opted-in", "u-registered"]
        );
        // Once the shift takes the kept group out of every rule's direct path, its pods wait
        // for the rules' propagation too, opted in or not.
        let shifted = BTreeSet::from(["kept".to_owned()]);
        let s = serving(
            &groups,
            &pods,
            &to_relabel(&pods, &[], &BTreeSet::new()),
            &shifted,
        );
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            ["u-kept-not-opted-in", "u-opted-in", "u-registered"]
        );
    }

    #[test]
    fn an_opted_in_pod_served_only_through_groups_shifted_away_keeps_its_label() {
        let pods = [
            pod("behind-shifted", "10.1.0.1", true),
            pod("behind-both", "10.1.0.2", true),
            pod("behind-none", "10.1.0.3", true),
        ];
        let groups = [
            group("shifted", TargetType::Ip, true, &["10.1.0.1", "10.1.0.2"]),
            group("direct", TargetType::Ip, true, &["10.1.0.2"]),
        ];
        let shifted = BTreeSet::from(["shifted".to_owned()]);
        let names = |groups: &[TargetGroupFacts], shifted: &BTreeSet<String>| -> Vec<String> {
            to_relabel(&pods, groups, shifted)
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(names(&groups, &shifted), ["behind-both", "behind-none"]);
        assert_eq!(
            names(&groups, &BTreeSet::new()),
            ["behind-both", "behind-none", "behind-shifted"]
        );
        // An instance group still sends clients through the Service's node ports.
        let with_instances = [
            groups[0].clone(),
            group("inst", TargetType::Instance, true, &["i-2"]),
        ];
        assert_eq!(
            names(&with_instances, &shifted),
            ["behind-both", "behind-none", "behind-shifted"]
        );
        // Still a serving pod: it waits for the rules' propagation before its eviction.
        let s = serving(
            &groups,
            &pods,
            &to_relabel(&pods, &groups, &shifted),
            &shifted,
        );
        assert!(s.contains("u-behind-shifted"), "{s:?}");
    }

    #[test]
    fn the_wait_ends_in_time_for_the_settle_before_evict_by() {
        let c = Config {
            rotation_max_wait_seconds: 20,
            rotation_settle_seconds: 10,
            ..Config::default()
        };
        let now = Utc::now();
        let roomy = rotation(
            Vec::new(),
            Vec::new(),
            &c,
            now,
            now + TimeDelta::seconds(100),
        );
        assert_eq!(roomy.wait_until, now + TimeDelta::seconds(20));
        assert_eq!(roomy.ends_by(), now + TimeDelta::seconds(30));
        let tight = rotation(
            Vec::new(),
            Vec::new(),
            &c,
            now,
            now + TimeDelta::seconds(15),
        );
        assert_eq!(tight.wait_until, now + TimeDelta::seconds(5));
        let none = rotation(Vec::new(), Vec::new(), &c, now, now + TimeDelta::seconds(3));
        assert_eq!(none.wait_until, now);
    }
}
