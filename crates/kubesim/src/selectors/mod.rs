//! Label selectors (`app=web,tier in (a,b),!canary`) and field selectors
//! (`spec.nodeName=n1,status.phase!=Succeeded`) with the real server's rules and errors.
//!
//! The label grammar, validation and error texts follow `k8s.io/apimachinery/pkg/labels`
//! (`labels.Parse`, `metav1.LabelSelectorAsSelector`); field selectors follow
//! `k8s.io/apimachinery/pkg/fields` plus the per-kind field label conversions of the API server.
//!
//! A label selector is a list of [`Requirement`]s (`requirement`), read from the query syntax
//! by `label_parser` or built from a `metav1.LabelSelector` object (`label`), its keys and
//! values checked by `validation`. A field selector (`field`) names the fields `field_labels`
//! lists for its resource.

mod field;
mod field_labels;
mod label;
mod label_parser;
mod requirement;
mod validation;

pub use field::FieldSelector;
pub use label::{LabelSelector, format_label_selector};
pub use requirement::{Operator, Requirement};
pub use validation::{label_key_errors, label_value_errors};
