//! The HTTP side: discovery, CRUD on every served type, list with pagination and selectors,
//! watch streams, and the faults a test has switched on.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::{Value, json};

use crate::Shared;
use crate::error::ApiError;
use crate::resources::Kind;
use crate::select::{FieldSelector, LabelSelector};
use crate::store::{PatchKind, Store};
use crate::watch;

fn json_response(code: u16, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.code, &self.status());
        if self.code == 429 {
            r.headers_mut()
                .insert(header::RETRY_AFTER, "1".parse().expect("static"));
        }
        r
    }
}

/// The query string as pairs, percent-decoded.
fn query(uri: &Uri) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && let Some(h) = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(h);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A request's query parameters.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The parameter's value, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `labelSelector` and `fieldSelector`, parsed (400 when they do not parse).
    fn selectors(&self, kind: &Kind) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let fields =
            FieldSelector::parse(self.get("fieldSelector").unwrap_or_default(), &kind.fields)
                .map_err(ApiError::bad_request)?;
        Ok((labels, fields))
    }

    /// Whether a boolean parameter is on (`true` or `1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// What a resource path names.
struct Target {
    kind: Kind,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn version() -> Value {
    json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-eniplan-fake", "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean", "buildDate": "2026-12-01T00:00:00Z", "goVersion": "none", "compiler": "none", "platform": "linux/amd64"})
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = format!("{group}/{version}");
    json!({"name": group, "versions": [{"groupVersion": gv, "version": version}], "preferredVersion": {"groupVersion": gv, "version": version}})
}

/// Entry point for every request.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = shared.faults.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if shared.faults.take_throttle() {
        shared.count("throttled", "");
        return ApiError::throttled().into_response();
    }
    match route(&shared, &method, &uri, &headers, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Discovery, OpenAPI and health paths; `None` for a resource path.
fn discovery(
    shared: &Shared,
    store: &Store,
    parts: &[&str],
    path: &str,
) -> Option<Result<Response, ApiError>> {
    let found = |v: Value| {
        shared.count("discovery", "");
        Some(Ok(json_response(200, &v)))
    };
    let resources = |group: &str, version: &str| {
        let list: Vec<Value> = store
            .kinds()
            .values()
            .filter(|k| k.group == group && k.version == version)
            .flat_map(Kind::discovery)
            .collect();
        let gv = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
    };
    match parts {
        ["version"] => found(version()),
        ["healthz" | "readyz" | "livez"] => Some(Ok((StatusCode::OK, "ok").into_response())),
        ["api"] => found(
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}]}),
        ),
        ["apis"] => {
            let mut groups: Vec<(String, String)> = store
                .kinds()
                .values()
                .filter(|k| !k.group.is_empty())
                .map(|k| (k.group.clone(), k.version.clone()))
                .collect();
            groups.dedup();
            groups.sort();
            groups.dedup();
            let groups: Vec<Value> = groups.iter().map(|(g, v)| group_json(g, v)).collect();
            found(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["apis", g] => {
            let k = store
                .kinds()
                .values()
                .find(|k| k.group == *g)
                .ok_or_else(|| ApiError::no_route(path));
            let k = match k {
                Ok(k) => k,
                Err(e) => return Some(Err(e)),
            };
            let mut v = group_json(g, &k.version);
            v["kind"] = "APIGroup".into();
            v["apiVersion"] = "v1".into();
            found(v)
        }
        ["openapi", "v3"] => found(crate::openapi::root(store.kinds().values())),
        ["openapi", "v3", "api", v] => found(crate::openapi::group(
            store
                .kinds()
                .values()
                .filter(|k| k.group.is_empty() && k.version == *v),
        )),
        ["openapi", "v3", "apis", g, v] => found(crate::openapi::group(
            store
                .kinds()
                .values()
                .filter(|k| k.group == *g && k.version == *v),
        )),
        ["api", "v1"] => found(resources("", "v1")),
        ["apis", g, v]
            if store
                .kinds()
                .values()
                .any(|k| k.group == *g && k.version == *v) =>
        {
            found(resources(g, v))
        }
        _ => None,
    }
}

fn route(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path().trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let store = shared.store.lock().expect("store");
    if let Some(answer) = discovery(shared, &store, &parts, path) {
        return answer;
    }
    let (group, version, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route(path)),
    };
    let kind_at = |plural: &str| store.kind(group, version, plural).cloned();
    let target = match rest {
        ["namespaces", ns, plural, more @ ..] if kind_at(plural).is_some_and(|k| k.namespaced) => {
            Target {
                kind: kind_at(plural).expect("checked"),
                ns: Some((*ns).to_owned()),
                name: more.first().map(|s| (*s).to_owned()),
                sub: more.get(1).map(|s| (*s).to_owned()),
            }
        }
        [plural, more @ ..] if kind_at(plural).is_some() && more.len() <= 2 => Target {
            kind: kind_at(plural).expect("checked"),
            ns: None,
            name: more.first().map(|s| (*s).to_owned()),
            sub: more.get(1).map(|s| (*s).to_owned()),
        },
        _ => return Err(ApiError::no_route(path)),
    };
    drop(store);
    resource(shared, method, uri, headers, body, target)
}

/// RBAC for service-account tokens (see [`crate::rbac`]); no token is the cluster admin.
fn authorize(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    params: &Params,
    t: &Target,
) -> Result<(), ApiError> {
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Ok(());
    };
    let token = auth
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some((ns, name)) = shared.tokens.lock().expect("tokens").get(token).cloned() else {
        shared.count("unauthorized", "");
        return Err(ApiError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: json!({}),
        });
    };
    let verb = match (method.clone(), t.name.is_some()) {
        (Method::GET, false) if params.flag("watch") => "watch",
        (Method::GET, false) => "list",
        (Method::GET, true) => "get",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    };
    let a = crate::rbac::Attributes {
        verb,
        kind: &t.kind,
        subresource: t.sub.as_deref(),
        namespace: t.ns.as_deref(),
        name: t.name.as_deref(),
    };
    let store = shared.store.lock().expect("store");
    shared.count("authenticated", &name);
    shared.count(&format!("as {name}"), &format!("{verb} {}", t.kind.plural));
    crate::rbac::authorize(&store, &ns, &name, &a).inspect_err(|_| shared.count("forbidden", ""))
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))
}

fn list_kind(kind: &Kind) -> String {
    format!("{}List", kind.kind)
}

#[allow(clippy::too_many_lines)]
fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    t: Target,
) -> Result<Response, ApiError> {
    let params = Params(query(uri));
    let ns = t.ns.clone().unwrap_or_default();
    let plural = t.kind.plural.clone();
    if t.kind.namespaced && t.name.is_some() && t.ns.is_none() {
        return Err(ApiError::no_route(uri.path()));
    }
    authorize(shared, method, headers, &params, &t)?;
    let status_only = match t.sub.as_deref() {
        None => false,
        Some("status") if t.kind.status => true,
        Some("eviction") if t.kind.kind == "Pod" && method == Method::POST => {
            shared.count("create", "pods/eviction");
            let name = t.name.as_deref().unwrap_or_default();
            let mut store = shared.store.lock().expect("store");
            store.delete(&t.kind, &ns, name, &json!({}))?;
            return Ok(json_response(
                201,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ));
        }
        Some(_) => return Err(ApiError::no_route(uri.path())),
    };
    let sub = if status_only {
        format!("{plural}/status")
    } else {
        plural.clone()
    };
    match (method.clone(), t.name.as_deref()) {
        (Method::GET, None) if params.flag("watch") => {
            shared.count("watch", &plural);
            let (labels, fields) = params.selectors(&t.kind)?;
            let spec = watch::Spec {
                kind: t.kind,
                ns: t.ns,
                labels,
                fields,
                rv: params.get("resourceVersion").unwrap_or_default().to_owned(),
                bookmarks: params.flag("allowWatchBookmarks"),
                initial_events: params.flag("sendInitialEvents"),
                timeout: params
                    .get("timeoutSeconds")
                    .and_then(|s| s.parse().ok())
                    .map(Duration::from_secs),
            };
            Ok(watch::start(shared, spec))
        }
        (Method::GET, None) => {
            shared.count("list", &plural);
            let (labels, fields) = params.selectors(&t.kind)?;
            let limit: usize = params
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|&l| l > 0)
                .unwrap_or(usize::MAX);
            let store = shared.store.lock().expect("store");
            let after = match params.get("continue").filter(|c| !c.is_empty()) {
                Some(token) => {
                    let (rv, key) = token.split_once('/').ok_or_else(|| {
                        ApiError::bad_request(format!("invalid continue token {token:?}"))
                    })?;
                    let rv: u64 = rv.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid continue token {token:?}"))
                    })?;
                    if rv < store.compacted() {
                        let mut e = ApiError::expired(rv, store.compacted());
                        e.message = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into();
                        return Err(e);
                    }
                    Some(key.to_owned())
                }
                None => None,
            };
            let mut items = Vec::new();
            let mut more = false;
            for o in store.objects(&t.kind, t.ns.as_deref()) {
                let key = format!(
                    "{}|{}",
                    o["metadata"]["namespace"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                );
                if after.as_ref().is_some_and(|a| key <= *a)
                    || !labels.matches(o)
                    || !fields.matches(o)
                {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(o.clone());
            }
            let mut meta = json!({"resourceVersion": store.rv().to_string()});
            if more && let Some(last) = items.last() {
                let key = format!(
                    "{}|{}",
                    last["metadata"]["namespace"].as_str().unwrap_or_default(),
                    last["metadata"]["name"].as_str().unwrap_or_default()
                );
                meta["continue"] = format!("{}/{key}", store.rv()).into();
            }
            Ok(json_response(
                200,
                &json!({"kind": list_kind(&t.kind), "apiVersion": t.kind.api_version(), "metadata": meta, "items": items}),
            ))
        }
        (Method::GET, Some(name)) => {
            shared.count("get", &sub);
            Ok(json_response(
                200,
                &shared
                    .store
                    .lock()
                    .expect("store")
                    .get(&t.kind, &ns, name)?,
            ))
        }
        (Method::POST, None) => {
            shared.count("create", &plural);
            let obj = parse_body(body)?;
            if let Some(body_ns) = obj["metadata"]["namespace"].as_str()
                && t.kind.namespaced
                && body_ns != ns
            {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
                )));
            }
            if params.get("dryRun").is_some() {
                return Ok(json_response(201, &obj));
            }
            let created = shared
                .store
                .lock()
                .expect("store")
                .create(&t.kind, &ns, obj)?;
            Ok(json_response(201, &created))
        }
        (Method::PUT, Some(name)) => {
            shared.count("update", &sub);
            let obj = parse_body(body)?;
            Ok(json_response(
                200,
                &shared.store.lock().expect("store").replace(
                    &t.kind,
                    &ns,
                    name,
                    obj,
                    status_only,
                )?,
            ))
        }
        (Method::PATCH, Some(name)) => {
            shared.count("patch", &sub);
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let how = match ct.split(';').next().unwrap_or_default().trim() {
                "application/merge-patch+json" => PatchKind::Merge,
                "application/strategic-merge-patch+json" if t.kind.schema.is_none() => {
                    PatchKind::Strategic
                }
                "application/json-patch+json" => PatchKind::Json,
                other => return Err(ApiError::media_type(other)),
            };
            let patch = parse_body(body)?;
            Ok(json_response(
                200,
                &shared.store.lock().expect("store").patch(
                    &t.kind,
                    &ns,
                    name,
                    how,
                    &patch,
                    status_only,
                )?,
            ))
        }
        (Method::DELETE, Some(name)) => {
            shared.count("delete", &plural);
            let options = if body.is_empty() {
                json!({})
            } else {
                parse_body(body)?
            };
            Ok(json_response(
                200,
                &shared
                    .store
                    .lock()
                    .expect("store")
                    .delete(&t.kind, &ns, name, &options)?,
            ))
        }
        (Method::DELETE, None) => {
            shared.count("deletecollection", &plural);
            let (labels, _) = params.selectors(&t.kind)?;
            let mut store = shared.store.lock().expect("store");
            let doomed: Vec<(String, String)> = store
                .objects(&t.kind, t.ns.as_deref())
                .filter(|o| labels.matches(o))
                .map(|o| {
                    (
                        o["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        o["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect();
            let mut items = Vec::new();
            for (n, name) in doomed {
                items.push(store.delete(&t.kind, &n, &name, &json!({}))?);
            }
            Ok(json_response(
                200,
                &json!({"kind": list_kind(&t.kind), "apiVersion": t.kind.api_version(), "metadata": {"resourceVersion": store.rv().to_string()}, "items": items}),
            ))
        }
        (m, _) => Err(ApiError::method(m.as_str(), uri.path())),
    }
}
