//! In-memory AWS ports for fast tests: EC2 instances, ELBv2 target groups, Auto Scaling hooks
//! and calls, and the DynamoDB table (with the dedupe condition's semantics). They record every mutating
//! call so tests can assert on what costop did; the Kubernetes side of the fast tests is kubesim
//! in-process (see the `costop-tests` crate). [`fallback`] holds the fallback's queue and
//! upstream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use costop_core::event::InstanceState;
use costop_core::facts::{
    InstanceFacts, LifecycleHookFacts, RegisteredTarget, TargetGroupFacts, TargetServing,
};
use costop_core::plan::action::{DeregisterTargets, LifecycleRef, LifecycleResult, RecordEvent};
use costop_core::record::{self, Attr, Item, Key, StandbyLease, Update};
use costop_core::shift::{
    RuleFacts, WeightedGroup, load_balancer_of, load_balancers_forwarding_to,
};
use costop_core::standby::TagChange;

use crate::ports::{Asg, Claim, Ec2, Elb, LeaseClaim, PortError, Records};

pub mod fallback;
pub use fallback::{FakeQueue, FakeUpstream};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Called with every instance after each state or type change, so a test world can hand the
/// new snapshot to kubesim's node link (as the bed's EC2 link does for moto).
pub type InstanceObserver = Arc<dyn Fn(Vec<InstanceFacts>) + Send + Sync>;

/// Called with each mutating call as it arrives, before the fake acts on it: a test's way to
/// make something happen "meanwhile" (another function starting an instance, say).
pub type CallHook = Arc<dyn Fn(&Ec2Call) + Send + Sync>;

/// A recorded mutating EC2 call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ec2Call {
    Tag {
        instance_id: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    Retype {
        instance_id: String,
        instance_type: String,
    },
    Start(String),
    Stop(String),
}

/// EC2 instances by id. Start and stop take effect at once (`running`, `stopped`); retyping
/// a running instance is refused, as EC2 does.
#[derive(Clone, Default)]
pub struct FakeEc2 {
    pub instances: Arc<Mutex<BTreeMap<String, InstanceFacts>>>,
    pub calls: Arc<Mutex<Vec<Ec2Call>>>,
    observer: Arc<Mutex<Option<InstanceObserver>>>,
    hook: Arc<Mutex<Option<CallHook>>>,
}

impl FakeEc2 {
    pub fn insert(&self, i: InstanceFacts) {
        lock(&self.instances).insert(i.instance_id.clone(), i);
    }

    /// Call `f` with every instance after each state or type change.
    pub fn observe(&self, f: InstanceObserver) {
        *lock(&self.observer) = Some(f);
    }

    /// Call `f` with each mutating call before it takes effect.
    pub fn before_call(&self, f: CallHook) {
        *lock(&self.hook) = Some(f);
    }

    /// The instance now.
    pub fn get(&self, id: &str) -> Option<InstanceFacts> {
        lock(&self.instances).get(id).cloned()
    }

    /// Change an instance as EC2 would, then tell the observer.
    pub fn change(&self, id: &str, f: impl FnOnce(&mut InstanceFacts)) -> Result<(), PortError> {
        let snapshot = {
            let mut m = lock(&self.instances);
            let i = m.get_mut(id).ok_or_else(|| PortError::NotFound {
                op: "ec2",
                what: format!("instance {id}"),
            })?;
            f(i);
            m.values().cloned().collect::<Vec<_>>()
        };
        let observer = lock(&self.observer).clone();
        if let Some(o) = observer {
            o(snapshot);
        }
        Ok(())
    }

    fn call(&self, c: Ec2Call) {
        let hook = lock(&self.hook).clone();
        if let Some(h) = hook {
            h(&c);
        }
        lock(&self.calls).push(c);
    }
}

impl Ec2 for FakeEc2 {
    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<InstanceFacts>, PortError> {
        let m = lock(&self.instances);
        Ok(ids.iter().filter_map(|id| m.get(id).cloned()).collect())
    }
    async fn standbys(&self) -> Result<Vec<InstanceFacts>, PortError> {
        Ok(lock(&self.instances)
            .values()
            .filter(|i| costop_core::standby::is_standby(i) && i.state != InstanceState::Terminated)
            .cloned()
            .collect())
    }
    async fn tag_standby(&self, change: &TagChange) -> Result<(), PortError> {
        self.call(Ec2Call::Tag {
            instance_id: change.instance_id.clone(),
            set: change.set.clone(),
            remove: change.remove.clone(),
        });
        let mut m = lock(&self.instances);
        let i = m
            .get_mut(&change.instance_id)
            .ok_or_else(|| PortError::NotFound {
                op: "create tags",
                what: change.instance_id.clone(),
            })?;
        i.tags.extend(change.set.clone());
        for k in &change.remove {
            i.tags.remove(k);
        }
        Ok(())
    }
    async fn retype(&self, instance_id: &str, instance_type: &str) -> Result<(), PortError> {
        self.call(Ec2Call::Retype {
            instance_id: instance_id.into(),
            instance_type: instance_type.into(),
        });
        if self
            .get(instance_id)
            .is_some_and(|i| i.state != InstanceState::Stopped)
        {
            return Err(PortError::WrongState {
                op: "retype standby",
                source: format!("IncorrectInstanceState: {instance_id} is not stopped").into(),
            });
        }
        self.change(instance_id, |i| {
            i.instance_type = Some(instance_type.into())
        })
    }
    async fn start(&self, instance_id: &str) -> Result<(), PortError> {
        self.call(Ec2Call::Start(instance_id.into()));
        self.change(instance_id, |i| i.state = InstanceState::Running)
    }
    async fn stop(&self, instance_id: &str) -> Result<(), PortError> {
        self.call(Ec2Call::Stop(instance_id.into()));
        self.change(instance_id, |i| i.state = InstanceState::Stopped)
    }
}

/// Target groups by ARN, listener rules by ARN, every deregistration, and every rule whose
/// forward was set (by ARN, in order).
#[derive(Clone, Default)]
pub struct FakeElb {
    pub groups: Arc<Mutex<BTreeMap<String, TargetGroupFacts>>>,
    pub rules: Arc<Mutex<BTreeMap<String, RuleFacts>>>,
    pub deregistered: Arc<Mutex<Vec<DeregisterTargets>>>,
    pub forwards_set: Arc<Mutex<Vec<String>>>,
}

impl Elb for FakeElb {
    async fn target_groups(&self) -> Result<Vec<TargetGroupFacts>, PortError> {
        Ok(lock(&self.groups).values().cloned().collect())
    }
    async fn deregister(&self, action: &DeregisterTargets) -> Result<(), PortError> {
        if let Some(g) = lock(&self.groups).get_mut(&action.target_group_arn) {
            g.targets.retain(|t| {
                !action
                    .targets
                    .iter()
                    .any(|d| d.id == t.id && (d.port.is_none() || d.port == t.port))
            });
        }
        lock(&self.deregistered).push(action.clone());
        Ok(())
    }
    /// A registered target is in service; a deregistered one is gone at once (the fake keeps
    /// no deregistration delay).
    async fn serving(
        &self,
        group: &DeregisterTargets,
    ) -> Result<Vec<(RegisteredTarget, TargetServing)>, PortError> {
        let groups = lock(&self.groups);
        let registered = groups
            .get(&group.target_group_arn)
            .map(|g| g.targets.as_slice())
            .unwrap_or_default();
        Ok(group
            .targets
            .iter()
            .map(|t| {
                let known = registered
                    .iter()
                    .any(|r| r.id == t.id && (t.port.is_none() || r.port == t.port));
                let state = if known {
                    TargetServing::InService
                } else {
                    TargetServing::Gone
                };
                (t.clone(), state)
            })
            .collect())
    }
    async fn listener_rules(&self) -> Result<Vec<RuleFacts>, PortError> {
        Ok(lock(&self.rules).values().cloned().collect())
    }
    async fn set_forward(
        &self,
        rule: &RuleFacts,
        forward: &[WeightedGroup],
    ) -> Result<(), PortError> {
        lock(&self.forwards_set).push(rule.arn.clone());
        let mut rules = lock(&self.rules);
        // A target group serves one load balancer at most (ELBv2's TargetGroupAssociationLimit,
        // as the bed's moto has it).
        let lb = load_balancer_of(&rule.listener_arn);
        let taken = forward.iter().find(|g| {
            load_balancers_forwarding_to(rules.values(), &g.target_group_arn)
                .iter()
                .any(|other| *other != lb)
        });
        if let Some(g) = taken {
            return Err(PortError::Permanent {
                op: "set forward",
                source: format!(
                    "TargetGroupAssociationLimit: {} serves another load balancer",
                    g.target_group_arn
                )
                .into(),
            });
        }
        match rules.get_mut(&rule.arn) {
            Some(r) => {
                r.forward = forward.to_vec();
                Ok(())
            }
            None => Err(PortError::NotFound {
                op: "set forward",
                what: format!("rule {}", rule.arn),
            }),
        }
    }
    /// Every registered target is healthy: the fake keeps no health checks.
    async fn in_service(&self, target_group_arn: &str) -> Result<Option<Vec<String>>, PortError> {
        Ok(lock(&self.groups)
            .get(target_group_arn)
            .map(|g| g.targets.iter().map(|t| t.id.clone()).collect()))
    }
}

/// A recorded Auto Scaling call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsgCall {
    Detach {
        asg: String,
        instance_id: String,
    },
    Heartbeat(LifecycleRef),
    Complete {
        hook: LifecycleRef,
        result: LifecycleResult,
    },
}

/// Auto Scaling: lifecycle hooks by (group, hook name), and every call with when it came.
#[derive(Clone, Default)]
pub struct FakeAsg {
    pub hooks: Arc<Mutex<BTreeMap<(String, String), LifecycleHookFacts>>>,
    pub calls: Arc<Mutex<Vec<(Instant, AsgCall)>>>,
}

impl FakeAsg {
    /// Give `asg` a lifecycle hook named `hook`.
    pub fn put_hook(&self, asg: &str, hook: &str, facts: LifecycleHookFacts) {
        lock(&self.hooks).insert((asg.into(), hook.into()), facts);
    }

    fn call(&self, c: AsgCall) {
        lock(&self.calls).push((Instant::now(), c));
    }
}

impl Asg for FakeAsg {
    async fn detach(&self, asg: &str, instance_id: &str) -> Result<(), PortError> {
        self.call(AsgCall::Detach {
            asg: asg.into(),
            instance_id: instance_id.into(),
        });
        Ok(())
    }
    async fn describe_hook(
        &self,
        asg: &str,
        hook: &str,
    ) -> Result<Option<LifecycleHookFacts>, PortError> {
        Ok(lock(&self.hooks)
            .get(&(asg.to_owned(), hook.to_owned()))
            .copied())
    }
    async fn heartbeat(&self, hook: &LifecycleRef) -> Result<(), PortError> {
        self.call(AsgCall::Heartbeat(hook.clone()));
        Ok(())
    }
    async fn complete(
        &self,
        hook: &LifecycleRef,
        result: LifecycleResult,
    ) -> Result<(), PortError> {
        self.call(AsgCall::Complete {
            hook: hook.clone(),
            result,
        });
        Ok(())
    }
}

/// The table: items by (pk, sk).
#[derive(Clone, Default)]
pub struct FakeRecords {
    pub items: Arc<Mutex<BTreeMap<(String, String), Item>>>,
}

fn key_of(item: &Item) -> Option<(String, String)> {
    record::Key::of(item).map(|k| (k.pk, k.sk))
}

fn missing_key() -> PortError {
    PortError::Permanent {
        op: "put item",
        source: "item has no pk/sk string attributes".into(),
    }
}

impl Records for FakeRecords {
    async fn get(&self, key: &Key) -> Result<Option<Item>, PortError> {
        Ok(lock(&self.items)
            .get(&(key.pk.clone(), key.sk.clone()))
            .cloned())
    }
    async fn put(&self, item: Item) -> Result<(), PortError> {
        let k = key_of(&item).ok_or_else(missing_key)?;
        lock(&self.items).insert(k, item);
        Ok(())
    }
    async fn claim(&self, action: &RecordEvent, now: DateTime<Utc>) -> Result<Claim, PortError> {
        // The same condition as `record::dedupe_put`'s expression, evaluated directly.
        let put = record::dedupe_put(action, now);
        let k = key_of(&put.item).ok_or_else(missing_key)?;
        let mut items = lock(&self.items);
        let allowed = match items.get(&k) {
            None => true,
            Some(existing) => {
                let unfinished = matches!(existing.get("completed"), Some(Attr::Bool(false)));
                let first = match existing.get("first_seen_epoch") {
                    Some(Attr::N(n)) => n.parse::<i64>().unwrap_or(i64::MAX),
                    _ => i64::MAX,
                };
                let released = matches!(existing.get("released"), Some(Attr::Bool(true)));
                unfinished && (first < action.takeover_if_seen_before.timestamp() || released)
            }
        };
        if !allowed {
            return Ok(Claim::Lost);
        }
        items.insert(k, put.item);
        Ok(Claim::Won)
    }
    async fn lease_standby(
        &self,
        lease: &StandbyLease,
        now: DateTime<Utc>,
    ) -> Result<LeaseClaim, PortError> {
        // The same condition as `record::standby_lease_put`'s expression, evaluated directly.
        let put = record::standby_lease_put(lease, now);
        let k = key_of(&put.item).ok_or_else(missing_key)?;
        let mut items = lock(&self.items);
        if let Some(existing) = items.get(&k) {
            let same = existing.get("interruption_id") == Some(&Attr::s(&lease.interruption_id));
            let released = matches!(existing.get("released"), Some(Attr::Bool(true)));
            let taken = match existing.get("taken_epoch") {
                Some(Attr::N(n)) => n.parse::<i64>().unwrap_or(i64::MAX),
                _ => i64::MAX,
            };
            let allowed = released
                || taken < lease.takeover_if_taken_before.timestamp()
                || (same && taken < lease.resume_if_taken_before.timestamp());
            if !allowed {
                return Ok(LeaseClaim::Lost {
                    held_by: record::lease_holder(existing).map(str::to_owned),
                });
            }
        }
        items.insert(k, put.item);
        Ok(LeaseClaim::Won)
    }
    async fn delete(&self, key: &Key) -> Result<(), PortError> {
        lock(&self.items).remove(&(key.pk.clone(), key.sk.clone()));
        Ok(())
    }

    async fn update(&self, update: &Update) -> Result<(), PortError> {
        // Only `SET a = :v[, b = :w]` is used by costop.
        let mut items = lock(&self.items);
        let item = items
            .entry((update.key.pk.clone(), update.key.sk.clone()))
            .or_insert_with(|| update.key.to_item());
        let set = update
            .update_expression
            .trim()
            .strip_prefix("SET ")
            .ok_or_else(|| PortError::Permanent {
                op: "update item",
                source: format!(
                    "unsupported update expression {:?}",
                    update.update_expression
                )
                .into(),
            })?;
        for assignment in set.split(',') {
            let (name, value) = assignment
                .split_once('=')
                .ok_or_else(|| PortError::Permanent {
                    op: "update item",
                    source: format!("bad assignment {assignment:?}").into(),
                })?;
            let v = update
                .expression_values
                .get(value.trim())
                .cloned()
                .ok_or_else(|| PortError::Permanent {
                    op: "update item",
                    source: format!("no value for {}", value.trim()).into(),
                })?;
            item.insert(name.trim().to_string(), v);
        }
        Ok(())
    }
    async fn query(&self, pk: &str) -> Result<Vec<Item>, PortError> {
        Ok(lock(&self.items)
            .iter()
            .filter(|((p, _), _)| p == pk)
            .map(|(_, v)| v.clone())
            .collect())
    }
    async fn query_instance(&self, instance_id: &str) -> Result<Vec<Item>, PortError> {
        let want = Attr::s(record::instance_key(instance_id));
        let mut v: Vec<Item> = lock(&self.items)
            .values()
            .filter(|i| i.get(record::GSI1_PK) == Some(&want))
            .cloned()
            .collect();
        let sort_key = |i: &Item| match i.get(record::GSI1_SK) {
            Some(Attr::S(s)) => s.clone(),
            _ => String::new(),
        };
        v.sort_by_key(sort_key);
        Ok(v)
    }
}
