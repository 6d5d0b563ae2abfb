//! PodDisruptionBudget validation: `minAvailable` and `maxUnavailable` exclude each other.

use serde_json::Value;

use super::{FieldError, invalid, name_of};
use crate::error::ApiError;
use crate::resources::ResourceDef;

pub(super) fn validate_pdb(r: &'static ResourceDef, pdb: &Value) -> Result<(), ApiError> {
    let spec = pdb.get("spec").unwrap_or(&Value::Null);
    if spec.get("minAvailable").is_some_and(|v| !v.is_null())
        && spec.get("maxUnavailable").is_some_and(|v| !v.is_null())
    {
        return Err(invalid(
            r,
            name_of(pdb),
            vec![FieldError::invalid(
                "spec",
                &Value::String("{...}".into()),
                "minAvailable and maxUnavailable cannot be both set",
            )],
        ));
    }
    Ok(())
}
