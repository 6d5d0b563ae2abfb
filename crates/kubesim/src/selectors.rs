//! Label selectors (`app=web,tier in (a,b),!canary`) and field selectors
//! (`spec.nodeName=n1,status.phase!=Succeeded`) with the real server's rules and errors.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::resources::ResourceDef;

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    // filled in by the selectors implementation
}

impl LabelSelector {
    /// Parse the `labelSelector` query parameter syntax. Bad syntax is a 400 BadRequest.
    pub fn parse(_s: &str) -> Result<Self, ApiError> {
        Ok(Self::default())
    }
    /// Build from a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`), as
    /// Deployments, ReplicaSets, DaemonSets, StatefulSets and PDBs carry it.
    pub fn from_object(_sel: &Value) -> Result<Self, ApiError> {
        Ok(Self::default())
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn matches(&self, _labels: Option<&Map<String, Value>>) -> bool {
        true
    }
    /// Match against an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {}

impl FieldSelector {
    /// Parse the `fieldSelector` query parameter for resource `res`. A field the real server
    /// does not support for that resource is a 400 with `field label not supported: <f>`.
    pub fn parse(_res: &ResourceDef, _s: &str) -> Result<Self, ApiError> {
        Ok(Self::default())
    }
    pub fn matches(&self, _obj: &Value) -> bool {
        true
    }
}
