//! A pod's QoS class, and the resource quantities it compares.

use serde_json::{Map, Value};

/// `Guaranteed`, `Burstable` or `BestEffort`, as `qos.GetPodQOS` computes it (cpu and memory
/// only; init containers count).
pub fn qos_class(spec: &Map<String, Value>) -> &'static str {
    let mut requests: std::collections::BTreeMap<&str, i128> = Default::default();
    let mut limits: std::collections::BTreeMap<&str, i128> = Default::default();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|k| spec.get(k).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let res = c.get("resources");
        for (name, q) in res
            .and_then(|r| r.get("requests"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let name = name.as_str();
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Some(n) = q
                .as_str()
                .and_then(parse_quantity)
                .or_else(|| q.as_f64().map(|f| (f * 1e9) as i128))
                && n > 0
            {
                *requests
                    .entry(if name == "cpu" { "cpu" } else { "memory" })
                    .or_default() += n;
            }
        }
        let mut found = (false, false);
        for (name, q) in res
            .and_then(|r| r.get("limits"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let name = name.as_str();
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Some(n) = q
                .as_str()
                .and_then(parse_quantity)
                .or_else(|| q.as_f64().map(|f| (f * 1e9) as i128))
                && n > 0
            {
                if name == "cpu" {
                    found.0 = true;
                } else {
                    found.1 = true;
                }
                *limits
                    .entry(if name == "cpu" { "cpu" } else { "memory" })
                    .or_default() += n;
            }
        }
        if !(found.0 && found.1) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

/// A resource quantity (`100m`, `1.5Gi`, `2e3`, `1`) in billionths, exactly.
pub fn parse_quantity(s: &str) -> Option<i128> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let (neg, num) = match num.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.len() > 9 {
        return None;
    }
    let int: i128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let frac: i128 = format!("{frac_part:0<9}").parse().ok()?;
    let nanos = int.checked_mul(1_000_000_000)?.checked_add(frac)?;
    let scaled = match suffix {
        "" => nanos,
        "n" => nanos / 1_000_000_000,
        "u" => nanos / 1_000_000,
        "m" => nanos / 1_000,
        "k" => nanos.checked_mul(1_000)?,
        "M" => nanos.checked_mul(1_000_000)?,
        "G" => nanos.checked_mul(1_000_000_000)?,
        "T" => nanos.checked_mul(1_000_000_000_000)?,
        "P" => nanos.checked_mul(1_000_000_000_000_000)?,
        "E" => nanos.checked_mul(1_000_000_000_000_000_000)?,
        "Ki" => nanos.checked_mul(1 << 10)?,
        "Mi" => nanos.checked_mul(1 << 20)?,
        "Gi" => nanos.checked_mul(1 << 30)?,
        "Ti" => nanos.checked_mul(1 << 40)?,
        "Pi" => nanos.checked_mul(1 << 50)?,
        "Ei" => nanos.checked_mul(1 << 60)?,
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            if exp >= 0 {
                nanos.checked_mul(10i128.checked_pow(exp as u32)?)?
            } else {
                nanos / 10i128.checked_pow((-exp) as u32)?
            }
        }
        _ => return None,
    };
    Some(if neg { -scaled } else { scaled })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quantities_parse_exactly() {
        assert_eq!(parse_quantity("100m"), Some(100_000_000));
        assert_eq!(parse_quantity("0.1"), parse_quantity("100m"));
        assert_eq!(parse_quantity("1Gi"), Some((1i128 << 30) * 1_000_000_000));
        assert_eq!(parse_quantity("1Gi"), parse_quantity("1073741824"));
        assert_eq!(parse_quantity("2e3"), parse_quantity("2k"));
        assert_eq!(parse_quantity("abc"), None);
        assert_eq!(parse_quantity(""), None);
    }

    #[test]
    fn qos_classes() {
        let spec = |c: Value| {
            json!({"containers": [c]})
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(qos_class(&spec(json!({"name": "a"}))), "BestEffort");
        assert_eq!(
            qos_class(&spec(json!({"resources": {"requests": {"cpu": "1"}}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}})
            )),
            "Burstable"
        );
    }
}
