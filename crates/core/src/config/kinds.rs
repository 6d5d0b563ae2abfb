//! The kinds of value a variable holds: how each reads a variable's text (and what it
//! rejects, as a [`ConfigError`] naming the variable), what it accepts in words for the docs,
//! and how a [`Config`](super::Config) field writes back as a variable's text.

use std::num::ParseIntError;
use std::str::FromStr;

use super::ConfigError;
use crate::fallback::{DefaultPolicy, Routes};
use crate::kube::{TaintEffect, is_qualified_name};
use crate::plan::FailedDrainResult;

/// The error for a value outside what a kind accepts.
fn invalid(var: &'static str, raw: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: raw.to_owned(),
        reason: reason.into(),
    }
}

/// Any text, taken as it is.
pub(super) struct Text;

impl Text {
    pub(super) fn read(&self, _var: &'static str, raw: &str) -> Result<String, ConfigError> {
        Ok(raw.to_owned())
    }

    pub(super) fn accepts(&self) -> String {
        "text".to_owned()
    }
}

/// An integer from `.0` to `.1`, both included. The bounds are `i64` so one kind serves every
/// integer field; the value is parsed as the field's own type, so a negative number for an
/// unsigned field is "not an integer", as the field's type sees it.
pub(super) struct Int(pub(super) i64, pub(super) i64);

impl Int {
    pub(super) fn read<T>(&self, var: &'static str, raw: &str) -> Result<T, ConfigError>
    where
        T: FromStr<Err = ParseIntError> + Into<i128> + Copy,
    {
        let v: T = raw.parse().map_err(|source| ConfigError::NotAnInteger {
            var,
            value: raw.to_owned(),
            source,
        })?;
        let wide: i128 = v.into();
        let Int(min, max) = *self;
        if wide < i128::from(min) || wide > i128::from(max) {
            return Err(invalid(
                var,
                raw,
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(v)
    }

    pub(super) fn accepts(&self) -> String {
        format!("{}–{}", self.0, self.1)
    }
}

/// A finite number greater than zero.
pub(super) struct Positive;

impl Positive {
    pub(super) fn read(&self, var: &'static str, raw: &str) -> Result<f32, ConfigError> {
        let v: f32 = raw.parse().map_err(|source| ConfigError::NotANumber {
            var,
            value: raw.to_owned(),
            source,
        })?;
        if !(v.is_finite() && v > 0.0) {
            return Err(invalid(var, raw, "must be a positive number"));
        }
        Ok(v)
    }

    pub(super) fn accepts(&self) -> String {
        "number > 0".to_owned()
    }
}

/// `true/false`, `1/0`, `yes/no` or `on/off`, in any case.
pub(super) struct Bool;

impl Bool {
    pub(super) fn read(&self, var: &'static str, raw: &str) -> Result<bool, ConfigError> {
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(invalid(
                var,
                raw,
                "expected true/false, 1/0, yes/no or on/off",
            )),
        }
    }

    pub(super) fn accepts(&self) -> String {
        "boolean".to_owned()
    }
}

/// A taint key: a Kubernetes qualified name.
pub(super) struct TaintKey;

impl TaintKey {
    pub(super) fn read(&self, var: &'static str, raw: &str) -> Result<String, ConfigError> {
        if !is_qualified_name(raw) {
            return Err(invalid(
                var,
                raw,
                "not a Kubernetes qualified name (e.g. example.com/my-taint)",
            ));
        }
        Ok(raw.to_owned())
    }

    pub(super) fn accepts(&self) -> String {
        "qualified name".to_owned()
    }
}

/// A taint effect that keeps new pods off the node: `NoSchedule` or `NoExecute`.
pub(super) struct Effect;

impl Effect {
    pub(super) fn read(&self, var: &'static str, raw: &str) -> Result<TaintEffect, ConfigError> {
        match raw.parse() {
            Ok(e @ (TaintEffect::NoSchedule | TaintEffect::NoExecute)) => Ok(e),
            // PreferNoSchedule would let pods land on a dying node.
            _ => Err(invalid(var, raw, "expected NoSchedule or NoExecute")),
        }
    }

    pub(super) fn accepts(&self) -> String {
        "NoSchedule or NoExecute".to_owned()
    }
}

/// How to complete an ASG hook after a failed drain: `CONTINUE`, `ABANDON` or `DEFAULT`.
pub(super) struct HookResult;

impl HookResult {
    pub(super) fn read(
        &self,
        var: &'static str,
        raw: &str,
    ) -> Result<FailedDrainResult, ConfigError> {
        raw.parse()
            .map_err(|()| invalid(var, raw, "expected CONTINUE, ABANDON or DEFAULT"))
    }

    pub(super) fn accepts(&self) -> String {
        "CONTINUE, ABANDON or DEFAULT".to_owned()
    }
}

/// Comma-separated words; blanks around them and empty ones are dropped.
pub(super) struct List;

impl List {
    pub(super) fn read(&self, _var: &'static str, raw: &str) -> Result<Vec<String>, ConfigError> {
        Ok(raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }

    pub(super) fn accepts(&self) -> String {
        "comma-separated".to_owned()
    }
}

/// The fallback's route table: a JSON array, validated whole; the error names the entry.
pub(super) struct RoutesJson;

impl RoutesJson {
    pub(super) fn read(&self, var: &'static str, raw: &str) -> Result<Routes, ConfigError> {
        Routes::parse(raw).map_err(|e| invalid(var, raw, e.to_string()))
    }

    pub(super) fn accepts(&self) -> String {
        "JSON array of routes".to_owned()
    }
}

/// The fallback's policy for unknown routes: `forward` or `reject`.
pub(super) struct DefaultPolicyKind;

impl DefaultPolicyKind {
    pub(super) fn read(&self, var: &'static str, raw: &str) -> Result<DefaultPolicy, ConfigError> {
        raw.parse()
            .map_err(|()| invalid(var, raw, "expected forward or reject"))
    }

    pub(super) fn accepts(&self) -> String {
        "forward or reject".to_owned()
    }
}

/// An `http://` URL with a host (the fallback's upstream client speaks plain HTTP/1.1 to an
/// internal listener; TLS is not supported).
pub(super) struct HttpUrl;

impl HttpUrl {
    pub(super) fn read(&self, var: &'static str, raw: &str) -> Result<String, ConfigError> {
        let rest = raw
            .strip_prefix("http://")
            .ok_or_else(|| invalid(var, raw, "must start with http:// (https is not supported)"))?;
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || rest.contains(['?', '#', ' ']) {
            return Err(invalid(
                var,
                raw,
                "must be http://host[:port][/base path], no query or fragment",
            ));
        }
        Ok(raw.trim_end_matches('/').to_owned())
    }

    pub(super) fn accepts(&self) -> String {
        "http:// URL".to_owned()
    }
}

/// A [`Config`](super::Config) field written as the text of its variable: what the listing
/// shows as the default and the startup line as the value.
pub(super) trait Shown {
    fn shown(&self) -> String;
}

macro_rules! shown_by_display {
    ($($t:ty),+) => {
        $(impl Shown for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
        })+
    };
}

shown_by_display!(
    String,
    bool,
    u32,
    u64,
    i64,
    f32,
    TaintEffect,
    FailedDrainResult,
    DefaultPolicy
);

impl Shown for Routes {
    fn shown(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Shown for Vec<String> {
    fn shown(&self) -> String {
        self.join(",")
    }
}
