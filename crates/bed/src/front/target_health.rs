//! `DescribeTargetHealth` answered from the ALB stand-in's view. moto registers and deregisters
//! targets but cannot say `initial`, `unhealthy` or `draining` (it reports every registered
//! target healthy): with a stand-in running, the front answers this action itself, so costop
//! and the ALB see one truth. Without one (no load balancer in the scenario), moto answers.
//!
//! The response has ELBv2's shape
//! (<https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DescribeTargetHealth.html>):
//! `TargetHealthDescriptions/member/{Target{Id,Port,AvailabilityZone}, HealthCheckPort,
//! TargetHealth{State,Reason,Description}}`.

use std::sync::{Arc, RwLock};

use axum::response::Response;
use http::StatusCode;

use super::query::{self, QueryRequest};

/// ELBv2's Query API namespace.
pub const ELBV2_XMLNS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
/// ELBv2's SigV4 signing name.
pub const ELBV2_SIGNING_NAME: &str = "elasticloadbalancing";

/// One target as the load balancer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub id: String,
    pub port: Option<u16>,
    pub availability_zone: Option<String>,
    pub health_check_port: Option<String>,
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining`, `unavailable`.
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// Where the answers come from: the target group's targets, or `None` for a group the
/// stand-in does not know (moto answers then).
pub type Source = Arc<dyn Fn(&str) -> Option<Vec<TargetHealth>> + Send + Sync>;

/// The stand-in's view, once there is one.
#[derive(Default)]
pub struct TargetHealthView {
    source: RwLock<Option<Source>>,
}

impl TargetHealthView {
    pub fn set(&self, source: Source) {
        *self.source.write().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// The answer to a `DescribeTargetHealth`, if the stand-in knows the group. Targets named
    /// in the request (`Targets.member.N.Id`) narrow the answer, as in ELBv2.
    pub fn answer(&self, q: &QueryRequest) -> Option<Response> {
        let source = self
            .source
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let arn = q.get("TargetGroupArn")?;
        let mut targets = source(arn)?;
        let named: Vec<&str> = (1..)
            .map_while(|i| q.get(&format!("Targets.member.{i}.Id")))
            .collect();
        if !named.is_empty() {
            targets.retain(|t| named.contains(&t.id.as_str()));
            // ELBv2 answers a named target the group does not hold as `unused`,
            // `Target.NotRegistered` (the API reference's TargetHealth reason codes).
            for (i, id) in named.iter().enumerate() {
                if !targets.iter().any(|t| t.id == *id) {
                    let port = q
                        .get(&format!("Targets.member.{}.Port", i + 1))
                        .and_then(|p| p.parse().ok());
                    targets.push(TargetHealth {
                        id: (*id).to_owned(),
                        port,
                        availability_zone: None,
                        health_check_port: None,
                        state: "unused".into(),
                        reason: Some("Target.NotRegistered".into()),
                        description: Some("Target is not registered to the target group".into()),
                    });
                }
            }
        }
        Some(render(&targets))
    }
}

fn render(targets: &[TargetHealth]) -> Response {
    let mut members = String::new();
    for t in targets {
        members.push_str("<member><Target>");
        members.push_str(&format!("<Id>{}</Id>", query::escape(&t.id)));
        if let Some(p) = t.port {
            members.push_str(&format!("<Port>{p}</Port>"));
        }
        if let Some(az) = &t.availability_zone {
            members.push_str(&format!(
                "<AvailabilityZone>{}</AvailabilityZone>",
                query::escape(az)
            ));
        }
        members.push_str("</Target>");
        if let Some(p) = &t.health_check_port {
            members.push_str(&format!(
                "<HealthCheckPort>{}</HealthCheckPort>",
                query::escape(p)
            ));
        }
        members.push_str(&format!(
            "<TargetHealth><State>{}</State>",
            query::escape(&t.state)
        ));
        if let Some(r) = &t.reason {
            members.push_str(&format!("<Reason>{}</Reason>", query::escape(r)));
        }
        if let Some(d) = &t.description {
            members.push_str(&format!("<Description>{}</Description>", query::escape(d)));
        }
        members.push_str("</TargetHealth></member>");
    }
    let id = uuid::Uuid::new_v4().to_string();
    query::xml(
        StatusCode::OK,
        &id,
        format!(
            "<DescribeTargetHealthResponse xmlns=\"{ELBV2_XMLNS}\"><DescribeTargetHealthResult><TargetHealthDescriptions>{members}</TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata></DescribeTargetHealthResponse>"
        ),
    )
}
