//! The read side of the records: an instance's interruptions and an interruption's timeline,
//! as `costop timeline` and the demo show them. Only the table is needed.

use costop_core::record::{self, Item};

use crate::ports::{PortError, Records};

/// The interruptions recorded for an instance, oldest first.
pub async fn interruptions_of<R: Records>(
    records: &R,
    instance_id: &str,
) -> Result<Vec<String>, PortError> {
    let items = records.query_instance(instance_id).await?;
    Ok(items
        .iter()
        .filter_map(|i| match i.get("interruption_id") {
            Some(record::Attr::S(s)) => Some(s.clone()),
            _ => None,
        })
        .collect())
}

/// The timeline of an interruption: header, snapshot and entries, in order.
pub async fn timeline<R: Records>(
    records: &R,
    interruption_id: &str,
) -> Result<Vec<Item>, PortError> {
    records
        .query(&record::interruption_pk(interruption_id))
        .await
}
