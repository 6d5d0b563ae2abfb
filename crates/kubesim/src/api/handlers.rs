//! The verbs on served resources: get, list, watch, create, update, patch (JSON, merge,
//! strategic, apply), delete, deletecollection, and the `status`, `scale`, `eviction` and
//! `binding` subresources. Every write is one store transaction; `dryRun=All` runs the same
//! transaction and rolls it back, so a dry run sees exactly the errors a real write would.
//!
//! Lists are serialized after the store lock is released, item by item, without building a
//! second copy of the list. `limit` is accepted and ignored: lists are always complete, with
//! no `continue` token, which clients treat as the last page.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::query::Query;
use super::table;
use super::{Output, Target, bytes_response, choose, json_response, watch};
use crate::admission;
use crate::error::ApiError;
use crate::patch::{self, PatchType};
use crate::resources::ResourceDef;
use crate::selectors::LabelSelector;
use crate::store::{Store, Tx, meta_str};

/// Marks the deliberate rollback of a dry run; never leaves this module.
const DRY_RUN_ROLLBACK: &str = "kubesim/DryRunRollback";

/// Run `f` as one transaction; a dry run computes the same result and then rolls back.
fn write<T>(
    store: &Store,
    dry_run: bool,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    if !dry_run {
        return store.transaction(f);
    }
    let mut out = None;
    let res = store.transaction(|tx| {
        out = Some(f(tx)?);
        Err::<(), _>(ApiError::new(200, DRY_RUN_ROLLBACK, ""))
    });
    match res {
        Err(e) if e.reason == DRY_RUN_ROLLBACK => {
            out.ok_or_else(|| ApiError::internal("dry run produced no result"))
        }
        Err(e) => Err(e),
        Ok(()) => Err(ApiError::internal("dry run was not rolled back")),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed("the server does not allow this method on the requested resource")
}

/// Dispatch one request on a resource path.
pub(crate) async fn handle(
    st: &super::ApiState,
    method: &Method,
    t: Target,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let store = &st.store;
    let r = t.res;
    let ns = t.ns.as_deref();
    let read_output = || {
        choose(headers, |o| {
            matches!(o, Output::Json | Output::Table { .. } | Output::Metadata)
        })
    };
    match (method.clone(), t.name.as_deref(), t.sub.as_deref()) {
        (Method::GET | Method::HEAD, _, None) if t.legacy_watch || q.flag("watch")? => {
            watch::serve(store, r, t.ns.clone(), t.name.clone(), q, read_output())
        }
        (Method::GET | Method::HEAD, None, None) => list(store, r, ns, q, read_output()),
        (Method::GET | Method::HEAD, Some(name), None | Some("status")) => {
            let obj = store.get(r, ns, name)?;
            render_one(r, &obj, q, read_output())
        }
        (Method::GET | Method::HEAD, Some(name), Some("scale")) => Ok(json_response(
            StatusCode::OK,
            &scale_of(r, &store.get(r, ns, name)?),
        )),
        (Method::POST, None, None) if ns.is_some() || !r.namespaced => {
            create(store, r, ns, q, headers, &body)
        }
        (Method::POST, Some(name), Some("eviction")) => {
            evict(store, ns.unwrap_or("default"), name, q, headers, &body)
        }
        (Method::POST, Some(name), Some("binding")) => {
            let binding = decode_body(headers, &body)?;
            write(store, q.dry_run()?, |tx| {
                admission::bind(tx, ns.unwrap_or("default"), name, &binding)
            })?;
            Ok(json_response(
                StatusCode::CREATED,
                &status_success(201, None),
            ))
        }
        (Method::PUT, Some(name), sub @ (None | Some("status" | "scale"))) => {
            update(store, r, ns, name, sub, q, headers, &body)
        }
        (Method::PATCH, Some(name), sub @ (None | Some("status" | "scale"))) => {
            patch(store, r, ns, name, sub, q, headers, &body)
        }
        (Method::DELETE, Some(name), None) => delete(store, r, ns, name, q, headers, &body),
        (Method::DELETE, None, None) => delete_collection(store, r, ns, q, headers, &body),
        _ => Err(method_not_allowed()),
    }
}

/// A request body as JSON (or YAML); other encodings (protobuf) are a 415.
fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = ct.split(';').next().unwrap_or("").trim();
    let v: Value = match media {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?,
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be decoded as YAML: {e}"
                ))
            })?,
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other:?})"
                ),
            ));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(v)
}

/// The body's apiVersion/kind, when given, must be the resource's.
fn check_type(r: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let expected = r.api_version();
    if !av.is_empty() && av != expected {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({expected})"
        )));
    }
    if !kind.is_empty() && kind != r.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            r.kind
        )));
    }
    Ok(())
}

fn status_success(code: u16, details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code});
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn render_one(
    r: &ResourceDef,
    obj: &Value,
    q: &Query,
    output: Output,
) -> Result<Response, ApiError> {
    let body = match output {
        Output::Table { api_version } => {
            let rv = meta_str(obj, "resourceVersion").map(str::to_string);
            table::render(r, api_version, [obj], rv, q.include_object()?, true)
        }
        Output::Metadata => table::partial_metadata(obj),
        _ => return Ok(json_response(StatusCode::OK, obj)),
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn list(
    store: &Store,
    r: &'static ResourceDef,
    ns: Option<&str>,
    q: &Query,
    output: Output,
) -> Result<Response, ApiError> {
    let opts = q.list_options(r)?;
    let include = q.include_object()?;
    q.int("limit")?;
    let (items, rv) = store.list(r, ns, &opts);
    let body = match output {
        Output::Table { api_version } => serde_json::to_vec(&table::render(
            r,
            api_version,
            items.iter(),
            Some(rv.to_string()),
            include,
            true,
        )),
        Output::Metadata => {
            let metas: Vec<Value> = items.iter().map(table::partial_metadata).collect();
            Ok(list_bytes(
                "PartialObjectMetadataList",
                "meta.k8s.io/v1",
                rv,
                &metas,
            ))
        }
        _ => Ok(list_bytes(
            &format!("{}List", r.kind),
            &r.api_version(),
            rv,
            &items,
        )),
    };
    Ok(bytes_response(StatusCode::OK, body.unwrap_or_default()))
}

/// `{"kind": ..., "apiVersion": ..., "metadata": {"resourceVersion": ...}, "items": [...]}`.
fn list_bytes(kind: &str, api_version: &str, rv: u64, items: &[Value]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256 + items.len() * 1024);
    let head = json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv.to_string()}});
    let _ = serde_json::to_writer(&mut buf, &head);
    buf.pop(); // the closing brace; items follow
    buf.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let _ = serde_json::to_writer(&mut buf, item);
    }
    buf.extend_from_slice(b"]}");
    buf
}

fn create(
    store: &Store,
    r: &'static ResourceDef,
    ns: Option<&str>,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let obj = decode_body(headers, body)?;
    check_type(r, &obj)?;
    q.check_field_validation()?;
    let created = write(store, q.dry_run()?, |tx| tx.create(r, ns, obj))?;
    Ok(json_response(StatusCode::CREATED, &created))
}

#[allow(clippy::too_many_arguments)]
fn update(
    store: &Store,
    r: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let obj = decode_body(headers, body)?;
    q.check_field_validation()?;
    let dry = q.dry_run()?;
    let out = match sub {
        Some("scale") => write(store, dry, |tx| {
            let cur = tx.get(r, ns, name)?;
            if let Some(rv) = meta_str(&obj, "resourceVersion").filter(|rv| !rv.is_empty())
                && Some(rv) != meta_str(&cur, "resourceVersion")
            {
                return Err(ApiError::conflict(r.group, r.plural, name));
            }
            let replicas = obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            set_replicas(tx, r, ns, name, cur, &replicas)
        })?,
        Some(_) => {
            check_type(r, &obj)?;
            write(store, dry, |tx| tx.update_status(r, ns, name, obj))?
        }
        None => {
            check_type(r, &obj)?;
            write(store, dry, |tx| tx.update(r, ns, name, obj))?
        }
    };
    Ok(json_response(StatusCode::OK, &out))
}

/// Write `replicas` into the object behind a scale subresource; returns the new Scale.
fn set_replicas(
    tx: &mut Tx<'_>,
    r: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    mut cur: Value,
    replicas: &Value,
) -> Result<Value, ApiError> {
    let n = replicas
        .as_i64()
        .filter(|n| *n >= 0 && *n <= i32::MAX as i64)
        .ok_or_else(|| {
            admission::invalid(
                &crate::resources::ResourceDef {
                    kind: "Scale",
                    group: "autoscaling",
                    ..*r
                },
                name,
                vec![admission::FieldError::invalid(
                    "spec.replicas",
                    replicas,
                    "must be greater than or equal to 0",
                )],
            )
        })?;
    if let Some(spec) = cur.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("replicas".into(), json!(n));
    } else {
        cur["spec"] = json!({"replicas": n});
    }
    let updated = tx.update(r, ns, name, cur)?;
    Ok(scale_of(r, &updated))
}

/// The `autoscaling/v1` Scale view of a Deployment, ReplicaSet or StatefulSet.
fn scale_of(r: &ResourceDef, obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_default();
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    let selector = obj
        .pointer("/spec/selector")
        .filter(|s| !s.is_null())
        .and_then(|s| LabelSelector::from_object(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut m = json!({"name": pick("name"), "uid": pick("uid"), "resourceVersion": pick("resourceVersion"), "creationTimestamp": pick("creationTimestamp")});
    if r.namespaced {
        m["namespace"] = pick("namespace");
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0), "selector": selector},
    })
}

#[allow(clippy::too_many_arguments)]
fn patch(
    store: &Store,
    r: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = PatchType::from_content_type(ct)?;
    let p = patch::parse_body(kind, body)?;
    q.check_field_validation()?;
    if kind == PatchType::Apply && q.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let dry = q.dry_run()?;
    let (out, created) = write(store, dry, |tx| {
        let Some(cur) = tx.try_get(r, ns, name) else {
            if kind != PatchType::Apply || sub.is_some() {
                return Err(ApiError::not_found(r.group, r.plural, name));
            }
            // Server-side apply creates what does not exist yet.
            let obj = patch::apply(r, kind, &Value::Null, &p)?;
            match meta_str(&obj, "name") {
                Some(n) if n != name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                _ => {}
            }
            let mut obj = obj;
            obj["metadata"]["name"] = json!(name);
            check_type(r, &obj)?;
            return Ok((tx.create(r, ns, obj)?, true));
        };
        let out = match sub {
            Some("scale") => {
                let scale = scale_of(r, &cur);
                // A Scale has no lists, so a strategic patch is a merge patch.
                let kind = if kind == PatchType::Strategic {
                    PatchType::Merge
                } else {
                    kind
                };
                let patched = patch::apply(r, kind, &scale, &p)?;
                if let Some(rv) = meta_str(&patched, "resourceVersion").filter(|rv| !rv.is_empty())
                    && Some(rv) != meta_str(&cur, "resourceVersion")
                {
                    return Err(ApiError::conflict(r.group, r.plural, name));
                }
                let replicas = patched
                    .pointer("/spec/replicas")
                    .cloned()
                    .unwrap_or(json!(0));
                set_replicas(tx, r, ns, name, cur, &replicas)?
            }
            Some(_) => {
                let patched = patch::apply(r, kind, &cur, &p)?;
                tx.update_status(r, ns, name, patched)?
            }
            None => {
                let patched = patch::apply(r, kind, &cur, &p)?;
                tx.update(r, ns, name, patched)?
            }
        };
        Ok((out, false))
    })?;
    Ok(json_response(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &out,
    ))
}

fn optional_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else {
        decode_body(headers, body)
    }
}

fn delete(
    store: &Store,
    r: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut opts = q.delete_options(&optional_body(headers, body)?)?;
    let dry = std::mem::take(&mut opts.dry_run);
    let is_namespace = r.plural == "namespaces" && r.group.is_empty();
    if is_namespace && matches!(name, "default" | "kube-system" | "kube-public") {
        return Err(admission::forbidden(
            r,
            name,
            "this namespace may not be deleted",
        ));
    }
    let (obj, still_there) = write(store, dry, |tx| {
        let obj = tx.delete(r, ns, name, &opts)?;
        let still_there = tx.try_get(r, ns, name);
        Ok((obj, still_there))
    })?;
    // Objects that stay (graceful deletion, finalizers, a namespace being emptied) come back
    // as they are now; pods come back even when gone; everything else gets a Status.
    let body = match still_there {
        Some(now) => now,
        None if r.kind == "Pod" && r.group.is_empty() => obj,
        None => status_success(
            200,
            Some(
                json!({"name": name, "group": r.group, "kind": r.plural, "uid": meta_str(&obj, "uid").unwrap_or("")}),
            ),
        ),
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn delete_collection(
    store: &Store,
    r: &'static ResourceDef,
    ns: Option<&str>,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    if r.plural == "namespaces" && r.group.is_empty() {
        return Err(method_not_allowed());
    }
    let sel = q.list_options(r)?;
    let mut opts = q.delete_options(&optional_body(headers, body)?)?;
    let dry = std::mem::take(&mut opts.dry_run);
    let (deleted, rv) = write(store, dry, |tx| {
        let mut out = Vec::new();
        for item in tx.list(r, ns, &sel) {
            let (ins, iname) = (
                meta_str(&item, "namespace").map(str::to_string),
                meta_str(&item, "name").unwrap_or("").to_string(),
            );
            out.push(tx.delete(r, ins.as_deref(), &iname, &opts)?);
        }
        Ok(out)
    })
    .map(|d| (d, store.current_rv()))?;
    Ok(bytes_response(
        StatusCode::OK,
        list_bytes(&format!("{}List", r.kind), &r.api_version(), rv, &deleted),
    ))
}

fn evict(
    store: &Store,
    ns: &str,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let eviction = decode_body(headers, body)?;
    let kind = eviction
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Eviction");
    let av = eviction
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("policy/v1");
    if kind != "Eviction" || !matches!(av, "policy/v1" | "policy/v1beta1") {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a policy/v1 Eviction, got {av} {kind}"
        )));
    }
    if let Some(n) = meta_str(&eviction, "name").filter(|n| !n.is_empty())
        && n != name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let body_dry = match eviction.get("deleteOptions").filter(|o| o.is_object()) {
        Some(o) => admission::delete_options_from(o)?.dry_run,
        None => false,
    };
    write(store, q.dry_run()? || body_dry, |tx| {
        admission::evict(tx, ns, name, &eviction)
    })?;
    Ok(json_response(
        StatusCode::CREATED,
        &status_success(201, None),
    ))
}
