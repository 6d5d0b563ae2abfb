//! Seeding AWS (moto) from a scenario with the Rust SDK: VPC, a subnet per zone, a security
//! group; per node group a launch template, an Auto Scaling group and its instances; warm
//! standbys (launched, then stopped); target groups, an ALB with a listener; the DynamoDB table
//! and the fallback's queue table beside it.
//!
//! Node-group instances are launched with RunInstances by the bed (so spot market options and
//! the spread over zones are exact: moto's ASG launches ignore both) and then attached to the
//! node group's ASG, which is how EKS managed node groups look: the instances carry
//! `aws:autoscaling:groupName`, `eks:cluster-name`, `eks:nodegroup-name`,
//! `kubernetes.io/cluster/<c>=owned`, and the cluster-autoscaler node-template tags that tell the
//! node link (and so kubesim) the labels and taints each node registers with. Note that moto's
//! ASG replaces a terminated attached instance from the launch template (on-demand, first
//! subnet), like a real ASG keeping its desired capacity.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{
    Filter, InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceType,
    LaunchTemplateInstanceMarketOptionsRequest, LaunchTemplateTagSpecificationRequest, MarketType,
    RequestLaunchTemplateData, ResourceType, SpotInstanceType, SpotMarketOptions, Tag,
    TagSpecification,
};
use serde::{Deserialize, Serialize};

use crate::error::{BedError, aws};
use crate::scenario::{Capacity, NodeGroup, Protocol, Scenario, TargetType};

/// Tag prefixes the cluster-autoscaler (and the bed's node link) read labels and taints from.
pub const LABEL_TAG_PREFIX: &str = "k8s.io/cluster-autoscaler/node-template/label/";
pub const TAINT_TAG_PREFIX: &str = "k8s.io/cluster-autoscaler/node-template/taint/";
pub const CLUSTER_NAME_TAG: &str = "eks:cluster-name";
pub const NODEGROUP_TAG: &str = "eks:nodegroup-name";
pub const ASG_TAG: &str = "aws:autoscaling:groupName";
pub const STANDBY_TAG: &str = "costop.io/standby";
pub const MANAGED_TAG: &str = "costop.io/managed";
pub const STANDBY_POOL_TAG: &str = "costop.io/standby-pool";

/// `kubernetes.io/cluster/<cluster>`
pub fn cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// What seeding created, by scenario name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeededWorld {
    pub cluster: String,
    pub region: String,
    pub vpc_id: String,
    pub security_group_id: String,
    /// Subnet id by availability zone.
    pub subnets: BTreeMap<String, String>,
    pub ami_id: String,
    pub node_groups: BTreeMap<String, SeededNodeGroup>,
    /// Target group ARN by name.
    pub target_groups: BTreeMap<String, String>,
    pub load_balancer_arn: Option<String>,
    pub listener_arn: Option<String>,
    pub table: String,
    /// The fallback's queue table (`COSTOP_QUEUE_TABLE`).
    #[serde(default)]
    pub queue_table: String,
    /// The fallback function behind the load balancer, when the scenario deploys it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<crate::fallback::SeededFallback>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeededNodeGroup {
    pub capacity: Capacity,
    pub standby: bool,
    /// Auto Scaling group (not for standbys).
    pub autoscaling_group: Option<String>,
    pub launch_template_id: Option<String>,
    pub instances: Vec<SeededInstance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeededInstance {
    pub instance_id: String,
    pub availability_zone: String,
    pub instance_type: String,
    pub private_ip: String,
    pub private_dns_name: String,
}

impl SeededWorld {
    /// Instance ids of a node group (empty if unknown).
    pub fn instance_ids(&self, node_group: &str) -> Vec<String> {
        self.node_groups
            .get(node_group)
            .map(|g| g.instances.iter().map(|i| i.instance_id.clone()).collect())
            .unwrap_or_default()
    }
    /// Every seeded instance with its node group.
    pub fn instances(&self) -> impl Iterator<Item = (&str, &SeededNodeGroup, &SeededInstance)> {
        self.node_groups
            .iter()
            .flat_map(|(n, g)| g.instances.iter().map(move |i| (n.as_str(), g, i)))
    }
    /// Standby instances (stopped after seeding) by zone.
    pub fn standbys(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (_, g, i) in self.instances() {
            if g.standby {
                out.entry(i.availability_zone.clone())
                    .or_default()
                    .push(i.instance_id.clone());
            }
        }
        out
    }
    /// Instances left running after seeding (everything but the standbys).
    pub fn running_instance_ids(&self) -> Vec<String> {
        self.instances()
            .filter(|(_, g, _)| !g.standby)
            .map(|(_, _, i)| i.instance_id.clone())
            .collect()
    }
}

fn tag(k: impl Into<String>, v: impl Into<String>) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// The tags a node group's instances carry (without `aws:` ones, which the caller adds where
/// allowed).
fn instance_tags(s: &Scenario, ng: &NodeGroup) -> Vec<(String, String)> {
    let c = &s.cluster.name;
    let mut tags = vec![
        (CLUSTER_NAME_TAG.to_string(), c.clone()),
        (cluster_tag(c), "owned".to_string()),
        (
            "k8s.io/cluster-autoscaler/enabled".to_string(),
            "true".to_string(),
        ),
        (
            format!("k8s.io/cluster-autoscaler/{c}"),
            "owned".to_string(),
        ),
    ];
    if ng.standby {
        tags.push(("Name".into(), format!("{c}-{}-standby", ng.name)));
        tags.push((STANDBY_TAG.into(), "true".into()));
        tags.push((MANAGED_TAG.into(), "true".into()));
        tags.push((STANDBY_POOL_TAG.into(), ng.name.clone()));
    } else {
        tags.push(("Name".into(), format!("{c}-{}-node", ng.name)));
        tags.push((NODEGROUP_TAG.into(), ng.name.clone()));
    }
    let (labels, taints) = s.registration_of(ng);
    for (k, v) in labels {
        tags.push((format!("{LABEL_TAG_PREFIX}{k}"), v));
    }
    for t in taints {
        tags.push((
            format!("{TAINT_TAG_PREFIX}{}", t.key),
            format!("{}:{}", t.value, t.effect),
        ));
    }
    tags
}

/// Seed moto from the scenario.
pub async fn seed(sdk: &SdkConfig, s: &Scenario) -> Result<SeededWorld, BedError> {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let asg = aws_sdk_autoscaling::Client::new(sdk);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let c = &s.cluster.name;

    let t0 = std::time::Instant::now();
    let phase = |what: &str| tracing::debug!(secs = t0.elapsed().as_secs_f64(), "seeded {what}");
    // Network.
    let vpc_id = ec2
        .create_vpc()
        .cidr_block(&s.network.vpc_cidr)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(tag("Name", format!("{c}-vpc")))
                .tags(tag(cluster_tag(c), "shared"))
                .build(),
        )
        .send()
        .await
        .map_err(aws("CreateVpc"))?
        .vpc()
        .and_then(|v| v.vpc_id())
        .ok_or_else(|| BedError::Seed("CreateVpc returned no VPC id".into()))?
        .to_string();
    let cidrs = s.subnet_cidrs().map_err(BedError::Seed)?;
    let mut subnets = BTreeMap::new();
    for (z, cidr) in s.network.zones.iter().zip(cidrs) {
        let id = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(&cidr)
            .availability_zone(&z.name)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Subnet)
                    .tags(tag("Name", format!("{c}-private-{}", z.name)))
                    .tags(tag(cluster_tag(c), "shared"))
                    .tags(tag("kubernetes.io/role/internal-elb", "1"))
                    .build(),
            )
            .send()
            .await
            .map_err(aws("CreateSubnet"))?
            .subnet()
            .and_then(|s| s.subnet_id())
            .ok_or_else(|| BedError::Seed("CreateSubnet returned no subnet id".into()))?
            .to_string();
        subnets.insert(z.name.clone(), id);
    }
    let security_group_id = ec2
        .create_security_group()
        .group_name(format!("eks-cluster-sg-{c}"))
        .description(format!("EKS nodes of {c}"))
        .vpc_id(&vpc_id)
        .send()
        .await
        .map_err(aws("CreateSecurityGroup"))?
        .group_id()
        .ok_or_else(|| BedError::Seed("CreateSecurityGroup returned no group id".into()))?
        .to_string();

    phase("network");
    let ami_id = pick_ami(&ec2).await?;

    // DynamoDB table.
    create_table(&ddb, s).await?;
    create_queue_table(&ddb, &queue_table_name(s)).await?;

    phase("AMI + table");
    // Target groups and the load balancer.
    let mut target_groups = BTreeMap::new();
    for tg in &s.target_groups {
        use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetTypeEnum};
        let mut req = elb
            .create_target_group()
            .name(&tg.name)
            .protocol(match tg.protocol {
                Protocol::Http => ProtocolEnum::Http,
                Protocol::Https => ProtocolEnum::Https,
                Protocol::Tcp => ProtocolEnum::Tcp,
            })
            .port(i32::from(tg.port))
            .vpc_id(&vpc_id)
            .target_type(match tg.target_type {
                TargetType::Instance => TargetTypeEnum::Instance,
                TargetType::Ip => TargetTypeEnum::Ip,
            });
        if tg.protocol != Protocol::Tcp {
            req = req.health_check_path("/healthz");
        }
        // A bound group is the controller's: tagged as the groups the AWS Load Balancer
        // Controller creates for an Ingress or a Service are, which tells costop not to
        // deregister what the controller would register again.
        if tg.service.is_some() {
            req = req.tags(
                aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                    .key(costop_core::constants::TAG_LBC_CLUSTER)
                    .value(&s.cluster.name)
                    .build(),
            );
        }
        req = req
            .set_health_check_interval_seconds(tg.health_check_interval_seconds)
            .set_healthy_threshold_count(tg.healthy_threshold_count)
            .set_unhealthy_threshold_count(tg.unhealthy_threshold_count);
        let arn = req
            .send()
            .await
            .map_err(aws("CreateTargetGroup"))?
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .ok_or_else(|| {
                BedError::Seed(format!("CreateTargetGroup {} returned no ARN", tg.name))
            })?
            .to_string();
        if let Some(delay) = tg.deregistration_delay_seconds {
            elb.modify_target_group_attributes()
                .target_group_arn(&arn)
                .attributes(
                    aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                        .key("deregistration_delay.timeout_seconds")
                        .value(delay.to_string())
                        .build(),
                )
                .send()
                .await
                .map_err(aws("ModifyTargetGroupAttributes"))?;
        }
        target_groups.insert(tg.name.clone(), arn);
    }
    let (load_balancer_arn, listener_arn, fallback) = match &s.load_balancer {
        Some(lb) => {
            let (a, l, f) =
                create_load_balancer(&elb, s, lb, &subnets, &security_group_id, &target_groups)
                    .await?;
            (Some(a), Some(l), f)
        }
        None => (None, None, None),
    };

    phase("target groups");
    // Node groups.
    let mut node_groups = BTreeMap::new();
    for ng in &s.node_groups {
        let seeded = seed_node_group(
            &ec2,
            &asg,
            s,
            ng,
            &ami_id,
            &security_group_id,
            &subnets,
            &target_groups,
        )
        .await?;
        node_groups.insert(ng.name.clone(), seeded);
    }

    phase("node groups");
    // Register targets.
    for tg in &s.target_groups {
        use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
        let arn = &target_groups[&tg.name];
        let mut targets = Vec::new();
        for g in &tg.node_groups {
            for i in &node_groups[g].instances {
                let id = match tg.target_type {
                    TargetType::Instance => &i.instance_id,
                    TargetType::Ip => &i.private_ip,
                };
                targets.push(
                    TargetDescription::builder()
                        .id(id)
                        .port(i32::from(tg.port))
                        .build(),
                );
            }
        }
        for chunk in targets.chunks(100) {
            elb.register_targets()
                .target_group_arn(arn)
                .set_targets(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(aws("RegisterTargets"))?;
        }
    }

    phase("targets");
    // Standbys end stopped.
    let standbys: Vec<String> = node_groups
        .values()
        .filter(|g| g.standby)
        .flat_map(|g| g.instances.iter().map(|i| i.instance_id.clone()))
        .collect();
    if !standbys.is_empty() {
        ec2.stop_instances()
            .set_instance_ids(Some(standbys.clone()))
            .send()
            .await
            .map_err(aws("StopInstances"))?;
        wait_for_state(
            &ec2,
            &standbys,
            aws_sdk_ec2::types::InstanceStateName::Stopped,
        )
        .await?;
    }

    phase("standbys");
    Ok(SeededWorld {
        cluster: c.clone(),
        region: s.cluster.region.clone(),
        vpc_id,
        security_group_id,
        subnets,
        ami_id,
        node_groups,
        target_groups,
        load_balancer_arn,
        listener_arn,
        table: s.table.name.clone(),
        queue_table: queue_table_name(s),
        fallback,
    })
}

/// An EKS-optimised Amazon Linux AMI moto ships (falling back to Amazon Linux 2023 / 2).
async fn pick_ami(ec2: &aws_sdk_ec2::Client) -> Result<String, BedError> {
    for pattern in [
        "amazon-eks-node-*",
        "al2023-ami-2023*-x86_64",
        "amzn2-ami-hvm-*-x86_64-gp2",
    ] {
        let out = ec2
            .describe_images()
            .owners("amazon")
            .filters(Filter::builder().name("name").values(pattern).build())
            .filters(
                Filter::builder()
                    .name("architecture")
                    .values("x86_64")
                    .build(),
            )
            .send()
            .await
            .map_err(aws("DescribeImages"))?;
        if let Some(id) = out.images().iter().filter_map(|i| i.image_id()).min() {
            return Ok(id.to_string());
        }
    }
    Err(BedError::Seed(
        "moto knows no Amazon Linux x86_64 AMI".into(),
    ))
}

async fn create_table(ddb: &aws_sdk_dynamodb::Client, s: &Scenario) -> Result<(), BedError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    };
    use costop_core::record::{GSI1, GSI1_PK, GSI1_SK};
    let be = |e: aws_sdk_dynamodb::error::BuildError| BedError::Seed(e.to_string());
    // Every key attribute is a string; a key is (attribute, HASH|RANGE).
    let string_attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(be)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(be)
    };
    let t = &s.table;
    ddb.create_table()
        .table_name(&t.name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attr(&t.partition_key)?)
        .attribute_definitions(string_attr(&t.sort_key)?)
        .key_schema(key(&t.partition_key, KeyType::Hash)?)
        .key_schema(key(&t.sort_key, KeyType::Range)?)
        // costop's record model: interruptions of an instance, through a sparse index.
        .attribute_definitions(string_attr(GSI1_PK)?)
        .attribute_definitions(string_attr(GSI1_SK)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GSI1)
                .key_schema(key(GSI1_PK, KeyType::Hash)?)
                .key_schema(key(GSI1_SK, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(be)?,
        )
        .send()
        .await
        .map_err(aws("CreateTable"))?;
    ddb.update_time_to_live()
        .table_name(&t.name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(&t.ttl_attribute)
                .build()
                .map_err(be)?,
        )
        .send()
        .await
        .map_err(aws("UpdateTimeToLive"))?;
    Ok(())
}

/// The fallback's queue table of a scenario: `<table>-queue`.
pub fn queue_table_name(s: &Scenario) -> String {
    format!("{}-queue", s.table.name)
}

/// The fallback's queue table, as the template declares it: string `pk`/`sk`, on demand, TTL on
/// `ttl` (see `costop_core::fallback::record`).
async fn create_queue_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), BedError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    use costop_core::record::{PK, SK, TTL};
    let be = |e: aws_sdk_dynamodb::error::BuildError| BedError::Seed(e.to_string());
    let mut create = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attr, kind) in [(PK, KeyType::Hash), (SK, KeyType::Range)] {
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attr)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(be)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(attr)
                    .key_type(kind)
                    .build()
                    .map_err(be)?,
            );
    }
    create.send().await.map_err(aws("CreateTable"))?;
    ddb.update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build()
                .map_err(be)?,
        )
        .send()
        .await
        .map_err(aws("UpdateTimeToLive"))?;
    Ok(())
}

async fn create_load_balancer(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    s: &Scenario,
    lb: &crate::scenario::LoadBalancer,
    subnets: &BTreeMap<String, String>,
    sg: &str,
    target_groups: &BTreeMap<String, String>,
) -> Result<(String, String, Option<crate::fallback::SeededFallback>), BedError> {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, IpAddressType, LoadBalancerSchemeEnum, LoadBalancerTypeEnum,
        ProtocolEnum, RuleCondition,
    };
    let arn = elb
        .create_load_balancer()
        .name(&lb.name)
        .r#type(LoadBalancerTypeEnum::Application)
        .scheme(LoadBalancerSchemeEnum::Internal)
        .ip_address_type(IpAddressType::Ipv4)
        .set_subnets(Some(subnets.values().cloned().collect()))
        .security_groups(sg)
        .send()
        .await
        .map_err(aws("CreateLoadBalancer"))?
        .load_balancers()
        .first()
        .and_then(|l| l.load_balancer_arn())
        .ok_or_else(|| BedError::Seed("CreateLoadBalancer returned no ARN".into()))?
        .to_string();
    let http: Vec<&crate::scenario::TargetGroup> = s
        .target_groups
        .iter()
        .filter(|t| t.protocol != Protocol::Tcp)
        .collect();
    let forward = |tg: &str| {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(&target_groups[tg])
            .build()
    };
    let first = http
        .first()
        .ok_or_else(|| BedError::Seed("the load balancer needs an HTTP target group".into()))?;
    let listener = elb
        .create_listener()
        .load_balancer_arn(&arn)
        .protocol(ProtocolEnum::Http)
        .port(i32::from(lb.listener_port))
        .default_actions(forward(&first.name))
        .send()
        .await
        .map_err(aws("CreateListener"))?
        .listeners()
        .first()
        .and_then(|l| l.listener_arn())
        .ok_or_else(|| BedError::Seed("CreateListener returned no ARN".into()))?
        .to_string();
    let mut forwards = vec![(None, target_groups[&first.name].clone())];
    for (i, tg) in http.iter().enumerate().skip(1) {
        forwards.push((
            Some(format!("/{}/*", tg.name)),
            target_groups[&tg.name].clone(),
        ));
        elb.create_rule()
            .listener_arn(&listener)
            .priority(i as i32)
            .conditions(
                RuleCondition::builder()
                    .field("path-pattern")
                    .values(format!("/{}/*", tg.name))
                    .build(),
            )
            .actions(forward(&tg.name))
            .send()
            .await
            .map_err(aws("CreateRule"))?;
    }
    let fallback = match &lb.fallback {
        Some(f) => Some(crate::fallback::seed(elb, s, f, &arn, &listener, &forwards).await?),
        None => None,
    };
    Ok((arn, listener, fallback))
}

#[allow(clippy::too_many_arguments)]
async fn seed_node_group(
    ec2: &aws_sdk_ec2::Client,
    asg: &aws_sdk_autoscaling::Client,
    s: &Scenario,
    ng: &NodeGroup,
    ami: &str,
    sg: &str,
    subnets: &BTreeMap<String, String>,
    target_groups: &BTreeMap<String, String>,
) -> Result<SeededNodeGroup, BedError> {
    let c = &s.cluster.name;
    let zones = s.zones_of(ng);
    let count = s.count_of(ng) as usize;
    let tags = instance_tags(s, ng);
    let asg_name = (!ng.standby).then(|| format!("eks-{c}-{}", ng.name));

    // Launch template + ASG, as EKS creates for a managed node group.
    let mut launch_template_id = None;
    if let Some(asg_name) = &asg_name {
        let mut data = RequestLaunchTemplateData::builder()
            .image_id(ami)
            .instance_type(InstanceType::from(ng.instance_types[0].as_str()))
            .security_group_ids(sg)
            .tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                    .build(),
            );
        if ng.capacity == Capacity::Spot {
            data = data.instance_market_options(
                LaunchTemplateInstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .build(),
            );
        }
        let lt = ec2
            .create_launch_template()
            .launch_template_name(format!("eks-{c}-{}", ng.name))
            .launch_template_data(data.build())
            .send()
            .await
            .map_err(aws("CreateLaunchTemplate"))?
            .launch_template()
            .and_then(|l| l.launch_template_id())
            .ok_or_else(|| BedError::Seed("CreateLaunchTemplate returned no id".into()))?
            .to_string();
        use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag as AsgTag};
        let asg_tags = [
            (NODEGROUP_TAG.to_string(), ng.name.clone()),
            (CLUSTER_NAME_TAG.to_string(), c.clone()),
            (cluster_tag(c), "owned".to_string()),
            (
                "k8s.io/cluster-autoscaler/enabled".to_string(),
                "true".to_string(),
            ),
            (
                format!("k8s.io/cluster-autoscaler/{c}"),
                "owned".to_string(),
            ),
        ];
        let instance_tgs: Vec<String> = s
            .target_groups
            .iter()
            .filter(|t| t.target_type == TargetType::Instance && t.node_groups.contains(&ng.name))
            .map(|t| target_groups[&t.name].clone())
            .collect();
        asg.create_auto_scaling_group()
            .auto_scaling_group_name(asg_name)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_id(&lt)
                    .version("$Latest")
                    .build(),
            )
            .min_size(0)
            .max_size((count * 2).max(1) as i32)
            .desired_capacity(0)
            .vpc_zone_identifier(
                zones
                    .iter()
                    .map(|z| subnets[z].as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .set_target_group_arns((!instance_tgs.is_empty()).then_some(instance_tgs))
            .set_tags(Some(
                asg_tags
                    .iter()
                    .map(|(k, v)| {
                        AsgTag::builder()
                            .key(k)
                            .value(v)
                            .propagate_at_launch(true)
                            .resource_id(asg_name)
                            .resource_type("auto-scaling-group")
                            .build()
                    })
                    .collect(),
            ))
            .send()
            .await
            .map_err(aws("CreateAutoScalingGroup"))?;
        launch_template_id = Some(lt);
    }

    // Instances: zone round-robin, types in turn per zone, batched per (zone, type).
    let mut batches: Vec<((String, String), i32)> = Vec::new();
    for i in 0..count {
        let zone = zones[i % zones.len()].clone();
        let ty = ng.instance_types[(i / zones.len()) % ng.instance_types.len()].clone();
        match batches.iter_mut().find(|(k, _)| k.0 == zone && k.1 == ty) {
            Some((_, n)) => *n += 1,
            None => batches.push(((zone, ty), 1)),
        }
    }
    let mut instances = Vec::new();
    for ((zone, ty), n) in batches {
        let mut all_tags: Vec<Tag> = tags.iter().map(|(k, v)| tag(k, v)).collect();
        if let Some(a) = &asg_name {
            all_tags.push(tag(ASG_TAG, a));
        }
        let mut req = ec2
            .run_instances()
            .image_id(ami)
            .instance_type(InstanceType::from(ty.as_str()))
            .min_count(n)
            .max_count(n)
            .subnet_id(&subnets[&zone])
            .security_group_ids(sg)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(all_tags))
                    .build(),
            );
        if ng.capacity == Capacity::Spot {
            req = req.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        let out = req.send().await.map_err(aws("RunInstances"))?;
        for i in out.instances() {
            instances.push(SeededInstance {
                instance_id: i.instance_id().unwrap_or_default().to_string(),
                availability_zone: i
                    .placement()
                    .and_then(|p| p.availability_zone())
                    .unwrap_or(&zone)
                    .to_string(),
                instance_type: ty.clone(),
                private_ip: i.private_ip_address().unwrap_or_default().to_string(),
                private_dns_name: i.private_dns_name().unwrap_or_default().to_string(),
            });
        }
    }
    if let Some(a) = &asg_name {
        let ids: Vec<String> = instances.iter().map(|i| i.instance_id.clone()).collect();
        for chunk in ids.chunks(20) {
            asg.attach_instances()
                .auto_scaling_group_name(a)
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(aws("AttachInstances"))?;
        }
    }
    Ok(SeededNodeGroup {
        capacity: ng.capacity,
        standby: ng.standby,
        autoscaling_group: asg_name,
        launch_template_id,
        instances,
    })
}

async fn wait_for_state(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
    want: aws_sdk_ec2::types::InstanceStateName,
) -> Result<(), BedError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = ec2
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(aws("DescribeInstances"))?;
        let all = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .all(|i| i.state().and_then(|s| s.name()) == Some(&want));
        if all {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(BedError::Seed(format!(
                "instances {ids:?} did not reach {want:?}"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
