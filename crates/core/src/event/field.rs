//! Field access on untyped JSON that names the failing field.
//!
//! serde's derive errors say "invalid type: integer, expected a string"
//! without saying *which* field; an operator reading a dead-letter queue
//! needs `detail.instance-id`. These helpers walk a `serde_json::Value` and
//! produce [`ParseError`]s carrying the full dotted path.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::ParseError;

/// A JSON object together with the path it was found at.
#[derive(Clone, Copy)]
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

/// A short name for a JSON value's type, for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

impl<'a> Obj<'a> {
    /// Views `value` (found at `path`) as an object.
    pub(crate) fn new(value: &'a Value, path: &'a str) -> Result<Self, ParseError> {
        match value {
            Value::Object(map) => Ok(Obj { map, path }),
            other => Err(ParseError::WrongType {
                field: if path.is_empty() {
                    "(event)".to_owned()
                } else {
                    path.to_owned()
                },
                expected: "an object",
                found: type_name(other),
            }),
        }
    }

    pub(crate) fn path(&self, name: &str) -> String {
        join(self.path, name)
    }

    /// A present, non-null value.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub(crate) fn req(&self, name: &str) -> Result<&'a Value, ParseError> {
        self.get(name).ok_or_else(|| ParseError::MissingField {
            field: self.path(name),
        })
    }

    pub(crate) fn req_str(&self, name: &str) -> Result<&'a str, ParseError> {
        let v = self.req(name)?;
        v.as_str().ok_or_else(|| self.wrong(name, "a string", v))
    }

    /// A required string that must not be empty or blank.
    pub(crate) fn req_nonempty(&self, name: &str) -> Result<&'a str, ParseError> {
        let s = self.req_str(name)?;
        if s.trim().is_empty() {
            return Err(ParseError::InvalidValue {
                field: self.path(name),
                value: s.to_owned(),
                reason: "must not be empty".to_owned(),
            });
        }
        Ok(s)
    }

    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ParseError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a string", v)),
        }
    }

    pub(crate) fn opt_array(&self, name: &str) -> Result<&'a [Value], ParseError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(v) => Err(self.wrong(name, "an array", v)),
        }
    }

    /// An optional unsigned integer that AWS sometimes sends as a string
    /// (AWS Health's `page` / `totalPages` are strings like `"1"`).
    pub(crate) fn opt_u32_lenient(&self, name: &str) -> Result<Option<u32>, ParseError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let parsed = match v {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => s.trim().parse::<u32>().ok(),
            other => return Err(self.wrong(name, "a number or numeric string", other)),
        };
        parsed.map(Some).ok_or_else(|| ParseError::InvalidValue {
            field: self.path(name),
            value: v.to_string(),
            reason: "not a non-negative integer".to_owned(),
        })
    }

    /// A required RFC 3339 timestamp (EventBridge's `time`).
    pub(crate) fn req_rfc3339(&self, name: &str) -> Result<DateTime<Utc>, ParseError> {
        let s = self.req_str(name)?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|source| ParseError::InvalidTimestamp {
                field: self.path(name),
                value: s.to_owned(),
                source,
            })
    }

    /// An optional timestamp in AWS Health's format (`Sat, 05 Jun 2016
    /// 15:10:09 GMT`, i.e. RFC 2822), also accepting RFC 3339.
    pub(crate) fn opt_health_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ParseError> {
        let Some(s) = self.opt_str(name)? else {
            return Ok(None);
        };
        match DateTime::parse_from_rfc2822(s).or_else(|e| without_weekday(s).ok_or(e)) {
            Ok(t) => Ok(Some(t.with_timezone(&Utc))),
            Err(rfc2822_err) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Ok(Some(t.with_timezone(&Utc))),
                // Report the RFC 2822 failure: that is the documented format.
                Err(_) => Err(ParseError::InvalidTimestamp {
                    field: self.path(name),
                    value: s.to_owned(),
                    source: rfc2822_err,
                }),
            },
        }
    }

    pub(crate) fn wrong(&self, name: &str, expected: &'static str, found: &Value) -> ParseError {
        ParseError::WrongType {
            field: self.path(name),
            expected,
            found: type_name(found),
        }
    }
}

/// An RFC 2822 time whose weekday does not match its date, read without the weekday: AWS's own
/// sample Health event in the EventBridge documentation says `Sat, 05 Jun 2016` (a Sunday), and
/// an inconsistent weekday is no reason to drop a retirement notice. The weekday is optional in
/// RFC 2822 §3.3; chrono rejects a wrong one.
/// A Health timestamp as [`Obj::opt_health_time`] reads it (RFC 2822, its weekday not
/// required to agree with its date, or RFC 3339), if it is one.
pub(crate) fn health_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s)
        .ok()
        .or_else(|| without_weekday(s))
        .or_else(|| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn without_weekday(s: &str) -> Option<DateTime<chrono::FixedOffset>> {
    let (day, rest) = s.trim_start().split_once(',')?;
    if day.len() != 3 || !day.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    DateTime::parse_from_rfc2822(rest.trim_start()).ok()
}
