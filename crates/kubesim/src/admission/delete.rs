//! What a delete asks for: `DeleteOptions` read from JSON, and the grace period a pod's delete
//! gets.

use serde_json::Value;

use crate::error::ApiError;
use crate::store::DeleteOptions;

/// The grace period a delete of `pod` gets: the request's, else the pod's
/// `terminationGracePeriodSeconds`, else 30.
pub fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    requested
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

/// `DeleteOptions` as a JSON object (an Eviction's `deleteOptions`, a DELETE body) in store terms.
pub fn delete_options_from(v: &Value) -> Result<DeleteOptions, ApiError> {
    let grace = match v.get("gracePeriodSeconds") {
        None | Some(Value::Null) => None,
        Some(g) => Some(
            g.as_i64()
                .ok_or_else(|| ApiError::bad_request("gracePeriodSeconds must be an integer"))?,
        ),
    };
    let policy = v.get("propagationPolicy").and_then(Value::as_str);
    if let Some(p) = policy
        && !matches!(p, "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    let orphan = policy == Some("Orphan")
        || (policy.is_none() && v.get("orphanDependents").and_then(Value::as_bool) == Some(true));
    let dry_run = match v.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) if a.is_empty() => false,
        Some(Value::Array(a)) if a.iter().all(|x| x.as_str() == Some("All")) => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other}: supported values: \"All\""
            )));
        }
    };
    let pre = v.get("preconditions");
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        precondition_uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
        orphan,
        dry_run,
    })
}
