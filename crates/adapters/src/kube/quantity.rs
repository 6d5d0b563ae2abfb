//! Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`), just enough to add a pod's container
//! requests together for the snapshot. Values are exact integers in nano-units, so `100m + 150m`
//! is `250m`, never a float approximation.

use std::collections::BTreeMap;

/// A quantity's suffix, kept so a sum of like quantities prints in the same unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Suffix(&'static str, i128);

const NANO: i128 = 1_000_000_000;

const SUFFIXES: [Suffix; 16] = [
    Suffix("Ki", 1 << 10),
    Suffix("Mi", 1 << 20),
    Suffix("Gi", 1 << 30),
    Suffix("Ti", 1 << 40),
    Suffix("Pi", 1 << 50),
    Suffix("Ei", 1 << 60),
    Suffix("n", -1_000_000_000),
    Suffix("u", -1_000_000),
    Suffix("m", -1_000),
    Suffix("", 1),
    Suffix("k", 1_000),
    Suffix("M", 1_000_000),
    Suffix("G", 1_000_000_000),
    Suffix("T", 1_000_000_000_000),
    Suffix("P", 1_000_000_000_000_000),
    Suffix("E", 1_000_000_000_000_000_000),
];

impl Suffix {
    fn is_binary(self) -> bool {
        self.0.ends_with('i')
    }

    /// Nano-units per one unit of this suffix (negative multipliers above mean "divide").
    fn nanos(self) -> i128 {
        if self.1 < 0 {
            NANO / -self.1
        } else {
            self.1 * NANO
        }
    }
}

/// A parsed quantity: nano-units, and the suffix it was written with (`None` for an exponent).
fn parse(s: &str) -> Option<(i128, Option<Suffix>)> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, rest) = s.split_at(end);
    let (negative, digits) = match number.as_bytes().first()? {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    // mantissa × 10^-scale
    let mantissa: i128 = format!("{whole}{frac}").parse().ok()?;
    let scale = u32::try_from(frac.len()).ok()?;
    let (nanos_per_unit, suffix, exp10) = match SUFFIXES.iter().find(|x| x.0 == rest) {
        Some(&suf) => (suf.nanos(), Some(suf), 0i32),
        None => {
            let e = rest.strip_prefix(['e', 'E'])?;
            (NANO, None, e.parse::<i32>().ok()?)
        }
    };
    // value = mantissa × nanos_per_unit × 10^(exp10 − scale), rounded up like the API server.
    let mut v = mantissa.checked_mul(nanos_per_unit)?;
    let shift = exp10 - i32::try_from(scale).ok()?;
    if shift >= 0 {
        v = v.checked_mul(10i128.checked_pow(shift.unsigned_abs())?)?;
    } else {
        let d = 10i128.checked_pow(shift.unsigned_abs())?;
        v = v / d + i128::from(v % d != 0);
    }
    Some((if negative { -v } else { v }, suffix))
}

/// Prints a total: in the terms' common suffix when they shared one, else in the largest binary
/// suffix that is exact when any term was binary (memory), else as a plain or milli/micro/nano
/// decimal.
fn format(nanos: i128, suffix: Option<Suffix>, binary: bool) -> String {
    let binaries = SUFFIXES[..6].iter().rev().filter(|_| binary);
    for suf in suffix.iter().chain(binaries) {
        if nanos % suf.nanos() == 0 {
            return format!("{}{}", nanos / suf.nanos(), suf.0);
        }
    }
    for (div, unit) in [(NANO, ""), (1_000_000, "m"), (1_000, "u")] {
        if nanos % div == 0 {
            return format!("{}{unit}", nanos / div);
        }
    }
    format!("{nanos}n")
}

/// Running per-resource totals.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    totals: BTreeMap<String, Total>,
}

#[derive(Debug)]
struct Total {
    nanos: i128,
    /// `Some(Some(s))` while every term used suffix `s`.
    suffix: Option<Option<Suffix>>,
    /// The only term's text, printed verbatim when nothing was added to it.
    single: Option<String>,
    /// A term used a binary suffix.
    binary: bool,
    /// A term did not parse: the total is unknown and the resource is left out.
    invalid: bool,
}

impl Requests {
    /// Adds a container's (or the pod overhead's) requests.
    pub(crate) fn add<'a>(&mut self, requests: impl IntoIterator<Item = (&'a String, &'a str)>) {
        for (name, text) in requests {
            let parsed = parse(text);
            match self.totals.get_mut(name) {
                None => {
                    self.totals.insert(
                        name.clone(),
                        Total {
                            nanos: parsed.map_or(0, |p| p.0),
                            suffix: parsed.map(|p| p.1),
                            single: Some(text.to_owned()),
                            binary: parsed.is_some_and(|p| p.1.is_some_and(Suffix::is_binary)),
                            invalid: parsed.is_none(),
                        },
                    );
                }
                Some(t) => {
                    t.single = None;
                    match parsed {
                        Some((n, s)) => {
                            t.nanos += n;
                            t.binary |= s.is_some_and(Suffix::is_binary);
                            if t.suffix != Some(s) {
                                t.suffix = Some(None);
                            }
                        }
                        None => t.invalid = true,
                    }
                }
            }
        }
    }

    /// Raises each resource to at least `other`'s value (an init container runs alone).
    pub(crate) fn max_with(&mut self, other: Requests) {
        for (name, o) in other.totals {
            match self.totals.get(&name) {
                Some(t) if t.invalid || o.invalid || t.nanos >= o.nanos => {}
                _ => {
                    self.totals.insert(name, o);
                }
            }
        }
    }

    /// The totals as quantities; resources with an unparsable term are left out.
    pub(crate) fn into_map(self) -> BTreeMap<String, String> {
        self.totals
            .into_iter()
            .filter_map(|(name, t)| {
                if t.invalid {
                    tracing::debug!(resource = %name, "unparsable resource quantity left out of the pod's requests");
                    return None;
                }
                let text = t.single.unwrap_or_else(|| format(t.nanos, t.suffix.flatten(), t.binary));
                Some((name, text))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut r = Requests::default();
        for (k, v) in values {
            let k = k.to_string();
            r.add([(&k, *v)]);
        }
        r.into_map()
    }

    #[test]
    fn quantities_parse_exactly() {
        assert_eq!(parse("100m"), Some((100_000_000, Some(SUFFIXES[8]))));
        assert_eq!(parse("1.5Gi").unwrap().0, 3 * (1 << 29) * NANO);
        assert_eq!(parse("2e3").unwrap().0, 2_000 * NANO);
        assert_eq!(parse("1E").unwrap().0, 1_000_000_000_000_000_000 * NANO);
        assert_eq!(parse("0.1").unwrap().0, 100_000_000);
        assert_eq!(parse("1n").unwrap().0, 1);
        assert_eq!(parse("1.5n").unwrap().0, 2, "rounded up");
        assert_eq!(parse("-1").unwrap().0, -NANO);
        for bad in ["", "m", "1x", "1..2", "1e", "Gi"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn like_quantities_sum_in_their_own_unit() {
        let m = sum(&[
            ("cpu", "100m"),
            ("cpu", "150m"),
            ("memory", "1Gi"),
            ("memory", "512Mi"),
        ]);
        assert_eq!(m["cpu"], "250m");
        assert_eq!(m["memory"], "1536Mi");
    }

    #[test]
    fn mixed_quantities_sum_in_the_coarsest_exact_unit() {
        let m = sum(&[
            ("cpu", "1"),
            ("cpu", "500m"),
            ("memory", "1Ki"),
            ("memory", "1k"),
        ]);
        assert_eq!(m["cpu"], "1500m");
        assert_eq!(m["memory"], "2024");
        assert_eq!(sum(&[("cpu", "1"), ("cpu", "1m")])["cpu"], "1001m");
    }

    #[test]
    fn a_single_term_is_kept_verbatim_and_bad_terms_drop_the_resource() {
        assert_eq!(sum(&[("memory", "1.0Gi")])["memory"], "1.0Gi");
        let m = sum(&[("cpu", "1"), ("cpu", "bogus"), ("memory", "1Gi")]);
        assert!(!m.contains_key("cpu"));
        assert_eq!(m["memory"], "1Gi");
    }

    #[test]
    fn an_init_container_raises_the_total() {
        let k = "cpu".to_string();
        let mut r = Requests::default();
        r.add([(&k, "100m")]);
        let mut init = Requests::default();
        init.add([(&k, "2")]);
        r.max_with(init);
        assert_eq!(r.into_map()["cpu"], "2");
    }
}
