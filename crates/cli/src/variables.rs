//! `costop config`: the configuration variables costop declares (`--list`, as grouped text for
//! people, JSON for tools or the Markdown of the core's docs), or the configuration the
//! environment gives, with a warning for each `COSTOP_*` key costop would ignore.

use std::fmt::Write;

use costop_core::config::{self, UnknownVar, VARS};

/// The CLI's own log filter: a `COSTOP_*` key, but not one of the configuration's.
pub const CLI_LOG_VAR: &str = "COSTOP_CLI_LOG";

/// How `costop config --list` prints the variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Grouped text for people.
    Text,
    /// A JSON array of `{name, group, default, accepts, doc}`: `infra/config-vars.json`.
    Json,
    /// The core's docs table: `crates/core/src/config/variables.md`.
    Markdown,
}

/// The declared variables in `format`, ending with a newline.
pub fn list(format: Format) -> Result<String, serde_json::Error> {
    Ok(match format {
        Format::Text => text(),
        Format::Json => serde_json::to_string_pretty(VARS)? + "\n",
        Format::Markdown => config::markdown(),
    })
}

/// A block per group: `NAME=default` (ready to paste into an environment) with what it accepts,
/// then what it means.
fn text() -> String {
    let mut s = String::new();
    let mut group = None;
    for var in VARS {
        if group != Some(var.group) {
            if group.is_some() {
                s.push('\n');
            }
            group = Some(var.group);
            let _ = writeln!(s, "{} ({})", var.group.title(), var.group.name());
        }
        let _ = writeln!(
            s,
            "  {}={}  ({})\n      {}",
            var.name,
            var.default_value(),
            var.accepts(),
            var.doc
        );
    }
    s.push_str(
        "\nAn unset or empty variable takes its default. Booleans accept true/false, 1/0, \
         yes/no, on/off (any case).\n",
    );
    s
}

/// The warnings for the environment's `COSTOP_*` keys that are not configuration, the CLI's
/// own log filter aside.
pub fn warnings<I>(env: I) -> Vec<UnknownVar>
where
    I: IntoIterator<Item = (String, String)>,
{
    config::unknown_var_warnings(env.into_iter().filter(|(k, _)| k != CLI_LOG_VAR))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const REGENERATE: &str =
        "cargo run -q -p costop-cli -- config --list --json > infra/config-vars.json";

    #[test]
    fn the_checked_in_listing_is_the_declaration() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/config-vars.json");
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == list(Format::Json).unwrap(),
            "infra/config-vars.json differs from the declaration in crates/core/src/config/vars.rs \
             (or is missing); regenerate it with\n  {REGENERATE}"
        );
    }

    #[test]
    fn the_json_listing_has_name_group_default_and_doc_for_every_variable() {
        let listed: Vec<serde_json::Value> =
            serde_json::from_str(&list(Format::Json).unwrap()).unwrap();
        assert_eq!(listed.len(), VARS.len());
        let drain = listed
            .iter()
            .find(|v| v["name"] == "COSTOP_DRAIN_CONCURRENCY")
            .unwrap();
        assert_eq!(drain["group"], "drain");
        assert_eq!(drain["default"], "16");
        assert_eq!(drain["accepts"], "1–1000");
        assert_eq!(drain["doc"], "Evictions in flight at once.");
    }

    #[test]
    fn the_text_listing_groups_the_variables_under_headings() {
        let text = list(Format::Text).unwrap();
        assert!(
            text.starts_with(
                "Records: the DynamoDB table (records)\n  COSTOP_TABLE=costop  (text)\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "\nDrain and eviction (drain)\n  COSTOP_DRAIN_CONCURRENCY=16  (1–1000)\n      \
             Evictions in flight at once.\n"
        ));
        assert!(text.contains("  COSTOP_CLUSTER_ALLOW_LIST=  (comma-separated)\n"));
        for var in VARS {
            assert!(text.contains(&format!("  {}=", var.name)), "{}", var.name);
        }
    }

    #[test]
    fn the_clis_own_log_filter_is_not_warned_about() {
        let env = [
            (CLI_LOG_VAR.to_owned(), "debug".to_owned()),
            ("COSTOP_DRY_RUNN".to_owned(), "1".to_owned()),
        ];
        let names: Vec<String> = warnings(env).into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["COSTOP_DRY_RUNN"]);
    }
}
