//! EC2 Instance Rebalance Recommendation (`aws.ec2`).
//!
//! A Spot instance is at elevated risk of interruption. Parsed and planned
//! as a record-only response today; the warm on-demand standby work plugs
//! its response in here later.
//!
//! ```json
//! "detail": { "instance-id": "i-1234567890abcdef0" }
//! ```

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::field::Obj;
use super::spot::instance_id;

/// `detail` of a rebalance recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceRecommendation {
    /// The instance at risk.
    pub instance_id: String,
}

impl RebalanceRecommendation {
    pub(crate) fn parse(detail: Obj<'_>) -> Result<Self, ParseError> {
        Ok(RebalanceRecommendation {
            instance_id: instance_id(detail, "instance-id")?,
        })
    }
}
