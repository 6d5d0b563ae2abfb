//! Discovery and metadata endpoints: `/version`, legacy discovery (`/api`, `/apis`,
//! `/api/v1`, `/apis/<group>[/<version>]`), aggregated discovery (`apidiscovery.k8s.io/v2`,
//! which kubectl 1.32 asks for first), the OpenAPI v3 index and per-group-version documents,
//! and the health endpoints.
//!
//! The OpenAPI documents are deliberately minimal: they list each resource's operations with
//! their `x-kubernetes-group-version-kind` and query parameters, which is what kubectl reads to
//! decide that the server validates fields itself (`fieldValidation`), so `kubectl apply`
//! needs no client-side schema. They carry no schemas, so kubectl computes strategic merge
//! patches from its built-in types, and `kubectl explain` has nothing to show.

use serde_json::{Value, json};

use crate::resources::{self, ResourceDef};

/// The Kubernetes version the simulator reports (kubectl 1.32 is within the supported skew).
pub const GIT_VERSION: &str = "v1.33.1";
/// Bumped whenever the OpenAPI documents change, so clients' hash-keyed caches refresh.
const OPENAPI_HASH: &str = "7C3F1B2E8D5A0F46";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T08:19:08Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn main_verbs(r: &ResourceDef) -> Vec<&'static str> {
    let mut v = vec![
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    if r.plural == "namespaces" && r.group.is_empty() {
        v.retain(|x| *x != "deletecollection");
    }
    v
}

fn sub_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "eviction" | "binding" => vec!["create"],
        _ => vec!["get", "patch", "update"],
    }
}

fn in_gv<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static ResourceDef> + 'a {
    resources::ALL
        .iter()
        .copied()
        .filter(move |r| r.group == group && r.version == version)
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str) -> Option<Value> {
    let versions: Vec<Value> = resources::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first()?.clone();
    Some(json!({"name": group, "versions": versions, "preferredVersion": preferred}))
}

/// `/apis` (legacy `APIGroupList`).
pub fn api_group_list() -> Value {
    let mut groups: Vec<&str> = resources::group_versions()
        .into_iter()
        .map(|(g, _)| g)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    let groups: Vec<Value> = groups.into_iter().filter_map(api_group).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn api_group_doc(group: &str) -> Option<Value> {
    let mut g = api_group(group)?;
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>` (`APIResourceList`).
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut out = Vec::new();
    for r in in_gv(group, version) {
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": main_verbs(r),
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        out.push(main);
        for sub in r.subresources {
            let (g, v, k) = r.subresource_kind(sub);
            let mut e = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": sub_verbs(sub),
            });
            if (g, v) != (r.group, r.version) {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            out.push(e);
        }
    }
    if out.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

/// Aggregated discovery for `/api` (`core`) or `/apis`, as `apidiscovery.k8s.io/<version>`.
pub fn aggregated(core: bool, api_version: &str) -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in resources::group_versions() {
        if g.is_empty() == core && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let items: Vec<Value> = groups
        .into_iter()
        .map(|group| {
            let versions: Vec<Value> = resources::group_versions()
                .into_iter()
                .filter(|(g, _)| *g == group)
                .map(|(g, v)| json!({"version": v, "resources": in_gv(g, v).map(aggregated_resource).collect::<Vec<_>>(), "freshness": "Current"}))
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

fn aggregated_resource(r: &'static ResourceDef) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let (g, v, k) = r.subresource_kind(sub);
            json!({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": sub_verbs(sub)})
        })
        .collect();
    let mut e = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": main_verbs(r),
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        e["subresources"] = json!(subresources);
    }
    e
}

/// `/openapi/v3`: one entry per served group-version.
pub fn openapi_v3_root() -> Value {
    let paths: serde_json::Map<String, Value> = resources::group_versions()
        .into_iter()
        .map(|(g, v)| {
            let key = gv_path(g, v);
            (
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={OPENAPI_HASH}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn param(name: &str, location: &str, description: &str) -> Value {
    let mut p = json!({"name": name, "in": location, "description": description, "schema": {"type": "string", "uniqueItems": true}});
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`; `gv` is the part after
/// `/openapi/v3/`.
pub fn openapi_v3_gv(gv: &str) -> Option<Value> {
    let (group, version) = match gv.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let mut paths = serde_json::Map::new();
    let write_params = || {
        vec![
            param(
                "dryRun",
                "query",
                "When present, indicates that modifications should not be persisted.",
            ),
            param(
                "fieldManager",
                "query",
                "fieldManager is a name associated with the actor or entity that is making these changes.",
            ),
            param(
                "fieldValidation",
                "query",
                "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
            ),
        ]
    };
    let mut any = false;
    for r in in_gv(group, version) {
        any = true;
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let base = format!("/{}", gv_path(r.group, r.version));
        let scope = if r.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let mut path_params = vec![param("name", "path", "name of the resource")];
        if r.namespaced {
            path_params.push(param(
                "namespace",
                "path",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        let ok = json!({"200": {"description": "OK"}});
        let op = |action: &str, extra: Vec<Value>, gvk: &Value, body_types: &[&str]| {
            let mut o = json!({
                "operationId": format!("{action}{}", r.kind),
                "parameters": extra,
                "responses": ok,
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            });
            if !body_types.is_empty() {
                let content: serde_json::Map<String, Value> = body_types
                    .iter()
                    .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
                    .collect();
                o["requestBody"] = json!({"content": content, "required": true});
            }
            o
        };
        let patch_types = [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ];
        let mut patch_params = write_params();
        patch_params.push(param(
            "force",
            "query",
            "Force is going to \"force\" Apply requests.",
        ));
        paths.insert(
            format!("{base}{scope}/{}/{{name}}", r.plural),
            json!({
                "parameters": path_params,
                "get": op("get", vec![], &gvk, &[]),
                "put": op("put", write_params(), &gvk, &["application/json"]),
                "patch": op("patch", patch_params.clone(), &gvk, &patch_types),
                "delete": op("delete", vec![param("dryRun", "query", ""), param("gracePeriodSeconds", "query", ""), param("propagationPolicy", "query", "")], &gvk, &[]),
            }),
        );
        let mut coll_params = vec![];
        if r.namespaced {
            coll_params.push(param(
                "namespace",
                "path",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        paths.insert(
            format!("{base}{scope}/{}", r.plural),
            json!({
                "parameters": coll_params,
                "get": op("list", vec![param("labelSelector", "query", ""), param("fieldSelector", "query", ""), param("watch", "query", "")], &gvk, &[]),
                "post": op("post", write_params(), &gvk, &["application/json"]),
            }),
        );
        for sub in r.subresources {
            let (g, v, k) = r.subresource_kind(sub);
            let sub_gvk = json!({"group": g, "version": v, "kind": k});
            let item = if *sub == "status" {
                json!({
                    "parameters": path_params,
                    "get": op("get", vec![], &gvk, &[]),
                    "put": op("put", write_params(), &gvk, &["application/json"]),
                    "patch": op("patch", patch_params.clone(), &gvk, &patch_types),
                })
            } else if sub_verbs(sub) == ["create"] {
                json!({"parameters": path_params, "post": op("post", write_params(), &sub_gvk, &["application/json"])})
            } else {
                json!({
                    "parameters": path_params,
                    "get": op("get", vec![], &sub_gvk, &[]),
                    "put": op("put", write_params(), &sub_gvk, &["application/json"]),
                    "patch": op("patch", patch_params.clone(), &sub_gvk, &patch_types),
                })
            };
            paths.insert(format!("{base}{scope}/{}/{{name}}/{sub}", r.plural), item);
        }
    }
    if !any {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_subresources_with_their_kinds() {
        let core = resource_list("", "v1").unwrap_or_default();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for n in [
            "pods",
            "pods/eviction",
            "pods/status",
            "pods/binding",
            "nodes/status",
            "namespaces",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        let eviction = core["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == "pods/eviction")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            (eviction["group"].as_str(), eviction["kind"].as_str()),
            (Some("policy"), Some("Eviction"))
        );
        let apps = resource_list("apps", "v1").unwrap_or_default();
        assert!(
            apps["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["name"] == "deployments/scale" && r["kind"] == "Scale")
        );
        assert!(resource_list("nope", "v1").is_none());
    }

    #[test]
    fn openapi_advertises_field_validation_on_every_patch() {
        let doc = openapi_v3_gv("apis/apps/v1").unwrap_or_default();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        let patches: Vec<&Value> = paths.values().filter_map(|p| p.get("patch")).collect();
        assert!(!patches.is_empty());
        for p in patches {
            assert!(
                p["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["name"] == "fieldValidation" && x["in"] == "query")
            );
        }
        assert!(
            openapi_v3_root()["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("/openapi/v3/api/v1?hash="))
        );
    }
}
