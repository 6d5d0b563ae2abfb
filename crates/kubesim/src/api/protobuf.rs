//! Request bodies in the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which kubectl's typed clients send for `kubectl create configmap|namespace|serviceaccount|
//! deployment|service|pdb|priorityclass`. Responses are always JSON (those clients accept it).
//!
//! The body is the `k8s\0` magic and a `runtime.Unknown` envelope whose `raw` bytes are the
//! object's generated.proto message. A small schema table (the field numbers of the messages
//! those commands produce) turns it into the JSON the rest of the server handles. Go's
//! generated code writes every non-pointer field, so empty strings, zero numbers and empty
//! messages are dropped unless the field is a pointer (`keep` below). Fields the table does
//! not know are skipped.

use serde_json::{Map, Value, json};

use crate::error::ApiError;

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    Msg(&'static [F]),
    RepStr,
    RepMsg(&'static [F]),
    MapStr,
    MapBytes,
    MapQuantity,
    IntOrString,
    Time,
}

/// One field: number, JSON name, type, and whether a zero value is meaningful (a pointer).
type F = (u64, &'static str, Ty, bool);

use Ty::*;

const TIME: Ty = Time;
const OWNER_REF: &[F] = &[
    (1, "kind", Str, false),
    (3, "name", Str, false),
    (4, "uid", Str, false),
    (5, "apiVersion", Str, false),
    (6, "controller", Bool, true),
    (7, "blockOwnerDeletion", Bool, true),
];
const OBJECT_META: &[F] = &[
    (1, "name", Str, false),
    (2, "generateName", Str, false),
    (3, "namespace", Str, false),
    (5, "uid", Str, false),
    (6, "resourceVersion", Str, false),
    (8, "creationTimestamp", TIME, false),
    (11, "labels", MapStr, false),
    (12, "annotations", MapStr, false),
    (13, "ownerReferences", RepMsg(OWNER_REF), false),
    (14, "finalizers", RepStr, false),
];
const LABEL_SELECTOR_REQ: &[F] = &[
    (1, "key", Str, false),
    (2, "operator", Str, false),
    (3, "values", RepStr, false),
];
const LABEL_SELECTOR: &[F] = &[
    (1, "matchLabels", MapStr, false),
    (2, "matchExpressions", RepMsg(LABEL_SELECTOR_REQ), false),
];
const CONTAINER_PORT: &[F] = &[
    (1, "name", Str, false),
    (2, "hostPort", Int, false),
    (3, "containerPort", Int, false),
    (4, "protocol", Str, false),
    (5, "hostIP", Str, false),
];
const ENV_VAR: &[F] = &[(1, "name", Str, false), (2, "value", Str, false)];
const RESOURCES: &[F] = &[
    (1, "limits", MapQuantity, false),
    (2, "requests", MapQuantity, false),
];
const CONTAINER: &[F] = &[
    (1, "name", Str, false),
    (2, "image", Str, false),
    (3, "command", RepStr, false),
    (4, "args", RepStr, false),
    (5, "workingDir", Str, false),
    (6, "ports", RepMsg(CONTAINER_PORT), false),
    (7, "env", RepMsg(ENV_VAR), false),
    (8, "resources", Msg(RESOURCES), false),
    (13, "terminationMessagePath", Str, false),
    (14, "imagePullPolicy", Str, false),
    (16, "stdin", Bool, false),
    (17, "stdinOnce", Bool, false),
    (18, "tty", Bool, false),
    (20, "terminationMessagePolicy", Str, false),
];
const TOLERATION: &[F] = &[
    (1, "key", Str, false),
    (2, "operator", Str, false),
    (3, "value", Str, false),
    (4, "effect", Str, false),
    (5, "tolerationSeconds", Int, true),
];
const POD_SPEC: &[F] = &[
    (2, "containers", RepMsg(CONTAINER), false),
    (3, "restartPolicy", Str, false),
    (4, "terminationGracePeriodSeconds", Int, true),
    (5, "activeDeadlineSeconds", Int, true),
    (6, "dnsPolicy", Str, false),
    (7, "nodeSelector", MapStr, false),
    (8, "serviceAccountName", Str, false),
    (9, "serviceAccount", Str, false),
    (10, "nodeName", Str, false),
    (11, "hostNetwork", Bool, false),
    (19, "schedulerName", Str, false),
    (20, "initContainers", RepMsg(CONTAINER), false),
    (22, "tolerations", RepMsg(TOLERATION), false),
    (24, "priorityClassName", Str, false),
    (25, "priority", Int, true),
];
const POD_TEMPLATE: &[F] = &[
    (1, "metadata", Msg(OBJECT_META), false),
    (2, "spec", Msg(POD_SPEC), false),
];
const ROLLING_UPDATE: &[F] = &[
    (1, "maxUnavailable", IntOrString, true),
    (2, "maxSurge", IntOrString, true),
];
const STRATEGY: &[F] = &[
    (1, "type", Str, false),
    (2, "rollingUpdate", Msg(ROLLING_UPDATE), false),
];
const DEPLOYMENT_SPEC: &[F] = &[
    (1, "replicas", Int, true),
    (2, "selector", Msg(LABEL_SELECTOR), false),
    (3, "template", Msg(POD_TEMPLATE), false),
    (4, "strategy", Msg(STRATEGY), false),
    (5, "minReadySeconds", Int, false),
    (6, "revisionHistoryLimit", Int, true),
    (7, "paused", Bool, false),
    (9, "progressDeadlineSeconds", Int, true),
];
const SERVICE_PORT: &[F] = &[
    (1, "name", Str, false),
    (2, "protocol", Str, false),
    (3, "port", Int, false),
    (4, "targetPort", IntOrString, false),
    (5, "nodePort", Int, false),
];
const SERVICE_SPEC: &[F] = &[
    (1, "ports", RepMsg(SERVICE_PORT), false),
    (2, "selector", MapStr, false),
    (3, "clusterIP", Str, false),
    (4, "type", Str, false),
    (5, "externalIPs", RepStr, false),
    (7, "sessionAffinity", Str, false),
    (10, "externalName", Str, false),
];
const OBJECT_REF: &[F] = &[
    (1, "kind", Str, false),
    (2, "namespace", Str, false),
    (3, "name", Str, false),
    (4, "uid", Str, false),
    (5, "apiVersion", Str, false),
];
const LOCAL_REF: &[F] = &[(1, "name", Str, false)];
const PDB_SPEC: &[F] = &[
    (1, "minAvailable", IntOrString, true),
    (2, "selector", Msg(LABEL_SELECTOR), false),
    (3, "maxUnavailable", IntOrString, true),
    (4, "unhealthyPodEvictionPolicy", Str, false),
];
const NAMESPACE_SPEC: &[F] = &[(1, "finalizers", RepStr, false)];

/// The top-level messages understood, by `apiVersion` and `kind`.
fn schema(api_version: &str, kind: &str) -> Option<&'static [F]> {
    const META: F = (1, "metadata", Msg(OBJECT_META), false);
    Some(match (api_version, kind) {
        ("v1", "ConfigMap") => &[
            META,
            (2, "data", MapStr, false),
            (3, "binaryData", MapBytes, false),
            (4, "immutable", Bool, true),
        ],
        ("v1", "Namespace") => &[META, (2, "spec", Msg(NAMESPACE_SPEC), false)],
        ("v1", "ServiceAccount") => &[
            META,
            (2, "secrets", RepMsg(OBJECT_REF), false),
            (3, "imagePullSecrets", RepMsg(LOCAL_REF), false),
            (4, "automountServiceAccountToken", Bool, true),
        ],
        ("v1", "Service") => &[META, (2, "spec", Msg(SERVICE_SPEC), false)],
        ("v1", "Pod") => &[META, (2, "spec", Msg(POD_SPEC), false)],
        ("apps/v1", "Deployment") => &[META, (2, "spec", Msg(DEPLOYMENT_SPEC), false)],
        ("policy/v1", "PodDisruptionBudget") => &[META, (2, "spec", Msg(PDB_SPEC), false)],
        ("scheduling.k8s.io/v1", "PriorityClass") => &[
            META,
            (2, "value", Int, true),
            (3, "globalDefault", Bool, false),
            (4, "description", Str, false),
            (5, "preemptionPolicy", Str, true),
        ],
        _ => return None,
    })
}

/// Standard base64 with padding, as JSON carries `[]byte`.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, byte)| {
            acc | u32::from(*byte) << (16 - 8 * i)
        });
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn malformed() -> ApiError {
    ApiError::bad_request("the protobuf body of the request is malformed")
}

/// One decoded wire field.
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> Result<u64, ApiError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i).ok_or_else(malformed)?;
        *i += 1;
        out |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(malformed())
}

fn fields(b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ApiError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, Wire::Varint(varint(b, &mut i)?))),
            2 => {
                let n = usize::try_from(varint(b, &mut i)?).map_err(|_| malformed())?;
                let end = i
                    .checked_add(n)
                    .filter(|e| *e <= b.len())
                    .ok_or_else(malformed)?;
                out.push((num, Wire::Len(&b[i..end])));
                i = end;
            }
            1 => {
                i = i
                    .checked_add(8)
                    .filter(|e| *e <= b.len())
                    .ok_or_else(malformed)?
            }
            5 => {
                i = i
                    .checked_add(4)
                    .filter(|e| *e <= b.len())
                    .ok_or_else(malformed)?
            }
            _ => return Err(malformed()),
        }
    }
    Ok(out)
}

fn utf8(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed())
}

fn message(b: &[u8], schema: &[F]) -> Result<Value, ApiError> {
    let mut out = Map::new();
    for (num, w) in fields(b)? {
        let Some(&(_, name, ty, keep)) = schema.iter().find(|f| f.0 == num) else {
            continue;
        };
        let v = match (ty, w) {
            (Str, Wire::Len(s)) => json!(utf8(s)?),
            // int32 fields carry negative numbers as 64-bit two's complement.
            (Int, Wire::Varint(v)) => json!(v as i64),
            (Bool, Wire::Varint(v)) => json!(v != 0),
            (Msg(s), Wire::Len(m)) => message(m, s)?,
            (Time, Wire::Len(m)) => time(m)?,
            (IntOrString, Wire::Len(m)) => int_or_string(m)?,
            (RepStr, Wire::Len(s)) => {
                push(&mut out, name, json!(utf8(s)?));
                continue;
            }
            (RepMsg(s), Wire::Len(m)) => {
                push(&mut out, name, message(m, s)?);
                continue;
            }
            (MapStr | MapBytes | MapQuantity, Wire::Len(m)) => {
                let (k, v) = map_entry(m, ty)?;
                let entry = out.entry(name).or_insert_with(|| json!({}));
                if let Some(e) = entry.as_object_mut() {
                    e.insert(k, v);
                }
                continue;
            }
            _ => return Err(malformed()),
        };
        let empty = match &v {
            Value::String(s) => s.is_empty(),
            Value::Number(n) => n.as_i64() == Some(0),
            Value::Bool(b) => !b,
            Value::Object(m) => m.is_empty(),
            Value::Null => true,
            Value::Array(_) => false,
        };
        if !empty || (keep && !v.is_null()) {
            out.insert(name.into(), v);
        }
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: &str, v: Value) {
    if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
        a.push(v);
    }
}

fn map_entry(b: &[u8], ty: Ty) -> Result<(String, Value), ApiError> {
    let (mut k, mut v) = (String::new(), json!(""));
    for (num, w) in fields(b)? {
        match (num, w) {
            (1, Wire::Len(s)) => k = utf8(s)?,
            (2, Wire::Len(s)) => {
                v = match ty {
                    MapBytes => json!(base64(s)),
                    // resource.Quantity { string string = 1 }
                    MapQuantity => fields(s)?
                        .into_iter()
                        .find_map(|(n, w)| match (n, w) {
                            (1, Wire::Len(q)) => utf8(q).ok().map(Value::String),
                            _ => None,
                        })
                        .unwrap_or_else(|| json!("0")),
                    _ => json!(utf8(s)?),
                }
            }
            _ => {}
        }
    }
    Ok((k, v))
}

/// metav1.Time { int64 seconds = 1; int32 nanos = 2 }; zero is "unset".
fn time(b: &[u8]) -> Result<Value, ApiError> {
    let secs = fields(b)?.into_iter().find_map(|(n, w)| match (n, w) {
        (1, Wire::Varint(v)) => Some(v as i64),
        _ => None,
    });
    Ok(
        match secs
            .filter(|s| *s != 0)
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        {
            Some(t) => json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            None => Value::Null,
        },
    )
}

/// intstr.IntOrString { int64 type = 1; int32 intVal = 2; string strVal = 3 }.
fn int_or_string(b: &[u8]) -> Result<Value, ApiError> {
    let (mut ty, mut int, mut s) = (0, 0i64, String::new());
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Varint(v)) => ty = v,
            (2, Wire::Varint(v)) => int = v as i64,
            (3, Wire::Len(v)) => s = utf8(v)?,
            _ => {}
        }
    }
    Ok(if ty == 1 { json!(s) } else { json!(int) })
}

/// Decode a protobuf request body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body.strip_prefix(b"k8s\0").ok_or_else(malformed)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (num, w) in fields(rest)? {
        match (num, w) {
            (1, Wire::Len(tm)) => {
                for (n, w) in fields(tm)? {
                    match (n, w) {
                        (1, Wire::Len(v)) => api_version = utf8(v)?,
                        (2, Wire::Len(v)) => kind = utf8(v)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(r)) => raw = Some(r),
            _ => {}
        }
    }
    let schema = schema(&api_version, &kind).ok_or_else(|| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the simulator cannot decode {api_version} {kind} from protobuf; send it as JSON (e.g. kubectl apply -f)"),
        )
    })?;
    let mut obj = message(raw.unwrap_or_default(), schema)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(num << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_config_map_like_kubectl_create_sends_it() {
        let meta = [
            len_field(1, b"cm1"),
            len_field(2, b""),
            vec![7 << 3, 0],
            len_field(8, b""),
        ]
        .concat();
        let entry = [len_field(1, b"a"), len_field(2, b"1")].concat();
        let raw = [len_field(1, &meta), len_field(2, &entry)].concat();
        let type_meta = [len_field(1, b"v1"), len_field(2, b"ConfigMap")].concat();
        let body = [
            b"k8s\0".to_vec(),
            len_field(1, &type_meta),
            len_field(2, &raw),
            len_field(3, b""),
            len_field(4, b""),
        ]
        .concat();
        let v = decode(&body).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"a": "1"}})
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(
            (base64(b"a"), base64(b"ab"), base64(b"abc"), base64(b"")),
            ("YQ==".into(), "YWI=".into(), "YWJj".into(), String::new())
        );
    }

    #[test]
    fn int_or_string_keeps_its_kind() {
        assert_eq!(
            int_or_string(&[1 << 3, 1, (3 << 3) | 2, 3, b'5', b'0', b'%']).ok(),
            Some(json!("50%"))
        );
        assert_eq!(int_or_string(&[1 << 3, 0, 2 << 3, 7]).ok(), Some(json!(7)));
    }
}
