//! The EC2 → kubesim link: polls DescribeInstances for the cluster's instances (tag
//! `kubernetes.io/cluster/<cluster>`) and hands kubesim the full snapshot as
//! [`InstanceFacts`], so stopping, starting, retyping or terminating an instance in moto (by
//! costop, a test or `aws ec2 ...`) shows up as Node changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{
    Filter, Instance, InstanceLifecycleType, InstanceStateName, InstanceType,
};
use kubesim::Simulator;
use kubesim::nodes::{InstanceFacts, InstanceState, TaintSpec};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::error::{BedError, aws};
use crate::seed::{LABEL_TAG_PREFIX, NODEGROUP_TAG, TAINT_TAG_PREFIX, cluster_tag};

/// Default real-time interval between polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Capacity facts of an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeInfo {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub max_pods: u32,
}

impl TypeInfo {
    /// EKS max pods with the VPC CNI: ENIs × (IPv4 per ENI − 1) + 2.
    pub fn eks_max_pods(enis: u32, ipv4_per_eni: u32) -> u32 {
        enis * ipv4_per_eni.saturating_sub(1) + 2
    }
}

/// Polls EC2 and builds snapshots; caches DescribeInstanceTypes per type.
pub struct Ec2Link {
    ec2: aws_sdk_ec2::Client,
    cluster: String,
    region: String,
    types: Mutex<HashMap<String, TypeInfo>>,
    /// Every instance at the last successful poll, by id: whether it runs and its private IP
    /// (the bed's traffic parts ask which nodes still have a machine under them, and where an
    /// instance target is).
    observed: std::sync::RwLock<BTreeMap<String, Observed>>,
}

/// What the last poll saw of one instance.
#[derive(Debug, Clone)]
struct Observed {
    running: bool,
    private_ip: Option<String>,
}

impl Ec2Link {
    pub fn new(ec2: aws_sdk_ec2::Client, cluster: &str, region: &str) -> Self {
        Self {
            ec2,
            cluster: cluster.into(),
            region: region.into(),
            types: Mutex::new(HashMap::new()),
            observed: Default::default(),
        }
    }

    /// An instance's private IP, as of the last successful poll.
    pub fn private_ip(&self, instance_id: &str) -> Option<String> {
        self.observed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(instance_id)?
            .private_ip
            .clone()
    }

    /// The ids of the instances that were running at the last successful poll.
    pub fn running_instances(&self) -> std::collections::BTreeSet<String> {
        self.observed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, o)| o.running)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// One snapshot of every instance of the cluster, in every state.
    pub async fn snapshot(&self) -> Result<Vec<InstanceFacts>, BedError> {
        let mut instances = Vec::new();
        let mut pages = self
            .ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("tag-key")
                    .values(cluster_tag(&self.cluster))
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(aws("DescribeInstances"))?;
            instances.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances().iter().cloned()),
            );
        }
        let mut out = Vec::with_capacity(instances.len());
        for i in &instances {
            if let Some(f) = self.facts(i).await? {
                out.push(f);
            }
        }
        out.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(out)
    }

    async fn facts(&self, i: &Instance) -> Result<Option<InstanceFacts>, BedError> {
        let (Some(id), Some(state)) = (
            i.instance_id(),
            i.state().and_then(|s| s.name()).and_then(map_state),
        ) else {
            return Ok(None);
        };
        let instance_type = i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let info = self.type_info(&instance_type).await?;
        let (labels, taints, nodegroup) = registration(
            i.tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))),
        );
        Ok(Some(InstanceFacts {
            instance_id: id.to_string(),
            state,
            private_dns_name: i.private_dns_name().unwrap_or_default().to_string(),
            private_ip: i.private_ip_address().map(str::to_string),
            availability_zone: i
                .placement()
                .and_then(|p| p.availability_zone())
                .unwrap_or_default()
                .to_string(),
            region: self.region.clone(),
            instance_type,
            vcpus: info.vcpus,
            memory_mib: info.memory_mib,
            max_pods: info.max_pods,
            spot: i.instance_lifecycle() == Some(&InstanceLifecycleType::Spot),
            nodegroup,
            labels,
            taints,
        }))
    }

    /// vCPUs, memory and EKS max pods of a type (DescribeInstanceTypes, cached).
    pub async fn type_info(&self, ty: &str) -> Result<TypeInfo, BedError> {
        if let Some(t) = self.types.lock().await.get(ty) {
            return Ok(*t);
        }
        let out = self
            .ec2
            .describe_instance_types()
            .instance_types(InstanceType::from(ty))
            .send()
            .await
            .map_err(aws("DescribeInstanceTypes"))?;
        let info = match out.instance_types().first() {
            Some(t) => {
                let vcpus = t
                    .v_cpu_info()
                    .and_then(|v| v.default_v_cpus())
                    .unwrap_or(2)
                    .max(1) as u32;
                let memory_mib = t
                    .memory_info()
                    .and_then(|m| m.size_in_mib())
                    .unwrap_or(4096)
                    .max(1) as u64;
                let enis = t
                    .network_info()
                    .and_then(|n| n.maximum_network_interfaces())
                    .unwrap_or(3)
                    .max(1) as u32;
                let ips = t
                    .network_info()
                    .and_then(|n| n.ipv4_addresses_per_interface())
                    .unwrap_or(10)
                    .max(1) as u32;
                TypeInfo {
                    vcpus,
                    memory_mib,
                    max_pods: TypeInfo::eks_max_pods(enis, ips),
                }
            }
            None => {
                tracing::warn!(
                    instance_type = ty,
                    "EC2 does not know this instance type; assuming 2 vCPU / 4 GiB / 29 pods"
                );
                TypeInfo {
                    vcpus: 2,
                    memory_mib: 4096,
                    max_pods: 29,
                }
            }
        };
        self.types.lock().await.insert(ty.to_string(), info);
        Ok(info)
    }

    /// Poll forever, handing every successful snapshot to the simulator. A failed poll keeps the
    /// last snapshot (it never tells kubesim that every instance vanished).
    pub fn spawn(self: Arc<Self>, sim: Arc<Simulator>, interval: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut last_error = String::new();
            loop {
                let t = std::time::Instant::now();
                match self.snapshot().await {
                    Ok(facts) => {
                        if t.elapsed() > interval * 5 {
                            tracing::debug!(
                                secs = t.elapsed().as_secs_f64(),
                                instances = facts.len(),
                                "slow EC2 poll"
                            );
                        }
                        if !last_error.is_empty() {
                            tracing::info!("EC2 polling recovered");
                            last_error.clear();
                        }
                        *self.observed.write().unwrap_or_else(|e| e.into_inner()) = facts
                            .iter()
                            .map(|f| {
                                let seen = Observed {
                                    running: f.state == InstanceState::Running,
                                    private_ip: f.private_ip.clone(),
                                };
                                (f.instance_id.clone(), seen)
                            })
                            .collect();
                        sim.observe_instances(facts);
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if msg != last_error {
                            tracing::warn!(error = %msg, "EC2 poll failed; keeping the last snapshot");
                            last_error = msg;
                        }
                    }
                }
                tokio::time::sleep(interval).await;
            }
        })
    }
}

fn map_state(s: &InstanceStateName) -> Option<InstanceState> {
    Some(match s {
        InstanceStateName::Pending => InstanceState::Pending,
        InstanceStateName::Running => InstanceState::Running,
        InstanceStateName::Stopping => InstanceState::Stopping,
        InstanceStateName::Stopped => InstanceState::Stopped,
        InstanceStateName::ShuttingDown => InstanceState::ShuttingDown,
        InstanceStateName::Terminated => InstanceState::Terminated,
        _ => return None,
    })
}

/// Labels, taints and node group from an instance's tags (cluster-autoscaler node-template
/// tags: `.../label/<key>=<value>`, `.../taint/<key>=<value>:<Effect>`; `eks:nodegroup-name`).
pub fn registration<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (BTreeMap<String, String>, Vec<TaintSpec>, Option<String>) {
    let mut labels = BTreeMap::new();
    let mut taints = Vec::new();
    let mut nodegroup = None;
    for (k, v) in tags {
        if let Some(key) = k.strip_prefix(LABEL_TAG_PREFIX) {
            labels.insert(key.to_string(), v.to_string());
        } else if let Some(key) = k.strip_prefix(TAINT_TAG_PREFIX) {
            let (value, effect) = match v.rsplit_once(':') {
                Some((val, eff)) => (val.to_string(), eff.to_string()),
                None => (v.to_string(), "NoSchedule".to_string()),
            };
            taints.push(TaintSpec {
                key: key.to_string(),
                value,
                effect,
            });
        } else if k == NODEGROUP_TAG {
            nodegroup = Some(v.to_string());
        }
    }
    taints.sort_by(|a, b| (&a.key, &a.effect).cmp(&(&b.key, &b.effect)));
    (labels, taints, nodegroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eks_max_pods_follow_the_eni_formula() {
        assert_eq!(TypeInfo::eks_max_pods(3, 10), 29); // m5.large
        assert_eq!(TypeInfo::eks_max_pods(4, 15), 58); // m5.xlarge
    }

    #[test]
    fn node_template_tags_become_labels_and_taints() {
        let (labels, taints, ng) = registration([
            (
                "k8s.io/cluster-autoscaler/node-template/label/costop.io/pool",
                "general",
            ),
            (
                "k8s.io/cluster-autoscaler/node-template/taint/costop.io/standby",
                "true:NoSchedule",
            ),
            (
                "k8s.io/cluster-autoscaler/node-template/taint/dedicated",
                ":NoExecute",
            ),
            ("eks:nodegroup-name", "spot"),
            ("Name", "x"),
        ]);
        assert_eq!(
            labels.get("costop.io/pool").map(String::as_str),
            Some("general")
        );
        assert_eq!(ng.as_deref(), Some("spot"));
        assert_eq!(
            taints,
            vec![
                TaintSpec {
                    key: "costop.io/standby".into(),
                    value: "true".into(),
                    effect: "NoSchedule".into()
                },
                TaintSpec {
                    key: "dedicated".into(),
                    value: "".into(),
                    effect: "NoExecute".into()
                },
            ]
        );
    }
}
