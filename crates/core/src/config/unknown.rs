//! `COSTOP_*` keys that name no declared variable, for the cold-start warning: costop ignores
//! them, so each is most likely a typo of a variable someone meant to set. Each comes with the
//! declared variable it is closest to, if one is close enough to be worth suggesting.

use std::fmt;

use super::{KNOWN_VARS, PREFIX};

/// A `COSTOP_*` key costop does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVar {
    /// The key as set.
    pub name: String,
    /// The declared variable it most likely means.
    pub did_you_mean: Option<&'static str>,
}

impl fmt::Display for UnknownVar {
    /// `COSTOP_DRY_RUNN is not a costop variable and is ignored (did you mean COSTOP_DRY_RUN?)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not a costop variable and is ignored", self.name)?;
        match self.did_you_mean {
            Some(known) => write!(f, " (did you mean {known}?)"),
            None => Ok(()),
        }
    }
}

/// The `COSTOP_*` keys in `vars` that costop does not know, sorted, each with a suggestion:
/// what a cold start warns about.
pub fn unknown_var_warnings<I, K, V>(vars: I) -> Vec<UnknownVar>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
{
    let mut out: Vec<UnknownVar> = vars
        .into_iter()
        .map(|(k, _)| k.as_ref().to_owned())
        .filter(|k| k.starts_with(PREFIX) && !KNOWN_VARS.contains(&k.as_str()))
        .map(|name| UnknownVar {
            did_you_mean: closest(&name),
            name,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `COSTOP_*` keys in `vars` that costop does not know (likely typos), sorted, for a startup
/// warning; [`unknown_var_warnings`] adds a suggestion to each.
pub fn unknown_vars<I, K, V>(vars: I) -> Vec<String>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
{
    unknown_var_warnings(vars)
        .into_iter()
        .map(|u| u.name)
        .collect()
}

/// The declared variable `name` most likely means: the nearest by edit distance if a typo's
/// worth of edits away (a quarter of the name after `COSTOP_`, at least 2), else the one that
/// has every word of `name` and the fewest others (a dropped word, `COSTOP_CONCURRENCY`), if
/// only one does.
fn closest(name: &str) -> Option<&'static str> {
    let typo = name.strip_prefix(PREFIX)?;
    let suffix = |known: &'static str| known.strip_prefix(PREFIX).unwrap_or(known);
    let near = KNOWN_VARS
        .iter()
        .map(|&known| (edit_distance(typo, suffix(known)), known))
        .filter(|&(d, known)| d <= (suffix(known).len() / 4).max(2))
        .min_by_key(|&(d, _)| d);
    if let Some((_, known)) = near {
        return Some(known);
    }
    let words: Vec<&str> = typo.split('_').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return None;
    }
    let mut supersets: Vec<(usize, &'static str)> = KNOWN_VARS
        .iter()
        .filter_map(|&known| {
            let theirs: Vec<&str> = suffix(known).split('_').collect();
            words
                .iter()
                .all(|w| theirs.contains(w))
                .then(|| (theirs.len() - words.len(), known))
        })
        .collect();
    supersets.sort_by_key(|&(extra, _)| extra);
    match supersets.as_slice() {
        [(best, known), rest @ ..] if rest.first().is_none_or(|(next, _)| next > best) => {
            Some(*known)
        }
        _ => None,
    }
}

/// Levenshtein distance (insertions, deletions and substitutions of bytes).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(keys: &[&str]) -> Vec<UnknownVar> {
        unknown_var_warnings(keys.iter().map(|k| (*k, "1")))
    }

    #[test]
    fn typos_are_reported_as_unknown_variables() {
        let unknown = unknown_vars([
            ("COSTOP_DRY_RUNN", "1"),
            ("COSTOP_DRY_RUN", "1"),
            ("HOME", "/"),
        ]);
        assert_eq!(unknown, vec!["COSTOP_DRY_RUNN"]);
    }

    #[test]
    fn known_and_foreign_keys_are_not_warned_about() {
        let none = warnings(&["COSTOP_DRAIN_CONCURRENCY", "PATH", "costop_dry_run"]);
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn unknown_variables_come_sorted() {
        let names: Vec<String> = warnings(&["COSTOP_ZZZ", "COSTOP_AAA"])
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["COSTOP_AAA", "COSTOP_ZZZ"]);
    }

    #[test]
    fn a_misspelt_variable_is_offered_the_one_it_is_nearest() {
        for (typo, meant) in [
            ("COSTOP_DRAIN_CONCURENCY", "COSTOP_DRAIN_CONCURRENCY"),
            ("COSTOP_DRY_RUNN", "COSTOP_DRY_RUN"),
            ("COSTOP_TABEL", "COSTOP_TABLE"),
            ("COSTOP_STANDBY_POOLSIZE", "COSTOP_STANDBY_POOL_SIZE"),
            ("COSTOP_KUBE_QPS_", "COSTOP_KUBE_QPS"),
        ] {
            assert_eq!(warnings(&[typo])[0].did_you_mean, Some(meant), "{typo}");
        }
    }

    #[test]
    fn a_variable_missing_a_word_is_offered_the_one_with_it() {
        for (typo, meant) in [
            ("COSTOP_CONCURRENCY", "COSTOP_DRAIN_CONCURRENCY"),
            ("COSTOP_TTL_DAYS", "COSTOP_TIMELINE_TTL_DAYS"),
            ("COSTOP_ALLOW_LIST", "COSTOP_CLUSTER_ALLOW_LIST"),
        ] {
            assert_eq!(warnings(&[typo])[0].did_you_mean, Some(meant), "{typo}");
        }
    }

    #[test]
    fn a_name_like_no_variable_or_like_several_gets_no_suggestion() {
        for name in ["COSTOP_CLI_LOG", "COSTOP_REPO", "COSTOP_", "COSTOP_SECONDS"] {
            assert_eq!(warnings(&[name])[0].did_you_mean, None, "{name}");
        }
    }

    #[test]
    fn the_warning_names_the_variable_and_the_suggestion() {
        assert_eq!(
            warnings(&["COSTOP_DRY_RUNN"])[0].to_string(),
            "COSTOP_DRY_RUNN is not a costop variable and is ignored (did you mean COSTOP_DRY_RUN?)"
        );
        assert_eq!(
            warnings(&["COSTOP_REPO"])[0].to_string(),
            "COSTOP_REPO is not a costop variable and is ignored"
        );
    }

    #[test]
    fn edit_distance_counts_single_byte_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
