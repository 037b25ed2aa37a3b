//! RBAC for service-account tokens: a request that carries a token minted by
//! [`crate::FakeApi::service_account_token`] acts as that service account and may do only what
//! the ClusterRoles bound to it (by ClusterRoleBindings in the store) allow, as the API
//! server's RBAC authorizer decides. Requests without a token are the cluster admin (kubectl in
//! the tests). Discovery and health paths are open to everyone, as `system:discovery` makes them.

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::Kind;
use crate::store::Store;

/// What a request asks to do, in RBAC's terms.
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'a str,
    /// The type.
    pub kind: &'a Kind,
    /// `status`, `eviction`…
    pub subresource: Option<&'a str>,
    /// The namespace, for namespaced requests.
    pub namespace: Option<&'a str>,
    /// The object's name, when the request names one.
    pub name: Option<&'a str>,
}

fn listed(list: &Value, want: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|v| v == "*" || v == want))
}

fn allows(rule: &Value, a: &Attributes<'_>) -> bool {
    let resource = match a.subresource {
        Some(sub) => format!("{}/{sub}", a.kind.plural),
        None => a.kind.plural.clone(),
    };
    let names_ok = match (rule["resourceNames"].as_array(), a.name) {
        (None, _) => true,
        (Some(names), Some(n)) => names.iter().any(|v| v == n),
        (Some(names), None) => names.is_empty(),
    };
    listed(&rule["verbs"], a.verb)
        && listed(&rule["apiGroups"], &a.kind.group)
        && listed(&rule["resources"], &resource)
        && names_ok
}

/// Whether the service account `ns`/`name` may do `a`; the API server's 403 if not.
pub fn authorize(store: &Store, ns: &str, name: &str, a: &Attributes<'_>) -> Result<(), ApiError> {
    let kinds = store.kinds();
    let bindings = store.objects(
        &kinds["rbac.authorization.k8s.io/clusterrolebindings"],
        None,
    );
    let roles = &kinds["rbac.authorization.k8s.io/clusterroles"];
    for b in bindings {
        let bound =
            b["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == ns
            });
        if !bound || b["roleRef"]["kind"] != "ClusterRole" {
            continue;
        }
        let role_name = b["roleRef"]["name"].as_str().unwrap_or_default();
        let Ok(role) = store.get(roles, "", role_name) else {
            continue;
        };
        if role["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| allows(r, a))
        {
            return Ok(());
        }
    }
    let resource = match a.subresource {
        Some(sub) => format!("{}/{sub}", a.kind.plural),
        None => a.kind.plural.clone(),
    };
    let scope = a.namespace.map_or_else(
        || "at the cluster scope".to_owned(),
        |n| format!("in the namespace \"{n}\""),
    );
    Err(ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!(
            "{resource} is forbidden: User \"system:serviceaccount:{ns}:{name}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            a.verb, a.kind.group
        ),
        details: serde_json::json!({"kind": a.kind.plural, "group": a.kind.group, "name": a.name}),
    })
}
