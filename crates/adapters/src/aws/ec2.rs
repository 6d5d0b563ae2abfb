//! EC2: `DescribeInstances` → [`InstanceFacts`].

use std::collections::HashMap;

use aws_sdk_ec2::types::{Filter, Instance, InstanceLifecycleType};
use costop_app::ports::{Ec2, PortError};
use costop_core::event::InstanceState;
use costop_core::facts::{InstanceFacts, Lifecycle};

use super::sdk_error;

/// Values per EC2 filter (the API's limit is 200).
const IDS_PER_CALL: usize = 200;

/// EC2 through the SDK.
#[derive(Clone, Debug)]
pub struct Ec2Adapter {
    client: aws_sdk_ec2::Client,
}

impl Ec2Adapter {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        Ec2Adapter { client }
    }
}

impl Ec2 for Ec2Adapter {
    /// Ids go in an `instance-id` *filter*, not `InstanceIds`: with the latter one unknown
    /// (already gone) id fails the whole call with `InvalidInstanceID.NotFound`.
    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<InstanceFacts>, PortError> {
        let mut found: HashMap<String, InstanceFacts> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let filter = Filter::builder()
                .name("instance-id")
                .set_values(Some(chunk.to_vec()))
                .build();
            // iam: ec2:DescribeInstances
            let mut pages = self
                .client
                .describe_instances()
                .filters(filter)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| sdk_error("describe instances", e))?;
                for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                    if let Some(facts) = instance_facts(instance) {
                        found.insert(facts.instance_id.clone(), facts);
                    }
                }
            }
        }
        // In the order asked, once each.
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }
}

/// One instance → facts; `None` without an id or a known state.
pub(crate) fn instance_facts(i: &Instance) -> Option<InstanceFacts> {
    let instance_id = i.instance_id()?.to_owned();
    let state_name = i.state().and_then(|s| s.name()).map(|n| n.as_str());
    let Some(state) = state_name.and_then(InstanceState::from_wire) else {
        tracing::warn!(instance_id, state = ?state_name, "instance with an unknown state left out");
        return None;
    };
    let lifecycle = match i.instance_lifecycle() {
        None => Lifecycle::OnDemand,
        Some(InstanceLifecycleType::Spot) => Lifecycle::Spot,
        Some(_) => Lifecycle::Other,
    };
    Some(InstanceFacts {
        instance_id,
        state,
        lifecycle,
        instance_type: i.instance_type().map(|t| t.as_str().to_owned()),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .map(str::to_owned),
        // Terminated instances report "".
        private_dns_name: i
            .private_dns_name()
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        private_ips: private_ips(i),
        tags: i
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
    })
}

/// Every private IPv4 of every ENI: the instance's primary address first, then ENIs in device
/// order (primary ENI first), each ENI's primary address before its secondaries (pod IPs with the
/// VPC CNI).
fn private_ips(i: &Instance) -> Vec<String> {
    let mut enis: Vec<_> = i.network_interfaces().iter().collect();
    enis.sort_by_key(|e| {
        let a = e.attachment();
        (
            a.and_then(|a| a.network_card_index()).unwrap_or(0),
            a.and_then(|a| a.device_index()).unwrap_or(i32::MAX),
        )
    });
    let mut out: Vec<String> = i
        .private_ip_address()
        .map(str::to_owned)
        .into_iter()
        .collect();
    for eni in enis {
        let mut addrs: Vec<_> = eni.private_ip_addresses().iter().collect();
        addrs.sort_by_key(|a| !a.primary().unwrap_or(false));
        let ips = eni
            .private_ip_address()
            .into_iter()
            .chain(addrs.into_iter().filter_map(|a| a.private_ip_address()));
        for ip in ips {
            if !ip.is_empty() && !out.iter().any(|o| o == ip) {
                out.push(ip.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{
        InstanceNetworkInterface, InstanceNetworkInterfaceAttachment, InstancePrivateIpAddress,
        InstanceStateName, InstanceType, Placement, Tag,
    };

    fn eni(device: i32, primary: &str, secondaries: &[&str]) -> InstanceNetworkInterface {
        let mut b = InstanceNetworkInterface::builder()
            .attachment(
                InstanceNetworkInterfaceAttachment::builder()
                    .device_index(device)
                    .build(),
            )
            .private_ip_address(primary);
        // Secondaries listed first on purpose: the primary must still lead.
        for s in secondaries {
            b = b.private_ip_addresses(
                InstancePrivateIpAddress::builder()
                    .private_ip_address(*s)
                    .primary(false)
                    .build(),
            );
        }
        b.private_ip_addresses(
            InstancePrivateIpAddress::builder()
                .private_ip_address(primary)
                .primary(true)
                .build(),
        )
        .build()
    }

    fn instance() -> aws_sdk_ec2::types::Instance {
        Instance::builder()
            .instance_id("i-0123456789abcdef0")
            .state(
                aws_sdk_ec2::types::InstanceState::builder()
                    .name(InstanceStateName::ShuttingDown)
                    .build(),
            )
            .instance_lifecycle(InstanceLifecycleType::Spot)
            .instance_type(InstanceType::M5Large)
            .placement(Placement::builder().availability_zone("us-east-1a").build())
            .private_dns_name("ip-10-0-1-23.ec2.internal")
            .private_ip_address("10.0.1.23")
            .network_interfaces(eni(1, "10.0.2.1", &["10.0.2.2"]))
            .network_interfaces(eni(0, "10.0.1.23", &["10.0.1.50", "10.0.1.51"]))
            .tags(Tag::builder().key("eks:cluster-name").value("prod").build())
            .build()
    }

    #[test]
    fn instances_map_to_facts() {
        let f = instance_facts(&instance()).unwrap();
        assert_eq!(f.instance_id, "i-0123456789abcdef0");
        assert_eq!(f.state, InstanceState::ShuttingDown);
        assert_eq!(f.lifecycle, Lifecycle::Spot);
        assert_eq!(f.instance_type.as_deref(), Some("m5.large"));
        assert_eq!(f.availability_zone.as_deref(), Some("us-east-1a"));
        assert_eq!(
            f.private_dns_name.as_deref(),
            Some("ip-10-0-1-23.ec2.internal")
        );
        assert_eq!(
            f.private_ips,
            [
                "10.0.1.23",
                "10.0.1.50",
                "10.0.1.51",
                "10.0.2.1",
                "10.0.2.2"
            ]
        );
        assert_eq!(f.tags["eks:cluster-name"], "prod");
    }

    #[test]
    fn lifecycle_and_missing_fields() {
        let running = |lifecycle: Option<InstanceLifecycleType>| {
            Instance::builder()
                .instance_id("i-1")
                .state(
                    aws_sdk_ec2::types::InstanceState::builder()
                        .name(InstanceStateName::Running)
                        .build(),
                )
                .set_instance_lifecycle(lifecycle)
                .private_dns_name("")
                .build()
        };
        let f = instance_facts(&running(None)).unwrap();
        assert_eq!(f.lifecycle, Lifecycle::OnDemand);
        assert_eq!(f.private_dns_name, None);
        assert!(f.private_ips.is_empty());
        assert_eq!(
            instance_facts(&running(Some(InstanceLifecycleType::Scheduled)))
                .unwrap()
                .lifecycle,
            Lifecycle::Other
        );
        assert!(
            instance_facts(&Instance::builder().instance_id("i-2").build()).is_none(),
            "no state"
        );
    }
}
