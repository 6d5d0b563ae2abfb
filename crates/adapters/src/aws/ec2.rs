//! EC2: `DescribeInstances` → [`InstanceFacts`], and the warm-standby pool's writes (tags,
//! instance type, start and stop).

use std::collections::HashMap;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{AttributeValue, Filter, Instance, InstanceLifecycleType, Tag};
use costop_app::ports::{Ec2, PortError};
use costop_core::constants::{TAG_STANDBY, TAG_STANDBY_VALUE};
use costop_core::event::InstanceState;
use costop_core::facts::{InstanceFacts, Lifecycle};
use costop_core::standby::TagChange;

use super::{error_code, sdk_error};

/// Values per EC2 filter (the API's limit is 200).
const IDS_PER_CALL: usize = 200;

/// The states a standby can be in until it is gone: everything but `terminated`.
const STANDBY_STATES: [&str; 5] = ["pending", "running", "stopping", "stopped", "shutting-down"];

/// `IncorrectInstanceState` (started or stopped by someone else since it was read) is
/// [`PortError::WrongState`]; the rest as [`sdk_error`] judges it.
fn state_error<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if error_code(&err) == Some("IncorrectInstanceState") {
        PortError::WrongState {
            op,
            source: Box::new(err),
        }
    } else {
        sdk_error(op, err)
    }
}

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

    async fn standbys(&self) -> Result<Vec<InstanceFacts>, PortError> {
        let tag = Filter::builder()
            .name(format!("tag:{TAG_STANDBY}"))
            .values(TAG_STANDBY_VALUE)
            .build();
        let states = Filter::builder()
            .name("instance-state-name")
            .set_values(Some(STANDBY_STATES.map(str::to_owned).to_vec()))
            .build();
        // iam: ec2:DescribeInstances
        let mut pages = self
            .client
            .describe_instances()
            .filters(tag)
            .filters(states)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("describe standbys", e))?;
            out.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter_map(instance_facts),
            );
        }
        Ok(out)
    }

    async fn tag_standby(&self, change: &TagChange) -> Result<(), PortError> {
        let instance_id = change.instance_id.as_str();
        if !change.set.is_empty() {
            let tags = change
                .set
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            // iam: ec2:CreateTags
            self.client
                .create_tags()
                .resources(instance_id)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| sdk_error("tag standby", e))?;
        }
        if !change.remove.is_empty() {
            // A tag given by key alone is deleted whatever its value.
            let keys = change
                .remove
                .iter()
                .map(|k| Tag::builder().key(k).build())
                .collect();
            // iam: ec2:DeleteTags
            self.client
                .delete_tags()
                .resources(instance_id)
                .set_tags(Some(keys))
                .send()
                .await
                .map_err(|e| sdk_error("untag standby", e))?;
        }
        Ok(())
    }

    async fn retype(&self, instance_id: &str, instance_type: &str) -> Result<(), PortError> {
        // iam: ec2:ModifyInstanceAttribute
        self.client
            .modify_instance_attribute()
            .instance_id(instance_id)
            .instance_type(AttributeValue::builder().value(instance_type).build())
            .send()
            .await
            .map(drop)
            .map_err(|e| state_error("retype standby", e))
    }

    async fn start(&self, instance_id: &str) -> Result<(), PortError> {
        // iam: ec2:StartInstances
        self.client
            .start_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| state_error("start standby", e))
    }

    async fn stop(&self, instance_id: &str) -> Result<(), PortError> {
        // iam: ec2:StopInstances
        self.client
            .stop_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| state_error("stop standby", e))
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
    use std::collections::BTreeMap;

    fn change(set: BTreeMap<String, String>, remove: &[&str]) -> TagChange {
        TagChange {
            instance_id: "i-1".to_owned(),
            set,
            remove: remove.iter().map(|k| (*k).to_owned()).collect(),
        }
    }
    use crate::aws::tests::sdk_config;
    use crate::testutil::{Captured, Reply, Server};
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

    const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

    fn ok(action: &str) -> Reply {
        Reply::xml(
            200,
            format!("<{action}Response xmlns=\"{NS}\"><requestId>r</requestId></{action}Response>"),
        )
    }

    fn error(status: u16, code: &str) -> Reply {
        Reply::xml(
            status,
            format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>m</Message></Error></Errors><RequestID>r</RequestID></Response>"
            ),
        )
    }

    /// An adapter against a server answering with `replies` in order, then success.
    async fn adapter(replies: Vec<Reply>) -> (Ec2Adapter, Server) {
        let server = Server::scripted(replies, |r: &Captured| ok(&r.form()["Action"])).await;
        let client = aws_sdk_ec2::Client::new(&sdk_config(&server.url).await);
        (Ec2Adapter::new(client), server)
    }

    #[tokio::test]
    async fn standbys_are_asked_for_by_tag_and_every_state_but_terminated() {
        let (ec2, server) = adapter(vec![]).await;
        assert!(ec2.standbys().await.unwrap().is_empty());
        let form = server.requests()[0].form();
        assert_eq!(form["Action"], "DescribeInstances");
        assert_eq!(form["Filter.1.Name"], "tag:costop.io/standby");
        assert_eq!(form["Filter.1.Value.1"], "true");
        assert_eq!(form["Filter.2.Name"], "instance-state-name");
        let states: Vec<&str> = (1..=5)
            .map(|i| form[&format!("Filter.2.Value.{i}")].as_str())
            .collect();
        assert_eq!(states, STANDBY_STATES);
        assert!(!form.contains_key("InstanceId.1"));
    }

    #[tokio::test]
    async fn tags_are_set_then_deleted_by_key_and_an_empty_change_sends_nothing() {
        let (ec2, server) = adapter(vec![]).await;
        ec2.tag_standby(&change(BTreeMap::new(), &[]))
            .await
            .unwrap();
        assert!(server.requests().is_empty());
        let set = BTreeMap::from([("costop.io/standby-state".to_owned(), "serving".to_owned())]);
        ec2.tag_standby(&change(set, &["costop.io/standby-since"]))
            .await
            .unwrap();
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        let create = reqs[0].form();
        assert_eq!(create["Action"], "CreateTags");
        assert_eq!(create["ResourceId.1"], "i-1");
        assert_eq!(create["Tag.1.Key"], "costop.io/standby-state");
        assert_eq!(create["Tag.1.Value"], "serving");
        let delete = reqs[1].form();
        assert_eq!(delete["Action"], "DeleteTags");
        assert_eq!(delete["ResourceId.1"], "i-1");
        assert_eq!(delete["Tag.1.Key"], "costop.io/standby-since");
        assert!(
            !delete.contains_key("Tag.1.Value"),
            "by key, whatever the value"
        );
        ec2.tag_standby(&change(BTreeMap::new(), &["k"]))
            .await
            .unwrap();
        assert_eq!(
            server.requests()[2].form()["Action"],
            "DeleteTags",
            "only a delete"
        );
    }

    #[tokio::test]
    async fn retype_start_and_stop_name_the_instance_and_errors_are_classified() {
        let (ec2, server) = adapter(vec![
            ok("ModifyInstanceAttribute"),
            ok("StartInstances"),
            ok("StopInstances"),
            error(503, "RequestLimitExceeded"),
            error(400, "IncorrectInstanceState"),
            error(400, "InvalidInstanceID.NotFound"),
            error(500, "InternalError"),
        ])
        .await;
        ec2.retype("i-1", "c5.xlarge").await.unwrap();
        ec2.start("i-1").await.unwrap();
        ec2.stop("i-1").await.unwrap();
        let reqs = server.requests();
        let modify = reqs[0].form();
        assert_eq!(modify["Action"], "ModifyInstanceAttribute");
        assert_eq!(modify["InstanceId"], "i-1");
        assert_eq!(modify["InstanceType.Value"], "c5.xlarge");
        assert_eq!(reqs[1].form()["Action"], "StartInstances");
        assert_eq!(reqs[1].form()["InstanceId.1"], "i-1");
        assert_eq!(reqs[2].form()["Action"], "StopInstances");
        assert_eq!(reqs[2].form()["InstanceId.1"], "i-1");

        let e = ec2.start("i-1").await.unwrap_err();
        assert!(
            matches!(
                e,
                PortError::Transient {
                    op: "start standby",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = ec2.retype("i-1", "c5.xlarge").await.unwrap_err();
        assert!(
            matches!(
                e,
                PortError::WrongState {
                    op: "retype standby",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.is_retryable());
        let e = ec2.stop("i-1").await.unwrap_err();
        assert!(matches!(e, PortError::Permanent { .. }), "{e:?}");
        let e = ec2
            .tag_standby(&change(BTreeMap::from([("k".into(), "v".into())]), &[]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                PortError::Transient {
                    op: "tag standby",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
