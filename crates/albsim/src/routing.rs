//! Listener rules: which action answers a request. Rules are evaluated in priority order,
//! lowest first, and the listener's default actions answer what no rule matched; a `forward`
//! over several target groups picks one at random in proportion to the weights.
//! <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/rule-condition-types.html>

use std::collections::BTreeMap;

use http::HeaderMap;
use rand::Rng;

use crate::config::{Action, Listener, RedirectConfig, RuleCondition, TargetGroup};
use crate::error::ConfigError;

/// What the request is matched on.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// A rule condition ready to match.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// "The path pattern is case-sensitive" and compared with the path only, not the query.
    PathPattern(Vec<String>),
    /// "Host names are not case-sensitive."
    HostHeader(Vec<String>),
    /// "The method name is case-sensitive" and matched exactly.
    Method(Vec<String>),
    /// Header name and values are "not case-sensitive"; wildcards allowed in values.
    Header { name: String, values: Vec<String> },
    /// Key/value pairs, "not case-sensitive"; a pair without key matches any key.
    Query(Vec<(Option<String>, String)>),
}

/// The terminal action of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    Forward(Vec<WeightedGroup>),
    FixedResponse {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
    Redirect(RedirectConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeightedGroup {
    pub arn: String,
    pub weight: u32,
}

/// One listener's rules, ordered.
#[derive(Debug, Clone)]
pub struct ListenerRoutes {
    rules: Vec<(Vec<Condition>, RouteAction)>,
    default: RouteAction,
}

impl ListenerRoutes {
    pub fn compile(
        listener: &Listener,
        groups: &BTreeMap<&str, &TargetGroup>,
    ) -> Result<Self, ConfigError> {
        let mut rules: Vec<_> = listener.rules.iter().collect();
        rules.sort_by_key(|r| r.priority);
        let rules = rules
            .into_iter()
            .map(|r| {
                Ok((
                    compile_conditions(&r.conditions)?,
                    compile_actions(&r.actions, groups)?,
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self {
            rules,
            default: compile_actions(&listener.default_actions, groups)?,
        })
    }

    /// The action of the first rule whose conditions all match, else the default.
    pub fn route(&self, request: &RequestView<'_>) -> &RouteAction {
        self.rules
            .iter()
            .find(|(conditions, _)| conditions.iter().all(|c| c.matches(request)))
            .map(|(_, action)| action)
            .unwrap_or(&self.default)
    }

    /// Every target group an action of this listener forwards to.
    pub fn target_groups(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .map(|(_, a)| a)
            .chain(std::iter::once(&self.default))
            .flat_map(|a| match a {
                RouteAction::Forward(groups) => groups.as_slice(),
                _ => &[],
            })
            .map(|g| g.arn.as_str())
    }
}

pub fn compile_conditions(conditions: &[RuleCondition]) -> Result<Vec<Condition>, ConfigError> {
    conditions.iter().map(compile_condition).collect()
}

fn compile_condition(c: &RuleCondition) -> Result<Condition, ConfigError> {
    let values =
        |config: &Option<crate::config::ValuesConfig>| -> Result<Vec<String>, ConfigError> {
            config
                .as_ref()
                .map(|v| v.values.clone())
                .or_else(|| c.values.clone())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::Missing {
                    what: format!("values of the {} condition", c.field),
                })
        };
    Ok(match c.field.as_str() {
        "path-pattern" => Condition::PathPattern(values(&c.path_pattern_config)?),
        "host-header" => Condition::HostHeader(values(&c.host_header_config)?),
        "http-request-method" => Condition::Method(values(&c.http_request_method_config)?),
        "http-header" => {
            let h = c
                .http_header_config
                .as_ref()
                .ok_or_else(|| ConfigError::Missing {
                    what: "HttpHeaderConfig".into(),
                })?;
            Condition::Header {
                name: h.http_header_name.to_ascii_lowercase(),
                values: h.values.clone(),
            }
        }
        "query-string" => {
            let q = c
                .query_string_config
                .as_ref()
                .ok_or_else(|| ConfigError::Missing {
                    what: "QueryStringConfig".into(),
                })?;
            Condition::Query(
                q.values
                    .iter()
                    .map(|kv| (kv.key.clone(), kv.value.clone()))
                    .collect(),
            )
        }
        other => {
            return Err(ConfigError::Unsupported {
                what: format!("condition field {other}"),
            });
        }
    })
}

/// The rule's terminal action: actions run in `Order`, and authentication actions (not
/// modelled) let the request through to the next one.
pub fn compile_actions(
    actions: &[Action],
    groups: &BTreeMap<&str, &TargetGroup>,
) -> Result<RouteAction, ConfigError> {
    let mut ordered: Vec<&Action> = actions.iter().collect();
    ordered.sort_by_key(|a| a.order.unwrap_or(u32::MAX));
    for action in ordered {
        match action.action_type.as_str() {
            "forward" => return compile_forward(action, groups),
            "fixed-response" => {
                let f =
                    action
                        .fixed_response_config
                        .as_ref()
                        .ok_or_else(|| ConfigError::Missing {
                            what: "FixedResponseConfig".into(),
                        })?;
                let status = f
                    .status_code
                    .parse::<u16>()
                    .ok()
                    .filter(|s| matches!(s / 100, 2 | 4 | 5))
                    .ok_or_else(|| ConfigError::Invalid {
                        what: format!("fixed-response StatusCode {:?}", f.status_code),
                    })?;
                return Ok(RouteAction::FixedResponse {
                    status,
                    content_type: f.content_type.clone(),
                    body: f.message_body.clone().unwrap_or_default(),
                });
            }
            "redirect" => {
                let r = action
                    .redirect_config
                    .as_ref()
                    .ok_or_else(|| ConfigError::Missing {
                        what: "RedirectConfig".into(),
                    })?;
                if !matches!(r.status_code.as_str(), "HTTP_301" | "HTTP_302") {
                    return Err(ConfigError::Invalid {
                        what: format!("redirect StatusCode {:?}", r.status_code),
                    });
                }
                return Ok(RouteAction::Redirect(r.clone()));
            }
            "authenticate-oidc" | "authenticate-cognito" => continue,
            other => {
                return Err(ConfigError::Unsupported {
                    what: format!("action type {other}"),
                });
            }
        }
    }
    Err(ConfigError::Missing {
        what: "a forward, fixed-response or redirect action".into(),
    })
}

fn compile_forward(
    action: &Action,
    groups: &BTreeMap<&str, &TargetGroup>,
) -> Result<RouteAction, ConfigError> {
    let tuples: Vec<(String, u32)> = match (&action.forward_config, &action.target_group_arn) {
        (Some(fc), _) if !fc.target_groups.is_empty() => fc
            .target_groups
            .iter()
            .map(|t| (t.target_group_arn.clone(), t.weight.unwrap_or(1)))
            .collect(),
        (_, Some(arn)) => vec![(arn.clone(), 1)],
        _ => {
            return Err(ConfigError::Missing {
                what: "the target groups of a forward action".into(),
            });
        }
    };
    let mut out = Vec::with_capacity(tuples.len());
    for (arn, weight) in tuples {
        // "The weight. The range is 0 to 999."
        // <https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetGroupTuple.html>
        if weight > 999 {
            return Err(ConfigError::Invalid {
                what: format!("weight {weight} of {arn}"),
            });
        }
        if !groups.contains_key(arn.as_str()) {
            return Err(ConfigError::UnknownTargetGroup { arn });
        }
        out.push(WeightedGroup { arn, weight });
    }
    Ok(RouteAction::Forward(out))
}

/// Picks a target group at random in proportion to the weights; `None` when every weight is 0.
pub fn pick_weighted<'a>(groups: &'a [WeightedGroup], rng: &mut impl Rng) -> Option<&'a str> {
    let total: u32 = groups.iter().map(|g| g.weight).sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.random_range(0..total);
    for g in groups {
        if r < g.weight {
            return Some(&g.arn);
        }
        r -= g.weight;
    }
    None
}

impl Condition {
    /// Values of one condition are alternatives; every condition of a rule must match.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        match self {
            Condition::PathPattern(patterns) => patterns.iter().any(|p| glob(p, req.path, false)),
            Condition::HostHeader(patterns) => {
                let host = req
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                let host = strip_port(host);
                patterns.iter().any(|p| glob(strip_port(p), host, true))
            }
            Condition::Method(methods) => methods.iter().any(|m| m == req.method),
            Condition::Header { name, values } => req
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| values.iter().any(|p| glob(p, v, true))),
            Condition::Query(pairs) => {
                let query: Vec<(&str, &str)> = req
                    .query
                    .unwrap_or("")
                    .split('&')
                    .filter(|s| !s.is_empty())
                    .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                    .collect();
                pairs.iter().any(|(key, value)| {
                    query.iter().any(|(k, v)| {
                        key.as_deref().is_none_or(|key| glob(key, k, true)) && glob(value, v, true)
                    })
                })
            }
        }
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// ALB wildcard matching: `*` matches any run of characters (none included), `?` exactly one.
pub fn glob(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let norm = |c: char| {
        if case_insensitive {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    let p: Vec<char> = pattern.chars().map(norm).collect();
    let t: Vec<char> = text.chars().map(norm).collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_the_alb_documents() {
        assert!(glob("/api/*", "/api/v1/users", false));
        assert!(glob("/img/???.png", "/img/cat.png", false));
        assert!(!glob("/img/???.png", "/img/bird.png", false));
        assert!(!glob("/API/*", "/api/x", false));
        assert!(glob("*.Example.com", "www.example.com", true));
        assert!(glob("*", "", false));
    }

    #[test]
    fn every_weight_zero_picks_nothing() {
        let groups = vec![WeightedGroup {
            arn: "a".into(),
            weight: 0,
        }];
        assert_eq!(pick_weighted(&groups, &mut rand::rng()), None);
    }
}
