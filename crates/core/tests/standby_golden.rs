//! Golden tests of the keeper's decisions over `events/`: for each sample with a fixture
//! `tests/golden/standby/<stem>.facts.json` (what the keeper observed: `start` facts for a
//! Spot warning or rebalance recommendation, `pools` for a scheduled tick), the decision must
//! equal `tests/golden/standby/<stem>.plan.json`. `UPDATE_GOLDEN=1` rewrites the outputs.

use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use costop_core::Config;
use costop_core::standby::{self, PoolFacts, StartFacts, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
struct Fixture {
    #[allow(dead_code)]
    note: String,
    now: DateTime<Utc>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    start: Option<StartFacts>,
    #[serde(default)]
    pools: Vec<PoolFacts>,
}

#[derive(Serialize)]
struct Golden<'a> {
    trigger: &'a Trigger,
    decision: Value,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/standby")
}

fn events() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

#[test]
fn every_keeper_fixture_matches_its_golden_decision() {
    let mut failures = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for entry in fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".facts.json") else {
            continue;
        };
        let fixture: Fixture =
            serde_json::from_str(&fs::read_to_string(dir().join(&name)).unwrap())
                .unwrap_or_else(|e| panic!("{name}: bad fixture: {e}"));
        let config =
            Config::from_env(&fixture.env).unwrap_or_else(|e| panic!("{name}: bad env: {e}"));
        let bytes = fs::read(events().join(format!("{stem}.json")))
            .unwrap_or_else(|e| panic!("{stem}: no sample: {e}"));
        let trigger = Trigger::parse(&bytes).unwrap_or_else(|e| panic!("{stem}: {e}"));
        kinds.insert(trigger.name());
        let start = || {
            fixture
                .start
                .clone()
                .unwrap_or_else(|| panic!("{name}: needs `start` facts"))
        };
        let decision = match &trigger {
            Trigger::SpotInterruption(d) => {
                serde_json::to_value(standby::plan_start(d, &start(), &config, fixture.now))
            }
            Trigger::Rebalance(d) => {
                serde_json::to_value(standby::plan_prepare(d, &start(), &config))
            }
            Trigger::Tick(_) => serde_json::to_value(
                fixture
                    .pools
                    .iter()
                    .map(|p| standby::plan_tick(p, &config, fixture.now))
                    .collect::<Vec<_>>(),
            ),
            Trigger::Ignored(i) => serde_json::to_value(i),
        }
        .unwrap();
        let text = serde_json::to_string_pretty(&Golden {
            trigger: &trigger,
            decision,
        })
        .unwrap()
            + "\n";
        let path = dir().join(format!("{stem}.plan.json"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            fs::write(&path, &text).unwrap();
        } else if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            failures.push(format!(
                "{}: differs (UPDATE_GOLDEN=1 to rewrite, then review the diff)",
                path.display()
            ));
        }
    }
    for kind in ["spot-interruption", "rebalance-recommendation", "tick"] {
        assert!(
            kinds.contains(kind),
            "no keeper fixture for a {kind} sample"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
