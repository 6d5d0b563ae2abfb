//! Scenarios: the world a bed builds, as YAML (see `scenarios/*.yaml` at the repo root).
//!
//! Every struct rejects unknown fields, and [`Scenario::validate`] checks what serde cannot
//! (counts, zone names against the region, CIDRs, references between sections, workload kinds),
//! reporting every problem at once with the path of the offending field.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The scenarios shipped in `scenarios/`, embedded so the binary works from anywhere.
pub mod builtin {
    pub const DEFAULT: &str = include_str!("../../../scenarios/default.yaml");
    pub const DEMO: &str = include_str!("../../../scenarios/demo.yaml");
    pub const PDB_BLOCKED: &str = include_str!("../../../scenarios/pdb-blocked.yaml");
    pub const LARGE: &str = include_str!("../../../scenarios/large.yaml");
    pub const TRAFFIC: &str = include_str!("../../../scenarios/traffic.yaml");

    /// `(name, yaml)` of every built-in scenario.
    pub const ALL: &[(&str, &str)] = &[
        ("default", DEFAULT),
        ("demo", DEMO),
        ("pdb-blocked", PDB_BLOCKED),
        ("large", LARGE),
        ("traffic", TRAFFIC),
    ];

    /// The built-in names, comma-separated, for help texts and errors.
    pub fn names() -> String {
        ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }
}

/// The taint every warm standby carries until costop puts it to work.
pub const STANDBY_TAINT_KEY: &str = "costop.io/standby";

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not fit the scenario schema (the message says which field, and where).
    #[error("scenario {origin} does not fit the scenario schema: {message}")]
    Parse { origin: String, message: String },
    /// Neither a built-in scenario's name nor a file.
    #[error("no built-in scenario `{name}` (built-ins: {builtins}) and no file of that name")]
    Unknown { name: String, builtins: String },
    #[error("scenario `{name}` is invalid:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { name: String, problems: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (shown in logs and the summary).
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub cluster: Cluster,
    /// Simulated seconds per real second (kubesim's clock).
    #[serde(default = "one")]
    pub time_scale: f64,
    #[serde(default)]
    pub delays: Delays,
    pub network: Network,
    pub node_groups: Vec<NodeGroup>,
    #[serde(default)]
    pub target_groups: Vec<TargetGroup>,
    /// An ALB in front of the target groups (needs two zones or more).
    #[serde(default)]
    pub load_balancer: Option<LoadBalancer>,
    pub table: Table,
    /// Kubernetes manifests applied to kubesim in order: one multi-document YAML string, or a
    /// list whose items are objects or multi-document YAML strings.
    #[serde(default)]
    pub workloads: Workloads,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    #[serde(default = "default_region")]
    pub region: String,
}

fn default_region() -> String {
    "us-east-1".into()
}

/// Simulated seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delays {
    /// Instance running → node Ready.
    #[serde(default = "d_node_boot")]
    pub node_boot: f64,
    /// Pod bound → Running/Ready.
    #[serde(default = "d_pod_start")]
    pub pod_start: f64,
    /// Gracefully deleted pod → gone (capped by its termination grace period).
    #[serde(default = "d_pod_stop")]
    pub pod_stop: f64,
    /// Instance stopping → node NotReady (the node lifecycle controller's
    /// `node-monitor-grace-period`).
    #[serde(default = "d_node_monitor_grace")]
    pub node_monitor_grace: f64,
    /// A change of a bound Service's endpoints or of the nodes → its targets registered or
    /// deregistered by the load-balancer controller stand-in (watch, work queue, AWS calls).
    #[serde(default = "d_lb_controller_reconcile")]
    pub lb_controller_reconcile: f64,
    /// A Service's endpoints changed → kube-proxy's rules on the nodes changed
    /// (`--iptables-min-sync-period`, 1 s by default).
    #[serde(default = "d_kube_proxy_sync")]
    pub kube_proxy_sync: f64,
    /// How long a DynamoDB transaction holds its items (another one naming them meanwhile is
    /// cancelled with `TransactionConflict`); 0 turns conflicts off. See
    /// [`crate::moto::MotoOptions`].
    #[serde(default = "d_dynamodb_transaction")]
    pub dynamodb_transaction: f64,
}

fn d_dynamodb_transaction() -> f64 {
    crate::moto::MotoOptions::default()
        .transaction_window
        .as_secs_f64()
}

fn d_kube_proxy_sync() -> f64 {
    1.0
}

fn d_lb_controller_reconcile() -> f64 {
    2.0
}

fn d_node_boot() -> f64 {
    60.0
}
fn d_pod_start() -> f64 {
    5.0
}
fn d_pod_stop() -> f64 {
    5.0
}
fn d_node_monitor_grace() -> f64 {
    40.0
}

impl Default for Delays {
    fn default() -> Self {
        Self {
            node_boot: d_node_boot(),
            pod_start: d_pod_start(),
            pod_stop: d_pod_stop(),
            node_monitor_grace: d_node_monitor_grace(),
            lb_controller_reconcile: d_lb_controller_reconcile(),
            kube_proxy_sync: d_kube_proxy_sync(),
            dynamodb_transaction: d_dynamodb_transaction(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default = "default_vpc_cidr")]
    pub vpc_cidr: String,
    pub zones: Vec<Zone>,
}

fn default_vpc_cidr() -> String {
    "10.0.0.0/16".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// e.g. `us-east-1a`; must belong to the cluster's region.
    pub name: String,
    /// The zone's subnet; default: the zone's /20 (or smaller) slice of the VPC.
    #[serde(default)]
    pub subnet_cidr: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capacity {
    Spot,
    OnDemand,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    pub name: String,
    pub capacity: Capacity,
    /// Instances take these types in turn.
    pub instance_types: Vec<String>,
    /// Instances in the group; default for standbys: one per zone. Required otherwise.
    #[serde(default)]
    pub count: Option<u32>,
    /// Zones the instances are spread over, round-robin; default: every zone of the network.
    #[serde(default)]
    pub zones: Option<Vec<String>>,
    /// Labels the nodes register with (cluster-autoscaler node-template tags).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints the nodes register with (cluster-autoscaler node-template tags).
    #[serde(default)]
    pub taints: Vec<Taint>,
    /// Warm standbys: costop-managed on-demand instances, launched then stopped, pre-tainted
    /// `costop.io/standby=true:NoSchedule`, outside any Auto Scaling group.
    #[serde(default)]
    pub standby: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Http,
    Https,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    Instance,
    Ip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    pub name: String,
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    #[serde(default = "default_target_type")]
    pub target_type: TargetType,
    /// Node groups whose instances are registered (instance id, or private IP for `ip`).
    #[serde(default)]
    pub node_groups: Vec<String>,
    /// A TargetGroupBinding: the bed's load-balancer controller stand-in keeps the group equal
    /// to this Service port's pods (`ip`) or to the nodes on its nodePort (`instance`), as the
    /// AWS Load Balancer Controller does. Excludes `node_groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Health check and deregistration settings; absent ones keep ELBv2's defaults (interval
    /// 30 s, healthy 5, unhealthy 2, deregistration delay 300 s). The AWS Load Balancer
    /// Controller creates its groups with interval 15 s and both thresholds 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_interval_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistration_delay_seconds: Option<u32>,
}

/// The Service port a target group is bound to (a TargetGroupBinding's `serviceRef`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    /// The Service port: its number or its name.
    pub port: PortRef,
}

/// A port by number or name (Kubernetes' `intstr`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

fn default_namespace() -> String {
    "default".to_owned()
}

fn default_protocol() -> Protocol {
    Protocol::Http
}
fn default_target_type() -> TargetType {
    TargetType::Instance
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub name: String,
    /// The listener's port; it forwards to the first HTTP(S) target group, the others get
    /// path rules `/<target-group>/*`.
    #[serde(default = "default_listener_port")]
    pub listener_port: u16,
    /// Run the ALB stand-in: the load balancer serves requests on loopback as moto's ELBv2
    /// state configures it, and DescribeTargetHealth reports its view (`initial`, `unhealthy`,
    /// `draining`), as AWS does.
    #[serde(default)]
    pub stand_in: bool,
    /// costop's fallback function behind this load balancer, as the template deploys it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

fn default_listener_port() -> u16 {
    80
}

/// The fallback function as the template deploys it beside a service's load balancer: a Lambda
/// target group (`target_group`) with the function registered, a rule that keeps its receipts
/// (`/_costop/*`) routed to it, and an internal listener (`upstream_listener_port`, tagged
/// `costop.io/fallback-upstream`, forwarding as the public listener does) as its upstream. With
/// the stand-in, the bed's Lambda service runs the function's processes on demand
/// (`crate::lambda`); moto holds the target group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// The function's name (its ARN is registered as the group's target).
    #[serde(default = "d_fallback_name")]
    pub function: String,
    /// The Lambda target group's name.
    #[serde(default = "d_fallback_name")]
    pub target_group: String,
    /// The internal listener the fallback forwards to (`COSTOP_FALLBACK_UPSTREAM`).
    pub upstream_listener_port: u16,
    /// `COSTOP_FALLBACK_ROUTES` (a JSON array, see the variable's documentation).
    #[serde(default = "d_fallback_routes")]
    pub routes: String,
    /// The function's timeout (the template's: 30 s).
    #[serde(default = "d_fallback_timeout")]
    pub timeout_seconds: u32,
    /// Invocations in flight at most (the function's reserved concurrency, or what the
    /// account's 1,000 leave it); more are throttled and the load balancer answers 502.
    #[serde(default = "d_fallback_concurrency")]
    pub max_concurrency: u32,
    /// Environments one function process carries (`AWS_LAMBDA_MAX_CONCURRENCY`): more than 1
    /// lets a high concurrency fit on a small machine; what the load balancer sees is the same.
    #[serde(default = "d_fallback_per_process")]
    pub environments_per_process: u32,
    /// More of the function's environment (`COSTOP_*` variables beyond the routes and the
    /// upstream, which the bed sets), as the template's parameters would.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// What a new execution environment costs before the function's own init, in ms.
    #[serde(default = "d_fallback_cold_start")]
    pub cold_start_ms: u32,
}

fn d_fallback_name() -> String {
    "costop-fallback".to_owned()
}
fn d_fallback_routes() -> String {
    "[]".to_owned()
}
fn d_fallback_timeout() -> u32 {
    30
}
fn d_fallback_concurrency() -> u32 {
    100
}
fn d_fallback_per_process() -> u32 {
    1
}
/// AWS: "The duration of a cold start varies from under 100 ms to over 1 second"
/// (<https://aws.amazon.com/blogs/compute/operating-lambda-performance-optimization-part-1/>);
/// the function's own init is measured on top (`cargo xtask measure-lambda`: under 10 ms).
fn d_fallback_cold_start() -> u32 {
    200
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub name: String,
    #[serde(default = "d_pk")]
    pub partition_key: String,
    #[serde(default = "d_sk")]
    pub sort_key: String,
    #[serde(default = "d_ttl")]
    pub ttl_attribute: String,
}

fn d_pk() -> String {
    "pk".into()
}
fn d_sk() -> String {
    "sk".into()
}
fn d_ttl() -> String {
    "ttl".into()
}

/// Kubernetes manifests, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "WorkloadsRepr", into = "Vec<Workload>")]
pub struct Workloads(pub Vec<Workload>);

#[derive(Deserialize)]
#[serde(untagged)]
enum WorkloadsRepr {
    Yaml(String),
    List(Vec<Workload>),
}

impl From<WorkloadsRepr> for Workloads {
    fn from(r: WorkloadsRepr) -> Self {
        match r {
            WorkloadsRepr::Yaml(s) => Workloads(vec![Workload::Yaml(s)]),
            WorkloadsRepr::List(v) => Workloads(v),
        }
    }
}

impl From<Workloads> for Vec<Workload> {
    fn from(w: Workloads) -> Self {
        w.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Workload {
    /// Multi-document YAML.
    Yaml(String),
    /// One object.
    Object(Value),
}

impl Scenario {
    /// Parse and validate.
    pub fn from_yaml(yaml: &str) -> Result<Self, ScenarioError> {
        Self::parse(yaml, "(inline)")
    }

    fn parse(yaml: &str, origin: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = serde_yaml::from_str(yaml).map_err(|e| ScenarioError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        s.validate()?;
        Ok(s)
    }

    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let yaml = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&yaml, &path.display().to_string())
    }

    /// `scenarios/default.yaml`.
    pub fn default_scenario() -> Self {
        Self::from_yaml(builtin::DEFAULT).expect("the built-in default scenario is valid")
    }

    /// A built-in scenario by name (see [`builtin::ALL`]).
    pub fn builtin(name: &str) -> Option<Self> {
        builtin::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, y)| Self::from_yaml(y).expect("built-in scenarios are valid"))
    }

    /// What a `--scenario NAME|FILE` argument names: the built-in scenario of that name, else
    /// the YAML file at that path. A built-in name wins over a file of the same name in the
    /// current directory; `./NAME` reaches the file.
    pub fn named_or_file(arg: &str) -> Result<Self, ScenarioError> {
        if let Some(s) = Self::builtin(arg) {
            return Ok(s);
        }
        let path = Path::new(arg);
        let looks_like_a_path =
            arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml");
        if looks_like_a_path || path.is_file() {
            return Self::from_file(path);
        }
        Err(ScenarioError::Unknown {
            name: arg.to_string(),
            builtins: builtin::names(),
        })
    }

    /// Zones of a node group (its own list, or every zone).
    pub fn zones_of(&self, ng: &NodeGroup) -> Vec<String> {
        ng.zones
            .clone()
            .unwrap_or_else(|| self.network.zones.iter().map(|z| z.name.clone()).collect())
    }

    /// Instance count of a node group (standbys default to one per zone).
    pub fn count_of(&self, ng: &NodeGroup) -> u32 {
        ng.count.unwrap_or(if ng.standby {
            self.zones_of(ng).len() as u32
        } else {
            0
        })
    }

    /// The labels and taints a node group's nodes register with (standbys get the standby taint
    /// and label added).
    pub fn registration_of(&self, ng: &NodeGroup) -> (BTreeMap<String, String>, Vec<Taint>) {
        let mut labels = ng.labels.clone();
        let mut taints = ng.taints.clone();
        if ng.standby {
            labels
                .entry(STANDBY_TAINT_KEY.into())
                .or_insert_with(|| "true".into());
            if !taints.iter().any(|t| t.key == STANDBY_TAINT_KEY) {
                taints.push(Taint {
                    key: STANDBY_TAINT_KEY.into(),
                    value: "true".into(),
                    effect: "NoSchedule".into(),
                });
            }
        }
        (labels, taints)
    }

    /// The subnet CIDR of every zone, in order (explicit or derived from the VPC).
    pub fn subnet_cidrs(&self) -> Result<Vec<String>, String> {
        let vpc = Cidr::parse(&self.network.vpc_cidr)?;
        let n = self.network.zones.len() as u32;
        // The biggest equal slices of the VPC that fit every zone, at most /20 each.
        let extra = n.max(1).next_power_of_two().trailing_zeros() as u8;
        let prefix = (vpc.prefix + extra).max(20);
        if prefix > 28 {
            return Err(format!(
                "VPC {} is too small for {n} zones",
                self.network.vpc_cidr
            ));
        }
        self.network
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| match &z.subnet_cidr {
                Some(c) => Ok(c.clone()),
                None => {
                    let size = 1u64 << (32 - prefix);
                    let base = u64::from(u32::from(vpc.addr)) + i as u64 * size;
                    Ok(format!("{}/{prefix}", Ipv4Addr::from(base as u32)))
                }
            })
            .collect()
    }

    /// Every manifest as one multi-document YAML string.
    pub fn manifests_yaml(&self) -> String {
        let mut out = String::new();
        for w in &self.workloads.0 {
            let doc = match w {
                Workload::Yaml(s) => s.clone(),
                Workload::Object(v) => serde_yaml::to_string(v).unwrap_or_default(),
            };
            out.push_str("---\n");
            out.push_str(doc.trim_start_matches("---\n"));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// Every manifest object, in order.
    pub fn manifest_objects(&self) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(&self.manifests_yaml()) {
            let v = Value::deserialize(doc).map_err(|e| e.to_string())?;
            if !v.is_null() {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Check what serde cannot; every problem is reported.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let mut p: Vec<String> = Vec::new();
        if !is_dns_label(&self.name) {
            p.push(format!(
                "name: `{}` must be a DNS label (lowercase letters, digits, '-')",
                self.name
            ));
        }
        if !is_dns_label(&self.cluster.name) {
            p.push(format!(
                "cluster.name: `{}` must be a DNS label (lowercase letters, digits, '-')",
                self.cluster.name
            ));
        }
        if !is_region(&self.cluster.region) {
            p.push(format!(
                "cluster.region: `{}` is not a region name like us-east-1",
                self.cluster.region
            ));
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            p.push(format!(
                "time_scale: must be a positive number, got {}",
                self.time_scale
            ));
        }
        for (f, v) in [
            ("node_boot", self.delays.node_boot),
            ("pod_start", self.delays.pod_start),
            ("pod_stop", self.delays.pod_stop),
            ("node_monitor_grace", self.delays.node_monitor_grace),
            ("dynamodb_transaction", self.delays.dynamodb_transaction),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                p.push(format!(
                    "delays.{f}: must be a number of seconds ≥ 0, got {v}"
                ));
            }
        }

        // Network.
        let vpc = match Cidr::parse(&self.network.vpc_cidr) {
            Ok(c) if (16..=24).contains(&c.prefix) => Some(c),
            Ok(_) => {
                p.push(format!(
                    "network.vpc_cidr: `{}` must be a /16 to /24",
                    self.network.vpc_cidr
                ));
                None
            }
            Err(e) => {
                p.push(format!("network.vpc_cidr: {e}"));
                None
            }
        };
        if self.network.zones.is_empty() {
            p.push("network.zones: at least one zone is needed".into());
        }
        let mut zone_names = BTreeSet::new();
        for (i, z) in self.network.zones.iter().enumerate() {
            if !zone_names.insert(z.name.as_str()) {
                p.push(format!(
                    "network.zones[{i}]: zone `{}` is listed twice",
                    z.name
                ));
            }
            if !is_zone_of(&z.name, &self.cluster.region) {
                p.push(format!(
                    "network.zones[{i}]: `{}` is not an availability zone of {} (expected {}a, {}b, ...)",
                    z.name, self.cluster.region, self.cluster.region, self.cluster.region
                ));
            }
            if let Some(c) = &z.subnet_cidr {
                match Cidr::parse(c) {
                    Ok(sub) => {
                        if let Some(vpc) = vpc
                            && !vpc.contains(&sub)
                        {
                            p.push(format!(
                                "network.zones[{i}].subnet_cidr: {c} is not inside the VPC {}",
                                self.network.vpc_cidr
                            ));
                        }
                        if !(16..=28).contains(&sub.prefix) {
                            p.push(format!(
                                "network.zones[{i}].subnet_cidr: {c} must be a /16 to /28"
                            ));
                        }
                    }
                    Err(e) => p.push(format!("network.zones[{i}].subnet_cidr: {e}")),
                }
            }
        }
        if vpc.is_some()
            && let Err(e) = self.subnet_cidrs()
        {
            p.push(format!("network: {e}"));
        }
        let known_zones = || zone_names.iter().copied().collect::<Vec<_>>().join(", ");

        // Node groups.
        if self.node_groups.is_empty() {
            p.push("node_groups: at least one node group is needed".into());
        }
        let mut groups = BTreeSet::new();
        let mut total = 0u64;
        for (i, ng) in self.node_groups.iter().enumerate() {
            let at = format!("node_groups[{i}] ({})", ng.name);
            if !is_dns_label(&ng.name) {
                p.push(format!(
                    "{at}: name must be a DNS label (lowercase letters, digits, '-')"
                ));
            }
            if !groups.insert(ng.name.as_str()) {
                p.push(format!("{at}: node group `{}` is defined twice", ng.name));
            }
            if ng.instance_types.is_empty() {
                p.push(format!(
                    "{at}: instance_types: at least one instance type is needed"
                ));
            }
            for t in &ng.instance_types {
                if !is_instance_type(t) {
                    p.push(format!(
                        "{at}: instance_types: `{t}` is not an instance type like m5.large"
                    ));
                }
            }
            match ng.count {
                None if !ng.standby => p.push(format!(
                    "{at}: count is required (only standby groups default to one per zone)"
                )),
                Some(0) => p.push(format!("{at}: count must be at least 1")),
                Some(n) if n > 1000 => p.push(format!(
                    "{at}: count {n} is more than the bed supports (1000)"
                )),
                _ => {}
            }
            total += u64::from(self.count_of(ng));
            if ng.standby && ng.capacity == Capacity::Spot {
                p.push(format!(
                    "{at}: standby instances must be on-demand (capacity: on-demand)"
                ));
            }
            if let Some(zs) = &ng.zones {
                if zs.is_empty() {
                    p.push(format!(
                        "{at}: zones: give at least one zone, or leave zones out for all of them"
                    ));
                }
                for z in zs {
                    if !zone_names.contains(z.as_str()) {
                        p.push(format!(
                            "{at}: zone `{z}` is not one of the scenario's zones ({})",
                            known_zones()
                        ));
                    }
                }
            }
            for (k, v) in &ng.labels {
                if !is_label_key(k) {
                    p.push(format!("{at}: labels: `{k}` is not a valid label key"));
                }
                if !is_label_value(v) {
                    p.push(format!(
                        "{at}: labels: `{v}` (of {k}) is not a valid label value"
                    ));
                }
            }
            for (j, t) in ng.taints.iter().enumerate() {
                if !is_label_key(&t.key) {
                    p.push(format!(
                        "{at}: taints[{j}]: `{}` is not a valid taint key",
                        t.key
                    ));
                }
                if !is_label_value(&t.value) {
                    p.push(format!(
                        "{at}: taints[{j}]: `{}` is not a valid taint value",
                        t.value
                    ));
                }
                if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str()) {
                    p.push(format!("{at}: taints[{j}]: effect `{}` must be NoSchedule, PreferNoSchedule or NoExecute", t.effect));
                }
            }
        }
        if total > 1000 {
            p.push(format!(
                "node_groups: {total} instances in all; the bed supports up to 1000"
            ));
        }

        // Target groups and the load balancer.
        let mut tgs = BTreeSet::new();
        for (i, tg) in self.target_groups.iter().enumerate() {
            let at = format!("target_groups[{i}] ({})", tg.name);
            if !is_elb_name(&tg.name) {
                p.push(format!("{at}: name must be 1-32 letters, digits or '-', not starting or ending with '-'"));
            }
            if !tgs.insert(tg.name.as_str()) {
                p.push(format!("{at}: target group `{}` is defined twice", tg.name));
            }
            if tg.port == 0 {
                p.push(format!("{at}: port must be 1-65535"));
            }
            if let Some(svc) = &tg.service {
                if !tg.node_groups.is_empty() {
                    p.push(format!("{at}: `service` and `node_groups` exclude each other (the controller stand-in owns a bound group's targets)"));
                }
                if svc.name.is_empty() {
                    p.push(format!("{at}: service.name must not be empty"));
                }
            }
            for g in &tg.node_groups {
                match self.node_groups.iter().find(|n| &n.name == g) {
                    None => p.push(format!(
                        "{at}: node group `{g}` does not exist (node groups: {})",
                        self.node_groups.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                    Some(n) if n.standby => {
                        p.push(format!("{at}: node group `{g}` is a standby group; costop registers standbys when it starts them"))
                    }
                    _ => {}
                }
            }
        }
        if let Some(lb) = &self.load_balancer {
            if !is_elb_name(&lb.name) {
                p.push(format!(
                    "load_balancer.name: `{}` must be 1-32 letters, digits or '-'",
                    lb.name
                ));
            }
            if self.network.zones.len() < 2 {
                p.push(
                    "load_balancer: an application load balancer needs at least two zones".into(),
                );
            }
            if lb.listener_port == 0 {
                p.push("load_balancer.listener_port: must be 1-65535".into());
            }
            if !self
                .target_groups
                .iter()
                .any(|t| t.protocol != Protocol::Tcp)
            {
                p.push("load_balancer: needs an HTTP or HTTPS target group to forward to".into());
            }
            if let Some(f) = &lb.fallback {
                if !lb.stand_in {
                    p.push("load_balancer.fallback: needs `stand_in: true` (the stand-in runs the function)".into());
                }
                if !is_elb_name(&f.target_group) {
                    p.push(format!(
                        "load_balancer.fallback.target_group: `{}` must be 1-32 letters, digits or '-'",
                        f.target_group
                    ));
                }
                if self.target_groups.iter().any(|t| t.name == f.target_group) {
                    p.push(format!(
                        "load_balancer.fallback.target_group: `{}` is already a target group's name",
                        f.target_group
                    ));
                }
                if f.function.is_empty()
                    || f.function.len() > 64
                    || !f
                        .function
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    p.push(format!(
                        "load_balancer.fallback.function: `{}` must be 1-64 letters, digits, '-' or '_'",
                        f.function
                    ));
                }
                if f.upstream_listener_port == 0 || f.upstream_listener_port == lb.listener_port {
                    p.push(format!(
                        "load_balancer.fallback.upstream_listener_port: must be 1-65535 and not the listener's port ({})",
                        lb.listener_port
                    ));
                }
                if !(1..=900).contains(&f.timeout_seconds) {
                    p.push(
                        "load_balancer.fallback.timeout_seconds: must be 1-900 (Lambda's limit)"
                            .into(),
                    );
                }
                if !(1..=1000).contains(&f.max_concurrency) {
                    p.push("load_balancer.fallback.max_concurrency: must be 1-1000".into());
                }
                if !(1..=100).contains(&f.environments_per_process) {
                    p.push("load_balancer.fallback.environments_per_process: must be 1-100".into());
                }
                for name in f.env.keys() {
                    if !name.starts_with("COSTOP_")
                        || ["COSTOP_FALLBACK_ROUTES", "COSTOP_FALLBACK_UPSTREAM"]
                            .contains(&name.as_str())
                    {
                        p.push(format!(
                            "load_balancer.fallback.env.{name}: only COSTOP_* variables other than the routes and the upstream (the bed sets those) are the scenario's to set"
                        ));
                    }
                }
                for unknown in costop_core::config::unknown_var_warnings(&f.env) {
                    p.push(format!("load_balancer.fallback.env: {unknown}"));
                }
                if let Err(e) = costop_core::Config::from_env(&f.env) {
                    p.push(format!("load_balancer.fallback.env: {e}"));
                }
                if let Err(e) = costop_core::fallback::route::Routes::parse(&f.routes) {
                    p.push(format!("load_balancer.fallback.routes: {e}"));
                }
            }
        }

        // Table.
        for (f, v) in [
            ("name", &self.table.name),
            ("partition_key", &self.table.partition_key),
            ("sort_key", &self.table.sort_key),
            ("ttl_attribute", &self.table.ttl_attribute),
        ] {
            if v.is_empty() {
                p.push(format!("table.{f}: must not be empty"));
            }
        }
        if !(3..=255).contains(&self.table.name.len())
            || !self
                .table
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            p.push(format!(
                "table.name: `{}` must be 3-255 letters, digits, '_', '-' or '.'",
                self.table.name
            ));
        }
        if self.table.partition_key == self.table.sort_key {
            p.push("table: partition_key and sort_key must differ".into());
        }

        // Workloads.
        match self.manifest_objects() {
            Err(e) => p.push(format!("workloads: not valid YAML: {e}")),
            Ok(objs) => {
                for (i, o) in objs.iter().enumerate() {
                    let api_version = o
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let kind = o.get("kind").and_then(Value::as_str).unwrap_or_default();
                    let name = o
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let at = format!("workloads: object {} ({kind} {name})", i + 1);
                    if !o.is_object() {
                        p.push(format!("workloads: object {} is not a mapping", i + 1));
                    } else if api_version.is_empty() || kind.is_empty() {
                        p.push(format!("{at}: apiVersion and kind are required"));
                    } else if kubesim::resources::by_kind(api_version, kind).is_none() {
                        p.push(format!("{at}: kubesim does not serve {api_version} {kind}"));
                    }
                    if name.is_empty() {
                        p.push(format!("{at}: metadata.name is required"));
                    }
                }
            }
        }

        if p.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::Invalid {
                name: self.name.clone(),
                problems: p,
            })
        }
    }
}

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a CIDR block like 10.0.0.0/16"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{s}`: `{a}` is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("`{s}`: bad prefix length `{p}`"))?;
        let mask = Self::mask(prefix);
        if u32::from(addr) & !mask != 0 {
            return Err(format!(
                "`{s}`: host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(addr) & mask)
            ));
        }
        Ok(Self { addr, prefix })
    }
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }
    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix
            && u32::from(other.addr) & Self::mask(self.prefix) == u32::from(self.addr)
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

fn is_zone_of(zone: &str, region: &str) -> bool {
    zone.strip_prefix(region)
        .is_some_and(|rest| rest.len() == 1 && rest.chars().all(|c| c.is_ascii_lowercase()))
}

fn is_instance_type(s: &str) -> bool {
    s.split_once('.').is_some_and(|(f, size)| {
        !f.is_empty()
            && !size.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && size
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    })
}

fn is_elb_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_name_segment(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn is_label_key(k: &str) -> bool {
    match k.rsplit_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                })
                && is_name_segment(name, 63)
        }
        None => is_name_segment(k, 63),
    }
}

fn is_label_value(v: &str) -> bool {
    v.is_empty() || is_name_segment(v, 63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_scenario_is_valid() {
        for (name, yaml) in builtin::ALL {
            if let Err(e) = Scenario::from_yaml(yaml) {
                panic!("{name}: {e}");
            }
        }
    }

    #[test]
    fn every_scenario_file_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                if let Err(e) = Scenario::from_file(&path) {
                    panic!("{e}");
                }
                seen += 1;
            }
        }
        assert!(seen >= 6, "only {seen} scenarios in {}", dir.display());
    }

    #[test]
    fn a_fallback_with_bad_concurrency_or_environment_is_rejected_naming_the_field() {
        let traffic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/traffic.yaml");
        let good = Scenario::from_file(&traffic).unwrap();
        let with = |edit: &dyn Fn(&mut Fallback)| {
            let mut s = good.clone();
            edit(s.load_balancer.as_mut().unwrap().fallback.as_mut().unwrap());
            s.validate().map_err(|e| e.to_string())
        };
        assert!(with(&|_| {}).is_ok());
        let env = |k: &str, v: &str| {
            let (k, v) = (k.to_owned(), v.to_owned());
            move |f: &mut Fallback| {
                f.env.insert(k.clone(), v.clone());
            }
        };
        assert!(with(&env("COSTOP_QUEUE_MAX_DEPTH", "50000")).is_ok());
        for (edit, names) in [
            (
                Box::new(|f: &mut Fallback| f.max_concurrency = 0) as Box<dyn Fn(&mut Fallback)>,
                "max_concurrency",
            ),
            (
                Box::new(|f: &mut Fallback| f.environments_per_process = 101),
                "environments_per_process",
            ),
            (Box::new(env("PATH", "/bin")), "env.PATH"),
            (
                Box::new(env("COSTOP_FALLBACK_UPSTREAM", "http://127.0.0.1:1")),
                "env.COSTOP_FALLBACK_UPSTREAM",
            ),
            (
                Box::new(env("COSTOP_QUEUE_MAX_DEPTH", "lots")),
                "COSTOP_QUEUE_MAX_DEPTH",
            ),
            (
                Box::new(env("COSTOP_NO_SUCH_THING", "1")),
                "COSTOP_NO_SUCH_THING",
            ),
        ] {
            let err = with(&*edit).expect_err(names);
            assert!(err.contains(names), "{names}: {err}");
        }
    }

    #[test]
    fn subnets_are_carved_from_the_vpc() {
        let s = Scenario::default_scenario();
        let cidrs = s.subnet_cidrs().unwrap();
        assert_eq!(cidrs.len(), s.network.zones.len());
        let vpc = Cidr::parse(&s.network.vpc_cidr).unwrap();
        for c in &cidrs {
            assert!(vpc.contains(&Cidr::parse(c).unwrap()), "{c}");
        }
    }

    #[test]
    fn cidrs_with_host_bits_are_rejected() {
        assert!(
            Cidr::parse("10.0.0.1/16")
                .unwrap_err()
                .contains("10.0.0.0/16")
        );
        assert!(
            Cidr::parse("10.0.0.0/8")
                .unwrap()
                .contains(&Cidr::parse("10.1.0.0/16").unwrap())
        );
    }

    #[test]
    fn label_keys_follow_kubernetes_rules() {
        assert!(is_label_key("costop.io/standby"));
        assert!(is_label_key("workload"));
        assert!(!is_label_key("Bad Key"));
        assert!(!is_label_key("/x"));
    }
}
