//! Golden tests: every sample under `events/` → parsed event + decisions.
//!
//! For `events/<stem>.json` the test reads `tests/golden/<stem>.facts.json`
//! (`{ "note", "now", "env", "facts": [Facts…] }`), parses the event, builds
//! the config from `env`, runs `plan_all`, and compares the pretty JSON of
//! `{ "event", "decisions" }` with `tests/golden/<stem>.plan.json`.
//! Samples named `*-malformed-*` must fail to parse instead; their error
//! (with its source chain) is compared with `<stem>.error.txt`.
//!
//! `UPDATE_GOLDEN=1 cargo test -p costop-core --test golden` rewrites the
//! expected files; review the diff before committing. No I/O besides
//! reading (and, when asked, writing) these files.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use costop_core::Decision;
use costop_core::event::sample_slug;
use costop_core::{Config, Event, Facts, plan_all};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Golden<'a> {
    event: &'a Event,
    decisions: &'a [Decision],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// What the scenario shows (for humans).
    #[allow(dead_code)]
    note: String,
    now: DateTime<Utc>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    facts: Vec<Facts>,
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn updating() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

fn sample_stems() -> Vec<String> {
    let mut stems: Vec<String> = fs::read_dir(events_dir())
        .expect("events/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    stems.sort();
    stems
}

/// Compares (or, when updating, writes) one expected file.
fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if updating() {
        fs::write(path, actual).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    match fs::read_to_string(path) {
        Err(_) => failures.push(format!(
            "{}: missing (run with UPDATE_GOLDEN=1)",
            path.display()
        )),
        Ok(expected) if expected != actual => {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(e, a)| e != a)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            failures.push(format!(
                "{}: differs from line {}\n  expected: {}\n  actual:   {}",
                path.display(),
                line + 1,
                expected.lines().nth(line).unwrap_or("<eof>"),
                actual.lines().nth(line).unwrap_or("<eof>"),
            ));
        }
        Ok(_) => {}
    }
}

fn error_text(err: &costop_core::ParseError) -> String {
    let mut out = format!("{err}\n");
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(&format!("caused by: {s}\n"));
        source = s.source();
    }
    out
}

#[test]
fn every_sample_event_matches_its_golden_output() {
    let stems = sample_stems();
    assert!(
        stems.len() >= 20,
        "expected the full sample set, found {}",
        stems.len()
    );
    let mut failures = Vec::new();
    for stem in &stems {
        let bytes = fs::read(events_dir().join(format!("{stem}.json"))).unwrap();
        let parsed = Event::parse(&bytes);
        let must_fail = stem.contains("-malformed-");
        match (parsed, must_fail) {
            (Err(err), true) => {
                // A malformed sample must say which field, unless it is not JSON.
                if err.field().is_none() && !matches!(err, costop_core::ParseError::Json { .. }) {
                    failures.push(format!("{stem}: error names no field: {err}"));
                }
                check(
                    &golden_dir().join(format!("{stem}.error.txt")),
                    &error_text(&err),
                    &mut failures,
                );
            }
            (Ok(_), true) => failures.push(format!("{stem}: is named malformed but parsed")),
            (Err(err), false) => {
                failures.push(format!("{stem}: failed to parse: {}", error_text(&err)))
            }
            (Ok(event), false) => {
                let slug = sample_slug(event.source(), event.detail_type());
                if !stem.starts_with(&slug) {
                    failures.push(format!(
                        "{stem}: name should start with {slug} (see events/README.md)"
                    ));
                }
                let fixture_path = golden_dir().join(format!("{stem}.facts.json"));
                let fixture: Fixture = match fs::read_to_string(&fixture_path) {
                    Ok(s) => serde_json::from_str(&s)
                        .unwrap_or_else(|e| panic!("{}: bad fixture: {e}", fixture_path.display())),
                    Err(_) => {
                        failures.push(format!("{}: missing facts fixture", fixture_path.display()));
                        continue;
                    }
                };
                let config = Config::from_env(&fixture.env)
                    .unwrap_or_else(|e| panic!("{}: bad env: {e}", fixture_path.display()));
                let decisions = plan_all(&event, &fixture.facts, &config, fixture.now);
                // The shell sends the opening planned without pods and target groups.
                let early: Vec<Facts> = fixture.facts.iter().map(Facts::for_opening).collect();
                let early = plan_all(&event, &early, &config, fixture.now);
                for (full, early) in decisions.iter().zip(&early) {
                    let same = match (full, early) {
                        (Decision::Act(f), Decision::Act(e)) => f.opening() == e.opening(),
                        (Decision::Ignore { reason: f }, Decision::Ignore { reason: e }) => f == e,
                        _ => false,
                    };
                    if !same {
                        failures.push(format!(
                            "{stem}: the opening planned without pods and target groups differs"
                        ));
                    }
                }
                // A struct (not json!) keeps field order as declared: readable.
                let doc = Golden {
                    event: &event,
                    decisions: &decisions,
                };
                let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
                check(
                    &golden_dir().join(format!("{stem}.plan.json")),
                    &text,
                    &mut failures,
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_golden_file_belongs_to_a_sample_event() {
    let stems = sample_stems();
    let mut orphans = Vec::new();
    for entry in fs::read_dir(golden_dir()).unwrap() {
        let entry = entry.unwrap();
        // `standby/` holds the keeper's goldens (tests/standby_golden.rs).
        if entry.file_type().unwrap().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = [".facts.json", ".plan.json", ".error.txt"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix));
        match stem {
            Some(stem) if stems.iter().any(|s| s == stem) => {}
            _ => orphans.push(name),
        }
    }
    assert!(
        orphans.is_empty(),
        "golden files without a sample in events/: {orphans:?}"
    );
}
