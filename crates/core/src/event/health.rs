//! AWS Health Event (`aws.health`, detail-type `AWS Health Event`).
//!
//! costop acts on EC2 *scheduled changes* (`service: EC2`,
//! `eventTypeCategory: scheduledChange`: instance retirement, scheduled stop,
//! reboot maintenance…). The change starts at `startTime`, which is the
//! deadline. Affected instances are listed in `affectedEntities[].entityValue`
//! either as ids or as instance ARNs. Large events are split into pages
//! (`page`/`totalPages`, both strings) that each carry a subset of the
//! entities and share `eventArn` and the `communicationId` stem; each page
//! is its own EventBridge event, so costop simply plans each page.
//!
//! ```json
//! "detail": {
//!   "eventArn": "arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/…",
//!   "service": "EC2",
//!   "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
//!   "eventTypeCategory": "scheduledChange",
//!   "eventScopeCode": "ACCOUNT_SPECIFIC",
//!   "communicationId": "…-1",
//!   "startTime": "Sat, 05 Jun 2016 15:10:09 GMT",
//!   "statusCode": "upcoming",
//!   "affectedEntities": [{ "entityValue": "i-…", "statusCode": "IMPAIRED" }],
//!   "page": "1", "totalPages": "1"
//! }
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::field::{Obj, join};
use super::{ParseError, resolve_instance_id};

/// `service` value of EC2 Health events.
pub const SERVICE_EC2: &str = "EC2";
/// `eventTypeCategory` of scheduled changes.
pub const CATEGORY_SCHEDULED_CHANGE: &str = "scheduledChange";
/// `statusCode` of an event that is over.
pub const STATUS_CLOSED: &str = "closed";
/// Entity `statusCode` of an entity no longer affected.
pub const ENTITY_RESOLVED: &str = "RESOLVED";

/// `detail` of an AWS Health event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// Health event ARN (shared by all pages).
    pub event_arn: String,
    /// Affected service, e.g. `EC2`.
    pub service: String,
    /// e.g. `AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED`.
    pub event_type_code: String,
    /// `issue`, `accountNotification`, `scheduledChange` or `investigation`.
    pub event_type_category: String,
    /// `ACCOUNT_SPECIFIC`, `PUBLIC` or `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_scope_code: Option<String>,
    /// `upcoming`, `open` or `closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// Region the change happens in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_region: Option<String>,
    /// Communication id (suffixed `-<page>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication_id: Option<String>,
    /// When the change starts: the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When the change ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// Account affected (organizational view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_account: Option<String>,
    /// This page (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Number of pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<u32>,
    /// Entities on this page.
    #[serde(default)]
    pub affected_entities: Vec<AffectedEntity>,
}

/// One affected entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedEntity {
    /// As delivered: an instance id, an instance ARN, or another service's id.
    pub entity_value: String,
    /// The EC2 instance id `entity_value` resolves to, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// `IMPAIRED`, `UNIMPAIRED`, `UNKNOWN`, `PENDING` or `RESOLVED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
}

impl HealthEvent {
    pub(crate) fn parse(detail: Obj<'_>) -> Result<Self, ParseError> {
        let mut affected_entities = Vec::new();
        for (i, v) in detail.opt_array("affectedEntities")?.iter().enumerate() {
            let path = join("detail", &format!("affectedEntities[{i}]"));
            let entity = Obj::new(v, &path)?;
            let value = entity.req_str("entityValue")?;
            affected_entities.push(AffectedEntity {
                entity_value: value.to_owned(),
                instance_id: resolve_instance_id(value).map(str::to_owned),
                status_code: entity.opt_str("statusCode")?.map(str::to_owned),
            });
        }
        Ok(HealthEvent {
            event_arn: detail.req_nonempty("eventArn")?.to_owned(),
            service: detail.req_str("service")?.to_owned(),
            event_type_code: detail.req_str("eventTypeCode")?.to_owned(),
            event_type_category: detail.req_str("eventTypeCategory")?.to_owned(),
            event_scope_code: detail.opt_str("eventScopeCode")?.map(str::to_owned),
            status_code: detail.opt_str("statusCode")?.map(str::to_owned),
            event_region: detail.opt_str("eventRegion")?.map(str::to_owned),
            communication_id: detail.opt_str("communicationId")?.map(str::to_owned),
            start_time: detail.opt_health_time("startTime")?,
            end_time: detail.opt_health_time("endTime")?,
            affected_account: detail.opt_str("affectedAccount")?.map(str::to_owned),
            page: detail.opt_u32_lenient("page")?,
            total_pages: detail.opt_u32_lenient("totalPages")?,
            affected_entities,
        })
    }

    /// An EC2 scheduled change: the only Health events costop acts on.
    pub fn is_ec2_scheduled_change(&self) -> bool {
        self.service == SERVICE_EC2 && self.event_type_category == CATEGORY_SCHEDULED_CHANGE
    }

    /// The event is over (`statusCode: closed`).
    pub fn is_closed(&self) -> bool {
        self.status_code.as_deref() == Some(STATUS_CLOSED)
    }

    /// The entity describing `instance_id`, if listed on this page.
    pub fn entity_for(&self, instance_id: &str) -> Option<&AffectedEntity> {
        self.affected_entities
            .iter()
            .find(|e| e.instance_id.as_deref() == Some(instance_id))
    }
}

impl AffectedEntity {
    /// AWS says this entity is no longer affected.
    pub fn is_resolved(&self) -> bool {
        self.status_code.as_deref() == Some(ENTITY_RESOLVED)
    }
}
