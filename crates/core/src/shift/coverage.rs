//! Which target groups a shift takes entirely out of the load balancer's direct path: every
//! listener rule that forwards to the group moves all of the group's part to the fallback.
//! The pods behind such a group are out of rotation as soon as the rules change, whether or not
//! their workload opted in to costop's serving label: the fallback's forward reaches them only
//! through the upstream, where it retries what a stopping pod refuses.

use std::collections::BTreeSet;

use super::{RuleFacts, ShiftLease};

/// The groups every forwarding rule of `rules` sends nothing to once `leases` are applied.
pub fn fully_shifted(rules: &[RuleFacts], leases: &[ShiftLease]) -> BTreeSet<String> {
    let emptied = |lease: &ShiftLease, group: &str| {
        lease
            .applied
            .iter()
            .any(|a| a.target_group_arn == group && a.weight == 0)
    };
    let mut groups: BTreeSet<String> = leases
        .iter()
        .flat_map(|l| {
            l.before
                .iter()
                .filter(|g| g.weight > 0 && emptied(l, &g.target_group_arn))
                .map(|g| g.target_group_arn.clone())
        })
        .collect();
    groups.retain(|group| {
        rules
            .iter()
            .filter(|r| {
                r.forward
                    .iter()
                    .any(|w| w.target_group_arn == *group && w.weight > 0)
            })
            .all(|r| {
                leases
                    .iter()
                    .any(|l| l.rule_arn == r.arn && emptied(l, group))
            })
    });
    groups
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::shift::WeightedGroup;

    fn w(arn: &str, weight: u32) -> WeightedGroup {
        WeightedGroup {
            target_group_arn: arn.into(),
            weight,
        }
    }

    fn rule(arn: &str, forward: Vec<WeightedGroup>) -> RuleFacts {
        RuleFacts {
            arn: arn.into(),
            listener_arn: "l".into(),
            is_default: false,
            forward,
            ingress: None,
            hosts: Vec::new(),
            paths: Vec::new(),
        }
    }

    fn lease(rule: &RuleFacts, applied: Vec<WeightedGroup>) -> ShiftLease {
        let t = Utc.with_ymd_and_hms(2025, 3, 10, 14, 0, 0).unwrap();
        ShiftLease {
            rule_arn: rule.arn.clone(),
            listener_arn: rule.listener_arn.clone(),
            is_default: false,
            before: rule.forward.clone(),
            applied,
            fallback_target_group: "fb".into(),
            factor: 100.0,
            groups: Vec::new(),
            interruption_id: "x".into(),
            hold_until: t,
            restore_by: t,
            whole_since: None,
            ingress: None,
        }
    }

    #[test]
    fn a_group_is_out_of_the_direct_path_only_when_every_rule_to_it_sends_it_nothing() {
        let a = rule("r-a", vec![w("shop", 1)]);
        let b = rule("r-b", vec![w("shop", 3), w("api", 1)]);
        let all_a = lease(&a, vec![w("shop", 0), w("fb", 100)]);
        let all_b = lease(&b, vec![w("shop", 0), w("api", 25), w("fb", 75)]);
        let part_b = lease(&b, vec![w("shop", 50), w("api", 25), w("fb", 25)]);
        let rules = [a.clone(), b.clone()];
        for (leases, want) in [
            (vec![all_a.clone(), all_b.clone()], vec!["shop"]),
            (vec![all_a.clone(), part_b], vec![]),
            // A rule to the group that was not shifted at all keeps it in the path.
            (vec![all_a.clone()], vec![]),
            (vec![], vec![]),
        ] {
            let got = fully_shifted(&rules, &leases);
            assert_eq!(got.iter().map(String::as_str).collect::<Vec<_>>(), want);
        }
        // A group no rule forwards to any more is not taken for shifted.
        assert!(fully_shifted(&[a], &[all_a]).contains("shop"));
    }
}
