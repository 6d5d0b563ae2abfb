//! The weighted forward that moves a share of a rule's traffic to the fallback.

use super::WeightedGroup;

/// The weights ELBv2 gets are percentages: every weight stays within its 0–999 range, and the
/// rounding error of a move is at most half a percent.
const SCALE: f64 = 100.0;

/// `forward` with, from each group, `share(group) × factor` (at most all) of its part of the
/// traffic moved to `fallback`; `None` when nothing moves. A group's part is its weight over
/// the rule's total; the result is in percent of the rule's traffic, the fallback last.
pub fn shifted(
    forward: &[WeightedGroup],
    share: impl Fn(&str) -> f64,
    fallback: &str,
    factor: f64,
) -> Option<Vec<WeightedGroup>> {
    let total: f64 = forward.iter().map(|g| f64::from(g.weight)).sum();
    if total <= 0.0 {
        return None;
    }
    let mut out = Vec::with_capacity(forward.len() + 1);
    let mut moved = 0.0;
    let mut to_fallback = 0.0;
    for g in forward {
        let part = f64::from(g.weight) / total;
        if g.target_group_arn == fallback {
            to_fallback += part;
            continue;
        }
        let gone = part * (share(&g.target_group_arn) * factor).clamp(0.0, 1.0);
        moved += gone;
        out.push((g.target_group_arn.clone(), part - gone));
    }
    // Less than half a percent rounds to nothing: not worth a change of the rule.
    if moved * SCALE < 0.5 {
        return None;
    }
    out.push((fallback.to_owned(), to_fallback + moved));
    Some(
        out.into_iter()
            .map(|(target_group_arn, part)| WeightedGroup {
                target_group_arn,
                weight: (part * SCALE).round() as u32,
            })
            .collect(),
    )
}
