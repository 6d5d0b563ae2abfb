//! The fast world: AWS as in-memory fakes (`costop_app::fakes`), Kubernetes as kubesim in this
//! process, reached through the real kube adapter. The scenario's node groups become fake EC2
//! instances and, through kubesim's node link, Nodes — the same shape the bed seeds into moto.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use costop_app::fakes::{AsgCall, FakeAsg, FakeEc2, FakeElb, FakeQueue, FakeRecords};
use costop_app::{Fallback, Handler, HandoffQueue, Keeper};
use costop_bed::scenario::{Capacity, PortRef, TargetType as ScenarioTargetType};
use costop_bed::{LifecycleAction, LifecycleCall, Scenario};
use costop_core::event::InstanceState as CoreState;
use costop_core::facts::{
    InstanceFacts, Lifecycle, LifecycleHookFacts, RegisteredTarget, TargetGroupFacts, TargetType,
};
use costop_core::plan::LifecycleResult;
use costop_core::shift::{RuleFacts, WeightedGroup};
use kubesim::nodes::{InstanceFacts as SimInstance, InstanceState as SimState, TaintSpec};
use kubesim::{SimConfig, Simulator};
use std::sync::Mutex;

use crate::{Harness, Setup};

/// AWS fakes plus kube adapter clusters.
pub struct FastWorld {
    pub ec2: FakeEc2,
    pub elb: FakeElb,
    pub asg: FakeAsg,
    pub records: FakeRecords,
    pub clusters: costop_adapters::KubeClusters,
    pub handoff: HandoffQueue,
    /// The fallback's queue, in memory.
    pub queue: FakeQueue,
    /// The upstream: the real HTTP client, to the test's loopback server when it sets one.
    pub upstream: costop_adapters::HttpUpstream,
}

costop_app::has_ports!(FastWorld {
    ec2: FakeEc2,
    elb: FakeElb,
    asg: FakeAsg,
    records: FakeRecords,
    clusters: costop_adapters::KubeClusters,
    handoff: HandoffQueue,
    queue: FakeQueue,
    upstream: costop_adapters::HttpUpstream,
});

impl FastHarness {
    fn with_upstream(&self, upstream: &str) -> costop_core::Config {
        let mut config = self.keeper.config().clone();
        config.fallback_upstream = upstream.to_owned();
        config
    }
    /// A world sharing the fakes' state, its own cluster clients, the upstream of `config`.
    fn world_to(&self, config: &costop_core::Config) -> FastWorld {
        let w = self.keeper.world();
        FastWorld {
            ec2: w.ec2.clone(),
            elb: w.elb.clone(),
            asg: w.asg.clone(),
            records: w.records.clone(),
            clusters: costop_adapters::KubeClusters::new(
                costop_adapters::ClusterAccess::kubeconfig_file(
                    self._dir.path().join("kubeconfig"),
                )
                .expect("kubeconfig"),
                Default::default(),
            ),
            handoff: w.handoff.clone(),
            queue: w.queue.clone(),
            upstream: costop_adapters::HttpUpstream::new(&config.fallback_upstream),
        }
    }
}

/// See the module docs.
pub struct FastHarness {
    sim: Arc<Simulator>,
    handler: Handler<FastWorld>,
    keeper: Keeper<FastWorld>,
    /// kubesim's view of every fake instance, kept in step with the fake EC2.
    sim_instances: Arc<Mutex<BTreeMap<String, SimInstance>>>,
    cluster: String,
    /// The load-balancer controller stand-ins of the bound target groups.
    controllers: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for FastHarness {
    fn drop(&mut self) {
        for c in &self.controllers {
            c.abort();
        }
    }
}

/// The AWS Load Balancer Controller in the fast world: it keeps a bound group's fake targets
/// equal to what the controller would register (the bed stand-in's rules, [`costop_bed::lbc`]),
/// once a change has held for the reconcile delay. Like the real controller it acts on changes
/// in the cluster, not on the group: a target deregistered by someone else stays so until the
/// cluster changes.
fn keep_bound_group(
    sim: Arc<Simulator>,
    elb: FakeElb,
    binding: costop_bed::lbc::Binding,
    reconcile_delay: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut applied = std::collections::BTreeSet::new();
        let mut since: Option<tokio::time::Instant> = None;
        loop {
            tokio::time::sleep(costop_bed::lbc::POLL_INTERVAL).await;
            let Ok(desired) = costop_bed::lbc::desired(&sim, &binding) else {
                continue;
            };
            if desired == applied {
                since = None;
                continue;
            }
            let at = *since.get_or_insert_with(tokio::time::Instant::now);
            if at.elapsed() < reconcile_delay {
                continue;
            }
            let mut groups = elb.groups.lock().unwrap();
            if let Some(g) = groups.get_mut(&binding.target_group_arn) {
                g.targets.retain(|t| {
                    !applied.iter().any(|a: &costop_bed::lbc::Target| {
                        a.id == t.id && Some(a.port) == t.port && !desired.contains(a)
                    })
                });
                for d in desired.difference(&applied) {
                    g.targets.push(RegisteredTarget {
                        id: d.id.clone(),
                        port: Some(d.port),
                        availability_zone: None,
                    });
                }
            }
            drop(groups);
            applied = desired;
            since = None;
        }
    })
}

/// The first listener-rule priority the controller owns, as on the bed.
const INGRESS_FIRST_PRIORITY: usize = costop_bed::lbc::listener::FIRST_PRIORITY as usize;

/// The AWS Load Balancer Controller's Ingress half in the fast world: every `alb` Ingress
/// becomes fake listener rules by the bed stand-in's translation
/// ([`costop_bed::lbc::ingress::rules`]), tagged with their Ingress (`RuleFacts::ingress`),
/// once a change has held for the reconcile delay. Like the stand-in it owns the rules from
/// its first priority up, rewrites them when the Ingresses ask for something else, and leaves
/// the listener as it was when an Ingress cannot be translated.
fn keep_ingress_rules(
    sim: Arc<Simulator>,
    elb: FakeElb,
    bindings: Vec<costop_bed::lbc::Binding>,
    listener_arn: String,
    reconcile_delay: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut applied: Vec<RuleFacts> = Vec::new();
        let mut since: Option<tokio::time::Instant> = None;
        loop {
            tokio::time::sleep(costop_bed::lbc::POLL_INTERVAL).await;
            let Some(desired) = ingress_rules(&sim, &bindings, &listener_arn) else {
                continue;
            };
            if desired == applied {
                since = None;
                continue;
            }
            let at = *since.get_or_insert_with(tokio::time::Instant::now);
            if at.elapsed() < reconcile_delay {
                continue;
            }
            let mut rules = elb.rules.lock().unwrap();
            for r in &applied {
                rules.remove(&r.arn);
            }
            for r in &desired {
                rules.insert(r.arn.clone(), r.clone());
            }
            drop(rules);
            applied = desired;
            since = None;
        }
    })
}

/// Every `alb` Ingress's forward rules, in priority order; `None` when one cannot be translated.
fn ingress_rules(
    sim: &Simulator,
    bindings: &[costop_bed::lbc::Binding],
    listener_arn: &str,
) -> Option<Vec<RuleFacts>> {
    use costop_bed::lbc::ServicePort;
    use kubesim::resources;
    use kubesim::store::ListOptions;
    use serde_json::Value;
    let list = |def| sim.store().list(def, None, &ListOptions::default()).0;
    let mut ingresses: Vec<Value> = list(&resources::INGRESSES)
        .into_iter()
        .filter(|i| {
            i["spec"]["ingressClassName"] == costop_bed::lbc::listener::INGRESS_CLASS
                || i["metadata"]["annotations"]["kubernetes.io/ingress.class"]
                    == costop_bed::lbc::listener::INGRESS_CLASS
        })
        .filter(|i| i["metadata"].get("deletionTimestamp").is_none())
        .collect();
    ingresses.sort_by_key(|i| {
        (
            i["metadata"]["annotations"]["alb.ingress.kubernetes.io/group.order"]
                .as_str()
                .and_then(|o| o.parse::<i64>().ok())
                .unwrap_or(0),
            i["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
            i["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        )
    });
    let services = list(&resources::SERVICES);
    // A Service port named by number or name is one entry of the Service's ports.
    let entry = |ns: &str, svc: &str, port: &str| -> Option<u64> {
        let service = services
            .iter()
            .find(|s| s["metadata"]["namespace"] == ns && s["metadata"]["name"] == svc)?;
        service["spec"]["ports"].as_array()?.iter().find_map(|p| {
            let number = p["port"].as_u64()?;
            let name = p["name"].as_str().unwrap_or("");
            (number.to_string() == port || (!name.is_empty() && name == port)).then_some(number)
        })
    };
    let tg_of = |ns: &str, svc: &str, port: &str| -> Option<String> {
        let wanted = entry(ns, svc, port)?;
        bindings
            .iter()
            .find(|b| {
                let named = match &b.port {
                    ServicePort::Number(n) => n.to_string(),
                    ServicePort::Name(n) => n.clone(),
                };
                b.namespace == ns && b.service == svc && entry(ns, svc, &named) == Some(wanted)
            })
            .map(|b| b.target_group_arn.clone())
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut out = Vec::new();
    for i in &ingresses {
        let rules = costop_bed::lbc::ingress::rules(i, &tg_of).ok()?;
        for rule in rules {
            let priority = INGRESS_FIRST_PRIORITY + out.len();
            let action = &rule.actions[0];
            // Only forwards are costop's (as the ELB adapter reads them).
            let forward: Vec<WeightedGroup> = match action["TargetGroupArn"].as_str() {
                Some(arn) => vec![WeightedGroup {
                    target_group_arn: arn.to_owned(),
                    weight: 1,
                }],
                None => action["ForwardConfig"]["TargetGroups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        Some(WeightedGroup {
                            target_group_arn: t["TargetGroupArn"].as_str()?.to_owned(),
                            weight: u32::try_from(t["Weight"].as_u64()?).ok()?,
                        })
                    })
                    .collect(),
            };
            let field = |f: &str, config: &str| -> Vec<String> {
                rule.conditions
                    .iter()
                    .filter(|c| c["Field"] == f)
                    .flat_map(|c| strings(&c[config]["Values"]))
                    .collect()
            };
            let (hosts, paths) = (
                field("host-header", "HostHeaderConfig"),
                field("path-pattern", "PathPatternConfig"),
            );
            out.push(RuleFacts {
                arn: listener_arn.replace(":listener/", ":listener-rule/")
                    + &format!("/{priority:016x}"),
                listener_arn: listener_arn.to_owned(),
                is_default: false,
                forward,
                ingress: Some(rule.stack),
                hosts,
                paths,
            });
        }
    }
    // A fixed response is not a forward: its rule stays, costop does not see it.
    out.retain(|r| !r.forward.is_empty());
    Some(out)
}

/// (vCPUs, MiB, max pods) of the instance types scenarios use; EKS's max-pods formula values.
fn shape(instance_type: &str) -> (u32, u64, u32) {
    match instance_type {
        "m5.large" | "m5a.large" | "m6i.large" | "m6g.large" | "m7g.large" => (2, 8192, 29),
        "m5.xlarge" | "m5a.xlarge" | "m6i.xlarge" => (4, 16384, 58),
        "m5.2xlarge" | "m5a.2xlarge" => (8, 32768, 58),
        "c5.large" | "c6i.large" => (2, 4096, 29),
        "c5.xlarge" => (4, 8192, 58),
        "r5.large" => (2, 16384, 29),
        "t3.medium" => (2, 4096, 17),
        _ => (2, 8192, 29),
    }
}

/// One fake instance per scenario node-group member, as both costop's and kubesim's facts.
pub fn fake_instances(s: &Scenario) -> Vec<(InstanceFacts, SimInstance, String)> {
    let mut out = Vec::new();
    let mut n = 0u32;
    for ng in &s.node_groups {
        let zones = s.zones_of(ng);
        let count = ng
            .count
            .unwrap_or(if ng.standby { zones.len() as u32 } else { 0 });
        for i in 0..count as usize {
            n += 1;
            let zone = zones[i % zones.len()].clone();
            let zone_ix = s
                .network
                .zones
                .iter()
                .position(|z| z.name == zone)
                .unwrap_or(0);
            let ip = format!("10.0.{}.{}", zone_ix * 16, 10 + n);
            let dns = format!("ip-{}.ec2.internal", ip.replace('.', "-"));
            let id = format!("i-0fa5e{n:012x}");
            let itype = ng.instance_types[i % ng.instance_types.len()].clone();
            let (vcpus, memory_mib, max_pods) = shape(&itype);
            let mut taints: Vec<TaintSpec> = ng
                .taints
                .iter()
                .map(|t| TaintSpec {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: t.effect.clone(),
                })
                .collect();
            if ng.standby {
                taints.push(TaintSpec {
                    key: "costop.io/standby".into(),
                    value: "true".into(),
                    effect: "NoSchedule".into(),
                });
            }
            let mut tags = BTreeMap::from([
                ("eks:cluster-name".to_string(), s.cluster.name.clone()),
                (
                    format!("kubernetes.io/cluster/{}", s.cluster.name),
                    "owned".to_string(),
                ),
                ("eks:nodegroup-name".to_string(), ng.name.clone()),
            ]);
            if ng.standby {
                tags.insert("costop.io/standby".into(), "true".into());
                tags.insert("costop.io/managed".into(), "true".into());
            } else {
                // The node group's ASG, named as the bed names it.
                tags.insert(
                    "aws:autoscaling:groupName".into(),
                    format!("eks-{}-{}", s.cluster.name, ng.name),
                );
            }
            let state = if ng.standby {
                CoreState::Stopped
            } else {
                CoreState::Running
            };
            let core = InstanceFacts {
                instance_id: id.clone(),
                state,
                lifecycle: if ng.capacity == Capacity::Spot {
                    Lifecycle::Spot
                } else {
                    Lifecycle::OnDemand
                },
                instance_type: Some(itype.clone()),
                availability_zone: Some(zone.clone()),
                private_dns_name: Some(dns.clone()),
                private_ips: vec![ip.clone()],
                tags,
            };
            let sim = SimInstance {
                instance_id: id,
                state: if ng.standby {
                    SimState::Stopped
                } else {
                    SimState::Running
                },
                private_dns_name: dns,
                private_ip: Some(ip),
                availability_zone: zone,
                region: s.cluster.region.clone(),
                instance_type: itype,
                vcpus,
                memory_mib,
                max_pods,
                spot: ng.capacity == Capacity::Spot,
                nodegroup: Some(ng.name.clone()),
                labels: ng.labels.clone(),
                taints,
            };
            out.push((core, sim, ng.name.clone()));
        }
    }
    out
}

impl Harness for FastHarness {
    type W = FastWorld;

    async fn start(setup: Setup) -> Self {
        let s = &setup.scenario;
        let sim = Arc::new(
            Simulator::start(SimConfig {
                cluster_name: s.cluster.name.clone(),
                time_scale: s.time_scale,
                node_boot_seconds: s.delays.node_boot,
                pod_start_seconds: s.delays.pod_start,
                ..SimConfig::default()
            })
            .await
            .expect("kubesim starts"),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        let instances = fake_instances(s);
        let ec2 = FakeEc2::default();
        for (core, _, _) in &instances {
            ec2.insert(core.clone());
        }
        sim.observe_instances(instances.iter().map(|(_, sim, _)| sim.clone()).collect());
        // EC2 changes (start, stop, retype, launch) reach kubesim's node link, as the bed's
        // EC2 link does for moto.
        let sim_instances: Arc<Mutex<BTreeMap<String, SimInstance>>> = Arc::new(Mutex::new(
            instances
                .iter()
                .map(|(c, si, _)| (c.instance_id.clone(), si.clone()))
                .collect(),
        ));
        {
            let (sim, known) = (sim.clone(), sim_instances.clone());
            ec2.observe(Arc::new(move |all: Vec<InstanceFacts>| {
                let mut known = known.lock().unwrap();
                for i in &all {
                    let Some(si) = known.get_mut(&i.instance_id) else {
                        continue;
                    };
                    si.state = match i.state {
                        CoreState::Pending => SimState::Pending,
                        CoreState::Running => SimState::Running,
                        CoreState::Stopping => SimState::Stopping,
                        CoreState::Stopped => SimState::Stopped,
                        CoreState::ShuttingDown => SimState::ShuttingDown,
                        CoreState::Terminated => SimState::Terminated,
                    };
                    if let Some(ty) = &i.instance_type {
                        (si.vcpus, si.memory_mib, si.max_pods) = shape(ty);
                        si.instance_type = ty.clone();
                    }
                }
                sim.observe_instances(known.values().cloned().collect());
            }));
        }
        let elb = FakeElb::default();
        let mut controllers = Vec::new();
        let mut bindings = Vec::new();
        let mut group_arns = BTreeMap::new();
        let reconcile_delay = Duration::from_secs_f64(
            s.delays.lb_controller_reconcile / s.time_scale.max(f64::MIN_POSITIVE),
        );
        for tg in &s.target_groups {
            let arn = format!(
                "arn:aws:elasticloadbalancing:{}:123456789012:targetgroup/{}/0123456789abcdef",
                s.cluster.region, tg.name
            );
            let targets = instances
                .iter()
                .filter(|(core, _, ng)| {
                    tg.node_groups.contains(ng) && core.state == CoreState::Running
                })
                .map(|(core, _, _)| RegisteredTarget {
                    id: match tg.target_type {
                        ScenarioTargetType::Instance => core.instance_id.clone(),
                        ScenarioTargetType::Ip => core.private_ips[0].clone(),
                    },
                    port: Some(tg.port),
                    availability_zone: None,
                })
                .collect();
            let target_type = match tg.target_type {
                ScenarioTargetType::Instance => TargetType::Instance,
                ScenarioTargetType::Ip => TargetType::Ip,
            };
            group_arns.insert(tg.name.clone(), arn.clone());
            if let Some(svc) = &tg.service {
                let binding = costop_bed::lbc::Binding {
                    target_group_arn: arn.clone(),
                    target_type: tg.target_type,
                    namespace: svc.namespace.clone(),
                    service: svc.name.clone(),
                    port: match &svc.port {
                        PortRef::Number(n) => costop_bed::lbc::ServicePort::Number(*n),
                        PortRef::Name(n) => costop_bed::lbc::ServicePort::Name(n.clone()),
                    },
                };
                bindings.push(binding.clone());
                controllers.push(keep_bound_group(
                    sim.clone(),
                    elb.clone(),
                    binding,
                    reconcile_delay,
                ));
            }
            elb.groups.lock().unwrap().insert(
                arn.clone(),
                TargetGroupFacts {
                    arn,
                    target_type,
                    targets,
                    kept_by_controller: tg.service.is_some(),
                    registered: 0,
                },
            );
        }
        // The listener as the bed seeds it: the default rule forwards to the first HTTP group,
        // a path rule per other HTTP group.
        if let Some(lb) = &s.load_balancer {
            let listener_arn = format!(
                "arn:aws:elasticloadbalancing:{}:123456789012:listener/app/{}/0123456789abcdef/0123456789abcdef",
                s.cluster.region, lb.name
            );
            let http: Vec<_> = s
                .target_groups
                .iter()
                .filter(|t| t.protocol != costop_bed::scenario::Protocol::Tcp)
                .collect();
            let mut rules = elb.rules.lock().unwrap();
            for (i, tg) in http.iter().enumerate() {
                let arn =
                    listener_arn.replace(":listener/", ":listener-rule/") + &format!("/{i:016x}");
                rules.insert(
                    arn.clone(),
                    RuleFacts {
                        arn,
                        listener_arn: listener_arn.clone(),
                        is_default: i == 0,
                        forward: vec![WeightedGroup {
                            target_group_arn: group_arns[&tg.name].clone(),
                            weight: 1,
                        }],
                        ingress: None,
                        hosts: Vec::new(),
                        // As the bed seeds them.
                        paths: if i == 0 {
                            Vec::new()
                        } else {
                            vec![format!("/{}/*", tg.name)]
                        },
                    },
                );
            }
            drop(rules);
            // As on the bed, the controller runs only when a group is bound to a Service.
            if !bindings.is_empty() {
                controllers.push(keep_ingress_rules(
                    sim.clone(),
                    elb.clone(),
                    bindings.clone(),
                    listener_arn,
                    reconcile_delay,
                ));
            }
        }
        sim.apply_yaml(&s.manifests_yaml())
            .expect("workloads apply");
        crate::settle(&sim, Duration::from_secs(60)).await;
        let config = crate::config(
            vec![
                ("COSTOP_TABLE".into(), s.table.name.clone()),
                ("COSTOP_CLUSTER".into(), s.cluster.name.clone()),
            ],
            &setup,
            |name| group_arns.get(name).cloned(),
        );
        let access =
            costop_adapters::ClusterAccess::kubeconfig_file(&kubeconfig).expect("kubeconfig");
        let world = FastWorld {
            ec2,
            elb,
            asg: FakeAsg::default(),
            records: FakeRecords::default(),
            clusters: costop_adapters::KubeClusters::new(access, Default::default()),
            handoff: HandoffQueue::default(),
            queue: FakeQueue::default(),
            upstream: costop_adapters::HttpUpstream::new(&config.fallback_upstream),
        };
        // The keeper's world shares the fakes' state; its cluster clients are its own.
        let keeper_world = FastWorld {
            ec2: world.ec2.clone(),
            elb: world.elb.clone(),
            asg: world.asg.clone(),
            records: world.records.clone(),
            clusters: costop_adapters::KubeClusters::new(
                costop_adapters::ClusterAccess::kubeconfig_file(&kubeconfig).expect("kubeconfig"),
                Default::default(),
            ),
            handoff: world.handoff.clone(),
            queue: world.queue.clone(),
            upstream: world.upstream.clone(),
        };
        let keeper = Keeper::new(keeper_world, config.clone());
        Self {
            sim,
            handler: Handler::new(world, config),
            keeper,
            sim_instances,
            cluster: s.cluster.name.clone(),
            controllers,
            _dir: dir,
        }
    }
    fn handler(&self) -> &Handler<FastWorld> {
        &self.handler
    }
    fn keeper(&self) -> &Keeper<FastWorld> {
        &self.keeper
    }
    async fn launch_spot_like(&self, instance_id: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ec2 = &self.handler.world().ec2;
        let mut core = ec2.get(instance_id).expect("source instance");
        let id = format!("i-0fa5ee{n:011x}");
        let ip = format!("10.0.200.{n}");
        let dns = format!("ip-{}.ec2.internal", ip.replace('.', "-"));
        let mut si = self
            .sim_instances
            .lock()
            .unwrap()
            .get(instance_id)
            .cloned()
            .expect("source in kubesim");
        (
            core.instance_id,
            core.state,
            core.private_dns_name,
            core.private_ips,
        ) = (
            id.clone(),
            CoreState::Running,
            Some(dns.clone()),
            vec![ip.clone()],
        );
        (si.instance_id, si.state, si.private_dns_name, si.private_ip) =
            (id.clone(), SimState::Running, dns, Some(ip));
        self.sim_instances.lock().unwrap().insert(id.clone(), si);
        ec2.insert(core);
        ec2.change(&id, |_| {}).expect("instance exists");
        id
    }
    fn sim(&self) -> &Simulator {
        &self.sim
    }
    fn flavor(&self) -> &'static str {
        "fakes"
    }
    async fn target_ids(&self, target_group: &str) -> Vec<String> {
        let groups = self.handler.world().elb.groups.lock().unwrap();
        groups
            .values()
            .find(|g| g.arn.contains(&format!("/{target_group}/")))
            .map(|g| g.targets.iter().map(|t| t.id.clone()).collect())
            .unwrap_or_default()
    }
    async fn add_internal_load_balancer(&self, name: &str, ips: &[String]) {
        let elb = &self.handler.world().elb;
        let mut groups = elb.groups.lock().unwrap();
        let region = groups
            .keys()
            .find_map(|arn| arn.split(':').nth(3).map(str::to_owned))
            .expect("the scenario has target groups");
        let arn = format!(
            "arn:aws:elasticloadbalancing:{region}:123456789012:targetgroup/{name}/fedcba9876543210"
        );
        groups.insert(
            arn.clone(),
            TargetGroupFacts {
                arn: arn.clone(),
                target_type: TargetType::Ip,
                targets: ips
                    .iter()
                    .map(|ip| RegisteredTarget {
                        id: ip.clone(),
                        port: Some(8080),
                        availability_zone: None,
                    })
                    .collect(),
                kept_by_controller: false,
                registered: 0,
            },
        );
        let listener_arn = format!(
            "arn:aws:elasticloadbalancing:{region}:123456789012:listener/app/{name}/fedcba9876543210/fedcba9876543210"
        );
        let rule_arn = listener_arn.replace(":listener/", ":listener-rule/") + "/0";
        elb.rules.lock().unwrap().insert(
            rule_arn.clone(),
            RuleFacts {
                arn: rule_arn,
                listener_arn,
                is_default: true,
                forward: vec![WeightedGroup {
                    target_group_arn: arn,
                    weight: 1,
                }],
                ingress: None,
                hosts: Vec::new(),
                paths: Vec::new(),
            },
        );
    }
    async fn register_target(&self, target_group: &str, id: &str) {
        let mut groups = self.handler.world().elb.groups.lock().unwrap();
        let g = groups
            .values_mut()
            .find(|g| g.arn.contains(&format!("/{target_group}/")))
            .expect("target group in scenario");
        let port = g.targets.first().and_then(|t| t.port);
        g.targets.push(RegisteredTarget {
            id: id.to_owned(),
            port,
            availability_zone: None,
        });
    }
    async fn foreign_instance(&self) -> String {
        let id = "i-0f0e1e2e3e4e5e6e7".to_string();
        let _ = &self.cluster;
        self.handler.world().ec2.insert(InstanceFacts {
            instance_id: id.clone(),
            state: CoreState::Running,
            lifecycle: Lifecycle::Spot,
            instance_type: Some("m5.large".into()),
            availability_zone: Some("us-east-1a".into()),
            private_dns_name: Some("ip-10-9-0-9.ec2.internal".into()),
            private_ips: vec!["10.9.0.9".into()],
            tags: BTreeMap::from([
                ("eks:cluster-name".into(), "someone-elses".into()),
                ("kubernetes.io/cluster/someone-elses".into(), "owned".into()),
            ]),
        });
        id
    }
    async fn table_items(&self) -> usize {
        self.handler.world().records.items.lock().unwrap().len()
    }
    async fn put_terminate_hook(&self, asg: &str, hook: &str, heartbeat_timeout_seconds: i32) {
        self.handler.world().asg.put_hook(
            asg,
            hook,
            LifecycleHookFacts {
                heartbeat_timeout_seconds: heartbeat_timeout_seconds.into(),
                default_result: LifecycleResult::Continue,
            },
        );
    }
    fn handed_off(&self) -> Vec<serde_json::Value> {
        self.keeper.world().handoff.take()
    }
    fn fallback(&self, upstream: &str) -> Fallback<FastWorld> {
        let config = self.with_upstream(upstream);
        Fallback::new(self.world_to(&config), config)
    }
    fn keeper_to(&self, upstream: &str) -> Keeper<FastWorld> {
        let config = self.with_upstream(upstream);
        Keeper::new(self.world_to(&config), config)
    }
    async fn queue_items(&self) -> usize {
        self.keeper.world().queue.items()
    }
    fn rules_set_directly(&self) -> Option<Vec<String>> {
        Some(
            self.handler
                .world()
                .elb
                .forwards_set
                .lock()
                .unwrap()
                .clone(),
        )
    }
    fn lifecycle_calls(&self) -> Vec<LifecycleCall> {
        let calls = self.handler.world().asg.calls.lock().unwrap();
        calls
            .iter()
            .filter_map(|(at, call)| {
                let (action, hook, result) = match call {
                    AsgCall::Heartbeat(hook) => (LifecycleAction::Heartbeat, hook, None),
                    AsgCall::Complete { hook, result } => (
                        LifecycleAction::Complete,
                        hook,
                        Some(result.as_str().to_owned()),
                    ),
                    AsgCall::Detach { .. } => return None,
                };
                Some(LifecycleCall {
                    action,
                    asg: hook.asg.clone(),
                    hook: hook.hook.clone(),
                    instance_id: Some(hook.instance_id.clone()),
                    token: Some(hook.token.clone()),
                    result,
                    at: *at,
                    refused: None,
                })
            })
            .collect()
    }
}
