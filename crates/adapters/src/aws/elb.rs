//! ELBv2: finding the target groups that hold an instance or its pods, deregistering targets,
//! and reading whether the load balancer still sends them requests.
//!
//! ELBv2 cannot be asked "which groups hold this instance", so the adapter lists every target
//! group with its tags (a list a warm Lambda reuses for [`GROUP_LIST_TTL`]) and reads the
//! targets of the instance- and ip-type ones, a bounded number at a time; the handler picks the
//! instance's and its pods'. A group tagged [`TAG_LBC_CLUSTER`] is kept by the AWS Load
//! Balancer Controller.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, Listener, LoadBalancer, LoadBalancerTypeEnum,
    Rule, TargetDescription, TargetGroup, TargetGroupTuple, TargetHealthDescription,
    TargetHealthStateEnum, TargetTypeEnum,
};
use costop_app::ports::{Elb, PortError};
use costop_core::constants::{
    TAG_FALLBACK_UPSTREAM, TAG_LBC_CLUSTER, TAG_LBC_INGRESS_STACK as TAG_INGRESS_STACK,
};
use costop_core::facts::{RegisteredTarget, TargetGroupFacts, TargetServing, TargetType};
use costop_core::plan::action::DeregisterTargets;
use costop_core::shift::{RuleFacts, WeightedGroup};
use futures::{StreamExt, TryStreamExt};

use super::sdk_error;

/// `DescribeTargetHealth` calls in flight at once: fast on accounts with many groups, gentle on
/// the API's rate limit.
const HEALTH_CONCURRENCY: usize = 8;

/// How long a warm Lambda reuses the list of target groups. Groups are created rarely; reusing
/// the list saves a sequential round trip before the node can be cordoned. A group created in
/// the last minute is seen on the next invocation after that.
pub const GROUP_LIST_TTL: Duration = Duration::from_secs(60);

/// `DescribeTags` takes at most 20 resource ARNs a call.
const TAGS_PER_CALL: usize = 20;

/// A candidate group: ARN, target type, kept by the load-balancer controller.
type Candidate = (String, TargetType, bool);

/// The target groups and when they were listed, shared by clones.
type GroupCache = Arc<Mutex<Option<(Instant, Vec<Candidate>)>>>;

/// ELBv2 through the SDK.
#[derive(Clone, Debug)]
pub struct ElbAdapter {
    client: aws_sdk_elasticloadbalancingv2::Client,
    groups: GroupCache,
}

impl ElbAdapter {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_elasticloadbalancingv2::Client) -> Self {
        ElbAdapter {
            client,
            groups: Arc::default(),
        }
    }

    /// Instance- and IP-type groups, from the cache when it is fresh.
    async fn candidates(&self) -> Result<Vec<Candidate>, PortError> {
        if let Some((at, list)) = self
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            && at.elapsed() < GROUP_LIST_TTL
        {
            return Ok(list.clone());
        }
        // iam: elasticloadbalancing:DescribeTargetGroups
        let groups: Vec<TargetGroup> = self
            .client
            .describe_target_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk_error("describe target groups", e))?;
        let typed: Vec<(String, TargetType)> = groups.iter().filter_map(candidate).collect();
        let arns: Vec<String> = typed.iter().map(|(a, _)| a.clone()).collect();
        let kept = self.tag_values(&arns, TAG_LBC_CLUSTER).await?;
        let list: Vec<Candidate> = typed
            .into_iter()
            .map(|(arn, t)| {
                let k = kept.contains_key(&arn);
                (arn, t, k)
            })
            .collect();
        *self.groups.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// The value of the tag `key` on each of `arns` that carries it (`DescribeTags`, at most
    /// [`TAGS_PER_CALL`] ARNs a call, a few calls at once).
    async fn tag_values(
        &self,
        arns: &[String],
        key: &'static str,
    ) -> Result<std::collections::BTreeMap<String, String>, PortError> {
        let chunks: Vec<Vec<String>> = arns.chunks(TAGS_PER_CALL).map(<[_]>::to_vec).collect();
        let found: Vec<Vec<(String, String)>> = futures::stream::iter(chunks)
            .map(|chunk| async move {
                // iam: elasticloadbalancing:DescribeTags
                let out = self
                    .client
                    .describe_tags()
                    .set_resource_arns(Some(chunk))
                    .send()
                    .await
                    .map_err(|e| sdk_error("describe tags", e))?;
                Ok::<_, PortError>(
                    out.tag_descriptions()
                        .iter()
                        .filter_map(|d| {
                            let tag = d.tags().iter().find(|t| t.key() == Some(key))?;
                            let value = tag.value().unwrap_or_default().to_owned();
                            Some((d.resource_arn()?.to_owned(), value))
                        })
                        .collect(),
                )
            })
            .buffered(HEALTH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// A group's registered targets; `None` if the group vanished meanwhile.
    async fn targets(&self, arn: &str) -> Result<Option<Vec<RegisteredTarget>>, PortError> {
        Ok(self.health(arn, None).await?.map(|described| {
            described
                .iter()
                .filter_map(|d| d.target())
                .filter_map(registered_target)
                .collect()
        }))
    }

    /// `DescribeTargetHealth` of a group, of `targets` only when given; `None` if the group
    /// vanished meanwhile.
    async fn health(
        &self,
        arn: &str,
        targets: Option<Vec<TargetDescription>>,
    ) -> Result<Option<Vec<TargetHealthDescription>>, PortError> {
        // iam: elasticloadbalancing:DescribeTargetHealth
        match self
            .client
            .describe_target_health()
            .target_group_arn(arn)
            .set_targets(targets)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.target_health_descriptions.unwrap_or_default())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_target_group_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error("describe target health", e)),
        }
    }
}

fn target_type(t: Option<&TargetTypeEnum>) -> Option<TargetType> {
    match t? {
        TargetTypeEnum::Instance => Some(TargetType::Instance),
        TargetTypeEnum::Ip => Some(TargetType::Ip),
        TargetTypeEnum::Lambda => Some(TargetType::Lambda),
        TargetTypeEnum::Alb => Some(TargetType::Alb),
        _ => None,
    }
}

fn registered_target(t: &TargetDescription) -> Option<RegisteredTarget> {
    Some(RegisteredTarget {
        id: t.id()?.to_owned(),
        port: t.port().and_then(|p| u16::try_from(p).ok()),
        availability_zone: t.availability_zone().map(str::to_owned),
    })
}

/// Groups whose targets can be the instance (by id or by one of its IPs).
fn candidate(g: &TargetGroup) -> Option<(String, TargetType)> {
    let t = target_type(g.target_type())
        .filter(|t| matches!(t, TargetType::Instance | TargetType::Ip))?;
    Some((g.target_group_arn()?.to_owned(), t))
}

impl Elb for ElbAdapter {
    async fn target_groups(&self) -> Result<Vec<TargetGroupFacts>, PortError> {
        let candidates = self.candidates().await?;
        let found: Vec<Option<TargetGroupFacts>> = futures::stream::iter(candidates)
            .map(|(arn, target_type, kept_by_controller)| async move {
                let Some(targets) = self.targets(&arn).await? else {
                    return Ok(None);
                };
                Ok::<_, PortError>(Some(TargetGroupFacts {
                    arn,
                    target_type,
                    registered: targets.len(),
                    targets,
                    kept_by_controller,
                }))
            })
            .buffered(HEALTH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn deregister(&self, action: &DeregisterTargets) -> Result<(), PortError> {
        let targets = action.targets.iter().map(description).collect();
        // iam: elasticloadbalancing:DeregisterTargets
        match self
            .client
            .deregister_targets()
            .target_group_arn(&action.target_group_arn)
            .set_targets(Some(targets))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Idempotent on redelivery: the group is gone, or the targets already are.
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_target_group_not_found_exception() || s.is_invalid_target_exception()
                }) =>
            {
                tracing::info!(target_group = %action.target_group_arn, error = %aws_sdk_elasticloadbalancingv2::error::DisplayErrorContext(&e), "nothing to deregister");
                Ok(())
            }
            Err(e) => Err(sdk_error("deregister targets", e)),
        }
    }

    async fn listener_rules(&self) -> Result<Vec<RuleFacts>, PortError> {
        // iam: elasticloadbalancing:DescribeLoadBalancers
        let lbs: Vec<LoadBalancer> = self
            .client
            .describe_load_balancers()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk_error("describe load balancers", e))?;
        let mut listeners = Vec::new();
        for lb in lbs
            .iter()
            .filter(|lb| lb.r#type() == Some(&LoadBalancerTypeEnum::Application))
        {
            // iam: elasticloadbalancing:DescribeListeners
            let found: Vec<Listener> = self
                .client
                .describe_listeners()
                .set_load_balancer_arn(lb.load_balancer_arn().map(str::to_owned))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| sdk_error("describe listeners", e))?;
            listeners.extend(found.into_iter().filter_map(|l| l.listener_arn));
        }
        // The fallback's upstream listener forwards to the same groups, but its traffic is the
        // fallback's own: shifting it would send the fallback's forwards back to the fallback.
        let upstream = self.tag_values(&listeners, TAG_FALLBACK_UPSTREAM).await?;
        listeners.retain(|l| !upstream.contains_key(l));
        let per_listener: Vec<(String, Vec<Rule>)> = futures::stream::iter(listeners)
            .map(|l| async move {
                let rules = self.rules_of(&l).await?;
                Ok::<_, PortError>((l, rules))
            })
            .buffered(HEALTH_CONCURRENCY)
            .try_collect()
            .await?;
        let arns: Vec<String> = per_listener
            .iter()
            .flat_map(|(_, rules)| rules.iter().filter_map(|r| r.rule_arn().map(str::to_owned)))
            .collect();
        let stacks = self.tag_values(&arns, TAG_INGRESS_STACK).await?;
        Ok(per_listener
            .into_iter()
            .flat_map(|(listener_arn, rules)| {
                let stacks = &stacks;
                rules.into_iter().filter_map(move |r| {
                    let arn = r.rule_arn()?.to_owned();
                    let (hosts, paths) = conditions_of(&r);
                    Some(RuleFacts {
                        forward: forward_of(&r)?,
                        listener_arn: listener_arn.clone(),
                        is_default: r.is_default() == Some(true),
                        ingress: stacks.get(&arn).cloned(),
                        arn,
                        hosts,
                        paths,
                    })
                })
            })
            .collect())
    }

    async fn set_forward(
        &self,
        rule: &RuleFacts,
        forward: &[WeightedGroup],
    ) -> Result<(), PortError> {
        if rule.is_default {
            // A listener's default rule is changed through the listener's default actions.
            // iam: elasticloadbalancing:ModifyListener
            self.client
                .modify_listener()
                .listener_arn(&rule.listener_arn)
                .default_actions(forward_action(forward))
                .send()
                .await
                .map_err(|e| sdk_error("modify listener", e))?;
        } else {
            // iam: elasticloadbalancing:ModifyRule
            self.client
                .modify_rule()
                .rule_arn(&rule.arn)
                .actions(forward_action(forward))
                .send()
                .await
                .map_err(|e| sdk_error("modify rule", e))?;
        }
        Ok(())
    }

    async fn in_service(&self, target_group_arn: &str) -> Result<Option<Vec<String>>, PortError> {
        Ok(self.health(target_group_arn, None).await?.map(|described| {
            described
                .iter()
                .filter(|d| {
                    d.target_health().and_then(|h| h.state())
                        == Some(&TargetHealthStateEnum::Healthy)
                })
                .filter_map(|d| d.target()?.id().map(str::to_owned))
                .collect()
        }))
    }

    async fn serving(
        &self,
        group: &DeregisterTargets,
    ) -> Result<Vec<(RegisteredTarget, TargetServing)>, PortError> {
        let gone = || {
            group
                .targets
                .iter()
                .map(|t| (t.clone(), TargetServing::Gone))
                .collect()
        };
        let targets = group.targets.iter().map(description).collect();
        let Some(described) = self.health(&group.target_group_arn, Some(targets)).await? else {
            return Ok(gone());
        };
        Ok(group
            .targets
            .iter()
            .map(|t| {
                let state = described
                    .iter()
                    .find(|d| {
                        d.target().is_some_and(|x| {
                            x.id() == Some(t.id.as_str())
                                && (t.port.is_none() || x.port() == t.port.map(i32::from))
                        })
                    })
                    .and_then(|d| d.target_health()?.state())
                    .map_or(TargetServing::Gone, |s| {
                        TargetServing::from_state(s.as_str())
                    });
                (t.clone(), state)
            })
            .collect())
    }
}

impl ElbAdapter {
    /// Every rule of one listener (`DescribeRules` is paged by marker).
    async fn rules_of(&self, listener_arn: &str) -> Result<Vec<Rule>, PortError> {
        let mut out = Vec::new();
        let mut marker = None;
        loop {
            // iam: elasticloadbalancing:DescribeRules
            let page = self
                .client
                .describe_rules()
                .listener_arn(listener_arn)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| sdk_error("describe rules", e))?;
            out.extend(page.rules().iter().cloned());
            marker = page.next_marker().map(str::to_owned);
            if marker.is_none() {
                return Ok(out);
            }
        }
    }
}

/// A rule's forward, when forwarding is all it does: a rule with other actions too
/// (authentication, say) is not one costop rewrites.
/// The rule's `host-header` and `path-pattern` values (the typed config, else the legacy
/// `Values` a rule created without one carries), which tell a controller-managed rule's Ingress
/// path.
fn conditions_of(rule: &Rule) -> (Vec<String>, Vec<String>) {
    let (mut hosts, mut paths) = (Vec::new(), Vec::new());
    for c in rule.conditions() {
        let (typed, into) = match c.field() {
            Some("host-header") => (c.host_header_config().map(|h| h.values()), &mut hosts),
            Some("path-pattern") => (c.path_pattern_config().map(|p| p.values()), &mut paths),
            _ => continue,
        };
        let values = typed.filter(|v| !v.is_empty()).unwrap_or(c.values());
        into.extend(values.iter().cloned());
    }
    (hosts, paths)
}

fn forward_of(rule: &Rule) -> Option<Vec<WeightedGroup>> {
    let [action] = rule.actions() else {
        return None;
    };
    if action.r#type() != Some(&ActionTypeEnum::Forward) {
        return None;
    }
    let weighted: Vec<WeightedGroup> = action
        .forward_config()
        .map(|f| f.target_groups())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            Some(WeightedGroup {
                target_group_arn: t.target_group_arn()?.to_owned(),
                // ELBv2: a group without a weight in a forward config weighs 1.
                weight: t.weight().map_or(1, |w| w.max(0) as u32),
            })
        })
        .collect();
    if !weighted.is_empty() {
        return Some(weighted);
    }
    Some(vec![WeightedGroup {
        target_group_arn: action.target_group_arn()?.to_owned(),
        weight: 1,
    }])
}

fn forward_action(forward: &[WeightedGroup]) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(
            ForwardActionConfig::builder()
                .set_target_groups(Some(
                    forward
                        .iter()
                        .map(|g| {
                            TargetGroupTuple::builder()
                                .target_group_arn(&g.target_group_arn)
                                .weight(i32::try_from(g.weight).unwrap_or(i32::MAX))
                                .build()
                        })
                        .collect(),
                ))
                .build(),
        )
        .build()
}

fn description(t: &RegisteredTarget) -> TargetDescription {
    TargetDescription::builder()
        .id(&t.id)
        .set_port(t.port.map(i32::from))
        .set_availability_zone(t.availability_zone.clone())
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::aws::tests::sdk_config;
    use crate::testutil::{Captured, Reply, Server};
    use costop_core::event::InstanceState;
    use costop_core::facts::{InstanceFacts, Lifecycle};

    const NS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

    fn groups_xml() -> String {
        let group = |arn: &str, t: &str| {
            format!(
                "<member><TargetGroupArn>{arn}</TargetGroupArn><TargetType>{t}</TargetType></member>"
            )
        };
        format!(
            "<DescribeTargetGroupsResponse xmlns=\"{NS}\"><DescribeTargetGroupsResult><TargetGroups>{}{}{}{}</TargetGroups></DescribeTargetGroupsResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeTargetGroupsResponse>",
            group("arn:inst", "instance"),
            group("arn:ip", "ip"),
            group("arn:lambda", "lambda"),
            group("arn:gone", "ip"),
        )
    }

    fn health_xml(targets: &[(&str, u16)]) -> String {
        let members: String = targets
            .iter()
            .map(|(id, port)| {
                format!("<member><Target><Id>{id}</Id><Port>{port}</Port></Target></member>")
            })
            .collect();
        format!(
            "<DescribeTargetHealthResponse xmlns=\"{NS}\"><DescribeTargetHealthResult><TargetHealthDescriptions>{members}</TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeTargetHealthResponse>"
        )
    }

    fn error_xml(code: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        )
    }

    fn handler(r: &Captured) -> Reply {
        let form = r.form();
        match (
            form["Action"].as_str(),
            form.get("TargetGroupArn").map(String::as_str),
        ) {
            ("DescribeTargetGroups", _) => Reply::xml(200, groups_xml()),
            ("DescribeTags", _) => Reply::xml(
                200,
                format!(
                    "<DescribeTagsResponse xmlns=\"{NS}\"><DescribeTagsResult><TagDescriptions><member><ResourceArn>arn:ip</ResourceArn><Tags><member><Key>elbv2.k8s.aws/cluster</Key><Value>prod</Value></member></Tags></member><member><ResourceArn>arn:inst</ResourceArn><Tags/></member></TagDescriptions></DescribeTagsResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeTagsResponse>"
                ),
            ),
            ("DescribeTargetHealth", Some("arn:inst")) => Reply::xml(
                200,
                health_xml(&[("i-0123456789abcdef0", 80), ("i-0other", 80)]),
            ),
            ("DescribeTargetHealth", Some("arn:ip")) => {
                Reply::xml(200, health_xml(&[("10.0.9.9", 8080)]))
            }
            ("DescribeTargetHealth", Some("arn:states")) => Reply::xml(
                200,
                format!(
                    "<DescribeTargetHealthResponse xmlns=\"{NS}\"><DescribeTargetHealthResult><TargetHealthDescriptions>{}{}{}</TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeTargetHealthResponse>",
                    "<member><Target><Id>10.1.0.1</Id><Port>8080</Port></Target><TargetHealth><State>healthy</State></TargetHealth></member>",
                    "<member><Target><Id>10.1.0.2</Id><Port>8080</Port></Target><TargetHealth><State>draining</State><Reason>Target.DeregistrationInProgress</Reason></TargetHealth></member>",
                    "<member><Target><Id>10.1.0.3</Id><Port>8080</Port></Target><TargetHealth><State>unused</State><Reason>Target.NotRegistered</Reason></TargetHealth></member>",
                ),
            ),
            ("DescribeTargetHealth", Some("arn:gone")) => {
                Reply::xml(400, error_xml("TargetGroupNotFound"))
            }
            ("DeregisterTargets", Some("arn:gone")) => {
                Reply::xml(400, error_xml("TargetGroupNotFound"))
            }
            ("DeregisterTargets", Some("arn:denied")) => Reply::xml(403, error_xml("AccessDenied")),
            ("DeregisterTargets", _) => Reply::xml(
                200,
                format!(
                    "<DeregisterTargetsResponse xmlns=\"{NS}\"><DeregisterTargetsResult/><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeregisterTargetsResponse>"
                ),
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn instance() -> InstanceFacts {
        InstanceFacts {
            instance_id: "i-0123456789abcdef0".into(),
            state: InstanceState::Running,
            lifecycle: Lifecycle::Spot,
            instance_type: None,
            availability_zone: None,
            private_dns_name: None,
            private_ips: vec!["10.0.1.1".into(), "10.0.9.9".into()],
            tags: Default::default(),
        }
    }

    #[tokio::test]
    async fn only_groups_holding_the_instance_are_returned_with_its_own_targets() {
        let server = Server::start(handler).await;
        let elb = ElbAdapter::new(aws_sdk_elasticloadbalancingv2::Client::new(
            &sdk_config(&server.url).await,
        ));
        let all = elb.target_groups().await.unwrap();
        // What the handler does with them: keep the instance's own targets.
        let mut groups: Vec<TargetGroupFacts> = all
            .iter()
            .filter_map(|g| {
                let mine = g.targets_of(&instance());
                (!mine.is_empty()).then(|| TargetGroupFacts {
                    targets: mine,
                    ..g.clone()
                })
            })
            .collect();
        groups.sort_by(|a, b| a.arn.cmp(&b.arn));
        assert_eq!(groups.len(), 2);
        assert_eq!(
            (groups[0].arn.as_str(), groups[0].target_type),
            ("arn:inst", TargetType::Instance)
        );
        assert_eq!(
            groups[0].targets,
            vec![RegisteredTarget {
                id: "i-0123456789abcdef0".into(),
                port: Some(80),
                availability_zone: None
            }]
        );
        assert_eq!(
            (groups[1].arn.as_str(), groups[1].targets[0].id.as_str()),
            ("arn:ip", "10.0.9.9")
        );
        assert_eq!(
            (groups[0].kept_by_controller, groups[1].kept_by_controller),
            (false, true),
            "the group tagged elbv2.k8s.aws/cluster is the controller's"
        );
        // The lambda group's targets were never read.
        assert!(!server.requests().iter().any(|r| {
            r.form()
                .get("TargetGroupArn")
                .is_some_and(|a| a == "arn:lambda")
        }));
        // A warm call reuses the group list: only target health is read again.
        let listed = |s: &Server| {
            s.requests()
                .iter()
                .filter(|r| r.form()["Action"] == "DescribeTargetGroups")
                .count()
        };
        assert_eq!(listed(&server), 1);
        elb.target_groups().await.unwrap();
        assert_eq!(listed(&server), 1);
    }

    fn rules_handler(r: &Captured) -> Reply {
        let form = r.form();
        let ok = |action: &str, result: &str| {
            Reply::xml(
                200,
                format!(
                    "<{action}Response xmlns=\"{NS}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"
                ),
            )
        };
        let forward = |tg: &str| {
            format!(
                "<Actions><member><Type>forward</Type><TargetGroupArn>{tg}</TargetGroupArn></member></Actions>"
            )
        };
        match form["Action"].as_str() {
            "DescribeLoadBalancers" => ok(
                "DescribeLoadBalancers",
                "<LoadBalancers><member><LoadBalancerArn>arn:alb</LoadBalancerArn><Type>application</Type></member><member><LoadBalancerArn>arn:nlb</LoadBalancerArn><Type>network</Type></member></LoadBalancers>",
            ),
            "DescribeListeners" => {
                assert_eq!(form["LoadBalancerArn"], "arn:alb", "only ALBs are read");
                ok(
                    "DescribeListeners",
                    "<Listeners><member><ListenerArn>arn:listener</ListenerArn></member><member><ListenerArn>arn:upstream</ListenerArn></member></Listeners>",
                )
            }
            "DescribeRules" if form["ListenerArn"] == "arn:upstream" => {
                panic!("the fallback's upstream listener is not read for shifting")
            }
            "DescribeRules" => ok(
                "DescribeRules",
                &format!(
                    "<Rules>\
                     <member><RuleArn>arn:default</RuleArn><IsDefault>true</IsDefault>{}</member>\
                     <member><RuleArn>arn:weighted</RuleArn><Priority>1</Priority><Actions><member><Type>forward</Type><ForwardConfig><TargetGroups><member><TargetGroupArn>arn:a</TargetGroupArn><Weight>3</Weight></member><member><TargetGroupArn>arn:b</TargetGroupArn><Weight>1</Weight></member></TargetGroups></ForwardConfig></member></Actions></member>\
                     <member><RuleArn>arn:ingress</RuleArn><Priority>1000</Priority><Conditions><member><Field>host-header</Field><HostHeaderConfig><Values><member>shop.example</member></Values></HostHeaderConfig></member><member><Field>path-pattern</Field><Values><member>/api</member><member>/api/*</member></Values></member></Conditions>{}</member>\
                     <member><RuleArn>arn:authenticated</RuleArn><Priority>2</Priority><Actions><member><Type>authenticate-oidc</Type></member><member><Type>forward</Type><TargetGroupArn>arn:a</TargetGroupArn></member></Actions></member>\
                     <member><RuleArn>arn:fixed</RuleArn><Priority>3</Priority><Actions><member><Type>fixed-response</Type></member></Actions></member>\
                     </Rules>",
                    forward("arn:a"),
                    forward("arn:a")
                ),
            ),
            "DescribeTags" if form.values().any(|v| v == "arn:upstream") => ok(
                "DescribeTags",
                "<TagDescriptions><member><ResourceArn>arn:listener</ResourceArn><Tags/></member><member><ResourceArn>arn:upstream</ResourceArn><Tags><member><Key>costop.io/fallback-upstream</Key><Value>true</Value></member></Tags></member></TagDescriptions>",
            ),
            "DescribeTags" => ok(
                "DescribeTags",
                "<TagDescriptions><member><ResourceArn>arn:ingress</ResourceArn><Tags><member><Key>ingress.k8s.aws/stack</Key><Value>shop/web</Value></member></Tags></member></TagDescriptions>",
            ),
            "ModifyListener" => ok("ModifyListener", "<Listeners/>"),
            "ModifyRule" => ok("ModifyRule", "<Rules/>"),
            other => panic!("unexpected {other}"),
        }
    }

    #[tokio::test]
    async fn listener_rules_are_read_with_their_weights_and_their_ingress_but_not_the_upstreams_and_changed_in_place()
     {
        let server = Server::start(rules_handler).await;
        let elb = ElbAdapter::new(aws_sdk_elasticloadbalancingv2::Client::new(
            &sdk_config(&server.url).await,
        ));
        let rules = elb.listener_rules().await.unwrap();
        let w = |arn: &str, weight| WeightedGroup {
            target_group_arn: arn.into(),
            weight,
        };
        // Rules that do more than forward (authentication, a fixed response) are not costop's to
        // rewrite.
        let arns: Vec<&str> = rules.iter().map(|r| r.arn.as_str()).collect();
        assert_eq!(arns, ["arn:default", "arn:weighted", "arn:ingress"]);
        assert!(rules[0].is_default && rules[0].forward == [w("arn:a", 1)]);
        assert_eq!(rules[1].forward, [w("arn:a", 3), w("arn:b", 1)]);
        assert_eq!(
            (rules[1].ingress.as_deref(), rules[2].ingress.as_deref()),
            (None, Some("shop/web"))
        );
        // Its conditions tell which path of its Ingress it comes from.
        assert_eq!(
            (rules[2].hosts.as_slice(), rules[2].paths.as_slice()),
            (
                &["shop.example".to_owned()][..],
                &["/api".to_owned(), "/api/*".to_owned()][..]
            )
        );
        let shifted = [w("arn:a", 75), w("arn:fallback", 25)];
        elb.set_forward(&rules[0], &shifted).await.unwrap();
        elb.set_forward(&rules[1], &shifted).await.unwrap();
        let sent: Vec<BTreeMap<String, String>> = server
            .requests()
            .iter()
            .map(|r| r.form())
            .filter(|f| f["Action"].starts_with("Modify"))
            .collect();
        // The default rule through the listener's default actions, the others by their ARN.
        assert_eq!(sent[0]["Action"], "ModifyListener");
        assert_eq!(sent[0]["ListenerArn"], "arn:listener");
        assert_eq!(
            sent[0]["DefaultActions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn"],
            "arn:fallback"
        );
        assert_eq!(
            sent[0]["DefaultActions.member.1.ForwardConfig.TargetGroups.member.2.Weight"],
            "25"
        );
        assert_eq!(
            (sent[1]["Action"].as_str(), sent[1]["RuleArn"].as_str()),
            ("ModifyRule", "arn:weighted")
        );
    }

    #[tokio::test]
    async fn target_states_say_which_targets_still_get_requests() {
        let server = Server::start(handler).await;
        let elb = ElbAdapter::new(aws_sdk_elasticloadbalancingv2::Client::new(
            &sdk_config(&server.url).await,
        ));
        let group = |arn: &str| DeregisterTargets {
            target_group_arn: arn.into(),
            target_type: TargetType::Ip,
            targets: ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"]
                .iter()
                .map(|ip| RegisteredTarget {
                    id: (*ip).into(),
                    port: Some(8080),
                    availability_zone: None,
                })
                .collect(),
        };
        let states: Vec<TargetServing> = elb
            .serving(&group("arn:states"))
            .await
            .unwrap()
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            states,
            [
                TargetServing::InService,
                TargetServing::Draining,
                TargetServing::Gone,
                TargetServing::Gone
            ],
            "healthy, draining, unused, and one the answer left out"
        );
        let form = server.requests()[0].form();
        assert_eq!(form["Targets.member.4.Id"], "10.1.0.4");
        let vanished = elb.serving(&group("arn:gone")).await.unwrap();
        assert!(vanished.iter().all(|(_, s)| *s == TargetServing::Gone));
    }

    #[tokio::test]
    async fn deregistration_sends_id_port_and_zone_and_is_idempotent() {
        let server = Server::start(handler).await;
        let elb = ElbAdapter::new(aws_sdk_elasticloadbalancingv2::Client::new(
            &sdk_config(&server.url).await,
        ));
        let action = |arn: &str| DeregisterTargets {
            target_group_arn: arn.into(),
            target_type: TargetType::Ip,
            targets: vec![RegisteredTarget {
                id: "10.0.9.9".into(),
                port: Some(8080),
                availability_zone: Some("all".into()),
            }],
        };
        elb.deregister(&action("arn:ip")).await.unwrap();
        let form = server.requests()[0].form();
        assert_eq!(form["Action"], "DeregisterTargets");
        assert_eq!(form["Targets.member.1.Id"], "10.0.9.9");
        assert_eq!(form["Targets.member.1.Port"], "8080");
        assert_eq!(form["Targets.member.1.AvailabilityZone"], "all");
        elb.deregister(&action("arn:gone")).await.unwrap();
        assert!(matches!(
            elb.deregister(&action("arn:denied")).await,
            Err(PortError::Permanent { .. })
        ));
    }
}
