//! The bed's ELBv2 where it adds to moto: a target group serves one load balancer at most
//! ("Load balancers per target group: 1" in the Application Load Balancer quotas), so a listener
//! or rule of another load balancer that would forward to it is refused with
//! `TargetGroupAssociationLimit` and changes nothing, and `DescribeTargetGroups` names the load
//! balancer a group serves as its rules change.

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_elasticloadbalancingv2::operation::create_rule::CreateRuleError;
use aws_sdk_elasticloadbalancingv2::operation::modify_listener::ModifyListenerError;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, ProtocolEnum, RuleCondition, TargetGroupTuple,
    TargetTypeEnum,
};
use costop_bed::moto::Moto;

struct Elb {
    _moto: Moto,
    client: Client,
    vpc: String,
    subnets: Vec<String>,
}

async fn elb() -> Elb {
    let moto = tokio::task::spawn_blocking(Moto::start)
        .await
        .expect("the start task")
        .expect("moto starts");
    let config = costop_bed::sdk::sdk_config(&moto.endpoint_url(), "us-east-1").await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .expect("vpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("a vpc id")
        .to_owned();
    let mut subnets = Vec::new();
    for (i, az) in ["us-east-1a", "us-east-1b"].into_iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.0.{i}.0/24"))
            .availability_zone(az)
            .send()
            .await
            .expect("subnet");
        subnets.push(
            s.subnet()
                .and_then(|s| s.subnet_id())
                .expect("an id")
                .to_owned(),
        );
    }
    Elb {
        _moto: moto,
        client: Client::new(&config),
        vpc,
        subnets,
    }
}

impl Elb {
    async fn load_balancer(&self, name: &str) -> String {
        let lb = self
            .client
            .create_load_balancer()
            .name(name)
            .set_subnets(Some(self.subnets.clone()))
            .send()
            .await
            .expect("load balancer");
        lb.load_balancers()[0]
            .load_balancer_arn()
            .expect("an ARN")
            .to_owned()
    }

    async fn group(&self, name: &str) -> String {
        let tg = self
            .client
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&self.vpc)
            .target_type(TargetTypeEnum::Ip)
            .send()
            .await
            .expect("target group");
        tg.target_groups()[0]
            .target_group_arn()
            .expect("an ARN")
            .to_owned()
    }

    async fn listener(&self, lb: &str, port: i32, action: Action) -> String {
        let l = self
            .client
            .create_listener()
            .load_balancer_arn(lb)
            .protocol(ProtocolEnum::Http)
            .port(port)
            .default_actions(action)
            .send()
            .await
            .expect("listener");
        l.listeners()[0].listener_arn().expect("an ARN").to_owned()
    }

    /// A rule of `listener` for `path` doing `action`.
    async fn rule(
        &self,
        listener: &str,
        priority: i32,
        path: &str,
        action: Action,
    ) -> Result<String, SdkError<CreateRuleError>> {
        let out = self
            .client
            .create_rule()
            .listener_arn(listener)
            .priority(priority)
            .conditions(
                RuleCondition::builder()
                    .field("path-pattern")
                    .values(path)
                    .build(),
            )
            .actions(action)
            .send()
            .await?;
        Ok(out.rules()[0].rule_arn().expect("an ARN").to_owned())
    }

    /// Make `action` the default of `listener`.
    async fn set_default(
        &self,
        listener: &str,
        action: Action,
    ) -> Result<(), SdkError<ModifyListenerError>> {
        self.client
            .modify_listener()
            .listener_arn(listener)
            .default_actions(action)
            .send()
            .await
            .map(|_| ())
    }

    /// The load balancers `DescribeTargetGroups` says `group` serves.
    async fn serving(&self, group: &str) -> Vec<String> {
        let d = self
            .client
            .describe_target_groups()
            .target_group_arns(group)
            .send()
            .await
            .expect("described");
        d.target_groups()[0].load_balancer_arns().to_vec()
    }

    /// The groups the default rule of `listener` forwards to.
    async fn default_forward(&self, listener: &str) -> Vec<String> {
        let d = self
            .client
            .describe_rules()
            .listener_arn(listener)
            .send()
            .await
            .expect("rules");
        let rule = d
            .rules()
            .iter()
            .find(|r| r.is_default() == Some(true))
            .expect("a default rule");
        groups_of(&rule.actions()[0])
    }
}

fn forward(group: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(group)
        .build()
}

fn weighted(groups: &[(&str, i32)]) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(
            ForwardActionConfig::builder()
                .set_target_groups(Some(
                    groups
                        .iter()
                        .map(|(g, w)| {
                            TargetGroupTuple::builder()
                                .target_group_arn(*g)
                                .weight(*w)
                                .build()
                        })
                        .collect(),
                ))
                .build(),
        )
        .build()
}

fn groups_of(action: &Action) -> Vec<String> {
    match action.forward_config() {
        Some(f) => f
            .target_groups()
            .iter()
            .filter_map(|t| t.target_group_arn().map(str::to_owned))
            .collect(),
        None => action
            .target_group_arn()
            .map(str::to_owned)
            .into_iter()
            .collect(),
    }
}

fn is_association_limit<E: ProvideErrorMetadata>(r: Result<impl std::fmt::Debug, E>) -> bool {
    r.is_err_and(|e| e.code() == Some("TargetGroupAssociationLimit"))
}

#[tokio::test]
async fn a_target_group_serves_one_load_balancer_and_another_ones_change_to_it_is_refused() {
    let elb = elb().await;
    let (public, internal) = (
        elb.load_balancer("public").await,
        elb.load_balancer("internal").await,
    );
    let (shop, shop_internal, fallback) = (
        elb.group("shop").await,
        elb.group("shop-internal").await,
        elb.group("fallback").await,
    );
    let listener = elb.listener(&public, 80, forward(&shop)).await;
    let upstream = elb.listener(&public, 8080, forward(&shop)).await;
    let inside = elb.listener(&internal, 80, forward(&shop_internal)).await;
    let receipts = elb
        .rule(&listener, 1, "/_costop/*", forward(&fallback))
        .await
        .expect("the receipts rule");
    assert_eq!(elb.serving(&fallback).await, std::slice::from_ref(&public));

    // Another listener of the same load balancer may forward to it.
    elb.set_default(&upstream, weighted(&[(&shop, 1), (&fallback, 1)]))
        .await
        .expect("the same load balancer");

    // Another load balancer may not, by any of the four calls; nothing changes.
    let modify = elb
        .set_default(&inside, weighted(&[(&shop_internal, 1), (&fallback, 1)]))
        .await;
    assert!(is_association_limit(modify));
    assert_eq!(
        elb.default_forward(&inside).await,
        std::slice::from_ref(&shop_internal)
    );
    assert!(is_association_limit(
        elb.rule(&inside, 1, "/x", forward(&shop)).await
    ));
    let listener_on_internal = elb
        .client
        .create_listener()
        .load_balancer_arn(&internal)
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .default_actions(forward(&fallback))
        .send()
        .await;
    assert!(is_association_limit(listener_on_internal));
    let own = elb
        .rule(&inside, 2, "/y", forward(&shop_internal))
        .await
        .expect("its own group");
    let modify_rule = elb
        .client
        .modify_rule()
        .rule_arn(&own)
        .actions(forward(&fallback))
        .send()
        .await;
    assert!(is_association_limit(modify_rule));
    assert_eq!(elb.serving(&fallback).await, std::slice::from_ref(&public));
    assert_eq!(
        elb.serving(&shop_internal).await,
        std::slice::from_ref(&internal)
    );

    // Once no rule of the public load balancer forwards to it, the group is free again.
    elb.set_default(&upstream, forward(&shop))
        .await
        .expect("put back");
    elb.client
        .modify_rule()
        .rule_arn(&receipts)
        .actions(forward(&shop))
        .send()
        .await
        .expect("the receipts rule moved");
    assert!(elb.serving(&fallback).await.is_empty());
    elb.set_default(&inside, forward(&fallback))
        .await
        .expect("the internal load balancer takes it");
    assert_eq!(elb.serving(&fallback).await, [internal]);
}
