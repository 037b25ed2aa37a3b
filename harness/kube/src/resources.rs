//! The resource types the fake serves: built-in ones (namespaces, nodes, pods, events) and those
//! custom resource definitions register, with what discovery says about them.

use serde_json::{Value, json};

/// Pod fields a field selector may name (the API server's set).
const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

/// Core Event fields a field selector may name.
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// events.k8s.io Event fields a field selector may name.
const EVENTS_V1_FIELDS: &[&str] = &[
    "regarding.kind",
    "regarding.name",
    "regarding.namespace",
    "reason",
    "type",
    "reportingController",
];

/// One resource type.
#[derive(Debug, Clone)]
pub struct Kind {
    /// API group (`""` for the core group).
    pub group: String,
    /// The one served version.
    pub version: String,
    /// Plural resource name (`pods`).
    pub plural: String,
    /// Singular name (`pod`).
    pub singular: String,
    /// Kind (`Pod`).
    pub kind: String,
    /// Short names (`po`).
    pub short_names: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Has a `status` subresource (status is then written only through it).
    pub status: bool,
    /// Fields a field selector may name.
    pub fields: Vec<&'static str>,
    /// The structural schema of a custom resource.
    pub schema: Option<Value>,
}

impl Kind {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The key the store files its objects under.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    #[allow(clippy::too_many_arguments)] // one row of the table below
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        short: &[&str],
        namespaced: bool,
        status: bool,
        fields: &[&'static str],
    ) -> Kind {
        let mut all = vec!["metadata.name"];
        if namespaced {
            all.push("metadata.namespace");
        }
        all.extend_from_slice(fields);
        Kind {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            short_names: short.iter().map(|s| (*s).to_owned()).collect(),
            namespaced,
            status,
            fields: all,
            schema: None,
        }
    }

    /// The resource types every API server has (those eniplan and its tests use).
    pub fn builtins() -> Vec<Kind> {
        let b = Kind::builtin;
        let rbac = "rbac.authorization.k8s.io";
        vec![
            b(
                "",
                "v1",
                "namespaces",
                "Namespace",
                &["ns"],
                false,
                true,
                &["status.phase"],
            ),
            b(
                "",
                "v1",
                "nodes",
                "Node",
                &["no"],
                false,
                true,
                &["spec.unschedulable"],
            ),
            b("", "v1", "pods", "Pod", &["po"], true, true, POD_FIELDS),
            b(
                "",
                "v1",
                "events",
                "Event",
                &["ev"],
                true,
                false,
                EVENT_FIELDS,
            ),
            b(
                "",
                "v1",
                "serviceaccounts",
                "ServiceAccount",
                &["sa"],
                true,
                false,
                &[],
            ),
            b(
                "events.k8s.io",
                "v1",
                "events",
                "Event",
                &["ev"],
                true,
                false,
                EVENTS_V1_FIELDS,
            ),
            b(
                rbac,
                "v1",
                "clusterroles",
                "ClusterRole",
                &[],
                false,
                false,
                &[],
            ),
            b(
                rbac,
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                &[],
                false,
                false,
                &[],
            ),
            b(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                &["crd", "crds"],
                false,
                true,
                &[],
            ),
        ]
    }

    /// The type a CRD object defines (its storage version), or why it cannot be served.
    pub fn from_crd(crd: &Value) -> Result<Kind, String> {
        let spec = &crd["spec"];
        let s = |v: &Value, what: &str| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("spec.{what}: Required value"))
        };
        let versions = spec["versions"]
            .as_array()
            .ok_or("spec.versions: Required value")?;
        let v = versions
            .iter()
            .find(|v| v["storage"] == Value::Bool(true))
            .or_else(|| versions.first())
            .ok_or("spec.versions: Required value")?;
        let names = &spec["names"];
        let plural = s(&names["plural"], "names.plural")?;
        let group = s(&spec["group"], "group")?;
        let expected = format!("{plural}.{group}");
        if crd["metadata"]["name"].as_str() != Some(expected.as_str()) {
            return Err(format!(
                "metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group ({expected})"
            ));
        }
        let kind = s(&names["kind"], "names.kind")?;
        Ok(Kind {
            group,
            version: s(&v["name"], "versions[].name")?,
            singular: names["singular"]
                .as_str()
                .map_or_else(|| kind.to_lowercase(), str::to_owned),
            plural,
            kind,
            short_names: names["shortNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            namespaced: spec["scope"].as_str() == Some("Namespaced"),
            status: v["subresources"]["status"].is_object(),
            fields: vec!["metadata.name", "metadata.namespace"],
            schema: Some(v["schema"]["openAPIV3Schema"].clone()),
        })
    }

    /// This type's entry in an `APIResourceList`.
    pub fn discovery(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": self.short_names,
        })];
        if self.status {
            out.push(json!({"name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced, "kind": self.kind, "verbs": ["get", "patch", "update"]}));
        }
        if self.kind == "Pod" {
            out.push(json!({"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}));
        }
        out
    }
}
